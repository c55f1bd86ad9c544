"""Pointing the query cache and the idempotency ``cache`` store at a real Redis.

``redis_alias_settings()`` gives a test its own ``KEY_PREFIX`` on the ``redis`` alias
(``tests/settings.py``), so tests never see each other's entries, nor those of the SQLite run
that shared this Redis before the PostgreSQL one. ``redis_server()`` starts a private
redis-server for tests that stop it (never the suite's shared one).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from django_arc import redis_alias

REDIS_URL = os.environ.get("ARC_REDIS_URL", "")


def caches_with(alias: str, location: str, prefix: str | None = None) -> dict[str, Any]:
    """``CACHES`` with ``alias`` a django-redis cache at ``location`` under its own prefix."""
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches[alias] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": prefix or f"arc-test-{uuid.uuid4().hex[:12]}",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
    }
    return caches


def command_names(packed: Any) -> list[str]:
    """The names of the commands in what a connection's ``send_packed_command`` writes (one
    command, or a pipeline's batch; bytes, or a list of chunks), read from the RESP itself:
    django-arc's hot commands reach the wire packed (``redis_alias``), not through
    ``send_command``."""
    data = packed if isinstance(packed, (bytes, bytearray)) else b"".join(bytes(c) for c in packed)
    names, at = [], 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        count = int(data[at + 1 : end])  # b"*N"
        at = end + 2
        for index in range(count):
            end = data.index(b"\r\n", at)
            length = int(data[at + 1 : end])  # b"$L"
            if index == 0:
                names.append(data[end + 2 : end + 2 + length].decode().upper())
            at = end + 2 + length + 2
    return names


def arc_with(**sections: dict[str, Any]) -> dict[str, Any]:
    """The test ``ARC`` with whole sections replaced (``CACHE={...}``)."""
    arc = dict(settings.ARC)
    arc.update(sections)
    return arc


@contextmanager
def query_cache_on_redis() -> Iterator[dict[str, Any]]:
    """The ``redis`` alias under a prefix of this test's own (:func:`caches_with`), ARC's
    query cache on it (stale after 30 s), the outage warnings of an earlier test forgotten;
    yields the alias's ``CACHES`` entry."""
    caches = caches_with("redis", REDIS_URL)
    with override_settings(
        CACHES=caches, ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})
    ):
        redis_alias.reset_outage_warnings()
        yield caches["redis"]


def idempotency(store: str = "database", **extra: Any) -> dict[str, Any]:
    """``ARC["IDEMPOTENCY"]`` on ``store``, the ``cache`` store on the ``redis`` alias."""
    return {"STORE": store, "ALIAS": "redis", "TTL_SECONDS": 3600, "NAMESPACE": "", **extra}


@contextmanager
def idempotency_store(store: str) -> Iterator[str]:
    """Idempotency keys on ``store`` (``cache``: the suite's Redis under a prefix of this
    test's own; skipped without one); yields ``store``."""
    if store == "cache" and not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency(store))):
        if not REDIS_URL:
            yield store
        else:
            with override_settings(CACHES=caches_with("redis", REDIS_URL)):
                yield store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_pid(port: int) -> int | None:
    """The process id of the Redis answering on ``port`` (``None``: none answers yet). One
    plain exchange: a client library's retries would wait seconds on a port whose process
    never answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.25) as sock:
            sock.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                reply += chunk
    except OSError:
        return None
    found = re.search(rb"process_id:(\d+)", reply)
    return int(found.group(1)) if found else None


@contextmanager
def redis_server(tmp_path: Path, policy: str = "noeviction") -> Iterator[dict[str, Any]]:
    """A private redis-server on a free port (``maxmemory-policy`` = ``policy``); yields
    ``{"url", "stop", "start"}``."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (scripts/services.sh installs it)"
    port = free_port()
    procs: list[subprocess.Popen] = []

    def start() -> None:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                policy,
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        # until this very server answers: another process may have taken the port since it
        # was picked (another test run's server, a client's ephemeral port), and then this
        # one exits while a connection to the port reaches the other; the deadline is for
        # a loaded machine
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise OSError(f"redis-server exited on port {port}")
            if server_pid(port) == proc.pid:
                return
            time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop() -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)

    for _ in range(3):  # a port taken since it was picked: another one
        try:
            start()
            break
        except OSError:
            port = free_port()
    else:
        raise AssertionError("private redis-server did not start on three free ports")
    try:
        yield {"url": f"redis://127.0.0.1:{port}/0", "stop": stop, "start": start}
    finally:
        stop()
