"""Outbox benchmark (PostgreSQL): write overhead, relay throughput, claim query plan.

    eval "$(scripts/services.sh env)"          # ARC_PG_* and ARC_REDIS_URL
    python benchmarks/outbox.py [--requests 300] [--rounds 12] [--events 50000] [--write-docs]

1. **Create throughput**: ``POST /api/products/`` through the real resource stack (scope
   middleware, permissions, tenancy, serializer, ``resource_event``), driven in-process with
   DRF's ``APIClient`` (no HTTP server, so the numbers isolate the framework + database
   cost). Three modes, interleaved in rounds so drift hits them equally: *outbox on* (the
   event row is inserted in the write's transaction), *outbox off* (published to the memory
   transport after commit) and *events off* (the ``resource_event`` receiver disconnected and
   the outbox off, so a plain write needs no transaction).
2. **Relay throughput**: 1, 2 and 4 ``manage.py arc_relay`` processes (default batch size
   100) drain N pending events to ``MemoryTransport`` and to ``RedisStreamsTransport``;
   the clock starts when the events are committed and stops when no pending row is left
   (worker start-up is excluded: the workers are idle-polling before the insert).
3. **Claim plan**: ``EXPLAIN (ANALYZE, BUFFERS)`` of the claim query with every delivered row
   from step 2 still in the table and 1,000 pending rows.

It runs against its own database (``arc_bench_outbox``, dropped and re-created), never the
test or demo databases.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DB = "arc_bench_outbox"
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- outbox-benchmark:start -->", "<!-- outbox-benchmark:end -->"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ARC_TEST_DB="postgres",
        ARC_PG_NAME=BENCH_DB,
        DJANGO_SETTINGS_MODULE="benchmarks.outbox_settings",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "example_project")]),
        PYTHONUNBUFFERED="1",
    )
    return env


def _recreate_database() -> None:
    import psycopg

    conninfo = dict(
        host=os.environ.get("ARC_PG_HOST", "127.0.0.1"),
        port=os.environ.get("ARC_PG_PORT", "5432"),
        user=os.environ.get("ARC_PG_USER", "arc"),
        password=os.environ.get("ARC_PG_PASSWORD", ""),
        dbname="postgres",
        autocommit=True,
    )
    with psycopg.connect(**conninfo) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _setup_django() -> None:
    os.environ.update(_env())
    sys.path[:0] = [str(REPO), str(REPO / "example_project")]
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# -- 1. create throughput ---------------------------------------------------------------------


def bench_requests(n: int, rounds: int) -> dict[str, float]:
    from django.contrib.auth import get_user_model
    from django.test import override_settings
    from rest_framework.test import APIClient

    from django_arc.outbox import OutboxEvent
    from django_arc.outbox.receivers import store_resource_event
    from django_arc.settings import arc_settings
    from django_arc.signals import resource_event
    from shop.models import Membership, Organization

    org = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("bench", password="x")
    Membership.objects.create(user=user, organization=org, role="admin")
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    counter = iter(range(10**9))

    def run(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            i = next(counter)
            response = client.post(
                "/api/products/",
                {"name": f"Bench {i}", "sku": f"B{i}", "price": "9.99"},
                format="json",
            )
            if response.status_code != 201:
                raise SystemExit(f"create failed: {response.status_code} {response.content!r}")
        return count / (time.perf_counter() - started)

    base_arc = dict(arc_settings.user_settings)
    off = {**base_arc, "EVENTS": {**arc_settings.EVENTS, "OUTBOX": False}}
    rates: dict[str, list[float]] = {"outbox on": [], "outbox off": [], "events off": []}

    def measure(mode: str) -> float:
        if mode == "outbox on":
            return run(n)
        if mode == "outbox off":
            with override_settings(ARC=off):
                return run(n)
        # no events at all: nothing stored, nothing published, and so no transaction is
        # needed for a plain write (OUTBOX False) — the like-for-like baseline
        resource_event.disconnect(dispatch_uid="django_arc.outbox.store_resource_event")
        try:
            with override_settings(ARC=off):
                return run(n)
        finally:
            resource_event.connect(
                store_resource_event, dispatch_uid="django_arc.outbox.store_resource_event"
            )

    run(100)  # warm-up: imports, caches, connection
    modes = list(rates)
    for r in range(rounds):
        # Rotate the order so no mode always runs first (or right after a checkpoint).
        for mode in modes[r % 3 :] + modes[: r % 3]:
            rates[mode].append(measure(mode))
    stored = OutboxEvent.objects.filter(type="products.created").count()
    expected = (rounds * n) + 100
    if stored != expected:
        raise SystemExit(f"expected {expected} outbox rows from 'outbox on' runs, got {stored}")
    summary = {mode: statistics.median(values) for mode, values in rates.items()}
    # Paired per round: both modes of a round saw the same background load.
    for mode in ("outbox on", "outbox off"):
        summary[f"{mode} overhead"] = statistics.median(
            (off_ - on_) / off_ * 100
            for on_, off_ in zip(rates[mode], rates["events off"], strict=True)
        )
    return summary


# -- 2. relay throughput ----------------------------------------------------------------------


def _start_workers(count: int, transport: str, logdir: Path) -> list[subprocess.Popen]:
    env = {**_env(), "ARC_BENCH_TRANSPORT": transport}
    procs = []
    for i in range(count):
        log = open(logdir / f"{transport}-{count}-{i}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "django",
                    "arc_relay",
                    "--interval",
                    "0.02",
                    "--worker-id",
                    f"bench-{i}",
                    "--skip-checks",
                ],
                env=env,
                cwd=str(REPO),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    # Wait until every worker is polling (its start line is written after set-up).
    deadline = time.monotonic() + 60
    for i in range(count):
        path = logdir / f"{transport}-{count}-{i}.log"
        while b"arc_relay.start" not in path.read_bytes():
            if procs[i].poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"relay worker failed to start:\n{path.read_text()}")
            time.sleep(0.05)
    return procs


def _stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        if proc.wait(timeout=60) != 0:
            raise SystemExit(f"relay worker exited {proc.returncode}")
        if proc.stdout:
            proc.stdout.close()


def bench_relay(events: int, transport: str, workers: int, logdir: Path) -> float:
    from django.db import transaction

    from django_arc.events.event import create_event
    from django_arc.outbox import EventOutbox, OutboxEvent

    if transport == "redis":
        import redis

        redis.Redis.from_url(os.environ["ARC_REDIS_URL"]).delete("arc:bench")
    procs = _start_workers(workers, transport, logdir)
    try:
        batch = [
            create_event("orders.created", {"n": i, "sku": f"S{i}"}, partition_key=f"o:{i % 500}")
            for i in range(events)
        ]
        with transaction.atomic():
            EventOutbox(None).store_many(batch)
        started = time.perf_counter()
        pending = OutboxEvent.objects.filter(status="pending")
        while pending.exists():
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        _stop_workers(procs)
    if (
        OutboxEvent.objects.filter(
            event_id__in=[batch[0].id, batch[-1].id], status="delivered"
        ).count()
        != 2
    ):
        raise SystemExit("events were not delivered")
    if transport == "redis":
        import redis

        length = redis.Redis.from_url(os.environ["ARC_REDIS_URL"]).xlen("arc:bench")
        if length < events:
            raise SystemExit(f"stream holds {length} entries, expected {events}")
    return events / elapsed


# -- 3. claim plan ------------------------------------------------------------------------------


def claim_plan() -> tuple[str, int, int]:
    from django.db import connection

    from django_arc.events.event import create_event
    from django_arc.outbox import EventOutbox, OutboxEvent

    outbox = EventOutbox(None)
    outbox.store_many(create_event("orders.created", {"n": i}) for i in range(1000))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxEvent._meta.db_table}")
    delivered = OutboxEvent.objects.filter(status="delivered").count()
    pending = OutboxEvent.objects.filter(status="pending").count()
    plan = outbox.explain_claim(100, analyze=True, buffers=True)
    return plan, delivered, pending


# -- report -------------------------------------------------------------------------------------


def _machine() -> str:
    cpus = os.cpu_count()
    return (
        f"{platform.system()} {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"
    )


def render(
    req: dict[str, float] | None,
    relay: dict[tuple[str, int], float],
    plan: str,
    delivered: int,
    pending: int,
    args: argparse.Namespace,
) -> str:
    from django.db import connection

    lines = [START, "## Outbox", ""]
    lines.append(
        f"`python benchmarks/outbox.py --requests {args.requests} --rounds {args.rounds} "
        f"--events {args.events}` on "
        f"{_machine()}, PostgreSQL {connection.pg_version // 10000} (local, fsync=off), "
        f"Redis on loopback. The machine is shared with other jobs; expect ±20 % between runs."
    )
    lines.append("")
    if req:
        lines += [
            "### Create throughput (`POST /api/products/`, in-process APIClient, median of "
            f"{args.rounds} rounds × {args.requests} requests)",
            "",
            "| mode | requests/s (median) | overhead vs events off (median of per-round pairs) |",
            "|---|---:|---:|",
        ]
        for mode in ("events off", "outbox off", "outbox on"):
            overhead = req.get(f"{mode} overhead", 0.0)
            lines.append(f"| {mode} | {req[mode]:,.0f} | {overhead:+.1f} % |")
        lines.append("")
    if relay:
        lines += [
            f"### Relay throughput ({args.events:,} events, `arc_relay` processes, batch size 100, "
            f"best of {args.repeat})",
            "",
            "| transport | 1 worker | 2 workers | 4 workers |",
            "|---|---:|---:|---:|",
        ]
        for transport in args.transports:
            cells = [f"{relay[(transport, w)]:,.0f} ev/s" for w in (1, 2, 4)]
            name = "MemoryTransport" if transport == "memory" else "RedisStreamsTransport"
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Notes: *events off* has no receiver and no transaction, so its create is one "
        "autocommit `INSERT`; *outbox on* is `BEGIN`, the `INSERT`, the outbox row's `INSERT` "
        "and `COMMIT`. In process, with no HTTP server in the baseline, that is the largest "
        "relative figure this write path can show; the same comparison over HTTP (gunicorn + "
        "wrk, `benchmarks/outbox_requests.py`) is in the section above. Relay workers are "
        "separate processes; on a 2-core machine two workers (each with its PostgreSQL "
        "backend) already use both cores, so four add contention rather than throughput.",
    ]
    lines += [
        "",
        f"### Claim query plan ({delivered:,} delivered rows, {pending:,} pending)",
        "",
        "```",
        plan,
        "```",
        "",
        END,
    ]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--transports", nargs="+", default=None, choices=["memory", "redis"])
    parser.add_argument("--skip-requests", action="store_true")
    parser.add_argument("--skip-relay", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=2, help="relay runs per configuration; the best is kept"
    )
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOC}")
    args = parser.parse_args()
    if args.transports is None:
        args.transports = ["memory"] + (["redis"] if os.environ.get("ARC_REDIS_URL") else [])
    if args.skip_relay:
        args.transports = []
    if not os.environ.get("ARC_PG_PORT"):
        raise SystemExit('set ARC_PG_* first: eval "$(scripts/services.sh env)"')

    _recreate_database()
    _setup_django()
    req = None if args.skip_requests else bench_requests(args.requests, args.rounds)
    if req:
        print("create:", {k: round(v) for k, v in req.items()}, flush=True)

    import tempfile

    relay: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as logdir:
        for transport in args.transports:
            for workers in (1, 2, 4):
                relay[(transport, workers)] = max(
                    bench_relay(args.events, transport, workers, Path(logdir))
                    for _ in range(args.repeat)
                )
                print(
                    f"relay {transport} x{workers}: {relay[(transport, workers)]:,.0f} ev/s",
                    flush=True,
                )
    plan, delivered, pending = claim_plan()
    section = render(req, relay, plan, delivered, pending, args)
    print(section)
    if args.write_docs:
        write_docs(section)


if __name__ == "__main__":
    main()
