"""What the transactional outbox costs a create, over HTTP: issue #5's request benchmark.

The same django-arc resource (``/arc/items/``, the ``Item`` of ``crud.py``), the same
project, PostgreSQL, gunicorn sync workers and ``wrk`` on loopback, two servers that differ
only in ``ARC["EVENTS"]``, measured in one run:

- *events off*: ``OUTBOX: False`` and a transport that drops events — the create is one
  autocommit ``INSERT`` (the like-for-like baseline: no event is kept anywhere);
- *outbox on*: the default — the create and its outbox row in one transaction
  (``BEGIN``, ``INSERT … RETURNING``, outbox ``INSERT``, ``COMMIT``);
- for information, *events off, ATOMIC_REQUESTS*: events off in a project that runs every
  request in a transaction, the usual Django setting — the create's ``INSERT`` between
  ``BEGIN`` and ``COMMIT``. Outbox on against it is what the outbox row itself costs.

Overhead = ``baseline req/s ÷ outbox req/s − 1`` per round (the same minute's samples
paired), median over rounds; CPU per request of the Django process and SQL statements per
request in-process. The verdict is against *events off*. Usage::

    python benchmarks/outbox_requests.py                  # starts a throwaway PostgreSQL
    python benchmarks/outbox_requests.py --rounds 5 --write-docs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402
from benchmarks.crud import CREATE_BODY, prepare_data  # noqa: E402
from benchmarks.harness import Target  # noqa: E402

harness.setup_django()

DOCS_START = "<!-- outbox-requests:start -->"
DOCS_END = "<!-- outbox-requests:end -->"
TARGET_PCT = 15.0
#: (key, server) — the baseline first
MODES = [
    ("events off", "events-off"),
    ("events off, ATOMIC_REQUESTS", "events-off-atomic"),
    ("outbox on", "default"),
]
BASELINE, TRANSACTIONAL, OUTBOX = (key for key, _server in MODES)


def targets() -> list[list[Target]]:
    off = harness.events_off_settings()
    overrides = {"events-off": off, "events-off-atomic": off, "default": None}
    return [
        [
            Target(
                key=key,
                route="create",
                path="/arc/items/",
                body=CREATE_BODY,
                server=server,
                arc=overrides[server],
                atomic_requests=server == "events-off-atomic",
            )
            for key, server in MODES
        ]
    ]


def check(bodies: dict[str, Any]) -> None:
    """Every mode created the same item."""
    names = {key: body["data"]["name"] for key, body in bodies.items()}
    if len(set(names.values())) != 1:
        raise SystemExit(f"modes answered differently: {names}")


def settle() -> None:
    from django.db import connection

    harness.settle_table("benchapp_item", sku="BENCH-1")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_arc_outboxevent")


def per_round(m: harness.Measurements, key: str, baseline: str) -> list[float]:
    """``key``'s overhead against ``baseline`` in each round (samples of the same round)."""
    pairs = zip(m.throughput[baseline]["samples"], m.throughput[key]["samples"], strict=True)
    return [harness.pct(b, r) for b, r in pairs if r]


def render(m: harness.Measurements, args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    lines = [
        "| mode | req/s best (range) | overhead vs events off, per round (median; min–max) "
        "| SQL/request | CPU ms/request | CPU overhead |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    verdict: dict[str, float] = {}
    for key, _server in MODES:
        result = m.throughput[key]
        cpu_pct = harness.pct(m.cpu[key], m.cpu[BASELINE])
        if key == BASELINE:
            rounds = "baseline"
        else:
            overheads = per_round(m, key, BASELINE)
            verdict[key] = statistics.median(overheads)
            rounds = f"{verdict[key]:+.1f} %; {min(overheads):+.1f} – {max(overheads):+.1f} %"
        lines.append(
            f"| {key} | {harness.rate_cell(result)} | {rounds} | {m.counts[key]} | "
            f"{m.cpu[key]:.2f} | {cpu_pct:+.1f} % |"
        )
    against_tx = per_round(m, OUTBOX, TRANSACTIONAL)
    notes = [
        f"- Outbox on against *{TRANSACTIONAL}* (the same create in a transaction, no event): "
        f"**{statistics.median(against_tx):+.1f} %** req/s per round (median; "
        f"{min(against_tx):+.1f} – {max(against_tx):+.1f} %), CPU "
        f"{harness.pct(m.cpu[OUTBOX], m.cpu[TRANSACTIONAL]):+.1f} %.",
        *harness.machine_notes(m.method, m.throughput),
    ]
    notes += [
        "- Request: `POST /arc/items/` with a 6-field JSON body (the `crud.py` create), "
        f"{args.rows} items in the table, the outbox table emptied before the wrk phase.",
        "- SQL/request counts the statements Django logs, `BEGIN` and `COMMIT` included.",
        f"- CPU ms/request: `time.process_time()` of the Django process over {args.cpu_requests} "
        f"in-process requests, lowest of {args.cpu_repeats} batches; excludes PostgreSQL.",
    ]
    return "\n".join(lines + [""] + notes), verdict


def run(args: argparse.Namespace) -> None:
    prepare_data(args.rows)
    m = harness.measure_all(targets(), args, check, settle)
    table, verdict = render(m, args)
    print(table)
    over = [f"{OUTBOX} {verdict[OUTBOX]:+.1f} %"] if verdict[OUTBOX] > TARGET_PCT else []
    print(f"over the {TARGET_PCT:.0f} % target: " + (", ".join(over) or "none"), file=sys.stderr)
    (harness.RESULTS / "outbox_requests.json").write_text(
        json.dumps(
            {
                "counts": m.counts,
                "throughput": m.throughput,
                "cpu_ms": m.cpu,
                "verdict": verdict,
            },
            indent=2,
        )
    )
    if args.write_docs:
        harness.write_docs(DOCS_START, DOCS_END, "Outbox: create over HTTP", table)


def main() -> int:
    return harness.main("outbox create overhead over HTTP", run, lambda p: p.set_defaults(rounds=5))


if __name__ == "__main__":
    sys.exit(main())
