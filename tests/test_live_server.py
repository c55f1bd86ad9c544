"""pytest-django's ``live_server`` shares the tests' connection with the server's threads when
the database is in memory, which it decides when the fixture starts. Started before the test
database was set up (a browser test as the session's first database test: that file alone, or
after tests that need no database), ``NAME`` still read ``:memory:``: every request thread
then used the test's own SQLite connection at once, and one closing it while another ran a
query crashed the interpreter (a segfault in ``sqlite3``, seen running the browser files after
``tests/test_run_tests_script.py``). ``tests/conftest.py`` sets the database up first."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_live_server_shares_no_connection_with_the_tests(live_server):
    assert live_server.thread.connections_override == {}


def test_as_the_first_test_of_a_session_too():
    """The test above alone in a fresh session, so the live server is the first thing that
    touches the database whatever ran before it here. On SQLite, the one database whose
    connection the server may be handed (and whose test file is the child's own: a child on
    PostgreSQL would create, then drop, this session's ``test_arc``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "ARC_TEST_DB")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_the_live_server_shares_no_connection_with_the_tests",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
