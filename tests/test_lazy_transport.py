"""Subscribing never builds the transport, so a bad ``EVENTS.TRANSPORT`` is ``check``'s
``arc.E008`` and not a traceback at app loading (issue #18, point 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from django_arc.events import configured, create_event, get_transport, subscribe
from django_arc.events.transports import MemoryTransport

REPO = Path(__file__).resolve().parent.parent
BAD = "django_arc.events.transports.NoSuchTransport"


def test_subscribe_with_a_bad_transport_setting_builds_nothing_and_check_reports_it():
    with override_settings(ARC={"EVENTS": {"TRANSPORT": BAD}}):
        unsubscribe = subscribe("orders.*", lambda event: None)
        try:
            assert configured._transport is None
            messages = [e for e in run_checks() if e.id == "arc.E008"]
            assert [e.msg for e in messages] == [
                f"ARC['EVENTS.TRANSPORT'] = {BAD!r} cannot be imported: Module "
                f'"django_arc.events.transports" does not define a "NoSuchTransport" '
                "attribute/class"
            ]
            with pytest.raises(ImportError, match="NoSuchTransport"):
                get_transport()  # first use is where the setting is needed, and fails
        finally:
            unsubscribe()


def test_a_subscription_made_before_the_transport_exists_is_attached_when_it_is_built():
    got: list[str] = []
    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}):
        unsubscribe = subscribe("orders.*", lambda event: got.append(event.type))
        try:
            assert configured._transport is None
            transport = get_transport()
            transport.publish(create_event("orders.created", {}))
            transport.publish(create_event("products.created", {}))
            # subscribing again once it exists attaches at once, and exactly once
            later = subscribe("products.*", lambda event: got.append("later:" + event.type))
            transport.publish(create_event("products.created", {}))
            later()
        finally:
            unsubscribe()
        transport.publish(create_event("orders.created", {}))
    assert got == ["orders.created", "later:products.created"]


APP = """
from django.apps import AppConfig


class LazyAppConfig(AppConfig):
    name = "lazyapp"

    def ready(self):
        from django_arc import events

        events.subscribe("orders.*", lambda event: None)  # where docs/events.md says
"""

SETTINGS = """
SECRET_KEY = "lazy-transport-test"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "django_arc",
    "lazyapp",
]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
USE_TZ = True
ARC = {{"EVENTS": {{"TRANSPORT": {bad!r}}}}}
"""


@pytest.mark.parametrize(
    "command", [["check"], ["migrate", "--noinput"], ["arc_relay", "--once"]], ids=" ".join
)
def test_manage_py_commands_report_arc_e008_not_a_traceback(tmp_path, command):
    (tmp_path / "lazyapp").mkdir()
    (tmp_path / "lazyapp" / "__init__.py").write_text("")
    (tmp_path / "lazyapp" / "apps.py").write_text(textwrap.dedent(APP))
    (tmp_path / "lazyproj.py").write_text(SETTINGS.format(db=str(tmp_path / "db.sqlite3"), bad=BAD))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "DJANGO_SETTINGS_MODULE": "lazyproj",
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "SystemCheckError" in output
    assert f"(arc.E008) ARC['EVENTS.TRANSPORT'] = {BAD!r} cannot be imported" in output
