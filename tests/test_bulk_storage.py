"""What a bulk write stores is what the same writes one by one store, column for column: the
outbox rows, the audit rows and the events' meta. On PostgreSQL the batch's outbox and audit
rows travel as JSON parameters the server expands (one statement each); elsewhere through
``bulk_create``. Both must agree with the single-row paths, odd strings included."""

from __future__ import annotations

import pytest
from django.db import DataError, IntegrityError, connection, reset_queries, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_arc import audit
from django_arc.audit.models import AuditLog
from django_arc.audit.store import insert_many
from django_arc.events import emit, emit_many
from django_arc.events.bus import encode_payload
from django_arc.events.event import create_event
from django_arc.outbox.models import OutboxEvent
from django_arc.outbox.store import store_event_without_row, store_events_without_rows
from tests.factories import AuthorFactory, BookFactory, MembershipFactory, OrganizationFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

POSTGRES = connection.vendor == "postgresql"

#: Strings that quoting, escaping or JSON splicing could get wrong (no NUL and no lone
#: surrogate: JSON storage refuses those on every backend, before any SQL).
ODD = [
    "plain",
    'quotes " and \' and ` and ""',
    "back\\slash \\\\ \\n \\t \\u0000 \\ud800 \\x00 \\",
    "newline\n tab\t cr\r formfeed\x0c bell\x07 escape\x1b delete\x7f",
    "unicode é ß 中文 🎉 e\u0301 \u202eright-to-left\u202c zero\u200bwidth \ufeffbom",
    "line separators \u2028 \u2029",
    "percent %s %(x)s %% {} {0} $1 ?",
    "sql '); DROP TABLE django_arc_outboxevent; -- ::jsonb",
    'json-like {"a": [1, 2]}, ] [ , : null',
    "",
    "   ",
    "long " + "x" * 5000,
]


def odd_payload(i: int, text: str) -> dict:
    return {
        "i": i,
        "s": text,
        f'key "{i}" é\\': text,
        "nested": {"list": [text, 1, 1.5, 10**20, True, False, None], "empty": {}},
    }


def stored_and_rolled_back(write):
    """The rows ``write()`` stores, read back inside its transaction, which then rolls
    back: the same events can be stored again by the other path."""
    with transaction.atomic():
        write()
        rows = outbox_rows()
        transaction.set_rollback(True)
    return rows


def outbox_rows() -> list[dict]:
    """Every outbox column but the id; on PostgreSQL also the JSON columns as the server
    prints them (what the relay reads)."""
    rows = list(OutboxEvent.objects.order_by("id").values())
    if POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT payload::text, meta::text FROM django_arc_outboxevent ORDER BY id"
            )
            texts = cursor.fetchall()
        for row, (payload, meta) in zip(rows, texts, strict=True):
            row["payload_text"], row["meta_text"] = payload, meta
    for row in rows:
        del row["id"]
    return rows


def outbox_inserts(ctx) -> list[str]:
    return [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("INSERT") and '"django_arc_outboxevent"' in q["sql"]
    ]


def odd_events(keyed: bool) -> list:
    return [
        create_event(
            "things.odd",
            odd_payload(i, text),
            resource="things",
            resource_id=i,
            partition_key=f"things:{text[:40]}",
            correlation_id="req-1",
            user_id=4,
            organization_id=7,
            idempotency_key=f"req:things.odd:{i}" if keyed else None,
        )
        for i, text in enumerate(ODD)
    ]


# -- outbox ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
def test_a_batch_stores_the_rows_the_events_one_by_one_store(keyed):
    items = [encode_payload(event) for event in odd_events(keyed)]  # what publish() hands on
    start = timezone.now()
    with CaptureQueriesContext(connection) as ctx:
        batch = stored_and_rolled_back(lambda: store_events_without_rows(items))
    single = stored_and_rolled_back(
        lambda: [store_event_without_row(e, payload_json=text) for e, text in items]
    )
    end = timezone.now()
    [insert] = outbox_inserts(ctx)
    if POSTGRES:
        assert "jsonb_array_elements" in insert
    for rows in (batch, single):
        for row in rows:
            created, visible = row.pop("created_at"), row.pop("visible_at")
            assert start <= created == visible <= end
    assert batch == single
    assert [row["event_id"] for row in batch] == [event.id for event, _ in items]  # in order
    assert [row["payload"] for row in batch] == [event.payload for event, _ in items]
    assert [row["payload"]["s"] for row in batch] == ODD
    assert [row["meta"] for row in batch] == [event.meta.to_dict() for event, _ in items]
    assert {(r["status"], r["attempts"], r["last_error"]) for r in batch} == {("pending", 0, "")}
    assert [row["dedupe_key"] for row in batch] == [
        event.meta.idempotency_key for event, _ in items
    ]


def test_a_batch_without_the_publishers_encoding_encodes_the_payload_itself():
    events = odd_events(keyed=False)
    with transaction.atomic():
        store_events_without_rows([(event, None) for event in events])
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [row.payload for row in rows] == [event.payload for event in events]


def test_keyed_duplicates_are_skipped_within_a_batch_and_against_stored_rows():
    stored = create_event("a.b", {"n": "stored"}, idempotency_key="k0")
    store_event_without_row(stored)
    keyed = [create_event("a.b", {"n": i}, idempotency_key=f"k{i % 3}") for i in range(6)]
    plain = [create_event("a.c", {"n": i}) for i in range(3)]
    mixed = [plain[0], *keyed[:3], plain[1], *keyed[3:], stored, plain[2]]
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        store_events_without_rows([encode_payload(event) for event in mixed])
        # nothing aborted the transaction: it still answers
        assert OutboxEvent.objects.count() == 1 + 2 + 3
    inserts = outbox_inserts(ctx)
    assert len(inserts) == 2  # one for the plain events, one skipping conflicts
    if POSTGRES:
        assert "ON CONFLICT DO NOTHING" in inserts[1] and "ON CONFLICT" not in inserts[0]
        assert all("jsonb_array_elements" in sql for sql in inserts)
    by_key = dict(
        OutboxEvent.objects.filter(dedupe_key__isnull=False).values_list("dedupe_key", "event_id")
    )
    # the row stored first keeps its key; within the batch, the first event of a key wins
    assert by_key == {"k0": stored.id, "k1": keyed[1].id, "k2": keyed[2].id}
    plain_rows = OutboxEvent.objects.filter(type="a.c").order_by("id")
    assert [row.event_id for row in plain_rows] == [event.id for event in plain]


def test_a_failing_statement_stores_nothing_of_the_batch():
    event = create_event("a.b", {})
    store_event_without_row(event)
    batch = [create_event("a.b", {"n": 1}), event]  # the same id again, without a key
    with pytest.raises(IntegrityError), transaction.atomic():
        store_events_without_rows([encode_payload(e) for e in batch])
    assert list(OutboxEvent.objects.values_list("event_id", flat=True)) == [event.id]


@pytest.mark.skipif(not POSTGRES, reason="column lengths are PostgreSQL's")
def test_the_batch_keeps_the_column_types_on_postgresql():
    """A value too long for its column fails the batch as it fails one row, rather than
    being cut to fit: the audit batch's shared columns go through the server's column types
    (an action past ``varchar(100)`` is PostgreSQL's ``DataError``). An event type past the
    outbox's column is refused before any SQL, by the batch as by one row."""
    shared = AuditLog(action="a" * 101, resource="things", actor_kind="public")
    with pytest.raises(DataError), transaction.atomic():
        insert_many(shared, [("1", None, {"n": 1})])
    assert not AuditLog.objects.exists()
    too_long = create_event("t" * 201, {})
    with pytest.raises(ValueError, match="at most 200"), transaction.atomic():
        store_event_without_row(too_long)
    with pytest.raises(ValueError, match="at most 200"), transaction.atomic():
        store_events_without_rows([encode_payload(too_long)])
    assert not OutboxEvent.objects.exists()


# -- events ---------------------------------------------------------------------------------------


def test_emit_many_gives_each_row_the_meta_emit_gives_it():
    def keyed_request():
        request = RequestFactory().post("/x/", HTTP_X_REQUEST_ID="req-emit-1")
        request.arc_idempotency_key = "scoped"
        return request

    rows = [(i, {"id": i, "s": text}) for i, text in enumerate(ODD[:4])]
    # the same request's events, sent once in a batch and once one by one (two requests:
    # within one, a second event of the same type and row is another event, numbered)
    request, again = keyed_request(), keyed_request()
    with transaction.atomic():
        many = emit_many("things.created", rows, request=request, resource="things")
        one_by_one = [
            emit("things.created", payload, request=again, resource="things", resource_id=pk)
            for pk, payload in rows
        ]

    def comparable(event):
        meta = event.meta.to_dict()
        assert meta.pop("id") == event.id and meta.pop("timestamp")
        return event.type, event.payload, meta

    assert [comparable(e) for e in many] == [comparable(e) for e in one_by_one]
    assert [e.meta.idempotency_key for e in many] == [
        f"scoped:things.created:{pk}" for pk, _ in rows
    ]
    assert [e.meta.partition_key for e in many] == [f"things:{pk}" for pk, _ in rows]
    assert len({e.id for e in many + one_by_one}) == 2 * len(rows)
    stored = {row.event_id: row for row in OutboxEvent.objects.all()}
    assert [stored[e.id].payload for e in many] == [payload for _, payload in rows]


# -- audit ----------------------------------------------------------------------------------------


def audit_rows() -> list[dict]:
    """Every audit column but the id, and whether ``before``/``after`` are SQL ``NULL``
    (which the decoded values do not tell from a JSON ``null``)."""
    null = {
        f"{name}_is_null": ExpressionWrapper(Q(**{f"{name}__isnull": True}), BooleanField())
        for name in ("before", "after")
    }
    rows = list(AuditLog.objects.order_by("id").annotate(**null).values())
    for row in rows:
        del row["id"]
    return rows


def same_audit(batch: list[dict], single: list[dict], start, end) -> None:
    """Equal column for column, but the time (one per batch, one per row) and the object's
    own id, which differs between the two writes when they create rows."""
    for rows in (batch, single):
        for row in rows:
            assert start <= row.pop("created_at") <= end
    assert batch == single


def title(prefix: str, text: str) -> str:
    """An odd string as a title: never blank, at most the column's 200 characters."""
    return f"{prefix} {text}"[:200]


@pytest.fixture
def editor():
    org = OrganizationFactory()
    user = MembershipFactory(organization=org, role="editor").user
    return org, user, client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_REQUEST_ID="r-1")


def test_bulk_create_and_update_audit_the_rows_single_writes_audit(editor):
    org, user, api = editor
    titles = [title(f"t{i}", text) for i, text in enumerate(ODD)]
    items = [{"slug": f"s{i}", "title": t, "secret": "hush"} for i, t in enumerate(titles)]
    start = timezone.now()
    reset_queries()  # the request does it too (request_started): the capture must start at 0
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        r = api.post("/api/all-articles/bulk/", {"items": items}, format="json")
        assert r.status_code == 201, r.content
        bulk_ids = r.json()["data"]["ids"]
        batch = audit_rows()
        transaction.set_rollback(True)
    [insert] = [
        q["sql"]
        for q in ctx.captured_queries  # read now: the next request empties the log
        if q["sql"].startswith("INSERT") and '"django_arc_auditlog"' in q["sql"]
    ]
    single_ids = []
    for item in items:
        r = api.post("/api/all-articles/", item, format="json")
        assert r.status_code == 201, r.content
        single_ids.append(r.json()["data"]["id"])
    single = audit_rows()
    end = timezone.now()
    if POSTGRES:
        assert "jsonb_array_elements" in insert
    assert [row["object_id"] for row in batch] == [str(pk) for pk in bulk_ids]
    assert [row["object_id"] for row in single] == [str(pk) for pk in single_ids]
    for rows in (batch, single):
        for row in rows:
            assert row["after"].pop("id") == int(row.pop("object_id"))
    same_audit(batch, single, start, end)
    assert [row["after"]["title"] for row in batch] == [t.strip() for t in titles]
    assert {(row["action"], row["resource"], row["request_id"]) for row in batch} == {
        ("created", "all-articles", "r-1")
    }
    assert {(row["organization_id"], row["actor_user_id"]) for row in batch} == {
        (str(org.pk), str(user.pk))
    }
    assert all(row["before_is_null"] and "secret" not in row["after"] for row in batch)

    # updates: the same rows, changed by one bulk PATCH or by one PATCH each
    AuditLog.objects.all().delete()
    titles = [title(f"u{i}", text) for i, text in enumerate(reversed(ODD))]
    changes = [
        {"id": pk, "title": t, "secret": "x"} for pk, t in zip(single_ids, titles, strict=True)
    ]
    start = timezone.now()
    with transaction.atomic():
        r = api.patch("/api/all-articles/bulk/", {"items": changes}, format="json")
        assert r.status_code == 200, r.content
        batch = audit_rows()
        transaction.set_rollback(True)
    for change in changes:
        body = {k: v for k, v in change.items() if k != "id"}
        r = api.patch(f"/api/all-articles/{change['id']}/", body, format="json")
        assert r.status_code == 200, r.content
    single = audit_rows()
    end = timezone.now()
    same_audit(batch, single, start, end)
    # only what changed, never the hidden field
    assert [(row["before"], row["after"]) for row in batch] == [
        ({"title": old.strip()}, {"title": new.strip()})
        for old, new in zip([item["title"] for item in items], titles, strict=True)
    ]


def test_bulk_hard_delete_audits_the_rows_single_deletes_audit():
    author = AuthorFactory()
    books = [BookFactory(author=author, title=title("b", text)) for text in ODD[:5]]
    api = client_for(None, HTTP_X_REQUEST_ID="r-2")
    start = timezone.now()
    with transaction.atomic():
        r = api.delete("/api/bulk-books/bulk/", {"ids": [b.pk for b in books]}, format="json")
        assert r.status_code == 200, r.content
        batch = audit_rows()
        transaction.set_rollback(True)
    for book in books:
        assert api.delete(f"/api/bulk-books/{book.pk}/").status_code in (200, 204)
    single = audit_rows()
    same_audit(batch, single, start, timezone.now())
    assert [row["before"]["title"] for row in batch] == [book.title for book in books]
    assert all(row["after_is_null"] for row in batch)
    assert {row["actor_kind"] for row in batch} == {"public"}


def test_record_many_stores_the_entries_entry_builds():
    request = RequestFactory().post("/x/", HTTP_X_REQUEST_ID="r-3")
    rows = [
        (None, None, {"s": ODD[1]}),
        (7, {"s": ODD[2]}, {"s": ODD[4]}),
        ("slug-é", {"s": ODD[6]}, None),
    ]
    start = timezone.now()
    with transaction.atomic():
        audit.record_many(request, "imported", rows, resource="things")
        batch = audit_rows()
        transaction.set_rollback(True)
    for object_id, before, after in rows:
        audit.entry(
            request, "imported", resource="things", object_id=object_id, before=before, after=after
        ).save()
    same_audit(batch, audit_rows(), start, timezone.now())
    assert [row["object_id"] for row in batch] == ["", "7", "slug-é"]
    assert [(row["before_is_null"], row["after_is_null"]) for row in batch] == [
        (True, False),
        (False, False),
        (False, True),
    ]
