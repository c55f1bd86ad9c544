"""Driving the project through Django's real ``ASGIHandler``, as an ASGI server would.

``django.test.AsyncClient`` is not the handler a server runs: it closes the response in the
request's own task (and on a worker thread), where ``ASGIHandler`` answers from a task of its
own and closes the response afterwards from the parent task, through the thread-sensitive
executor. What runs when a response is closed must be tested against the real handler.

:func:`serve` runs one request with ``asyncio.run`` in a thread of its own, so there is no
outer ``async_to_sync``: as under uvicorn or Daphne, ``ASGIHandler``'s
``ThreadSensitiveContext`` gives the request a sync thread of its own, which ends with it.
:func:`serve_many` runs several requests at once on one loop the same way.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from django.core.handlers.asgi import ASGIHandler
from django.test import Client

#: a CSRF secret sent both as the cookie and the header, as a browser's page would
CSRF = "a" * 32


@dataclass
class Answer:
    """What the server sent: status, headers (lower-cased names), body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        return self.headers.get(name.lower(), default)


def session_headers(user: Any, **headers: str) -> dict[str, str]:
    """Headers of a browser logged in as ``user`` (session and CSRF cookies, the CSRF
    header), plus ``headers``."""
    client = Client()
    client.force_login(user)
    cookie = SimpleCookie()
    cookie["sessionid"] = client.cookies["sessionid"].value
    cookie["csrftoken"] = CSRF
    return {
        "cookie": "; ".join(f"{k}={m.value}" for k, m in cookie.items()),
        "x-csrftoken": CSRF,
        **headers,
    }


def scope_of(
    method: str, url: str, headers: dict[str, str], body: bytes, scheme: str = "http"
) -> dict[str, Any]:
    parts = urlsplit(url)
    pairs = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if body:
        pairs.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *pairs],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


async def _request(
    handler: ASGIHandler,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    scheme: str = "http",
    leave: threading.Event | None = None,
) -> Answer | None:
    messages: list[dict[str, Any]] = []
    sent = asyncio.Event()
    body_read = False

    async def receive() -> dict[str, Any]:
        nonlocal body_read
        if not body_read:
            body_read = True
            return {"type": "http.request", "body": body, "more_body": False}
        if leave is not None:  # the client goes away once told to, answered or not
            while not leave.is_set():
                await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}
        await sent.wait()  # the client stays until the answer is whole
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            sent.set()

    await handler(scope_of(method, url, headers, body, scheme), receive, send)
    if not messages:
        return None  # the client left before the answer
    start = messages[0]
    return Answer(
        status=start["status"],
        headers={k.decode().lower(): v.decode() for k, v in start["headers"]},
        content=b"".join(m.get("body", b"") for m in messages[1:]),
    )


def _in_own_thread(coroutine_factory: Any) -> Any:
    """Run the coroutine ``coroutine_factory()`` makes on a new loop in a new thread: no
    ``async_to_sync`` above it, as under an ASGI server."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(("ok", asyncio.run(coroutine_factory())))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            result.append(("error", exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert result, "the ASGI request did not finish"
    kind, value = result[0]
    if kind == "error":
        raise value
    return value


def serve(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    scheme: str = "http",
    leave: threading.Event | None = None,
) -> Answer | None:
    """One request through ``ASGIHandler``, as a server runs it (``scheme`` is the
    scope's: what the server was reached over). With ``leave``, the client disconnects once
    it is set; ``None`` when that was before the answer."""
    handler = ASGIHandler()
    return _in_own_thread(
        lambda: _request(handler, method, url, headers or {}, body, scheme, leave)
    )


def serve_many(requests: list[tuple[str, str, dict[str, str], bytes]]) -> list[Answer]:
    """Several requests at once on one loop, each with its own sync thread."""
    handler = ASGIHandler()

    async def all_of() -> list[Answer]:
        return list(await asyncio.gather(*(_request(handler, *r) for r in requests)))

    return _in_own_thread(all_of)
