"""Starting ``manage.py arc_relay`` subprocesses against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

REPO = Path(__file__).resolve().parent.parent


def relay_env(publish_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a worker that uses *this* test run's database (pytest-django's
    ``test_…`` database on PostgreSQL) and writes to ``publish_dir``."""
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env.update(
            ARC_TEST_DB="postgres",
            ARC_PG_NAME=str(db["NAME"]),
            ARC_PG_USER=str(db["USER"] or ""),
            ARC_PG_PASSWORD=str(db["PASSWORD"] or ""),
            ARC_PG_HOST=str(db["HOST"] or ""),
            ARC_PG_PORT=str(db["PORT"] or ""),
        )
    env.update(
        DJANGO_SETTINGS_MODULE="tests.relay_settings",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "example_project")]),
        ARC_RELAY_TEST_DIR=str(publish_dir),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_relay(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``python -m django arc_relay <args>`` with output to ``log`` (never a pipe that could
    fill up and stall the worker)."""
    out = open(log, "wb")  # noqa: SIM115 - closed by the caller through proc.stdout
    return subprocess.Popen(
        [sys.executable, "-m", "django", "arc_relay", *args],
        env=env,
        cwd=str(REPO),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
