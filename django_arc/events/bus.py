"""Publishing and subscribing: the glue between resources, the outbox and the transport.

Writes never talk to the transport directly. :func:`emit` (resource core) and :func:`publish`
(domain code) send :data:`django_arc.signals.resource_event` inside the caller's transaction;
the outbox's receiver stores the event in that same transaction and the relay publishes it
after commit. That is what makes "no event for a rolled-back write" and "every committed event
is published at least once" hold together.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.dispatch import receiver

from ..exceptions import get_request_id
from ..settings import arc_settings, on_reload
from ..signals import resource_event, scope_elevated
from .event import Event, EventJSONEncoder, create_event
from .transports import Transport

logger = logging.getLogger("django_arc.events")

Handler = Callable[[Event], Any]

_transport: Transport | None = None
_transport_lock = threading.RLock()
#: every ``subscribe`` call, replayed onto a rebuilt transport (settings reload in tests).
_subscriptions: list[tuple[str, Handler]] = []

ELEVATED_EVENT = "arc.scope.elevated"


# -- transport singleton ------------------------------------------------------------------------
def _build_transport() -> Transport:
    factory = arc_settings.import_setting("EVENTS.TRANSPORT")
    options = arc_settings.EVENTS.get("OPTIONS") or {}
    transport = factory(**options) if callable(factory) else factory
    if not isinstance(transport, Transport):
        # Duck typing is fine, but say clearly what is missing rather than failing later.
        missing = [
            name
            for name in ("publish", "publish_many", "subscribe", "dead_letter", "close")
            if not callable(getattr(transport, name, None))
        ]
        if missing:
            raise TypeError(
                f"ARC['EVENTS']['TRANSPORT'] built {transport!r}, which lacks {missing}"
            )
    return transport


def get_transport() -> Transport:
    """The process-wide transport built from ``EVENTS.TRANSPORT`` + ``EVENTS.OPTIONS``.

    Built on first use (not at import) so a misconfigured Redis URL does not break
    ``manage.py`` commands that never publish; rebuilt after ``ARC`` changes.
    """
    global _transport
    transport = _transport
    if transport is None:
        with _transport_lock:
            if _transport is None:
                built = _build_transport()
                for pattern, handler in list(_subscriptions):
                    built.subscribe(pattern, handler)
                _transport = built
            transport = _transport
    return transport


def reset_transport() -> None:
    """Close and forget the transport; the next :func:`get_transport` builds a fresh one."""
    global _transport
    with _transport_lock:
        old, _transport = _transport, None
    if old is not None:
        try:
            old.close()
        except Exception:  # noqa: BLE001 - closing a dead connection must not break reload
            logger.exception("Closing transport %r failed", old)


on_reload(reset_transport)


# -- subscribing --------------------------------------------------------------------------------
def subscribe(pattern: str, handler: Handler) -> Callable[[], None]:
    """Call ``handler(event)`` for every delivered event whose type matches the glob
    ``pattern`` (``"products.*"``, ``"*.deleted"``, ``"*"``). Returns an unsubscriber.

    The subscription survives a transport rebuild (``override_settings(ARC=...)``). Delivery
    is at least once: make handlers idempotent (``event.id`` is stable across redeliveries).
    """
    transport = get_transport()
    with _transport_lock:
        _subscriptions.append((pattern, handler))
    transport.subscribe(pattern, handler)

    def unsubscribe() -> None:
        with _transport_lock:
            try:
                _subscriptions.remove((pattern, handler))
            except ValueError:
                pass
            current = _transport
        if current is not None:
            current.unsubscribe(pattern, handler)

    return unsubscribe


# -- publishing ---------------------------------------------------------------------------------
def _json_safe(event: Event) -> Event:
    """Payloads from serializers carry ``Decimal``/``UUID``/``datetime``; store them in their
    JSON form now, so the outbox row, every transport and every redelivery see the same
    values (a ``Decimal`` would otherwise come back as ``str`` only after a round trip).
    A payload JSON cannot hold (``NaN``, NUL, lone surrogates) is refused here, on every
    backend."""
    encoder = EventJSONEncoder()
    try:
        text = encoder.encode(event.payload)
    except ValueError as exc:
        raise ValueError(f"event {event.type!r}: payload is not storable JSON: {exc}") from None
    return replace(event, payload=json.loads(text)) if encoder.converted else event


def publish(event: Event, *, sender: Any = None) -> Event:
    """Hand ``event`` to the outbox inside the current transaction (or to whatever receivers
    of :data:`resource_event` the project configured). Returns the (JSON-normalised) event.

    A receiver's exception propagates: inside ``transaction.atomic`` it rolls the write back,
    which is the point — a write must not commit without its event.
    """
    if not isinstance(event, Event):
        raise TypeError(f"publish() expects an Event, got {type(event).__name__}")
    event = _json_safe(event)
    resource_event.send(sender=sender if sender is not None else Event, event=event)
    return event


def _resource_name(resource: Any) -> str | None:
    if resource is None or isinstance(resource, str):
        return resource
    return getattr(resource, "name", None) or getattr(resource, "__name__", None) or str(resource)


def _actor(request: Any) -> tuple[str | None, str | None]:
    """``(user_id, organization_id)`` from ``request.arc_scope``, else the Django user."""
    scope = getattr(request, "arc_scope", None)
    if scope is not None:
        user_id = getattr(scope, "user_id", None)
        org_id = getattr(scope, "organization_id", None)
        return (
            None if user_id is None else str(user_id),
            None if org_id is None else str(org_id),
        )
    try:
        user = getattr(request, "user", None)
    except Exception:  # noqa: BLE001 - DRF re-authenticates lazily; never fail an emit on it
        user = None
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.pk), None
    return None, None


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
    rid = None if resource_id is None else str(resource_id)
    meta: dict[str, Any] = {
        "source": arc_settings.EVENTS.get("SOURCE"),
        "resource": resource_name,
        "resource_id": rid,
        "aggregate": aggregate,
    }
    if partition_key is None and (resource_name is not None or rid is not None):
        partition_key = f"{resource_name}:{rid}"
    meta["partition_key"] = partition_key
    if request is not None:
        meta["correlation_id"] = get_request_id(request)
        meta["user_id"], meta["organization_id"] = _actor(request)
        django_request = getattr(request, "_request", request)
        key = getattr(django_request, "arc_idempotency_key", None)
        if key:
            meta["idempotency_key"] = f"{key}:{type}:{rid}"
    event = create_event(type, payload or {}, **meta)
    return publish(event, sender=sender if sender is not None else resource)


# -- scope elevation ----------------------------------------------------------------------------
@receiver(scope_elevated, dispatch_uid="django_arc.events.on_scope_elevated")
def on_scope_elevated(sender: Any, request: Any = None, scope: Any = None, **kwargs: Any) -> None:
    """Every elevation leaves an ``arc.scope.elevated`` event, whatever the resource's event
    settings: platform-admin access to a tenant must be auditable.

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
        "organization_id": None if org_id is None else str(org_id),
        "method": getattr(request, "method", None),
        "path": getattr(request, "path", None),
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
