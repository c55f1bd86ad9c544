"""What an ``Idempotency-Key`` costs a write (issue #17), pinned so that a regression fails:
every SQL statement (``BEGIN``, ``COMMIT`` and savepoints included) and every Redis round trip
a keyed request sends beyond the same request without a key.

- ``database`` store: the claim is one statement committed on its own (no transaction or
  savepoint around it), the answer one statement inside the write's transaction; a write
  that runs no transaction without a key gets one (``BEGIN``/``COMMIT``) so that the write
  and its answer commit together. A repeat is one look-up: the claim that inserts nothing,
  then the record.
- ``cache`` store: one Lua script to claim, one to store the answer, no SQL; a repeat is
  one round trip.

The database tests run outside a test transaction (``transaction=True``), as requests do.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from shop.models import Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import assert_error
from tests.redis_support import REDIS_URL, arc_with, caches_with, command_names
from tests.test_idempotency_concurrency import clone, in_thread
from tests.testapp.feature_resources import IdempotentProductResource

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/idem-products/"
CLAIM = "INSERT django_arc_idempotencyrecord"
ANSWER = "UPDATE django_arc_idempotencyrecord"
LOOK_UP = "SELECT django_arc_idempotencyrecord"


def shape(sql: str) -> str:
    """A statement as its verb and first table (``INSERT shop_product``), or its verb alone
    (``BEGIN``, ``SAVEPOINT``, ``RELEASE``): what is sent, not its values or savepoint ids."""
    verb = sql.split(None, 1)[0].upper()
    table = re.search(r'\b(?:INTO|UPDATE|FROM)\s+"?(\w+)"?', sql)
    return f"{verb} {table.group(1)}" if table else verb


def settings_for(store: str = "database", outbox: bool = True, **idempotency) -> dict:
    events = {**settings.ARC.get("EVENTS", {}), "OUTBOX": outbox}
    idem = {"STORE": store, "ALIAS": "redis", **idempotency}
    return arc_with(IDEMPOTENCY=idem, EVENTS=events)


@pytest.fixture
def editor():
    return member_client(OrganizationFactory(), "editor")


@pytest.fixture
def atomic_requests(request):
    """``ATOMIC_REQUESTS`` on the default database for the test (``indirect`` param)."""
    before = connection.settings_dict["ATOMIC_REQUESTS"]
    connection.settings_dict["ATOMIC_REQUESTS"] = request.param
    yield request.param
    connection.settings_dict["ATOMIC_REQUESTS"] = before


def statements(client, sku: str, key: str | None = None, url: str = URL) -> list[str]:
    """The shapes of the statements one create sends (it must succeed)."""
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    body = {"name": "Widget", "sku": sku, "price": "9.50"}
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(url, body, format="json", **headers)
    assert response.status_code == 201, response.content
    return [shape(q["sql"]) for q in ctx.captured_queries]


# -- database store ------------------------------------------------------------------------------


@pytest.mark.parametrize("outbox", [True, False], ids=["outbox", "no outbox"])
@pytest.mark.parametrize("atomic_requests", [False, True], indirect=True, ids=["", "atomic"])
def test_a_keyed_write_sends_two_statements_more_on_the_database_store(
    editor, outbox, atomic_requests
):
    """The write runs in a transaction without a key too (the outbox, or the resource's
    presets need one): the key adds its claim before it and its answer at its end, nothing
    else — no BEGIN, COMMIT or savepoint of its own, with or without ``ATOMIC_REQUESTS``."""
    with override_settings(ARC=settings_for(outbox=outbox)):
        statements(editor, "W-0", key="warm-up")
        plain = statements(editor, "W-1")
        keyed = statements(editor, "W-2", key="k")
    if atomic_requests:
        # BEGIN (the request's), SAVEPOINT (the write's) … RELEASE, COMMIT
        assert plain[:2] == ["BEGIN", "SAVEPOINT"] and plain[-2:] == ["RELEASE", "COMMIT"]
        assert keyed == plain[:1] + [CLAIM] + plain[1:-2] + [ANSWER] + plain[-2:]
    else:
        assert plain[0] == "BEGIN" and plain[-1] == "COMMIT"
        assert keyed == [CLAIM] + plain[:-1] + [ANSWER] + plain[-1:]
    assert len(keyed) == len(plain) + 2


def test_a_one_statement_write_gets_its_transaction_from_the_key(editor):
    """Without the outbox, an unkeyed create of a resource without hooks is one autocommit
    INSERT; keyed, the write and its answer must commit together: 4 statements more."""
    url = "/api/t-products/"
    with override_settings(ARC=settings_for(outbox=False, ENABLED=True)):
        statements(editor, "W-0", key="warm-up", url=url)
        plain = statements(editor, "W-1", url=url)
        keyed = statements(editor, "W-2", key="k", url=url)
    assert plain == ["INSERT shop_product"]
    assert keyed == [CLAIM, "BEGIN", "INSERT shop_product", ANSWER, "COMMIT"]


@pytest.mark.parametrize("atomic_requests", [False, True], indirect=True, ids=["", "atomic"])
def test_a_repeat_is_one_claim_that_inserts_nothing_and_one_look_up(editor, atomic_requests):
    """A taken key is no error (the claim ignores the conflict), so a repeat needs no
    savepoint and runs nothing of the route."""
    body = {"name": "W", "sku": "W-1", "price": "1"}
    with override_settings(ARC=settings_for()):
        first = editor.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
        with CaptureQueriesContext(connection) as ctx:
            again = editor.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
    sent = [shape(q["sql"]) for q in ctx.captured_queries]
    expected = [CLAIM, LOOK_UP]
    assert sent == (["BEGIN", *expected, "COMMIT"] if atomic_requests else expected)
    assert Product.objects.count() == 1


# -- cache store ---------------------------------------------------------------------------------


@pytest.fixture
def redis_calls(monkeypatch):
    """Redis round trips from this thread (single commands and pipelines), by command name,
    counted where they leave for the server: the bytes a connection's
    ``send_packed_command`` writes (however the command was packed), and a pipeline's
    ``execute`` as one."""
    from redis.client import Pipeline
    from redis.connection import AbstractConnection

    calls: list[str] = []
    send_packed, execute = AbstractConnection.send_packed_command, Pipeline.execute
    thread = threading.get_ident()
    in_pipeline: list[bool] = []

    def counted_packed(connection, command, *args, **kwargs):
        if threading.get_ident() == thread and not in_pipeline:
            calls.extend(command_names(command))
        return send_packed(connection, command, *args, **kwargs)

    def counted_execute(pipe, *args, **kwargs):
        if threading.get_ident() != thread:
            return execute(pipe, *args, **kwargs)
        calls.append("PIPELINE")
        in_pipeline.append(True)
        try:
            return execute(pipe, *args, **kwargs)
        finally:
            in_pipeline.pop()

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted_packed)
    monkeypatch.setattr(Pipeline, "execute", counted_execute)
    return calls


@pytest.fixture
def cache_store():
    if not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=settings_for("cache")),
    ):
        yield


@pytest.mark.redis
def test_a_keyed_write_sends_two_redis_round_trips_and_no_sql_on_the_cache_store(
    cache_store, editor, redis_calls
):
    """(Besides what the write sends without a key: the query cache's invalidation.)"""
    statements(editor, "W-0", key="warm-up")  # loads the scripts into this Redis
    redis_calls.clear()
    plain = statements(editor, "W-1")
    plain_calls = list(redis_calls)
    redis_calls.clear()
    keyed = statements(editor, "W-2", key="k")
    assert keyed == plain
    # the claim and the answer, whatever the write sends in between
    assert Counter(redis_calls) - Counter(plain_calls) == Counter(EVALSHA=2)
    assert len(redis_calls) == len(plain_calls) + 2


@pytest.mark.redis
@pytest.mark.parametrize("atomic_requests", [True], indirect=True, ids=["atomic"])
def test_with_atomic_requests_a_keyed_write_on_the_cache_store_adds_one_savepoint(
    cache_store, editor, atomic_requests
):
    """With ``ATOMIC_REQUESTS`` the claim takes one ``SAVEPOINT`` in the request's
    transaction (what a 5xx rolls the route's writes back to), and no other SQL."""
    statements(editor, "W-0", key="warm-up")
    plain = statements(editor, "W-1")
    keyed = statements(editor, "W-2", key="k")
    assert plain[0] == "BEGIN"
    assert keyed == plain[:1] + ["SAVEPOINT"] + plain[1:]


@pytest.mark.redis
def test_a_repeat_and_a_request_in_flight_are_one_redis_round_trip(
    cache_store, editor, redis_calls, monkeypatch
):
    body = {"name": "W", "sku": "W-1", "price": "1"}
    first = editor.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    redis_calls.clear()
    again = editor.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
    assert redis_calls == ["EVALSHA"]

    # a request holding another key: its repeat is answered 409 after one round trip
    entered, release = threading.Event(), threading.Event()

    def first_waits(self, request, data):
        entered.set()
        assert release.wait(20)
        return data

    monkeypatch.setattr(IdempotentProductResource, "before_create", first_waits)
    other = clone(editor)
    thread, _ = in_thread(
        lambda: other.post(URL, {**body, "sku": "W-2"}, format="json", HTTP_IDEMPOTENCY_KEY="j")
    )
    try:
        assert entered.wait(20)
        redis_calls.clear()
        conflict = editor.post(URL, {**body, "sku": "W-2"}, format="json", HTTP_IDEMPOTENCY_KEY="j")
        assert_error(conflict, 409, "IDEMPOTENCY_CONFLICT")
        assert redis_calls == ["EVALSHA"]
    finally:
        release.set()
        thread.join(30)


@pytest.mark.redis
@pytest.mark.parametrize("outbox", [True, False], ids=["outbox", "no outbox"])
@pytest.mark.parametrize("write", ["create", "update", "delete", "action", "route"])
def test_a_keyed_write_on_the_cache_store_sends_the_statements_it_sends_without_a_key(
    outbox, write
):
    """The ``cache`` store runs a keyed request in one transaction of its own: its writes
    join it without a savepoint, so each write sends what it sends without a key — its
    ``BEGIN`` only comes before the view's reads (the row an update reads), not in addition
    to them."""
    if not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    org = OrganizationFactory()
    editor, admin = member_client(org, "editor"), member_client(org, "admin")
    rows = [ProductFactory(organization=org, price=1) for _ in range(4)]
    sends = {
        "create": lambda n, h: editor.post(
            URL, {"name": "W", "sku": f"C-{n}", "price": "1"}, format="json", **h
        ),
        "update": lambda n, h: editor.patch(
            f"{URL}{rows[n].pk}/", {"name": "N"}, format="json", **h
        ),
        "delete": lambda n, h: admin.delete(f"{URL}{rows[2 + n].pk}/", **h),
        "action": lambda n, h: editor.post(
            f"{URL}{rows[n].pk}/action/", {"action": "double"}, format="json", **h
        ),
        "route": lambda n, h: editor.post(f"{URL}raise-prices/", {}, format="json", **h),
    }
    sent = []
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=settings_for("cache", outbox=outbox)),
    ):
        statements(editor, "W-0", key="warm-up")
        admin.get(URL)  # the admin's membership, cached as the editor's is
        for n, headers in enumerate([{}, {"HTTP_IDEMPOTENCY_KEY": "k"}]):
            with CaptureQueriesContext(connection) as ctx:
                response = sends[write](n, headers)
            assert response.status_code < 300, response.content
            sent.append([shape(q["sql"]) for q in ctx.captured_queries])
    plain, keyed = sent
    assert keyed[0] == "BEGIN" and keyed[-1] == "COMMIT"
    assert sorted(keyed) == sorted(plain)


@pytest.mark.parametrize("store", ["database", "cache"])
def test_a_create_of_the_projects_around_a_keyed_write_adds_one_savepoint(
    editor, monkeypatch, store
):
    """A view whose own code runs around its write (a ``create()`` of the project's) may
    catch the write's error and go on, so the keyed write takes a savepoint to be undone
    alone: one ``SAVEPOINT`` and one ``RELEASE`` more than the framework's own create sends
    under the same key, and nothing else."""
    from django_arc import arc

    if store == "cache" and not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    caches = caches_with("redis", REDIS_URL) if REDIS_URL else settings.CACHES
    viewset = arc.get_resource("idem-products").as_viewset()
    create = viewset.create
    with override_settings(CACHES=caches, ARC=settings_for(store)):
        statements(editor, "W-0", key="warm-up")
        framework = statements(editor, "W-1", key="k1")
        with monkeypatch.context() as patch:
            patch.setattr(viewset, "create", lambda *args, **kwargs: create(*args, **kwargs))
            wrapped = statements(editor, "W-2", key="k2")
    assert Counter(wrapped) - Counter(framework) == Counter(SAVEPOINT=1, RELEASE=1)
    assert len(wrapped) == len(framework) + 2
    # around the write's own statements: the row and its event
    write = [i for i, sql in enumerate(wrapped) if sql.startswith("INSERT shop_product")]
    assert wrapped.index("SAVEPOINT") < write[0] and wrapped.index("RELEASE") > write[-1]
