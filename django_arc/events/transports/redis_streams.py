"""``RedisStreamsTransport``: durable, at-least-once delivery through a Redis stream, on arc
2.9.1's wire (``src/events/transports/redis-stream.ts``).

What crosses Redis is arc's: entries ``XADD <stream> MAXLEN ~ <n> * type <type> data <json>``
in the stream ``arc:events``, consumers in the group ``default``, dead letters in the stream
``arc:events:dlq`` with arc's fields ``originalStream``, ``originalId``, ``group``,
``failedAt``. Two behaviours differ from arc on purpose, without changing the wire: a group
django-arc creates starts at the beginning of the stream (arc's starts at ``$`` and skips what
was written before it existed), and an entry django-arc cannot read is dead-lettered with the
reason instead of being acknowledged silently.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ...logs import FailureStreak
from .. import wire
from ..event import DeadLetteredEvent, Event
from ._redis import redis_client, text
from .base import Transport

logger = logging.getLogger("django_arc.events")

#: The fields of a dead-letter entry that arc writes (``moveToDlq``); django-arc adds more.
DLQ_FIELDS = ("originalStream", "originalId", "group", "failedAt")


def default_consumer_name() -> str:
    """``<host>-<pid>``: unique per live process, so a restarted worker is a new consumer and
    its predecessor's pending entries are re-claimed rather than silently inherited."""
    return f"{socket.gethostname()}-{os.getpid()}"


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
            out.append((entry[0], entry[1]))
    return out


def _field(fields: dict[Any, Any], name: str) -> Any:
    return fields.get(name.encode(), fields.get(name))


def _now_iso() -> str:
    return wire.format_timestamp(datetime.now(UTC))


class RedisStreamsTransport(Transport):
    """Durable, at-least-once delivery through a Redis stream and a consumer group.

    ``publish`` appends one entry; consumers call :meth:`consume` (or :meth:`run_forever`): it
    first ``XAUTOCLAIM``s entries another consumer has held for more than
    ``visibility_timeout`` seconds without acknowledging (it crashed, or its handler failed),
    then reads new entries with ``XREADGROUP``; an entry is ``XACK``ed only after every
    matching handler returned. An entry delivered more than ``max_deliveries`` times, or one
    that is not an arc event, goes to ``dead_stream`` with the reason and is acknowledged, so
    a poison message cannot loop for ever. Keep ``maxlen`` well above the consumers' backlog:
    trimming drops the oldest entries, acknowledged or not.
    """

    def __init__(
        self,
        url: str | None = None,
        stream: str = "arc:events",
        group: str = "default",
        consumer: str | None = None,
        maxlen: int | None = 100_000,
        visibility_timeout: float = 30,
        max_deliveries: int | None = 5,
        dead_stream: str = "arc:events:dlq",
        client: Any = None,
        max_payload_bytes: int | None = 1_000_000,
    ) -> None:
        super().__init__()
        self.client = redis_client(url, client)
        self.stream = stream
        self.group = group
        self.consumer = consumer or default_consumer_name()
        self.maxlen = maxlen
        self.visibility_timeout = visibility_timeout
        self.max_deliveries = max_deliveries
        self.dead_stream = dead_stream
        self.max_payload_bytes = max_payload_bytes
        self._group_ready = False
        self._claim_cursor = "0-0"
        self._stop = threading.Event()
        self._socket_timeout: float | None = None
        # the client whose socket timeout ``_socket_timeout`` is (a project may set another)
        self._socket_timeout_of: Any = None
        # The entry whose handlers run in this thread, so a handler's dead letter names it.
        self._current = threading.local()

    # -- publishing -------------------------------------------------------------------------
    def entry(self, event_type: str, data: str) -> dict[str, str]:
        """The fields of a stream entry: arc's ``type`` and ``data`` (the envelope JSON)."""
        if self.max_payload_bytes is not None and len(data) > self.max_payload_bytes:
            raise ValueError(
                f"a {event_type} event is {len(data)} characters on the wire, over "
                f"max_payload_bytes={self.max_payload_bytes} (arc's maxPayloadBytes)"
            )
        return {"type": event_type, "data": data}

    def publish(self, event: Event) -> str:
        entry_id = self.client.xadd(
            self.stream,
            self.entry(event.type, wire.encoded(event)),
            maxlen=self.maxlen,
            approximate=True,
        )
        return text(entry_id)

    def publish_many(self, events: Iterable[Event]) -> list[str]:
        """One round trip for a whole batch (pipeline without MULTI: order is preserved)."""
        return self.publish_wire((event.type, wire.encoded(event)) for event in events)

    def publish_wire(self, messages: Iterable[tuple[str, str]]) -> list[str]:
        """:meth:`publish_many` for envelopes already in arc's wire form, ``(type, data)``:
        the relay splices them from the outbox rows without building ``Event`` objects."""
        pipe = self.client.pipeline(transaction=False)
        count = 0
        for event_type, data in messages:
            pipe.xadd(
                self.stream, self.entry(event_type, data), maxlen=self.maxlen, approximate=True
            )
            count += 1
        if not count:
            return []
        return [text(entry_id) for entry_id in pipe.execute()]

    # -- consuming --------------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the stream and group if missing, starting at the stream's beginning so
        events published before the first consumer started are not skipped (arc starts a new
        group at ``$``; a group arc created first is joined as it is)."""
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

    @staticmethod
    def _unreadable(fields: dict[Any, Any]) -> str:
        names = sorted(text(name) for name in fields)
        if "event" in names and "data" not in names:
            return (
                "entry has the fields of django-arc before it spoke arc's wire (type, id, event)"
                ", not arc's (type, data): see 'Migrating' in docs/events.md"
            )
        missing = [name for name in ("type", "data") if not _field(fields, name)]
        return f"entry has no {' and no '.join(repr(m) for m in missing)} field (fields: {names})"

    def _handle(self, entry_id: Any, fields: dict[Any, Any] | None, reclaimed: bool) -> bool:
        fields = fields or {}
        raw = _field(fields, "data")
        try:
            if not raw or not _field(fields, "type"):
                raise wire.WireError(self._unreadable(fields))
            event = wire.decode(raw)
        except wire.WireError as exc:
            logger.error("Unreadable stream entry %s in %s: %s", text(entry_id), self.stream, exc)
            self._dead_letter_entry(entry_id, fields, str(exc))
            self.client.xack(self.stream, self.group, entry_id)
            return False
        if reclaimed and self.max_deliveries is not None:
            deliveries = self._delivery_count(entry_id)
            if deliveries > self.max_deliveries:
                reason = (
                    f"delivered {deliveries} times without acknowledgement "
                    f"(max_deliveries={self.max_deliveries})"
                )
                dead = DeadLetteredEvent(
                    event=event,
                    error=reason,
                    attempts=deliveries,
                    handler_name=f"stream:{self.stream}/{self.group}",
                )
                self._dead_letter_entry(entry_id, fields, reason, dead)
                self.client.xack(self.stream, self.group, entry_id)
                return False
        self._current.entry = (event.id, entry_id)
        try:
            errors = self.dispatch(event)
        finally:
            self._current.entry = None
        if errors:
            # Left pending: re-claimed by some consumer after the visibility timeout.
            return False
        self.client.xack(self.stream, self.group, entry_id)
        return True

    def consume(self, count: int = 10, block_ms: int | None = 1000) -> int:
        """Process up to ``count`` entries; return how many were handled and acknowledged.

        Re-claimed entries come first (they are the oldest). ``block_ms=None`` never blocks;
        otherwise XREADGROUP waits up to ``block_ms`` for new entries when none were
        re-claimed (``0``: until one comes, as Redis's ``BLOCK 0``), and no longer than the
        client's socket timeout allows (:meth:`_block_ms`).
        """
        import redis

        self.ensure_group()
        try:
            entries = self._read(count, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                raise
            # Redis lost the group: restarted without persistence, the stream evicted
            # (allkeys-* policy) or deleted. Created again, from the stream's beginning, as a
            # first start does; without it every read answered NOGROUP for ever. A read
            # blocked when the stream went answers "UNBLOCKED the stream key no longer
            # exists" (Redis 7) instead: the same loss, not a failure to log.
            logger.warning(
                "Stream %s has no group %s (Redis lost it); creating it again",
                self.stream,
                self.group,
            )
            self._group_ready = False
            self._claim_cursor = "0-0"
            self.ensure_group()
            entries = self._read(count, block_ms)
        handled = 0
        for entry_id, fields, reclaimed in entries:
            if self._handle(entry_id, fields, reclaimed):
                handled += 1
        return handled

    def _read(
        self, count: int, block_ms: int | None
    ) -> list[tuple[Any, dict[Any, Any] | None, bool]]:
        """Re-claimed entries (oldest first), then new ones, up to ``count``."""
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
            self._claim_cursor = text(claimed[0]) or "0-0"
        if claimed and len(claimed) > 1:
            entries.extend(
                (eid, fields, True) for eid, fields in _stream_entries([[self.stream, claimed[1]]])
            )
        remaining = count - len(entries)
        if remaining > 0:
            block = None if (entries or block_ms is None) else self._block_ms(block_ms)
            response = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=remaining, block=block
            )
            entries.extend((eid, fields, False) for eid, fields in _stream_entries(response))
        return entries

    def _block_ms(self, block_ms: int) -> int:
        """``block_ms``, or less where the client's socket timeout is shorter: a blocking
        read that outlasts it fails with ``TimeoutError`` when no entry comes (redis-py 8
        gives every client a 5 s timeout by default), so a quiet stream made
        ``consume(block_ms=5000)`` raise and an idle ``run_forever`` log a traceback every
        few seconds for as long as it ran. Four fifths of the timeout leave room for the
        round trip; the caller reads again. Read once per client (again when
        ``self.client`` is replaced)."""
        if self._socket_timeout_of is not self.client:
            try:
                pool = self.client.connection_pool
                # an unconnected connection of the pool's kind, for redis-py's default
                timeout = pool.connection_class(**pool.connection_kwargs).socket_timeout
                self._socket_timeout = float(timeout) if timeout is not None else None
            except Exception:  # noqa: BLE001 - a client of another shape: block as asked
                self._socket_timeout = None
            self._socket_timeout_of = self.client
        if block_ms == 0:
            # Redis's BLOCK 0, until an entry comes: as long as the socket allows, then the
            # caller reads again (rounded up to 1 ms, 0 would be BLOCK 0 again)
            if self._socket_timeout is None:
                return 0
            return max(1, int(self._socket_timeout * 800))
        block = max(1, int(block_ms))
        if self._socket_timeout is not None:
            block = max(1, min(block, int(self._socket_timeout * 800)))
        return block

    def run_once(self, count: int = 10) -> int:
        """Non-blocking :meth:`consume` (for tests, cron-style loops and management commands)."""
        return self.consume(count=count, block_ms=None)

    def run_forever(self, count: int = 10, block_ms: int = 1000) -> None:
        """Consume until :meth:`stop` (or :meth:`close`) is called from another thread."""
        self._stop.clear()
        streak = FailureStreak()  # an outage: its first failure, then one a minute
        while not self._stop.is_set():
            try:
                self.consume(count=count, block_ms=block_ms)
            except Exception:  # noqa: BLE001 - a Redis blip must not kill the consumer loop
                if streak.failed():
                    logger.exception(
                        "Stream consumer %s failed; retrying%s", self.consumer, streak.note()
                    )
                self._stop.wait(1.0)
            else:
                failures = streak.ended()
                if failures:
                    logger.warning(
                        "Stream consumer %s consumes again after %d failures in a row",
                        self.consumer,
                        failures,
                    )
        failures = streak.ended()
        if failures:  # stopped mid-outage: the failures since its last line are counted here
            logger.warning(
                "Stream consumer %s stopped after %d failures in a row", self.consumer, failures
            )

    def stop(self) -> None:
        self._stop.set()

    # -- dead letters -----------------------------------------------------------------------
    def _dead_letter_entry(
        self,
        entry_id: Any,
        fields: dict[Any, Any],
        reason: str,
        dead: DeadLetteredEvent | None = None,
    ) -> None:
        """``XADD <dead_stream>`` with arc's four fields, then ``reason``, the original entry's
        own fields (so it can be replayed after the original is trimmed) and, for an event a
        handler or the delivery limit gave up on, arc's ``DeadLetteredEvent`` as
        ``deadLetter``."""
        out: dict[str, Any] = {
            "originalStream": self.stream,
            "originalId": text(entry_id),
            "group": self.group,
            "failedAt": _now_iso(),
            "reason": reason,
        }
        for name, value in fields.items():
            out.setdefault(text(name), value)
        if dead is not None:
            out["deadLetter"] = wire.dumps(wire.dead_letter_to_wire(dead))
        self.client.xadd(self.dead_stream, out, maxlen=self.maxlen, approximate=True)

    def dead_letter(self, dead: DeadLetteredEvent) -> None:
        """A handler gave up (``with_retry``): record it in ``dead_stream``; ``originalId`` is
        the entry being handled in this thread when it carries that event, else empty."""
        super().dead_letter(dead)
        current = getattr(self._current, "entry", None)
        entry_id = current[1] if current and current[0] == dead.event.id else ""
        fields = {"type": dead.event.type, "data": wire.encode(dead.event)}
        self._dead_letter_entry(entry_id, fields, dead.error, dead)

    def dead_letters(self, count: int = 100) -> list[DeadLetteredEvent]:
        """The oldest ``count`` dead letters of this stream that carry an event (operators'
        inspection); unreadable entries are in ``dead_stream`` with their ``reason`` only."""
        out: list[DeadLetteredEvent] = []
        start = "-"
        while len(out) < count:
            chunk = self.client.xrange(self.dead_stream, min=start, count=max(count, 100))
            for _entry_id, fields in chunk:
                if text(_field(fields, "originalStream") or "") != self.stream:
                    continue
                raw = _field(fields, "deadLetter")
                if raw is not None and len(out) < count:
                    out.append(wire.dead_letter_from_wire(json.loads(text(raw))))
            if len(chunk) < max(count, 100):
                break
            start = "(" + text(chunk[-1][0])
        return out

    def close(self) -> None:
        self.stop()
        self.client.close()
