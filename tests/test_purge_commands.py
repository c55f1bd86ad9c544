"""``arc_purge_outbox`` and ``arc_purge_idempotency``: what they take, say and exit with,
pinned (both share one piece of their option parsing and refusals)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command, load_command_class

pytestmark = pytest.mark.django_db

COMMANDS = ("arc_purge_outbox", "arc_purge_idempotency")


def options(name):
    parser = load_command_class("django_arc", name).create_parser("manage.py", name)
    return {
        action.option_strings[0]: (action.type, action.default, action.help)
        for action in parser._actions
        if action.option_strings and action.dest in ("batch_size", "days")
    }


def test_the_purge_commands_options():
    assert options("arc_purge_outbox") == {
        "--days": (
            float,
            None,
            "Keep delivered rows this many days (default DELIVERED_RETENTION_DAYS, 7). "
            "Keep them at least as long as IDEMPOTENCY['TTL_SECONDS'] (arc.W008).",
        ),
        "--batch-size": (
            int,
            None,
            "Rows deleted per statement (default 1000): each batch commits on its own, so "
            "a large outbox never holds all its rows' locks at once.",
        ),
    }
    assert options("arc_purge_idempotency") == {
        "--batch-size": (
            int,
            None,
            "Expired rows deleted per statement (default 1000): each batch commits on its "
            "own, so a large backlog never holds all its rows' locks at once.",
        ),
    }
    assert load_command_class("django_arc", "arc_purge_outbox").help == (
        "Delete delivered OutboxEvent rows delivered more than ARC['OUTBOX']"
        "['DELIVERED_RETENTION_DAYS'] days ago. Pending and dead rows are kept."
    )
    assert load_command_class("django_arc", "arc_purge_idempotency").help == (
        "Delete expired IdempotencyRecord rows (ARC['IDEMPOTENCY']['TTL_SECONDS'] after use)."
    )


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("bad", ["0", "-5"])
def test_a_batch_size_below_one_is_refused_with_status_1(name, bad):
    with pytest.raises(CommandError) as raised:
        call_command(name, "--batch-size", bad, stdout=StringIO())
    assert str(raised.value) == f"--batch-size must be a positive integer, got {bad}."
    assert raised.value.returncode == 1


@pytest.mark.parametrize("name", COMMANDS)
def test_a_batch_size_that_is_no_integer_is_argparses_error(name):
    with pytest.raises(CommandError) as raised:
        call_command(name, "--batch-size", "ten", stdout=StringIO())
    assert str(raised.value) == "Error: argument --batch-size: invalid int value: 'ten'"
    assert raised.value.returncode == 1


@pytest.mark.parametrize(
    "days,message",
    [
        ("-1", "--days must be a number of days, 0 or more, got -1.0."),
        ("nan", "--days must be a number of days, 0 or more, got nan."),
        ("1e9", "--days is too large: 1000000000.0 days back reaches before the year 1."),
    ],
)
def test_a_bad_days_is_refused_with_status_1(days, message):
    with pytest.raises(CommandError) as raised:
        call_command("arc_purge_outbox", "--days", days, stdout=StringIO())
    assert str(raised.value) == message
    assert raised.value.returncode == 1


@pytest.mark.parametrize(
    "name,said",
    [
        ("arc_purge_outbox", "Deleted 0 delivered outbox event(s) older than 7 day(s).\n"),
        ("arc_purge_idempotency", "Deleted 0 expired idempotency record(s).\n"),
    ],
)
def test_an_empty_purge_says_so(name, said):
    out = StringIO()
    call_command(name, "--batch-size", "3", stdout=out)
    assert out.getvalue() == said


class _Registry(type):
    """A project's metaclass for its commands (an ops dashboard listing what cron runs)."""

    registered: list[str] = []

    def __new__(mcs, name, bases, namespace, **kwargs):
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        mcs.registered.append(name)
        return cls


class _Registered(metaclass=_Registry):
    """The project's mixin every one of its commands lists first."""


def test_a_project_command_extending_a_purge_with_a_metaclass_mixin_builds_and_runs():
    """A project extends ``arc_purge_outbox`` as Django lets it override any app's command
    (its own ``management/commands/arc_purge_outbox.py``), with a mixin of its own that has
    a metaclass. The shared base was made an ``ABCMeta`` class (8826259) to refuse a
    subclass without ``purge()``, which no subclass lacked: such a class could then no
    longer be defined ("metaclass conflict", a ``TypeError`` at import: the command gone
    from cron). The base has no metaclass of its own: the project's class builds and runs."""
    from django_arc.management.commands.arc_purge_outbox import Command as OutboxPurge

    class Command(_Registered, OutboxPurge):  # raised TypeError here, at its definition
        help = "Our outbox purge."

    assert "Command" in _Registry.registered
    out = StringIO()
    call_command(Command(), "--batch-size", "3", stdout=out)
    assert out.getvalue() == "Deleted 0 delivered outbox event(s) older than 7 day(s).\n"


def test_a_purge_command_without_its_purge_refuses_to_run():
    """``PurgeCommand.purge`` raises ``NotImplementedError``: a subclass that forgets it
    fails loudly when run, never printing a line or exiting 0 as if it purged. (Round six
    pinned an ``ABCMeta`` refusal here; the base has no metaclass, see above.)"""
    from django_arc.management.commands._purge import PurgeCommand

    class Forgetful(PurgeCommand):
        help = "no purge"

    out = StringIO()
    with pytest.raises(NotImplementedError):
        call_command(Forgetful(), stdout=out)
    assert out.getvalue() == ""
