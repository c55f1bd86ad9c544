"""``make demo`` (``scripts/demo.sh``) as a newcomer runs it: twice, or on a port already taken.

The README offers ``make demo PORT=8001`` for another port. The script starts a throwaway
Redis for the shop's query cache with ``scripts/services.sh``, which stops whatever its state
directory's previous start left running: so a second demo must neither stop the first one's
Redis (the first server would then miss its cache on every request, silently) nor restart
anything when its port turns out to be taken. These run the script itself, as ``make demo``
does, each demo with a SQLite file of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "scripts" / "demo.sh"
SERVICES = ROOT / "scripts" / "services.sh"
LIST = "/api/products/?limit=1&select=name"
VIEWER = ("acme-viewer", "demo12345")
ACME = {"X-Organization-Id": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_env(folder: Path, port: int) -> dict[str, str]:
    """The environment of a newcomer's shell: no Redis or services of its own, so the script
    starts its throwaway ones; this interpreter (the project installed) instead of ``.venv``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ARC_REDIS", "ARC_PG_", "ARC_SERVICES", "DJANGO_SETTINGS"))
    }
    env.update(
        PORT=str(port),
        ARC_DEMO_PYTHON=sys.executable,
        ARC_EXAMPLE_SQLITE=str(folder / "db.sqlite3"),
        ARC_EXAMPLE_FAST_PASSWORDS="1",
    )
    return env


class Demo:
    """One ``scripts/demo.sh`` in its own process group (Ctrl-C reaches it all, as in a
    terminal), its output in files."""

    def __init__(self, folder: Path, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.out = folder / "stdout.log"
        self.err = folder / "stderr.log"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [str(DEMO)],
                cwd=ROOT,
                env=demo_env(folder, port),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_serving(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.logs()
            try:
                if requests.get(self.url + LIST, timeout=5).status_code == 401:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"demo on {self.port} never served\n{self.logs()}")

    def logs(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def services_dir(self) -> str | None:
        found = re.search(r"\[services\] env: (\S+)/env ", self.err.read_text(errors="replace"))
        return found.group(1) if found else None

    def stop(self) -> None:
        """Ctrl-C, as in the terminal; the script's trap stops its services. Whatever is left
        after that (a hung stop) is stopped here, so no test leaves a Redis running."""
        state = self.services_dir()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if state:
            subprocess.run(
                [str(SERVICES), "stop"],
                env={**os.environ, "ARC_SERVICES_DIR": state},
                capture_output=True,
                timeout=60,
            )
            shutil.rmtree(state, ignore_errors=True)


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    """Before, the script restarted the services of its state directory (stopping those of
    a demo already serving), migrated and seeded, and only then did runserver find the port
    taken."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(DEMO)],
            cwd=ROOT,
            env=demo_env(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode != 0
    assert f"port {port} is in use" in done.stderr, done.stderr
    assert "[services]" not in done.stderr, done.stderr
    assert not (tmp_path / "db.sqlite3").exists()


@pytest.mark.parametrize("port", ["abc", "0800", "70000"])
def test_a_port_that_is_no_port_is_refused_before_anything_starts(tmp_path, port):
    """Before, ``abc`` and ``70000`` restarted the services, migrated and seeded, then failed
    in runserver; ``0800`` served on port 800."""
    env = {**demo_env(tmp_path, 0), "PORT": port}
    done = subprocess.run(
        [str(DEMO)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    assert f"PORT must be a number from 1 to 65535, not '{port}'" in done.stderr, done.stderr
    assert "[services]" not in done.stderr, done.stderr
    assert not (tmp_path / "db.sqlite3").exists()


@pytest.mark.slow
def test_a_second_demo_on_another_port_keeps_the_first_ones_cache(tmp_path):
    """``make demo PORT=8001`` beside a running ``make demo``: the first server's lists are
    still served from its Redis (a repeat is a HIT), and the hints both print for another
    terminal name the first one's own Redis."""
    first = Demo(tmp_path / "first", free_port())
    second = None
    try:
        first.wait_until_serving()
        second = Demo(tmp_path / "second", free_port())
        second.wait_until_serving()

        answers = [
            requests.get(first.url + LIST, auth=VIEWER, headers=ACME, timeout=10) for _ in range(2)
        ]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.headers.get("X-Cache") for a in answers] == ["MISS", "HIT"], first.logs()

        redis_port = re.search(r"Redis 127\.0\.0\.1:(\d+)", first.err.read_text()).group(1)
        own_redis = f"ARC_REDIS_URL=redis://127.0.0.1:{redis_port}/0"
        hint = re.search(r'eval "\$\((.+?)\)"', first.err.read_text()).group(1)
        printed = subprocess.run(
            ["bash", "-c", hint], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert own_redis in printed.stdout, (hint, printed.stdout, printed.stderr)
        source = re.search(r"first\s+\. (\S+)", first.out.read_text()).group(1)
        sourced = subprocess.run(
            ["bash", "-c", f'. {source} && echo "ARC_REDIS_URL=$ARC_REDIS_URL"'],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert own_redis in sourced.stdout
    finally:
        if second is not None:
            second.stop()
        first.stop()
