"""arc 2.9.1's wire format: how an event is written to, and read from, Redis.

An arc Node service and a django-arc service sharing one Redis must read each other's
events, so this module writes exactly what arc's ``RedisStreamTransport`` and
``RedisEventTransport`` write (the envelope ``JSON.stringify(event)`` produces: ``type``,
``payload``, ``meta`` with camelCase keys, ``timestamp`` as ``Date.toISOString()``, absent
fields left out) and reads what they read. Python code never sees the camelCase spelling:
:func:`decode` returns an :class:`~django_arc.events.event.Event` with snake_case attributes.

The relay splices the payload JSON stored in the outbox into the envelope as it is
(:func:`splice`), so a payload is encoded once on its way from the write to Redis.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from .event import DeadLetteredEvent, Event, EventMeta

#: ``EventMeta`` attribute → arc's key, in the order of arc's ``EventMeta`` interface.
META_KEYS: dict[str, str] = {
    "id": "id",
    "timestamp": "timestamp",
    "schema_version": "schemaVersion",
    "correlation_id": "correlationId",
    "causation_id": "causationId",
    "partition_key": "partitionKey",
    "resource": "resource",
    "resource_id": "resourceId",
    "user_id": "userId",
    "organization_id": "organizationId",
    "source": "source",
    "idempotency_key": "idempotencyKey",
    "aggregate": "aggregate",
}
_ATTRS = {wire: attr for attr, wire in META_KEYS.items()}

_META_ITEMS = tuple(META_KEYS.items())
_encoder = DjangoJSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class WireError(ValueError):
    """Raised for data that is not an arc event; the message is the reason, for dead letters."""


def dumps(value: Any) -> str:
    """Compact JSON as ``JSON.stringify`` writes it (no spaces, non-ASCII unescaped);
    ``NaN`` and ``Infinity`` are refused with a ``ValueError`` (they are not JSON). NUL is
    fine on the wire (only PostgreSQL's ``jsonb`` refuses it, which ``publish`` checks); a
    lone surrogate fails when the text is encoded as UTF-8 for Redis."""
    return _encoder.encode(value)


def format_timestamp(value: datetime) -> str:
    """``Date.prototype.toISOString()``: UTC, milliseconds, ``Z`` (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 string (arc's ``...sssZ`` or Python's ``isoformat()``) as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise WireError(f"meta.timestamp {value!r} is not an ISO 8601 date") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        # written back in UTC (format_timestamp): an instant no UTC date holds could be read
        # but never published again nor dead-lettered
        parsed.astimezone(UTC)
    except OverflowError:
        raise WireError(f"meta.timestamp {value!r} is out of the dates UTC holds") from None
    return parsed


def meta_to_wire(meta: EventMeta) -> dict[str, Any]:
    """arc's ``meta`` object: camelCase keys, ``id`` and ``timestamp`` first, ``None`` left
    out (``JSON.stringify`` drops ``undefined``)."""
    out: dict[str, Any] = {"id": meta.id, "timestamp": format_timestamp(meta.timestamp)}
    for attr, key in _META_ITEMS[2:]:
        value = getattr(meta, attr)
        if value is not None:
            out[key] = value
    return out


def iso_to_wire(value: str) -> str:
    """A stored ``isoformat()`` timestamp as ``toISOString()`` text, without building a
    datetime for the usual UTC-with-microseconds form."""
    if len(value) == 32 and value[19] == "." and value.endswith("+00:00"):
        return value[:23] + "Z"
    return format_timestamp(parse_timestamp(value))


def meta_dict_to_wire(data: dict[str, Any]) -> dict[str, Any]:
    """arc's ``meta`` object from the ``EventMeta.to_dict()`` form (snake_case keys, ISO
    timestamp string): what the relay publishes for an outbox row without building an
    ``EventMeta``. Unknown keys are left out, like unset ones."""
    out = {}
    for attr, key in _META_ITEMS:
        value = data.get(attr)
        if value is not None:
            out[key] = value
    out.setdefault("schemaVersion", 1)
    timestamp = out.get("timestamp")
    if not isinstance(timestamp, str):
        raise WireError("meta.timestamp is missing or not an ISO 8601 string")
    out["timestamp"] = iso_to_wire(timestamp)
    return out


def meta_from_wire(data: dict[str, Any]) -> EventMeta:
    """``EventMeta`` from arc's ``meta`` object; keys arc 2.9.1 does not define are ignored."""
    values = {_ATTRS[key]: value for key, value in data.items() if key in _ATTRS}
    if not values.get("id"):
        raise WireError("meta.id is missing")
    values["id"] = str(values["id"])
    timestamp = values.get("timestamp")
    if timestamp is None:
        values.pop("timestamp", None)
    elif isinstance(timestamp, str):
        values["timestamp"] = parse_timestamp(timestamp)
    elif not isinstance(timestamp, datetime):
        raise WireError(f"meta.timestamp {timestamp!r} is not an ISO 8601 string")
    version = values.get("schema_version")
    if version is None:
        values.pop("schema_version", None)
    elif isinstance(version, bool) or not isinstance(version, int | float):
        raise WireError(f"meta.schemaVersion {version!r} is not a number")
    aggregate = values.get("aggregate")
    if aggregate is not None and not isinstance(aggregate, dict):
        raise WireError("meta.aggregate is not an object")
    return EventMeta(**values)


def to_wire(event: Event) -> dict[str, Any]:
    """The ``DomainEvent`` object arc builds: ``{type, payload, meta}`` in that order."""
    return {"type": event.type, "payload": event.payload, "meta": meta_to_wire(event.meta)}


def encode(event: Event) -> str:
    """``JSON.stringify(event)``: the ``data`` field of a stream entry, the message of a
    pub/sub channel."""
    return dumps(to_wire(event))


def encoded(event: Event) -> str:
    """:func:`encode`, except for an event that carries its payload's stored JSON
    (:func:`with_payload_json`): that text is spliced in, not re-encoded."""
    payload_json = event.__dict__.get("_payload_json")
    if payload_json is None:
        return encode(event)
    return splice(event.type, payload_json, dumps(meta_to_wire(event.meta)))


def with_payload_json(event: Event, payload_json: str) -> Event:
    """Attach the JSON text ``event.payload`` was decoded from (an outbox row's column), for
    :func:`encoded`. Only transports that write JSON use it, so the relay pays for the splice
    only when publishing to Redis. ``dataclasses.replace`` drops it: a changed event is
    encoded afresh."""
    object.__setattr__(event, "_payload_json", payload_json)
    return event


def from_wire(data: Any) -> Event:
    """An :class:`Event` from a decoded envelope; :class:`WireError` says what is wrong.

    The checks are arc's (``type`` a string, ``meta.id`` present) plus a ``meta`` that is an
    object; the payload may be any JSON value, as in arc (missing means ``{}``).
    """
    if not isinstance(data, dict):
        raise WireError("data is not a JSON object")
    event_type = data.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise WireError("data.type is missing or not a string")
    meta = data.get("meta")
    if not isinstance(meta, dict):
        raise WireError("data.meta is missing or not an object")
    payload = data["payload"] if "payload" in data else {}
    return Event(type=event_type, payload=payload, meta=meta_from_wire(meta))


def decode(raw: str | bytes) -> Event:
    """Read what :func:`encode` (or arc's ``JSON.stringify(event)``) wrote."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"data is not UTF-8: {exc}") from None
    try:
        data = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except WireError:
        raise
    except ValueError as exc:
        raise WireError(f"data is not JSON: {exc}") from None
    except RecursionError:
        # no ValueError: raised out of a consumer, the entry was never acknowledged
        raise WireError("data is not JSON: nested too deep to read") from None
    if _SURROGATE_ESCAPE.search(raw) and (char := _lone_surrogate(data)):
        raise WireError(f"data holds the lone surrogate U+{ord(char):04X}, which is not UTF-8")
    return from_wire(data)


#: a JSON escape of a UTF-16 surrogate (``\ud800``): a pair decodes to one character, a
#: lone one stays a surrogate, which no UTF-8 holds
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _not_json(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python's ``json`` reads (and its
    ``dumps`` writes by default) but JSON has not: an event holding one could be neither
    published again nor dead-lettered (:func:`dumps` refuses it), and came back on every
    reclaim of its entry."""
    raise WireError(f"data is not JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    """A JSON number as a float, refused past a float's range (``1e999``, read as an
    infinity, which :func:`dumps` refuses as it refuses ``Infinity``)."""
    value = float(text)
    if math.isinf(value):
        raise WireError(f"data is not JSON: {text} is past a number's range")
    return value


def _lone_surrogate(value: Any) -> str | None:
    """A lone surrogate in a decoded JSON value (keys included), if any.

    Walked with a list, not by recursion: from Python 3.12 ``json`` reads values nested
    deeper than the interpreter's recursion limit (its C parser counts against a limit of
    its own), and a recursive walk of one raised ``RecursionError`` out of :func:`decode`,
    out of a consumer, which neither acknowledged nor dead-lettered the entry."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if found := _SURROGATE.search(item):
                return found.group()
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def splice(event_type: str, payload_json: str, meta_json: str) -> str:
    """The envelope built from JSON texts already encoded (the outbox's columns): the same
    JSON value as :func:`encode`, without decoding or re-encoding payload and meta."""
    return f'{{"type":{dumps(event_type)},"payload":{payload_json},"meta":{meta_json}}}'


def dead_letter_to_wire(dead: DeadLetteredEvent) -> dict[str, Any]:
    """arc's ``DeadLetteredEvent`` object (``EventTransport.ts``): the event, ``error``
    ``{message, stack}``, ``attempts``, ``firstFailedAt``, ``lastFailedAt``, ``handlerName``."""
    error: dict[str, Any] = {"message": dead.error}
    if dead.traceback:
        error["stack"] = dead.traceback
    return {
        "event": to_wire(dead.event),
        "error": error,
        "attempts": dead.attempts,
        "firstFailedAt": format_timestamp(dead.first_failed_at or dead.failed_at),
        "lastFailedAt": format_timestamp(dead.failed_at),
        "handlerName": dead.handler_name,
    }


def dead_letter_from_wire(data: Any) -> DeadLetteredEvent:
    """The inverse of :func:`dead_letter_to_wire`."""
    if not isinstance(data, dict):
        raise WireError("dead letter is not a JSON object")
    error = data.get("error")
    message = error.get("message", "") if isinstance(error, dict) else str(error or "")
    stack = error.get("stack", "") if isinstance(error, dict) else ""
    last = data.get("lastFailedAt")
    first = data.get("firstFailedAt")
    return DeadLetteredEvent(
        event=from_wire(data.get("event")),
        error=str(message),
        attempts=int(data.get("attempts") or 0),
        handler_name=str(data.get("handlerName") or ""),
        failed_at=parse_timestamp(last) if isinstance(last, str) else datetime.now(UTC),
        traceback=str(stack or ""),
        first_failed_at=parse_timestamp(first) if isinstance(first, str) else None,
    )
