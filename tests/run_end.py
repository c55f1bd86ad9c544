"""A pytest plugin ``scripts/run-tests.sh`` loads (``-p tests.run_end``): it writes where
``ARC_RUN_END`` says that the session ended, with which status and how many tests ran. A
pytest process ended mid-run with status 0 (``os._exit(0)`` in code a test runs) prints
nothing and counts nothing, and read as a run that passed; so did a run that ran no test
and exited 0 (``--collect-only``, ``--setup-only``, ``--setup-plan``, ``--fixtures`` in
``PYTEST_ARGS``: a suite with failing tests read as green). A plugin of its own, not
tests/conftest.py's hook: ``--noconftest`` in ``PYTEST_ARGS`` left a passing run without its
end, read as a failure."""

from __future__ import annotations

import os

#: taken out of the environment, so a pytest session a test starts in a subprocess does
#: not write it
RUN_END = os.environ.pop("ARC_RUN_END", None)

#: the tests run so far: each test's call, or its skip (a skipped test ran as far as it may)
_ran = 0
#: ``--setup-only`` or ``--setup-plan``: no test's call runs, but a test marked skip (or
#: skipif) still reports its skip at setup, which counted as a test run: a whole-suite
#: ``--setup-plan`` on SQLite (the PostgreSQL-only tests skipping) read as "ok"
_setup_only = False


def pytest_configure(config):
    global _setup_only
    _setup_only = bool(config.getoption("setuponly", False))


def pytest_runtest_logreport(report):
    global _ran
    if report.when == "call" or (report.when == "setup" and report.skipped and not _setup_only):
        _ran += 1


def pytest_sessionfinish(session, exitstatus):
    if RUN_END:
        with open(RUN_END, "w") as end:
            end.write(f"{int(exitstatus)}\n{_ran}\n")
