"""``Transport``: what every transport implements, and delivery to this process's subscribers.

Subscriptions are per process: a transport delivers an event to the handlers subscribed *in
this process* whose glob pattern (``fnmatch`` style: ``"products.*"``, ``"*"``) matches the
event type, then sends :data:`django_arc.signals.event_received`.
"""

from __future__ import annotations

import abc
import fnmatch
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ...logs import log_text
from ...signals import event_received
from ..event import DeadLetteredEvent, Event

logger = logging.getLogger("django_arc.events")

Handler = Callable[[Event], Any]


def publishes_in_one_call(transport: Any) -> bool:
    """Whether ``transport`` has a ``publish_many`` of its own (the Redis transports pipeline
    a batch into one round trip), not :meth:`Transport.publish_many`, one ``publish`` per
    event: that one saves nothing, and raising part way through it has published the
    events before the one it raised on, which a caller publishing the batch again event by
    event (to find the one refused) would publish twice."""
    method = getattr(transport, "publish_many", None)
    return callable(method) and getattr(method, "__func__", None) is not Transport.publish_many


def takes_wire(transport: Any) -> Any:
    """``transport.publish_wire`` when the relay may hand it arc's wire form spliced from the
    outbox rows (the Redis transports), else ``None``: only when the transport publishes
    through it, its ``publish`` and ``publish_many`` those of the class that defines
    ``publish_wire`` (or of a class after it in the MRO). A project's subclass (a mixin
    listed before the transport too; or an instance, or a wrapper reaching the Redis
    transport's ``publish_wire`` through ``__getattr__``) with a ``publish`` or
    ``publish_many`` of its own, or the transport's wrapped in place (instrumentation
    patching the class with ``functools.wraps``), to trace, route or redact events, is
    published through them, as the outbox-off path publishes it; ``publish_wire`` would
    pass them by."""
    publish_wire = getattr(transport, "publish_wire", None)
    if not callable(publish_wire):
        return None
    own = getattr(transport, "__dict__", {})
    if "publish_wire" in own:  # the instance's own attribute: its author chose it
        return publish_wire
    mro = type(transport).__mro__
    owner = next((c for c in mro if "publish_wire" in vars(c)), None)  # None: __getattr__
    for name in ("publish", "publish_many"):
        if name in own:
            return None
        definer = next((c for c in mro if name in vars(c)), None)
        # a class before ``owner`` in the MRO: a subclass, or a mixin listed before the
        # transport (``class Traced(TracingMixin, RedisStreamsTransport)``)
        if definer is not None and (owner is None or mro.index(definer) < mro.index(owner)):
            return None
        if definer is owner and hasattr(vars(owner)[name], "__wrapped__"):
            return None  # wrapped in place (``functools.wraps``): instrumentation's, a project's
    return publish_wire


class Transport(abc.ABC):
    """Base class; subclasses implement :meth:`publish` (and usually :meth:`dead_letter`).

    Handlers are kept in registration order; :meth:`dispatch` calls every matching one and
    collects failures instead of stopping at the first, so one broken subscriber cannot starve
    the others.
    """

    def __init__(self) -> None:
        self._subscriptions: list[tuple[str, Handler]] = []
        self._sub_lock = threading.Lock()

    # -- publishing -------------------------------------------------------------------------
    @abc.abstractmethod
    def publish(self, event: Event) -> Any:
        """Hand ``event`` to the transport; raise on failure (the relay retries the row)."""

    def publish_many(self, events: Iterable[Event]) -> list[Any]:
        return [self.publish(event) for event in events]

    # -- subscribing ------------------------------------------------------------------------
    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]:
        """Register ``handler`` for event types matching ``pattern``; returns an unsubscriber."""
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("pattern must be a non-empty string")
        if not callable(handler):
            raise TypeError("handler must be callable")
        with self._sub_lock:
            self._subscriptions.append((pattern, handler))
        return lambda: self.unsubscribe(pattern, handler)

    def unsubscribe(self, pattern: str, handler: Handler) -> None:
        with self._sub_lock:
            try:
                self._subscriptions.remove((pattern, handler))
            except ValueError:
                pass

    def handlers_for(self, event_type: str) -> list[Handler]:
        with self._sub_lock:
            subs = list(self._subscriptions)
        return [h for pattern, h in subs if fnmatch.fnmatchcase(event_type, pattern)]

    def dispatch(self, event: Event) -> list[BaseException]:
        """Deliver ``event`` to matching handlers in this process; return their failures.

        ``event_received`` is sent once per delivery (after the handlers), with
        ``send_robust`` so a faulty signal receiver is logged, not propagated.
        """
        errors: list[BaseException] = []
        for handler in self.handlers_for(event.type):
            try:
                handler(event)
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                logger.exception(
                    "Subscriber %r failed on %s %s",
                    handler,
                    log_text(event.type),
                    log_text(event.id),
                )
                errors.append(exc)
        for receiver, response in event_received.send_robust(
            sender=type(self), event=event, transport=self
        ):
            if isinstance(response, Exception):
                logger.error("event_received receiver %r failed: %s", receiver, response)
                errors.append(response)
        return errors

    # -- failures and lifecycle -------------------------------------------------------------
    def dead_letter(self, dead: DeadLetteredEvent) -> None:
        """Record an event a subscriber gave up on. The base class only logs it."""
        logger.error(
            "Dead letter: %s %s (handler %s, %d attempts): %s",
            log_text(dead.event.type),
            log_text(dead.event.id),
            dead.handler_name,
            dead.attempts,
            log_text(dead.error),
        )

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for in-process transports
        """Release connections and threads; the transport must not be used afterwards."""
