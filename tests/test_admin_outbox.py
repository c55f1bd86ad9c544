"""The OutboxEvent admin: changelist, read-only detail, requeue/purge actions, dead letters."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_arc.outbox import OutboxEvent

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_arc_outboxevent_changelist"
DEAD_LETTERS = "admin:django_arc_outboxevent_dead_letters"


def make_row(status: str = "pending", type: str = "orders.created", **extra) -> OutboxEvent:
    values = {
        "event_id": str(uuid.uuid4()),
        "type": type,
        "payload": {"order": 1, "items": [{"sku": "A", "qty": 2}]},
        "meta": {"correlation_id": "req-1", "resource": "orders"},
        "status": status,
        **extra,
    }
    if status == "dead":
        values.setdefault("attempts", 8)
        values.setdefault("last_error", "ConnectionError: broker unreachable " + "x" * 200)
    if status == "delivered":
        values.setdefault("delivered_at", timezone.now())
    return OutboxEvent.objects.create(**values)


@pytest.fixture
def admin_client_(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_changelist_columns_filters_and_search(admin_client_):
    dead = make_row("dead", type="payments.captured")
    pending = make_row("pending")
    url = reverse(CHANGELIST)
    response = admin_client_.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    for header in ("Type", "Status", "Attempts", "Last error", "Visible at"):
        assert header in body
    assert "ConnectionError: broker unreachable" in body
    assert "x" * 200 not in body  # excerpt, not the whole error
    assert "Dead letters" in body  # link to the DLQ page

    dead_only = admin_client_.get(url, {"status__exact": "dead"})
    assert list(dead_only.context["cl"].result_list) == [dead]
    by_type = admin_client_.get(url, {"type": "orders.created"})
    assert list(by_type.context["cl"].result_list) == [pending]
    by_id = admin_client_.get(url, {"q": dead.event_id})
    assert list(by_id.context["cl"].result_list) == [dead]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    recent = admin_client_.get(url, {"created_at__gte": since})
    assert set(recent.context["cl"].result_list) == {dead, pending}
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert list(admin_client_.get(url, {"created_at__gte": future}).context["cl"].result_list) == []
    # nonsense filters never 500
    assert admin_client_.get(url, {"status__exact": "bogus"}).status_code == 200
    assert admin_client_.get(url, {"created_at__gte": "not-a-date"}).status_code in (200, 302)


def test_detail_page_is_read_only_with_pretty_json(admin_client_):
    row = make_row("dead")
    url = reverse("admin:django_arc_outboxevent_change", args=[row.pk])
    response = admin_client_.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="arc-json"' in body
    assert "&quot;items&quot;: [" in body  # indented JSON, not a one-line repr
    assert 'name="_save"' not in body
    before = OutboxEvent.objects.get(pk=row.pk)
    assert admin_client_.post(url, {"type": "hacked"}).status_code == 403
    assert OutboxEvent.objects.get(pk=row.pk).type == before.type


def test_no_add_and_no_deleting_pending_rows(admin_client_):
    pending = make_row("pending")
    assert admin_client_.get(reverse("admin:django_arc_outboxevent_add")).status_code == 403
    delete_url = reverse("admin:django_arc_outboxevent_delete", args=[pending.pk])
    assert admin_client_.post(delete_url, {"post": "yes"}).status_code == 403
    assert OutboxEvent.objects.filter(pk=pending.pk).exists()
    response = admin_client_.get(reverse(CHANGELIST))
    actions = [value for value, _label in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert {"requeue_selected", "purge_delivered"} <= set(actions)


def test_requeue_selected_action_only_touches_dead_rows(admin_client_):
    dead = [make_row("dead") for _ in range(2)]
    delivered = make_row("delivered")
    response = admin_client_.post(
        reverse(CHANGELIST),
        {
            "action": "requeue_selected",
            "_selected_action": [r.pk for r in [*dead, delivered]],
        },
        follow=True,
    )
    assert response.status_code == 200
    assert (
        "Requeued 2 dead event(s). 1 selected event(s) were not dead" in response.content.decode()
    )
    for row in dead:
        row.refresh_from_db()
        assert row.status == "pending"
        assert row.attempts == 0
        assert row.visible_at <= timezone.now()
        assert row.last_error  # kept as a record of why it died
    delivered.refresh_from_db()
    assert delivered.status == "delivered"


@override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": 3}})
def test_purge_action_deletes_only_delivered_rows_past_retention(admin_client_):
    old = make_row("delivered", delivered_at=timezone.now() - timedelta(days=4))
    recent = make_row("delivered", delivered_at=timezone.now() - timedelta(days=2))
    pending = make_row("pending")
    dead = make_row("dead")
    response = admin_client_.post(
        reverse(CHANGELIST),
        {
            "action": "purge_delivered",
            "_selected_action": [r.pk for r in (old, recent, pending, dead)],
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "Purged 1 delivered event(s) older than 3 day(s)" in response.content.decode()
    remaining = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, pending.pk, dead.pk}


@override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": 3}})
def test_purge_action_is_one_entry_in_the_admin_log(admin_client_, django_user_model):
    """ "Requeue selected" writes a ``LogEntry`` per row (who, when), as Django's own
    delete_selected writes one per deleted object; "Purge delivered" wrote none: who purged
    the outbox, and how much, was in no admin history. A purge of a week of events is not
    100,000 entries: it writes one, a deletion of the OutboxEvent type with no object,
    saying how many rows went and by which retention (nothing when nothing went). It shows
    in the user's "Recent actions"."""
    from django.contrib.admin.models import DELETION, LogEntry
    from django.contrib.contenttypes.models import ContentType

    old = [make_row("delivered", delivered_at=timezone.now() - timedelta(days=4)) for _ in range(3)]
    recent = make_row("delivered")

    def purge(rows):
        return admin_client_.post(
            reverse(CHANGELIST),
            {"action": "purge_delivered", "_selected_action": [r.pk for r in rows]},
            follow=True,
        )

    assert purge([*old, recent]).status_code == 200
    (entry,) = LogEntry.objects.all()
    assert entry.user == django_user_model.objects.get(username="root")
    assert entry.content_type == ContentType.objects.get_for_model(OutboxEvent)
    assert entry.object_id is None and entry.action_flag == DELETION
    assert entry.object_repr == "3 delivered outbox event(s)"
    assert entry.get_change_message() == (
        "Purged 3 delivered event(s) older than 3 day(s) (DELIVERED_RETENTION_DAYS)."
    )
    assert (
        "3 delivered outbox event(s)" in admin_client_.get(reverse("admin:index")).content.decode()
    )
    assert purge([recent]).status_code == 200  # nothing old enough: nothing purged, no entry
    assert LogEntry.objects.count() == 1


@override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": 3}})
def test_purge_action_deletes_a_batch_per_statement(admin_client_, monkeypatch):
    """ "Select all" then "Purge delivered" on a week of events was one ``DELETE`` of every
    row in one statement (or, with a project's receiver for every model's deletes, every
    row loaded first): it purges a batch per statement, as the task and the command do."""
    from django.test.utils import CaptureQueriesContext

    from django_arc.outbox import relay

    monkeypatch.setattr(relay, "PURGE_BATCH_SIZE", 2, raising=False)
    rows = [
        make_row("delivered", delivered_at=timezone.now() - timedelta(days=4)) for _ in range(5)
    ]
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client_.post(
            reverse(CHANGELIST),
            {"action": "purge_delivered", "_selected_action": [r.pk for r in rows]},
            follow=True,
        )
    assert "Purged 5 delivered event(s) older than 3 day(s)" in response.content.decode()
    deletes = [q for q in ctx.captured_queries if q["sql"].upper().startswith("DELETE")]
    assert len(deletes) == 3
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize(
    "days", ["a week", -1, 10**6, pytest.param(10**400, id="10**400")], ids=repr
)
def test_purge_action_with_a_retention_that_is_no_number_of_days_says_so(admin_client_, days):
    """arc.E008 refuses such a ``DELIVERED_RETENTION_DAYS`` at start-up; a server started
    without checks answered "Purge delivered" with a 500 ("a week", a cut-off before the
    year 1) or purged rows delivered a moment ago (-1). It says why and purges nothing, as
    the command and the task refuse it (``retention_age``)."""
    row = make_row("delivered", delivered_at=timezone.now() - timedelta(seconds=1))
    # past any retention: still kept (no default age stands in for the refused one)
    old = make_row("delivered", delivered_at=timezone.now() - timedelta(days=3650))
    with override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": days}}):
        response = admin_client_.post(
            reverse(CHANGELIST),
            {"action": "purge_delivered", "_selected_action": [row.pk, old.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "Nothing purged: ARC[&#x27;OUTBOX&#x27;][&#x27;DELIVERED_RETENTION_DAYS&#x27;]" in (
        response.content.decode()
    )
    assert OutboxEvent.objects.filter(pk__in=[row.pk, old.pk]).count() == 2


def test_dead_letter_page_lists_and_requeues(admin_client_):
    dead = [make_row("dead", last_error=f"TimeoutError: try {i}") for i in range(3)]
    make_row("pending")
    url = reverse(DEAD_LETTERS)
    response = admin_client_.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('class="dead-row"') == 3
    for i in range(3):
        assert f"TimeoutError: try {i}" in body
    # garbage ids and page numbers are ignored, not 500s
    assert admin_client_.get(url, {"p": "abc"}).status_code == 200
    response = admin_client_.post(url, {"ids": ["abc", "-1", str(dead[0].pk)]}, follow=True)
    assert response.status_code == 200
    assert "Requeued 1 dead event(s)." in response.content.decode()
    assert OutboxEvent.objects.get(pk=dead[0].pk).status == "pending"
    response = admin_client_.post(url, {"ids": ["nope"]}, follow=True)
    assert "Nothing was requeued" in response.content.decode()
    admin_client_.post(url, {"requeue_all": "1"})
    assert not OutboxEvent.objects.filter(status="dead").exists()


def test_dead_letter_page_permissions(client, django_user_model):
    make_row("dead")
    url = reverse(DEAD_LETTERS)
    assert client.get(url).status_code == 302  # anonymous -> login
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="view_outboxevent"))
    viewer = django_user_model.objects.get(pk=viewer.pk)
    client.force_login(viewer)
    response = client.get(url)
    assert response.status_code == 200
    assert 'name="requeue_selected"' not in response.content.decode()
    assert client.post(url, {"requeue_all": "1"}).status_code == 403
    assert OutboxEvent.objects.filter(status="dead").count() == 1


RELAY_NOW = "admin:django_arc_outboxevent_relay_now"


def test_relay_now_runs_the_relay_and_reports_counts(admin_client_):
    from django_arc.events import create_event, get_transport, publish
    from django_arc.events.transports import MemoryTransport

    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}):
        ids = [publish(create_event("orders.created", {"n": i})).id for i in range(3)]
        assert "Relay now" in admin_client_.get(reverse(CHANGELIST)).content.decode()
        assert admin_client_.get(reverse(RELAY_NOW)).status_code == 302  # GET does nothing
        assert OutboxEvent.objects.filter(status="pending").count() == 3
        response = admin_client_.post(reverse(RELAY_NOW), follow=True)
        published = [e.id for e in get_transport().published]
    assert published == ids
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}
    assert "Relayed 3 event(s) in 1 batch(es); 0 failed to publish" in response.content.decode()


def test_relay_now_with_a_transport_that_cannot_be_built_says_so(admin_client_, caplog):
    """ "Relay now" asked ``get_outbox()`` outside any handling: with the broker down (a
    transport whose constructor connects) the page was Django's 500, where a transport
    whose publish fails answers the counts; it now says the transport could not be built,
    relays nothing, and logs the failure once (rev-fixes27)."""
    from tests.test_relay_policy import _Unbuildable

    row = make_row("pending")
    with override_settings(ARC={"EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}}}):
        with caplog.at_level("ERROR", logger="django_arc.outbox"):
            response = admin_client_.post(reverse(RELAY_NOW), follow=True)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Nothing relayed: the transport could not be built (ConnectionError)" in body
    assert "broker down" not in body  # a broker's address is for the log
    # an error's message (the admin's red), not a warning's: nothing was relayed
    (said,) = [m for m in response.context["messages"] if "Nothing relayed" in m.message]
    assert said.level == messages.ERROR
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)
    failures = [r for r in caplog.records if r.name == "django_arc.outbox"]
    assert [(r.levelname, r.exc_info[0]) for r in failures] == [("ERROR", ConnectionError)]


@pytest.mark.parametrize("size", [0, -5, "many"])
def test_relay_now_under_a_batch_size_it_cannot_run_with_names_the_setting(
    admin_client_, caplog, size
):
    """With ``BATCH_SIZE`` 0 or less and arc.E008 silenced (a server that runs no checks),
    "Relay now" was a 500 (``run_relay``'s ``ValueError`` naming ``batch_size``, an
    argument the admin never passes). It answers an admin error naming the setting and
    relays nothing, as the Celery tick and ``arc_relay`` do."""
    from django_arc.events.transports import MemoryTransport

    row = make_row("pending")
    arc = {"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}, "OUTBOX": {"BATCH_SIZE": size}}
    with override_settings(ARC=arc):
        with caplog.at_level("ERROR", logger="django_arc.outbox"):
            response = admin_client_.post(reverse(RELAY_NOW), follow=True)
    assert response.status_code == 200
    (said,) = [m for m in response.context["messages"] if "Nothing relayed" in m.message]
    assert said.level == messages.ERROR
    assert said.message == (
        "Nothing relayed: ARC['OUTBOX']['BATCH_SIZE'] must be an integer from 1 to 10000 "
        f"(rows a batch claims), got {size!r} (arc.E008)."
    )
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)
    failures = [r for r in caplog.records if r.name == "django_arc.outbox"]
    assert [(r.levelname, bool(r.exc_info)) for r in failures] == [("ERROR", False)]


@pytest.mark.parametrize("attempts", [0, -1])
def test_relay_now_under_a_max_attempts_arcs_policy_cannot_run_with_names_the_setting(
    admin_client_, caplog, attempts
):
    """With ``MAX_ATTEMPTS`` below 1 and arc.E008 silenced, arc's ``exponential_backoff``
    refuses to be built (``ValueError``), which "Relay now" said as "the transport could
    not be built (ValueError)" (the transport was fine) over a traceback logged as such.
    It is a setting the relay cannot run with, said as ``BATCH_SIZE``'s is."""
    from django_arc.events.transports import MemoryTransport

    row = make_row("pending")
    arc = {
        "EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}},
        "OUTBOX": {"MAX_ATTEMPTS": attempts},
    }
    with override_settings(ARC=arc):
        with caplog.at_level("ERROR", logger="django_arc.outbox"):
            response = admin_client_.post(reverse(RELAY_NOW), follow=True)
    assert response.status_code == 200
    (said,) = [m for m in response.context["messages"] if "Nothing relayed" in m.message]
    assert said.message == (
        "Nothing relayed: ARC['OUTBOX']['MAX_ATTEMPTS'] must be an integer of 1 or more, "
        f"got {attempts!r} (arc.E008)."
    )
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)
    failures = [r for r in caplog.records if r.name == "django_arc.outbox"]
    assert [(r.levelname, bool(r.exc_info)) for r in failures] == [("ERROR", False)]


def test_a_project_failure_policy_factory_judges_its_own_max_attempts(admin_client_):
    """Only arc's own factory is held to ``MAX_ATTEMPTS`` of 1 or more at run time: a
    project's factory given 0 is built as it was (arc.E008 still reports the value)."""
    from django_arc.events.transports import MemoryTransport
    from django_arc.outbox.configured import get_failure_policy

    arc = {
        "EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}},
        "OUTBOX": {
            "MAX_ATTEMPTS": 0,
            "FAILURE_POLICY": "tests.test_admin_outbox.unlimited_policy_factory",
        },
    }
    with override_settings(ARC=arc):
        assert get_failure_policy()(3) == "retry"


@pytest.mark.parametrize("value", ["many", True])
def test_a_project_failure_policy_factory_given_what_is_no_integer_is_told_so(value):
    """A project's factory judges its own range (0 above is its "never dead"), so what the
    relay refuses it is only what is no integer: the message said "an integer of 1 or more"
    of a 0 the factory takes (fix-seen6b), and ``True`` ran as 1."""
    from django_arc.outbox import OutboxSettingError
    from django_arc.outbox.configured import get_failure_policy

    arc = {
        "OUTBOX": {
            "MAX_ATTEMPTS": value,
            "FAILURE_POLICY": "tests.test_admin_outbox.any_limit_policy_factory",
        }
    }
    with override_settings(ARC=arc), pytest.raises(OutboxSettingError) as info:
        get_failure_policy()
    assert str(info.value) == (
        f"ARC['OUTBOX']['MAX_ATTEMPTS'] must be an integer, got {value!r} (arc.E008)."
    )


def any_limit_policy_factory(max_attempts):
    return lambda attempts, error=None: "retry"


any_limit_policy_factory.arc_policy_factory = True


def unlimited_policy_factory(max_attempts):
    """A project's factory reading ``MAX_ATTEMPTS`` 0 as "never dead"."""
    assert max_attempts == 0
    return lambda attempts, error=None: "retry"


unlimited_policy_factory.arc_policy_factory = True


def test_relay_now_ends_at_its_first_failed_batch(admin_client_, monkeypatch):
    """ "Relay now" ran ``run_relay`` as ``arc_relay`` does, retrying a batch that hit a
    database error after half a second, up to its 10 batches: the admin's request slept
    4.5 s to say "10 batch(es) hit a database error" of one failure (the Celery tick, its
    twin, ends at its first failed batch since 076c497). It ends at the first, as the tick
    does, and says so: one batch, one database error."""
    from django.db import OperationalError

    from django_arc.events.transports import MemoryTransport
    from django_arc.outbox import EventOutbox

    calls = []

    def relay_batch(self, limit=None, worker_id=None):
        calls.append(1)
        raise OperationalError("canceling statement due to lock timeout")

    monkeypatch.setattr(EventOutbox, "relay_batch", relay_batch)
    make_row("pending")
    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}):
        response = admin_client_.post(reverse(RELAY_NOW), follow=True)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Relayed 0 event(s) in 1 batch(es)" in body, body
    assert "1 batch(es) hit a database error" in body
    assert len(calls) == 1


def test_relay_now_needs_change_permission(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_outboxevent"))
    client.force_login(user)
    make_row("pending")
    assert "Relay now" not in client.get(reverse(CHANGELIST)).content.decode()
    assert client.post(reverse(RELAY_NOW)).status_code == 403
    assert OutboxEvent.objects.get().status == "pending"


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="servers on several hosts share PostgreSQL only"
)
@override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": 3}})
def test_purge_action_counts_the_retention_on_the_databases_clock(admin_client_, monkeypatch):
    """``delivered_at`` is the database's time on PostgreSQL (the relay's ``purge()`` counts
    back from it): an admin server whose clock ran two days ahead purged rows delivered
    two days ago under a three-day retention."""
    delivered = make_row("delivered", delivered_at=timezone.now() - timedelta(days=2))
    ahead = timezone.now() + timedelta(days=2)
    monkeypatch.setattr(timezone, "now", lambda: ahead)

    response = admin_client_.post(
        reverse(CHANGELIST),
        {"action": "purge_delivered", "_selected_action": [delivered.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Purged 0 delivered event(s)" in response.content.decode()
    assert OutboxEvent.objects.filter(pk=delivered.pk).exists()


@override_settings(ARC={"OUTBOX": {"DELIVERED_RETENTION_DAYS": 3}})
def test_purge_action_needs_no_transport(admin_client_):
    """The purge action asked ``get_outbox()`` for the outbox's database, which builds the
    transport: with its broker down (a constructor that connects) "Purge delivered" was a
    500 and purged nothing, where ``arc_purge_outbox`` purges (rev-fixes26)."""
    from tests.test_relay_policy import _Unbuildable

    old = make_row("delivered", delivered_at=timezone.now() - timedelta(days=4))
    with override_settings(
        ARC={
            "EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}},
            "OUTBOX": {"DELIVERED_RETENTION_DAYS": 3},
        }
    ):
        response = admin_client_.post(
            reverse(CHANGELIST),
            {"action": "purge_delivered", "_selected_action": [old.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "Purged 1 delivered event(s) older than 3 day(s)" in response.content.decode()
    assert not OutboxEvent.objects.exists()


def test_requeue_action_needs_no_transport(admin_client_):
    """Requeueing sets dead rows pending on the outbox's database and publishes nothing: it
    asked ``get_outbox()``, which builds the transport, so with its broker down "Requeue
    selected" was a 500 and requeued nothing (rev-fixes26)."""
    from tests.test_relay_policy import _Unbuildable

    dead = make_row("dead", last_error="TimeoutError")
    with override_settings(ARC={"EVENTS": {"TRANSPORT": _Unbuildable, "OPTIONS": {}}}):
        response = admin_client_.post(
            reverse(CHANGELIST),
            {"action": "requeue_selected", "_selected_action": [dead.pk]},
            follow=True,
        )
    assert response.status_code == 200
    dead.refresh_from_db()
    assert dead.status == "pending"


def test_a_project_policy_naming_its_own_max_attempts_below_1_relays(admin_client_):
    """A project's factory reading ``MAX_ATTEMPTS`` 0 as "never dead" whose policy names
    its limit (``policy.max_attempts = 0``, as arc's own policy does): the relay's fallback
    (the policy it uses when the project's raises) was built with that limit, which
    ``exponential_backoff`` refuses, so ``get_outbox()`` raised ``ValueError`` and "Relay
    now" said the transport could not be built. The fallback keeps arc's default limit for
    one it cannot run with; the project's policy decides, and relays."""
    from django_arc.events.transports import MemoryTransport

    row = make_row("pending")
    arc = {
        "EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}},
        "OUTBOX": {
            "MAX_ATTEMPTS": 0,
            "FAILURE_POLICY": "tests.test_admin_outbox.named_unlimited_policy_factory",
        },
    }
    with override_settings(ARC=arc):
        response = admin_client_.post(reverse(RELAY_NOW), follow=True)
    assert response.status_code == 200
    said = [m.message for m in response.context["messages"]]
    assert not [m for m in said if "Nothing relayed" in m], said
    row.refresh_from_db()
    assert row.status == "delivered"


def named_unlimited_policy_factory(max_attempts):
    """:func:`unlimited_policy_factory` whose policy names its limit."""
    policy = unlimited_policy_factory(max_attempts)
    policy.max_attempts = max_attempts
    return policy


named_unlimited_policy_factory.arc_policy_factory = True
