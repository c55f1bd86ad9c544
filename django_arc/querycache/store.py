"""The query cache's Redis commands, and what it does when Redis is away.

An entry holds the answer's bytes and the **version tokens** of its resource and tags as they
were *before* the answer was computed. A read fetches the entry and the current tokens in one
``MGET``: equal tokens → the answer is still valid; any difference → a write happened since,
it is a miss. Because tokens are read before the database is, an answer computed while a write
was committing carries the old token and is refused on the next read.

Tokens are random, not counters: a token Redis evicted (or lost in a restart) comes back as a
new random value that no stored entry can carry, never as a number some old entry holds.

Redis failures never reach the client: reads become misses, writes are skipped, and a
version bump that failed is remembered by the process and retried before its next read (so a
process never serves its own stale answers after an outage). One warning per interval.
"""

from __future__ import annotations

import secrets
import struct
import threading
import time
from typing import Any, NamedTuple

from .. import redis_alias
from ..redis_alias import RedisConnectionError

FEATURE = "query cache"

#: seconds a STALE entry's refresh lock is held (one refresher at a time)
REFRESH_LOCK_SECONDS = 30


class HeldBumps:
    """The version keys whose bumps an outage held back on one alias, and the lock of the
    thread sending them. One per alias: an alias whose Redis stays away keeps its own, and
    the reads and writes of the others neither wait for it nor take it for theirs."""

    __slots__ = ("keys", "lock")

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.lock = threading.Lock()


_held: dict[str, HeldBumps] = {}
_held_lock = threading.Lock()


def held_back(alias: str) -> HeldBumps:
    """The bumps held back for ``alias`` in this process."""
    held = _held.get(alias)
    if held is None:
        with _held_lock:
            held = _held.setdefault(alias, HeldBumps())
    return held


class Unavailable(Exception):  # noqa: N818 - a state: Redis cannot answer
    """Redis could not be reached; the caller answers uncached."""


#: what an entry starts with: the format's name and version, so a value written by another
#: format (or not by django-arc) reads as a miss, never as an answer
MAGIC = b"arc-qc/2\n"
#: created (seconds), lengths of the content type, the version tokens and the body
_HEAD = struct.Struct("<dHHI")
_BODY_START = len(MAGIC) + _HEAD.size


class Entry(NamedTuple):
    """A cached answer: when it was computed, the version tokens it was computed under,
    its content type and body, and (for a get) the pickled row its object checks run on.

    Encoded as a fixed binary head and the parts one after the other, so a HIT decodes it
    with one ``unpack`` and four slices rather than by parsing a JSON head."""

    created: float
    versions: tuple[str, ...]
    content_type: str
    body: bytes
    obj: bytes = b""

    def encode(self) -> bytes:
        content_type = self.content_type.encode()
        versions = "\n".join(self.versions).encode()  # tokens are hex: no newline in them
        head = _HEAD.pack(self.created, len(content_type), len(versions), len(self.body))
        return b"".join((MAGIC, head, content_type, versions, self.body, self.obj))

    @classmethod
    def decode(cls, value: bytes) -> Entry | None:
        if not value.startswith(MAGIC) or len(value) < _BODY_START:
            return None  # not ours, or from another format: a miss
        created, type_length, versions_length, body_length = _HEAD.unpack_from(value, len(MAGIC))
        versions_start = _BODY_START + type_length
        body_start = versions_start + versions_length
        body_stop = body_start + body_length
        if body_stop > len(value):
            return None  # cut short: a miss
        try:
            content_type = value[_BODY_START:versions_start].decode()
            versions = value[versions_start:body_start].decode()
        except UnicodeDecodeError:
            return None
        return cls(
            created,
            tuple(versions.split("\n")) if versions else (),
            content_type,
            value[body_start:body_stop],
            value[body_stop:],
        )


def new_token() -> str:
    return secrets.token_hex(8)


class _BumpsInFlight(RedisConnectionError):
    """Another thread of the process is sending the bumps an outage held back."""


class QueryCacheStore:
    """The Redis of one django-redis alias, as the query cache uses it."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._alias = redis_alias.Alias(alias)
        self.key = self._alias.key
        self._held = held_back(alias)

    def _redis(self) -> Any:
        redis = self._alias.client()
        if self._held.keys:
            self._retry_bumps(redis)
        return redis

    def read(self, entry_key: str, version_keys: list[str]) -> tuple[Entry | None, tuple[str, ...]]:
        """The entry and the current version tokens, in one round trip (a second one only
        when a version key does not exist yet)."""
        try:
            redis = self._redis()
            keys = [self.key(entry_key), *(self.key(k) for k in version_keys)]
            values = redis_alias.command(redis, "MGET", *keys)
            versions = values[1:]
            if any(v is None for v in versions):
                versions = self._init_versions(redis, version_keys, versions)
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage(FEATURE, exc)
            raise Unavailable(str(exc)) from exc
        entry = Entry.decode(values[0]) if values[0] is not None else None
        return entry, tuple(v.decode() if isinstance(v, bytes) else v for v in versions)

    def _init_versions(self, redis: Any, version_keys: list[str], values: list[Any]) -> list[Any]:
        """Give missing version keys a token (``SET NX``: whoever comes first wins) and read
        what they hold now."""
        pipe = redis.pipeline(transaction=False)
        missing = [i for i, v in enumerate(values) if v is None]
        for i in missing:
            pipe.set(self.key(version_keys[i]), new_token(), nx=True)
            pipe.get(self.key(version_keys[i]))
        results = pipe.execute()
        values = list(values)
        for n, i in enumerate(missing):
            values[i] = results[2 * n + 1]
        return values

    def write(self, entry_key: str, entry: Entry, gc_seconds: float) -> None:
        """Store an entry until ``gc_seconds`` after it was computed; an outage skips it."""
        ttl = max(1, int((entry.created + gc_seconds - time.time()) * 1000))
        try:
            self._redis().set(self.key(entry_key), entry.encode(), px=ttl)
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage(FEATURE, exc)

    def discard(self, entry_key: str) -> None:
        """Drop an entry the route no longer answers with a 200; an outage skips it."""
        try:
            self._redis().delete(self.key(entry_key))
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage(FEATURE, exc)

    def try_lock(self, entry_key: str) -> str | None:
        """Become the one refresher of a stale entry: the lock's token, or ``None`` when
        someone else is (or Redis cannot say)."""
        token = new_token()
        try:
            taken = self._redis().set(
                self.key(entry_key + ":refresh"), token, nx=True, ex=REFRESH_LOCK_SECONDS
            )
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage(FEATURE, exc)
            return None
        return token if taken else None

    def unlock(self, entry_key: str, token: str) -> None:
        """Release the lock ``try_lock`` gave ``token``, if it still holds it: a refresh that
        outlived it must not release the lock of the refresher that took over since."""
        try:
            redis_alias.DELETE_IF_HELD(self._redis(), [self.key(entry_key + ":refresh")], [token])
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage(FEATURE, exc)

    def bump(self, version_keys: list[str] | set[str]) -> None:
        """Give each version key a new token: every entry computed under the old ones is a
        miss from now on. Remembered and retried when Redis cannot be reached. Sent at once
        even while another thread sends the bumps an outage held back: it retires other
        tokens, and held back behind them it would wait for this process's next read."""
        if not version_keys:
            return
        try:
            redis = self._alias.client()
            if self._held.keys:
                try:
                    self._retry_bumps(redis)  # a process that only writes sends them too
                except _BumpsInFlight:
                    pass
            self._bump(redis, version_keys)
        except redis_alias.REDIS_ERRORS as exc:
            redis_alias.warn_outage(FEATURE, exc)
            with self._held.lock:
                self._held.keys.update(version_keys)

    def _bump(self, redis: Any, version_keys: Any) -> None:
        """Delete the version keys, then give them new tokens, in one round trip. A full
        ``noeviction`` Redis refuses the ``SET`` (``OOM``) but not the ``DEL``: the old
        tokens, which the entries carry, are gone all the same, and a read that finds a
        version key missing cannot store a new one either, so it answers uncached (the
        ``SET`` error still makes the bump one to retry)."""
        keys = [self.key(key) for key in version_keys]
        pipe = redis.pipeline(transaction=False)
        pipe.delete(*keys)
        for key in keys:
            pipe.set(key, new_token())
        pipe.execute()

    def _retry_bumps(self, redis: Any) -> None:
        """Apply the bumps an outage held back, before this process reads again. They stay
        pending, under the lock, until Redis has them. Another thread of the process finding
        them being sent neither reads the versions they retire nor waits for them (behind a
        Redis that may still be timing out): it is answered as in the outage, uncached."""
        held = self._held
        if not held.lock.acquire(blocking=False):
            raise _BumpsInFlight("bumps an outage held back are being applied")
        try:
            keys = set(held.keys)
            if keys:
                self._bump(redis, keys)
                held.keys.difference_update(keys)
        finally:
            held.lock.release()
