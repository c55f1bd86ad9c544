"""Measuring machinery shared by ``crud.py`` and ``access.py``.

A benchmark is a list of :class:`Target` s (one request shape each: path, body, headers, the
server it runs against, an optional ``ARC`` override) grouped by route. Every group is
measured the same ways:

- SQL queries per request, in-process with ``CaptureQueriesContext``;
- CPU milliseconds per request of the Django process (``time.process_time``) over N in-process
  test-client requests, best of 3, targets alternating — the number that holds still when
  other jobs load the machine;
- requests/s from gunicorn sync workers on 127.0.0.1 driven by ``wrk`` for a bounded duration,
  targets interleaved round after round (the order rotates every round), every sample kept so
  the report can give the best and the spread, plus the 1-minute load average at each sample.

Several gunicorn servers can run side by side when targets need different settings (e.g. the
"events off" server, started with ``ARC_BENCH_EVENTS=off``); only one is loaded at a time.
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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: Gunicorn servers a target can name, with the environment that configures each (read by
#: ``benchmarks/settings.py``); in-process, a target's ``arc`` override does the same.
SERVER_ENVIRONMENTS: dict[str, dict[str, str]] = {
    "default": {},
    "events-off": {"ARC_BENCH_EVENTS": "off"},
    "events-off-atomic": {"ARC_BENCH_EVENTS": "off", "ARC_BENCH_ATOMIC_REQUESTS": "1"},
    "membership-cached": {"ARC_BENCH_MEMBERSHIP": "cached"},
    # cache.py: the query cache on (list HITs and the uncached list on one server), and
    # idempotency keys on each store
    "cache": {"ARC_BENCH_CACHE": "on"},
    "idem-database": {"ARC_BENCH_IDEMPOTENCY": "database"},
    "idem-cache": {"ARC_BENCH_IDEMPOTENCY": "cache"},
    "idem-database-events-off": {"ARC_BENCH_IDEMPOTENCY": "database", "ARC_BENCH_EVENTS": "off"},
    "idem-cache-events-off": {"ARC_BENCH_IDEMPOTENCY": "cache", "ARC_BENCH_EVENTS": "off"},
}


def setup_django() -> None:
    """Import path and settings module for scripts run as ``python benchmarks/<name>.py``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")


def events_off_settings() -> dict[str, Any]:
    """The project's ``ARC`` with the outbox off and a transport that drops events."""
    from django.conf import settings

    from benchmarks.settings import EVENTS_OFF

    return {**settings.ARC, "EVENTS": dict(EVENTS_OFF)}


def cached_membership_settings() -> dict[str, Any]:
    """The project's ``ARC`` with the membership resolver that caches across requests."""
    from django.conf import settings

    from benchmarks.settings import CACHED_RESOLVER

    return {**settings.ARC, "MEMBERSHIP_RESOLVER": CACHED_RESOLVER}


@dataclass(frozen=True)
class Target:
    """One request shape to measure.

    ``key`` names it in results; ``server`` picks the gunicorn server (a key of
    :data:`SERVER_ENVIRONMENTS`); ``arc`` and ``atomic_requests`` are what the in-process
    measurements override so they match that server. ``unique_header`` names a header that
    gets a value of its own on every request (an ``Idempotency-Key``: a constant one would
    measure replays).
    """

    key: str
    route: str
    path: str
    body: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    server: str = "default"
    arc: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    atomic_requests: bool = False
    unique_header: str = ""
    #: in-process requests per CPU batch when not ``--cpu-requests`` (heavy requests)
    cpu_requests: int | None = None

    @property
    def expected_status(self) -> int:
        return 201 if self.body is not None else 200

    def meta(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.unique_header:
            headers[self.unique_header] = uuid.uuid4().hex
        return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}

    @contextmanager
    def settings_context(self) -> Iterator[None]:
        from django.db import connection
        from django.test import override_settings

        atomic = connection.settings_dict["ATOMIC_REQUESTS"]
        connection.settings_dict["ATOMIC_REQUESTS"] = self.atomic_requests
        try:
            with override_settings(ARC=self.arc) if self.arc is not None else nullcontext():
                yield
        finally:
            connection.settings_dict["ATOMIC_REQUESTS"] = atomic


def send(client: Any, target: Target) -> Any:
    """One in-process request for ``target`` through Django's test client."""
    if target.body is not None:
        return client.post(
            target.path, json.dumps(target.body), content_type="application/json", **target.meta()
        )
    return client.get(target.path, **target.meta())


# --------------------------------------------------------------------------- services


def services_dir() -> Path:
    return Path(os.environ.get("ARC_SERVICES_DIR") or ROOT / ".services" / "bench")


def start_services() -> dict[str, str]:
    """A throwaway PostgreSQL via ``scripts/services.sh`` (state in ``ARC_SERVICES_DIR``,
    default ``.services/bench``); returns the ``ARC_PG_*`` variables it wrote."""
    state = services_dir()
    env = {**os.environ, "ARC_SERVICES_DIR": str(state)}
    subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "start"], check=True, env=env, stdout=sys.stderr
    )
    values = {}
    for line in (state / "env").read_text().splitlines():
        for match in re.finditer(r"(ARC_\w+)=(\S+)", line):
            values[match.group(1)] = match.group(2).strip("'\"")
    return values


def stop_services() -> None:
    env = {**os.environ, "ARC_SERVICES_DIR": str(services_dir())}
    subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "stop"], env=env, stdout=sys.stderr, check=False
    )


@contextmanager
def database() -> Iterator[None]:
    """Use the PostgreSQL named by ``ARC_PG_HOST`` etc., or start (and finally stop) one."""
    started = False
    if not os.environ.get("ARC_PG_HOST"):
        os.environ.update(start_services())
        started = True
    try:
        yield
    finally:
        if started:
            stop_services()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- in-process


def query_counts(targets: list[Target]) -> tuple[dict[str, int], dict[str, Any]]:
    """SQL statements per request for each target, and its decoded response body.

    A target answering anything but its expected status stops the benchmark: numbers for a
    request that failed would be meaningless.
    """
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    counts: dict[str, int] = {}
    bodies: dict[str, Any] = {}
    for target in targets:
        with target.settings_context():
            send(client, target)  # warm caches (serializer fields, settings) first
            with CaptureQueriesContext(connection) as ctx:
                response = send(client, target)
        if response.status_code != target.expected_status:
            raise SystemExit(
                f"{target.key} {target.path}: {response.status_code} {response.content[:300]!r}"
            )
        counts[target.key] = len(ctx)
        bodies[target.key] = response.json()
    return counts, bodies


def cpu_per_request(
    groups: list[list[Target]],
    requests: int,
    repeats: int = 3,
    clock: Callable[[], float] = time.process_time,
) -> dict[str, float]:
    """CPU milliseconds the Django process spends per request (``time.process_time``, or
    whatever CPU seconds ``clock`` counts: ``cache.stack_cpu`` adds the servers').

    Wall-clock throughput on a shared 2-core machine moves with whatever else runs; the
    process's own CPU time per request moves much less, so it isolates the framework's cost.
    It still inflates when other processes share the cores (caches, SMT siblings), so targets
    of a group alternate in short batches and the lowest of ``repeats`` batches is kept: the
    batch that ran with the least interference.
    """
    from django.test import Client

    client = Client()
    best: dict[str, float] = {}
    for group in groups:
        for _ in range(repeats):
            for target in group:
                n = target.cpu_requests or requests
                with target.settings_context():
                    send(client, target)
                    start = clock()
                    for _ in range(n):
                        send(client, target)
                    ms = (clock() - start) * 1000 / n
                best[target.key] = min(ms, best.get(target.key, float("inf")))
    return best


def inprocess_throughput(
    groups: list[list[Target]], seconds: float, rounds: int
) -> dict[str, dict[str, Any]]:
    """Fallback when wrk is missing: requests/s through the test client, one process."""
    from django.test import Client

    client = Client()
    samples: dict[str, list[float]] = {}
    for group in groups:
        for round_no in range(rounds):
            for target in _rotated(group, round_no):
                with target.settings_context():
                    n, start = 0, time.perf_counter()
                    while time.perf_counter() - start < seconds and n < 100_000:
                        send(client, target)
                        n += 1
                    samples.setdefault(target.key, []).append(n / (time.perf_counter() - start))
    return {key: _summary(values, []) for key, values in samples.items()}


def profile(targets: list[Target], requests: int) -> str:
    """pyinstrument over ``requests`` in-process calls per target (text report)."""
    from django.test import Client
    from pyinstrument import Profiler

    client = Client()
    reports = []
    for target in targets:
        with target.settings_context():
            send(client, target)
            profiler = Profiler(interval=0.0002)
            profiler.start()
            for _ in range(requests):
                send(client, target)
            profiler.stop()
        reports.append(
            f"=== {target.key} {target.path} ({requests} requests) ===\n"
            + profiler.output_text(unicode=False, color=False, show_all=False)
        )
    return "\n".join(reports)


class SectionTimer:
    """CPU time (``time.process_time``) spent in named sections of a request, in process.

    :meth:`wrap` replaces ``owner.name`` (a function or method) with a timed version for as
    long as the timer is active (``with timer:``). Sections nest: each keeps its *self* time
    (a section called inside another is taken out of the outer one), so the sections plus
    what no section covers add up to the measured total. Diagnostic only: the wrappers add
    a few microseconds per call, so use it for shares, not for totals to compare.
    """

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._stack: list[float] = []
        self._patches: list[tuple[Any, str, Any]] = []

    def wrap(
        self, owner: Any, name: str, label: str | Callable[[Any, tuple[Any, ...]], str]
    ) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        timer = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            key = label(args[0] if args else None, args) if callable(label) else label
            timer._stack.append(0.0)
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.process_time() - start
                children = timer._stack.pop()
                timer.spent[key] = timer.spent.get(key, 0.0) + elapsed - children
                if timer._stack:
                    timer._stack[-1] += elapsed

        self._patches.append((owner, name, original))
        setattr(owner, name, timed)

    def __enter__(self) -> SectionTimer:
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()

    def reset(self) -> None:
        self.spent.clear()


# --------------------------------------------------------------------------- wrk


def start_gunicorn(port: int, workers: int, env: dict[str, str], log_name: str) -> Any:
    log = open(RESULTS / log_name, "w")  # noqa: SIM115 - lives as long as the server
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
            raise SystemExit(f"gunicorn exited; see benchmarks/results/{log_name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gunicorn did not start within 30 s")


@contextmanager
def gunicorn_servers(servers: dict[str, dict[str, str]], workers: int) -> Iterator[dict[str, str]]:
    """Start one gunicorn per entry of ``servers`` (name → extra environment); yields
    name → base URL and stops them all at the end."""
    procs = []
    urls = {}
    try:
        for name, extra in servers.items():
            port = free_port()
            procs.append(
                start_gunicorn(port, workers, {**os.environ, **extra}, f"gunicorn-{name}.log")
            )
            urls[name] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _unique_header_lua(name: str) -> str:
    """wrk Lua giving header ``name`` a value no other request of any run or thread has:
    this run's id, the thread's number, a counter."""
    run = uuid.uuid4().hex[:12]
    return f"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  wrk.headers["{name}"] = "{run}-" .. tid .. "-" .. counter
  return wrk.format()
end
"""


def run_wrk(
    url: str,
    seconds: int,
    connections: int,
    threads: int,
    body: dict[str, Any] | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    unique_header: str = "",
) -> dict[str, Any]:
    """One bounded ``wrk`` run against a loopback URL; parsed requests/s and error counts."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    for name, value in headers:
        cmd += ["-H", f"{name}: {value}"]
    script = None
    lua = ""
    if body is not None:
        payload = json.dumps(body).replace("\\", "\\\\").replace('"', '\\"')
        lua += (
            f'wrk.method = "POST"\nwrk.body = "{payload}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    if unique_header:
        lua += _unique_header_lua(unique_header)
    if lua:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
        script.write(lua)
        script.close()
        cmd += ["-s", script.name]
    try:
        done = subprocess.run(
            cmd + [url], capture_output=True, text=True, timeout=seconds + 30, check=True
        )
    finally:
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


def _rotated(group: list[Target], round_no: int) -> list[Target]:
    """Round ``n`` starts with the ``n``-th target, so no target always runs first or last."""
    shift = round_no % len(group)
    return group[shift:] + group[:shift]


def _summary(rps: list[float], loads: list[float]) -> dict[str, Any]:
    best, worst = max(rps), min(rps)
    return {
        "rps": best,
        "samples": rps,
        "spread_pct": (best - worst) / best * 100 if best else 0.0,
        "load": loads,
    }


#: ``after_run(target, sample)``: called after every wrk run (warm-ups too, with
#: ``sample["warmup"]`` true), e.g. to count and delete the rows a write target created; a
#: value it returns is kept, per target and in round order, as ``result["after"]``.
AfterRun = Callable[[Target, dict[str, Any]], Any]


def wrk_rounds(
    groups: list[list[Target]],
    urls: dict[str, str],
    args: argparse.Namespace,
    after_run: AfterRun | None = None,
) -> dict[str, dict[str, Any]]:
    """Requests/s per target: a 2 s warm-up each, then ``args.rounds`` interleaved rounds of
    ``args.duration`` s. Returns best, every sample (in round order) and the spread."""
    samples: dict[str, list[float]] = {}
    loads: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    afters: dict[str, list[Any]] = {}
    for group in groups:
        for target in group:  # warm-up: imports, connections, caches
            warmup = run_wrk(
                urls[target.server] + target.path,
                2,
                args.connections,
                args.threads,
                target.body,
                target.headers,
                target.unique_header,
            )
            if after_run is not None:
                after_run(target, {**warmup, "warmup": True})
        for round_no in range(args.rounds):
            for target in _rotated(group, round_no):
                load = os.getloadavg()[0]
                sample = run_wrk(
                    urls[target.server] + target.path,
                    args.duration,
                    args.connections,
                    args.threads,
                    target.body,
                    target.headers,
                    target.unique_header,
                )
                print(
                    f"  round {round_no + 1} {target.key:28} {sample['rps']:8.1f} req/s "
                    f"(non-2xx {sample['non_2xx']}, load {load:.1f})",
                    file=sys.stderr,
                )
                samples.setdefault(target.key, []).append(sample["rps"])
                loads.setdefault(target.key, []).append(load)
                failures[target.key] = failures.get(target.key, 0) + sample["non_2xx"]
                if after_run is not None:
                    afters.setdefault(target.key, []).append(
                        after_run(target, {**sample, "warmup": False})
                    )
    out = {key: _summary(values, loads[key]) for key, values in samples.items()}
    for key, values in afters.items():
        out[key]["after"] = values
    for key, bad in failures.items():
        out[key]["non_2xx"] = bad
        if bad:
            print(f"WARNING: {key}: {bad} non-2xx responses under load", file=sys.stderr)
    return out


def measure_throughput(
    groups: list[list[Target]], args: argparse.Namespace, after_run: AfterRun | None = None
) -> tuple[dict[str, dict[str, Any]], str]:
    """wrk against gunicorn when available (else the in-process fallback); returns the
    results and a one-line description of the method for the report."""
    if _inprocess(args):
        method = (
            "in-process Django test client (no wrk), single process, "
            f"{args.duration} s per target, {args.rounds} interleaved round(s)"
        )
        return inprocess_throughput(groups, args.duration, args.rounds), method
    used = {t.server for group in groups for t in group}
    servers = {name: env for name, env in SERVER_ENVIRONMENTS.items() if name in used}
    method = (
        f"gunicorn {args.workers} sync workers on 127.0.0.1 ({len(servers)} server(s), one "
        f"loaded at a time), wrk -t{args.threads} -c{args.connections}, {args.duration} s per "
        f"target after a 2 s warm-up, {args.rounds} interleaved rounds (order rotated each "
        "round); client, server and PostgreSQL share the machine"
    )
    with gunicorn_servers(servers, args.workers) as urls:
        return wrk_rounds(groups, urls, args, after_run), method


def _inprocess(args: argparse.Namespace) -> bool:
    """Whether throughput falls back to the test client. Such numbers never go into the
    docs: they are not comparable with the wrk tables there, and a machine that merely
    lacks wrk would replace those silently."""
    return args.inprocess or not shutil.which("wrk")


@dataclass
class Measurements:
    flat: list[Target]
    counts: dict[str, int]
    cpu: dict[str, float]
    throughput: dict[str, dict[str, Any]]
    method: str


def settle_table(table: str, **created: Any) -> None:
    """Delete the rows the in-process measurements created (matched by ``created``) and
    settle the table (:func:`vacuum_settled`), so the throughput phase reads the data it
    was prepared with and the planner sees settled statistics."""
    from django.db import connection

    where = " AND ".join(f"{connection.ops.quote_name(k)} = %s" for k in created)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {where}", list(created.values()))
    vacuum_settled(table)


def vacuum_settled(*tables: str) -> None:
    """Rebuild each table's indexes, ``ANALYZE`` and ``VACUUM`` it: compact indexes,
    statistics sampled, dead rows gone, and every page marked all-visible in the visibility
    map, which lets PostgreSQL count rows from an index alone.

    Without the rebuild, the rows the in-process phase created and deleted leave the indexes
    larger than the prepared table's (VACUUM frees index entries, not index pages), and the
    planner prices an index-only count higher: one measured case kept the bare side's count
    on its index and moved the full side's to a sequential scan, so a run's plans depended
    on how many rows the phases before it had written.

    The benchmark servers run with ``synchronous_commit=off``: until the WAL writer has
    flushed the writes' commit records, VACUUM may not set hint bits, so a VACUUM straight
    after bulk inserts marks no page all-visible. Whether a later autovacuum then did decided
    the plans of a run: a ``COUNT(*)`` by sequential scan on one run (or one side), from an
    index alone on another, which moved list figures by up to 30 %. So the tables are
    analyzed in a transaction that commits synchronously (``ANALYZE`` writes WAL, and its
    flushed commit flushes every earlier one), then vacuumed, then checked."""
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"REINDEX TABLE {table}")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = on")
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM {table}")
            cursor.execute(
                "SELECT relallvisible, relpages FROM pg_class WHERE oid = %s::regclass", [table]
            )
            visible, pages = cursor.fetchone()
            if visible < pages:
                print(
                    f"WARNING: {table}: {visible} of {pages} pages all-visible after VACUUM",
                    file=sys.stderr,
                )


def measure_all(
    groups: list[list[Target]],
    args: argparse.Namespace,
    check: Callable[[dict[str, Any]], None],
    settle: Callable[[], None] | None = None,
    after_run: AfterRun | None = None,
) -> Measurements:
    """The sequence every benchmark runs: SQL counts (and ``check`` of the answers, so a
    side that answers differently is never timed), CPU per request, ``settle`` (undo what
    those requests wrote), then throughput (``after_run``: see :func:`wrk_rounds`)."""
    if _inprocess(args) and getattr(args, "write_docs", False):
        raise SystemExit("--write-docs needs wrk (apt-get install -y wrk) and no --inprocess")
    flat = [t for group in groups for t in group]
    counts, bodies = query_counts(flat)
    check(bodies)
    print("SQL queries per request:", counts, file=sys.stderr)
    cpu = cpu_per_request(groups, args.cpu_requests, args.cpu_repeats)
    print("CPU ms per request:", cpu, file=sys.stderr)
    if settle is not None:
        settle()
    throughput, method = measure_throughput(groups, args, after_run)
    return Measurements(flat, counts, cpu, throughput, method)


def main(
    description: str,
    run: Callable[[argparse.Namespace], None],
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """The entry point every benchmark script shares: common options (plus ``configure``'s),
    a results folder, a database (started if ``ARC_PG_*`` is unset), Django, then ``run``."""
    parser = argparse.ArgumentParser(description=description)
    add_common_arguments(parser)
    if configure is not None:
        configure(parser)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with database():
        import django

        django.setup()
        run(args)
    return 0


def pct(slow: float, fast: float) -> float:
    """Extra cost per request of ``slow`` over ``fast`` in percent (times or 1/rates)."""
    return (slow / fast - 1) * 100


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=int, default=8, help="seconds per target and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best kept)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--cpu-requests",
        type=int,
        default=200,
        help="in-process requests per CPU batch",
    )
    parser.add_argument(
        "--cpu-repeats",
        type=int,
        default=7,
        help="alternating CPU batches per target; the lowest is kept",
    )
    parser.add_argument("--inprocess", action="store_true", help="skip wrk, use the test client")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the arc targets")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")


# --------------------------------------------------------------------------- report


def rate_cell(result: dict[str, Any]) -> str:
    """``best (worst–best)`` when there are several samples."""
    samples = result.get("samples") or [result["rps"]]
    if len(samples) == 1:
        return f"{result['rps']:.0f}"
    return f"{result['rps']:.0f} ({min(samples):.0f}–{max(samples):.0f})"


def _load_note(throughput: dict[str, dict[str, Any]]) -> str:
    loads = [value for result in throughput.values() for value in result.get("load", [])]
    if not loads:
        return ""
    return (
        f"- Machine load (1-minute load average on {os.cpu_count()} cores, sampled before each "
        f"wrk run): {min(loads):.1f}–{max(loads):.1f}. wrk, gunicorn and PostgreSQL alone keep "
        "it near 2; above that, other jobs shared the machine."
    )


def machine_notes(method: str, throughput: dict[str, dict[str, Any]]) -> list[str]:
    """The notes every results table carries: machine, versions, method and, when the run
    sampled it, the machine load during wrk."""
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
        words = (head.stdout or head.stderr).split()
        wrk_version = words[1] if len(words) > 1 else ""
    import django_filters
    import gunicorn

    notes = [
        f"- CPU: {cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, Django {django.get_version()}, "
        f"DRF {rest_framework.VERSION}, django-filter {django_filters.__version__}, "
        f"PostgreSQL {pg}, gunicorn {gunicorn.__version__}, wrk {wrk_version}",
        f"- Method: {method}",
    ]
    load = _load_note(throughput)
    return notes + [load] if load else notes


def write_docs(start: str, end: str, heading: str, section: str) -> None:
    """Replace the block between the ``start``/``end`` markers of ``docs/benchmarks.md`` (or
    append it under ``heading``), leaving every other section of the page alone."""
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        text = re.sub(
            re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.DOTALL
        )
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
