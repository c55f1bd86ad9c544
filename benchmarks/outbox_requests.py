"""What the transactional outbox costs a create, over HTTP: issue #5's request benchmark.

The same django-arc resource (``/arc/items/``, the ``Item`` of ``crud.py``), the same
project, PostgreSQL, gunicorn sync workers and ``wrk`` on loopback, two servers that differ
only in ``ARC["EVENTS"]``, measured in one run:

- *events off*: ``OUTBOX: False`` and a transport that drops events — the create is one
  autocommit ``INSERT`` (the like-for-like baseline: no event is kept anywhere);
- *outbox on*: the default — the create and its outbox row in one transaction
  (``BEGIN``, ``INSERT … RETURNING``, outbox ``INSERT``, ``COMMIT``).

Overhead = ``events-off req/s ÷ outbox req/s − 1`` per round (the same minute's samples
paired), median over rounds; CPU per request of the Django process and SQL statements per
request in-process. Usage::

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
    ("outbox on", "default"),
]


def targets() -> list[list[Target]]:
    overrides = {"events-off": harness.events_off_settings(), "default": None}
    return [
        [
            Target(
                key=key,
                route="create",
                path="/arc/items/",
                body=CREATE_BODY,
                server=server,
                arc=overrides[server],
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


def render(m: harness.Measurements, args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    base = m.throughput["events off"]
    lines = [
        "| mode | req/s best (range) | overhead vs events off, per round (median; min–max) "
        "| SQL/request | CPU ms/request | CPU overhead |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    verdict: dict[str, float] = {}
    for key, _server in MODES:
        result = m.throughput[key]
        per_round = [
            harness.pct(b, r) for b, r in zip(base["samples"], result["samples"], strict=True) if r
        ]
        median = statistics.median(per_round)
        cpu_pct = harness.pct(m.cpu[key], m.cpu["events off"])
        verdict[key] = median
        rounds = (
            f"{median:+.1f} %; {min(per_round):+.1f} – {max(per_round):+.1f} %"
            if key != "events off"
            else "baseline"
        )
        lines.append(
            f"| {key} | {harness.rate_cell(result)} | {rounds} | {m.counts[key]} | "
            f"{m.cpu[key]:.2f} | {cpu_pct:+.1f} % |"
        )
    notes = harness.machine_notes(m.method)
    load = harness.load_note(m.throughput)
    if load:
        notes.append(load)
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
    over = [f"{k} {v:+.1f} %" for k, v in verdict.items() if v > TARGET_PCT]
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
