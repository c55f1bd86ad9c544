"""django_arc's migrations as a project upgrading the app meets them: rows written under an
older schema survive the later migrations and still work with the current code (an outbox
row is relayed, an idempotency record is replayed, or purged once expired), every migration
reverses, and 0004's ``fillfactor`` follows the migrations both ways on PostgreSQL.

The rows of the older schema are written through the historical models, the way a project
that stopped at that migration wrote them. Each test migrates forward again in ``finally``,
so a failure leaves the test database at the latest schema for the tests that follow.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from django_arc.events.transports.memory import MemoryTransport
from django_arc.idempotency import stores
from django_arc.outbox import OutboxEvent
from django_arc.outbox.relay import EventOutbox

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_HEADERS = ("django_arc", "0006_idempotency_record")
BEFORE_RELAY_WRITES = ("django_arc", "0003_outbox_event_json_encoder")


def _migrate(target: tuple[str, str | None] | None):
    """Migrate django_arc to ``target`` (``None``: every app's latest); the historical apps
    there. Going back unapplies the test app's migrations that depend on a later django_arc
    one (``0014_rev_mutation3`` on), so going forward applies every app's leaves, not only
    django_arc's: its leaf alone left their tables dropped for the tests after this file."""
    executor = MigrationExecutor(connection)
    targets = [target] if target else executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def _fillfactor() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = %s",
            [OutboxEvent._meta.db_table],
        )
        return cursor.fetchone()[0]


def _request(key: str) -> stores.Request:
    return stores.Request(
        key=key, fingerprint=f"fp-{key}", method="POST", path="/products/",
        lock_seconds=30, ttl_seconds=3600,
    )  # fmt: skip


def test_records_written_before_0007_and_0008_are_replayed_and_purged():
    """A record finished before the headers column (0007) and the text Content-Type (0008)
    existed is replayed after the upgrade, with no headers of its own; one expired before
    it is purged; an in-flight claim whose lock ran out is taken over. (Records the upgrade
    could not read would make every retry across a deploy run its write again.)"""
    now = timezone.now()
    try:
        old = _migrate(BEFORE_HEADERS)
        Record = old.get_model("django_arc", "IdempotencyRecord")
        common = {"token": "old-token", "method": "POST", "path": "/products/"}
        Record.objects.create(
            key="finished", fingerprint="fp-finished", status=201,
            content_type="application/json", body=b'{"id": 7}',
            expires_at=now + timedelta(hours=1), **common,
        )  # fmt: skip
        Record.objects.create(
            key="expired", fingerprint="fp-expired", status=200, content_type="text/plain",
            body=b"x", expires_at=now - timedelta(seconds=1), **common,
        )  # fmt: skip
        Record.objects.create(
            key="abandoned", fingerprint="fp-abandoned",
            locked_until=now - timedelta(seconds=1), expires_at=now + timedelta(hours=1),
            **common,
        )  # fmt: skip
    finally:
        _migrate(None)

    store = stores.DatabaseStore()
    replay = store.claim(_request("finished"))
    assert (replay.outcome, replay.status, replay.content_type, replay.body, replay.headers) == (
        stores.FINISHED,
        201,
        "application/json",
        b'{"id": 7}',
        (),
    )
    assert store.claim(_request("abandoned")).outcome == stores.CLAIMED
    assert store.purge() == 1
    assert store.claim(_request("expired")).outcome == stores.CLAIMED


def test_outbox_rows_written_before_0004_are_relayed_after_a_round_trip():
    """Outbox rows written at 0003 (pending, one leased by a worker that died, one dead) keep
    their data through 0004's constraint swap (on SQLite a copy of the whole table), back to
    0003 and forward again, and the current relay publishes them; 0004 sets the table's
    ``fillfactor`` to 50 on PostgreSQL and its reverse puts back 100."""
    now = timezone.now()
    try:
        old = _migrate(BEFORE_RELAY_WRITES)
        Row = old.get_model("django_arc", "OutboxEvent")
        meta = {"timestamp": now.isoformat(), "partition_key": "p"}
        Row.objects.create(event_id="e-pending", type="old.pending", payload={"n": 1}, meta=meta)
        Row.objects.create(
            event_id="e-leased", type="old.leased", payload={"n": 2}, meta=meta,
            lease_owner="dead-worker", lease_expires_at=now - timedelta(minutes=1), attempts=1,
        )  # fmt: skip
        Row.objects.create(
            event_id="e-dead", type="old.dead", payload={"n": 3}, meta=meta, status="dead",
            attempts=8, last_error="boom",
        )  # fmt: skip
        if connection.vendor == "postgresql":
            assert _fillfactor() == "fillfactor=100"
        _migrate(None)
        if connection.vendor == "postgresql":
            assert _fillfactor() == "fillfactor=50"
        _migrate(BEFORE_RELAY_WRITES)
        if connection.vendor == "postgresql":
            assert _fillfactor() == "fillfactor=100"
    finally:
        _migrate(None)
    if connection.vendor == "postgresql":
        assert _fillfactor() == "fillfactor=50"

    transport = MemoryTransport()
    outbox = EventOutbox(transport)
    assert outbox.requeue(["e-dead"]) == 1
    assert outbox.relay_batch(limit=10).relayed == 3
    published = {(e.id, e.type, e.payload["n"], e.meta.partition_key) for e in transport.published}
    assert published == {
        ("e-pending", "old.pending", 1, "p"),
        ("e-leased", "old.leased", 2, "p"),
        ("e-dead", "old.dead", 3, "p"),
    }
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}


def test_the_records_key_has_one_unique_index_and_no_pattern_index():
    """Before 0009 the key was ``unique=True``, which on PostgreSQL also built a
    ``varchar_pattern_ops`` (``_like``) index that no query uses and that every claim's
    INSERT and every answer's UPDATE maintained. A duplicate key is still refused, which is
    the lock the ``database`` store relies on; records kept across 0009 stay readable."""
    from django.db import IntegrityError, transaction

    from django_arc.idempotency.models import IdempotencyRecord

    table = IdempotencyRecord._meta.db_table
    try:
        old = _migrate(("django_arc", "0008_idempotency_content_type_text"))
        old.get_model("django_arc", "IdempotencyRecord").objects.create(
            key="k" * 64, fingerprint="f", token="t", method="POST", path="/p/",
            expires_at=timezone.now() + timedelta(hours=1),
        )  # fmt: skip
    finally:
        _migrate(None)
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    on_key = {name: c for name, c in found.items() if c["columns"] == ["key"]}
    assert list(on_key) == ["arc_idem_unique_key"], on_key
    assert on_key["arc_idem_unique_key"]["unique"]
    assert IdempotencyRecord.objects.get(key="k" * 64).path == "/p/"
    with pytest.raises(IntegrityError), transaction.atomic():
        IdempotencyRecord.objects.create(
            key="k" * 64, fingerprint="g", token="u", method="POST", path="/q/",
            expires_at=timezone.now() + timedelta(hours=1),
        )  # fmt: skip


def test_audit_rows_written_before_0010_keep_their_ids_and_indexes():
    """0010 turns the audit log's ``actor_user_id`` and ``object_id`` into text: rows
    written before it read back the same and are still found through the actor's and the
    object's indexes (the admin's searches), a long id stores after it, and 0010
    reverses."""
    from django_arc.audit.models import AuditLog

    table = AuditLog._meta.db_table
    try:
        old = _migrate(("django_arc", "0009_idempotency_key_constraint"))
        old.get_model("django_arc", "AuditLog").objects.create(
            action="created", resource="products", object_id="7", actor_kind="authenticated",
            actor_user_id="u" * 64, request_id="r",
        )  # fmt: skip
        _migrate(None)
        _migrate(("django_arc", "0009_idempotency_key_constraint"))
    finally:
        _migrate(None)
    row = AuditLog.objects.get(actor_user_id="u" * 64)
    assert (row.resource, row.object_id) == ("products", "7")
    assert AuditLog.objects.filter(resource="products", object_id="7").count() == 1
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    columns = {tuple(c["columns"]) for c in found.values() if c["index"]}
    assert {("actor_user_id", "id"), ("resource", "object_id", "id")} <= columns
    AuditLog.objects.create(action="sent", object_id="o" * 300, actor_user_id="u" * 300)
    assert AuditLog.objects.filter(actor_user_id="u" * 300, object_id="o" * 300).exists()
