"""What a mapping needs to know about the live site: :class:`MappingContext`.

Contract: plain data, validated on construction, importing nothing else of
``mappings``; the profile and the transforms can name it without depending on
the mapper that uses them (no import cycle). :mod:`mappings.mapper` re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

_TEXT_FORMATS = ("plain", "adf", "wiki")


@dataclass(frozen=True)
class MappingContext:
    """What a mapping needs to know about the live site, from the connector.

    ``text_format``: how Jira rich text travels ("adf" on Cloud v3, "wiki" on
    v2, "plain" for none). ``field_ids``: Jira field name -> id. ``origin``: the
    other record's name ("Jira OPS-12"), used in fallback texts such as the
    default resolution notes.
    """

    text_format: str = "plain"
    field_ids: Mapping[str, str] = field(default_factory=dict)
    origin: str = ""

    def __post_init__(self) -> None:
        if self.text_format not in _TEXT_FORMATS:
            raise ValueError(
                f"text_format must be one of {', '.join(_TEXT_FORMATS)} (got {self.text_format!r})"
            )
