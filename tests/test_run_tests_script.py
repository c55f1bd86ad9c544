"""``make test`` (``scripts/run-tests.sh``): its exit code is the truth about the runs.

The script is run for real (services started and stopped in a state directory of the test's
own) with a stand-in interpreter whose ``-m pytest`` only prints pytest's closing line and
exits with the code the test chose; everything else it runs with this interpreter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_TESTS = ROOT / "scripts" / "run-tests.sh"


def script_env(tmp_path: Path, python: Path, **env_vars: str) -> dict[str, str]:
    """The script's environment: no services of the caller's, ``python`` for every run, a
    state directory of the test's own, one SQLite run unless ``env_vars`` say otherwise."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ARC_REDIS", "ARC_PG_", "ARC_SERVICES", "ARC_TEST_DB"))
    }
    env.update(
        ARC_PYTHON=str(python),
        ARC_TEST_BACKENDS="sqlite",
        ARC_SERVICES_DIR=str(tmp_path / "services"),
        PYTEST_ARGS="",
    )
    env.update(env_vars)
    return env


def run_tests(
    tmp_path: Path, pytest_rc: int, pytest_args: str = "", ends: bool = True, **env_vars: str
) -> subprocess.CompletedProcess:
    """``ends``: the stand-in ends its session as pytest does (tests/run_end.py's
    ``pytest_sessionfinish`` writing ``ARC_RUN_END``); without, it exits as a process ended
    mid-run does."""
    python = tmp_path / "python"
    calls = tmp_path / "pytest-calls"
    python.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "${1:-}" = "-m" ] && [ "${2:-}" = "pytest" ]; then\n'
        f'    echo "$*" >> {calls}\n'
        '    echo "==== no tests ran in 0.01s ===="\n'
        + ('    echo "$1" > "$ARC_RUN_END"\n' if ends else "")
        + f"    exit {pytest_rc}\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    env = script_env(tmp_path, python, PYTEST_ARGS=pytest_args, **env_vars)
    result = subprocess.run(
        ["bash", str(RUN_TESTS)], env=env, capture_output=True, text=True, timeout=180
    )
    result.pytest_calls = calls.read_text().splitlines() if calls.exists() else []
    return result


@pytest.mark.slow
def test_a_whole_suite_run_that_collects_nothing_fails(tmp_path):
    """Unfiltered, pytest's exit 5 ("no tests collected") is a broken collection (a moved
    ``testpaths``, a renamed folder): ``make test`` exited 0 on it, with a warning."""
    result = run_tests(tmp_path, pytest_rc=5)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NO TESTS COLLECTED" in result.stdout


@pytest.mark.slow
def test_a_filter_that_selects_nothing_fails(tmp_path):
    """``PYTEST_ARGS='-k nothing-matches'`` selecting no test was only a warning: ``make
    test`` exited 0 on a run that tested nothing (a misspelt ``-k``, a moved file), and its
    exit code is what a script or CI reads."""
    result = run_tests(tmp_path, pytest_rc=5, pytest_args="-k nothing-matches")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: NO TESTS COLLECTED" in result.stdout
    assert result.stdout.rstrip().endswith("total: 0 passed, 1 failed, 0 skipped")
    assert result.pytest_calls == ["-m pytest -p tests.run_end -k nothing-matches"]


@pytest.mark.slow
def test_a_passing_run_without_the_conftest_passes(tmp_path):
    """The end of a session was written by tests/conftest.py's ``pytest_sessionfinish``:
    ``PYTEST_ARGS='--noconftest …'`` removed it, and a run whose tests all passed was read
    as one ended mid-session, ``make test`` failing on it. It is a plugin of its own now
    (``-p tests.run_end``), which ``--noconftest`` keeps. A real pytest run, of a test
    needing no conftest."""
    selected = "tests/test_run_tests_script.py::test_no_backend_to_run_is_refused"
    result = run_tests(
        tmp_path, pytest_rc=0, pytest_args=f"--noconftest {selected}", ARC_PYTHON=sys.executable
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--collect-only", "--setup-plan"])
def test_a_run_that_runs_no_test_fails(tmp_path, flag):
    """``PYTEST_ARGS='--collect-only'`` (or ``--setup-plan``, ``--setup-only``,
    ``--fixtures``): pytest exits 0 having run no test, and ``make test`` read the run as
    "ok" (0 passed), a suite with failing tests green, where a ``-k`` selecting nothing
    fails. A real pytest run, of a test needing no conftest."""
    selected = "tests/test_run_tests_script.py::test_no_backend_to_run_is_refused"
    result = run_tests(
        tmp_path,
        pytest_rc=0,
        pytest_args=f"--noconftest {flag} {selected}",
        ARC_PYTHON=sys.executable,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: NO TEST RAN" in result.stdout
    assert result.stdout.rstrip().endswith("total: 0 passed, 1 failed, 0 skipped")


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--setup-plan", "--setup-only"])
def test_a_setup_only_run_with_skipped_tests_fails(tmp_path, flag):
    """``--setup-plan`` and ``--setup-only`` run no test's call, but a test marked skip
    reports its skip at setup all the same, and each counted as a test run: the whole suite
    under ``PYTEST_ARGS='--setup-plan'`` on SQLite, where the PostgreSQL-only tests skip,
    read as "ok" (0 passed, N skipped), a suite with failing tests green. A real pytest
    run, of a file of one skipped and one passing test."""
    tests = tmp_path / "cases"
    tests.mkdir()
    (tests / "test_cases.py").write_text(
        "import pytest\n\n\n@pytest.mark.skip(reason='skipped')\ndef test_skipped():\n"
        "    pass\n\n\ndef test_passes():\n    pass\n"
    )
    # outside the repository, with no Django settings (they need tests/conftest.py's path)
    plain = {"ARC_PYTHON": sys.executable, "DJANGO_SETTINGS_MODULE": ""}
    result = run_tests(tmp_path, pytest_rc=0, pytest_args=f"--noconftest {flag} {tests}", **plain)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: NO TEST RAN" in result.stdout
    # the same file run for real passes: its skip does not fail a run that runs tests
    result = run_tests(tmp_path, pytest_rc=0, pytest_args=f"--noconftest {tests}", **plain)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed, 1 skipped" in result.stdout


def test_pytest_args_that_do_not_split_are_refused_before_any_run(tmp_path):
    """An unbalanced quote in ``PYTEST_ARGS`` made the splitter fail unnoticed (a process
    substitution's exit status is not checked): the whole suite ran without the caller's
    arguments, ``-x`` or ``-k`` silently dropped."""
    result = run_tests(tmp_path, pytest_rc=0, pytest_args='-k "outbox -x')
    assert result.returncode != 0, result.stdout + result.stderr
    assert "PYTEST_ARGS" in result.stderr
    assert result.pytest_calls == []


@pytest.mark.slow
@pytest.mark.parametrize("ends", [True, False])
def test_a_failing_run_fails_make_test(tmp_path, ends):
    """Whether or not its session's end was written (a flag removing the plugin that writes
    it turns no failing run into a passing one)."""
    result = run_tests(tmp_path, pytest_rc=1, ends=ends)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED (pytest exit 1)" in result.stdout


@pytest.mark.parametrize("name", ["chromium", "chromium-browser"])
def test_the_browser_tests_find_the_chromium_ensure_browser_accepts(tmp_path, monkeypatch, name):
    """``scripts/ensure-browser.sh`` accepts ``chromium`` or ``chromium-browser``; the browser
    tests looked for ``chromium`` only, so with ``chromium-browser`` alone ``make test``
    passed with every browser test skipped."""
    from tests.test_admin_outbox_browser import chromium_path

    binary = tmp_path / name
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert chromium_path() == str(binary)


@pytest.mark.slow
def test_a_run_that_exits_0_before_its_session_ends_fails(tmp_path):
    """A pytest process ended mid-run with status 0 (``os._exit(0)`` in code a test runs)
    printed no closing line and counted nothing: ``make test`` read "ok, 0 passed, 0 failed"
    and exited 0 whatever the tests after it would have said."""
    result = run_tests(tmp_path, pytest_rc=0, ends=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED (exit 0 mid-session)" in result.stdout
    ended = run_tests(tmp_path, pytest_rc=0)
    assert ended.returncode == 0, ended.stdout + ended.stderr


def test_a_django42_run_on_another_django_is_refused_before_any_run(tmp_path):
    """The Django 4.2 runs took any interpreter (``ARC_PYTHON_DJANGO42``, or a
    ``.venv-django42`` whose Django was upgraded): the summary said ``django42-sqlite: ok``
    for a run on Django 5, the supported floor untested. The interpreter given says it has
    Django 5.2 whichever Django runs this test (``sys.executable`` is Django 4.2's in the
    Django 4.2 runs, which the script rightly took, running the whole suite in the test).
    Anything else it is asked goes to ``run_tests``' stand-in, whose pytest runs nothing: a
    script taking it runs no suite inside this test, and is seen at once (a pytest call)."""
    django5 = tmp_path / "python-django5"
    django5.write_text(
        "#!/usr/bin/env bash\n"
        'case "$*" in *get_version*) echo "5.2.19"; exit 0 ;; esac\n'
        f'exec {tmp_path / "python"} "$@"\n'
    )
    django5.chmod(0o755)
    result = run_tests(
        tmp_path,
        pytest_rc=0,
        ARC_TEST_BACKENDS="sqlite django42-sqlite",
        ARC_PYTHON_DJANGO42=str(django5),
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "not Django 4.2" in result.stderr
    assert result.pytest_calls == []


def test_no_backend_to_run_is_refused(tmp_path):
    """``ARC_TEST_BACKENDS=" "`` ran nothing and passed with "total: 0 passed"."""
    result = run_tests(tmp_path, pytest_rc=0, ARC_TEST_BACKENDS=" ")
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ARC_TEST_BACKENDS" in result.stderr


def lanes_python(tmp_path: Path, body: str) -> Path:
    """A stand-in interpreter whose ``-m pytest`` runs ``body`` (bash, with ``$seen`` a file
    to append to) then ends its session as pytest does."""
    python = tmp_path / "lanes-python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "${1:-}" = "-m" ] && [ "${2:-}" = "pytest" ]; then\n'
        f"    seen={tmp_path / 'seen'}\n"
        f"{body}\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    return python


@pytest.mark.slow
def test_runs_side_by_side_each_have_services_of_their_own_and_their_failures_whole(tmp_path):
    """Two runs at once (``ARC_TEST_JOBS=2``): each on its own PostgreSQL and Redis (one
    run's cached answers or streams are never another's), both at the same time, and the
    failing one's failures printed again whole (side by side, its lines were interleaved
    with the other's), the summary in the order the runs were named."""
    python = lanes_python(
        tmp_path,
        '    echo "${ARC_TEST_DB:-sqlite} $ARC_REDIS_URL $ARC_PG_PORT $ARC_SERVICES_DIR" >> "$seen"\n'
        # each waits for the other to have started: a run after the other would never see it
        '    for _ in $(seq 100); do [ "$(wc -l < "$seen")" -ge 2 ] && break; sleep 0.1; done\n'
        '    [ "$(wc -l < "$seen")" -ge 2 ] || { echo "ran alone"; exit 3; }\n'
        '    echo "$1" > "$ARC_RUN_END"\n'
        '    if [ "${ARC_TEST_DB:-}" = postgres ]; then\n'
        '        echo "===== FAILURES ====="\n'
        '        echo "___ test_broken ___"\n'
        '        echo "E   assert the postgres failure"\n'
        '        echo "==== 1 failed, 2 passed in 0.01s ===="\n'
        "        exit 1\n"
        "    fi\n"
        '    echo "==== 3 passed in 0.01s ===="\n'
        "    exit 0\n",
    )
    result = run_tests(
        tmp_path,
        pytest_rc=0,
        ARC_PYTHON=str(python),
        ARC_TEST_BACKENDS="sqlite postgres",
        ARC_TEST_JOBS="2",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    runs = dict(line.split(" ", 1) for line in (tmp_path / "seen").read_text().splitlines())
    assert set(runs) == {"sqlite", "postgres"}, runs
    redis, pg, services = zip(*(run.split() for run in runs.values()), strict=True)
    assert len(set(redis)) == len(set(pg)) == len(set(services)) == 2, runs
    assert "[postgres] E   assert the postgres failure" in result.stdout
    again = result.stdout.split("failures of postgres, again", 1)[1]
    assert again.splitlines()[1:4] == [
        "===== FAILURES =====",
        "___ test_broken ___",
        "E   assert the postgres failure",
    ]
    assert "failures of sqlite" not in result.stdout
    summary = result.stdout.split("make test summary", 1)[1].splitlines()
    assert summary[1].split()[:2] == ["sqlite:", "ok"], summary
    assert summary[2].split()[:2] == ["postgres:", "FAILED"], summary
    assert result.stdout.rstrip().endswith("total: 5 passed, 1 failed, 0 skipped")
    for directory in services:  # every lane's services stopped
        assert not list(Path(directory).glob("*/postmaster.pid")), directory
        assert not (Path(directory) / "env").exists(), directory


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to read its status does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_a_terminated_make_test_ends_every_lanes_run_and_services(tmp_path):
    """A CI timeout's SIGTERM ends the script's shell: the runs in its lanes, their pytest
    processes, and every lane's services must end with it, not run on unowned."""
    python = lanes_python(
        tmp_path,
        '    echo "$$ $ARC_SERVICES_DIR" >> "$seen"\n    sleep 120 &\n    wait\n    exit 0\n',
    )
    env = script_env(tmp_path, python, ARC_TEST_BACKENDS="sqlite postgres", ARC_TEST_JOBS="2")
    script = subprocess.Popen(
        ["bash", str(RUN_TESTS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    seen = tmp_path / "seen"
    try:
        deadline = time.monotonic() + 120
        while not (seen.exists() and len(seen.read_text().splitlines()) == 2):
            assert script.poll() is None and time.monotonic() < deadline, script.stdout.read()
            time.sleep(0.1)
        script.terminate()
        output = script.communicate(timeout=90)[0].decode()
    finally:
        script.kill()
    assert script.returncode == 143, output
    for line in seen.read_text().splitlines():
        pid, directory = line.split()
        assert not running(int(pid)), line
        assert not (Path(directory) / "env").exists(), directory
        assert not list(Path(directory).glob("*/postmaster.pid")), directory


@pytest.mark.parametrize("jobs", ["0", "two", "-1", "02"])
def test_a_number_of_runs_at_once_that_is_no_number_is_refused(tmp_path, jobs):
    result = run_tests(tmp_path, pytest_rc=0, ARC_TEST_JOBS=jobs)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ARC_TEST_JOBS" in result.stderr
    assert result.pytest_calls == []


def test_a_run_named_twice_or_unknown_is_refused_before_any_run(tmp_path):
    for backends in ("sqlite sqlite", "sqlite mysql"):
        result = run_tests(tmp_path, pytest_rc=0, ARC_TEST_BACKENDS=backends)
        assert result.returncode != 0, result.stdout + result.stderr
        assert "ARC_TEST_BACKENDS" in result.stderr
        assert result.pytest_calls == []


@pytest.mark.slow
def test_four_runs_on_two_lanes_are_dealt_longest_first_to_the_least_loaded(tmp_path):
    """PostgreSQL's run on one lane, SQLite's on the other, then the Django 4.2 runs (a
    quarter of the examples: shorter), the longer one after the shorter run: both lanes end
    near together, where dealing in the order named put both SQLite runs on one lane."""
    python = lanes_python(
        tmp_path,
        '    echo "${ARC_TEST_DB:-sqlite} $ARC_SERVICES_DIR $(date +%s%N)" >> "$seen"\n'
        '    echo "$1" > "$ARC_RUN_END"\n'
        '    echo "==== 1 passed in 0.01s ===="\n'
        "    exit 0\n",
    )
    floor = tmp_path / "python-django42"
    floor.write_text(
        "#!/usr/bin/env bash\n"
        'case "$*" in *get_version*) echo "4.2.20"; exit 0 ;; esac\n'
        f'ARC_FLOOR=1 exec {python} "$@"\n'
    )
    floor.chmod(0o755)
    python.write_text(
        python.read_text().replace(
            '"${ARC_TEST_DB:-sqlite}', '"${ARC_FLOOR:+django42-}${ARC_TEST_DB:-sqlite}'
        )
    )
    result = run_tests(
        tmp_path,
        pytest_rc=0,
        ARC_PYTHON=str(python),
        ARC_PYTHON_DJANGO42=str(floor),
        ARC_TEST_BACKENDS="sqlite postgres django42-sqlite django42-postgres",
        ARC_TEST_JOBS="2",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lanes: dict[str, list[str]] = {}
    for line in sorted(
        (tmp_path / "seen").read_text().splitlines(), key=lambda entry: int(entry.split()[2])
    ):
        run, lane, _ = line.split()
        lanes.setdefault(lane, []).append(run)
    assert sorted(lanes.values()) == [
        ["postgres", "django42-sqlite"],
        ["sqlite", "django42-postgres"],
    ], lanes
    assert result.stdout.rstrip().endswith("total: 4 passed, 0 failed, 0 skipped")


@pytest.mark.slow
def test_a_ctrl_c_reaches_the_one_run_that_runs_at_a_time(tmp_path):
    """With one lane the run is in the foreground, as before runs went side by side: a
    Ctrl-C (SIGINT to the terminal's process group) reaches pytest, which ends its session
    and tears its fixtures down before the script's own trap stops the services. In the
    background, the script's trap ran at once and its TERM ended the run mid-teardown."""
    python = lanes_python(
        tmp_path,
        # pytest's own end on a Ctrl-C: its session ended, its fixtures torn down (a while)
        "    trap 'sleep 1; echo torn-down >> \"$seen\"; exit 2' INT\n"
        '    echo started >> "$seen"\n'
        "    sleep 60 &\n"
        "    wait\n"
        "    exit 0\n",
    )
    script = subprocess.Popen(
        ["bash", str(RUN_TESTS)],
        env=script_env(tmp_path, python, ARC_TEST_JOBS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen = tmp_path / "seen"
    try:
        deadline = time.monotonic() + 120
        while not (seen.exists() and "started" in seen.read_text()):
            assert script.poll() is None and time.monotonic() < deadline, script.stdout.read()
            time.sleep(0.1)
        os.killpg(script.pid, signal.SIGINT)
        output = script.communicate(timeout=90)[0].decode()
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    assert script.returncode == 130, output
    assert seen.read_text().split() == ["started", "torn-down"], output
