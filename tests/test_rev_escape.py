"""What a client's text becomes elsewhere (rev-escape): markup a client stores through the API
is shown escaped on the pages django-arc renders or shapes (DRF's browsable API and
``AdminRenderer`` pages, django-arc's admin pages for the outbox); the error envelope quotes
what the client sent as plain JSON text (docs/errors.md); drf-spectacular's schema view, which
the example project mounts, copies ``?version=`` into its own ``Content-Disposition`` header
(docs/decisions.md, "What a client's text becomes elsewhere")."""

from __future__ import annotations

import logging
import os
import time
import uuid

import pytest
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.test import Client, override_settings
from rest_framework.test import APIClient

from django_arc.audit.models import AuditLog
from django_arc.events import create_event
from django_arc.events.transports import RedisPubSubTransport, RedisStreamsTransport
from django_arc.models import ServiceClient
from django_arc.outbox import OutboxEvent
from shop.models import Product
from tests.factories import OrganizationFactory, UserFactory, member_client
from tests.helpers import client_for
from tests.test_example_project import example_settings_on  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

MARKUP = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"
RAW = ("<script>alert(1)", "<img src=x")
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _raw_in(response) -> list[str]:
    text = response.content.decode()
    return [part for part in RAW if part in text]


def _stored_product(client) -> int:
    body = {"name": MARKUP, "sku": MARKUP[:60], "price": "1.00", "secret_notes": MARKUP}
    response = client.post("/api/products/", body, format="json")
    assert response.status_code == 201, response.content
    assert Product.objects.get().name == MARKUP  # stored as sent: escaping is the page's
    return response.json()["data"]["id"]


@pytest.mark.parametrize(
    "renderers",
    [
        None,  # the test settings' own: JSON and the browsable API
        ["rest_framework.renderers.AdminRenderer", "rest_framework.renderers.JSONRenderer"],
    ],
    ids=["browsable", "admin-renderer"],
)
def test_markup_a_client_stored_is_escaped_on_the_html_pages_of_a_resource(renderers):
    client = member_client(OrganizationFactory(), "admin")
    pk = _stored_product(client)
    rest = dict(settings.REST_FRAMEWORK)
    if renderers is not None:
        rest["DEFAULT_RENDERER_CLASSES"] = renderers
    bad_choice = {"name": "n", "sku": "s", "price": "1.00", "status": MARKUP}
    with override_settings(REST_FRAMEWORK=rest):
        pages = [
            client.get("/api/products/", HTTP_ACCEPT="text/html"),
            client.get(f"/api/products/{pk}/", HTTP_ACCEPT="text/html"),
            # a refused write's page shows the form again, holding what was sent
            client.post("/api/products/", bad_choice, format="json", HTTP_ACCEPT="text/html"),
            client.get("/api/products/?sort=" + MARKUP, HTTP_ACCEPT="text/html"),
        ]
    assert [page.status_code for page in pages] == [200, 200, 400, 400]
    for page in pages:
        assert page["Content-Type"].startswith("text/html")
        assert _raw_in(page) == [], page.request["PATH_INFO"]
    assert ESCAPED in pages[0].content.decode()  # shown, escaped


@pytest.fixture
def superuser_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


def test_markup_in_an_outbox_row_is_escaped_on_the_admin_pages(superuser_client):
    row = OutboxEvent.objects.create(
        event_id=str(uuid.uuid4()),
        type=MARKUP,
        payload={"name": MARKUP, MARKUP: [MARKUP]},
        meta={"resource": MARKUP, "correlation_id": "req-1"},
        status="dead",
        attempts=8,
        last_error=f"ValueError: {MARKUP}\n{MARKUP}",
    )
    base = "/admin/django_arc/outboxevent/"
    pages = [
        superuser_client.get(base),
        superuser_client.get(f"{base}?type={MARKUP}"),
        superuser_client.get(f"{base}?q={MARKUP}"),
        superuser_client.get(f"{base}{row.pk}/change/"),
        superuser_client.get(f"{base}dead-letters/"),
        superuser_client.get(f"{base}{row.pk}/history/"),
    ]
    requeued = superuser_client.post(f"{base}dead-letters/", {"requeue_all": "1"}, follow=True)
    history = superuser_client.get(f"{base}{row.pk}/history/")
    assert [page.status_code for page in [*pages, requeued, history]] == [200] * 8
    for page in [*pages, requeued, history]:
        assert _raw_in(page) == [], page.request["PATH_INFO"]
    assert ESCAPED in pages[3].content.decode()  # the payload and last error, shown escaped
    assert ESCAPED in history.content.decode()  # the requeue's entry names the type


def test_markup_in_audit_entries_and_service_clients_is_escaped_on_the_admin_pages(
    superuser_client,
):
    org = OrganizationFactory()
    entry = AuditLog.objects.create(
        action="updated",
        resource="products",
        object_id=MARKUP,
        organization_id=MARKUP[:128],
        request_id="req-1",
        before={"name": MARKUP},
        after={"name": "x", MARKUP: MARKUP},
    )
    added = superuser_client.post(
        "/admin/django_arc/serviceclient/add/",
        {"name": MARKUP, "organization_id": str(org.pk), "scopes": MARKUP, "active": "on"},
    )
    assert added.status_code == 200, added.content[:500]  # the page showing the key once
    client = ServiceClient.objects.get()
    assert client.name == MARKUP
    pages = [
        added,
        superuser_client.get("/admin/django_arc/auditlog/"),
        superuser_client.get(f"/admin/django_arc/auditlog/?q={MARKUP}"),
        superuser_client.get(f"/admin/django_arc/auditlog/{entry.pk}/change/"),
        superuser_client.get("/admin/django_arc/serviceclient/"),
        superuser_client.get(f"/admin/django_arc/serviceclient/{client.pk}/change/"),
    ]
    assert [page.status_code for page in pages] == [200] * 6
    for page in pages:
        assert _raw_in(page) == [], page.request["PATH_INFO"]
    assert ESCAPED in added.content.decode()
    assert ESCAPED in pages[3].content.decode()


def test_the_error_envelope_quotes_what_the_client_sent_as_plain_json_text():
    """docs/errors.md: ``error`` and ``details`` are plain text, which may quote the client's
    input as sent (a media type, a method, a sort field, a choice): a client shows them as
    text, never as HTML."""
    client = member_client(OrganizationFactory(), "admin")
    media = client.post("/api/products/", b"x", content_type="text/<b>x</b>")
    method = client.generic("<B>", "/api/products/")
    sort = client.get("/api/products/?sort=<b>x</b>")
    choice = client.post(
        "/api/products/", {"name": "n", "sku": "s", "price": "1", "status": "<b>x</b>"}, "json"
    )
    assert [r.status_code for r in (media, method, sort, choice)] == [415, 405, 400, 400]
    for response in (media, method, sort, choice):
        assert response["Content-Type"] == "application/json"
    assert media.json()["error"] == 'Unsupported media type "text/<b>x</b>" in request.'
    assert method.json()["error"] == 'Method "<B>" not allowed.'
    assert "'<b>x</b>'" in sort.json()["details"]["sort"]
    assert choice.json()["details"] == {"status": ['"<b>x</b>" is not a valid choice.']}


def test_drf_spectacular_copies_the_version_parameter_into_its_own_header(example_settings_on):  # noqa: F811
    """The boundary (docs/decisions.md): the example project's ``/api/schema/`` is
    drf-spectacular's ``SpectacularAPIView``, which writes ``?version=`` into its
    ``Content-Disposition`` filename unquoted (a ``"`` ends the filename; a CR or LF is
    Django's ``BadHeaderError``, a 500) and into ``info.version``. When this test fails,
    drf-spectacular changed: the decision is to be read again."""
    client = Client(raise_request_exception=False)
    quoted = client.get('/api/schema/?version=a"; filename=b')
    assert quoted.status_code == 200
    assert 'filename="' in quoted["Content-Disposition"]
    assert '(a"; filename=b)' in quoted["Content-Disposition"]
    assert client.get("/api/schema/?version=a%0d%0aX-Y:%20z").status_code == 500
    # the docs pages pass it on URL-encoded, and render
    assert client.get("/api/docs/?version=a%0d%0aX-Y:%20z").status_code == 200
    assert APIClient().get("/api/schema/?version=v").status_code == 200


# -- the Redis wire: what another producer wrote, read back -------------------------------------
REDIS_URL = os.environ.get("ARC_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set")


@pytest.fixture
def stream():
    import redis

    name = f"arc-test:{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(name, f"{name}:dlq")
    client.close()


@needs_redis
@pytest.mark.parametrize(
    "fields",
    [
        {b"\xff": b"1"},  # neither type nor data: the reason lists the field names
        {"type": "x.y", "data": "{not json", b"\xfe\n": b"2"},  # copied to the dead letter
    ],
    ids=["no-data", "not-json"],
)
def test_a_stream_entry_whose_field_name_is_not_utf8_is_dead_lettered_not_a_poison(stream, fields):
    """Another producer's entry with a field name that is not UTF-8: decoding it for the
    reason and for the dead letter's copy raised ``UnicodeDecodeError`` out of ``consume``,
    so the entry was never acknowledged nor dead-lettered (``max_deliveries`` is read after
    the entry is decoded), the rest of its batch was left pending, and it came back on
    every reclaim."""
    transport = RedisStreamsTransport(
        REDIS_URL, stream=stream, group="g", consumer="c", dead_stream=f"{stream}:dlq"
    )
    seen: list[str] = []
    transport.subscribe("*", lambda event: seen.append(event.type))
    try:
        transport.ensure_group()
        transport.client.xadd(stream, fields)
        transport.publish(create_event("x.after", {}))
        transport.consume(count=10, block_ms=None)
        assert seen == ["x.after"]  # the batch went on past it
        assert transport.client.xpending(stream, "g")["pending"] == 0
        [(_, dead)] = transport.client.xrange(f"{stream}:dlq")
        assert dead[b"originalStream"] == stream.encode()
        name = next(iter(fields))
        if name == b"\xff":
            assert b"\\xff" in dead[b"reason"]
            assert dead[b"\\xff"] == b"1"  # the entry's fields, named as they read
        else:
            assert dead[b"reason"].startswith(b"data is not JSON")
            assert dead[b"\\xfe\n"] == b"2"
    finally:
        transport.close()


@needs_redis
def test_an_unreadable_pubsub_message_is_logged_on_one_line(caplog):
    """The channel of an unreadable pub/sub message is written into the log line as any
    other text from the wire is (``log_text``): a channel holding a newline wrote a second,
    forged line, and one that is not UTF-8 raised out of ``listen_once``."""
    prefix = f"arc-test-{uuid.uuid4().hex}:"
    listener = RedisPubSubTransport(REDIS_URL, channel_prefix=prefix)
    try:
        listener.listen_once(timeout=0.1)  # subscribed
        publisher = listener.client
        publisher.publish(f"{prefix}x\nCRITICAL forged".encode(), b"{not json")
        publisher.publish(prefix.encode() + b"\xff", b"{not json")
        with caplog.at_level(logging.ERROR, logger="django_arc.events"):
            deadline = time.monotonic() + 5
            while len(caplog.records) < 2 and time.monotonic() < deadline:
                listener.listen_once(timeout=0.5)
        lines = [record.getMessage() for record in caplog.records]
        assert len(lines) == 2, lines
        assert all("\n" not in line for line in lines)
        assert "x\\nCRITICAL forged" in lines[0]
        assert "\\xff" in lines[1]
    finally:
        listener.close()


def _elevation_check_naming_the_user(user):
    """A project's ``ELEVATION_CHECK`` whose "no answer" names the user it was asked about."""
    raise ObjectDoesNotExist(f"no staff profile for {user.get_username()}")


def test_an_elevation_checks_refusal_is_logged_on_one_line(settings, caplog):
    """``ELEVATION_CHECK``'s "no answer" is logged with the message it raised, which may quote
    the user's own text (a name it was given): written raw, a newline in it forged a second
    log line, where ``MEMBERSHIP_RESOLVER``'s is escaped (docs/errors.md, Logging)."""
    settings.ARC = {**settings.ARC, "ELEVATION_CHECK": _elevation_check_naming_the_user}
    user = UserFactory(username="mallory\nCRITICAL forged")
    with caplog.at_level(logging.INFO, logger="django_arc.scope"):
        response = client_for(user, HTTP_X_ARC_SCOPE="platform").get("/api/products/")
    assert response.status_code == 403
    [line] = [r.getMessage() for r in caplog.records if "ELEVATION_CHECK" in r.getMessage()]
    assert "\n" not in line
    assert "mallory\\nCRITICAL forged" in line


@needs_redis
@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ('"payload":{"v":NaN}', b"data is not JSON: NaN"),  # Python's json.dumps writes it
        ('"payload":{"v":-Infinity}', b"data is not JSON: -Infinity"),
        ('"payload":{"v":1e999}', b"data is not JSON: 1e999"),
        ('"payload":{"v":"\\ud800"}', b"data holds the lone surrogate U+D800"),
        # nested past the interpreter's recursion limit: RecursionError, no ValueError
        ('"payload":' + "[" * 5000 + "]" * 5000, b"data is not JSON: nested too deep"),
    ],
    ids=["nan", "infinity", "overflow", "surrogate", "deep"],
)
def test_an_entry_no_event_can_be_written_back_from_is_dead_lettered_at_once(stream, data, reason):
    """Another producer's entry nested past the recursion limit raised ``RecursionError`` out
    of ``consume``; one holding a number JSON has not (``NaN``, ``Infinity``, one past
    a float's range) or a lone surrogate was read as an event, which :func:`wire.dumps`
    refuses and Redis cannot take as UTF-8: once its handlers had failed ``max_deliveries``
    times, writing its dead letter raised out of ``consume`` on every reclaim, so it was
    never acknowledged nor dead-lettered (a poison entry). It is refused as it is read, as
    an entry that is not JSON is, and dead-lettered with its data kept."""
    transport = RedisStreamsTransport(
        REDIS_URL, stream=stream, group="g", consumer="c", dead_stream=f"{stream}:dlq"
    )
    seen: list[str] = []
    transport.subscribe("*", lambda event: seen.append(event.type))
    raw = '{"type":"x.y",' + data + ',"meta":{"id":"e-1","timestamp":"2026-01-01T00:00:00.000Z"}}'
    try:
        transport.ensure_group()
        transport.client.xadd(stream, {"type": "x.y", "data": raw})
        transport.publish(create_event("x.after", {}))
        transport.consume(count=10, block_ms=None)
        assert seen == ["x.after"]
        assert transport.client.xpending(stream, "g")["pending"] == 0
        [(_, dead)] = transport.client.xrange(f"{stream}:dlq")
        assert dead[b"reason"].startswith(reason), dead[b"reason"]
        assert dead[b"data"] == raw.encode()
    finally:
        transport.close()


@needs_redis
@pytest.mark.parametrize("timestamp", ["9999-12-31T23:00:00-14:00", "0001-01-01T00:00:00+14:00"])
def test_an_entry_whose_timestamp_no_utc_date_holds_is_dead_lettered_at_once(stream, timestamp):
    """A ``meta.timestamp`` whose instant falls outside the dates Python holds once in UTC
    was read (its own offset kept), and its dead letter, written in UTC as arc writes
    timestamps, raised ``OverflowError`` out of ``consume`` on every reclaim: a poison
    entry, as above. It is refused as it is read."""
    transport = RedisStreamsTransport(
        REDIS_URL, stream=stream, group="g", consumer="c", dead_stream=f"{stream}:dlq"
    )
    seen: list[str] = []
    transport.subscribe("*", lambda event: seen.append(event.type))
    raw = '{"type":"x.y","payload":{},"meta":{"id":"e-1","timestamp":"' + timestamp + '"}}'
    try:
        transport.ensure_group()
        transport.client.xadd(stream, {"type": "x.y", "data": raw})
        transport.publish(create_event("x.after", {}))
        transport.consume(count=10, block_ms=None)
        assert seen == ["x.after"]
        assert transport.client.xpending(stream, "g")["pending"] == 0
        [(_, dead)] = transport.client.xrange(f"{stream}:dlq")
        assert dead[b"reason"].startswith(b"meta.timestamp"), dead[b"reason"]
        assert dead[b"data"] == raw.encode()
    finally:
        transport.close()
