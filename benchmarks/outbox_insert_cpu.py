"""Where the outbox INSERT's Django-process CPU goes: the numbers behind "Reading the numbers"
of the outbox create benchmark (``docs/benchmarks.md``).

Everything runs inside one transaction that is rolled back, on PostgreSQL. Each line is
``time.process_time()`` per call, the lowest of 5 batches, so the time PostgreSQL spends and
the time spent waiting for it are left out:

- ``SELECT 1``: one bare round trip through Django's cursor;
- the outbox ``INSERT`` with its values given as ready-made strings (Django's cursor, psycopg's
  client-side binding, which is Django's default on psycopg 3);
- the same ``INSERT`` on a psycopg cursor that binds server-side;
- the receiver's insert of an event built beforehand (``store_event_without_row``), i.e. the
  INSERT plus turning the event into row values.

Usage::

    python benchmarks/outbox_insert_cpu.py            # starts a throwaway PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402

harness.setup_django()

#: the payload of a ``crud.py`` create event
PAYLOAD = {
    "id": 123,
    "data": {
        "id": 123,
        "name": "Bench item",
        "sku": "BENCH-1",
        "price": "12.50",
        "status": "active",
        "category": 3,
        "in_stock": True,
        "created_at": "2026-12-01T21:00:00.123456Z",
    },
}


def cpu_us(fn: Callable[[], Any], calls: int, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - start) * 1e6 / calls)
    return best


def run(args: argparse.Namespace) -> None:
    import psycopg
    from django.core.management import call_command
    from django.db import connection, transaction

    from django_arc.events import create_event
    from django_arc.outbox import store

    call_command("migrate", verbosity=0)
    calls = args.calls

    def new_event() -> Any:
        return create_event(
            "items.created",
            PAYLOAD,
            resource="items",
            resource_id="123",
            partition_key="items:123",
            correlation_id="bench",
            source="django-arc",
        )

    sql = store._insert_statement(connection)
    meta = json.dumps(store.stored_meta(new_event().meta))
    payload = json.dumps(PAYLOAD)

    def values() -> list[Any]:
        # no visible_at nor created_at: the database's statement_timestamp() on PostgreSQL
        return [str(uuid.uuid4()), "items.created", payload, meta, None, None, "items:123"]

    with transaction.atomic():
        cursor = connection.cursor()
        server_side = psycopg.Cursor(connection.connection)
        # Built before timing: the receiver is handed a built event too.
        events = iter([new_event() for _ in range(calls * 6 + 1)])
        rows = [
            ("SELECT 1", lambda: cursor.execute("SELECT 1")),
            ("outbox INSERT, values as strings", lambda: cursor.execute(sql, values())),
            ("the same INSERT, server-side binding", lambda: server_side.execute(sql, values())),
            (
                "store_event_without_row(event)",
                lambda: store.store_event_without_row(next(events)),
            ),
        ]
        print("| what | CPU µs per call |\n|---|---:|")
        for label, fn in rows:
            print(f"| {label} | {cpu_us(fn, calls):.1f} |")
        transaction.set_rollback(True)
    print("\n" + "\n".join(harness.machine_notes("in-process", {})[:2]))


def main() -> int:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--calls", type=int, default=2000, help="calls per batch")

    return harness.main("outbox INSERT CPU breakdown", run, configure)


if __name__ == "__main__":
    sys.exit(main())
