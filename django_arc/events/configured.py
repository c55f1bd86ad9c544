"""The process-wide transport: built from ``ARC["EVENTS"]`` in this one place, and the
subscriptions made on it.

Everything that publishes or subscribes (the relay, the outbox-off receiver, ``with_retry``,
``subscribe``) asks :func:`get_transport`, so one process never holds two differently
configured transports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..settings import arc_settings, on_reload
from .event import Event
from .transports import Transport

logger = logging.getLogger("django_arc.events")

Handler = Callable[[Event], Any]

_transport: Transport | None = None
_transport_lock = threading.RLock()
#: every ``subscribe`` call, replayed onto a rebuilt transport (settings reload in tests).
_subscriptions: list[tuple[str, Handler]] = []


def build_transport() -> Transport:
    """A new transport from ``EVENTS.TRANSPORT`` + ``EVENTS.OPTIONS`` (a class or factory
    called with the options, or a ready instance)."""
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
    """The process-wide transport, built on first use.

    Not at import, so a misconfigured Redis URL does not break ``manage.py`` commands that
    never publish; rebuilt after ``ARC`` changes (``override_settings`` in tests).
    """
    global _transport
    transport = _transport
    if transport is None:
        with _transport_lock:
            if _transport is None:
                built = build_transport()
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


def subscribe(pattern: str, handler: Handler) -> Callable[[], None]:
    """Call ``handler(event)`` for every delivered event whose type matches the glob
    ``pattern`` (``"products.*"``, ``"*.deleted"``, ``"*"``). Returns an unsubscriber.

    The subscription survives a transport rebuild (``override_settings(ARC=...)``). Delivery
    is at least once: make handlers idempotent (``event.id`` is stable across redeliveries).

    Subscribing does not build the transport: ``AppConfig.ready()`` is where the docs say to
    subscribe, and building there would turn a bad ``EVENTS.TRANSPORT`` into a traceback at
    app loading for every ``manage.py`` command instead of ``check``'s ``arc.E008``. The
    subscription is recorded and attached when :func:`get_transport` first builds it (or now,
    if it already exists).
    """
    with _transport_lock:
        _subscriptions.append((pattern, handler))
        current = _transport
        if current is not None:
            current.subscribe(pattern, handler)

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
