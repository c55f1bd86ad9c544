"""What the presets cost: one resource with every preset and field rules against the bare one.

One model (``PresetItem``: ``TenantItem`` plus ``owner``, ``slug``, ``deleted_at``), one
project, one PostgreSQL, one server and client, in one run:

- *bare* (``/presets/bare/``): the resource with no presets and no field rules;
- *full* (``/presets/full/``): the same resource with ``MultiTenant``, ``SoftDelete``,
  ``SlugLookup``, ``OwnedBy``, ``Bulk`` and ``Audited``, and the access benchmark's field
  rules (``cost`` ``visible_to``, ``price`` ``writable_by``, ``internal_note`` ``hidden``).

Both sides have the same permissions (``require_org_role``), and the same caller — an
``editor`` member of organization 1, HTTP Basic, ``X-Organization-Id: 1`` — calls both, on
the server whose ``MEMBERSHIP_RESOLVER`` caches roles across requests (the configuration
the docs recommend, and the smallest denominator). So scope resolution and role checks cost
the same on both sides; ``access.py`` measures those. Every row of the table is in the
caller's organization and none is deleted, so both sides answer the same rows: the
tenant and soft-delete conditions are paid for without reading fewer rows.

Two comparisons, each a group of interleaved rounds with per-round pairs:

1. bare vs full on list, get and create (with the default outbox); target: full costs at
   most 10 % more per request, per-round median (issue #15);
2. on the full resource, ``POST /presets/full/bulk/`` with 100 items against single
   ``POST /presets/full/`` creates: requests/s, rows/s, SQL per request; target: bulk
   writes at least 10× the rows per second.

Every write sample is followed by counting the rows it wrote (a bulk sample must have
written 100 rows per answered request), deleting them and emptying the outbox and audit
tables, so every sample starts from the same table. Usage::

    python benchmarks/presets.py                  # starts a throwaway PostgreSQL
    python benchmarks/presets.py --rounds 7 --duration 6 --write-docs

Same measuring machinery as ``access.py`` (``benchmarks/harness.py``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import Target  # noqa: E402

harness.setup_django()

USERNAME, PASSWORD = "member", "bench-password"
ROLE = "editor"
DOCS_START = "<!-- presets:start -->"
DOCS_END = "<!-- presets:end -->"
OVERHEAD_TARGET_PCT = 10.0
BULK_TARGET = 10.0
BULK_ITEMS = 100
SERVER = "membership-cached"
TABLE = "benchapp_presetitem"
#: what every benchmark write creates (deleted after each write sample)
SKU = "BENCH-1"
ROUTES = ["list", "get", "create"]
SINGLE, BULK = "single:create", "bulk:create"


def prepare_data(rows: int) -> dict[str, Any]:
    """``rows`` items in organization 1, owned by the member, none deleted; one member of
    org 1 with role ``editor``; empty outbox and audit tables. Returns the ids the requests
    need."""
    import random
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from benchmarks.benchapp.models import Category, Membership, Organization, PresetItem

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {TABLE}, benchapp_membership, benchapp_organization, "
            "django_arc_auditlog, django_arc_outboxevent RESTART IDENTITY CASCADE"
        )
    if Category.objects.count() < 20:
        Category.objects.bulk_create(Category(name=f"Category {i}") for i in range(20))
    categories = list(Category.objects.order_by("pk")[:20])
    home = Organization.objects.create(name="Home org")
    User = get_user_model()
    User.objects.filter(username=USERNAME).delete()
    user = User.objects.create_user(USERNAME, password=PASSWORD)
    Membership.objects.create(user=user, organization=home, role=ROLE)
    rng = random.Random(42)
    statuses = ["active", "active", "draft", "archived"]
    PresetItem.objects.bulk_create(
        (
            PresetItem(
                organization=home,
                owner=user,
                category=categories[i % 20],
                name=f"Item {i}",
                sku=f"SKU-{i:06d}",
                slug=f"item-{i}",
                price=Decimal(rng.randrange(100, 100000)) / 100,
                cost=Decimal(rng.randrange(50, 50000)) / 100,
                status=rng.choice(statuses),
                quantity=rng.randrange(0, 500),
                internal_note=f"note {i}",
            )
            for i in range(rows)
        ),
        batch_size=2000,
    )
    harness.vacuum_settled(TABLE, "benchapp_membership", "benchapp_organization")
    item_id = PresetItem.objects.order_by("pk").values_list("pk", flat=True)[rows // 2]
    return {"org": home.pk, "user": user.pk, "item": item_id, "category": categories[0].pk}


def create_body(ids: dict[str, Any], slug: str = "bench-1") -> dict[str, Any]:
    """The 9-field body of one create. It names the caller's own organization: the bare
    side needs it, the full side accepts it (its tenant guard drops a value equal to the
    caller's organization and sets the tenant from the scope)."""
    return {
        "organization": ids["org"],
        "category": ids["category"],
        "name": "Benchmark item",
        "sku": SKU,
        "slug": slug,
        "price": "9.99",
        "cost": "4.50",
        "status": "active",
        "quantity": 3,
    }


def side_target(ids: dict[str, Any], side: str, route: str, key: str = "") -> Target:
    """``route`` (list, get, create) of the resource named ``side``, as the member calls it:
    HTTP Basic and ``X-Organization-Id``, on the cached-membership server."""
    token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    paths = {
        "list": f"/presets/{side}/?status=active&sort=-price&limit=20",
        "get": f"/presets/{side}/{ids['item']}/",
        "create": f"/presets/{side}/",
    }
    return Target(
        key=key or f"{side}:{route}",
        route=route,
        path=paths[route],
        body=create_body(ids) if route == "create" else None,
        headers=(("Authorization", f"Basic {token}"), ("X-Organization-Id", str(ids["org"]))),
        server=SERVER,
        arc=harness.cached_membership_settings(),
    )


def bulk_target(ids: dict[str, Any], args: argparse.Namespace) -> Target:
    """``POST /presets/full/bulk/`` with ``BULK_ITEMS`` items, each the single create's body
    with its own slug."""
    single = side_target(ids, "full", "create")
    return Target(
        key=BULK,
        route="bulk",
        path="/presets/full/bulk/",
        body={"items": [create_body(ids, f"bench-bulk-{i}") for i in range(BULK_ITEMS)]},
        headers=single.headers,
        server=SERVER,
        arc=single.arc,
        # a bulk request does about as much work as tens of single ones
        cpu_requests=bulk_cpu_requests(args),
    )


def bulk_cpu_requests(args: argparse.Namespace) -> int:
    return max(5, args.cpu_requests // 20)


def targets(ids: dict[str, Any], args: argparse.Namespace) -> list[list[Target]]:
    """One group per comparison row: list, get and create (bare, full), then the bulk
    group (single creates and bulk creates on the full resource)."""
    only = set(args.only or [*ROUTES, "bulk"])
    groups = [
        [side_target(ids, side, route) for side in ("bare", "full")]
        for route in ROUTES
        if route in only
    ]
    if "bulk" in only:
        groups.append([side_target(ids, "full", "create", key=SINGLE), bulk_target(ids, args)])
    return groups


def check_answers(bodies: dict[str, Any], ids: dict[str, Any]) -> None:
    """Both sides answer the same rows; the full side's presets and field rules really
    applied (tenant and owner set from the caller, hidden field never rendered, audit rows
    written); the bulk request really created ``BULK_ITEMS`` rows."""
    from benchmarks.benchapp.models import PresetItem
    from django_arc.audit.models import AuditLog

    problems = []
    if "bare:list" in bodies:
        bare, full = bodies["bare:list"], bodies["full:list"]
        if [d["id"] for d in bare["docs"]] != [d["id"] for d in full["docs"]] or (
            bare["total"] != full["total"]
        ):
            problems.append("bare and full lists answer different rows")
        if any(d["organization"] != ids["org"] or "internal_note" in d for d in full["docs"]):
            problems.append("full list: tenant or hidden field not applied")
        if any("cost" not in d for d in full["docs"]):
            problems.append("full list: cost not rendered for an editor")
    if "bare:get" in bodies:
        full_get = bodies["full:get"]["data"]
        if full_get["organization"] != ids["org"] or "internal_note" in full_get:
            problems.append("full get: tenant or hidden field not applied")
        if "cost" not in full_get or "internal_note" not in bodies["bare:get"]["data"]:
            problems.append("get: field rules not as expected")
    for key in ("full:create", SINGLE):
        if key not in bodies:
            continue
        created = bodies[key]["data"]
        if created["organization"] != ids["org"] or created["owner"] != ids["user"]:
            problems.append(f"{key}: tenant/owner not set from the caller: {created}")
        if not AuditLog.objects.filter(resource="full", object_id=str(created["id"])).exists():
            problems.append(f"{key}: no audit row")
    if "bare:create" in bodies and bodies["bare:create"]["data"]["owner"] is not None:
        problems.append("bare create set an owner")
    bulk = bodies[BULK]["data"] if BULK in bodies else None
    if bulk is None:
        pass
    elif bulk.get("created") != BULK_ITEMS or len(bulk.get("ids", [])) != BULK_ITEMS:
        problems.append(f"bulk create answered {bulk}")
    else:
        rows = PresetItem.objects.filter(
            pk__in=bulk["ids"], organization_id=ids["org"], owner_id=ids["user"]
        ).count()
        audits = AuditLog.objects.filter(
            resource="full", action="created", object_id__in=[str(i) for i in bulk["ids"]]
        ).count()
        if rows != BULK_ITEMS or audits != BULK_ITEMS:
            problems.append(f"bulk create wrote {rows} rows and {audits} audit rows")
    if problems:
        raise SystemExit("presets benchmark sanity check failed: " + "; ".join(problems))


# --------------------------------------------------------------------------- settling


def settle() -> None:
    """Undo every benchmark write: the created rows, their outbox and audit rows."""
    from django.db import connection

    harness.settle_table(TABLE, sku=SKU)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_arc_outboxevent, django_arc_auditlog")


def written_rows() -> int:
    from benchmarks.benchapp.models import PresetItem

    return PresetItem.objects.filter(sku=SKU).count()


def after_run(target: Target, sample: dict[str, Any]) -> dict[str, Any] | None:
    """After a write sample: how many rows it wrote (waiting for requests wrk left in flight
    to commit), then :func:`settle`, so the next sample starts from the prepared table."""
    if target.body is None:
        return None
    count, deadline = written_rows(), time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = written_rows()
        if again == count:
            break
        count = again
    settle()
    return {"rows": count, "requests": sample["requests"], "non_2xx": sample["non_2xx"]}


# --------------------------------------------------------------------------- statements


_TABLE_RE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def statement_kinds(target: Target) -> list[str]:
    """One request's statements, each as ``VERB table`` (``BEGIN``/``COMMIT`` as is)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    with target.settings_context():
        harness.send(client, target)
        with CaptureQueriesContext(connection) as ctx:
            harness.send(client, target)
    kinds = []
    for query in ctx.captured_queries:
        sql = query["sql"].strip()
        verb = sql.split(None, 1)[0].upper()
        table = _TABLE_RE.search(sql)
        if verb == "SELECT" and "COUNT(" in sql.upper():
            verb = "SELECT COUNT"
        kinds.append(
            f"{verb} {table.group(1)}" if table and verb not in ("BEGIN", "COMMIT") else verb
        )
    return kinds


# --------------------------------------------------------------------------- report


def bulk_check(afters: list[dict[str, Any]], connections: int) -> str:
    """What the database says the bulk samples wrote: a multiple of ``BULK_ITEMS`` rows
    each, one batch per answered request plus at most one per connection wrk left in flight
    when it stopped (answered by the server after wrk stopped counting)."""
    if not afters:
        return ""
    answered = [a["requests"] - a["non_2xx"] for a in afters]
    batches = [a["rows"] / BULK_ITEMS for a in afters]
    in_flight = [b - n for b, n in zip(batches, answered, strict=True)]
    ok = all(
        a["rows"] % BULK_ITEMS == 0 and a["non_2xx"] == 0 and 0 <= extra <= connections
        for a, extra in zip(afters, in_flight, strict=True)
    )
    verdict = "as expected" if ok else "**NOT as expected: these samples are suspect**"
    return (
        f"- Bulk samples checked in the database ({verdict}): every sample wrote "
        f"{', '.join(str(a['rows']) for a in afters)} rows for "
        f"{', '.join(str(n) for n in answered)} answered requests (all 201, {BULK_ITEMS} rows "
        f"each; the remaining {_span(in_flight)} batches per sample are requests wrk still "
        "had in flight when it stopped)."
    )


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.0f}" if low == high else f"{low:.0f}–{high:.0f}"


def per_round(throughput: dict[str, Any], slow: str, fast: str) -> list[float]:
    """Extra cost per request of ``slow`` over ``fast`` in each round (same round paired)."""
    pairs = zip(throughput[fast]["samples"], throughput[slow]["samples"], strict=True)
    return [harness.pct(f, s) for f, s in pairs if s]


def rows_per_second(throughput: dict[str, Any], key: str, items: int) -> list[float]:
    return [rps * items for rps in throughput[key]["samples"]]


def render(
    m: harness.Measurements, statements: dict[str, list[str]], args: argparse.Namespace
) -> tuple[str, dict[str, Any]]:
    counts, cpu, throughput = m.counts, m.cpu, m.throughput
    routes = [route for route in ROUTES if f"bare:{route}" in throughput]
    lines: list[str] = []
    verdicts: list[str] = []
    verdict: dict[str, Any] = {}
    if routes:
        lines += [
            "**bare vs full** — one resource with no presets and no field rules, and the same "
            "resource with `MultiTenant`, `SoftDelete`, `SlugLookup`, `OwnedBy`, `Bulk`, "
            "`Audited` and field rules; same caller, permissions and server:",
            "",
            "| route | bare req/s best (range) | full req/s best (range) | overhead per round "
            "(median; min–max) | SQL/request bare | SQL/request full | CPU ms/request bare "
            "| CPU ms/request full | CPU overhead |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for route in routes:
        bare, full = f"bare:{route}", f"full:{route}"
        rounds = per_round(throughput, full, bare)
        cpu_pct = harness.pct(cpu[full], cpu[bare])
        verdict[route] = {"wrk_per_round_median": statistics.median(rounds), "cpu": cpu_pct}
        lines.append(
            f"| {route} | {harness.rate_cell(throughput[bare])} | "
            f"{harness.rate_cell(throughput[full])} | **{statistics.median(rounds):+.1f} %**; "
            f"{min(rounds):+.1f} – {max(rounds):+.1f} % | {counts[bare]} | {counts[full]} | "
            f"{cpu[bare]:.2f} | {cpu[full]:.2f} | {cpu_pct:+.1f} % |"
        )
    if routes:
        verdicts.append(
            f"- **Verdict, overhead ≤ {OVERHEAD_TARGET_PCT:.0f} % (per-round median)**: "
            + ", ".join(
                f"{route} {verdict[route]['wrk_per_round_median']:+.1f} % "
                + (
                    "met"
                    if verdict[route]["wrk_per_round_median"] <= OVERHEAD_TARGET_PCT
                    else "missed"
                )
                for route in routes
            )
            + "."
        )
    if "full:create" in statements:
        verdicts.append(
            "- Statements of one create: bare `"
            + ", ".join(statements["bare:create"])
            + "`; full `"
            + ", ".join(statements["full:create"])
            + "`."
        )
    if BULK in throughput:
        single_rows = rows_per_second(throughput, SINGLE, 1)
        bulk_rows = rows_per_second(throughput, BULK, BULK_ITEMS)
        ratios = [b / s for b, s in zip(bulk_rows, single_rows, strict=True) if s]
        ratio = statistics.median(ratios)
        verdict["bulk"] = {"rows_ratio_per_round_median": ratio, "per_round": ratios}
        if lines:
            lines.append("")
        lines += [
            f"**bulk create of {BULK_ITEMS} items vs single creates** — the full resource, "
            "same server:",
            "",
            "| request | req/s best (range) | rows/s (median of rounds) | SQL/request | "
            "CPU ms/request | CPU ms/row |",
            "|---|---:|---:|---:|---:|---:|",
            f"| `POST /presets/full/` (1 row) | {harness.rate_cell(throughput[SINGLE])} | "
            f"{statistics.median(single_rows):.0f} | {counts[SINGLE]} | {cpu[SINGLE]:.2f} | "
            f"{cpu[SINGLE]:.2f} |",
            f"| `POST /presets/full/bulk/` ({BULK_ITEMS} rows) | "
            f"{harness.rate_cell(throughput[BULK])} | {statistics.median(bulk_rows):.0f} | "
            f"{counts[BULK]} | {cpu[BULK]:.2f} | {cpu[BULK] / BULK_ITEMS:.3f} |",
        ]
        verdicts += [
            f"- **Verdict, bulk ≥ {BULK_TARGET:.0f}× rows/s**: **{ratio:.1f}×** per round "
            f"(median; {min(ratios):.1f}–{max(ratios):.1f}×): "
            + ("met." if ratio >= BULK_TARGET else "missed.")
            + f" In Django CPU per row: {cpu[SINGLE] / (cpu[BULK] / BULK_ITEMS):.1f}× less.",
            f"- Statements of one bulk create of {BULK_ITEMS}: `"
            + ", ".join(statements[BULK])
            + "`.",
        ]
        written = bulk_check(throughput[BULK].get("after", []), args.connections)
        if written:
            verdicts.append(written)
    lines += [""] + verdicts
    lines += harness.machine_notes(m.method, throughput) + notes(args)
    return "\n".join(lines), verdict


def notes(args: argparse.Namespace) -> list[str]:
    return [
        f"- Data: {args.rows} `PresetItem` rows, all in the caller's organization, owned by "
        "the caller, none soft-deleted, 20 categories; both sides answer the same rows. list = "
        "`?status=active&sort=-price&limit=20`, get = one row by pk, create = POST of a "
        "9-field JSON body (the caller's own organization included: the bare side needs it, "
        "the full side's tenant guard accepts it and sets the tenant from the scope).",
        "- Both sides: HTTP Basic (`MD5PasswordHasher`, one `auth_user` query), "
        "`X-Organization-Id` of an `editor` member, the same `require_org_role` permissions, "
        "on the server whose `MEMBERSHIP_RESOLVER` caches roles across requests (no "
        "membership query in the steady state). Events on (the default outbox) on both.",
        "- Overhead = extra cost per request of *full* over *bare*: `bare req/s ÷ full "
        "req/s − 1` for each round's pair of samples (median over rounds), `full CPU ÷ bare "
        "CPU − 1` for CPU.",
        f"- CPU ms/request: `time.process_time()` of the Django process over "
        f"{args.cpu_requests} in-process requests ({bulk_cpu_requests(args)} for the "
        f"bulk request), lowest of {args.cpu_repeats} batches, targets alternating; excludes "
        "PostgreSQL's own time.",
        "- After every write sample the rows it created are counted and deleted, the outbox "
        "and audit tables emptied, and the table's indexes rebuilt and the table analyzed and "
        "vacuumed with every page all-visible (`harness.vacuum_settled`, which warns "
        "otherwise), so every sample starts from the same data and plans.",
    ]


# --------------------------------------------------------------------------- diagnostics


def ablation(ids: dict[str, Any], args: argparse.Namespace) -> str:
    """In process: CPU ms and SQL per request of *bare*, *full* and *full* less one preset
    (or less its field rules) at a time, for list, get and create — what each part of the
    overhead costs. The resources are ``full-without-<kind>`` (``benchapp/resources.py``)."""
    from benchmarks.benchapp.resources import PRESET_KINDS

    variants = ["bare", "full"] + [f"full-without-{kind}" for kind in PRESET_KINDS]
    groups = [[side_target(ids, v, route) for v in variants] for route in ROUTES]
    counts, _bodies = harness.query_counts([t for group in groups for t in group])
    cpu = harness.cpu_per_request(groups, args.cpu_requests, args.cpu_repeats)
    settle()
    lines = [
        "| resource | "
        + " | ".join(f"{route} CPU ms (vs bare)" for route in ROUTES)
        + " | SQL list / get / create |",
        "|---|" + "---:|" * (len(ROUTES) + 1),
    ]
    for variant in variants:
        cells = []
        for route in ROUTES:
            value = cpu[f"{variant}:{route}"]
            over = harness.pct(value, cpu[f"bare:{route}"])
            cells.append(f"{value:.2f} ({over:+.1f} %)" if variant != "bare" else f"{value:.2f}")
        sql = " / ".join(str(counts[f"{variant}:{route}"]) for route in ROUTES)
        name = "full" if variant == "full" else variant.replace("full-without-", "full without ")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sql} |")
    return "\n".join(
        lines
        + [
            "",
            f"- In process, `time.process_time()` of the Django process over {args.cpu_requests} "
            f"requests per batch, lowest of {args.cpu_repeats} batches, the nine resources "
            "alternating; the same caller, server settings and data as the table above. What "
            "a preset costs is *full*'s overhead minus the overhead of *full without* it.",
        ]
    )


#: (label, where, name) of the sections :func:`breakdown` times; a label ``None`` is
#: computed per call (the model a statement writes)
SECTIONS: list[tuple[str | None, str, str]] = [
    (
        "authentication and scope",
        "django_arc.generics:ResourceGenericViewSet",
        "perform_authentication",
    ),
    ("field-write guard", "django_arc.generics:ResourceGenericViewSet", "guard_body"),
    (
        "serializers: build (per item)",
        "django_arc.generics:ResourceGenericViewSet",
        "get_serializer",
    ),
    ("serializers: validate (per item)", "rest_framework.serializers:BaseSerializer", "is_valid"),
    ("render rows", "rest_framework.serializers:Serializer", "to_representation"),
    ("render rows", "rest_framework.serializers:ListSerializer", "to_representation"),
    (None, "django.db.models:Model", "save_base"),
    (None, "django.db.models:QuerySet", "bulk_create"),
    ("audit rows: build", "django_arc.presets.audited:Audited", "entry"),
    (
        "audit rows of a batch: build and INSERT",
        "django_arc.presets.audited:Audited",
        "after_write_many",
    ),
    ("events: build and send", "django_arc.generics:ResourceGenericViewSet", "emit"),
    ("events: build and send", "django_arc.generics:ResourceGenericViewSet", "emit_many"),
    ("outbox rows: build and INSERT", "django_arc.outbox.receivers", "store_event_without_row"),
    ("outbox rows: build and INSERT", "django_arc.outbox.receivers", "store_events_without_rows"),
    ("psycopg: quote parameters", "psycopg._queries:PostgresClientQuery", "dump"),
]


def _insert_label(obj: Any, args: tuple[Any, ...]) -> str:
    model = obj.model if hasattr(obj, "model") and not hasattr(obj, "_meta") else type(obj)
    return f"INSERT {model._meta.db_table}: ORM"


def breakdown(ids: dict[str, Any], args: argparse.Namespace) -> str:
    """In process: where the CPU of one single create and of one bulk create of
    ``BULK_ITEMS`` goes, section by section (:class:`harness.SectionTimer`), lowest total of
    ``args.cpu_repeats`` batches each."""
    import importlib

    from django.test import Client

    single, bulk = side_target(ids, "full", "create", key=SINGLE), bulk_target(ids, args)
    client = Client()
    best: dict[str, tuple[float, dict[str, float]]] = {}
    with harness.SectionTimer() as timer:
        for label, where, name in SECTIONS:
            module, _, cls = where.partition(":")
            owner = importlib.import_module(module)
            owner = getattr(owner, cls) if cls else owner
            timer.wrap(owner, name, label or _insert_label)
        for _ in range(args.cpu_repeats):
            for target, n in ((single, args.cpu_requests), (bulk, bulk_cpu_requests(args))):
                with target.settings_context():
                    harness.send(client, target)
                    timer.reset()
                    start = time.process_time()
                    for _ in range(n):
                        harness.send(client, target)
                    total = (time.process_time() - start) * 1000 / n
                spent = {k: v * 1000 / n for k, v in timer.spent.items()}
                if total < best.get(target.key, (float("inf"), {}))[0]:
                    best[target.key] = (total, spent)
                settle()
    (single_total, single_spent), (bulk_total, bulk_spent) = best[SINGLE], best[BULK]
    labels = sorted(
        set(single_spent) | set(bulk_spent),
        key=lambda k: -bulk_spent.get(k, 0.0),
    )
    lines = [
        f"| section | single create, CPU ms | bulk create of {BULK_ITEMS}, CPU ms | bulk, "
        "CPU ms per row | per row, bulk ÷ single |",
        "|---|---:|---:|---:|---:|",
    ]

    def row(label: str, one: float, many: float) -> str:
        ratio = f"{many / BULK_ITEMS / one:.2f}" if one >= 0.005 else "–"
        return f"| {label} | {one:.2f} | {many:.2f} | {many / BULK_ITEMS:.3f} | {ratio} |"

    for label in labels:
        lines.append(row(label, single_spent.get(label, 0.0), bulk_spent.get(label, 0.0)))
    lines.append(
        row(
            "everything else (request and response handling, statement execution, JSON, hooks)",
            single_total - sum(single_spent.values()),
            bulk_total - sum(bulk_spent.values()),
        )
    )
    lines.append(row("**total**", single_total, bulk_total))
    return "\n".join(
        lines
        + [
            "",
            f"- In process, `time.process_time()` of the Django process per request, lowest "
            f"total of {args.cpu_repeats} batches ({args.cpu_requests} single creates, "
            f"{bulk_cpu_requests(args)} bulk creates), the full resource, events on. Each "
            "section is self time (a section inside another is counted once, in the inner "
            "one); the timing wrappers add a little to every call, so compare shares, not "
            "totals, with the tables above. *INSERT …: ORM* is Django building the statement "
            "and its parameters (`save()` for a single row, `bulk_create` for a batch); on "
            "PostgreSQL a batch's outbox and audit rows skip it (their own statement, counted "
            "in *outbox rows* and *audit rows of a batch*); *psycopg: quote parameters* is the "
            "driver turning parameters into SQL text (Django's default client-side binding), "
            "for every statement of the request.",
        ]
    )


def run(args: argparse.Namespace) -> None:
    ids = prepare_data(args.rows)
    if args.ablation or args.breakdown:
        diagnose(ids, args)
        if args.diagnose_only:
            return
    groups = targets(ids, args)
    flat = [t for group in groups for t in group]
    statements = {t.key: statement_kinds(t) for t in flat if t.body is not None}
    for key, kinds in statements.items():
        print(f"{key}: {', '.join(kinds)}", file=sys.stderr)
    settle()
    m = harness.measure_all(
        groups, args, lambda bodies: check_answers(bodies, ids), settle, after_run
    )
    table, verdict = render(m, statements, args)
    print(table)
    print(json.dumps(verdict, indent=2), file=sys.stderr)
    (harness.RESULTS / "presets.json").write_text(
        json.dumps(
            {
                "counts": m.counts,
                "throughput": m.throughput,
                "cpu_ms": m.cpu,
                "statements": statements,
                "verdict": verdict,
            },
            indent=2,
        )
    )
    if args.profile:
        profiled = [t for t in flat if t.key != BULK]
        report = harness.profile(profiled, 300)
        settle()
        (harness.RESULTS / "presets-profile.txt").write_text(report)
        print(f"profile: {harness.RESULTS / 'presets-profile.txt'}", file=sys.stderr)
    if args.write_docs and not args.only:
        harness.write_docs(DOCS_START, DOCS_END, "Presets overhead", table)


def diagnose(ids: dict[str, Any], args: argparse.Namespace) -> None:
    """``--ablation`` and ``--breakdown``: printed, kept in ``results/``, and with
    ``--write-docs`` put between their own markers in ``docs/benchmarks.md``."""
    for flag, function, name in (
        (args.ablation, ablation, "ablation"),
        (args.breakdown, breakdown, "bulk-breakdown"),
    ):
        if not flag:
            continue
        uptime = f"- Machine load (1-minute load average) at the start: {os.getloadavg()[0]:.1f}."
        table = function(ids, args) + "\n" + uptime
        print(table)
        (harness.RESULTS / f"presets-{name}.md").write_text(table + "\n")
        if args.write_docs:
            harness.write_docs(
                f"<!-- presets-{name}:start -->",
                f"<!-- presets-{name}:end -->",
                f"Presets: {name}",
                table,
            )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(rounds=5, duration=6)
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="in process: CPU and SQL of the full side less one preset at a time",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="in process: where the CPU of a single and of a bulk create goes",
    )
    parser.add_argument(
        "--diagnose-only", action="store_true", help="only --ablation/--breakdown, no wrk"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[*ROUTES, "bulk"],
        help="measure only these groups (more rounds for one verdict; never written to docs)",
    )


def main() -> int:
    return harness.main("django-arc presets overhead and bulk benchmark", run, configure)


if __name__ == "__main__":
    sys.exit(main())
