"""Transports and helpers for the outbox/relay tests.

``FileTransport`` lets *other processes* (``arc_relay`` subprocesses) publish somewhere the
test can read back: each process appends JSON lines to its own file, so concurrent workers
never interleave writes and a SIGKILLed worker can be told apart from the survivors.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django_arc.events.event import Event
from django_arc.events.transports import Transport


class FileTransport(Transport):
    """Appends ``{"id", "type", "pid"}`` lines to ``<directory>/<pid>.jsonl``.

    ``delay`` sleeps inside ``publish_many`` (after writing) to widen the window between
    publish and acknowledgement, which is where a hard kill produces duplicates.
    ``ARC_RELAY_TEST_HOLD`` names a file each ``publish_many`` waits for instead (after
    writing): a test that must signal the worker mid-batch does so, then creates the file,
    rather than racing a fixed delay.
    """

    def __init__(self, directory: str | None = None, delay: float | None = None, **_: Any):
        super().__init__()
        self.directory = Path(directory or os.environ["ARC_RELAY_TEST_DIR"])
        self.delay = float(
            delay if delay is not None else os.environ.get("ARC_RELAY_TEST_DELAY", 0)
        )

    def _write(self, events: Iterable[Event]) -> None:
        pid = os.getpid()
        lines = "".join(json.dumps({"id": e.id, "type": e.type, "pid": pid}) + "\n" for e in events)
        fd = os.open(self.directory / f"{pid}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)

    def publish(self, event: Event) -> None:
        self._write([event])

    def publish_many(self, events: Iterable[Event]) -> list[None]:
        events = list(events)
        self._write(events)
        if self.delay:
            time.sleep(self.delay)
        hold = os.environ.get("ARC_RELAY_TEST_HOLD")
        if hold:
            deadline = time.monotonic() + 120
            while not os.path.exists(hold) and time.monotonic() < deadline:
                time.sleep(0.02)
        return [None] * len(events)


def read_published(directory: Path) -> dict[int, list[str]]:
    """``{pid: [event ids in publish order]}``; a torn last line (SIGKILL mid-write) is ignored."""
    out: dict[int, list[str]] = {}
    for path in sorted(Path(directory).glob("*.jsonl")):
        ids: list[str] = []
        for line in path.read_text().splitlines():
            try:
                ids.append(json.loads(line)["id"])
            except (ValueError, KeyError):
                continue
        out[int(path.stem)] = ids
    return out


class RecordingTransport:
    """In-process transport with optional failures by event type.

    ``fail_types`` raise on every publish; ``fail_once`` ids raise the first time only.
    ``many=False`` hides ``publish_many`` to exercise the one-by-one path.
    """

    def __init__(
        self, fail_types: Iterable[str] = (), fail_once: Iterable[str] = (), many: bool = True
    ) -> None:
        self.published: list[Event] = []
        self.calls: list[str] = []
        self.fail_types = set(fail_types)
        self.fail_once = set(fail_once)
        if not many:
            self.publish_many = None  # type: ignore[assignment]

    def publish(self, event: Event) -> None:
        self.calls.append("publish")
        if event.type in self.fail_types:
            raise ConnectionError(f"broker refused {event.type}")
        if event.id in self.fail_once:
            self.fail_once.discard(event.id)
            raise ConnectionError(f"transient failure for {event.id}")
        self.published.append(event)

    def publish_many(self, events: Iterable[Event]) -> None:  # noqa: F811 - may be hidden
        self.calls.append("publish_many")
        events = list(events)
        if any(e.type in self.fail_types or e.id in self.fail_once for e in events):
            raise ConnectionError("batch refused")
        self.published.extend(events)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.published]
