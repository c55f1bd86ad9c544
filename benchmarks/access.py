"""Access-control overhead: the same django-arc resource with and without its guards.

One model (``TenantItem``: ``Item`` plus an organization and two guarded fields), one
project, one PostgreSQL, one server and client, in one run:

- (a) ``/access/bare/``: the resource with no presets, no field rules, ``allow_public()``
  permissions;
- (b) ``/access/guarded/``: the same resource with ``presets.MultiTenant(tenant_field=
  "organization")``, ``field_permissions`` (``cost`` ``visible_to``, ``price``
  ``writable_by``, ``internal_note`` ``hidden``) and ``require_org_role(...)`` permissions,
  called as an ``editor`` member of organization 1 via ``X-Organization-Id`` with the
  ``MEMBERSHIP_RESOLVER`` of ``benchapp/membership.py`` (one query on the membership table);
- (c) the same guarded resource on a server whose resolver caches roles across requests
  (``resolve_membership_cached``, LocMem, 60 s): what is left when the lookup is cached.

Both sides authenticate the same member with HTTP Basic (DRF ``BasicAuthentication``, MD5
hasher) on every request, so the only difference is access control: scope resolution with
membership lookup, role checks, tenant filter and tenant write, field read shaping and the
field-write guard. Routes: list (limit 20, one filter, a sort), get, create with the default
outbox, and create with events off. Usage::

    python benchmarks/access.py                  # starts a throwaway PostgreSQL
    python benchmarks/access.py --rounds 3 --profile --write-docs

Same measuring machinery as ``crud.py`` (``benchmarks/harness.py``).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import Target  # noqa: E402

harness.setup_django()

SIDES = ["bare", "guarded"]
USERNAME, PASSWORD = "member", "bench-password"
ROLE = "editor"
DOCS_START = "<!-- access:start -->"
DOCS_END = "<!-- access:end -->"
TARGET_PCT = 10.0
ROWS = [
    ("list", "list", "default"),
    ("get", "get", "default"),
    ("create, events on (outbox)", "create", "default"),
    ("create, events off", "create", "events-off"),
]


def prepare_data(rows: int) -> dict[str, Any]:
    """Two organizations (``rows`` items in org 1, ``rows // 20`` in org 2), one member of
    org 1 with role ``editor``; returns the ids the requests need."""
    import random
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from benchmarks.benchapp.models import Category, Membership, Organization, TenantItem

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE benchapp_tenantitem, benchapp_membership, benchapp_organization "
            "RESTART IDENTITY CASCADE"
        )
    if Category.objects.count() < 20:
        Category.objects.bulk_create(Category(name=f"Category {i}") for i in range(20))
    categories = list(Category.objects.order_by("pk")[:20])
    home, other = Organization.objects.bulk_create(
        [Organization(name="Home org"), Organization(name="Other org")]
    )
    User = get_user_model()
    User.objects.filter(username=USERNAME).delete()
    user = User.objects.create_user(USERNAME, password=PASSWORD)
    Membership.objects.create(user=user, organization=home, role=ROLE)
    rng = random.Random(42)
    statuses = ["active", "active", "draft", "archived"]
    total = rows + rows // 20
    TenantItem.objects.bulk_create(
        (
            TenantItem(
                organization=home if i < rows else other,
                category=categories[i % 20],
                name=f"Item {i}",
                sku=f"SKU-{i:06d}",
                price=Decimal(rng.randrange(100, 100000)) / 100,
                cost=Decimal(rng.randrange(50, 50000)) / 100,
                status=rng.choice(statuses),
                quantity=rng.randrange(0, 500),
                internal_note=f"note {i}",
            )
            for i in range(total)
        ),
        batch_size=2000,
    )
    harness.vacuum_settled("benchapp_tenantitem", "benchapp_membership")
    item_id = (
        TenantItem.objects.filter(organization=home)
        .order_by("pk")
        .values_list("pk", flat=True)[rows // 2]
    )
    return {"org": home.pk, "item": item_id, "category": categories[0].pk}


def targets(ids: dict[str, Any]) -> list[list[Target]]:
    """One group per table row: bare and guarded, same body, same credentials."""
    token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    auth = (("Authorization", f"Basic {token}"),)
    member = auth + (("X-Organization-Id", str(ids["org"])),)
    body = {
        "organization": ids["org"],
        "category": ids["category"],
        "name": "Benchmark item",
        "sku": "BENCH-1",
        "price": "9.99",
        "cost": "4.50",
        "status": "active",
        "quantity": 3,
    }
    events_off = harness.events_off_settings()
    cached = harness.cached_membership_settings()
    paths = {
        "list": "/access/{side}/?status=active&sort=-price&limit=20",
        "get": "/access/{side}/" + str(ids["item"]) + "/",
        "create": "/access/{side}/",
    }
    groups = []
    for label, route, server in ROWS:
        group = [
            Target(
                key=f"{side}:{label}",
                route=route,
                path=paths[route].format(side=side),
                body=body if route == "create" else None,
                headers=member if side == "guarded" else auth,
                server=server,
                arc=events_off if server == "events-off" else None,
            )
            for side in SIDES
        ]
        if server == "default":
            # (c) the guarded resource again, with the resolver that caches across requests
            group.append(
                Target(
                    key=f"cached:{label}",
                    route=route,
                    path=paths[route].format(side="guarded"),
                    body=body if route == "create" else None,
                    headers=member,
                    server="membership-cached",
                    arc=cached,
                )
            )
        groups.append(group)
    return groups


def check_answers(bodies: dict[str, Any], org: int) -> None:
    """The guarded side must really be guarded: only org ``org`` rows, ``internal_note``
    never rendered, ``cost`` rendered for an editor; the bare side renders everything."""
    problems = []
    guarded_docs = (
        bodies["guarded:list"]["docs"]
        + bodies["cached:list"]["docs"]
        + [bodies["guarded:get"]["data"], bodies["cached:get"]["data"]]
    )
    if any(doc["organization"] != org for doc in guarded_docs):
        problems.append("guarded list/get returned another organization's row")
    if any("internal_note" in doc or "cost" not in doc for doc in guarded_docs):
        problems.append("guarded field rules not applied as expected")
    if "internal_note" not in bodies["bare:get"]["data"]:
        problems.append("bare get lacks internal_note")
    for label in ("create, events on (outbox)", "create, events off"):
        created = bodies[f"guarded:{label}"]["data"]
        if created["organization"] != org or "internal_note" in created:
            problems.append(f"guarded {label}: {created}")
    if problems:
        raise SystemExit("access benchmark sanity check failed: " + "; ".join(problems))


def render_table(
    other: str,
    labels: list[str],
    counts: dict[str, int],
    throughput: dict[str, Any],
    cpu: dict[str, float],
) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Rows of ``bare`` vs ``other`` (``guarded`` or ``cached``) for ``labels``."""
    lines = [
        f"| route | bare req/s best (range) | {other} req/s best (range) | overhead, best "
        f"| overhead per round (median; min–max) | SQL/request bare | SQL/request {other} "
        f"| CPU ms/request bare | CPU ms/request {other} | CPU overhead |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary: dict[str, dict[str, float]] = {}
    for label in labels:
        bare, guarded = throughput[f"bare:{label}"], throughput[f"{other}:{label}"]
        per_round = [
            harness.pct(b, g) for b, g in zip(bare["samples"], guarded["samples"], strict=True) if g
        ]
        best = harness.pct(bare["rps"], guarded["rps"])
        cpu_bare, cpu_guarded = cpu[f"bare:{label}"], cpu[f"{other}:{label}"]
        cpu_pct = harness.pct(cpu_guarded, cpu_bare)
        # The verdict pairs the two sides round by round (same minute, same background load)
        # and takes the median: best-of-rounds compares two different minutes.
        summary[label] = {"wrk_per_round_median": statistics.median(per_round), "cpu": cpu_pct}
        rounds = (
            f"{statistics.median(per_round):+.1f} %; "
            f"{min(per_round):+.1f} – {max(per_round):+.1f} %"
            if len(per_round) > 1
            else "–"
        )
        lines.append(
            f"| {label} | {harness.rate_cell(bare)} | {harness.rate_cell(guarded)} | "
            f"{best:+.1f} % | {rounds} | {counts[f'bare:{label}']} | "
            f"{counts[f'{other}:{label}']} | {cpu_bare:.2f} | {cpu_guarded:.2f} | "
            f"{cpu_pct:+.1f} % |"
        )
    return lines, summary


def render(
    counts: dict[str, int], throughput: dict[str, Any], cpu: dict[str, float], notes: list[str]
) -> tuple[str, dict[str, dict[str, dict[str, float]]]]:
    labels = [label for label, _route, _server in ROWS]
    main, guarded = render_table("guarded", labels, counts, throughput, cpu)
    cached_labels = [label for label, _route, server in ROWS if server == "default"]
    extra, cached = render_table("cached", cached_labels, counts, throughput, cpu)
    text = "\n".join(
        [
            "**(a) bare vs (b) guarded** — the membership resolver queries the table every request:",
            "",
        ]
        + main
        + [
            "",
            "**(a) bare vs (c) guarded with a membership cache** — the same guarded resource "
            "served by a server whose `MEMBERSHIP_RESOLVER` keeps roles 60 s in Django's "
            "(LocMem) cache, so the steady state has no membership query:",
            "",
        ]
        + extra
        + [""]
        + notes
    )
    return text, {"guarded": guarded, "cached": cached}


def notes(method: str, args: argparse.Namespace, throughput: dict[str, Any]) -> list[str]:
    return harness.machine_notes(method, throughput) + [
        f"- Data: {args.rows} items in the caller's organization and {args.rows // 20} in "
        "another, 20 categories; list = `?status=active&sort=-price&limit=20`, get = one row "
        "of the caller's org by pk, create = POST of an 8-field JSON body naming the caller's "
        "own organization (accepted by the tenant guard, set from the scope anyway).",
        "- Both sides: HTTP Basic authentication of the same user on every request (DRF "
        "`BasicAuthentication`, `MD5PasswordHasher`; one `auth_user` query). *guarded* also "
        "sends `X-Organization-Id` and pays one `MEMBERSHIP_RESOLVER` query, resolved once per "
        "request and cached on it for every later check (permission, tenant filter, field "
        "rules).",
        "- Overhead = extra cost per request of *guarded* over *bare*: `bare req/s ÷ guarded "
        "req/s − 1` for wrk, `guarded CPU ÷ bare CPU − 1` for CPU; *per round* pairs the two "
        "sides' samples of the same round. Negative = guarded was faster (noise, or less work: "
        "it renders one field fewer and the tenant filter reads fewer rows).",
        f"- CPU ms/request: `time.process_time()` of the Django process over {args.cpu_requests} "
        f"in-process test-client requests, lowest of {args.cpu_repeats} batches, sides "
        "alternating; excludes PostgreSQL's own time.",
        "- (c) *cached*: `benchapp/membership.py:resolve_membership_cached`, Django's default "
        "per-process LocMem cache, 60 s; a revoked membership takes up to 60 s to bite. Its SQL "
        "column is counted after a warm-up request, i.e. with the roles already cached.",
        "- *create, events off*: a gunicorn with the outbox off and a transport that drops "
        "events, as in the CRUD table.",
    ]


def main() -> int:
    return harness.main("django-arc access-control overhead benchmark", run)


def run(args: argparse.Namespace) -> None:
    """Measure, print and (``--write-docs``) record; Django is set up, the database reachable.
    ``crud.py --access`` calls this after its own table, in the same run."""
    ids = prepare_data(args.rows)
    m = harness.measure_all(
        targets(ids),
        args,
        lambda bodies: check_answers(bodies, ids["org"]),
        lambda: harness.settle_table("benchapp_tenantitem", sku="BENCH-1"),
    )
    counts, cpu, throughput, flat = m.counts, m.cpu, m.throughput, m.flat
    table, summary = render(counts, throughput, cpu, notes(m.method, args, throughput))
    print(table)
    over = [
        f"{side} {label} ({kind} {value:+.1f} %)"
        for side, rows in summary.items()
        for label, values in rows.items()
        for kind, value in values.items()
        if value > TARGET_PCT
    ]
    print(
        "over the 10 % target: " + (", ".join(over) if over else "none"),
        file=sys.stderr,
    )
    (harness.RESULTS / "access.json").write_text(
        json.dumps(
            {"counts": counts, "throughput": throughput, "cpu_ms": cpu, "summary": summary},
            indent=2,
        )
    )
    if args.profile:
        report = harness.profile(flat, 300)
        (harness.RESULTS / "access-profile.txt").write_text(report)
        print(f"profile: {harness.RESULTS / 'access-profile.txt'}", file=sys.stderr)
    if args.write_docs:
        harness.write_docs(DOCS_START, DOCS_END, "Access control overhead", table)


if __name__ == "__main__":
    sys.exit(main())
