"""One relay loop (``run_relay``), receivers connected in ``ready()``, no import circles."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_arc.events import create_event, publish
from django_arc.events.transports import Transport
from django_arc.outbox import OutboxEvent, RelayResult, run_relay
from django_arc.outbox.receivers import DISPATCH_UID
from django_arc.signals import resource_event, scope_elevated
from django_arc.tasks import relay_outbox

PACKAGE = Path(__file__).resolve().parent.parent / "django_arc"


class FailsFirstOfPartition(Transport):
    """Refuses the first event of partition ``p`` (and any batch), so the next event of ``p``
    in the same batch is deferred (FIFO)."""

    def __init__(self, **_options):
        super().__init__()
        self.published: list[str] = []
        self.refused = False

    def publish(self, event):
        if event.meta.partition_key == "p" and not self.refused:
            self.refused = True
            raise ConnectionError("broker down")
        self.published.append(event.id)

    def publish_many(self, events):
        raise ConnectionError("no batches today")


@pytest.mark.django_db
def test_celery_task_reports_every_relay_counter_including_deferred():
    arc = {"EVENTS": {"TRANSPORT": FailsFirstOfPartition, "OPTIONS": {}}}
    with override_settings(ARC=arc):
        publish(create_event("a.b", {}, partition_key="p"))
        publish(create_event("a.b", {}, partition_key="p"))
        publish(create_event("a.b", {}, partition_key="q"))
        totals = relay_outbox(batch_size=10, max_batches=1)
    counters = {f.name for f in dataclasses.fields(RelayResult) if f.name != "used_publish_many"}
    assert counters <= set(totals)
    assert totals["attempted"] == 3
    assert totals["relayed"] == 1
    assert totals["publish_failed"] == 1
    assert totals["deferred"] == 1
    assert totals["batches"] == 1


@pytest.mark.django_db
def test_run_relay_stops_when_drained_or_after_max_batches_or_when_told():
    from django_arc.events.transports import MemoryTransport

    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}):
        for i in range(7):
            publish(create_event("a.b", {"i": i}))
        seen: list[int] = []
        totals = run_relay(
            batch_size=3, until_drained=True, on_batch=lambda n, r, s: seen.append(r.relayed)
        )
        assert seen == [3, 3, 1] and totals.relayed == 7 and totals.batches == 3
        publish(create_event("a.b", {}))
        assert run_relay(batch_size=3, max_batches=1).relayed == 1
        assert run_relay(should_stop=lambda: True).batches == 0
    assert not OutboxEvent.objects.filter(status="pending").exists()


@pytest.mark.django_db
def test_a_failed_batch_leaves_the_callers_transaction_usable(monkeypatch):
    """A batch's database error closed every connection (``close_old_connections()``), the
    caller's in its ``atomic()`` block too (``run_relay`` in a project's view under
    ``ATOMIC_REQUESTS``, an eager Celery task): the block's writes were lost and its next
    query refused (``TransactionManagementError``). It is left open now; the loop's own
    connections are closed as before."""
    from django.db import OperationalError, transaction

    from django_arc.outbox import EventOutbox

    def failing_batch(self, limit=None, worker_id=None):
        raise OperationalError("canceling statement due to lock timeout")

    monkeypatch.setattr(EventOutbox, "relay_batch", failing_batch)
    event = create_event("products.created", {"i": 1})
    with transaction.atomic():
        EventOutbox(None).store(event)
        totals = run_relay(max_batches=1, interval=0)
        assert (totals.batches, totals.errors) == (1, 1)
        assert OutboxEvent.objects.filter(event_id=event.id).exists()
    assert OutboxEvent.objects.filter(event_id=event.id).exists()


@pytest.mark.django_db
def test_a_relay_between_batches_leaves_the_callers_transaction_usable(monkeypatch):
    """Between two batches the loop recycles its connections as Django does between two
    requests (``CONN_MAX_AGE`` not 0), but not one inside the caller's ``atomic()`` block
    (``run_relay`` in a view under ``ATOMIC_REQUESTS``, an eager Celery task): Django closes
    a connection whose autocommit is off, which inside the block lost its writes and refused
    every later query of it."""
    from django.db import connection, transaction

    from django_arc.outbox import EventOutbox
    from tests.outbox_support import RecordingTransport

    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    event = create_event("products.created", {"i": 1})
    with transaction.atomic():
        outbox = EventOutbox(RecordingTransport())
        outbox.store(event)
        totals = run_relay(outbox, max_batches=2, interval=0)
        assert (totals.batches, totals.errors, totals.relayed) == (2, 0, 1)
        assert OutboxEvent.objects.get(event_id=event.id).status == "delivered"
    assert OutboxEvent.objects.filter(event_id=event.id).exists()


def _relayed_connecting(max_batches: int) -> tuple[Any, list[str]]:
    """``run_relay``'s totals over ``max_batches`` batches of an outbox recording what it
    publishes, and the aliases it connected meanwhile (``connection_created``), the default
    connection open when it starts."""
    from django.db import connection
    from django.db.backends.signals import connection_created

    from django_arc.outbox import EventOutbox
    from tests.outbox_support import RecordingTransport

    connection.ensure_connection()
    connected: list[str] = []

    def created(sender, connection, **kwargs):
        connected.append(connection.alias)

    connection_created.connect(created)
    try:
        totals = run_relay(EventOutbox(RecordingTransport()), max_batches=max_batches, interval=0)
    finally:
        connection_created.disconnect(created)
    return totals, connected


@pytest.mark.django_db(transaction=True)
def test_at_the_default_conn_max_age_the_relay_keeps_its_connection(monkeypatch):
    """At ``CONN_MAX_AGE = 0`` (Django's default) the loop keeps its connection for as long
    as it runs, as a management command does: recycling it as between two requests closed it
    after every batch, a new connection a second for an idle relay."""
    from django.db import connection

    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("Django never closes an in-memory SQLite database")
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    totals, connected = _relayed_connecting(max_batches=3)
    assert (totals.batches, totals.errors) == (3, 0)
    assert connected == []


def test_only_run_relay_drives_relay_batch():
    """The command, the Celery task and the admin hold no loop of their own."""
    callers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "relay_batch"
            ):
                callers.append(path.relative_to(PACKAGE).as_posix())
    assert callers == ["outbox/runner.py"]


def test_receivers_are_connected_explicitly_by_ready():
    assert any(key[0][0] == DISPATCH_UID for key in resource_event.receivers)
    assert any(
        key[0][0] == "django_arc.events.on_scope_elevated" for key in scope_elevated.receivers
    )
    for module in ("outbox/receivers.py", "events/bus.py"):
        source = (PACKAGE / module).read_text()
        assert "@receiver" not in source and ".connect(" not in source, module


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """Modules of django_arc that ``module`` imports, at any level (lazy imports included):
    ``from pkg import mod`` imports ``pkg.mod``, ``from mod import name`` imports ``mod``."""
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            parent = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_events_and_outbox_import_no_module_that_imports_them_back():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["django_arc", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph = {
        name: {m for m in _imports(path, name, set(modules)) if m in modules and m != name}
        for name, path in modules.items()
    }
    scope = [m for m in graph if m.startswith(("django_arc.events", "django_arc.outbox"))]

    def reaches(start: str, goal: str) -> bool:
        stack, seen = list(graph[start]), set()
        while stack:
            current = stack.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(graph.get(current, ()))
        return False

    cycles = [m for m in scope if reaches(m, m)]
    assert cycles == []


@pytest.mark.django_db(transaction=True)
def test_after_a_failed_batch_the_relay_connects_again(monkeypatch):
    """A batch's database error may leave its connection broken in ways Django does not
    see (a server that closed it, a protocol error outside a transaction): the loop closes
    the connections of a failed batch, as Django does after a request, and the next batch
    connects again, rather than failing on the same connection at every retry."""
    from django.db import OperationalError

    from django_arc.outbox import EventOutbox

    relay_batch = EventOutbox.relay_batch
    calls = []

    def fails_once(self, limit=None, worker_id=None):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return relay_batch(self, limit=limit, worker_id=worker_id)

    monkeypatch.setattr(EventOutbox, "relay_batch", fails_once)
    totals, connected = _relayed_connecting(max_batches=2)
    assert (totals.batches, totals.errors) == (2, 1)
    assert connected == ["default"]


@pytest.mark.django_db
def test_a_relay_batch_size_past_the_cap_relays_a_backlog_in_capped_batches():
    """A batch claims at most ``MAX_BATCH_SIZE`` (10,000) rows whatever size is asked, and
    arc.E008 refuses a larger ``BATCH_SIZE``; but ``relay_outbox(batch_size=)`` (a beat
    entry's kwargs) and ``run_relay(batch_size=)`` took any size, and with ``until_drained``
    a batch of 10,000 under an asked 50,000 counted as short: the tick stopped after one
    batch, a backlog left behind (a larger batch_size relayed less per tick than 10,000
    did). The size is capped as the batch caps it, so the tick goes on."""
    from django_arc.events.transports import MemoryTransport
    from django_arc.outbox.relay import MAX_BATCH_SIZE

    OutboxEvent.objects.bulk_create(
        OutboxEvent(event_id=f"cap-{n}", type="a.b") for n in range(MAX_BATCH_SIZE + 5)
    )
    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}):
        totals = relay_outbox(batch_size=50_000, max_batches=3)
    assert (totals["batches"], totals["relayed"]) == (2, MAX_BATCH_SIZE + 5)
    assert not OutboxEvent.objects.filter(status="pending").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("size", [-1, -100, 0])
def test_a_relay_batch_size_below_one_is_refused_not_an_idle_tick(size):
    """``relay_outbox(batch_size=-1)`` claimed nothing (a batch of no rows), and as an empty
    batch is no short one under a size below 0, the tick idled a second per batch up to
    ``max_batches`` (10 s a tick, every tick, nothing ever relayed, no word of why);
    ``arc_relay --batch-size`` refuses it. ``run_relay`` refuses it too, naming it; the
    task refuses it without raising (a traceback a tick: see
    ``test_a_tick_given_arguments_out_of_range_relays_nothing_and_says_so_once``)."""
    OutboxEvent.objects.create(event_id="below-one", type="a.b")
    # 0 too (read as "the default" by ``batch_size or BATCH_SIZE``, where the docs say below
    # 1 is refused: the default is ``None``)
    refused = f"batch_size must be an integer from 1, got {size}"
    assert relay_outbox(batch_size=size, max_batches=2)["errors"] == 1
    with pytest.raises(ValueError, match=refused):
        run_relay(batch_size=size, max_batches=2)
    assert OutboxEvent.objects.get().status == "pending"


@pytest.mark.django_db
def test_a_relay_batch_asked_past_the_cap_claims_exactly_the_cap():
    """``run_relay(batch_size=50_000)`` runs batches of exactly ``MAX_BATCH_SIZE`` rows,
    the most a batch claims: a cap one lower (9,999) relayed the same totals, in batches one
    row short, with every test green (mutation round 6)."""
    from django_arc.events.transports import MemoryTransport
    from django_arc.outbox import EventOutbox
    from django_arc.outbox.relay import MAX_BATCH_SIZE

    OutboxEvent.objects.bulk_create(
        OutboxEvent(event_id=f"cap-{n}", type="a.b") for n in range(MAX_BATCH_SIZE + 5)
    )
    sizes: list[int] = []
    totals = run_relay(
        EventOutbox(MemoryTransport()),
        batch_size=50_000,
        until_drained=True,
        max_batches=3,
        on_batch=lambda number, result, seconds: sizes.append(result.attempted),
    )
    assert sizes == [MAX_BATCH_SIZE, 5]
    assert totals.relayed == MAX_BATCH_SIZE + 5
