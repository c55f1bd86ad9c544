"""The quickstarts run verbatim (issue #18, point 4).

``docs/quickstart.md`` and the README's quickstart are built into a throwaway project,
exactly as written, and every command and request they show is run and compared with the
output they promise (see :mod:`tests.docs_project` for the rules). A page that drifts from
what django-arc does fails here, not in front of a newcomer.

The throwaway project has its own SQLite database, so these run in the SQLite runs of
``make test`` (under both Django versions) and are skipped in the PostgreSQL runs, which
would only repeat them.
"""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path

import pytest

from tests.docs_project import CommandStep, FileStep, Replay, install_lines, steps

ROOT = Path(__file__).resolve().parent.parent
README_START, README_END = "<!-- quickstart:start -->", "<!-- quickstart:end -->"

replays_a_project = pytest.mark.skipif(
    os.environ.get("ARC_TEST_DB") == "postgres",
    reason="the quickstart project uses its own SQLite database: run in the SQLite runs",
)


def quickstart_page() -> str:
    return (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")


def readme_quickstart() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(README_START) == 1 and readme.count(README_END) == 1
    return readme.split(README_START, 1)[1].split(README_END, 1)[0]


@pytest.fixture
def replay(tmp_path):
    replay = Replay(tmp_path)
    yield replay
    replay.close()


def replay_page(replay: Replay, page: str) -> list[str]:
    page_steps = steps(page)
    mismatches = replay.run(page_steps)
    assert not mismatches, "\n\n".join(str(m) for m in mismatches)
    assert len(replay.ran) == sum(isinstance(s, CommandStep) for s in page_steps)
    return [s.path for s in page_steps if isinstance(s, FileStep)]


@replays_a_project
def test_docs_quickstart_runs_verbatim(replay):
    files = replay_page(replay, quickstart_page())
    assert files == [
        "mysite/settings.py",
        "shop/models.py",
        "shop/membership.py",
        "shop/admin.py",
        "shop/resources.py",
        "mysite/urls.py",
        "first_org.py",
    ]
    curls = [c for c in replay.ran if c.startswith("curl ")]
    assert len(curls) >= 10, "the quickstart lost its requests"
    assert any("arc_relay" in c for c in replay.ran)


@replays_a_project
def test_readme_quickstart_runs_verbatim(replay):
    files = replay_page(replay, readme_quickstart())
    assert set(files) >= {"mysite/settings.py", "shop/models.py", "shop/resources.py"}
    assert sum(c.startswith("curl ") for c in replay.ran) >= 3, "the README lost its requests"


def test_a_page_that_drifts_fails(replay):
    """The replay compares, files and outputs alike: a changed promise is reported with the
    command, what the page says and what was printed."""
    page = (
        "```python\n# greeting.py\nWORD = 'hello'\n```\n\n"
        "```console\n$ python -c 'import greeting; print(greeting.WORD)'\nhello\n"
        "$ python -c 'import greeting; print(greeting.WORD * 2)'\nhellohello!\n```\n"
    )
    (mismatch,) = replay.run(steps(page))
    assert (mismatch.line, mismatch.expected, mismatch.actual) == (9, "hellohello!", "hellohello")
    assert replay.ran == [
        "python -c 'import greeting; print(greeting.WORD)'",
        "python -c 'import greeting; print(greeting.WORD * 2)'",
    ]


def test_commands_share_one_shell_and_cannot_read_the_next_step(replay):
    page = '```console\n$ NAME=$(echo arc)\n$ cat; echo "$NAME"\narc\n$ echo done\ndone\n```\n'
    assert replay.run(steps(page)) == []


def _extras() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return set(config["options.extras_require"])


@pytest.mark.parametrize("page", ["docs/quickstart.md", "README.md"])
def test_install_lines_name_this_package_its_extras_and_the_repository(page):
    """Install lines are not run (no network); what they name must exist: the package,
    extras of setup.cfg, the repository of mkdocs.yml, and the future PyPI line."""
    text = (ROOT / page).read_text(encoding="utf-8")
    lines = install_lines(text)
    assert lines, f"{page} lost its install instructions"
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    name = config["metadata"]["name"]
    repo = re.search(r"^repo_url: (\S+)$", (ROOT / "mkdocs.yml").read_text(), re.M).group(1)
    for line in lines:
        assert name in line, line
        for extras in re.findall(r"\[([a-z,]+)\]", line):
            assert set(extras.split(",")) <= _extras(), line
        for url in re.findall(r"git\+(\S+?)[\"']?$", line):
            assert url == repo, line
    assert any("git+" in line for line in lines)
    assert "pip install django-arc" in text  # the line for once it is on PyPI


@pytest.mark.django_db(transaction=True)
def test_what_the_quickstart_says_of_a_failing_handler_under_the_default_transport():
    """docs/quickstart.md §10: under the default MemoryTransport the relay delivers to the
    handlers subscribed in its own process; one that raises is logged, the others still run,
    and the outbox row is marked delivered, not retried."""
    from django.db import transaction

    from django_arc import events
    from django_arc.events.transports import MemoryTransport
    from django_arc.outbox import OutboxEvent, get_outbox
    from django_arc.settings import DEFAULTS

    assert DEFAULTS["EVENTS"]["TRANSPORT"] == "django_arc.events.transports.MemoryTransport"
    calls: list[str] = []

    def broken(event):
        calls.append("broken")
        raise RuntimeError("mail server down")

    def fine(event):
        calls.append("fine")

    stops = [events.subscribe("quickstart.*", broken), events.subscribe("quickstart.*", fine)]
    try:
        assert isinstance(events.get_transport(), MemoryTransport)
        with transaction.atomic():
            event = events.publish(events.create_event("quickstart.checked", {"n": 1}))
        outbox = get_outbox()
        first = outbox.relay_batch(limit=10, worker_id="quickstart")
        again = outbox.relay_batch(limit=10, worker_id="quickstart")
    finally:
        for stop in stops:
            stop()
    assert calls == ["broken", "fine"]
    assert (first.relayed, first.publish_failed, again.attempted) == (1, 0, 0)
    row = OutboxEvent.objects.get(event_id=event.id)
    assert (row.status, row.attempts) == ("delivered", 0)


#: the optional modules the example project uses (imported, or named by its settings), and
#: the distribution of an extra that installs each
EXAMPLE_OPTIONAL = {
    "drf_spectacular_sidecar": "drf-spectacular-sidecar",
    "django_redis": "django-redis",
    "celery": "celery",
    "django.db.backends.postgresql": "psycopg",
}


def test_the_example_requirements_name_the_extras_the_example_uses():
    """docs/decisions.md ("What a user installs") quotes example_project/requirements.txt:
    its line names this package from the repository of mkdocs.yml, with extras setup.cfg
    has, and those extras install every optional module the example project uses."""
    lines = [
        line
        for line in (ROOT / "example_project/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 1, lines
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    name, extras, url = re.fullmatch(r"([\w-]+)\[([a-z,]+)\] @ git\+(\S+)", lines[0]).groups()
    assert name == config["metadata"]["name"]
    assert url == re.search(r"^repo_url: (\S+)$", (ROOT / "mkdocs.yml").read_text(), re.M)[1]
    assert set(extras.split(",")) <= _extras()
    installed = {
        re.split(r"[<>=\[ ;]", requirement.strip(), maxsplit=1)[0]
        for extra in extras.split(",")
        for requirement in config["options.extras_require"][extra].splitlines()
        if requirement.strip() and not requirement.strip().startswith("#")
    }
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for path in (ROOT / "example_project").rglob("*.py")
        if "migrations" not in path.parts
    )
    for module, distribution in EXAMPLE_OPTIONAL.items():
        assert module in source, f"the example no longer uses {module}: update EXAMPLE_OPTIONAL"
        assert distribution in installed, (module, distribution, installed)
