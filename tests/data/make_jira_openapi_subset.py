"""Regenerate tests/data/jira-openapi-subset.json from a full Jira Cloud v3 OpenAPI file.

Usage: python tests/data/make_jira_openapi_subset.py PATH/TO/jira-cloud-platform-v3.openapi.json

The subset holds, for every (method, path) the Jira sandbox serves on
/rest/api/3, the JSON schema of each documented response status, plus every
component schema those reference (transitively). OpenAPI 3.0's ``nullable``
is rewritten to JSON Schema (``type: [T, "null"]``) so that jsonschema can
validate sandbox responses with the subset alone, on a clone without the spec.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

# (method, path) pairs the sandbox serves on /rest/api/3.
OPERATIONS: list[tuple[str, str]] = [
    ("get", "/rest/api/3/serverInfo"),
    ("get", "/rest/api/3/myself"),
    ("get", "/rest/api/3/field"),
    ("get", "/rest/api/3/priority"),
    ("get", "/rest/api/3/resolution"),
    ("get", "/rest/api/3/project/{projectIdOrKey}"),
    ("get", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes"),
    ("get", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}"),
    ("post", "/rest/api/3/issue"),
    ("post", "/rest/api/3/issue/bulk"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/editmeta"),
    ("put", "/rest/api/3/issue/{issueIdOrKey}"),
    ("delete", "/rest/api/3/issue/{issueIdOrKey}"),
    ("put", "/rest/api/3/issue/{issueIdOrKey}/assignee"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
    ("post", "/rest/api/3/issue/{issueIdOrKey}/transitions"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/comment"),
    ("post", "/rest/api/3/issue/{issueIdOrKey}/comment"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"),
    ("put", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/properties"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}"),
    ("put", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/remotelink"),
    ("post", "/rest/api/3/issue/{issueIdOrKey}/remotelink"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/remotelink/{linkId}"),
    ("get", "/rest/api/3/issue/{issueIdOrKey}/changelog"),
    ("post", "/rest/api/3/changelog/bulkfetch"),
    ("get", "/rest/api/3/search/jql"),
    ("post", "/rest/api/3/search/jql"),
    ("post", "/rest/api/3/search/approximate-count"),
    ("get", "/rest/api/3/user"),
    ("get", "/rest/api/3/user/search"),
    ("get", "/rest/api/3/user/assignable/search"),
]
REF_PREFIX = "#/components/schemas/"


_ANNOTATIONS = ("nullable", "example", "description", "xml", "externalDocs")


def _convert(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable`` becomes a null type."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ANNOTATIONS:
            continue
        if key == "properties" and isinstance(value, dict):
            # A map of property names to schemas: the names are data, keep them all.
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _refs(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set()
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF_PREFIX):
        found.add(ref[len(REF_PREFIX):])
    for value in node.values():
        found |= _refs(value)
    return found


def build(spec: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, dict[str, Any]]] = {}
    wanted: set[str] = set()
    for method, path in OPERATIONS:
        operation = spec["paths"][path][method]
        statuses: dict[str, Any] = {}
        for status, response in operation["responses"].items():
            schema = (response.get("content", {}).get("application/json", {}).get("schema"))
            statuses[status] = _convert(schema) if schema else None
            wanted |= _refs(schema)
        paths.setdefault(path, {})[method] = statuses
    schemas = spec["components"]["schemas"]
    done: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name in done:
            continue
        done[name] = _convert(schemas[name])
        wanted |= _refs(schemas[name]) - set(done)
    return {
        "info": {
            "source": "Jira Cloud platform v3 OpenAPI",
            "version": spec.get("info", {}).get("version", ""),
            "note": "generated by tests/data/make_jira_openapi_subset.py; do not edit",
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(done.items()))},
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: make_jira_openapi_subset.py PATH/TO/jira-openapi.json", file=sys.stderr)
        return 2
    source = Path(argv[1])
    raw = source.read_bytes()
    subset = build(json.loads(raw))
    subset["info"]["sha256"] = hashlib.sha256(raw).hexdigest()
    target = Path(__file__).with_name("jira-openapi-subset.json")
    target.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {target} ({len(subset['paths'])} paths, "
          f"{len(subset['components']['schemas'])} schemas)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
