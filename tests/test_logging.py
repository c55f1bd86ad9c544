"""What django-arc logs and reports about itself (docs/errors.md "Logging"): the records, their
logger, their level and their text, as an operator's handlers receive them."""

import logging

import pytest
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import got_request_exception
from rest_framework.test import APIClient

from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing_create(monkeypatch):
    """``POST /api/books/`` raising a bug of the project's (a ``before_create`` hook)."""
    from tests.testapp.resources import BookResource

    def before_create(self, request, data):
        raise RuntimeError("a bug in a hook")

    monkeypatch.setattr(BookResource, "before_create", before_create)


def test_an_unexpected_error_is_reported_as_django_reports_a_500(failing_create):
    """A bug in a view is answered with the 500 envelope, and reported as Django reports an
    uncaught exception: ``got_request_exception`` is sent (what error reporters hook) and
    ``django.request`` logs one ERROR with the traceback (``mail_admins`` mails it). The
    envelope was answered before Django saw any exception: no signal, and only Django's
    own traceback-less "Internal Server Error" line reached ``django.request``."""
    sent = []

    def receiver(sender, request, **kwargs):
        sent.append(request)

    got_request_exception.connect(receiver)
    try:
        with pytest.raises(RuntimeError, match="a bug in a hook"):
            # Django's test client re-raises what got_request_exception reports, as it does
            # for any Django view
            APIClient().post("/api/books/", {"title": "x"}, format="json")
        with assertLogs_request() as logs:
            answer = APIClient(raise_request_exception=False).post(
                "/api/books/", {"title": "x"}, format="json"
            )
    finally:
        got_request_exception.disconnect(receiver)
    body = assert_error(answer, 500, "INTERNAL_ERROR")
    assert body["error"] == "Internal server error" and "a bug" not in answer.content.decode()
    assert len(sent) == 2 and all(r.path == "/api/books/" for r in sent)
    # Django's HttpRequest, as Django sends it (not DRF's Request wrapping it): reporters
    # read it as one (Sentry's, Django's own reporter's request filter)
    assert all(type(r) is WSGIRequest for r in sent)
    (record,) = logs
    assert type(record.request) is WSGIRequest
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "Internal Server Error: /api/books/"
    assert record.exc_info[0] is RuntimeError and record.status_code == 500


class assertLogs_request:  # noqa: N801 - reads as the context manager it is
    """The records ``django.request`` emits (the tests' settings route it to a null handler
    without propagating, so ``caplog`` never sees them)."""

    def __enter__(self):
        self.records = []
        self.handler = logging.Handler(logging.DEBUG)
        self.handler.emit = self.records.append
        logging.getLogger("django.request").addHandler(self.handler)
        return self.records

    def __exit__(self, *exc):
        logging.getLogger("django.request").removeHandler(self.handler)


def test_a_client_path_is_escaped_in_django_arc_log_lines(api, caplog):
    """A path is the client's: ``%0A`` decodes to a newline in ``request.path``, written
    raw into a log line it forged a second line (Django escapes the path of its own lines,
    CVE-2025-48432). The controls are escaped as Django escapes them."""
    caplog.set_level(logging.INFO, logger="django_arc")
    assert_error(api.get("/api/books/abc%0A%5BERROR%5D%20forged%1B[31m%C3%A9/"), 404, "NOT_FOUND")
    (record,) = [r for r in caplog.records if r.name == "django_arc"]
    message = record.getMessage()
    assert "\n" not in message and "\x1b" not in message, message
    # a printable character stays as it is (a database's message in its language)
    assert message.startswith("404 for /api/books/abc\\n[ERROR] forged\\x1b[31mé/: ")


def test_the_relay_logs_each_dead_letter_and_each_batch_of_retries_with_event_ids(caplog):
    """A publish failure, its retry and its dead letter were counted in the batch's result
    (the command's INFO line: ``publish_failed=1 dead_lettered=1``) and written to the row,
    but no log line named the event: an operator paged on a dead letter had to find it in
    the admin. Now one WARNING per batch names the events it will retry, and one ERROR per
    dead letter names it, with the error and never the payload."""
    from django_arc.events.event import create_event
    from django_arc.outbox import EventOutbox, OutboxEvent, exponential_backoff
    from tests.outbox_support import RecordingTransport

    transport = RecordingTransport(fail_types={"payments.captured"})
    outbox = EventOutbox(transport, exponential_backoff(base=1, max=60, max_attempts=2))
    bad = outbox.store(create_event("payments.captured", {"card": "4242-secret"})).event_id
    caplog.set_level(logging.DEBUG, logger="django_arc")

    outbox.relay_batch(limit=10)
    batch, retried = [r for r in caplog.records if r.name == "django_arc.outbox"]
    assert batch.getMessage().endswith("one by one: ConnectionError: batch refused")
    assert retried.levelno == logging.WARNING
    assert bad in retried.getMessage() and "broker refused" in retried.getMessage()

    caplog.clear()
    OutboxEvent.objects.filter(event_id=bad).update(visible_at=OutboxEvent.objects.get().created_at)
    assert outbox.relay_batch(limit=10).dead_lettered == 1
    _, dead = [r for r in caplog.records if r.name == "django_arc.outbox"]
    assert dead.levelno == logging.ERROR
    message = dead.getMessage()
    assert bad in message and "payments.captured" in message and "2 attempts" in message
    assert "broker refused" in message and "4242" not in message


def test_a_lost_lease_is_a_warning_naming_the_worker(caplog):
    """A worker whose lease ran out mid-batch had its acknowledgement refused, counted in
    ``ownership_mismatches`` and logged nowhere but the command's INFO batch line: the sign
    that ``LEASE_SECONDS`` is shorter than a batch takes (duplicates downstream) went
    unseen. Now a WARNING names the worker, the count and the lease."""
    from django_arc.events.event import create_event
    from tests.test_relay_leases import EventOutbox, RecordingTransport, _ClaimedMeanwhile

    a = _ClaimedMeanwhile(EventOutbox(RecordingTransport()))
    outbox_a = EventOutbox(a, lease_seconds=30)
    outbox_a.store(create_event("products.created", {"i": 1}))
    caplog.set_level(logging.DEBUG, logger="django_arc")
    assert outbox_a.relay_batch(worker_id="A").ownership_mismatches == 1
    (lost,) = [r for r in caplog.records if r.name == "django_arc.outbox"]
    assert lost.levelno == logging.WARNING
    assert lost.getMessage().startswith("outbox worker A lost the lease of 1 of its 1 claimed")


def test_a_failed_relay_batch_is_one_error_not_two(monkeypatch, caplog):
    """``run_relay`` logs a batch's database error (ERROR, ``django_arc.outbox``) and
    ``arc_relay``'s ``on_error`` logged it again (ERROR, ``django_arc.outbox.relay``): two
    ERRORs (two pages, two Sentry events) per failed batch, every second of an outage. The
    command still prints its JSON line."""
    from io import StringIO

    from django.core.management import call_command
    from django.db import OperationalError

    from django_arc.outbox import EventOutbox

    def relay_batch(self, *args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(EventOutbox, "relay_batch", relay_batch)
    caplog.set_level(logging.DEBUG, logger="django_arc")
    out = StringIO()
    call_command("arc_relay", "--max-batches", "1", stdout=out)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, r.getMessage()) for r in errors] == [
        (
            "django_arc.outbox",
            "relay batch 1 failed: OperationalError: server closed the connection unexpectedly",
        )
    ]
    assert '"event":"arc_relay.error"' in out.getvalue()


class _DownTransport:
    """A transport whose broker is down: every publish fails (outbox off)."""

    @staticmethod
    def make():
        from django_arc.events.transports import MemoryTransport

        class Down(MemoryTransport):
            def publish(self, event):
                raise ConnectionError("broker down")

            def publish_many(self, events):
                raise ConnectionError("broker down")

        return Down


@pytest.mark.django_db(transaction=True)
def test_outbox_off_a_bulk_write_whose_events_are_lost_is_one_error_naming_them(settings, caplog):
    """Outbox off, broker down: a 50-item bulk write's events are lost after its commit.
    Each was logged apiece with a traceback (one warning and 50 ERROR tracebacks for one
    request: a flood sized by the client's body). Now the warning and one ERROR for the
    request, with the first traceback, naming the lost events; never their payloads."""
    from django_arc.events.configured import get_transport
    from tests.factories import AuthorFactory, UserFactory
    from tests.helpers import client_for

    settings.ARC = {
        **settings.ARC,
        "EVENTS": {
            **settings.ARC.get("EVENTS", {}),
            "OUTBOX": False,
            "TRANSPORT": _DownTransport.make(),
        },
    }
    get_transport()
    author = AuthorFactory()
    items = [{"title": f"t{i}", "isbn": f"lost-{i}", "author": author.pk} for i in range(50)]
    caplog.set_level(logging.DEBUG, logger="django_arc")
    created = client_for(UserFactory()).post(
        "/api/bulk-books/bulk/", {"items": items}, format="json"
    )
    assert created.status_code == 201, created.content
    records = [r for r in caplog.records if r.name == "django_arc.outbox"]
    assert len(records) == 2, [r.getMessage() for r in records]
    batch, lost = records
    assert batch.levelno == logging.WARNING and "one by one" in batch.getMessage()
    assert lost.levelno == logging.ERROR and lost.exc_info[0] is ConnectionError
    assert lost.getMessage().startswith("publishing 50 of 50 events after commit failed")
    assert "lost-" not in lost.getMessage()


def test_a_500_while_a_service_key_is_checked_does_not_report_the_key(monkeypatch):
    """The database failing while a service key is checked is a 500 whose traceback runs
    through the frames holding the raw key (sent as ``X-Api-Key``, which Django's filter
    hides in ``META`` on every Django; ``Authorization`` it hides from Django 5.0). Django's reporter (``mail_admins`` with HTML, the
    ``DEBUG`` page) shows each frame's variables: the key was there in clear. The frames
    that hold it are ``sensitive_variables``, as Django's ``authenticate()`` is."""
    from django.db import OperationalError
    from django.views.debug import ExceptionReporter

    from django_arc.clients import ServiceClient

    client, key = ServiceClient.objects.create_with_key(name="sync", organization_id=7)

    def touch(self, now=None):
        raise OperationalError("the database went away")

    monkeypatch.setattr(ServiceClient, "touch", touch)
    with assertLogs_request() as logs:
        answer = APIClient(raise_request_exception=False).get("/api/books/", HTTP_X_API_KEY=key)
    assert answer.status_code == 500
    (record,) = logs
    html = ExceptionReporter(record.request, *record.exc_info).get_traceback_html()
    assert "the database went away" in html and "raw_key" in html
    assert key not in html and key[12:] not in html


@pytest.mark.parametrize(
    "options",
    ["redis://:hunter2@127.0.0.1:6379/0", [("url", "redis://:hunter2@127.0.0.1:6379/0")]],
    ids=["a url", "pairs"],
)
def test_a_check_refusing_transport_options_does_not_quote_them(settings, options):
    """``manage.py check`` refused OPTIONS that are not a dict by quoting them whole: a
    Redis url given as the OPTIONS (or as pairs) printed its password into the deploy's or
    CI's log. The message names the type."""
    from django_arc.checks import check_settings

    settings.ARC = {
        "EVENTS": {
            "TRANSPORT": "django_arc.events.transports.RedisStreamsTransport",
            "OPTIONS": options,
        }
    }
    (error,) = check_settings()
    assert error.id == "arc.E008" and "must be a dict of keyword arguments" in error.msg
    assert "hunter2" not in error.msg and f"of type {type(options).__name__}" in error.msg


def test_a_relay_outage_is_logged_once_then_its_end_not_every_retry(monkeypatch, caplog):
    """The relay retries a batch that hit a database error every half second or so: an
    outage of an hour was ~4,000 ERROR lines (pages). Now the first failure is an ERROR,
    the next ones at most one a minute, and the first batch after it a WARNING saying how
    many failed."""
    from django.db import OperationalError

    from django_arc.outbox import EventOutbox, RelayResult, run_relay
    from tests.outbox_support import RecordingTransport

    calls = []

    def relay_batch(self, limit=None, worker_id=None):
        calls.append(1)
        if len(calls) <= 3:
            raise OperationalError("the database is restarting")
        return RelayResult()

    monkeypatch.setattr(EventOutbox, "relay_batch", relay_batch)
    caplog.set_level(logging.DEBUG, logger="django_arc")
    failed = []
    totals = run_relay(
        EventOutbox(RecordingTransport()),
        max_batches=4,
        interval=0,
        on_error=lambda number, exc: failed.append(number),
    )
    assert totals.errors == 3 and failed == [1, 2, 3]  # every failure still reported
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "django_arc.outbox"]
    assert lines == [
        ("ERROR", "relay batch 1 failed: OperationalError: the database is restarting"),
        ("WARNING", "relay batches succeed again after 3 failed in a row"),
    ]


def test_a_failed_relay_batch_escapes_the_database_errors_message(monkeypatch, caplog):
    """The relay's "batch failed" line wrote the database error's message raw (every other
    django-arc line goes through ``log_text``): a message quoting a value with a newline (a
    PostgreSQL error's ``LINE 1:``/``DETAIL:`` lines, a value of the client's) forged a
    second line in a line-based log. Its controls are escaped, as elsewhere."""
    from django.db import OperationalError

    from django_arc.outbox import EventOutbox, run_relay
    from tests.outbox_support import RecordingTransport

    def relay_batch(self, limit=None, worker_id=None):
        raise OperationalError('bad value "x"\nERROR forged line\x1b[31m')

    monkeypatch.setattr(EventOutbox, "relay_batch", relay_batch)
    caplog.set_level(logging.DEBUG, logger="django_arc")
    run_relay(EventOutbox(RecordingTransport()), max_batches=1, interval=0)
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line == (
        'relay batch 1 failed: OperationalError: bad value "x"\\nERROR forged line\\x1b[31m'
    )


def test_a_stream_consumer_outage_is_logged_once_then_its_end(monkeypatch, caplog):
    """``run_forever`` retried a failing ``consume`` every second with a traceback apiece
    (3,600 ERRORs an hour of Redis down, per consumer). Now the first failure, then at most
    one a minute, and a WARNING when it consumes again."""
    from django_arc.events.transports import RedisStreamsTransport

    transport = RedisStreamsTransport(client=object(), consumer="c1")
    calls = []

    def consume(count=10, block_ms=None):
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError("Redis is down")
        transport.stop()
        return 0

    monkeypatch.setattr(transport, "consume", consume)
    monkeypatch.setattr(transport._stop, "wait", lambda timeout=None: False)  # no 1 s naps
    caplog.set_level(logging.DEBUG, logger="django_arc")
    transport.run_forever()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "django_arc.events"]
    assert lines == [
        ("ERROR", "Stream consumer c1 failed; retrying"),
        ("WARNING", "Stream consumer c1 consumes again after 2 failures in a row"),
    ]


@pytest.mark.django_db(transaction=True)
def test_event_types_and_ids_are_escaped_in_event_log_lines(settings, caplog):
    """An event's type and id come from a body: a stream entry another service wrote (the
    wire's ``type`` and ``meta.id``), a project's event named after a client's input. The
    relay escapes a row's type (``log_text``); a subscriber's failure, a ``with_retry``
    handler's retries and dead letter, and the outbox-off ERROR for lost events wrote them
    raw: a newline in the type forged a log line."""
    from django.db import transaction

    from django_arc.events import create_event, publish, with_retry
    from django_arc.events.configured import get_transport
    from django_arc.events.transports import MemoryTransport

    forged = "books.created\nERROR forged line \x1b[31m"
    event = create_event(forged, {"title": "secret"}, id="id\nforged")
    transport = MemoryTransport()

    def fails(event):
        raise RuntimeError("handler down")

    transport.subscribe("books.*", fails)
    transport.subscribe("books.*", with_retry(fails, max_retries=1, backoff=0, transport=transport))
    caplog.set_level(logging.DEBUG, logger="django_arc")
    transport.dispatch(event)

    settings.ARC = {
        **settings.ARC,
        "EVENTS": {
            **settings.ARC.get("EVENTS", {}),
            "OUTBOX": False,
            "TRANSPORT": _DownTransport.make(),
        },
    }
    get_transport()
    with transaction.atomic():
        publish(event)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("django_arc")]
    assert len(lines) >= 5, lines  # subscriber, retry, gave up, dead letter, lost
    assert not [line for line in lines if "\n" in line or "\x1b" in line], lines
    assert sum("books.created\\nERROR forged line \\x1b[31m" in line for line in lines) >= 5
    assert all("secret" not in line for line in lines)


def test_a_resolvers_message_quoting_the_org_header_is_escaped(settings, caplog):
    """The organization header is the client's; a ``MEMBERSHIP_RESOLVER`` refusing it
    (``ValueError``, read as "not a member") is logged with its message, which may quote
    the header (``ValueError(f"no organization {org_id}")``): written raw, a control
    character in the header reached the log line."""
    from tests.factories import UserFactory
    from tests.helpers import client_for

    settings.ARC = {**settings.ARC, "MEMBERSHIP_RESOLVER": "tests.test_logging.quoting_resolver"}
    caplog.set_level(logging.DEBUG, logger="django_arc")
    answer = client_for(UserFactory()).get("/api/books/", HTTP_X_ORGANIZATION_ID="7\x1b[2J")
    assert answer.status_code == 403, answer.content
    (line,) = [r.getMessage() for r in caplog.records if "MEMBERSHIP_RESOLVER" in r.getMessage()]
    assert "\x1b" not in line and "no organization 7\\x1b[2J" in line


def quoting_resolver(user, org_id):
    raise ValueError(f"no organization {org_id}")


def test_a_loop_stopped_mid_outage_says_how_many_failed(monkeypatch, caplog):
    """``FailureStreak`` logs an outage's first failure, then at most one a minute, and how
    many failed when the loop works again. A loop stopped while still failing (SIGTERM to
    ``arc_relay`` during a database outage, a Celery ``relay_outbox`` whose batches all
    failed, a consumer closed while Redis is down) never worked again: the failures after
    the last line were counted nowhere in the log (``arc_relay``'s stop line and the task's
    INFO line read as idle polls). Now the loop's end says how many failed in a row."""
    from django.db import OperationalError

    from django_arc.events.transports import RedisPubSubTransport, RedisStreamsTransport
    from django_arc.outbox import EventOutbox, run_relay
    from tests.outbox_support import RecordingTransport

    def relay_batch(self, limit=None, worker_id=None):
        raise OperationalError("the database is restarting")

    monkeypatch.setattr(EventOutbox, "relay_batch", relay_batch)
    caplog.set_level(logging.DEBUG, logger="django_arc")
    totals = run_relay(EventOutbox(RecordingTransport()), max_batches=3, interval=0)
    assert totals.errors == 3

    streams = RedisStreamsTransport(client=object(), consumer="c1")
    calls = []

    def consume(count=10, block_ms=None):
        calls.append(1)
        if len(calls) == 3:
            streams.stop()
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(streams, "consume", consume)
    monkeypatch.setattr(streams._stop, "wait", lambda timeout=None: False)  # no 1 s naps
    streams.run_forever()

    pubsub = RedisPubSubTransport(client=object())
    heard = []

    def listen_once(timeout=1.0):
        heard.append(1)
        if len(heard) == 3:
            pubsub._stop.set()  # close(): the failure it causes is not the outage's
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(pubsub, "_ensure_listening", lambda: None)
    monkeypatch.setattr(pubsub, "listen_once", listen_once)
    monkeypatch.setattr(pubsub._stop, "wait", lambda timeout=None: False)
    pubsub.start().join(5)

    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert [line for line in lines if line[1] == "WARNING"] == [
        ("django_arc.outbox", "WARNING", "relay stopped after 3 batches failed in a row"),
        ("django_arc.events", "WARNING", "Stream consumer c1 stopped after 3 failures in a row"),
        ("django_arc.events", "WARNING", "pub/sub listener stopped after 2 failures in a row"),
    ], lines


class _UnbuildableTransport:
    """A transport whose constructor reaches its broker (a Kafka producer's does), which is
    down: building it raises."""

    def __init__(self, **options):
        raise ConnectionError("broker down at connect")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bulk", [False, True], ids=["one row", "bulk"])
def test_outbox_off_a_transport_that_cannot_be_built_loses_the_events_not_the_answer(
    settings, caplog, bulk
):
    """Outbox off: the publish runs after the write's commit and must never turn the
    committed write into a 500 (a retry under a key would write it again). Building the
    transport there (its first use) failing was caught and logged with the publish
    itself; 9f2231d's one-line-per-commit publish built it outside its ``try``, so a
    broker down at connect answered 500 for a row that was written."""
    from tests.factories import AuthorFactory, UserFactory
    from tests.helpers import client_for
    from tests.testapp.models import Book

    settings.ARC = {
        **settings.ARC,
        "EVENTS": {
            **settings.ARC.get("EVENTS", {}),
            "OUTBOX": False,
            "TRANSPORT": _UnbuildableTransport,
            "OPTIONS": {},
        },
    }
    author = AuthorFactory()
    client = client_for(UserFactory())
    client.raise_request_exception = False
    caplog.set_level(logging.DEBUG, logger="django_arc")
    if bulk:
        items = [{"title": f"t{i}", "isbn": f"unbuilt-{i}", "author": author.pk} for i in range(3)]
        answer = client.post("/api/bulk-books/bulk/", {"items": items}, format="json")
    else:
        answer = client.post(
            "/api/books/", {"title": "t", "isbn": "unbuilt", "author": author.pk}, format="json"
        )
    assert answer.status_code == 201, answer.content
    assert Book.objects.filter(isbn__startswith="unbuilt").count() == (3 if bulk else 1)
    (lost,) = [r for r in caplog.records if r.name == "django_arc.outbox" and r.levelno >= 40]
    assert "they are lost (the outbox is off)" in lost.getMessage()
    assert lost.exc_info[0] is ConnectionError


def test_a_500_under_atomic_requests_is_the_envelope_whatever_a_reporter_does(monkeypatch):
    """Under ``ATOMIC_REQUESTS`` the report of a 500 is sent within the view, inside the
    request's transaction (Django sends it after its rollback): a receiver that raises (a
    database-backed reporter meeting a transaction a database error aborted) replaced the
    envelope with Django's HTML 500, and was called a second time by Django. A failing
    receiver is logged; the answer is the envelope, reported once."""
    from django.db import connections
    from django.urls import resolve

    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", True)
    view = resolve("/api/books/").func.cls

    def get_queryset(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(view, "get_queryset", get_queryset)
    calls = []

    def reporter(sender, request, **kwargs):
        calls.append(request.path)
        raise ValueError("a reporter that fails")

    got_request_exception.connect(reporter)
    try:
        with assertLogs_request() as logs:
            answer = APIClient(raise_request_exception=False).get("/api/books/")
    finally:
        got_request_exception.disconnect(reporter)
    assert_error(answer, 500, "INTERNAL_ERROR")
    assert calls == ["/api/books/"]
    assert [r.exc_info[0] for r in logs] == [RuntimeError]


def test_a_failing_500_reporter_is_logged_once(monkeypatch, caplog):
    """``send_robust`` logs a receiver's failure itself, with its traceback, on
    ``django.dispatch`` (Django 4.1+; under Django's default logging, mailed to the admins);
    django-arc logged it a second time on ``django_arc``: two reports of one failure."""
    from django.urls import resolve

    view = resolve("/api/books/").func.cls

    def get_queryset(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(view, "get_queryset", get_queryset)

    def reporter(sender, request, **kwargs):
        raise ValueError("a reporter that fails")

    got_request_exception.connect(reporter)
    try:
        with caplog.at_level(logging.DEBUG):
            answer = APIClient(raise_request_exception=False).get("/api/books/")
    finally:
        got_request_exception.disconnect(reporter)
    assert_error(answer, 500, "INTERNAL_ERROR")
    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ValueError]
    assert [(r.name, r.levelno) for r in failures] == [("django.dispatch", logging.ERROR)]


def test_every_character_that_breaks_a_log_line_is_escaped_and_a_backslash_too(api, caplog):
    """``log_text`` escapes what breaks a line or drives a terminal beyond ``\\n`` and
    ``ESC``: NUL and the last C0 control (``\\x1f``), DEL and the C1 controls (``\\x85`` is
    NEL, a line break to some readers; ``\\x9b`` is CSI, ANSI's ``ESC [``), Unicode's line
    and paragraph separators, and a lone surrogate (no handler can encode it: the record is
    lost). A backslash is escaped too, or a client's ``\\n`` (backslash, n) read as an
    escaped newline."""
    from django_arc.events import create_event
    from django_arc.events.transports import MemoryTransport

    caplog.set_level(logging.INFO, logger="django_arc")
    path = "/api/books/a%5Cnb%00%1F%7F%C2%85%C2%9B%E2%80%A8%E2%80%A9/"
    assert_error(api.get(path), 404, "NOT_FOUND")
    (record,) = [r for r in caplog.records if r.name == "django_arc"]
    assert record.getMessage().startswith(
        "404 for /api/books/a\\\\nb\\x00\\x1f\\x7f\\x85\\x9b\\u2028\\u2029/: "
    ), record.getMessage()

    caplog.clear()
    transport = MemoryTransport()

    def fails(event):
        raise RuntimeError("handler down")

    transport.subscribe("books.*", fails)
    transport.dispatch(create_event("books.created\ud800", {}, id="id\udfff"))
    (line,) = [r.getMessage() for r in caplog.records if r.name.startswith("django_arc")]
    assert line.endswith(" failed on books.created\\ud800 id\\udfff"), line
    line.encode("utf-8")  # a handler writing UTF-8 can write it


def test_an_outage_is_logged_again_each_minute_and_a_new_outage_from_its_first_failure(
    monkeypatch, caplog
):
    """``FailureStreak``'s minute: a failure a minute or more after the last line is logged
    again, saying how many failed so far (an outage of an hour is a line a minute, not one
    line and silence); the end of an outage forgets when it was last logged, so the first
    failure of the next outage is logged whenever it comes."""
    from types import SimpleNamespace

    from django.db import OperationalError

    from django_arc import logs
    from django_arc.outbox import EventOutbox, RelayResult, run_relay
    from tests.outbox_support import RecordingTransport

    now = [1000.0]
    monkeypatch.setattr(logs, "time", SimpleNamespace(monotonic=lambda: now[0]))
    # each batch: (seconds since the last one, whether it fails)
    script = iter([(0, True), (30, True), (31, True), (1, False), (1, True), (1, False)])

    def relay_batch(self, limit=None, worker_id=None):
        seconds, fails = next(script)
        now[0] += seconds
        if fails:
            raise OperationalError("the database is restarting")
        return RelayResult()

    monkeypatch.setattr(EventOutbox, "relay_batch", relay_batch)
    caplog.set_level(logging.DEBUG, logger="django_arc")
    totals = run_relay(EventOutbox(RecordingTransport()), max_batches=6, interval=0)
    assert totals.errors == 4
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "django_arc.outbox"]
    failed = "OperationalError: the database is restarting"
    assert lines == [
        ("ERROR", f"relay batch 1 failed: {failed}"),
        (
            "ERROR",
            f"relay batch 3 failed: {failed} (3 failed in a row; logged at most every 60 s)",
        ),
        ("WARNING", "relay batches succeed again after 3 failed in a row"),
        ("ERROR", f"relay batch 5 failed: {failed}"),
        ("WARNING", "relay batches succeed again after 1 failed in a row"),
    ], lines


def test_a_500_at_a_service_keys_lookup_does_not_report_the_key(monkeypatch):
    """The database failing at the lookup of a presented key (not at its touch, above): the
    traceback runs through ``ServiceClientManager.authenticate``, whose frame holds the raw
    key. It is a ``sensitive_variables`` frame too."""
    import sys

    from django.db import OperationalError
    from django.views.debug import ExceptionReporter

    from django_arc.clients import ServiceClient, ServiceClientManager

    client, key = ServiceClient.objects.create_with_key(name="sync", organization_id=7)

    class Unreachable:
        def __iter__(self):
            raise OperationalError("the database went away")

    monkeypatch.setattr(ServiceClientManager, "filter", lambda self, **kw: Unreachable())
    with assertLogs_request() as logs:
        answer = APIClient(raise_request_exception=False).get("/api/books/", HTTP_X_API_KEY=key)
    assert answer.status_code == 500
    (record,) = logs
    html = ExceptionReporter(record.request, *record.exc_info).get_traceback_html()
    assert "the database went away" in html and "raw_key" in html
    assert key not in html and key[12:] not in html
    # the manager asked by a project's own code (no sensitive frame above it): its own
    # frame hides the key (Django hides the variables of every frame below a decorated one)
    with pytest.raises(OperationalError):
        try:
            ServiceClient.objects.authenticate(key)
        except OperationalError:
            exc_info = sys.exc_info()
            raise
    html = ExceptionReporter(None, exc_info[0], exc_info[1], exc_info[2].tb_next)
    html = html.get_traceback_html()
    assert "the database went away" in html and "raw_key" in html
    assert key not in html and key[12:] not in html


def test_a_failure_saving_a_new_service_key_does_not_report_the_key(monkeypatch):
    """``create_with_key`` holds the raw key when it saves the client: the database failing
    there (an admin's or a command's 500, mailed with its frames' variables) showed it."""
    import sys

    from django.db import OperationalError
    from django.views.debug import ExceptionReporter

    from django_arc.clients import ServiceClient

    keys = []
    set_new_key = ServiceClient.set_new_key

    def remembering(self):
        keys.append(set_new_key(self))
        return keys[-1]

    def save(self, *args, **kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(ServiceClient, "set_new_key", remembering)
    monkeypatch.setattr(ServiceClient, "save", save)
    with pytest.raises(OperationalError):
        try:
            ServiceClient.objects.create_with_key(name="sync", organization_id=7)
        except OperationalError:
            exc_info = sys.exc_info()
            raise
    (key,) = keys
    # from create_with_key's frame on (this test's frame holds the key in ``keys``)
    html = ExceptionReporter(None, exc_info[0], exc_info[1], exc_info[2].tb_next)
    html = html.get_traceback_html()
    assert "the database went away" in html and "raw_key" in html
    assert key not in html and key[12:] not in html


@pytest.mark.parametrize("raised", ["NotFound", "IntegrityError"])
def test_a_projects_404_reason_and_a_databases_message_are_escaped(monkeypatch, caplog, raised):
    """The 404's reason and an integrity error's message are logged (INFO, WARNING) and may
    quote the client's text: a project's ``NotFound(f"no author {name}")``, a database
    quoting the value that broke its constraint (PostgreSQL's ``Key (isbn)=(...)``). Both
    are escaped as the path is."""
    from django.db import IntegrityError

    from django_arc.exceptions import NotFound
    from tests.testapp.resources import BookResource

    def before_create(self, request, data):
        text = f"{request.data['title']} already exists"
        raise NotFound(text) if raised == "NotFound" else IntegrityError(text)

    monkeypatch.setattr(BookResource, "before_create", before_create)
    caplog.set_level(logging.INFO, logger="django_arc")
    from tests.factories import AuthorFactory

    body = {"title": "x\n[ERROR] forged\x1b[31m", "isbn": "forged", "author": AuthorFactory().pk}
    answer = APIClient().post("/api/books/", body, format="json")
    assert answer.status_code == (404 if raised == "NotFound" else 409), answer.content
    (line,) = [r.getMessage() for r in caplog.records if r.name == "django_arc"]
    assert "\n" not in line and "\x1b" not in line, line
    assert line.endswith(": x\\n[ERROR] forged\\x1b[31m already exists"), line
