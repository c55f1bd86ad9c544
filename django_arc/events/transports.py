"""Event transports: where relayed events go and how subscribers receive them.

Every transport implements ``publish``, ``publish_many``, ``subscribe``, ``dead_letter`` and
``close``. Subscriptions are per process: a transport delivers an event to the handlers
subscribed *in this process* whose glob pattern (``fnmatch`` style: ``"products.*"``,
``"*"``) matches the event type, then sends :data:`django_arc.signals.event_received`.

* :class:`MemoryTransport` delivers synchronously inside ``publish``; tests and the demo.
* :class:`RedisStreamsTransport` appends to a stream; consumers in a group read it, the entry
  is acknowledged only after every matching handler succeeded, and entries left pending by a
  crashed consumer are re-claimed after ``visibility_timeout``. Use it for events that must
  not be lost (Redis must run with ``maxmemory-policy noeviction``).
* :class:`RedisPubSubTransport` is fire and forget: subscribers not listening at publish
  time never see the event.
"""

from __future__ import annotations

import abc
import fnmatch
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from ..signals import event_received
from .event import Event, EventJSONEncoder
from .retry import DeadLetteredEvent

logger = logging.getLogger("django_arc.events")

Handler = Callable[[Event], Any]


def encode_event(event: Event) -> str:
    """The wire form shared by the Redis transports: the envelope as compact JSON."""
    return json.dumps(event.to_dict(), cls=EventJSONEncoder, separators=(",", ":"))


def decode_event(raw: str | bytes) -> Event:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError("not an event envelope")
    return Event.from_dict(data)


def default_consumer_name() -> str:
    """``<host>-<pid>``: unique per live process, so a restarted worker is a new consumer and
    its predecessor's pending entries are re-claimed rather than silently inherited."""
    return f"{socket.gethostname()}-{os.getpid()}"


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
                logger.exception("Subscriber %r failed on %s %s", handler, event.type, event.id)
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
            dead.event.type,
            dead.event.id,
            dead.handler_name,
            dead.attempts,
            dead.error,
        )

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for in-process transports
        """Release connections and threads; the transport must not be used afterwards."""


class MemoryTransport(Transport):
    """In-process transport: ``publish`` appends to :attr:`published` and delivers at once.

    A failing subscriber is logged, not raised to the publisher: with the outbox, re-publishing
    would redeliver to every *other* subscriber too. Wrap handlers in ``with_retry`` to retry
    and dead-letter them.
    """

    def __init__(self, **_options: Any) -> None:
        super().__init__()
        self.published: list[Event] = []
        self.dead_letters: list[DeadLetteredEvent] = []
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        with self._lock:
            self.published.append(event)
        self.dispatch(event)

    def dead_letter(self, dead: DeadLetteredEvent) -> None:
        super().dead_letter(dead)
        with self._lock:
            self.dead_letters.append(dead)

    def clear(self) -> None:
        """Forget published events and dead letters (between tests)."""
        with self._lock:
            self.published.clear()
            self.dead_letters.clear()


def _redis_client(url: str | None, client: Any) -> Any:
    if client is not None:
        return client
    if not url:
        raise ValueError("a Redis url (or client) is required")
    import redis

    return redis.Redis.from_url(url)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _is_entry(value: Any) -> bool:
    return isinstance(value, tuple | list) and len(value) == 2 and isinstance(value[0], bytes | str)


def _stream_entries(response: Any) -> list[tuple[Any, dict[Any, Any] | None]]:
    """Flatten XREADGROUP / XAUTOCLAIM replies to ``[(entry_id, fields)]``.

    redis-py's reply shapes differ between RESP2 (``[[stream, entries]]``) and RESP3 (``{stream:
    entries}`` or ``{stream: [entries]}``) and across major versions; normalising here keeps
    the transport independent of the client's protocol.
    """
    if not response:
        return []
    groups = response.values() if isinstance(response, dict) else [r[1] for r in response]
    out: list[tuple[Any, dict[Any, Any] | None]] = []
    for entries in groups:
        if entries and isinstance(entries[0], list) and not _is_entry(entries[0]):
            entries = [e for chunk in entries for e in chunk]
        for entry in entries or []:
            if entry is None:
                continue
            entry_id, fields = entry[0], entry[1]
            out.append((entry_id, fields))
    return out


class RedisStreamsTransport(Transport):
    """Durable, at-least-once delivery through a Redis stream and a consumer group.

    ``publish`` is ``XADD <stream> MAXLEN ~ <maxlen>``. Consumers call :meth:`consume` (or
    :meth:`run_forever`): it first ``XAUTOCLAIM``s entries another consumer has held for more
    than ``visibility_timeout`` seconds without acknowledging (it crashed, or its handler
    failed), then reads new entries with ``XREADGROUP``; an entry is ``XACK``ed only after
    every matching handler returned. An entry delivered more than ``max_deliveries`` times, or
    one that is not a valid envelope, goes to ``<stream>:dead`` and is acknowledged, so a
    poison message cannot loop for ever. Keep ``maxlen`` well above the consumers' backlog:
    trimming drops the oldest entries, acknowledged or not.
    """

    def __init__(
        self,
        url: str | None = None,
        stream: str = "arc:events",
        group: str = "arc",
        consumer: str | None = None,
        maxlen: int | None = 100_000,
        visibility_timeout: float = 30,
        max_deliveries: int | None = 16,
        dead_stream: str | None = None,
        client: Any = None,
    ) -> None:
        super().__init__()
        self.client = _redis_client(url, client)
        self.stream = stream
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.maxlen = maxlen
        self.visibility_timeout = visibility_timeout
        self.max_deliveries = max_deliveries
        self.dead_stream = dead_stream or f"{stream}:dead"
        self._group_ready = False
        self._claim_cursor = "0-0"
        self._stop = threading.Event()

    # -- publishing -------------------------------------------------------------------------
    def _fields(self, event: Event) -> dict[str, str]:
        return {"type": event.type, "id": event.id, "event": encode_event(event)}

    def publish(self, event: Event) -> str:
        entry_id = self.client.xadd(
            self.stream, self._fields(event), maxlen=self.maxlen, approximate=True
        )
        return _text(entry_id)

    def publish_many(self, events: Iterable[Event]) -> list[str]:
        """One round trip for a whole batch (pipeline without MULTI: order is preserved)."""
        pipe = self.client.pipeline(transaction=False)
        count = 0
        for event in events:
            pipe.xadd(self.stream, self._fields(event), maxlen=self.maxlen, approximate=True)
            count += 1
        if not count:
            return []
        return [_text(entry_id) for entry_id in pipe.execute()]

    # -- consuming --------------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the stream and group if missing, starting at the stream's beginning so
        events published before the first consumer started are not skipped."""
        if self._group_ready:
            return
        import redis

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _delivery_count(self, entry_id: Any) -> int:
        rows = self.client.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(rows[0]["times_delivered"]) if rows else 0

    def _handle(self, entry_id: Any, fields: dict[Any, Any] | None, reclaimed: bool) -> bool:
        raw = None
        if fields:
            raw = fields.get(b"event", fields.get("event"))
        try:
            if raw is None:
                raise ValueError("entry has no 'event' field")
            event = decode_event(raw)
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("Malformed stream entry %s: %s", _text(entry_id), exc)
            self._dead_letter_raw(entry_id, raw, f"{type(exc).__name__}: {exc}")
            self.client.xack(self.stream, self.group, entry_id)
            return False
        if reclaimed and self.max_deliveries is not None:
            deliveries = self._delivery_count(entry_id)
            if deliveries > self.max_deliveries:
                self.dead_letter(
                    DeadLetteredEvent(
                        event=event,
                        error=f"delivered {deliveries} times without acknowledgement",
                        attempts=deliveries,
                        handler_name=f"stream:{self.stream}/{self.group}",
                    )
                )
                self.client.xack(self.stream, self.group, entry_id)
                return False
        errors = self.dispatch(event)
        if errors:
            # Left pending: re-claimed by some consumer after the visibility timeout.
            return False
        self.client.xack(self.stream, self.group, entry_id)
        return True

    def consume(self, count: int = 10, block_ms: int | None = 1000) -> int:
        """Process up to ``count`` entries; return how many were handled and acknowledged.

        Re-claimed entries come first (they are the oldest). ``block_ms=None`` never blocks;
        otherwise XREADGROUP waits up to ``block_ms`` for new entries when none were
        re-claimed.
        """
        self.ensure_group()
        entries: list[tuple[Any, dict[Any, Any] | None, bool]] = []
        claimed = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=int(self.visibility_timeout * 1000),
            start_id=self._claim_cursor,
            count=count,
        )
        if claimed:
            # XAUTOCLAIM scans the pending list like SCAN: continue where the last call
            # stopped, so idle entries behind many in-flight ones are reached eventually.
            self._claim_cursor = _text(claimed[0]) or "0-0"
        if claimed and len(claimed) > 1:
            entries.extend(
                (eid, fields, True) for eid, fields in _stream_entries([[self.stream, claimed[1]]])
            )
        remaining = count - len(entries)
        if remaining > 0:
            block = None if (entries or block_ms is None) else max(1, int(block_ms))
            response = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=remaining, block=block
            )
            entries.extend((eid, fields, False) for eid, fields in _stream_entries(response))
        handled = 0
        for entry_id, fields, reclaimed in entries:
            if self._handle(entry_id, fields, reclaimed):
                handled += 1
        return handled

    def run_once(self, count: int = 10) -> int:
        """Non-blocking :meth:`consume` (for tests, cron-style loops and management commands)."""
        return self.consume(count=count, block_ms=None)

    def run_forever(self, count: int = 10, block_ms: int = 1000) -> None:
        """Consume until :meth:`stop` (or :meth:`close`) is called from another thread."""
        self._stop.clear()
        while not self._stop.is_set():
            try:
                self.consume(count=count, block_ms=block_ms)
            except Exception:  # noqa: BLE001 - a Redis blip must not kill the consumer loop
                logger.exception("Stream consumer %s failed; retrying", self.consumer)
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()

    # -- dead letters -----------------------------------------------------------------------
    def dead_letter(self, dead: DeadLetteredEvent) -> None:
        super().dead_letter(dead)
        self.client.xadd(
            self.dead_stream,
            {
                "type": dead.event.type,
                "id": dead.event.id,
                "dead": json.dumps(dead.to_dict(), cls=DjangoJSONEncoder),
            },
            maxlen=self.maxlen,
            approximate=True,
        )

    def _dead_letter_raw(self, entry_id: Any, raw: Any, error: str) -> None:
        self.client.xadd(
            self.dead_stream,
            {"entry_id": _text(entry_id), "raw": raw if raw is not None else "", "error": error},
            maxlen=self.maxlen,
            approximate=True,
        )

    def dead_letters(self, count: int = 100) -> list[DeadLetteredEvent]:
        """The oldest ``count`` dead letters that are decodable (operators' inspection)."""
        out = []
        for _entry_id, fields in self.client.xrange(self.dead_stream, count=count):
            raw = fields.get(b"dead", fields.get("dead"))
            if raw is not None:
                out.append(DeadLetteredEvent.from_dict(json.loads(_text(raw))))
        return out

    def close(self) -> None:
        self.stop()
        self.client.close()


class RedisPubSubTransport(Transport):
    """Fire-and-forget delivery over Redis pub/sub: ``PUBLISH <prefix><type> <json>``.

    A listener (:meth:`listen_once`, or the thread from :meth:`start`) pattern-subscribes to
    ``<prefix>*`` once and filters by the local glob patterns, so an event matching several
    subscriptions is still delivered (and ``event_received`` sent) once.
    """

    def __init__(
        self, url: str | None = None, channel_prefix: str = "arc:", client: Any = None
    ) -> None:
        super().__init__()
        self.client = _redis_client(url, client)
        self.channel_prefix = channel_prefix
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def channel(self, event_type: str) -> str:
        return f"{self.channel_prefix}{event_type}"

    def publish(self, event: Event) -> int:
        """Returns how many Redis clients received it (0 is not an error: fire and forget)."""
        return int(self.client.publish(self.channel(event.type), encode_event(event)))

    def publish_many(self, events: Iterable[Event]) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        count = 0
        for event in events:
            pipe.publish(self.channel(event.type), encode_event(event))
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
                    event = decode_event(message["data"])
                except (ValueError, KeyError, TypeError) as exc:
                    logger.error(
                        "Malformed pub/sub message on %s: %s",
                        _text(message.get("channel", b"")),
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
                while not self._stop.is_set():
                    try:
                        self.listen_once(timeout=0.5)
                    except Exception:  # noqa: BLE001 - keep listening across blips
                        if self._stop.is_set():
                            break
                        logger.exception("pub/sub listener failed; retrying")
                        self._stop.wait(1.0)

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
