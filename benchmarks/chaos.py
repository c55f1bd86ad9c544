"""Chaos soak: a real server under concurrent clients while its services fail (issue #17).

gunicorn (2 sync workers) serves the benchmarks' project with the query cache on and
``Idempotency-Key`` honoured (``chaos_settings.py``) against PostgreSQL and Redis from
``scripts/services.sh``. Eight client threads send cached reads (list, get), keyed creates and
updates (each key retried until it has an answer, half of them sent once more), and the same
keyed slow create from two threads at once, while the faults named run one after the other:

- ``redis_kill``: ``CLIENT KILL TYPE normal``; ``redis_kill_storm``: that every 30 ms for 4 s;
- ``redis_restart``: shut down (no save), 2 s, start on the same port; ``redis_stop_long``: 6 s;
- ``redis_hang``: SIGSTOP for 3 s; ``redis_oom``: ``maxmemory 1`` for 3 s;
- ``pg_term``: ``pg_terminate_backend`` of every connection; ``pg_term_storm``: every 50 ms
  for 4 s; ``pg_restart``: ``pg_ctl restart -m fast``;
- ``--kill9 N``: N times, a keyed slow create whose worker is killed with SIGKILL while its
  write is open; the client retries it until it is answered.

Then it checks: every answer a 2xx/4xx in the envelope, or 503 ``IDEMPOTENCY_UNAVAILABLE`` on
a keyed request (500s while PostgreSQL fails are counted apart: a database connection lost is
a 500 ``INTERNAL_ERROR``, as any unhandled error); no key wrote more than one row or ``created``
event, and its 201s carry the one row's id; no key answered 409 ``IDEMPOTENCY_CONFLICT`` for
longer than its lock; and, after the faults, every cached read reaches a HIT equal to the
uncached resource's answer (the connections recovered without a restart). Usage::

    python benchmarks/chaos.py --store database --faults redis_kill,redis_restart,pg_term --kill9 1
    python benchmarks/chaos.py --store cache --faults redis_hang,redis_kill_storm --duration 30

It starts its own services (``ARC_SERVICES_DIR``, default ``.services/chaos``; stopped at the
end) unless ``ARC_PG_HOST`` is set, in which case ``ARC_SERVICES_DIR`` must name the
``scripts/services.sh`` state of those servers (the faults restart them). Server logs go to
``benchmarks/results/chaos-*.log``. Known outcomes that are not violations: on the ``cache``
store a key retried across a Redis restart (no persistence), or whose answer Redis failed to
store (``redis_hang``, ``redis_oom``, the stop or kill at that moment), runs again once its
lock has run out (docs/idempotency.md).
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ARC_SERVICES_DIR", str(ROOT / ".services" / "chaos"))

from benchmarks import harness  # noqa: E402

SERVICES = Path(os.environ["ARC_SERVICES_DIR"])
PIDS = harness.RESULTS / "chaos-pids"
T0 = time.monotonic()
STOP = threading.Event()
LOCK = threading.Lock()
#: every answer: (t, kind, method, path, key, status, content type, body, X-Cache, seconds)
ANSWERS: list[tuple[Any, ...]] = []
FAULTS: list[tuple[float, float, str]] = []
CREATES: dict[str, list[tuple[Any, bytes]]] = {}
STUCK: list[tuple[str, float, float]] = []
SEED_IDS: list[int] = []
ENV: dict[str, str] = {}


def now() -> float:
    return time.monotonic() - T0


def request(port: int, method: str, path: str, body: Any = None, **kw: Any) -> tuple[Any, bytes]:
    headers = {"Content-Type": "application/json", **kw.get("headers", {})}
    if kw.get("key"):
        headers["Idempotency-Key"] = kw["key"]
    started = now()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        data, status = response.read(), response.status
        ctype, xcache = response.getheader("Content-Type", ""), response.getheader("X-Cache", "")
        conn.close()
    except Exception as exc:  # noqa: BLE001 - a worker killed mid-request, a reset
        status, data, ctype, xcache = "ERR", repr(exc).encode(), "", ""
    with LOCK:
        ANSWERS.append(
            (started, kw.get("kind", ""), method, path, kw.get("key", ""), status, ctype, data)
            + (xcache, now() - started)
        )
    return status, data


# --------------------------------------------------------------------------- services


def psql(sql: str) -> str:
    command = [shutil.which("psql") or "psql", "-X", "-qAt", "-h", ENV["ARC_PG_HOST"]]
    command += ["-p", ENV["ARC_PG_PORT"], "-U", ENV["ARC_PG_USER"], "-d", ENV["ARC_PG_NAME"]]
    return subprocess.run([*command, "-c", sql], capture_output=True, text=True).stdout.strip()


def redis_port() -> str:
    return (SERVICES / "redis.port").read_text().strip()


def redis_cli(*args: str) -> str:
    command = ["redis-cli", "-p", redis_port(), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout


def redis_start() -> None:
    """As ``scripts/services.sh`` starts it, on the same port."""
    state = SERVICES / "redis"
    subprocess.run(
        ["redis-server", "--port", redis_port(), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--daemonize", "yes", "--maxmemory-policy", "noeviction"]
        + ["--dir", str(state), "--pidfile", f"{state}/redis.pid"]
        + ["--logfile", f"{state}/redis.log"],
        check=True,
    )
    for _ in range(50):
        if redis_cli("ping").strip() == "PONG":
            return
        time.sleep(0.1)


def pg_restart() -> None:
    data = Path((SERVICES / "pg.root").read_text().strip()) / "data"
    pg_ctl = shutil.which("pg_ctl") or sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]
    as_owner = []
    if os.geteuid() == 0:  # initdb ran as the cluster owner (scripts/services.sh)
        as_owner = ["runuser", "-u", os.environ.get("ARC_PG_SYSTEM_USER", "arc-pg"), "--"]
    subprocess.run(
        [*as_owner, pg_ctl, "-D", str(data), "-l", str(data.parent / "postgres.log")]
        + ["-w", "-t", "60", "-s", "-m", "fast", "restart"],
        cwd="/",
        check=False,
        timeout=90,
    )


TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def storm(action: Any, pause: float) -> None:
    end = time.monotonic() + 4
    while time.monotonic() < end:
        action()
        time.sleep(pause)


def redis_pause(seconds: float, before: Any = None, after: Any = None) -> None:
    if before:
        before()
    time.sleep(seconds)
    if after:
        after()


def redis_signal(sig: int) -> None:
    os.kill(int((SERVICES / "redis" / "redis.pid").read_text()), sig)


FAULT_ACTIONS = {
    "redis_kill": lambda: redis_cli("CLIENT", "KILL", "TYPE", "normal"),
    "redis_kill_storm": lambda: storm(lambda: redis_cli("CLIENT", "KILL", "TYPE", "normal"), 0.03),
    "redis_restart": lambda: redis_pause(2, lambda: redis_cli("shutdown", "nosave"), redis_start),
    "redis_stop_long": lambda: redis_pause(6, lambda: redis_cli("shutdown", "nosave"), redis_start),
    "redis_hang": lambda: redis_pause(
        3, lambda: redis_signal(signal.SIGSTOP), lambda: redis_signal(signal.SIGCONT)
    ),
    "redis_oom": lambda: redis_pause(
        3,
        lambda: redis_cli("CONFIG", "SET", "maxmemory", "1"),
        lambda: redis_cli("CONFIG", "SET", "maxmemory", "0"),
    ),
    "pg_term": lambda: psql(TERMINATE),
    "pg_term_storm": lambda: storm(lambda: psql(TERMINATE), 0.05),
    "pg_restart": pg_restart,
}


def fault(name: str) -> None:
    started = now()
    FAULT_ACTIONS[name]()
    FAULTS.append((started, now(), name))
    print(f"[{now():6.1f}] {name} done ({now() - started:.1f} s)", flush=True)


# --------------------------------------------------------------------------- clients


def keyed(port: int, method: str, path: str, body: Any, key: str, kind: str, lock: float, **kw):
    """One keyed request, sent again until it has an answer (a 409 IDEMPOTENCY_CONFLICT, a
    503, a 5xx or a reset is retried after 0.3 s); half the time once more after that."""
    answers, conflict_since = [], None
    for _ in range(80):
        status, data = request(port, method, path, body, key=key, kind=kind, **kw)
        answers.append((status, data))
        if status == 409 and b"IDEMPOTENCY_CONFLICT" in data:
            conflict_since = conflict_since or now()
            if now() - conflict_since > lock + 3:
                STUCK.append((key, conflict_since, now()))
            time.sleep(0.3)
        elif status == "ERR" or status >= 500:
            time.sleep(0.3)
        else:
            break
    if random.random() < 0.5 and answers[-1][0] not in ("ERR", 500, 503):
        answers.append(request(port, method, path, body, key=key, kind=kind + "-repeat", **kw))
    return answers


def item(key: str, name: str = "chaos") -> dict[str, Any]:
    return {"name": name, "sku": key, "price": "1.00", "category": ENV["CATEGORY"]}


def reader(port: int, lock: float) -> None:
    while not STOP.is_set():
        path = random.choice(READS[:2] + [f"/arc/cached-items/{random.choice(SEED_IDS)}/"])
        request(port, "GET", path, kind="read")


def creator(port: int, lock: float) -> None:
    while not STOP.is_set():
        key = "chaos-c-" + uuid.uuid4().hex[:16]
        CREATES[key] = keyed(port, "POST", "/arc/cached-items/", item(key), key, "create", lock)


def updater(port: int, lock: float) -> None:
    while not STOP.is_set():
        path = f"/arc/cached-items/{random.choice(SEED_IDS)}/"
        body = {"quantity": random.randint(1, 10**6)}
        keyed(port, "PATCH", path, body, "chaos-u-" + uuid.uuid4().hex[:16], "update", lock)


def twins(port: int, lock: float) -> None:
    """The same keyed slow create from two threads at once: a client retrying while its
    first request still runs."""
    while not STOP.is_set():
        key = "chaos-t-" + uuid.uuid4().hex[:16]
        headers = {"X-Chaos-Marker": "t" + key[8:], "X-Chaos-Sleep": "0.3"}
        out: list[Any] = [[], []]
        threads = [
            threading.Thread(target=_twin, args=(port, lock, key, headers, out, i))
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        CREATES[key] = out[0] + out[1]


def _twin(port: int, lock: float, key: str, headers: dict, out: list, i: int) -> None:
    path = "/chaos/slow-items/"
    out[i] = keyed(port, "POST", path, item(key), key, "twin", lock, headers=headers)


def kill9(port: int, lock: float) -> None:
    marker = uuid.uuid4().hex[:12]
    key = "chaos-k-" + marker
    headers = {"X-Chaos-Marker": marker, "X-Chaos-Sleep": "5"}
    args = (port, "POST", "/chaos/slow-items/", item(key, "slow"))
    kwargs = {"headers": headers, "kind": "kill9", "key": key}
    first = threading.Thread(target=request, args=args, kwargs=kwargs)
    first.start()
    pidfile = PIDS / marker
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGKILL)
    FAULTS.append((now(), now(), f"kill -9 {pid}"))
    killed = now()
    first.join()
    answers = keyed(*args, key, "kill9-retry", lock, headers=headers)
    CREATES[key] = answers
    print(
        f"[{now():6.1f}] kill -9 worker {pid}: retries {[a[0] for a in answers]} "
        f"over {now() - killed:.1f} s",
        flush=True,
    )


READS = ["/arc/cached-items/?sort=-created_at&limit=20", "/arc/cached-items/?limit=5&page=2"]


# --------------------------------------------------------------------------- checks


def check(port: int, lock: float) -> list[str]:
    problems = []
    windows = [(a - 0.5, b + 2.0, n) for a, b, n in FAULTS]

    def faults_at(t: float) -> list[str]:
        return [n for a, b, n in windows if a <= t <= b]

    counts: dict[tuple[str, Any], int] = defaultdict(int)
    database_down = 0
    for t, kind, method, path, key, status, ctype, body, _, _ in ANSWERS:
        counts[(kind, status)] += 1
        if status == 500 and any(n.startswith("pg_") for n in faults_at(t)):
            # the database connection lost: Django's error, a 500 INTERNAL_ERROR in the
            # envelope (or, under ATOMIC_REQUESTS, its commit failing outside the view)
            database_down += 1
            continue
        if status == "ERR":
            if kind != "kill9":
                problems.append(f"reset {t:.1f} {kind} {method} {path} {faults_at(t)}")
            continue
        try:
            parsed = json.loads(body) if ctype.startswith("application/json") else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or "success" not in parsed:
            problems.append(f"not the envelope: {status} {t:.1f} {kind} {path} {body[:120]!r}")
        elif status == 503 and key and parsed.get("code") == "IDEMPOTENCY_UNAVAILABLE":
            continue
        elif status >= 500 or (status >= 400 and status != 409):
            code = parsed.get("code")
            problems.append(f"{status} {code} {t:.1f} {kind} {method} {path} {faults_at(t)}")
    print("answers:", dict(sorted(counts.items(), key=str)))
    print(f"500s while PostgreSQL was failing: {database_down}")
    slowest = sorted(ANSWERS, key=lambda a: -a[-1])[:5]
    print("slowest:", [(round(a[0], 1), round(a[-1], 2), a[1], a[5]) for a in slowest])

    rows: dict[str, list[int]] = defaultdict(list)
    for line in psql("SELECT sku, id FROM benchapp_item WHERE sku LIKE 'chaos-%'").splitlines():
        sku, pk = line.split("|")
        rows[sku].append(int(pk))
    events: dict[str, int] = defaultdict(int)
    sql = (
        "SELECT payload->'data'->>'sku', count(*) FROM django_arc_outboxevent "
        "WHERE type LIKE '%.created' GROUP BY 1"
    )
    for line in psql(sql).splitlines():
        sku, n = line.rsplit("|", 1)
        events[sku] = int(n)
    for key, answers in CREATES.items():
        ids = {json.loads(body)["data"]["id"] for status, body in answers if status == 201}
        if len(rows[key]) > 1 or events[key] > 1:
            codes = [a[0] for a in answers]
            problems.append(f"{key} wrote {len(rows[key])} rows, {events[key]} events: {codes}")
        elif ids and ids != set(rows[key]):
            problems.append(f"{key} answered ids {sorted(ids)}, rows {rows[key]}")
    for key, since, until in STUCK:
        problems.append(f"{key} 409 IDEMPOTENCY_CONFLICT from {since:.1f} to {until:.1f} s")

    time.sleep(3)  # past STALE_SECONDS: what a fault left stale is refreshed by now
    for path in [*READS, *(f"/arc/cached-items/{pk}/" for pk in SEED_IDS[:10])]:
        for _ in range(12):
            _, cached = request(port, "GET", path, kind="final")
            if ANSWERS[-1][8] == "HIT":
                break
            time.sleep(0.2)
        state = ANSWERS[-1][8]
        _, plain = request(port, "GET", path.replace("cached-items", "items"), kind="final")
        if state != "HIT":
            problems.append(f"after the faults {path} is {state}, not a HIT")
        if cached != plain:
            problems.append(f"{path}: cached {cached[:100]!r} != uncached {plain[:100]!r}")
    return problems


# --------------------------------------------------------------------------- main


def prepare(env: dict[str, str]) -> None:
    """Migrate, and seed 200 items once (a category to create under)."""
    run = {**env, "DJANGO_SETTINGS_MODULE": "benchmarks.chaos_settings", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], env=run, check=True)
    seed = (
        "import django; django.setup()\n"
        "from benchmarks.benchapp.models import Category, Item\n"
        "c = Category.objects.order_by('pk').first() or Category.objects.create(name='chaos')\n"
        "if not Item.objects.filter(sku__startswith='seed-').exists():\n"
        "    Item.objects.bulk_create(Item(category=c, name=f'item {i}', sku=f'seed-{i}',"
        " price='9.99', status='active') for i in range(200))\n"
        "print(c.pk)\n"
    )
    out = subprocess.run([sys.executable, "-c", seed], env=run, check=True, capture_output=True)
    env["CATEGORY"] = out.stdout.decode().split()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["database", "cache"], default="database")
    parser.add_argument("--faults", default="redis_kill,redis_restart,pg_term")
    parser.add_argument("--kill9", type=int, default=0, help="workers to kill mid-write")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load")
    parser.add_argument("--lock", type=float, default=4, help="LOCK_SECONDS")
    parser.add_argument("--atomic", action="store_true", help="ATOMIC_REQUESTS on")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULT_ACTIONS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {sorted(FAULT_ACTIONS)}")
    harness.RESULTS.mkdir(exist_ok=True)
    PIDS.mkdir(exist_ok=True)
    started = not os.environ.get("ARC_PG_HOST")
    ENV.update(harness.start_services() if started else os.environ)
    try:
        run(args, faults)
    finally:
        if started:
            harness.stop_services()


def run(args: argparse.Namespace, faults: list[str]) -> None:
    prepare(ENV)
    SEED_IDS.extend(
        int(x) for x in psql("SELECT id FROM benchapp_item WHERE sku LIKE 'seed-%'").split()
    )
    name = f"chaos-{args.store}-{int(time.time())}"
    env = {
        **os.environ,
        **ENV,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "benchmarks.chaos_settings",
        "ARC_CHAOS_STORE": args.store,
        "ARC_CHAOS_LOCK": str(args.lock),
        "ARC_CHAOS_LOG": str(harness.RESULTS / f"{name}.log"),
        "ARC_CHAOS_PIDS": str(PIDS),
        "ARC_BENCH_REDIS_PREFIX": name,
        "ARC_BENCH_ATOMIC_REQUESTS": "1" if args.atomic else "",
    }
    port = harness.free_port()
    server = harness.start_gunicorn(port, 2, env, f"{name}.gunicorn.log")
    print(f"gunicorn :{port}, store {args.store}; logs benchmarks/results/{name}.*", flush=True)
    clients = [reader] * 3 + [creator] * 2 + [updater, twins]
    threads = [threading.Thread(target=c, args=(port, args.lock)) for c in clients]
    try:
        for thread in threads:
            thread.start()
        gap = args.duration / (len(faults) + args.kill9 + 1)
        for name_ in faults:
            time.sleep(gap)
            fault(name_)
        for _ in range(args.kill9):
            time.sleep(gap)
            kill9(port, args.lock)
        time.sleep(gap)
        STOP.set()
        for thread in threads:
            thread.join()
        problems = check(port, args.lock)
    finally:
        STOP.set()
        server.terminate()
        server.wait(timeout=20)
    print(f"{len(ANSWERS)} requests, {len(CREATES)} keyed creates")
    for problem in problems:
        print("PROBLEM", problem)
    print(f"{len(problems)} problems")


if __name__ == "__main__":
    main()
