"""The raw-SQL ceiling for the relay: the same work as ``manage.py arc_relay``, on psycopg.

One process of it is one relay worker written by hand against the outbox table, for
``benchmarks/outbox.py`` to run side by side with ``arc_relay`` (same batch size, same number of
workers, same transport) and report relay ÷ ceiling. Per batch it does what the relay does and
nothing more:

1. claim + lease: in one transaction, the planner guard and the relay's own claim statement
   (``UPDATE … = ANY(ARRAY(SELECT … ORDER BY visible_at, id LIMIT n FOR UPDATE SKIP LOCKED))
   RETURNING …``), rows sorted by ``(visible_at, id)``;
2. publish: to a ``MemoryTransport`` (``Event`` objects, as its subscribers need), or to the
   same Redis stream with one pipelined ``XADD type <type> data <arc's JSON>`` per event;
3. mark delivered: one ``UPDATE … WHERE id = ANY(%s) AND status = 'pending' AND lease_owner =
   %s``.

psycopg's own cursor binds parameters server-side, which Django's cursor does not: that is
part of what a hand-written loop gets for free. Its automatic prepared statements are turned
off (``prepare_threshold=None``): prepared, the claim switched to PostgreSQL's generic plan
after five executions and the ceiling ran at about half the relay's speed (measured at batch
500: 8,168 against 17,730 ev/s unprepared, one worker); ``ARC_CEILING_PREPARE=1`` turns them
back on to see it.

    python benchmarks/outbox_ceiling.py --transport memory|redis --batch-size 100 --worker-id c0

Runs until SIGTERM; prints ``ceiling.start`` once connected and idle-polling.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: snake_case ``EventMeta`` keys as the outbox stores them → arc's camelCase wire keys.
from django_arc.events.wire import META_KEYS  # noqa: E402

TABLE = "django_arc_outboxevent"
GUARD = (
    "SELECT set_config('enable_sort', 'off', true), "
    "set_config('enable_incremental_sort', 'off', true)"
)
CLAIM = (
    f"UPDATE {TABLE} SET lease_owner = %s, "
    "lease_expires_at = statement_timestamp() + make_interval(secs => %s) "
    f"WHERE id = ANY(ARRAY(SELECT id FROM {TABLE} WHERE status = 'pending' "
    "AND visible_at <= statement_timestamp() AND (lease_expires_at IS NULL OR lease_expires_at < "
    "statement_timestamp()) "
    "ORDER BY visible_at, id LIMIT %s FOR UPDATE SKIP LOCKED)) "
    "RETURNING id, event_id, type, payload, meta, visible_at"
)
MARK = (
    f"UPDATE {TABLE} SET status = 'delivered', delivered_at = %s, lease_owner = NULL, "
    "lease_expires_at = NULL WHERE id = ANY(%s) AND status = 'pending' AND lease_owner = %s"
)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def wire_meta(meta_json: str) -> str:
    """arc's ``meta`` from the stored snake_case one: camelCase keys, nulls left out, the
    timestamp as ``toISOString()`` (stored as UTC ``isoformat()`` with microseconds)."""
    meta = json.loads(meta_json)
    out = {META_KEYS[k]: v for k, v in meta.items() if v is not None}
    out["timestamp"] = out["timestamp"][:23] + "Z"
    return _dumps(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="raw psycopg relay worker (the ceiling)")
    parser.add_argument("--transport", choices=["memory", "redis"], default="memory")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--worker-id", default=f"ceiling-{os.getpid()}")
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--stream", default="arc:bench")
    parser.add_argument("--maxlen", type=int, default=1_000_000)
    args = parser.parse_args()

    import django

    django.setup()  # for Event / MemoryTransport and the same signal receivers as arc_relay
    import psycopg
    from psycopg.types.string import TextLoader

    from django_arc.events.event import Event, EventMeta
    from django_arc.events.transports import MemoryTransport

    conn = psycopg.connect(
        host=os.environ.get("ARC_PG_HOST", "127.0.0.1"),
        port=os.environ.get("ARC_PG_PORT", "5432"),
        user=os.environ.get("ARC_PG_USER", "arc"),
        password=os.environ.get("ARC_PG_PASSWORD", ""),
        dbname=os.environ["ARC_PG_NAME"],
        prepare_threshold=5 if os.environ.get("ARC_CEILING_PREPARE") == "1" else None,
    )
    # jsonb as text, as Django's PostgreSQL backend registers it: the payload is spliced.
    conn.adapters.register_loader("jsonb", TextLoader)
    memory = MemoryTransport()
    client = None
    if args.transport == "redis":
        import redis

        client = redis.Redis.from_url(os.environ["ARC_REDIS_URL"])
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    print("ceiling.start", flush=True)
    worker, batch, relayed = args.worker_id, args.batch_size, 0
    while not stopping:
        with conn.transaction():
            conn.execute(GUARD)
            rows = conn.execute(CLAIM, (worker, 30.0, batch)).fetchall()
        if not rows:
            time.sleep(args.interval)
            continue
        rows.sort(key=lambda row: (row[5], row[0]))
        if client is None:
            memory.publish_many(
                [
                    Event(t, json.loads(p), EventMeta.from_dict(json.loads(m)))
                    for _, _, t, p, m, _ in rows
                ]
            )
        else:
            pipe = client.pipeline(transaction=False)
            for _, _, t, p, m, _ in rows:
                data = f'{{"type":{_dumps(t)},"payload":{p},"meta":{wire_meta(m)}}}'
                pipe.xadd(
                    args.stream, {"type": t, "data": data}, maxlen=args.maxlen, approximate=True
                )
            pipe.execute()
        conn.execute(MARK, (datetime.now(UTC), [row[0] for row in rows], worker))
        conn.commit()
        relayed += len(rows)
    print(f"ceiling.stop relayed={relayed}", flush=True)


if __name__ == "__main__":
    main()
