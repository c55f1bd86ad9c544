"""Keep the documentation's curl examples honest.

README.md and ``demo_urls.txt`` show ``$ curl ...`` lines each followed by the exact
response body (``…`` stands for a part that varies: request ids, timestamps). This module
extracts those pairs and checks them, either against a running server by really running
curl (``python -m example.check_curls --base http://127.0.0.1:8000 ../README.md``, right
after a fresh ``migrate`` + ``seed_demo``) or in-process through Django's test client
(``tests/test_example_project.py``). Each file's examples are meant to be followed top to
bottom on a freshly seeded database; they are checked in that order. Files given together
run against one database, so only the first starts fresh: README.md and ``demo_urls.txt``
both create product 101, and the second file's ids and totals no longer hold.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DOC_BASE = "http://127.0.0.1:8000"
WILDCARD = "…"


@dataclass
class Example:
    source: str
    line: int
    command: str
    expected: str


@dataclass
class CurlRequest:
    method: str = "GET"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    data: str | None = None
    #: ``-i``: the status line and headers come before the body
    include_headers: bool = False


#: README's quickstart (between these markers) runs against a project of its own, built by
#: tests/test_docs_quickstart.py, not against the demo shop: its examples are skipped here.
OWN_PROJECT = re.compile(r"<!-- quickstart:start -->.*?<!-- quickstart:end -->", re.DOTALL)


def extract(text: str, source: str = "<text>") -> Iterator[Example]:
    """``$ curl`` lines (``\\``-continued lines joined) and the output line(s) after them."""
    # blank the quickstart section out line for line, so reported line numbers stay right
    text = OWN_PROJECT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped.startswith("$ curl "):
            i += 1
            continue
        start = i
        command = stripped[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1].rstrip() + " " + lines[i].strip()
        i += 1
        expected: list[str] = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(("$", "```")):
            expected.append(lines[i].strip())
            i += 1
        yield Example(source, start + 1, command, "".join(expected))


def matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.split(WILDCARD))
    return re.fullmatch(pattern, actual.strip(), flags=re.DOTALL) is not None


def parse_curl(command: str, env: dict[str, str]) -> CurlRequest:
    """The subset of curl the examples use: -s -g -i -u -H -X -d and one URL."""
    expanded = re.sub(r"\$([A-Z_]+)", lambda m: env.get(m.group(1), m.group(0)), command)
    args = shlex.split(expanded)
    if args[0] != "curl":
        raise ValueError(f"not a curl command: {command}")
    request = CurlRequest()
    it = iter(args[1:])
    for arg in it:
        if arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) <= {"s", "g", "i"}:
            request.include_headers = request.include_headers or "i" in arg
            continue
        if arg == "-u":
            request.headers["Authorization"] = "Basic " + b64encode(next(it).encode()).decode()
        elif arg == "-H":
            name, _, value = next(it).partition(":")
            request.headers[name.strip()] = value.strip()
        elif arg == "-X":
            request.method = next(it)
        elif arg == "-d":
            request.data = next(it)
            if request.method == "GET":
                request.method = "POST"
        elif arg.startswith("http"):
            request.url = arg
        else:
            raise ValueError(f"unsupported curl option {arg!r} in: {command}")
    return request


def run_with_test_client(client: object, request: CurlRequest) -> str:
    """Replay ``request`` through a ``django.test.Client``; returns the body as text."""
    parts = urlsplit(request.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    extra = {
        "HTTP_" + name.upper().replace("-", "_"): value
        for name, value in request.headers.items()
        if name.lower() != "content-type"
    }
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    call = getattr(client, request.method.lower())
    if request.data is not None:
        response = call(path, data=request.data, content_type=content_type, **extra)
    else:
        response = call(path, **extra)
    body = response.content.decode()
    if not request.include_headers:
        return body
    # what curl -i prints: status line, headers, a blank line, the body
    head = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
    head += [f"{name}: {value}" for name, value in response.items()]
    return "\r\n".join(head) + "\r\n\r\n" + body


def run_with_curl(example: Example, base: str, env: dict[str, str]) -> str:
    command = example.command.replace(DOC_BASE, base.rstrip("/"))
    done = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DOC_BASE, help="URL of the running example server")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k.endswith("_KEY")}
    failures = total = 0
    for path in args.files:
        for example in extract(path.read_text(encoding="utf-8"), str(path)):
            total += 1
            actual = run_with_curl(example, args.base, env)
            if not matches(example.expected, actual):
                failures += 1
                print(
                    f"FAIL {example.source}:{example.line}\n  $ {example.command}\n"
                    f"  expected: {example.expected}\n  actual:   {actual.strip()}"
                )
    print(f"{total - failures}/{total} curl examples return what the docs say")
    return 1 if failures or not total else 0


if __name__ == "__main__":
    sys.exit(main())
