"""The event envelope: ``Event(type, payload, meta)`` with arc 2.9's meta fields, and the
``DeadLetteredEvent`` a subscriber leaves behind when it gives up on one."""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from json import JSONEncoder
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder


class EventJSONEncoder(DjangoJSONEncoder):
    """How events become JSON everywhere (publish, outbox columns, transports).

    ``DjangoJSONEncoder`` (``Decimal``, ``UUID``, dates) that refuses what PostgreSQL's
    ``jsonb`` refuses — ``NaN``/``Infinity`` (not JSON at all), NUL characters and lone
    surrogates (not UTF-8) — with a ``ValueError`` on every backend and before any SQL is
    sent, instead of an event that stores on SQLite, fails on PostgreSQL and aborts the
    caller's transaction there. ``converted`` says whether ``default()`` had to turn a value
    into JSON.

    A float Python writes with a positive exponent (``1e+16`` and up) is written out in
    positional notation with a decimal point (``10000000000000000.0``): ``jsonb`` keeps a
    number's digits and scale but not its exponent, so ``1e+16`` would come back from an outbox
    or audit row as the integer ``10000000000000000`` (a float column's value turned into an
    int in every event and audit entry read from PostgreSQL), while ``10000000000000000.0``
    comes back as the float it was, on every backend and on the wire.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_nan"] = False
        super().__init__(*args, **kwargs)
        self.converted = False

    def default(self, o: Any) -> Any:
        self.converted = True
        return super().default(o)

    def encode(self, o: Any) -> str:
        text = super().encode(o)
        # NUL always comes out escaped ("\u0000"); a lone surrogate comes out escaped
        # ("\udXXX") with ensure_ascii and raw without it. Only then is the value walked (an
        # escaped backslash before "u0000", or an emoji's surrogate pair, is fine).
        if self.ensure_ascii:
            suspicious = "\\u0000" in text or "\\ud" in text
        else:
            suspicious = "\\u0000" in text or _SURROGATE.search(text) is not None
        if suspicious and (char := unstorable_char(o)):
            raise ValueError(f"{_describe_char(char)} cannot be stored as JSON")
        # only a float's repr has "e+" outside a string; a string's "e+" costs one walk
        if "e+" in text:
            text = _positional_floats(self, o, text)
        return text


def _positional_floats(encoder: JSONEncoder, value: Any, text: str) -> str:
    """``text`` (``value`` encoded by ``encoder``) with every float written in exponent
    notation spelled out in positional notation instead (see :class:`EventJSONEncoder`).
    Such floats are swapped for placeholder strings no other string of the text contains,
    encoded again, and the placeholders replaced by the numbers' positional text."""
    numbers: list[str] = []
    token = uuid.uuid4().hex
    while token in text:  # pragma: no cover - a 128-bit collision
        token = uuid.uuid4().hex

    def swap(item: Any) -> Any:
        if isinstance(item, float):
            spelled = float.__repr__(item)
            if "e+" not in spelled:
                return item
            numbers.append(format(Decimal(spelled), "f") + ".0")
            return f"{token}{len(numbers) - 1}"
        if isinstance(item, dict):
            return {key: swap(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [swap(inner) for inner in item]
        return item

    swapped = swap(value)
    if not numbers:
        return text
    again = JSONEncoder.encode(encoder, swapped)
    return re.sub(f'"{token}(\\d+)"', lambda m: numbers[int(m[1])], again)


#: one encoder for :func:`dumps` (its ``converted`` flag is not read there)
_compact = EventJSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """``value`` as compact JSON the way events and the rows stored beside them (outbox,
    audit) hold it: :class:`EventJSONEncoder`, refusing what ``jsonb`` cannot store."""
    return _compact.encode(value)


def changed_fields(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Only what changed between two renderings of a row: the whole row on create
    (``before`` None) and delete (``after`` None), the differing fields otherwise, each as
    ``(before, after)``. Fields are compared as JSON values (:func:`same_json_value`)."""
    if before is None or after is None:
        return before, after
    keys = [
        k for k in after.keys() | before.keys() if not same_json_value(before.get(k), after.get(k))
    ]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def same_json_value(a: Any, b: Any) -> bool:
    """Whether two rendered values are one JSON value. Python's ``==`` takes ``True`` for
    ``1`` and ``False`` for ``0`` (and ``{"on": True}`` for ``{"on": 1}``), so a JSON field
    whose ``true`` became ``1`` was reported unchanged; here a boolean equals only a boolean,
    at any depth. ``1`` and ``1.0`` stay one number, as they are in JSON."""
    return a == b and _same_kinds(a, b)


def _same_kinds(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, dict):  # a == b: b is a mapping with the same keys
        return all(_same_kinds(value, b[key]) for key, value in a.items())
    if isinstance(a, (list, tuple)):
        return all(_same_kinds(x, y) for x, y in zip(a, b, strict=True))
    return True


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable_char(value: Any) -> str | None:
    """The first character of a JSON-like value (keys included) that PostgreSQL's ``jsonb``
    cannot store: NUL, or a lone surrogate (a Python ``str`` holds a pair as one character,
    so any surrogate in it is lone and not encodable as UTF-8)."""
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        return found.group() if found else None
    if isinstance(value, dict):
        items: Any = (x for kv in value.items() for x in kv)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return None
    for item in items:
        if char := unstorable_char(item):
            return char
    return None


def _describe_char(char: str) -> str:
    return "a NUL character" if char == "\x00" else f"the lone surrogate U+{ord(char):04X}"


def _now() -> datetime:
    """Now, to the millisecond: arc's timestamps are JavaScript ``Date`` s, which hold no
    more, so an event that crosses the wire comes back equal to the one that was sent."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class EventMeta:
    """Routing and tracing data for an event; every field except ``id``/``timestamp`` optional.

    ``correlation_id`` ties together everything one request caused; ``causation_id`` is the id
    of the event that directly caused this one; ``idempotency_key`` lets the outbox drop a
    retried request's duplicate; ``partition_key`` orders delivery (FIFO per key per worker).
    """

    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: datetime = field(default_factory=_now)
    schema_version: int = 1
    correlation_id: str | None = None
    causation_id: str | None = None
    partition_key: str | None = None
    source: str | None = None
    idempotency_key: str | None = None
    resource: str | None = None
    resource_id: str | None = None
    user_id: str | None = None
    organization_id: str | None = None
    aggregate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["timestamp"] = self.timestamp.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventMeta:
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        if data.keys() <= _META_FIELD_NAMES:
            values = dict(data)
        else:
            values = {k: v for k, v in data.items() if k in _META_FIELD_NAMES}
        ts = values.get("timestamp")
        if isinstance(ts, str):
            values["timestamp"] = datetime.fromisoformat(ts)
        return cls(**values)


_META_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(EventMeta))


@dataclass(frozen=True)
class Event:
    """A domain event. ``type`` is dotted (``products.created``); ``payload`` is JSON-able."""

    type: str
    payload: dict[str, Any]
    meta: EventMeta = field(default_factory=EventMeta)

    @property
    def id(self) -> str:
        return self.meta.id

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "payload": self.payload, "meta": self.meta.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            type=data["type"],
            payload=data.get("payload") or {},
            meta=EventMeta.from_dict(data.get("meta") or {}),
        )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def create_event(type: str, payload: dict[str, Any] | None = None, **meta: Any) -> Event:
    """Build an event; ``meta`` keywords are :class:`EventMeta` fields.

    Ids (resource, user, organization) are normalised to strings so the wire form does not
    depend on the primary-key type.
    """
    for key in ("resource_id", "user_id", "organization_id"):
        if key in meta:
            meta[key] = _str_or_none(meta[key])
    return Event(type=type, payload=payload or {}, meta=EventMeta(**meta))


def create_child_event(
    parent: Event, type: str, payload: dict[str, Any] | None = None, **meta: Any
) -> Event:
    """An event caused by ``parent``: same correlation id, source and idempotency key,
    ``causation_id`` = parent id; the aggregate is *not* inherited (arc 2.9 semantics)."""
    inherited = {
        "correlation_id": parent.meta.correlation_id or parent.meta.id,
        "causation_id": parent.meta.id,
        "source": parent.meta.source,
        "idempotency_key": parent.meta.idempotency_key,
    }
    inherited.update(meta)
    return create_event(type, payload, **inherited)


@dataclass(frozen=True)
class DeadLetteredEvent:
    """An event a subscriber gave up on, with enough context to replay or diagnose it.

    ``error`` is ``"ExceptionType: message"`` (a string, so the record survives serialisation
    to a Redis stream); ``attempts`` counts every call of the handler, the first one included.
    ``failed_at`` is the last failure, ``first_failed_at`` the first (arc's ``firstFailedAt``;
    the same as ``failed_at`` when unknown).
    """

    event: Event
    error: str
    attempts: int
    handler_name: str
    failed_at: datetime = field(default_factory=_now)
    traceback: str = ""
    first_failed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.to_dict(),
            "error": self.error,
            "attempts": self.attempts,
            "handler_name": self.handler_name,
            "failed_at": self.failed_at.isoformat(),
            "traceback": self.traceback,
            "first_failed_at": (self.first_failed_at or self.failed_at).isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetteredEvent:
        failed_at = data.get("failed_at")
        first = data.get("first_failed_at")
        return cls(
            event=Event.from_dict(data["event"]),
            error=str(data.get("error", "")),
            attempts=int(data.get("attempts", 0)),
            handler_name=str(data.get("handler_name", "")),
            failed_at=datetime.fromisoformat(failed_at) if failed_at else _now(),
            traceback=str(data.get("traceback", "")),
            first_failed_at=datetime.fromisoformat(first) if first else None,
        )
