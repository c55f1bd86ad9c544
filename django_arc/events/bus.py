"""Publishing: the glue between writes and the outbox.

Writes never talk to the transport directly. :func:`emit` (resource core) and :func:`publish`
(domain code) send :data:`django_arc.signals.resource_event` inside the caller's transaction;
the outbox's receiver stores the event in that same transaction and the relay publishes it
after commit. That is what makes "no event for a rolled-back write" and "every committed event
is published at least once" hold together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ..exceptions import get_request_id
from ..settings import arc_settings
from ..signals import event_batch, resource_event
from .event import Event, EventJSONEncoder, create_event

ELEVATED_EVENT = "arc.scope.elevated"


# -- publishing ---------------------------------------------------------------------------------
def encode_payload(event: Event) -> tuple[Event, str]:
    """The payload as JSON, encoded once for the whole way out: this text is what the outbox
    stores and the relay splices onto the wire.

    Payloads from serializers carry ``Decimal``/``UUID``/``datetime``; the returned event holds
    their JSON form, so the outbox row, every transport and every redelivery see the same
    values (a ``Decimal`` would otherwise come back as ``str`` only after a round trip). A
    payload JSON cannot hold (``NaN``, NUL, lone surrogates) is refused here, on every backend.
    """
    encoder = EventJSONEncoder(separators=(",", ":"), ensure_ascii=False)
    try:
        text = encoder.encode(event.payload)
    except ValueError as exc:
        raise ValueError(f"event {event.type!r}: payload is not storable JSON: {exc}") from None
    return (replace(event, payload=json.loads(text)) if encoder.converted else event), text


def publish(event: Event, *, sender: Any = None) -> Event:
    """Hand ``event`` to the outbox inside the current transaction (or to whatever receivers
    of :data:`resource_event` the project configured). Returns the (JSON-normalised) event.

    A receiver's exception propagates: inside ``transaction.atomic`` it rolls the write back,
    which is the point — a write must not commit without its event.
    """
    if not isinstance(event, Event):
        raise TypeError(f"publish() expects an Event, got {type(event).__name__}")
    event, payload_json = encode_payload(event)
    resource_event.send(
        sender=sender if sender is not None else Event, event=event, payload_json=payload_json
    )
    return event


def publish_many(events: list[Event], *, sender: Any = None) -> list[Event]:
    """:func:`publish` for several events that belong together (one bulk write): each is
    still sent through :data:`resource_event`, inside one
    :func:`~django_arc.signals.event_batch`, so the outbox stores them with one INSERT."""
    with event_batch():
        return [publish(event, sender=sender) for event in events]


def _resource_name(resource: Any) -> str | None:
    if resource is None or isinstance(resource, str):
        return resource
    return getattr(resource, "name", None) or getattr(resource, "__name__", None) or str(resource)


def _actor(request: Any) -> tuple[str | None, str | None]:
    """``(user_id, organization_id)`` from ``request.arc_scope``, else the Django user. The
    middleware's provisional scope, no scope resolved since (a project's own Django view), is
    no answer: a session user's request carrying an ``Authorization`` header (a proxy's
    HTTP Basic) has the ``public`` one, which named no user."""
    scope = getattr(request, "arc_scope", None)
    if scope is not None and getattr(scope, "provisional", False) is not True:
        user_id = getattr(scope, "user_id", None)
        org_id = getattr(scope, "organization_id", None)
        return (
            None if user_id is None else str(user_id),
            None if org_id is None else str(org_id),
        )
    # an authenticated user of no pk is no person (a service key's ``ServiceUser`` in a
    # project's own DRF view): it names no user, not the string "None". Django's user is
    # lazy: reading ``is_authenticated`` loads it, so that read is inside the ``try`` too
    try:
        user = getattr(request, "user", None)
        pk = getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None
    except Exception:  # noqa: BLE001 - DRF re-authenticates lazily; never fail an emit on it
        pk = None
    return (None if pk is None else str(pk)), None


class EventKeys:
    """The idempotency keys of one keyed request's events: ``<scoped key>:<type>:<id>``
    (SPEC §10), and ``<scoped key>:<type>#<n>:<id>`` for the n-th event of the same type and
    row within the request (a route updating one row twice). A retry runs the same writes in
    the same order, so it gets the same keys and dedupes in the outbox; two events of one
    request never share a key, so neither is dropped as the other's repeat. The count sits
    beside the type, not after the id, where an id containing ``#`` could imitate it."""

    def __init__(self, scoped: str) -> None:
        self.scoped = scoped
        self._seen: dict[str, int] = {}

    def __call__(self, type: str, resource_id: str | None) -> str:
        key = f"{self.scoped}:{type}:{resource_id}"
        n = self._seen[key] = self._seen.get(key, 0) + 1
        return key if n == 1 else f"{self.scoped}:{type}#{n}:{resource_id}"


def _event_keys(django_request: Any) -> EventKeys | None:
    """The request's :class:`EventKeys`, one for the whole request; ``None`` unkeyed."""
    scoped = getattr(django_request, "arc_idempotency_key", None)
    if not scoped:
        return None
    keys = getattr(django_request, "arc_event_keys", None)
    if keys is None or keys.scoped != scoped:
        keys = django_request.arc_event_keys = EventKeys(scoped)
    return keys


def _shared_meta(
    request: Any, resource_name: str | None, aggregate: dict[str, Any] | None
) -> tuple[dict[str, Any], EventKeys | None]:
    """The meta every event of one write shares (source, resource, aggregate; with a request,
    its id as ``correlation_id`` and its user and organization), and the keys of the
    request's events when it carries an ``Idempotency-Key`` (else ``None``)."""
    meta: dict[str, Any] = {
        "source": arc_settings.EVENTS.get("SOURCE"),
        "resource": resource_name,
        "aggregate": aggregate,
    }
    keys = None
    if request is not None:
        meta["correlation_id"] = get_request_id(request)
        meta["user_id"], meta["organization_id"] = _actor(request)
        keys = _event_keys(getattr(request, "_request", request))
    return meta, keys


def _row_event(
    type: str,
    payload: dict[str, Any] | None,
    shared: dict[str, Any],
    keys: EventKeys | None,
    resource_id: Any,
    partition_key: str | None = None,
) -> Event:
    """The event of one row: ``shared`` plus the row's id, ``partition_key`` (by default
    ``"<resource>:<id>"``) and idempotency key (see :class:`EventKeys`)."""
    rid = None if resource_id is None else str(resource_id)
    meta = dict(shared)
    meta["resource_id"] = rid
    resource_name = shared["resource"]
    if partition_key is None and (resource_name is not None or rid is not None):
        partition_key = f"{resource_name}:{rid}"
    meta["partition_key"] = partition_key
    if keys is not None:
        meta["idempotency_key"] = keys(type, rid)
    return create_event(type, payload or {}, **meta)


def emit(
    type: str,
    payload: dict[str, Any] | None = None,
    *,
    request: Any = None,
    resource: Any = None,
    resource_id: Any = None,
    aggregate: dict[str, Any] | None = None,
    partition_key: str | None = None,
    sender: Any = None,
) -> Event:
    """Build an event with meta taken from ``request`` and publish it; returns the event.

    The resource core calls this inside every write's transaction. Meta: ``correlation_id``
    is the request id (``X-Request-Id`` when well-formed), user/org come from the request's
    scope, ``partition_key`` defaults to ``"<resource>:<id>"`` (FIFO per object), and a
    request's ``Idempotency-Key`` becomes ``"<scoped key>:<type>:<resource id>"``: stable
    across retries of the request, distinct for each event one request emits.
    """
    resource_name = _resource_name(resource)
    shared, keys = _shared_meta(request, resource_name, aggregate)
    event = _row_event(type, payload, shared, keys, resource_id, partition_key)
    return publish(event, sender=sender if sender is not None else resource)


def emit_many(
    type: str,
    rows: Iterable[tuple[Any, dict[str, Any] | None]],
    *,
    request: Any = None,
    resource: Any = None,
    sender: Any = None,
) -> list[Event]:
    """:func:`emit` for the rows of one bulk write: one event per ``(resource_id,
    payload)`` of ``rows``, each with the meta :func:`emit` would give it — its own id,
    partition key and idempotency key suffix — published inside one
    :func:`~django_arc.signals.event_batch` (one outbox INSERT). What the rows share is
    read from ``request`` once, not once per row. Returns the events, in order."""
    resource_name = _resource_name(resource)
    shared, keys = _shared_meta(request, resource_name, None)
    sender = sender if sender is not None else resource
    with event_batch():
        return [
            publish(_row_event(type, payload, shared, keys, resource_id), sender=sender)
            for resource_id, payload in rows
        ]


# -- scope elevation ----------------------------------------------------------------------------
def _storable(value: Any) -> str | None:
    """A request value the elevation event records (the path, the organization header), as
    text JSON can store: a NUL (``/products/%00/``, a header carrying one) as U+FFFD, which
    the payload's encoder would otherwise refuse — a 500 for a request that is the 404 or
    403 it is without elevation."""
    return None if value is None else str(value).replace("\x00", "\N{REPLACEMENT CHARACTER}")


def on_scope_elevated(sender: Any, request: Any = None, scope: Any = None, **kwargs: Any) -> None:
    """Receiver of ``scope_elevated`` (connected in ``ArcConfig.ready()``): every elevation
    leaves an ``arc.scope.elevated`` event, whatever the resource's event settings:
    platform-admin access to a tenant must be auditable.

    Failure propagates (fail closed): an elevated request that cannot be recorded does not
    proceed.
    """
    user_id = getattr(scope, "user_id", None)
    org_id = getattr(scope, "organization_id", None)
    if user_id is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            user_id = user.pk
    payload = {
        "user_id": None if user_id is None else str(user_id),
        "organization_id": _storable(org_id),
        "method": _storable(getattr(request, "method", None)),
        "path": _storable(getattr(request, "path", None)),
    }
    event = create_event(
        ELEVATED_EVENT,
        payload,
        correlation_id=get_request_id(request) if request is not None else None,
        user_id=payload["user_id"],
        organization_id=payload["organization_id"],
        source=arc_settings.EVENTS.get("SOURCE"),
        partition_key=f"{ELEVATED_EVENT}:{payload['user_id']}",
    )
    publish(event, sender=sender)
