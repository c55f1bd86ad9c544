"""CRUD throughput: a django-arc Resource vs the hand-written DRF equivalent.

Same model and data (10,000 ``Item`` rows, one FK to ``Category``), same Django project,
same PostgreSQL, same server and client, in one run:

- (a) ``/drf/items/``: ``ModelViewSet`` + ``ModelSerializer`` + django-filter
  (``benchmarks/benchapp/drf_views.py``);
- (b) ``/arc/items/``: a ``Resource`` with the equivalent filters/sort
  (``benchmarks/benchapp/resources.py``).

Routes: list (limit 20, one filter and a sort), get, create. Throughput is measured with
gunicorn (sync workers) on 127.0.0.1 driven by ``wrk``, each route for a bounded duration,
DRF and arc interleaved so drift on the machine hits both alike. SQL queries per request are
counted in-process with ``CaptureQueriesContext``. Usage::

    python benchmarks/crud.py                  # starts a throwaway PostgreSQL (scripts/services.sh)
    python benchmarks/crud.py --duration 10 --rounds 2 --write-docs
    python benchmarks/crud.py --profile        # also pyinstrument the arc routes in-process

With ``ARC_PG_HOST`` etc. already set, that PostgreSQL is used instead (its ``benchapp``
tables are rebuilt). Without ``wrk`` on PATH the throughput falls back to Django's test
client in-process, and the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

ROUTES = ["list", "get", "create"]
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


def route_path(side: str, route: str, item_id: int) -> str:
    if route == "list":
        sort = "ordering=-price" if side == "drf" else "sort=-price"
        return f"/{side}/items/?status=active&{sort}&limit=20"
    if route == "get":
        return f"/{side}/items/{item_id}/"
    return f"/{side}/items/"


# --------------------------------------------------------------------------- services


def start_services() -> dict[str, str]:
    """A throwaway PostgreSQL via scripts/services.sh in its own state dir."""
    state = ROOT / ".services" / "bench"
    env = {**os.environ, "ARC_SERVICES_DIR": str(state)}
    script = ROOT / "scripts" / "services.sh"
    subprocess.run([str(script), "start"], check=True, env=env, stdout=sys.stderr)
    values = {}
    for line in (state / "env").read_text().splitlines():
        for match in re.finditer(r"(ARC_\w+)=(\S+)", line):
            values[match.group(1)] = match.group(2).strip("'\"")
    return values


def stop_services() -> None:
    env = {**os.environ, "ARC_SERVICES_DIR": str(ROOT / ".services" / "bench")}
    subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "stop"], env=env, stdout=sys.stderr, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- data


def prepare_data(rows: int) -> int:
    """Migrate and (re)create ``rows`` items over 20 categories; returns an item id to GET."""
    import random
    from decimal import Decimal

    from django.core.management import call_command
    from django.db import connection

    from benchmarks.benchapp.models import Category, Item

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE benchapp_item, benchapp_category RESTART IDENTITY CASCADE")
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
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE benchapp_item")
    return Item.objects.order_by("pk").values_list("pk", flat=True)[rows // 2]


# --------------------------------------------------------------------------- in-process


def query_counts(item_id: int) -> dict[str, dict[str, Any]]:
    """SQL queries per request and a sanity check that both sides answer alike."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    result: dict[str, dict[str, Any]] = {}
    bodies: dict[tuple[str, str], Any] = {}
    for side in SIDES:
        result[side] = {}
        for route in ROUTES:
            path = route_path(side, route, item_id)
            with CaptureQueriesContext(connection) as ctx:
                if route == "create":
                    response = client.post(
                        path, json.dumps(CREATE_BODY), content_type="application/json"
                    )
                else:
                    response = client.get(path)
            expected = 201 if route == "create" else 200
            if response.status_code != expected:
                raise SystemExit(
                    f"{side} {route} {path}: {response.status_code} {response.content[:300]!r}"
                )
            result[side][route] = len(ctx)
            bodies[(side, route)] = response.json()
    # same rows on both sides
    drf_ids = [doc["id"] for doc in bodies[("drf", "list")]["results"]]
    arc_ids = [doc["id"] for doc in bodies[("arc", "list")]["docs"]]
    if (
        sorted(drf_ids) != sorted(arc_ids)
        or bodies[("drf", "get")] != bodies[("arc", "get")]["data"]
    ):
        print("WARNING: DRF and arc answers differ", drf_ids, arc_ids, file=sys.stderr)
    return result


def cpu_per_request(
    item_id: int, requests: int, repeats: int = 3, routes: list[str] = ROUTES
) -> dict[str, dict[str, float]]:
    """CPU milliseconds the Django process spends per request (``time.process_time``).

    Wall-clock throughput on a shared 2-core machine moves with whatever else runs; the
    process's own CPU time per request does not (much), so it isolates the framework's cost.
    DRF and arc alternate, and the lowest of ``repeats`` runs is kept.
    """
    from django.test import Client

    client = Client()
    body = json.dumps(CREATE_BODY)
    best: dict[str, dict[str, float]] = {side: {} for side in SIDES}
    for route in routes:
        for _ in range(repeats):
            for side in SIDES:
                path = route_path(side, route, item_id)
                start = time.process_time()
                for _ in range(requests):
                    if route == "create":
                        client.post(path, body, content_type="application/json")
                    else:
                        client.get(path)
                ms = (time.process_time() - start) * 1000 / requests
                best[side][route] = min(ms, best[side].get(route, float("inf")))
    return best


def inprocess_throughput(item_id: int, seconds: float) -> dict[str, dict[str, float]]:
    """Fallback when wrk is missing: requests/s through the test client, one process."""
    from django.test import Client

    client = Client()
    out: dict[str, dict[str, float]] = {side: {} for side in SIDES}
    for route in ROUTES:
        for side in SIDES:
            path = route_path(side, route, item_id)
            body = json.dumps(CREATE_BODY)
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds and n < 100_000:
                if route == "create":
                    client.post(path, body, content_type="application/json")
                else:
                    client.get(path)
                n += 1
            out[side][route] = n / (time.perf_counter() - start)
    return out


def profile_arc(item_id: int, requests: int) -> str:
    """pyinstrument over ``requests`` in-process calls per arc route (text report)."""
    from django.test import Client
    from pyinstrument import Profiler

    client = Client()
    reports = []
    for route in ROUTES:
        path = route_path("arc", route, item_id)
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for _ in range(requests):
            if route == "create":
                client.post(path, json.dumps(CREATE_BODY), content_type="application/json")
            else:
                client.get(path)
        profiler.stop()
        reports.append(
            f"=== arc {route} ({requests} requests) ===\n"
            + profiler.output_text(unicode=False, color=False, show_all=False)
        )
    return "\n".join(reports)


# --------------------------------------------------------------------------- wrk


def start_gunicorn(port: int, workers: int, env: dict[str, str]) -> subprocess.Popen:
    log = open(ROOT / "benchmarks" / "results" / "gunicorn.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "benchmarks.wsgi:application",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            "--log-level",
            "warning",
            "--backlog",
            "256",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited; see benchmarks/results/gunicorn.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gunicorn did not start within 30 s")


def run_wrk(url: str, seconds: int, connections: int, threads: int, post: bool) -> dict[str, Any]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    script = None
    if post:
        body = json.dumps(CREATE_BODY).replace('"', '\\"')
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
        script.write(
            f'wrk.method = "POST"\nwrk.body = "{body}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        script.close()
        cmd += ["-s", script.name]
    done = subprocess.run(
        cmd + [url], capture_output=True, text=True, timeout=seconds + 30, check=True
    )
    if script is not None:
        os.unlink(script.name)
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def wrk_throughput(
    item_id: int, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    port = free_port()
    proc = start_gunicorn(port, args.workers, env)
    base = f"http://127.0.0.1:{port}"
    out: dict[str, dict[str, Any]] = {side: {} for side in SIDES}
    try:
        for route in ROUTES:
            for side in SIDES:  # warm-up: imports, connections, caches
                run_wrk(
                    base + route_path(side, route, item_id),
                    2,
                    args.connections,
                    args.threads,
                    route == "create",
                )
            samples: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
            for round_no in range(args.rounds):
                order = SIDES if round_no % 2 == 0 else SIDES[::-1]
                for side in order:
                    sample = run_wrk(
                        base + route_path(side, route, item_id),
                        args.duration,
                        args.connections,
                        args.threads,
                        route == "create",
                    )
                    print(
                        f"  {route:6} {side}: {sample['rps']:8.1f} req/s "
                        f"(non-2xx {sample['non_2xx']})",
                        file=sys.stderr,
                    )
                    samples[side].append(sample)
            for side in SIDES:
                best = max(samples[side], key=lambda s: s["rps"])
                out[side][route] = {**best, "samples": [s["rps"] for s in samples[side]]}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


# --------------------------------------------------------------------------- report


def machine_notes(method: str, args: argparse.Namespace) -> list[str]:
    import django
    import rest_framework
    from django.db import connection

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    wrk_version = ""
    if shutil.which("wrk"):
        head = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        wrk_version = (
            (head.stdout or head.stderr).split()[1] if (head.stdout or head.stderr) else ""
        )
    import django_filters
    import gunicorn

    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, Django {django.get_version()}, "
        f"DRF {rest_framework.VERSION}, django-filter {django_filters.__version__}, "
        f"PostgreSQL {pg}, gunicorn {gunicorn.__version__}, wrk {wrk_version}",
        f"- Method: {method}",
        f"- Data: {args.rows} items, 20 categories; list = `?status=active&sort=-price&limit=20` "
        "(DRF: `ordering=-price`), get = one row by pk, create = POST of a 6-field JSON body.",
        f"- CPU ms/request: `time.process_time()` of the Django process over {args.cpu_requests} "
        "in-process test-client requests (best of 3, sides alternating); it excludes "
        "PostgreSQL's own time and is insensitive to other load on the machine.",
    ]


def render(counts: dict, throughput: dict, cpu: dict, notes: list[str]) -> str:
    lines = [
        "| route | DRF req/s | arc req/s | arc/DRF | SQL/request DRF | SQL/request arc "
        "| CPU ms/request DRF | CPU ms/request arc | CPU ratio DRF/arc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for route in ROUTES:
        drf = throughput["drf"][route]
        arc = throughput["arc"][route]
        drf_rps = drf["rps"] if isinstance(drf, dict) else drf
        arc_rps = arc["rps"] if isinstance(arc, dict) else arc
        lines.append(
            f"| {route} | {drf_rps:.0f} | {arc_rps:.0f} | {arc_rps / drf_rps:.2f} | "
            f"{counts['drf'][route]} | {counts['arc'][route]} | "
            f"{cpu['drf'][route]:.2f} | {cpu['arc'][route]:.2f} | "
            f"{cpu['drf'][route] / cpu['arc'][route]:.2f} |"
        )
    extra = "create (arc outbox off)"
    if extra in cpu["arc"]:
        lines.append(
            f"| {extra} | – | – | – | – | – | {cpu['drf'][extra]:.2f} | "
            f"{cpu['arc'][extra]:.2f} | {cpu['drf'][extra] / cpu['arc'][extra]:.2f} |"
        )
    return "\n".join(lines + [""] + notes)


def write_docs(section: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{DOCS_START}\n{section}\n{DOCS_END}"
    if DOCS_START in text and DOCS_END in text:
        text = re.sub(
            re.escape(DOCS_START) + ".*?" + re.escape(DOCS_END),
            lambda _: block,
            text,
            flags=re.DOTALL,
        )
    else:
        text = text.rstrip() + "\n\n## CRUD\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description="django-arc vs DRF CRUD benchmark")
    parser.add_argument("--duration", type=int, default=10, help="seconds per route and side")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (best kept)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--cpu-requests",
        type=int,
        default=300,
        help="in-process requests per route and side for the CPU column",
    )
    parser.add_argument("--inprocess", action="store_true", help="skip wrk, use the test client")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the arc routes")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    started = False
    if not os.environ.get("ARC_PG_HOST"):
        os.environ.update(start_services())
        started = True
    try:
        import django

        django.setup()
        item_id = prepare_data(args.rows)
        counts = query_counts(item_id)
        print("SQL queries per request:", counts, file=sys.stderr)
        cpu = cpu_per_request(item_id, args.cpu_requests)
        print("CPU ms per request:", cpu, file=sys.stderr)
        # The same create with django-arc's transactional outbox switched off, to separate
        # the cost of storing the event from the cost of the framework.
        from django.test import override_settings

        with override_settings(ARC={"EVENTS": {"OUTBOX": False}}):
            no_outbox = cpu_per_request(item_id, args.cpu_requests, routes=["create"])
        cpu["drf"]["create (arc outbox off)"] = no_outbox["drf"]["create"]
        cpu["arc"]["create (arc outbox off)"] = no_outbox["arc"]["create"]
        if args.inprocess or not shutil.which("wrk"):
            method = (
                "in-process Django test client (wrk not available), single process, "
                f"{args.duration} s per route and side"
            )
            throughput = inprocess_throughput(item_id, args.duration)
        else:
            method = (
                f"gunicorn {args.workers} sync workers on 127.0.0.1, wrk "
                f"-t{args.threads} -c{args.connections}, {args.duration} s per route and "
                f"side after a 2 s warm-up, {args.rounds} interleaved round(s), best kept; "
                "client and server share the machine"
            )
            throughput = wrk_throughput(item_id, args, dict(os.environ))
        table = render(counts, throughput, cpu, machine_notes(method, args))
        print(table)
        (ROOT / "benchmarks" / "results" / "crud.json").write_text(
            json.dumps({"counts": counts, "throughput": throughput, "cpu_ms": cpu}, indent=2)
        )
        if args.profile:
            report = profile_arc(item_id, 300)
            (ROOT / "benchmarks" / "results" / "crud-profile.txt").write_text(report)
            print(report)
        if args.write_docs:
            write_docs(table)
    finally:
        if started:
            stop_services()
    return 0


if __name__ == "__main__":
    sys.exit(main())
