"""``RedisPubSubTransport``: fire-and-forget delivery on arc 2.9.1's pub/sub wire
(``src/events/transports/redis.ts``): ``PUBLISH arc-events:<type> <JSON.stringify(event)>``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from ...logs import FailureStreak, log_text
from .. import wire
from ..event import Event
from ._redis import redis_client, text
from .base import Transport

logger = logging.getLogger("django_arc.events")


class RedisPubSubTransport(Transport):
    """Fire-and-forget delivery over Redis pub/sub: ``PUBLISH <prefix><type> <json>``.

    ``channel_prefix`` is arc's ``channel`` option plus ``":"`` (arc's default channel
    ``arc-events`` is the prefix ``arc-events:``). A listener (:meth:`listen_once`, or the
    thread from :meth:`start`) pattern-subscribes to ``<prefix>*`` once and filters by the
    local glob patterns, so an event matching several subscriptions is still delivered (and
    ``event_received`` sent) once. A message that is not an arc event is logged with the
    reason and dropped: pub/sub has nothing to acknowledge and no dead-letter stream.
    """

    def __init__(
        self, url: str | None = None, channel_prefix: str = "arc-events:", client: Any = None
    ) -> None:
        super().__init__()
        self.client = redis_client(url, client)
        self.channel_prefix = channel_prefix
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def channel(self, event_type: str) -> str:
        return f"{self.channel_prefix}{event_type}"

    def publish(self, event: Event) -> int:
        """Returns how many Redis clients received it (0 is not an error: fire and forget)."""
        return int(self.client.publish(self.channel(event.type), wire.encoded(event)))

    def publish_many(self, events: Iterable[Event]) -> list[int]:
        return self.publish_wire((event.type, wire.encoded(event)) for event in events)

    def publish_wire(self, messages: Iterable[tuple[str, str]]) -> list[int]:
        """:meth:`publish_many` for envelopes already in arc's wire form, ``(type, data)``."""
        pipe = self.client.pipeline(transaction=False)
        count = 0
        for event_type, data in messages:
            pipe.publish(self.channel(event_type), data)
            count += 1
        return [int(n) for n in pipe.execute()] if count else []

    def _ensure_listening(self) -> Any:
        if self._pubsub is None:
            pubsub = self.client.pubsub()
            pubsub.psubscribe(f"{self.channel_prefix}*")
            # Wait for the confirmation, so events published after this returns are seen.
            deadline = time.monotonic() + 5
            while True:
                message = pubsub.get_message(timeout=0.5)
                if message is not None and message.get("type") == "psubscribe":
                    break
                if time.monotonic() > deadline:
                    pubsub.close()
                    raise TimeoutError("Redis did not confirm PSUBSCRIBE")
            self._pubsub = pubsub
        return self._pubsub

    def listen_once(self, timeout: float = 1.0) -> int:
        """Deliver every message that arrives within ``timeout`` seconds; return the count."""
        pubsub = self._ensure_listening()
        delivered = 0
        message = pubsub.get_message(timeout=timeout)
        while message is not None:
            if message.get("type") == "pmessage":
                try:
                    event = wire.decode(message["data"])
                except wire.WireError as exc:
                    logger.error(
                        "Unreadable pub/sub message on %s: %s",
                        log_text(text(message.get("channel", b""))),
                        exc,
                    )
                else:
                    self.dispatch(event)
                    delivered += 1
            message = pubsub.get_message(timeout=0.01)
        return delivered

    def start(self) -> threading.Thread:
        """Listen in a daemon thread until :meth:`close`. Subscribe handlers before or after."""
        self._ensure_listening()
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()

            def loop() -> None:
                streak = FailureStreak()  # an outage: its first failure, then one a minute
                while not self._stop.is_set():
                    try:
                        self.listen_once(timeout=0.5)
                    except Exception:  # noqa: BLE001 - keep listening across blips
                        if self._stop.is_set():
                            break
                        if streak.failed():
                            logger.exception("pub/sub listener failed; retrying%s", streak.note())
                        self._stop.wait(1.0)
                    else:
                        failures = streak.ended()
                        if failures:
                            logger.warning(
                                "pub/sub listener listens again after %d failures in a row",
                                failures,
                            )
                failures = streak.ended()
                if failures:  # stopped mid-outage: the failures since its last line
                    logger.warning("pub/sub listener stopped after %d failures in a row", failures)

            self._thread = threading.Thread(target=loop, name="arc-pubsub", daemon=True)
            self._thread.start()
        return self._thread

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            finally:
                self._pubsub = None
        self.client.close()
