"""Outbox benchmark (PostgreSQL): write overhead, relay throughput, claim query plan.

    eval "$(scripts/services.sh env)"          # ARC_PG_* and ARC_REDIS_URL
    python benchmarks/outbox.py [--requests 300] [--rounds 12] [--events 20000]
                                [--relay-rounds 3] [--write-docs]

1. **Create throughput**: ``POST /api/products/`` through the real resource stack (scope
   middleware, permissions, tenancy, serializer, ``resource_event``), driven in-process with
   DRF's ``APIClient`` (no HTTP server, so the numbers isolate the framework + database
   cost). Three modes, interleaved in rounds so drift hits them equally: *outbox on* (the
   event row is inserted in the write's transaction), *outbox off* (published to the memory
   transport after commit) and *events off* (the ``resource_event`` receiver disconnected and
   the outbox off, so a plain write needs no transaction).
2. **Relay throughput against the raw-SQL ceiling**: 1, 2 and 4 ``manage.py arc_relay``
   processes at batch sizes 100 and 500 drain N pending events to ``MemoryTransport`` and to
   ``RedisStreamsTransport``, and so do as many ``benchmarks/outbox_ceiling.py`` processes
   (the same claim, lease, publish and mark on psycopg) with the same settings, back to back
   in interleaved rounds; the report gives relay ÷ ceiling per round. The clock starts when
   the events are committed and stops when no pending row is left (worker start-up is
   excluded: the workers are idle-polling before the insert).
3. **Claim plan**: ``EXPLAIN (ANALYZE, BUFFERS)`` of the claim query with every delivered row
   from step 2 still in the table and 1,000 pending rows.

It runs against its own database (``arc_bench_outbox``, dropped and re-created), never the
test or demo databases.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


# -- 2. relay throughput, against the raw-SQL ceiling ------------------------------------------

KINDS = ("relay", "ceiling")


def _worker_command(kind: str, transport: str, batch: int, worker_id: str) -> list[str]:
    if kind == "relay":
        return [
            sys.executable, "-m", "django", "arc_relay", "--interval", "0.02",
            "--batch-size", str(batch), "--worker-id", worker_id, "--skip-checks",
        ]  # fmt: skip
    return [
        sys.executable, str(REPO / "benchmarks" / "outbox_ceiling.py"), "--interval", "0.02",
        "--batch-size", str(batch), "--worker-id", worker_id, "--transport", transport,
    ]  # fmt: skip


def _start_workers(
    kind: str, count: int, transport: str, batch: int, logdir: Path
) -> list[subprocess.Popen]:
    env = {**_env(), "ARC_BENCH_TRANSPORT": transport}
    ready = b"arc_relay.start" if kind == "relay" else b"ceiling.start"
    procs, paths = [], []
    for i in range(count):
        path = logdir / f"{kind}-{transport}-{batch}-{count}-{i}.log"
        log = open(path, "wb")  # noqa: SIM115
        paths.append(path)
        procs.append(
            subprocess.Popen(
                _worker_command(kind, transport, batch, f"bench-{kind}-{i}"),
                env=env,
                cwd=str(REPO),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    # Wait until every worker is polling (its start line is written after set-up).
    deadline = time.monotonic() + 60
    for proc, path in zip(procs, paths, strict=True):
        while ready not in path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{kind} worker failed to start:\n{path.read_text()}")
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


def seed(events: Iterable[Any]) -> None:
    """Pending rows exactly as ``store_event`` writes them, loaded with ``COPY`` in one
    transaction (``store_many``'s ORM ``INSERT`` took 4.4 s for 20,000 rows, more than the
    relay runs it feeds)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from django_arc.outbox import OutboxEvent
    from django_arc.outbox.store import stored_meta

    columns = (
        "event_id, type, payload, meta, status, attempts, visible_at, partition_key, "
        "last_error, created_at"
    )
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            with cursor.cursor.copy(
                f"COPY {OutboxEvent._meta.db_table} ({columns}) FROM STDIN"
            ) as copy:
                for event in events:
                    copy.write_row(
                        (
                            event.id,
                            event.type,
                            json.dumps(event.payload),
                            json.dumps(stored_meta(event.meta)),
                            "pending",
                            0,
                            now,
                            event.meta.partition_key,
                            "",
                            now,
                        )
                    )


def bench_relay(
    events: int, kind: str, transport: str, batch: int, workers: int, logdir: Path
) -> float:
    """Events/s for ``workers`` processes of ``kind`` draining ``events`` pending rows.

    The table is emptied first, so every run starts from the same state; the clock starts
    when the rows are committed and stops when none is pending (the workers are already
    idle-polling, so their start-up is not timed)."""
    from django.db import connection

    from django_arc.events.event import create_event
    from django_arc.outbox import OutboxEvent

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {OutboxEvent._meta.db_table}")
    if transport == "redis":
        import redis

        redis.Redis.from_url(os.environ["ARC_REDIS_URL"]).delete("arc:bench")
    procs = _start_workers(kind, workers, transport, batch, logdir)
    try:
        seed(
            create_event("orders.created", {"n": i, "sku": f"S{i}"}, partition_key=f"o:{i % 500}")
            for i in range(events)
        )
        started = time.perf_counter()
        pending = OutboxEvent.objects.filter(status="pending")
        while pending.exists():
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        _stop_workers(procs)
    delivered = OutboxEvent.objects.filter(status="delivered").count()
    if delivered != events:
        raise SystemExit(f"{kind}: {delivered} of {events} events delivered")
    if transport == "redis":
        import redis

        length = redis.Redis.from_url(os.environ["ARC_REDIS_URL"]).xlen("arc:bench")
        if length < events:
            raise SystemExit(f"stream holds {length} entries, expected {events}")
    return events / elapsed


def bench_relays(args: argparse.Namespace, logdir: Path) -> dict[tuple, list[float]]:
    """Every configuration, relay and ceiling back to back, in ``args.relay_rounds`` rounds;
    the order of the two kinds alternates and the configurations rotate every round, so
    drift (and whatever else loads the machine) hits both sides alike."""
    configs = [
        (transport, batch, workers)
        for transport in args.transports
        for batch in args.batch_sizes
        for workers in args.workers
    ]
    samples: dict[tuple, list[float]] = {}
    for r in range(args.relay_rounds):
        shift = r % len(configs)
        for i, config in enumerate(configs[shift:] + configs[:shift]):
            kinds = KINDS if (r + i) % 2 == 0 else KINDS[::-1]
            load = os.getloadavg()[0]
            for kind in kinds:
                rate = bench_relay(args.events, kind, *config, logdir)
                samples.setdefault((kind, *config), []).append(rate)
                samples.setdefault(("load", *config), []).append(load)
                transport, batch, workers = config
                print(
                    f"round {r + 1} {kind:7} {transport:6} batch {batch:3} x{workers}: "
                    f"{rate:8,.0f} ev/s (load {load:.1f})",
                    flush=True,
                )
    return samples


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
    relay: dict[tuple, list[float]],
    plan: str,
    delivered: int,
    pending: int,
    args: argparse.Namespace,
) -> str:
    from django.db import connection

    lines = [START, "## Outbox", ""]
    requests = (
        "--skip-requests" if req is None else f"--requests {args.requests} --rounds {args.rounds}"
    )
    lines.append(
        f"`python benchmarks/outbox.py {requests} "
        f"--events {args.events} --relay-rounds {args.relay_rounds}` on "
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
            f"### Relay throughput against the raw-SQL ceiling ({args.events:,} events per run, "
            f"{args.relay_rounds} interleaved rounds, per-round medians)",
            "",
            "| transport | batch | workers | relay ev/s | ceiling ev/s | relay ÷ ceiling "
            "(median; min–max of rounds) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        loads = []
        for transport in args.transports:
            for batch in args.batch_sizes:
                for workers in args.workers:
                    key = (transport, batch, workers)
                    mine, ceiling = relay[("relay", *key)], relay[("ceiling", *key)]
                    ratios = [a / b for a, b in zip(mine, ceiling, strict=True)]
                    loads += relay[("load", *key)]
                    name = "memory" if transport == "memory" else "Redis Streams"
                    lines.append(
                        f"| {name} | {batch} | {workers} | {statistics.median(mine):,.0f} | "
                        f"{statistics.median(ceiling):,.0f} | **{statistics.median(ratios):.2f}**"
                        f"; {min(ratios):.2f}–{max(ratios):.2f} |"
                    )
        lines += [
            "",
            f"Machine load (1-minute load average before each pair): {min(loads):.1f}–"
            f"{max(loads):.1f} on {os.cpu_count()} cores.",
            "",
        ]
    lines += [
        "",
        "Notes: *events off* has no receiver and no transaction, so its create is one "
        "autocommit `INSERT`; *outbox on* is `BEGIN`, the `INSERT`, the outbox row's `INSERT` "
        "and `COMMIT`. In process, with no HTTP server in the baseline, that is the largest "
        "relative figure this write path can show; the same comparison over HTTP (gunicorn + "
        "wrk, `benchmarks/outbox_requests.py`) is in the section above. *relay* is "
        "`manage.py arc_relay` processes; *ceiling* is `benchmarks/outbox_ceiling.py`, the "
        "same claim, lease, publish and mark written directly on psycopg (same statements, "
        "batch size, worker count and transport). Each run starts from an empty outbox table; "
        "on a 2-core machine two workers (each with its PostgreSQL backend) already use both "
        "cores, so four add contention rather than throughput.",
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
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--transports", nargs="+", default=None, choices=["memory", "redis"])
    parser.add_argument("--skip-requests", action="store_true")
    parser.add_argument("--skip-relay", action="store_true")
    parser.add_argument("--relay-rounds", type=int, default=3, help="interleaved relay rounds")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
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

    relay: dict[tuple, list[float]] = {}
    if args.transports:
        with tempfile.TemporaryDirectory() as logdir:
            relay = bench_relays(args, Path(logdir))
    plan, delivered, pending = claim_plan()
    section = render(req, relay, plan, delivered, pending, args)
    print(section)
    if args.write_docs:
        write_docs(section)


if __name__ == "__main__":
    main()
