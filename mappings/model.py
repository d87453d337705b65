"""The neutral, vendor-free ITIL incident.

Contract:
- :class:`Incident` holds every field of the neutral model (docs/architecture.md); nothing in it
  names a vendor. Connectors never see it; mappings build it from raw vendor
  records and turn it back into vendor fields.
- Enumerations are ``IntEnum``/``StrEnum`` so they compare with plain values
  read from TOML or JSON (``Status("resolved")``, ``Impact(1)``).
- :func:`itil_priority` is the ITIL impact x urgency matrix (ServiceNow's default
  priority lookup) as one pure function.
- :func:`content_hash` is a stable digest of what the sync cares about: it
  ignores volatile stamps (``updated_at``) and the order of comments and labels,
  so two incidents that would write the same thing hash the same.
- Invalid values raise :class:`pydantic.ValidationError`; :func:`describe_error`
  renders one as ``field: reason (got value)`` lines.
- The model's enums read ``member.value`` with a getter made in C
  (:data:`MEMBER_VALUE`): the same value as enum's own descriptor, read faster.
- :func:`revalidates` tells whether an incident's JSON dump validates back to
  the same dump (it does unless a person field only became refusable by the
  check's own strip).
- :func:`construct_trusted` and :func:`copy_updated` are pydantic's
  ``model_construct`` / ``model_copy(update=...)`` (same instance, same fields
  set) for values the caller built valid itself, without the generic paths'
  cost (the rules' hot path makes notes and copies for most incidents). They
  skip validation exactly as those do: never for values read from outside.
"""

from __future__ import annotations

import hashlib
import json
import operator
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class Status(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELED = "canceled"

    @property
    def is_open(self) -> bool:
        return self in (Status.NEW, Status.IN_PROGRESS, Status.ON_HOLD)


class Impact(IntEnum):
    HIGH = 1
    MEDIUM = 2
    LOW = 3


class Urgency(IntEnum):
    HIGH = 1
    MEDIUM = 2
    LOW = 3


class Priority(IntEnum):
    CRITICAL = 1
    HIGH = 2
    MODERATE = 3
    LOW = 4
    PLANNING = 5


class Escalation(IntEnum):
    NORMAL = 0
    MODERATE = 1
    HIGH = 2
    OVERDUE = 3


class Visibility(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


# ``member.value`` through enum's own descriptor is two Python calls per read
# (``enum.property.__get__``, then the getter it holds), and pydantic reads it for
# every enum field of every dump: ~60 reads per synced record, ~4 % of a run's CPU.
# The model's enums read the same attribute with a getter made in C: the same object,
# for the price of a plain attribute. Only reading a member changes; ``Status.value``
# on the class named no member before (AttributeError) and names none now either
# (the getter itself).
MEMBER_VALUE = property(operator.attrgetter("_value_"), doc="The member's value.")
MODEL_ENUMS = (Status, Impact, Urgency, Priority, Escalation, Visibility)
for _enum in MODEL_ENUMS:
    _enum.value = MEMBER_VALUE  # type: ignore[method-assign,assignment]


# ServiceNow's default priority data lookup (docs/vendor-notes.md), rows impact 1..3,
# columns urgency 1..3. Kept as data so the matrix reads like the documentation.
_PRIORITY_MATRIX: dict[tuple[int, int], int] = {
    (1, 1): 1, (1, 2): 2, (1, 3): 3,
    (2, 1): 2, (2, 2): 3, (2, 3): 4,
    (3, 1): 3, (3, 2): 4, (3, 3): 5,
}  # fmt: skip


def itil_priority(impact: Impact | int, urgency: Urgency | int) -> Priority:
    """Priority from impact x urgency by the ITIL matrix (1/1 -> 1 ... 3/3 -> 5)."""
    try:
        return Priority(_PRIORITY_MATRIX[(int(impact), int(urgency))])
    except KeyError:
        raise ValueError(
            f"impact x urgency: no priority for impact={impact!r}, urgency={urgency!r}"
        ) from None


def _aware(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC: both vendors store UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Comment(BaseModel):
    """One journal entry. ``id`` is the neutral id, ``<side>:<vendor id>`` of its origin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    author: str = ""
    body: str = ""
    created: datetime
    # Fail closed: a comment whose visibility nobody stated is internal, so an
    # internal note can never become customer-visible by omission.
    visibility: Visibility = Visibility.INTERNAL

    _aware_created = field_validator("created")(lambda cls, v: _aware(v))


class Incident(BaseModel):
    """An ITIL incident, free of any vendor's vocabulary."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    title: str = ""
    description: str = ""
    status: Status = Status.NEW
    impact: Impact = Impact.MEDIUM
    urgency: Urgency = Urgency.MEDIUM
    priority: Priority | None = None
    category: str | None = None
    subcategory: str | None = None
    assignment_group: str | None = None
    assignee: str | None = None
    caller: str | None = None
    resolution_code: str | None = None
    resolution_notes: str | None = None
    escalation: Escalation = Escalation.NORMAL
    labels: list[str] = Field(default_factory=list)
    opened_at: datetime | None = None
    updated_at: datetime | None = None
    resolved_at: datetime | None = None
    comments: list[Comment] = Field(default_factory=list)
    custom: dict[str, Any] = Field(default_factory=dict)

    _aware_dates = field_validator("opened_at", "updated_at", "resolved_at")(
        lambda cls, v: _aware(v)
    )

    @field_validator("assignee", "caller")
    @classmethod
    def _email_like(cls, value: str | None) -> str | None:
        # People are identified by email across tools; anything else cannot be
        # looked up on the other side, so reject it early with the value shown.
        if value in (None, ""):
            return None
        if "@" not in value or value.startswith("@") or value.endswith("@"):
            raise ValueError(f"not an email address: {value!r}")
        return value.strip().lower()

    @property
    def effective_priority(self) -> Priority:
        """The priority set (by a rule or a vendor), else the ITIL matrix's."""
        return self.priority if self.priority is not None else itil_priority(
            self.impact, self.urgency
        )


# Fields that change on every write without the incident's content changing.
VOLATILE_FIELDS: frozenset[str] = frozenset({"updated_at"})


def canonical(incident: Incident) -> dict[str, Any]:
    """A JSON-ready, order-independent projection used for hashing and snapshots."""
    data = incident.model_dump(mode="json", exclude=set(VOLATILE_FIELDS))
    data["labels"] = sorted(set(data["labels"]))
    data["comments"] = sorted(data["comments"], key=lambda c: c["id"])
    return data


def revalidates(incident: Incident) -> bool:
    """Does the JSON dump of ``incident``, a validated incident, validate again to an
    incident with the same dump (where validating it again could refuse it: False)?

    True unless a person field holds an address that only the check's own strip
    made start or end with "@" (``" @example.com"`` became ``"@example.com"``),
    which the check refuses when it sees it again. Every other value reads back
    from its JSON as it was: the enums from their values, the times from their
    ISO text with its offset, addresses already stripped and lower case, the
    rest (texts, labels, comments, custom values) as JSON holds it.
    """
    for value in (incident.assignee, incident.caller):
        if value is not None and (value.startswith("@") or value.endswith("@")):
            return False
    return True


def content_hash(incident: Incident) -> str:
    """SHA-256 of :func:`canonical`; equal for incidents that differ only in volatiles."""
    payload = json.dumps(canonical(incident), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def describe_error(error: ValidationError) -> list[str]:
    """One ``field: reason (got value)`` line per validation error."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "incident"
        lines.append(f"{where}: {item['msg']} (got {item.get('input')!r})")
    return lines


_Model = TypeVar("_Model", bound=BaseModel)
_set = object.__setattr__


def _plain(cls: type[BaseModel]) -> bool:
    """Does ``model_construct``/``model_copy`` only set the four instance slots for
    ``cls`` (no private attributes, no post-init hook, no root model, no extras)?"""
    return (not cls.__private_attributes__ and not cls.__pydantic_post_init__
            and not cls.__pydantic_root_model__ and cls.model_config.get("extra") != "allow")


_PLAIN: dict[type[BaseModel], frozenset[str] | None] = {}


def _fields_if_plain(cls: type[BaseModel]) -> frozenset[str] | None:
    try:
        return _PLAIN[cls]
    except KeyError:
        found = _PLAIN[cls] = frozenset(cls.model_fields) if _plain(cls) else None
        return found


def construct_trusted(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """``cls.model_construct(**values)``: no validation, so only for values built valid.

    ``values`` names every field, in the model's field order; anything else (or a
    model with private attributes or hooks) takes pydantic's own path.
    """
    fields = _fields_if_plain(cls)
    if fields is None or values.keys() != fields:
        return cls.model_construct(**values)
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(fields))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def copy_updated(model: _Model, update: dict[str, Any]) -> _Model:
    """``model.model_copy(update=update)``: a shallow copy with ``update``'s field
    values, not validated (only for values built valid), the fields marked set."""
    cls = type(model)
    if (_fields_if_plain(cls) is None or model.__pydantic_extra__ is not None
            or model.__pydantic_private__ is not None):
        return model.model_copy(update=update)
    copied = cls.__new__(cls)
    values = model.__dict__.copy()
    values.update(update)
    fields_set = set(model.__pydantic_fields_set__)
    fields_set.update(update)
    _set(copied, "__dict__", values)
    _set(copied, "__pydantic_extra__", None)
    _set(copied, "__pydantic_fields_set__", fields_set)
    _set(copied, "__pydantic_private__", None)
    return copied
