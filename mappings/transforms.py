"""The fixed set of value transforms a mapping profile may name, with their parameters.

Contract:
- A transform converts one value between the neutral form (after value maps)
  and a vendor's raw form, for one side. ``write`` returns the raw value and
  the losses it caused (human-readable reasons, empty when exact); ``read``
  takes the whole raw record, so a transform may read a dot-walked companion
  key (``caller_id.email``), and returns :data:`MISSING` when the record does
  not carry the field at all (a partial fetch is not "empty").
- Every transform is deterministic and idempotent on its own output:
  ``write(read(write(x)))`` equals ``write(x)``, so truncation and cleaning
  never creep on repeated syncs.
- Raw reading is lenient (ServiceNow ``{"value", "display_value", "link"}``
  envelopes, Jira ``{"value"}`` / ``{"name"}`` objects, ``""`` for empty);
  writing is strict and produces what the vendor accepts.
- Transform names and their parameters (all others are rejected by the profile):

  ==================  ===================================  ===============================
  name                parameters                           does
  ==================  ===================================  ===============================
  (none)              -                                    value as is (strings on SN)
  rich_text           limit?, marker="…"                   Jira: ADF / wiki / plain per
                                                           ``MappingContext.text_format``
  truncate            limit, marker="…", single_line=false cut to ``limit`` UTF-16 units
  prefix              prefix                               add on write, strip on read
  suffix              suffix                               add on write, strip on read
  user_by_email       -                                    ``{"$user": email}``; reads
                                                           ``<field>.email`` on ServiceNow
  group_by_name       -                                    ``{"$group": name}``; reads
                                                           ``<field>.name`` on ServiceNow
  datetime            format = servicenow | jira | iso     date-time text <-> aware UTC
  select_option       -                                    ``{"value": v}``
  name_object         -                                    ``{"name": v}``
  components          -                                    ``[{"name": v}]``
  labels              exclude_prefix="snow-" (or a list)   label list without sync markers
                                                           and labels other rows own
  label_prefix        prefix                               one scalar <-> the one label
                                                           ``prefix + encoded value``
  int_string          -                                    ``3`` <-> ``"3"``
  ==================  ===================================  ===============================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mappings.adf import adf_to_text, is_adf, text_to_adf
from mappings.wiki import text_to_wiki, wiki_to_text

if TYPE_CHECKING:
    from mappings.context import MappingContext


class _Missing:
    """The record does not carry this field (distinct from an empty value)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

SERVICENOW = "servicenow"
JIRA = "jira"
# Literal reference markers (connectors.base.user_ref/group_ref); mappings may
# not import connectors, so the format is repeated here on purpose.
USER_REF = "$user"
GROUP_REF = "$group"

SN_DATETIME = "%Y-%m-%d %H:%M:%S"


def unwrap(value: Any) -> Any:
    """A raw vendor value without its envelope; ``""`` becomes None."""
    if isinstance(value, dict):
        if "value" in value:
            value = value["value"]
        elif "name" in value:
            value = value["name"]
    if value == "":
        return None
    return value


def utf16_len(text: str) -> int:
    """Length as Java counts it (both vendors run on the JVM): emoji count twice."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int, marker: str,
        measure: Callable[[str], int] = utf16_len) -> str:
    """``text`` if it fits ``limit``, else its longest prefix + ``marker`` that fits.

    Idempotent: a result that fits is returned unchanged by the next call.
    """
    if measure(text) <= limit:
        return text
    keep = max(limit - measure(marker), 0)
    candidate = text[:keep] + marker
    while keep > 0 and measure(candidate) > limit:
        keep -= max(measure(candidate) - limit, 1)
        keep = max(keep, 0)
        candidate = text[:keep] + marker
    return candidate


# --------------------------------------------------------------------------- base


class Params(BaseModel):
    """Parameters of a transform; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Transform:
    """One conversion between a neutral value and a vendor's raw value."""

    name: ClassVar[str] = ""
    Parameters: ClassVar[type[Params]] = Params

    def __init__(self, params: Params | None = None) -> None:
        self.params = params if params is not None else self.Parameters()

    def read_fields(self, field: str, side: str) -> list[str]:
        """The raw keys a connector must fetch for ``field``."""
        return [field]

    def read(self, raw: Mapping[str, Any], field: str, side: str, ctx: MappingContext) -> Any:
        if field not in raw:
            return MISSING
        value = raw[field]
        # A non-empty string (most ServiceNow values) is its own unwrapped value.
        return self.decode(value if value.__class__ is str and value else unwrap(value),
                           side, ctx)

    def decode(self, value: Any, side: str, ctx: MappingContext) -> Any:
        return value

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        if side == SERVICENOW:
            # The Table API stores strings; "" is how a value is cleared.
            if value is None:
                return "", []
            if isinstance(value, bool):
                return ("true" if value else "false"), []
            return str(value), []
        return value, []

    def describe(self) -> str:
        params = self.params.model_dump(exclude_defaults=True)
        if not self.name:
            return ""
        if not params:
            return self.name
        return self.name + "(" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"


class Identity(Transform):
    def read(self, raw: Mapping[str, Any], field: str, side: str, ctx: MappingContext) -> Any:
        # Transform.read with the identity decode inlined: the most common read.
        if field not in raw:
            return MISSING
        value = raw[field]
        return value if value.__class__ is str and value else unwrap(value)


class RichTextParams(Params):
    limit: int | None = Field(default=None, gt=1)
    marker: str = "…"


class RichText(Transform):
    name = "rich_text"
    Parameters = RichTextParams
    params: RichTextParams

    def _encoder(self, side: str, ctx: MappingContext) -> Callable[[str], Any]:
        if side == JIRA and ctx.text_format == "adf":
            return text_to_adf
        if side == JIRA and ctx.text_format == "wiki":
            return text_to_wiki
        return str

    def decode(self, value: Any, side: str, ctx: MappingContext) -> Any:
        if value is None:
            return None
        if is_adf(value):
            return adf_to_text(value)
        if isinstance(value, dict):
            return adf_to_text(value)
        text = str(value)
        if side == JIRA and ctx.text_format in ("adf", "wiki"):
            # The jira library speaks v2 even on Cloud: strings there are wiki markup.
            return wiki_to_text(text)
        return text

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        encode = self._encoder(side, ctx)
        if value is None or value == "":
            return ("" if side == SERVICENOW else None), []
        text = str(value)
        limit = self.params.limit
        if limit is None:
            return encode(text), []
        # For wiki the escaped markup is what Jira stores, so that is what must fit;
        # ADF and plain text are measured as the text itself. What was encoded to be
        # measured is kept: the text that fits is not encoded a second time.
        encoded_of: dict[str, Any] = {}

        def measure(candidate: str) -> int:
            if encode is text_to_adf or encode is str:
                return utf16_len(candidate)
            encoded = encoded_of[candidate] = encode(candidate)
            return utf16_len(encoded) if isinstance(encoded, str) else utf16_len(candidate)

        fitted = cut(text, limit, self.params.marker, measure)
        encoded = encoded_of[fitted] if fitted in encoded_of else encode(fitted)
        if fitted == text:
            return encoded, []
        return encoded, [
            f"{utf16_len(text)} characters cut to fit {limit} on {side}"
        ]


class TruncateParams(Params):
    limit: int = Field(gt=1)
    marker: str = "…"
    single_line: bool = False

    @model_validator(mode="after")
    def _marker_fits(self) -> TruncateParams:
        if utf16_len(self.marker) >= self.limit:
            raise ValueError("marker must be shorter than limit")
        return self


_NEWLINES = re.compile(r"\r\n|\r|\n")


class Truncate(Transform):
    name = "truncate"
    Parameters = TruncateParams
    params: TruncateParams

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        if value is None or value == "":
            return super().write(value, side, ctx)
        text = str(value)
        losses = []
        if self.params.single_line and _NEWLINES.search(text):
            text = _NEWLINES.sub(" ", text)
            losses.append(f"line breaks replaced by spaces on {side}")
        fitted = cut(text, self.params.limit, self.params.marker)
        if fitted != text:
            losses.append(f"{utf16_len(text)} characters cut to {self.params.limit} on {side}")
        return super().write(fitted, side, ctx)[0], losses


class PrefixParams(Params):
    prefix: str = Field(min_length=1)


class Prefix(Transform):
    name = "prefix"
    Parameters = PrefixParams
    params: PrefixParams

    def decode(self, value: Any, side: str, ctx: MappingContext) -> Any:
        if isinstance(value, str) and value.startswith(self.params.prefix):
            return value[len(self.params.prefix):]
        return value

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        if value is None:
            return super().write(value, side, ctx)
        return super().write(self.params.prefix + str(value), side, ctx)


class SuffixParams(Params):
    suffix: str = Field(min_length=1)


class Suffix(Transform):
    name = "suffix"
    Parameters = SuffixParams
    params: SuffixParams

    def decode(self, value: Any, side: str, ctx: MappingContext) -> Any:
        if isinstance(value, str) and value.endswith(self.params.suffix):
            return value[: -len(self.params.suffix)]
        return value

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        if value is None:
            return super().write(value, side, ctx)
        return super().write(str(value) + self.params.suffix, side, ctx)


class _Reference(Transform):
    """People and groups: a lookup key on write, a dot-walk on ServiceNow reads."""

    ref_key: ClassVar[str] = ""
    walk: ClassVar[str] = ""        # ServiceNow dot-walked attribute
    jira_key: ClassVar[str] = ""    # attribute of the Jira object

    def read_fields(self, field: str, side: str) -> list[str]:
        return [f"{field}.{self.walk}"] if side == SERVICENOW else [field]

    def read(self, raw: Mapping[str, Any], field: str, side: str, ctx: MappingContext) -> Any:
        key = f"{field}.{self.walk}" if side == SERVICENOW else field
        if key not in raw:
            # What to_fields wrote ({"$user": email}) reads back as that email, so a
            # written record can be read without a vendor in between.
            if isinstance(raw.get(field), dict) and self.ref_key in raw[field]:
                key = field
            else:
                return MISSING
        value = raw[key]
        if isinstance(value, dict) and self.ref_key in value:
            value = value[self.ref_key]
        elif side == JIRA and isinstance(value, dict) and "value" not in value:
            found = value.get(self.jira_key)
            if not found and self.ref_key == USER_REF:
                # Reading "nobody" here would clear the person on the other side.
                who = value.get("displayName") or value.get("accountId") or value.get("name")
                raise ValueError(
                    f"user {who!r} shows no email address (hidden by profile visibility?);"
                    " people are matched by email, so the integration user must see it"
                )
            value = found or None
        value = unwrap(value)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        return {self.ref_key: value if value not in (None, "") else None}, []


class UserByEmail(_Reference):
    name = "user_by_email"
    ref_key = USER_REF
    walk = "email"
    jira_key = "emailAddress"


class GroupByName(_Reference):
    name = "group_by_name"
    ref_key = GROUP_REF
    walk = "name"
    jira_key = "name"


class DateTimeParams(Params):
    format: Literal["servicenow", "jira", "iso"]


def _table_api_shape(text: str) -> bool:
    """Is ``text`` shaped like the Table API's date-times (``2026-03-02 09:00:00``)?"""
    return (len(text) == 19 and text[10] == " " and text[4] == text[7] == "-"
            and text[13] == text[16] == ":" and text.isascii())


class DateTime(Transform):
    name = "datetime"
    Parameters = DateTimeParams
    params: DateTimeParams

    def read(self, raw: Mapping[str, Any], field: str, side: str, ctx: MappingContext) -> Any:
        if field not in raw:
            return MISSING
        value = raw[field]
        if value.__class__ is str and self.params.format == "servicenow" \
                and _table_api_shape(value) \
                and value[0] > " " and value[18] > " ":   # nothing decode would strip
            # decode's first case, without the calls around it (every record has two).
            try:
                return datetime.fromisoformat(value + "+00:00")
            except ValueError:
                pass   # decode says why
        return self.decode(value if value.__class__ is str and value else unwrap(value),
                           side, ctx)

    def decode(self, value: Any, side: str, ctx: MappingContext) -> Any:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        text = str(value).strip()
        try:
            if self.params.format == "servicenow":
                if _table_api_shape(text):
                    # The Table API's one shape, parsed without strptime's cost
                    # (a mapping hot path); any other text is strptime's to judge.
                    # The offset joins the text: one call instead of parse + replace
                    # (UTC all the same: ServiceNow's API speaks UTC).
                    return datetime.fromisoformat(text + "+00:00")
                return datetime.strptime(text, SN_DATETIME).replace(tzinfo=UTC)
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a {self.params.format} date-time: {text!r}") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        if value is None:
            return super().write(None, side, ctx)
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        losses = []
        if self.params.format == "servicenow":
            if moment.microsecond:
                losses.append(f"sub-second part dropped on {side}")
            return moment.strftime(SN_DATETIME), losses
        if self.params.format == "jira":
            if moment.microsecond % 1000:
                losses.append(f"sub-millisecond part dropped on {side}")
            stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
            return f"{stamp}.{moment.microsecond // 1000:03d}+0000", losses
        return moment.isoformat(), losses


class SelectOption(Transform):
    name = "select_option"

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        return (None if value in (None, "") else {"value": str(value)}), []


class NameObject(Transform):
    name = "name_object"

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        return (None if value in (None, "") else {"name": str(value)}), []


class Components(Transform):
    name = "components"

    def decode(self, value: Any, side: str, ctx: MappingContext) -> Any:
        if not isinstance(value, list):
            return unwrap(value)
        names = [unwrap(item) for item in value]
        names = [n for n in names if isinstance(n, str) and n]
        # The neutral category is one value; Jira keeps components in its own order.
        return names[0] if names else None

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        if value in (None, ""):
            return [], []
        values = value if isinstance(value, list) else [value]
        return [{"name": str(v)} for v in values], []


class LabelsParams(Params):
    exclude_prefix: tuple[str, ...] = ("snow-",)

    @field_validator("exclude_prefix", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


_WHITESPACE = re.compile(r"\s+")
# Jira refuses a label holding whitespace (any character Java or Python calls space).
_LABEL_UNSAFE = re.compile(r"[%\s]")
LABEL_LIMIT = 255  # characters in one Jira label


def encode_label_value(value: str) -> str:
    """``value`` as label text: '%' and whitespace percent-encoded as UTF-8 bytes.

    Reversible with :func:`decode_label_value` ("MS SQL Server" -> "MS%20SQL%20Server",
    "50%" -> "50%25"); everything else, unicode included, stays readable.
    """
    return _LABEL_UNSAFE.sub(
        lambda m: "".join(f"%{byte:02X}" for byte in m.group().encode("utf-8")), value)


def decode_label_value(text: str) -> str:
    """The value a label text encodes; a stray '%' typed by hand is kept as it is."""
    return unquote(text, errors="replace") if "%" in text else text


class Labels(Transform):
    name = "labels"
    Parameters = LabelsParams
    params: LabelsParams

    def _clean(self, labels: Any) -> list[str]:
        if not isinstance(labels, list):
            return []
        prefixes = tuple(p for p in self.params.exclude_prefix if p)
        kept = {str(label) for label in labels if isinstance(label, str) and label}
        return sorted(label for label in kept if not label.startswith(prefixes))

    def read(self, raw: Mapping[str, Any], field: str, side: str, ctx: MappingContext) -> Any:
        if field not in raw:
            return MISSING
        value = raw[field]
        if isinstance(value, str):  # a ServiceNow list field: comma separated
            value = [part.strip() for part in value.split(",")]
        return self._clean(value)

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        labels = list(value or [])
        losses = []
        # Jira rejects labels with spaces; underscores keep the words readable.
        cleaned = [_WHITESPACE.sub("_", label.strip()) for label in labels if label.strip()]
        if cleaned != [label for label in labels if label.strip()]:
            losses.append(f"spaces in labels replaced by '_' on {side}")
        result = self._clean(cleaned)
        dropped = sorted(set(cleaned) - set(result))
        if dropped:
            losses.append(f"labels with a reserved prefix (sync markers, other rows' labels)"
                          f" not written to {side}: {', '.join(dropped)}")
        if side == SERVICENOW:
            return ",".join(result), losses
        return result, losses


class LabelPrefixParams(Params):
    prefix: str = Field(min_length=1)

    @field_validator("prefix")
    @classmethod
    def _label_safe(cls, value: str) -> str:
        if _LABEL_UNSAFE.search(value):
            raise ValueError("a label prefix may not hold spaces or '%'")
        return value


class LabelPrefix(Transform):
    """One neutral scalar kept in the one Jira label that starts with ``prefix``.

    For fields a stock Jira project has no place for (the category: a new JSM
    project has no components). ``"network"`` <-> label ``category-network``;
    the value is encoded with :func:`encode_label_value` (labels hold no
    spaces). Of several labels with the prefix (added by hand), the first in
    sorted order is read; the next write leaves just one. The ``labels`` row
    must exclude the prefix, so the label is never a neutral label too.
    """

    name = "label_prefix"
    Parameters = LabelPrefixParams
    params: LabelPrefixParams

    def read(self, raw: Mapping[str, Any], field: str, side: str, ctx: MappingContext) -> Any:
        if field not in raw:
            return MISSING
        labels = raw[field]
        if isinstance(labels, str):  # a comma-separated list field
            labels = [part.strip() for part in labels.split(",")]
        if not isinstance(labels, list):
            return None  # as the labels row reads it: not a list holds no label
        prefix = self.params.prefix
        found = sorted(label for label in labels
                       if isinstance(label, str) and label.startswith(prefix)
                       and len(label) > len(prefix))
        return decode_label_value(found[0][len(prefix):]) if found else None

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        if value is None or str(value).strip() == "":
            return [], []
        text = str(value).strip()
        losses = [] if text == str(value) else [f"spaces around the value dropped on {side}"]
        prefix = self.params.prefix

        def measure(candidate: str) -> int:
            return len(prefix + encode_label_value(candidate))

        fitted = cut(text, LABEL_LIMIT, "…", measure)
        if fitted != text:
            losses.append(f"value cut to fit a {LABEL_LIMIT}-character label on {side}")
        return [prefix + encode_label_value(fitted)], losses


class IntString(Transform):
    name = "int_string"

    def read(self, raw: Mapping[str, Any], field: str, side: str, ctx: MappingContext) -> Any:
        if field not in raw:
            return MISSING
        value = raw[field]
        if value.__class__ is str and value:
            # Transform.read and decode for a plain string, in one call (a hot path).
            try:
                return int(value.strip())
            except ValueError:
                raise ValueError(f"not an integer: {value!r}") from None
        return self.decode(unwrap(value), side, ctx)

    def decode(self, value: Any, side: str, ctx: MappingContext) -> Any:
        if value is None:
            return None
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"not an integer: {value!r}") from None

    def write(self, value: Any, side: str, ctx: MappingContext) -> tuple[Any, list[str]]:
        if value is None:
            return ("" if side == SERVICENOW else None), []
        return str(int(value)), []


TRANSFORMS: dict[str, type[Transform]] = {
    cls.name: cls
    for cls in (
        RichText, Truncate, Prefix, Suffix, UserByEmail, GroupByName, DateTime,
        SelectOption, NameObject, Components, Labels, LabelPrefix, IntString,
    )
}


def make_transform(name: str | None, params: Mapping[str, Any]) -> Transform:
    """Build a transform; raises KeyError for an unknown name and
    pydantic.ValidationError for bad parameters."""
    if name is None:
        if params:
            raise ValueError(f"parameters {sorted(params)} need a transform")
        return Identity()
    cls = TRANSFORMS[name]
    return cls(cls.Parameters(**params))
