"""Instructions per request, counted by valgrind's callgrind: the reading noise cannot move.

On this shared 2-core virtual machine one wrk target moves by ±20 % between samples seconds
apart, and the CPU time of a process by as much between batches: more than the differences
issues #15 (presets ≤ 10 % over the bare resource) and #17 (a cache HIT against the no-op
floors and the uncached list; what an ``Idempotency-Key`` adds to a create) ask about.
callgrind counts the instructions a process executes, which do not depend on what else the
machine runs: the same code and inputs count within 2 % from run to run (garbage
collection, fresh keys and ids still move a little; the hash seed is fixed).

Each target runs in a Python process of its own under callgrind twice, with ``--warmup``
requests and then ``--small`` or ``--large`` more; the difference of the two totals divided
by ``large - small`` is one request, start-up and warm-up excluded. The same data and settings
as ``cache.py`` and ``presets.py`` (their targets are reused), through Django's test client,
whose own work is in every count (the Django no-op row is an upper bound of it).

What instructions do not count: PostgreSQL's and Redis's own work, the kernel (system calls,
loopback), waiting, and how fast an instruction runs (cache misses). The wrk tables measure
those. So a ratio here is the Python-side cost, and ratios of throughput can only be worse by
what the servers and the kernel add. Usage::

    apt-get install -y valgrind
    python benchmarks/instructions.py                  # starts PostgreSQL + Redis (~12 minutes)
    python benchmarks/instructions.py --write-docs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402

harness.setup_django()

DOCS_START = "<!-- instructions:start -->"
DOCS_END = "<!-- instructions:end -->"
IDS_ENV = "ARC_BENCH_INSTRUCTION_IDS"

#: (label, what it is compared with, the issue's target for that ratio or None)
COMPARISONS = [
    ("list, cache HIT", "floor: Django view", "#17: throughput within 2×"),
    ("list, cache HIT", "floor: DRF view", None),
    ("list, uncached", "list, cache HIT", "#17: throughput ≥ 5×"),
    ("presets full: list", "presets bare: list", "#15: ≤ +10 %"),
    ("presets full: get", "presets bare: get", "#15: ≤ +10 %"),
    (
        "create, cache store, events on, fresh key",
        "create, cache store, events on, no key",
        "#17: ≤ +15 %",
    ),
    (
        "create, database store, events on, fresh key",
        "create, database store, events on, no key",
        "#17: ≤ +15 %",
    ),
    (
        "hand-written create, cache key by hand, fresh key",
        "hand-written create, cache key by hand, no key",
        "ceiling of the #17 rows",
    ),
    (
        "hand-written create, database key by hand, fresh key",
        "hand-written create, database key by hand, no key",
        "ceiling of the #17 rows",
    ),
]


def targets(ids: dict[str, Any]) -> dict[str, harness.Target]:
    """Every target, by label: ``cache.py``'s list and create targets (events on, the
    hand-written idempotency ceiling included), and
    ``presets.py``'s bare and full list and get."""
    from benchmarks import cache, presets

    chosen: dict[str, harness.Target] = {}
    for group in cache.targets():
        for target in group:
            if target.route != "create" or "events off" not in target.key:
                chosen[target.key] = target
    for side in ("bare", "full"):
        for route in ("list", "get"):
            chosen[f"presets {side}: {route}"] = presets.side_target(ids, side, route)
    return chosen


def child(label: str, warmup: int, requests: int) -> None:
    """The process callgrind counts: ``warmup`` then ``requests`` requests of one target."""
    import django
    from django.test import Client

    django.setup()
    target = targets(json.loads(os.environ[IDS_ENV]))[label]
    client = Client()
    with target.settings_context():
        for _ in range(warmup + requests):
            response = harness.send(client, target)
    if response.status_code != target.expected_status:
        raise SystemExit(f"{label}: {response.status_code} {response.content[:300]!r}")
    if "HIT" in label and response.get("X-Cache") != "HIT":
        raise SystemExit(f"{label}: answered {response.get('X-Cache')}, not from the cache")


def count(label: str, warmup: int, requests: int, ids: dict[str, Any]) -> int:
    """Instructions of one child process under callgrind."""
    out = harness.RESULTS / f"callgrind-{re.sub(r'[^a-z0-9]+', '-', label.lower())}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        label,
        "--warmup",
        str(warmup),
        "--requests",
        str(requests),
    ]
    # one hash seed: set and dict orders (and with them the paths taken) are then the same.
    # A Redis prefix of its own: sharing one, the second of a target's two processes found
    # the first one's entries, so the shorter run paid a MISS the longer did not, and the
    # difference undercounted a HIT.
    env = {
        **os.environ,
        IDS_ENV: json.dumps(ids),
        "PYTHONHASHSEED": "0",
        "ARC_BENCH_REDIS_PREFIX": f"arc-bench-{uuid.uuid4().hex[:12]}",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{label}: callgrind failed\n{done.stderr[-2000:]}")
    out.unlink(missing_ok=True)
    return int(found.group(1))


def per_request(label: str, args: argparse.Namespace, ids: dict[str, Any]) -> float:
    small = count(label, args.warmup, args.small, ids)
    large = count(label, args.warmup, args.large, ids)
    return (large - small) / (args.large - args.small)


def render(counts: dict[str, float], args: argparse.Namespace) -> str:
    lines = [
        "| target | instructions per request |",
        "|---|---:|",
        *(f"| {label} | {value / 1e6:.3f} M |" for label, value in counts.items()),
        "",
        "| ratio | instructions | the issue's target (for throughput or time) |",
        "|---|---:|---|",
    ]
    for slow, fast, target in COMPARISONS:
        ratio = counts[slow] / counts[fast]
        shown = f"{ratio:.2f}× ({(ratio - 1) * 100:+.1f} %)"
        lines.append(f"| {slow} ÷ {fast} | {shown} | {target or '–'} |")
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout
    lines += [
        "",
        f"- {valgrind.strip()}, Python {platform.python_version()}; Django's test client, "
        f"in process; per request = (instructions with {args.large} requests − with "
        f"{args.small}) ÷ {args.large - args.small}, after {args.warmup} warm-up requests, "
        "each count in a process of its own with `PYTHONHASHSEED=0`. Whatever else the "
        "machine runs, the same code and inputs count within 2 % run to run (what still "
        "moves: garbage collection, fresh keys and ids).",
        "- Targets, data and settings: `cache.py`'s (10,000 items; the HIT's entry stays "
        "fresh; creates with events on, a new `Idempotency-Key` on every keyed request) and "
        "`presets.py`'s (10,000 preset items, HTTP Basic, the cached-membership server).",
        "- Not counted: PostgreSQL's and Redis's own work, the kernel and waiting; the wrk "
        "tables above carry those.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    from benchmarks import crud, presets

    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found: apt-get install -y valgrind")
    if not os.environ.get("ARC_REDIS_URL"):
        raise SystemExit("instructions.py needs Redis: set ARC_REDIS_URL, or unset ARC_PG_HOST")
    crud.prepare_data(args.rows)  # first: it truncates the categories the preset items use
    ids = presets.prepare_data(args.rows)
    chosen = targets(ids)
    counts: dict[str, float] = {}
    # reads first, creates after: a create bumps the versions a HIT is checked against
    for writes in (False, True):
        labels = [label for label, t in chosen.items() if (t.body is not None) is writes]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            values = pool.map(lambda label: per_request(label, args, ids), labels)
            counts.update(zip(labels, values, strict=True))
    counts = {label: counts[label] for label in chosen}
    table = render(counts, args)
    print(table)
    (harness.RESULTS / "instructions.json").write_text(json.dumps(counts, indent=2))
    if args.write_docs:
        harness.write_docs(DOCS_START, DOCS_END, "Instructions per request", table)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warmup", type=int, default=30, help="requests before counting")
    parser.add_argument("--small", type=int, default=20, help="requests of the shorter run")
    parser.add_argument("--large", type=int, default=220, help="requests of the longer run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)


def main() -> int:
    if "--child" in sys.argv:
        parser = argparse.ArgumentParser()
        configure(parser)
        args, _ = parser.parse_known_args()
        child(args.child, args.warmup, args.requests)
        return 0
    return harness.main("django-arc instructions per request (callgrind)", run, configure)


if __name__ == "__main__":
    sys.exit(main())
