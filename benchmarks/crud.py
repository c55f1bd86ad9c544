"""CRUD throughput: a django-arc Resource vs the hand-written DRF equivalent.

Same model and data (10,000 ``Item`` rows, one FK to ``Category``), same Django project,
same PostgreSQL, same server and client, in one run:

- (a) ``/drf/items/``: ``ModelViewSet`` + ``ModelSerializer`` + django-filter
  (``benchmarks/benchapp/drf_views.py``);
- (b) ``/arc/items/``: a ``Resource`` with the equivalent filters/sort
  (``benchmarks/benchapp/resources.py``).

Routes: list (limit 20, one filter and a sort), get, create — create twice: with
django-arc's default transactional outbox (each create also stores its event), and with
events off (``ARC_BENCH_EVENTS=off``: no outbox row, nothing published), which is the
like-for-like comparison with DRF (DRF has no events). Throughput is measured with gunicorn
(sync workers) on 127.0.0.1 driven by ``wrk``, each target for a bounded duration, targets
interleaved round after round so drift on the machine hits all alike; SQL queries and CPU per
request in-process (``benchmarks/harness.py`` has the machinery). Usage::

    python benchmarks/crud.py                  # starts a throwaway PostgreSQL (scripts/services.sh)
    python benchmarks/crud.py --duration 10 --rounds 3 --write-docs
    python benchmarks/crud.py --profile        # also pyinstrument the arc routes in-process
    python benchmarks/crud.py --access         # then the access-control table (access.py)

With ``ARC_PG_HOST`` etc. already set, that PostgreSQL is used instead (its ``benchapp``
tables are rebuilt). Without ``wrk`` on PATH the throughput falls back to Django's test
client in-process, and the table says so.
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
from benchmarks.harness import Target  # noqa: E402

harness.setup_django()

SIDES = ["drf", "arc"]
CREATE_BODY = {
    "category": 1,
    "name": "Benchmark item",
    "sku": "BENCH-1",
    "price": "9.99",
    "status": "active",
    "quantity": 3,
}
DOCS_START = "<!-- crud:start -->"
DOCS_END = "<!-- crud:end -->"
#: rows of the table: (label, route, server) — create three times, see the module docstring.
ROWS = [
    ("list", "list", "default"),
    ("get", "get", "default"),
    ("create, arc events on (outbox)", "create", "default"),
    ("create, arc events on vs DRF + hand-written outbox", "create-outbox", "default"),
    ("create, arc events off", "create", "events-off"),
]
#: The row whose per-round median is held to the target (issue #16): arc ≥ 1.1× DRF + outbox.
FAIR_CREATE = "create, arc events on vs DRF + hand-written outbox"
FAIR_TARGET = 1.1


def route_path(side: str, route: str, item_id: int) -> str:
    if route == "list":
        sort = "ordering=-price" if side == "drf" else "sort=-price"
        return f"/{side}/items/?status=active&{sort}&limit=20"
    if route == "get":
        return f"/{side}/items/{item_id}/"
    if route == "create-outbox" and side == "drf":
        return "/drf-outbox/items/"
    return f"/{side}/items/"


def targets(item_id: int, rows: list[tuple[str, str, str]]) -> list[list[Target]]:
    """One group per table row: DRF and arc on the same server and settings."""
    events_off = harness.events_off_settings()
    groups = []
    for label, route, server in rows:
        groups.append(
            [
                Target(
                    key=f"{side}:{label}",
                    route=route,
                    path=route_path(side, route, item_id),
                    body=CREATE_BODY if route.startswith("create") else None,
                    server=server,
                    arc=events_off if server == "events-off" else None,
                )
                for side in SIDES
            ]
        )
    return groups


def prepare_data(rows: int) -> int:
    """Migrate and (re)create ``rows`` items over 20 categories; returns an item id to GET."""
    import random
    from decimal import Decimal

    from django.core.management import call_command
    from django.db import connection

    from benchmarks.benchapp.models import Category, Item

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE benchapp_item, benchapp_category, benchapp_outboxrow, "
            "django_arc_outboxevent RESTART IDENTITY CASCADE"
        )
    categories = Category.objects.bulk_create(Category(name=f"Category {i}") for i in range(20))
    rng = random.Random(42)
    statuses = ["active", "active", "draft", "archived"]
    Item.objects.bulk_create(
        (
            Item(
                category=categories[i % 20],
                name=f"Item {i}",
                sku=f"SKU-{i:06d}",
                price=Decimal(rng.randrange(100, 100000)) / 100,
                status=rng.choice(statuses),
                quantity=rng.randrange(0, 500),
            )
            for i in range(rows)
        ),
        batch_size=2000,
    )
    harness.vacuum_settled("benchapp_item", "benchapp_category")
    return Item.objects.order_by("pk").values_list("pk", flat=True)[rows // 2]


def check_same_answers(bodies: dict[str, Any]) -> None:
    """Both sides must list the same rows and return the same object, or the comparison lies."""
    if "drf:list" in bodies:
        drf_ids = sorted(doc["id"] for doc in bodies["drf:list"]["results"])
        arc_ids = sorted(doc["id"] for doc in bodies["arc:list"]["docs"])
        if drf_ids != arc_ids:
            print("WARNING: DRF and arc list different rows", drf_ids, arc_ids, file=sys.stderr)
    if "drf:get" in bodies and bodies["drf:get"] != bodies["arc:get"]["data"]:
        print("WARNING: DRF and arc return different objects", file=sys.stderr)


def render(
    rows: list[tuple[str, str, str]],
    counts: dict[str, int],
    throughput: dict[str, Any],
    cpu: dict[str, float],
    notes: list[str],
) -> str:
    lines = [
        "| route | DRF req/s best (range) | arc req/s best (range) | arc/DRF (best) "
        "| arc/DRF per round (median; min–max) | SQL/request DRF | SQL/request arc | CPU ms/request DRF "
        "| CPU ms/request arc | CPU ratio DRF/arc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, _route, _server in rows:
        drf, arc = throughput[f"drf:{label}"], throughput[f"arc:{label}"]
        per_round = [a / d for a, d in zip(arc["samples"], drf["samples"], strict=True) if d]
        rounds = (
            f"{statistics.median(per_round):.2f}; {min(per_round):.2f}–{max(per_round):.2f}"
            if len(per_round) > 1
            else "–"
        )
        cpu_drf, cpu_arc = cpu[f"drf:{label}"], cpu[f"arc:{label}"]
        lines.append(
            f"| {label} | {harness.rate_cell(drf)} | {harness.rate_cell(arc)} | "
            f"{arc['rps'] / drf['rps']:.2f} | {rounds} | "
            f"{counts[f'drf:{label}']} | {counts[f'arc:{label}']} | "
            f"{cpu_drf:.2f} | {cpu_arc:.2f} | {cpu_drf / cpu_arc:.2f} |"
        )
    return "\n".join(lines + [""] + notes)


def notes(method: str, args: argparse.Namespace, throughput: dict[str, Any]) -> list[str]:
    return harness.machine_notes(method, throughput) + [
        f"- Data: {args.rows} items, 20 categories; list = `?status=active&sort=-price&limit=20` "
        "(DRF: `ordering=-price`), get = one row by pk, create = POST of a 6-field JSON body.",
        "- create rows: *events on* is django-arc's default — the create and its `items.created` "
        "outbox row commit in one transaction. *events on vs DRF + hand-written outbox* is the "
        "like-for-like comparison for that guarantee: the DRF side "
        "(`/drf-outbox/items/`, `benchapp/drf_views.py:ItemOutboxViewSet`) saves the item and "
        "an `OutboxRow` (event id, type, JSON payload, created_at) in `transaction.atomic()`; "
        f"target arc ≥ {FAIR_TARGET}× per-round median (issue #16). *events off* runs a second "
        "gunicorn with "
        '`ARC["EVENTS"] = {"OUTBOX": False, "TRANSPORT": NullTransport}` (no outbox row, '
        "nothing published), the like-for-like comparison with DRF, which has no events. DRF is "
        "measured on the same server as the arc side of its row.",
        f"- CPU ms/request: `time.process_time()` of the Django process over {args.cpu_requests} "
        f"in-process test-client requests, lowest of {args.cpu_repeats} batches, sides "
        "alternating; it excludes PostgreSQL's own time and moves much less with machine load "
        "than req/s (but not zero: shared cores still inflate it).",
        "- req/s: best of the rounds, with the lowest–highest sample in brackets; "
        "*arc/DRF per round* pairs the two sides' samples of the same round.",
    ]


def settle() -> None:
    """Undo the in-process phase's creates (items and both outboxes) before the wrk phase."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE benchapp_outboxrow, django_arc_outboxevent")
    harness.settle_table("benchapp_item", sku="BENCH-1")


def verdict(throughput: dict[str, Any]) -> str:
    if f"drf:{FAIR_CREATE}" not in throughput:
        return "- (the fair create row was not measured in this run)"
    drf, arc = throughput[f"drf:{FAIR_CREATE}"], throughput[f"arc:{FAIR_CREATE}"]
    ratios = [a / d for a, d in zip(arc["samples"], drf["samples"], strict=True) if d]
    median = statistics.median(ratios)
    met = "met" if median >= FAIR_TARGET else "NOT met"
    return (
        f"- **Create with the outbox against the hand-written DRF + outbox: {median:.2f}× "
        f"per-round median** ({min(ratios):.2f}–{max(ratios):.2f}); target ≥ {FAIR_TARGET}×: "
        f"{met}."
    )


def run(args: argparse.Namespace) -> None:
    item_id = prepare_data(args.rows)
    rows = [row for row in ROWS if not args.only or row[1] in args.only]
    m = harness.measure_all(
        targets(item_id, rows),
        args,
        check_same_answers,
        settle,
    )
    counts, cpu, throughput, flat = m.counts, m.cpu, m.throughput, m.flat
    table = render(
        rows, counts, throughput, cpu, [verdict(throughput), *notes(m.method, args, throughput)]
    )
    print(table)
    (harness.RESULTS / "crud.json").write_text(
        json.dumps({"counts": counts, "throughput": throughput, "cpu_ms": cpu}, indent=2)
    )
    if args.profile:
        report = harness.profile([t for t in flat if t.key.startswith("arc:")], 300)
        (harness.RESULTS / "crud-profile.txt").write_text(report)
        print(report)
    if args.write_docs and not args.only:
        harness.write_docs(DOCS_START, DOCS_END, "CRUD", table)
    if args.access:
        from benchmarks import access

        access.run(args)


def main() -> int:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--only",
            nargs="+",
            choices=sorted({route for _, route, _ in ROWS}),
            help="measure only these routes (more rounds for one verdict; never written to docs)",
        )
        parser.add_argument(
            "--access",
            action="store_true",
            help="then measure access control (benchmarks/access.py) in the same run",
        )

    return harness.main("django-arc vs DRF CRUD benchmark", run, configure)


if __name__ == "__main__":
    sys.exit(main())
