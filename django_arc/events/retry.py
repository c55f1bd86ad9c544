"""Retrying subscribers, and handing a ``DeadLetteredEvent`` on when they give up.

A subscriber that raises must not silently lose the event, nor block the stream for ever:
``with_retry`` retries it in-process a bounded number of times, then hands a
:class:`DeadLetteredEvent` to ``transport.dead_letter()`` (durable for Redis Streams) and to
``on_dead`` (alerting), and returns normally so the transport acknowledges the message.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..logs import log_text
from .configured import get_transport
from .event import DeadLetteredEvent, Event
from .transports import Transport

logger = logging.getLogger("django_arc.events")

Handler = Callable[[Event], Any]
Backoff = Callable[[int], float]


def exponential_backoff(base: float = 0.1, factor: float = 2.0, maximum: float = 5.0) -> Backoff:
    """Delay before retry ``n`` (1-based): ``base * factor**(n-1)``, capped at ``maximum``.

    In-process retries hold the consumer, so the default cap is seconds, not minutes; long
    back-offs belong to the outbox's failure policy, which does not block anything.
    """

    def backoff(attempt: int) -> float:
        return min(maximum, base * factor ** max(0, attempt - 1))

    return backoff


def handler_name(handler: Callable[..., Any]) -> str:
    """A stable, human-readable name (``module.qualname``) for logs and dead letters."""
    inner = getattr(handler, "__wrapped__", handler)
    module = getattr(inner, "__module__", None)
    qualname = getattr(inner, "__qualname__", None) or repr(inner)
    return f"{module}.{qualname}" if module else qualname


def with_retry(
    handler: Handler,
    max_retries: int = 3,
    backoff: Backoff | float | None = None,
    transport: Transport | None = None,
    on_dead: Callable[[DeadLetteredEvent], Any] | None = None,
    *,
    sleep: Callable[[float], Any] = time.sleep,
) -> Handler:
    """Wrap a subscriber so it is called up to ``max_retries + 1`` times per event.

    After the last failure a :class:`DeadLetteredEvent` (``attempts == max_retries + 1``) goes
    to ``transport.dead_letter()`` (default: the configured transport, resolved at failure
    time so settings overrides apply) and then to ``on_dead``; the wrapper then returns
    normally, so the event counts as handled and a stream consumer acknowledges it. If the
    dead-letter write itself fails, the wrapper raises, so a stream entry stays pending
    instead of vanishing.

    ``backoff`` is a number of seconds, or a callable ``attempt -> seconds`` (default
    :func:`exponential_backoff`); ``sleep`` is injectable for tests.
    """
    if max_retries < 0:
        raise ValueError("max_retries must be >= 0")
    if backoff is None:
        backoff = exponential_backoff()
    delay: Backoff = backoff if callable(backoff) else (lambda _n, _d=float(backoff): _d)
    name = handler_name(handler)

    @functools.wraps(handler)
    def wrapper(event: Event) -> Any:
        attempts = 0
        first_failed_at: datetime | None = None
        while True:
            attempts += 1
            try:
                return handler(event)
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried
                first_failed_at = first_failed_at or datetime.now(UTC)
                if attempts <= max_retries:
                    logger.warning(
                        "Handler %s failed on %s %s (attempt %d/%d): %s",
                        name,
                        log_text(event.type),
                        log_text(event.id),
                        attempts,
                        max_retries + 1,
                        log_text(exc),
                    )
                    wait = delay(attempts)
                    if wait > 0:
                        sleep(wait)
                    continue
                dead = DeadLetteredEvent(
                    event=event,
                    error=f"{type(exc).__name__}: {exc}",
                    attempts=attempts,
                    handler_name=name,
                    traceback="".join(traceback.format_exception(exc)),
                    first_failed_at=first_failed_at,
                )
                logger.error(
                    "Handler %s gave up on %s %s after %d attempts: %s",
                    name,
                    log_text(event.type),
                    log_text(event.id),
                    attempts,
                    log_text(dead.error),
                )
                target = transport if transport is not None else get_transport()
                target.dead_letter(dead)
                if on_dead is not None:
                    try:
                        on_dead(dead)
                    except Exception:  # noqa: BLE001 - alerting must not re-trigger delivery
                        logger.exception("on_dead callback failed for %s", log_text(event.id))
                return None

    wrapper.max_retries = max_retries  # type: ignore[attr-defined]
    return wrapper
