"""A pytest plugin ``scripts/run-tests.sh`` loads (``-p tests.run_end``): it writes where
``ARC_RUN_END`` says that the session ended, and with which status. A pytest process ended
mid-run with status 0 (``os._exit(0)`` in code a test runs) prints nothing and counts
nothing, and read as a run that passed. A plugin of its own, not tests/conftest.py's hook:
``--noconftest`` in ``PYTEST_ARGS`` left a passing run without its end, read as a failure."""

from __future__ import annotations

import os

#: taken out of the environment, so a pytest session a test starts in a subprocess does
#: not write it
RUN_END = os.environ.pop("ARC_RUN_END", None)


def pytest_sessionfinish(session, exitstatus):
    if RUN_END:
        with open(RUN_END, "w") as end:
            end.write(f"{int(exitstatus)}\n")
