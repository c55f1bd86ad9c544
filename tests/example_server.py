"""The example project served for real: its own settings, URLs and seeded demo data.

The OpenAPI tests (schemathesis, the Swagger UI / Redoc browser test) must exercise the
example project exactly as ``make demo`` serves it, not the test suite's URLconf (which also
routes every test resource). So the project runs in a child process: ``migrate`` and
``seed_demo`` into a throwaway database (a SQLite file, or a fresh PostgreSQL database on the
``ARC_TEST_DB=postgres`` runs), then Django's development server on a free loopback port
(``serve_example.py``: static files served, so the offline Swagger UI and Redoc load).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
PASSWORD = "demo12345"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Login:
    """A logged-in session: the cookies and the CSRF header unsafe methods need."""

    username: str
    sessionid: str
    csrftoken: str

    @property
    def cookies(self) -> dict[str, str]:
        return {"sessionid": self.sessionid, "csrftoken": self.csrftoken}

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRFToken": self.csrftoken}


@dataclass
class ExampleServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    logins: dict[str, Login] = field(default_factory=dict)

    def login(self, username: str) -> Login:
        """Log ``username`` in through the browsable API's login form (session auth)."""
        if username not in self.logins:
            session = requests.Session()
            session.get(f"{self.url}/api-auth/login/", timeout=10)
            response = session.post(
                f"{self.url}/api-auth/login/",
                data={
                    "username": username,
                    "password": PASSWORD,
                    "csrfmiddlewaretoken": session.cookies["csrftoken"],
                },
                allow_redirects=False,
                timeout=10,
            )
            assert response.status_code == 302, (username, response.status_code)
            self.logins[username] = Login(
                username, session.cookies["sessionid"], session.cookies["csrftoken"]
            )
        return self.logins[username]

    def manage(self, *args: str) -> str:
        return run_manage(self.env, *args)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def run_manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def example_env(tmp: Path, database: bool = True) -> tuple[dict[str, str], Any]:
    """The child's environment and a cleanup callable (drops the PostgreSQL database).
    ``database=False``: a command that needs none (SQLite settings, never connected)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "ARC_EXAMPLE_", "PYTEST"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example.settings",
        DJANGO_DEBUG="0",
        # made-up Basic credentials would each cost ~0.3 s of PBKDF2 (example settings)
        ARC_EXAMPLE_FAST_PASSWORDS="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(EXAMPLE), str(ROOT), env.get("PYTHONPATH", "")])
        ),
    )
    if not database:
        env["ARC_EXAMPLE_SQLITE"] = str(tmp / "unused.sqlite3")
        return env, lambda: None
    if os.environ.get("ARC_TEST_DB") != "postgres":
        # In memory when possible: every write commits, and a commit on disk costs ~20 ms.
        shm = Path("/dev/shm")
        folder = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp
        env["ARC_EXAMPLE_SQLITE"] = str(folder / "example.sqlite3")
        return env, lambda: shutil.rmtree(folder, ignore_errors=True)

    import psycopg

    name = f"arc_example_{uuid.uuid4().hex[:12]}"
    params = {
        "host": os.environ.get("ARC_PG_HOST", "127.0.0.1"),
        "port": os.environ.get("ARC_PG_PORT", "5432"),
        "user": os.environ.get("ARC_PG_USER", "arc"),
        "password": os.environ.get("ARC_PG_PASSWORD", ""),
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**params) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env.update(ARC_EXAMPLE_DB="postgres", ARC_PG_NAME=name)

    def drop() -> None:
        with psycopg.connect(**params) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return env, drop


def start(tmp: Path) -> tuple[ExampleServer, Any]:
    """Migrate, seed and serve the example project; returns the server and a stop callable."""
    env, drop_database = example_env(tmp)
    try:
        run_manage(env, "migrate", "--noinput")
        run_manage(env, "seed_demo", "--quiet")
        port = free_port()
        log_path = tmp / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("serve_example.py")), str(port)],
                cwd=EXAMPLE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    except BaseException:
        drop_database()
        raise
    server = ExampleServer(f"http://127.0.0.1:{port}", env, process, log_path)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        drop_database()

    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{server.url}/api/schema/", timeout=2)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop()
                raise RuntimeError(f"the example server did not start:\n{server.log()}") from None
            time.sleep(0.1)
    return server, stop
