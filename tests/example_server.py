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
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
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
    #: PostgreSQL's sequences and their values when :meth:`snapshot` was taken
    sequences: list[tuple[str, Any]] = field(default_factory=list)

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

    def snapshot(self) -> None:
        """Remember the database's rows, to be put back by :meth:`restore`."""
        if self.env.get("ARC_EXAMPLE_DB") == "postgres":
            with _pg(self.env) as conn:
                tables = _pg_tables(conn)
                conn.execute(f"DROP SCHEMA IF EXISTS {SNAPSHOT} CASCADE")
                conn.execute(f"CREATE SCHEMA {SNAPSHOT}")
                for table in tables:
                    conn.execute(f'CREATE TABLE {SNAPSHOT}."{table}" AS TABLE public."{table}"')
                self.sequences = conn.execute(
                    "SELECT format('%I.%I', schemaname, sequencename), last_value"
                    " FROM pg_sequences WHERE schemaname = 'public'"
                ).fetchall()
        else:
            live = self.env["ARC_EXAMPLE_SQLITE"]
            with closing(sqlite3.connect(live)) as source:
                with closing(sqlite3.connect(live + ".snapshot")) as target:
                    source.backup(target)

    def restore(self) -> None:
        """The database's rows as :meth:`snapshot` found them, their ids counted on from
        where they were, and no cached answer read since (the server's own cache prefix)."""
        if self.env.get("ARC_EXAMPLE_DB") == "postgres":
            with _pg(self.env) as conn, conn.transaction():
                tables = _pg_tables(conn)
                conn.execute("TRUNCATE " + ", ".join(f'public."{t}"' for t in tables))
                for table in tables:
                    conn.execute(f'INSERT INTO public."{table}" SELECT * FROM {SNAPSHOT}."{table}"')
                for sequence, last in self.sequences:
                    conn.execute(
                        "SELECT setval(%s, %s, %s)", [sequence, last or 1, last is not None]
                    )
        else:
            live = self.env["ARC_EXAMPLE_SQLITE"]
            with closing(sqlite3.connect(live + ".snapshot")) as source:
                with closing(sqlite3.connect(live)) as target:
                    source.backup(target)
        url = self.env.get("ARC_REDIS_URL")
        if url:
            import redis

            with closing(redis.Redis.from_url(url)) as client:
                prefix = self.env["ARC_EXAMPLE_CACHE_PREFIX"]
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                if keys:
                    client.delete(*keys)


#: the schema :meth:`ExampleServer.snapshot` copies the example's tables into (PostgreSQL)
SNAPSHOT = "arc_snapshot"


def _pg(env: dict[str, str]) -> Any:
    import psycopg

    return psycopg.connect(
        host=env.get("ARC_PG_HOST", "127.0.0.1"),
        port=env.get("ARC_PG_PORT", "5432"),
        user=env.get("ARC_PG_USER", "arc"),
        password=env.get("ARC_PG_PASSWORD", ""),
        dbname=env["ARC_PG_NAME"],
        autocommit=True,
    )


def _pg_tables(conn: Any) -> list[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return sorted(name for (name,) in rows.fetchall())


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
        # its query cache's entries its own: one Redis serves every run of make test (SQLite,
        # PostgreSQL, Django 4.2), whose example databases hand out the same ids
        ARC_EXAMPLE_CACHE_PREFIX=f"arc-example-{uuid.uuid4().hex[:12]}",
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

    # the first schema is built on the first request: on a loaded machine that took more
    # than the 2 s read timeout this wait once gave it, and the ReadTimeout escaped (no
    # ConnectionError) with the server left running; the deadline is for a loaded machine
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{server.url}/api/schema/", timeout=10)
            break
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                stop()
                raise RuntimeError(f"the example server did not start:\n{server.log()}") from None
            time.sleep(0.1)
    return server, stop
