"""The query cache (SPEC §11, issue #17) on a real Redis: HIT / STALE / MISS, who may share
an entry and who never does, invalidation on every write path, and Redis going away.

Every comparison is against the uncached twin (``/api/uncached-products/``: the same
declaration with ``cache = False``), i.e. what the caller would get without the cache.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import pytest
import redis as redis_py
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, connections, models
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import (
    clear_script_prefix,
    clear_url_caches,
    include,
    resolve,
    reverse,
    set_script_prefix,
)
from django.urls import (
    path as url_path,
)
from django.utils import timezone, translation
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.versioning import URLPathVersioning
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, arc, presets, redis_alias, route, sites
from django_arc import permissions as P
from django_arc.pagination import PagePagination
from django_arc.query import QuerySpec
from django_arc.querycache import invalidate
from django_arc.querycache.keys import resource_version_key, version_keys
from django_arc.querycache.policy import cached_policy_for
from django_arc.querycache.store import Entry
from django_arc.settings import MAX_SECONDS
from shop.models import Order, Product
from tests.factories import MembershipFactory, OrderFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, cache_clock, client_for, site_mounted
from tests.redis_support import (
    REDIS_URL,
    arc_with,
    caches_with,
    command_names,
    query_cache_on_redis,
    redis_server,
)
from tests.testapp.feature_resources import CachedProductResource
from tests.testapp.models import Author

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    # bumps happen on commit: the test's writes must really commit
    pytest.mark.django_db(transaction=True),
]

CACHED = "/api/cached-products/"
UNCACHED = "/api/uncached-products/"
ORDERS = "/api/cached-orders/"


@pytest.fixture(autouse=True)
def redis_cache():
    """The ``redis`` alias under a prefix of this test's own; ARC's cache pointed at it."""
    with query_cache_on_redis() as config:
        yield config


def member(org, role):
    """A client acting as a new member of ``org`` with ``role`` (``.user`` is that user)."""
    user = MembershipFactory(organization=org, role=role).user
    client = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    client.user = user
    return client


@pytest.fixture
def shop():
    """Two organizations with products (one dear), an admin, an editor, a viewer and a
    buyer in the first, an admin in the second."""
    a, b = OrganizationFactory(), OrganizationFactory()
    for i in range(5):
        ProductFactory(organization=a, name=f"A{i}", price=10 + i, cost=3)
        ProductFactory(organization=b, name=f"B{i}", price=20 + i, cost=4)
    dear = ProductFactory(organization=a, name="A-dear", price=500, cost=300)
    return {
        "a": a,
        "b": b,
        "dear": dear,
        "admin": member(a, "admin"),
        "editor": member(a, "editor"),
        "viewer": member(a, "viewer"),
        "buyer": member(a, "buyer"),
        "admin_b": member(b, "admin"),
    }


def stale_on_a_clock(monkeypatch, cache: dict):
    """``CachedProductResource`` with ``cache``, its entries aged by a clock the test moves
    (``clock.offset += 31`` past a 30 s freshness) rather than by sleeping past a fraction
    of a second: on a loaded machine, the read that must find a refreshed entry fresh came
    after such a window had closed."""
    monkeypatch.setattr(CachedProductResource, "cache", cache)
    return cache_clock(monkeypatch)


def get(client, path, query=""):
    return client.get(f"{path}{query}")


def same_as_uncached(client, query="", detail=""):
    """The cached answer equals the uncached twin's, byte for byte; returns the response."""
    cached = client.get(f"{CACHED}{detail}{query}")
    uncached = client.get(f"{UNCACHED}{detail}{query}")
    assert cached.status_code == uncached.status_code
    assert cached.content == uncached.content, (cached.content, uncached.content)
    return cached


class RoundTrips:
    """What went over the wire to Redis: one entry per exchange (a command, or a pipeline's
    batch), and the names of the commands sent, read from the bytes redis-py's connection
    writes (however they were packed)."""

    def __init__(self, monkeypatch):
        from redis.connection import AbstractConnection

        self.exchanges = 0
        self.commands = []
        send_packed = AbstractConnection.send_packed_command

        def counted_packed(conn, command, *args, **kwargs):
            self.exchanges += 1
            self.commands.extend(command_names(command))
            return send_packed(conn, command, *args, **kwargs)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted_packed)


# -- HIT and MISS --------------------------------------------------------------------------------


def test_miss_then_hit_costs_one_redis_round_trip_and_no_sql(shop, monkeypatch):
    editor = shop["editor"]
    first = get(editor, CACHED)
    assert first.status_code == 200 and first["X-Cache"] == "MISS"
    trips = RoundTrips(monkeypatch)
    with CaptureQueriesContext(connection) as queries:
        second = get(editor, CACHED)
    assert second["X-Cache"] == "HIT"
    assert second.content == first.content
    assert len(queries) == 0, [q["sql"] for q in queries]
    assert trips.exchanges == 1
    assert second["Content-Type"] == first["Content-Type"] == "application/json"
    assert same_as_uncached(editor).content == second.content


def test_a_get_is_cached_and_its_object_rule_runs_on_every_hit(shop):
    editor, buyer = shop["editor"], shop["buyer"]
    dear = f"{shop['dear'].pk}/"
    assert get(editor, CACHED, dear)["X-Cache"] == "MISS"
    hit = get(editor, CACHED, dear)
    assert hit["X-Cache"] == "HIT" and hit.json()["data"]["name"] == "A-dear"
    # the buyer sees the same fields as the editor, so shares the key: the entry is there,
    # yet the object rule refuses it
    refused = get(buyer, CACHED, dear)
    assert refused.status_code == 403 and "X-Cache" not in refused
    assert get(buyer, UNCACHED, dear).status_code == 403
    cheap = f"{shop['a'].products.filter(price__lt=100).first().pk}/"
    same_as_uncached(buyer, detail=cheap)
    assert get(buyer, CACHED, cheap)["X-Cache"] == "HIT"


locked_site = ResourceSite(name="locked")


def lends_a_lock(request, resource, action, obj=None):
    """An object rule that leaves something on the row no pickle can hold (a lock)."""
    if obj is not None:
        obj.guard = threading.Lock()
    return True


@locked_site.register
class LockedAuthorResource(Resource):
    model = Author
    name = "locked-authors"
    fields = ["id", "name"]
    permissions = {"list": P.allow_public(), "get": P.all_of(P.allow_public(), lends_a_lock)}
    cache = {"stale_seconds": 30}


def test_a_get_whose_row_does_not_pickle_is_answered_and_never_stored(settings, redis_cache):
    """A hit runs the object checks on the row its entry keeps, pickled: a row that cannot
    be pickled (an attribute a rule set on it holds a lock) is answered as uncached, every
    time, not with a 500 from storing it."""
    author = Author.objects.create(name="Ann")
    anonymous = client_for(None)
    with site_mounted(settings, "l", locked_site):
        for _ in range(2):
            response = anonymous.get(f"/l/locked-authors/{author.pk}/")
            assert response.status_code == 200, response.content
            assert response["X-Cache"] == "MISS"
            assert response.json()["data"] == {"id": author.pk, "name": "Ann"}
        listed = [anonymous.get("/l/locked-authors/")["X-Cache"] for _ in range(2)]
        assert listed == ["MISS", "HIT"]  # a list keeps no row: cached as ever
    redis = redis_alias.client("redis")
    entries = redis.keys(f"{redis_cache['KEY_PREFIX']}:*arc:qc:e:locked:locked-authors:*")
    assert len(entries) == 1  # the list's


#: whether :func:`lends_a_lock_when_asked` leaves a lock on the row
LENDING: list[bool] = []


def lends_a_lock_when_asked(request, resource, action, obj=None):
    """:func:`lends_a_lock`, only while a test has put something in :data:`LENDING`."""
    if obj is not None and LENDING:
        obj.guard = threading.Lock()
    return True


@locked_site.register
class SometimesLockedAuthorResource(Resource):
    model = Author
    name = "sometimes-locked-authors"
    fields = ["id", "name"]
    permissions = {"get": P.all_of(P.allow_public(), lends_a_lock_when_asked)}
    cache = {"stale_seconds": 30}  # aged by a Clock, not by sleeping


def test_a_stale_get_whose_refreshed_row_no_longer_pickles_is_dropped_by_its_close(
    settings, redis_cache, monkeypatch
):
    """The STALE refresh rides on the request's close() and stores what the route answers
    now; a row that no longer pickles (a rule now leaves a lock on it) makes no entry
    (CachedRead.entry() is None): the refresh drops the stale one and gives its lock back, so
    the next read runs the route (a MISS with today's name), not the old bytes for
    gc_seconds, and never a 500 from the close (pins the refresh on close() with the pickle
    guard; passed first time)."""
    clock = cache_clock(monkeypatch)
    author = Author.objects.create(name="Ann")
    anonymous = client_for(None)
    url = f"/l/sometimes-locked-authors/{author.pk}/"
    redis = redis_alias.client("redis")
    with site_mounted(settings, "l", locked_site):
        assert anonymous.get(url)["X-Cache"] == "MISS"
        assert anonymous.get(url)["X-Cache"] == "HIT"
        Author.objects.filter(pk=author.pk).update(name="Bea")  # no bump
        clock.offset += 31
        LENDING.append(True)
        try:
            stale = anonymous.get(url)  # the test client closes it: the refresh runs
            assert (stale.status_code, stale["X-Cache"]) == (200, "STALE")
            assert stale.json()["data"]["name"] == "Ann"
            assert not redis.keys(f"{redis_cache['KEY_PREFIX']}:*arc:qc:e:locked:sometimes-locked*")
            after = anonymous.get(url)
        finally:
            LENDING.clear()
    assert (after.status_code, after["X-Cache"]) == (200, "MISS")
    assert after.json()["data"]["name"] == "Bea"


def test_missing_and_malformed_ids_are_404_and_not_cached(shop):
    editor = shop["editor"]
    for detail in ("999999/", "not-a-number/", f"{shop['b'].products.first().pk}/"):
        for _ in range(2):
            response = get(editor, CACHED, detail)
            assert response.status_code == 404
            assert response.get("X-Cache") in (None, "MISS")


def test_an_error_answer_says_nothing_of_the_cache(shop, monkeypatch):
    """``X-Cache`` says where a cacheable answer (a 200) came from; an error is never one. A
    404, an object rule's 403 or a 500 of the route said ``MISS`` when the cache had been
    asked before the route ran, and nothing when refused before it was (a 400 query, the
    object rule's 403 on a HIT): now none does, as arc 2.9 sets it on success answers only
    and the OpenAPI schema documents it on the 200 only."""
    editor, buyer = shop["editor"], shop["buyer"]
    dear = f"{shop['dear'].pk}/"
    for _ in range(2):
        missing = get(editor, CACHED, "999999/")
        assert missing.status_code == 404 and "X-Cache" not in missing
    refused = get(buyer, CACHED, dear)  # nothing cached yet: the route ran and refused
    assert refused.status_code == 403 and "X-Cache" not in refused
    assert get(editor, CACHED, dear)["X-Cache"] == "MISS"
    refused = get(buyer, CACHED, dear)  # on the HIT path
    assert refused.status_code == 403 and "X-Cache" not in refused

    def broken(self, request, *args, **kwargs):
        return Response({"success": False, "code": "INTERNAL_ERROR"}, status=500)

    monkeypatch.setattr(resolve(CACHED).func.cls, "list", broken)
    failed = get(editor, CACHED, "?limit=3")
    assert failed.status_code == 500 and "X-Cache" not in failed


def test_the_browsable_api_is_never_cached(shop):
    editor = shop["editor"]
    for _ in range(2):
        response = editor.get(CACHED, HTTP_ACCEPT="text/html")
        assert response.status_code == 200 and "X-Cache" not in response


# -- what a HIT relies on --------------------------------------------------------------------------


def headers(response):
    """A response's headers but the two that differ on every answer."""
    return {k: v for k, v in response.items() if k not in ("X-Cache", "X-Request-Id")}


@pytest.mark.parametrize("detail", ["", "dear"])
def test_a_hit_is_one_mget_no_sql_and_the_bytes_and_headers_of_its_miss(shop, monkeypatch, detail):
    editor = shop["editor"]
    detail = f"{shop['dear'].pk}/" if detail else ""
    miss = get(editor, CACHED, f"{detail}?select=name,price")
    assert miss["X-Cache"] == "MISS"
    trips = RoundTrips(monkeypatch)
    with CaptureQueriesContext(connection) as queries:
        hit = get(editor, CACHED, f"{detail}?select=name,price")
    assert hit["X-Cache"] == "HIT"
    assert len(queries) == 0, [q["sql"] for q in queries]
    assert (trips.exchanges, trips.commands) == (1, ["MGET"])
    # nor is its query string parsed into request.GET (django_arc.querystring), once the
    # process has seen the query spelled as sent (the miss's negotiation parsed it)
    again = get(editor, CACHED, f"{detail}?select=name,price")
    assert again["X-Cache"] == "HIT" and "GET" not in again.wsgi_request.__dict__
    assert hit.content == miss.content
    assert headers(hit) == headers(miss)
    assert hit["X-Request-Id"] != miss["X-Request-Id"]


def test_a_hit_is_negotiated_like_any_request(shop):
    """An entry exists, yet what the client accepts is still asked: a 406 stays a 406, an
    unknown ``?format=`` a 400, and another JSON rendering is another entry."""
    editor = shop["editor"]
    get(editor, CACHED)
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    for path in (CACHED, UNCACHED):
        refused = editor.get(path, HTTP_ACCEPT="application/xml")
        assert refused.status_code == 406 and "X-Cache" not in refused
        assert refused.json()["code"] == "NOT_ACCEPTABLE"
        unknown = editor.get(f"{path}?format=xml")
        assert unknown.status_code == 400 and "X-Cache" not in unknown
        assert unknown.json()["code"] == "INVALID_QUERY"
    indented = {"HTTP_ACCEPT": "application/json; indent=4"}
    cached = editor.get(CACHED, **indented)
    assert cached["X-Cache"] == "MISS"
    assert cached.content == editor.get(UNCACHED, **indented).content
    assert editor.get(CACHED, **indented)["X-Cache"] == "HIT"
    plain = get(editor, CACHED)
    assert plain["X-Cache"] == "HIT" and plain.content == get(editor, UNCACHED).content
    assert plain.content != cached.content


def test_a_parsed_query_is_only_shared_by_callers_who_may_send_it(shop):
    """The parsed query is remembered per process, keyed by the fields the caller may read:
    a ``select`` of a field the admin sees and the editor does not stays the editor's 400."""
    admin, editor, viewer = shop["admin"], shop["editor"], shop["viewer"]
    query = "?select=name,cost"
    assert get(admin, CACHED, query)["X-Cache"] == "MISS"
    assert same_as_uncached(admin, query)["X-Cache"] == "HIT"
    for _ in range(2):
        refused = get(editor, CACHED, query)
        assert refused.status_code == 400 and "X-Cache" not in refused
        assert refused.json()["code"] == "INVALID_QUERY"
        assert get(editor, UNCACHED, query).status_code == 400
    masked = "?select=name,sku"
    assert get(admin, CACHED, masked)["X-Cache"] == "MISS"
    assert get(viewer, CACHED, masked)["X-Cache"] == "MISS"
    assert {doc["sku"] for doc in same_as_uncached(viewer, masked).json()["docs"]} == {"***"}


def test_a_query_is_parsed_once_per_request_and_once_per_process(shop, monkeypatch):
    """The key parses a new query string, the list reuses that parse on the miss; a hit
    of a query string seen before parses nothing."""
    parses = []
    original = QuerySpec.parse

    def parse(spec, *args, **kwargs):
        parses.append(args[0].urlencode())
        return original(spec, *args, **kwargs)

    monkeypatch.setattr(QuerySpec, "parse", parse)
    editor = shop["editor"]
    query = "?status=active&sort=-price&limit=3&parse=once"
    first = get(editor, CACHED, query)
    assert first["X-Cache"] == "MISS" and len(first.json()["docs"]) == 3
    assert len(parses) == 1
    assert get(editor, CACHED, query)["X-Cache"] == "HIT"
    assert len(parses) == 1
    assert get(editor, UNCACHED, query).content == first.content
    assert len(parses) == 2


def test_cost5_a_hit_asks_nothing_its_resource_has_no_hook_or_option_for(shop, monkeypatch):
    """Merges after cost4 added to every cache HIT what only some resources need: the
    question of which tables the presets' ``filter_queryset``/``search`` join (two lazy
    imports and the presets listed again, on a resource whose presets override neither)
    and the ``OPTIONS`` metadata's judged action (a property, asked six times, whose answer
    differs from ``view.action`` only for ``metadata``). A HIT of such a resource, a
    ``GET`` list, asks neither; the tables are still asked where a preset joins (the
    cases of test_rev_fixes54), the metadata judged where it is sent (test_rev_methods)."""
    from django_arc.generics import ResourceGenericViewSet
    from django_arc.querycache import invalidation

    asked = []
    reads, judged = invalidation._presets_queryset_reads, ResourceGenericViewSet.judged_action

    def counted_reads(view, read):
        asked.append("presets' tables")
        return reads(view, read)

    def counted_judged(view):
        asked.append("judged action")
        return judged.fget(view)

    monkeypatch.setattr(invalidation, "_presets_queryset_reads", counted_reads)
    monkeypatch.setattr(ResourceGenericViewSet, "judged_action", property(counted_judged))
    editor = shop["editor"]
    assert get(editor, CACHED, "?sort=-price")["X-Cache"] == "MISS"
    asked.clear()
    hit = get(editor, CACHED, "?sort=-price")
    assert hit["X-Cache"] == "HIT" and len(hit.json()["docs"]) == 6
    assert asked == []


def test_spellings_of_one_query_share_an_entry(shop):
    editor = shop["editor"]
    assert get(editor, CACHED, "?status=active&limit=2")["X-Cache"] == "MISS"
    for spelling in ("?limit=2&status=active", "?status[eq]=active&limit=2"):
        assert same_as_uncached(editor, spelling)["X-Cache"] == "HIT", spelling
    dear = shop["dear"].pk
    assert get(editor, CACHED, f"{dear}/")["X-Cache"] == "MISS"
    assert same_as_uncached(editor, detail=f"0{dear}/")["X-Cache"] == "HIT"


@contextlib.contextmanager
def hit_then_redis_stopped(editor, tmp_path):
    """A Redis of the test's own serving the cache: the editor's list is cached (MISS, then
    HIT), then the server is stopped; yields the server (``start()`` brings it back)."""
    with redis_server(tmp_path) as server:
        with override_settings(CACHES=caches_with("redis", server["url"])):
            assert get(editor, CACHED)["X-Cache"] == "MISS"
            assert get(editor, CACHED)["X-Cache"] == "HIT"
            server["stop"]()
            yield server


def test_a_redis_restart_between_requests_is_not_an_outage(shop, tmp_path, caplog):
    """A HIT's connection outlives the request; when Redis restarts in between, the next
    request finds it closed and reads again through the pool, as a pooled command would,
    instead of answering uncached with an outage warning."""
    editor = shop["editor"]
    with hit_then_redis_stopped(editor, tmp_path) as server:
        server["start"]()
        caplog.set_level(logging.WARNING, logger="django_arc.redis")
        assert same_as_uncached(editor)["X-Cache"] == "MISS"  # the restart lost it
        assert get(editor, CACHED)["X-Cache"] == "HIT"
        assert [r for r in caplog.records if r.name == "django_arc.redis"] == []


def test_hits_in_several_threads_at_once_each_get_their_own_answer(shop):
    """HITs of different entries from several threads at once (each thread reads on a
    connection it keeps): every answer is its own entry's bytes."""
    import threading

    from django.db import connections

    queries = ["?limit=1", "?limit=2", "?limit=3", "?sort=-price"]
    expected = {}
    for query in queries:
        get(shop["editor"], CACHED, query)
        expected[query] = get(shop["editor"], UNCACHED, query).content
    failures = []
    start = threading.Barrier(len(queries))

    def reader(query):
        try:
            start.wait()
            for _ in range(10):
                answer = get(shop["editor"], CACHED, query)
                if answer["X-Cache"] != "HIT" or answer.content != expected[query]:
                    failures.append((query, answer["X-Cache"]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reader, args=(query,)) for query in queries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# -- who shares an entry ---------------------------------------------------------------------------


def test_one_tenants_list_is_never_served_to_another(shop):
    a_admin, b_admin = shop["admin"], shop["admin_b"]
    assert get(a_admin, CACHED)["X-Cache"] == "MISS"
    assert get(a_admin, CACHED)["X-Cache"] == "HIT"
    b_first = get(b_admin, CACHED)
    assert b_first["X-Cache"] == "MISS"
    names = {doc["name"] for doc in b_first.json()["docs"]}
    assert names == {f"B{i}" for i in range(5)}
    same_as_uncached(b_admin)
    same_as_uncached(a_admin)


def test_a_role_that_sees_fewer_fields_never_gets_a_richer_answer(shop):
    admin, editor, viewer = shop["admin"], shop["editor"], shop["viewer"]
    full = get(admin, CACHED)
    assert "cost" in full.json()["docs"][0]
    for client in (editor, viewer):
        answer = get(client, CACHED)
        assert answer["X-Cache"] == "MISS"
        assert "cost" not in answer.json()["docs"][0]
        same_as_uncached(client)
    assert {doc["sku"] for doc in get(viewer, CACHED).json()["docs"]} == {"***"}
    # roles that see the same fields share: a second viewer, the buyer with the editor
    assert get(member(shop["a"], "viewer"), CACHED)["X-Cache"] == "HIT"
    assert get(shop["buyer"], CACHED)["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    "first, second",
    [
        ("?select=name", ""),
        ("", "?select=name"),
        ("?select=name", "?select=name,price"),
        ("?sort=-price", "?sort=price"),
        ("?status=active", "?status=draft"),
        ("?page=1&limit=2", "?page=2&limit=2"),
        ("?limit=2", "?limit=3"),
        ("?after=&limit=2", "?limit=2"),
        ("?search=A1", "?search=A2"),
    ],
)
def test_another_query_is_another_entry(shop, first, second):
    editor = shop["editor"]
    assert get(editor, CACHED, first)["X-Cache"] == "MISS"
    assert get(editor, CACHED, second)["X-Cache"] == "MISS"
    assert same_as_uncached(editor, second)["X-Cache"] == "HIT"
    assert same_as_uncached(editor, first)["X-Cache"] == "HIT"


def test_a_caller_in_another_time_zone_gets_its_own_entry(shop):
    """Datetimes are written in the time zone active for the request: a project activating
    each user's own must not serve Tokyo the bytes rendered for UTC."""
    editor = shop["editor"]
    try:
        timezone.activate("UTC")
        assert get(editor, CACHED)["X-Cache"] == "MISS"
        utc = same_as_uncached(editor)
        assert utc["X-Cache"] == "HIT"
        timezone.activate("Asia/Tokyo")
        tokyo = get(editor, CACHED)
        assert tokyo["X-Cache"] == "MISS"
        assert tokyo.json()["docs"][0]["created_at"].endswith("+09:00")
        assert same_as_uncached(editor).content == tokyo.content
    finally:
        timezone.deactivate()
    assert utc.json()["docs"][0]["created_at"].endswith(("Z", "+00:00"))


class Document(models.Model):
    """A row with a file, whose URL DRF writes absolute, from the request's scheme and host.
    Its table is made by the ``documents`` fixture: the test app has no migration for it."""

    name = models.CharField(max_length=50)
    file = models.FileField(upload_to="docs/")

    class Meta:
        app_label = "testapp"


document_site = ResourceSite(name="documents")


class _Documents(Resource):
    model = Document
    fields = ["id", "name", "file"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}


@document_site.register
class CachedDocumentResource(_Documents):
    name = "cached-documents"
    cache = {"stale_seconds": 30}


@document_site.register
class UncachedDocumentResource(_Documents):
    name = "uncached-documents"
    cache = False


@pytest.fixture
def documents(settings):
    """A document, and its cached and uncached lists mounted at ``/d/``; yields their paths."""
    with connection.schema_editor() as editor:
        editor.create_model(Document)
    try:
        Document.objects.create(name="doc", file="docs/doc.pdf")
        with site_mounted(settings, "d", document_site):
            yield "/d/cached-documents/", "/d/uncached-documents/"
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Document)


def test_an_absolute_url_is_only_served_to_the_host_and_scheme_it_was_written_for(
    documents, settings
):
    """A file's URL is written with the request's scheme and host: the answer rendered for
    ``Host: evil.example`` is never served to anyone else, nor http's to an https request;
    behind a proxy Django trusts, the forwarded host and scheme count the same way."""
    settings.USE_X_FORWARDED_HOST = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cached, uncached = documents
    anonymous = client_for(None)
    evil = anonymous.get(cached, HTTP_HOST="evil.example")
    assert evil["X-Cache"] == "MISS"
    assert evil.json()["docs"][0]["file"].startswith("http://evil.example/")
    proxied = {"HTTP_X_FORWARDED_HOST": "shop.example", "HTTP_X_FORWARDED_PROTO": "https"}
    assert (
        anonymous.get(cached, **proxied)
        .json()["docs"][0]["file"]
        .startswith("https://shop.example/")
    )
    for asked in (
        {},
        {"secure": True},
        {"HTTP_HOST": "evil.example"},
        {"HTTP_X_FORWARDED_HOST": "shop.example"},
        proxied,
    ):
        answer = anonymous.get(cached, **asked)
        assert answer.content == anonymous.get(uncached, **asked).content, asked
        assert anonymous.get(cached, **asked)["X-Cache"] == "HIT", asked


def test_the_scheme_alone_keys_an_absolute_url(documents):
    """http and https on one port (a server answering both behind one listener): the scheme
    the request came in over is in the key by itself, not only through ``SERVER_PORT``
    (which the test client's ``secure`` changes too, so the test above could not tell)."""
    cached, uncached = documents
    anonymous = client_for(None)
    plain = anonymous.get(cached, SERVER_PORT="8000")
    assert plain.json()["docs"][0]["file"].startswith("http://")
    secure = anonymous.get(cached, secure=True, SERVER_PORT="8000")
    assert secure["X-Cache"] == "MISS"
    assert secure.json()["docs"][0]["file"].startswith("https://")
    assert secure.content == anonymous.get(uncached, secure=True, SERVER_PORT="8000").content


class LinkedDocumentSerializer(serializers.ModelSerializer):
    """A project serializer writing a link with ``reverse()``, which starts it with the
    script name the request came in under."""

    admin = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = ["id", "name", "admin"]

    def get_admin(self, obj):
        return reverse("admin:index")


@document_site.register
class CachedLinkedDocumentResource(_Documents):
    name = "cached-linked-documents"
    serializer_class = LinkedDocumentSerializer
    cache = {"stale_seconds": 30}


@document_site.register
class UncachedLinkedDocumentResource(_Documents):
    name = "uncached-linked-documents"
    serializer_class = LinkedDocumentSerializer
    cache = False


def test_an_answer_is_only_served_under_the_script_name_it_was_written_for(documents):
    """``reverse()`` starts a link with the script name: one project mounted twice
    (``SCRIPT_NAME=/v1``, ``/api``) sharing a Redis writes two links for one row."""
    cached, uncached = "/d/cached-linked-documents/", "/d/uncached-linked-documents/"
    anonymous = client_for(None)

    def mounted(path, mount):
        # what WSGIHandler does with SCRIPT_NAME, and Django's test client does not
        set_script_prefix(f"{mount}/")
        try:
            return anonymous.get(path, SCRIPT_NAME=mount)
        finally:
            clear_script_prefix()

    for mount in ("/v1", "/api", "/v1"):
        answer = mounted(cached, mount)
        assert answer.content == mounted(uncached, mount).content
        assert answer.json()["docs"][0]["admin"] == f"{mount}/admin/"
    assert mounted(cached, "/api")["X-Cache"] == "HIT"


def body(response):
    """An answer's body, but a JSON error's ``requestId``, which differs on every request."""
    if response.get("Content-Type") != "application/json":
        return response.content
    answer = response.json()
    answer.pop("requestId", None)
    return answer


@pytest.mark.parametrize("common_middleware", [True, False])
def test_a_host_django_refuses_gets_the_answer_it_gets_uncached(
    shop, documents, settings, common_middleware
):
    """Django refuses a host ``ALLOWED_HOSTS`` does not name: ``CommonMiddleware`` answers
    400 before any view. Without it, the list that writes no URL answers 200 (kept under that
    host's own key), and the one that does answers 400 naming the header, as uncached (the
    serializer's ``build_absolute_uri`` raises ``DisallowedHost``), never cached."""
    settings.ALLOWED_HOSTS = ["testserver"]
    if not common_middleware:
        common = "django.middleware.common.CommonMiddleware"
        settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != common]
    pairs = [(shop["editor"], CACHED, UNCACHED), (client_for(None), *documents)]
    for client, cached, uncached in pairs:
        for _ in range(2):
            answer = client.get(cached, HTTP_HOST="evil.example")
            twin = client.get(uncached, HTTP_HOST="evil.example")
            assert (answer.status_code, body(answer)) == (twin.status_code, body(twin))
            if common_middleware:
                assert answer.status_code == 400 and "X-Cache" not in answer
            elif cached == CACHED:
                assert answer.status_code == 200
            else:
                assert "X-Cache" not in answer  # an error: twice, never stored
                assert assert_error(answer, 400, "VALIDATION_ERROR")["details"] == {
                    "Host": ["Not a host this site serves."]
                }


class GreetingProductSerializer(serializers.ModelSerializer):
    """A project serializer django-arc cannot see into: it writes the caller's name and a
    translated word."""

    viewer = serializers.SerializerMethodField()
    word = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "viewer", "word"]

    def get_viewer(self, obj):
        return self.context["request"].user.username

    def get_word(self, obj):
        return gettext("Yes")


greeting_site = ResourceSite(name="greeting")


@greeting_site.register
class GreetingProductResource(Resource):
    model = Product
    name = "greeting-products"
    serializer_class = GreetingProductSerializer
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    cache = {"stale_seconds": 30}


def test_a_project_serializer_keys_its_entries_by_caller_and_language(shop, settings):
    editor, viewer, url = shop["editor"], shop["viewer"], "/g/greeting-products/"
    with site_mounted(settings, "g", greeting_site):
        first = get(editor, url)
        assert first["X-Cache"] == "MISS", first.content
        assert get(editor, url)["X-Cache"] == "HIT"
        other = get(viewer, url)
        assert other["X-Cache"] == "MISS"
        assert {d["viewer"] for d in other.json()["docs"]} == {viewer.user.username}
        with translation.override("fr"):
            french = get(editor, url)
        assert french["X-Cache"] == "MISS"
        assert {d["word"] for d in french.json()["docs"]} == {"Oui"}
        assert {d["word"] for d in get(editor, url).json()["docs"]} == {"Yes"}


def test_a_project_serializer_keys_the_query_string_whatever_the_order_of_its_parameters(
    shop, settings
):
    """query-cache.md: a project serializer's entries hold the whole query string as sent, so
    a parameter the query language ignores makes an entry of its own, but the parameters are
    keyed by name: the same ones in another order share the entry."""
    editor, url = shop["editor"], "/g/greeting-products/"
    with site_mounted(settings, "g", greeting_site):
        assert get(editor, f"{url}?limit=2&page=1")["X-Cache"] == "MISS"
        assert get(editor, f"{url}?page=1&limit=2")["X-Cache"] == "HIT"
        assert get(editor, f"{url}?page=1&limit=2&utm_source=x")["X-Cache"] == "MISS"


class _LabelledProducts(Resource):
    """Products with a model property in ``fields``: the generated serializer writes what the
    model returns, here a translated label (as ``get_status_display`` with translated choice
    labels does)."""

    model = Product
    fields = ["id", "name", "status_label"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}


class CachedLabelledProductResource(_LabelledProducts):
    name = "labelled-products"
    cache = {"stale_seconds": 30}


class UncachedLabelledProductResource(_LabelledProducts):
    name = "uncached-labelled-products"
    cache = False


def test_a_model_property_in_fields_keys_its_entries_by_language(shop, settings, monkeypatch):
    """The generated serializer's entries were shared across languages, as if its bytes were
    a function of the rows alone; a property (or a ``get_…_display``) it renders may
    translate, and under ``LocaleMiddleware`` the French caller was served the English HIT.
    (The resources are on a site of the test's own: ``status_label`` exists only while it
    runs, and ``manage.py check`` in a later test must not find them.)"""
    from django_arc.sites import _all_sites

    monkeypatch.setattr(Product, "status_label", property(lambda p: gettext("Yes")), raising=False)
    editor = shop["editor"]
    cached, uncached = "/lb/labelled-products/", "/lb/uncached-labelled-products/"
    site = ResourceSite(name="labelled")
    site.register(CachedLabelledProductResource)
    site.register(UncachedLabelledProductResource)
    with contextlib.ExitStack() as stack:
        stack.callback(_all_sites.remove, site)
        stack.enter_context(site_mounted(settings, "lb", site))
        assert get(editor, cached)["X-Cache"] == "MISS"
        assert get(editor, cached)["X-Cache"] == "HIT"
        with translation.override("fr"):
            french = get(editor, cached)
            assert french.content == get(editor, uncached).content
        assert french["X-Cache"] == "MISS"
        assert {d["status_label"] for d in french.json()["docs"]} == {"Oui"}
        english = get(editor, cached)
        assert english["X-Cache"] == "HIT"
        assert english.content == get(editor, uncached).content


class _NameInTheActiveLanguage:
    """A model field's descriptor answering in the active language, as
    django-modeltranslation's (``TranslationFieldDescriptor``) does: registered for
    translation, ``product.name`` reads the ``name_fr`` column for a French caller. The
    model field is still ``name``, so the generated serializer renders it as a field."""

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return f"{instance.__dict__['name']} [{translation.get_language()}]"

    def __set__(self, instance, value):
        instance.__dict__["name"] = value


def test_a_model_field_that_reads_the_language_keys_its_entries_by_language(
    shop, monkeypatch, settings
):
    """A resource rendering only model fields shared its entries across languages, as if a
    field were written the same in every one; a field django-modeltranslation translates
    (or any model field whose descriptor reads the active language) is not, and under
    ``LocaleMiddleware`` the French caller was served the English HIT. The language is in
    every entry's key now."""
    monkeypatch.setattr(Product, "name", _NameInTheActiveLanguage())
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:2],
        "django.middleware.locale.LocaleMiddleware",
        *settings.MIDDLEWARE[2:],
    ]
    editor = shop["editor"]
    french = {"HTTP_ACCEPT_LANGUAGE": "fr"}
    # LocaleMiddleware leaves the caller's language active on the thread: restore it
    with translation.override("en"):
        assert editor.get(CACHED)["X-Cache"] == "MISS"
        assert editor.get(CACHED)["X-Cache"] == "HIT"
        answer = editor.get(CACHED, **french)
        assert answer.content == editor.get(UNCACHED, **french).content
        assert answer["X-Cache"] == "MISS"
        assert {d["name"][-4:] for d in answer.json()["docs"]} == {"[fr]"}
        assert editor.get(CACHED, **french)["X-Cache"] == "HIT"
        english = editor.get(CACHED)
        assert english["X-Cache"] == "HIT"
        assert english.content == editor.get(UNCACHED).content
        assert {d["name"][-4:] for d in english.json()["docs"]} == {"[en]"}


class VersionedProductSerializer(serializers.ModelSerializer):
    """A project serializer answering in the shape of the API version DRF read."""

    version = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "version"]

    def get_version(self, obj):
        return self.context["request"].version


versioned_site = ResourceSite(name="versioned")


@versioned_site.register
class VersionedProductResource(Resource):
    model = Product
    name = "versioned-products"
    serializer_class = VersionedProductSerializer
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    cache = {"stale_seconds": 30}


def test_a_project_serializer_keys_its_entries_by_api_version(shop, settings, monkeypatch):
    """A project whose ``DEFAULT_VERSIONING_CLASS`` is ``URLPathVersioning`` mounts the site
    under ``<version>/``: a serializer answering v2 in v2's shape must never be served the
    bytes it wrote for v1 (before, ``/v2/`` was a HIT on ``/v1/``'s entry). DRF reads the
    setting into ``APIView.versioning_class`` when it is imported, as a project's settings
    are: the test sets the class attribute the same way."""
    monkeypatch.setattr(APIView, "versioning_class", URLPathVersioning)
    editor = shop["editor"]
    import tests.urls

    patterns = [*tests.urls.urlpatterns, url_path("<str:version>/", include(versioned_site.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    try:
        assert get(editor, "/v1/versioned-products/")["X-Cache"] == "MISS"
        assert get(editor, "/v1/versioned-products/")["X-Cache"] == "HIT"
        v2 = get(editor, "/v2/versioned-products/")
        assert v2["X-Cache"] == "MISS"
        assert {d["version"] for d in v2.json()["docs"]} == {"v2"}
        one = v2.json()["docs"][0]["id"]
        assert get(editor, f"/v1/versioned-products/{one}/").json()["data"]["version"] == "v1"
        v2_get = get(editor, f"/v2/versioned-products/{one}/")
        assert v2_get["X-Cache"] == "MISS" and v2_get.json()["data"]["version"] == "v2"
    finally:
        clear_url_caches()


class CountedPagination(PagePagination):
    """A project pagination answering with headers of its own (a count, a ``Vary``)."""

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response["X-Total-Count"] = str(self.total)
        patch_vary_headers(response, ["Cookie"])
        return response


class _CountedProducts(Resource):
    model = Product
    fields = ["id", "name"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    pagination_class = CountedPagination


@greeting_site.register
class CachedCountedProductResource(_CountedProducts):
    name = "counted-products"
    cache = {"stale_seconds": 30}


@greeting_site.register
class UncachedCountedProductResource(_CountedProducts):
    name = "uncached-counted-products"
    cache = False


def test_an_answer_with_headers_of_its_own_is_never_served_without_them(shop, settings):
    """A HIT is the stored bytes under DRF's own headers: an answer whose route set others (a
    project pagination's count, its ``Vary``) would lose them, so it is not stored."""
    editor = shop["editor"]
    with site_mounted(settings, "g", greeting_site):
        uncached = get(editor, "/g/uncached-counted-products/")
        assert uncached["X-Total-Count"] == "6" and "Cookie" in uncached["Vary"]
        for _ in range(2):
            cached = get(editor, "/g/counted-products/")
            assert cached.content == uncached.content
            assert headers(cached) == headers(uncached)


class CookiePagination(PagePagination):
    """A project pagination whose answer sets a cookie (the page the caller last read)."""

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.set_cookie("last_page", str(self.page))
        return response


@greeting_site.register
class CachedCookieProductResource(_CountedProducts):
    name = "cookie-products"
    pagination_class = CookiePagination
    cache = {"stale_seconds": 30}


def test_an_answer_setting_a_cookie_is_never_served_without_it(shop, settings):
    """A cookie is no header of ``own_headers``, but a HIT would drop it all the same: an
    answer setting one is not stored, and every read sets it."""
    editor = shop["editor"]
    with site_mounted(settings, "g", greeting_site):
        for _ in range(2):
            cached = get(editor, "/g/cookie-products/?page=1")
            assert cached["X-Cache"] == "MISS"
            assert cached.cookies["last_page"].value == "1"


def test_parameters_the_query_language_ignores_share_the_entry(shop):
    editor = shop["editor"]
    assert get(editor, CACHED, "?status=active")["X-Cache"] == "MISS"
    assert get(editor, CACHED, "?status=active&utm_source=mail")["X-Cache"] == "HIT"


def test_a_bad_query_is_the_same_400_and_caches_nothing(shop):
    editor = shop["editor"]
    for _ in range(2):
        response = get(editor, CACHED, "?cost[gte]=1")
        assert response.status_code == 400 and "X-Cache" not in response
        assert response.json()["code"] == "INVALID_QUERY"


def test_a_caller_refused_the_list_gets_no_cached_list(shop):
    assert get(shop["editor"], CACHED)["X-Cache"] == "MISS"
    stranger = client_for(shop["admin_b"].user)  # no org header
    assert stranger.get(CACHED).json()["code"] == "ORG_REQUIRED"
    assert client_for(None).get(CACHED).status_code == 401


# -- invalidation --------------------------------------------------------------------------------


def writes(shop):
    """Every write path, as (label, callable). Each changes what the list shows."""
    admin, a = shop["admin"], shop["a"]

    def row():
        return Product.objects.filter(organization=a, price__lt=100).order_by("pk").first()

    def path(suffix=""):
        return f"{CACHED}{suffix}"

    body = {"name": "New", "sku": "NEW-1", "price": "1.00"}
    return [
        ("create", lambda: admin.post(path(), body, format="json")),
        ("patch", lambda: admin.patch(path(f"{row().pk}/"), {"name": "P"}, format="json")),
        ("put", lambda: admin.put(path(f"{row().pk}/"), {"name": "Q"}, format="json")),
        ("delete", lambda: admin.delete(path(f"{row().pk}/"))),
        ("action", lambda: admin.post(path(f"{row().pk}/action/"), {"action": "double"})),
        ("route with QuerySet.update", lambda: admin.post(path("raise-prices/"))),
        (
            "another resource's route over the same table",
            lambda: admin.post(f"{UNCACHED}raise-prices/"),
        ),
        (
            "bulk create",
            lambda: admin.post(
                path("bulk/"), {"items": [{**body, "sku": "BULK-1"}]}, format="json"
            ),
        ),
        (
            "bulk update",
            lambda: admin.patch(
                path("bulk/"), {"items": [{"id": row().pk, "name": "Bulk"}]}, format="json"
            ),
        ),
        (
            "bulk delete",
            lambda: admin.delete(path("bulk/"), {"ids": [row().pk]}, format="json"),
        ),
        ("a save outside any request (admin, shell)", lambda: _save_outside(row())),
        ("a delete outside any request", lambda: row().delete()),
        ("QuerySet.update + invalidate()", lambda: _update_and_invalidate(a)),
    ]


def _save_outside(product):
    product.name = "Saved"
    product.save()


def _update_and_invalidate(org):
    Product.objects.filter(organization=org).update(status="archived")
    invalidate(Product)


def test_every_write_path_makes_the_next_read_a_miss(shop):
    editor = shop["editor"]
    for label, write in writes(shop):
        get(editor, CACHED)
        assert get(editor, CACHED)["X-Cache"] == "HIT", label
        response = write()
        assert getattr(response, "status_code", 200) < 400, (label, response.content)
        after = same_as_uncached(editor)
        assert after["X-Cache"] == "MISS", label


def test_a_failed_write_leaves_the_entry_valid(shop):
    editor = shop["editor"]
    get(editor, CACHED)
    assert shop["viewer"].post(CACHED, {"name": "x"}, format="json").status_code == 403
    assert editor.post(CACHED, {"name": "no price"}, format="json").status_code == 400
    assert get(editor, CACHED)["X-Cache"] == "HIT"


@greeting_site.register
class RepricingProductResource(Resource):
    """A route that writes with ``QuerySet.update`` (no signal), then answers a 409 of its
    own: its transaction commits all the same."""

    model = Product
    name = "repricing-products"
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership()}

    @route("POST", "reprice", permissions=P.require_org_role("admin"))
    def reprice(self, request, view):
        view.get_queryset().update(name="Repriced")
        return Response({"success": False, "message": "repriced, but late"}, status=409)


def test_a_write_committed_by_a_route_answering_an_error_of_its_own_invalidates(shop, settings):
    """The seam skips the bump of a request that failed, as an exception rolls its writes
    back; a route that returns a 4xx has had its writes committed, and they count."""
    editor = shop["editor"]
    get(editor, CACHED)
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    with site_mounted(settings, "g", greeting_site):
        assert shop["admin"].post("/g/repricing-products/reprice/").status_code == 409
    after = same_as_uncached(editor)
    assert after["X-Cache"] == "MISS"
    assert {d["name"] for d in after.json()["docs"]} == {"Repriced"}


def test_a_write_to_a_resource_invalidates_the_resources_sharing_its_tag(shop):
    editor = shop["editor"]
    order = OrderFactory(product=shop["dear"])
    assert get(editor, ORDERS)["X-Cache"] == "MISS"
    assert get(editor, ORDERS)["X-Cache"] == "HIT"
    assert get(editor, ORDERS, f"{order.reference}/")["X-Cache"] == "MISS"
    shop["admin"].patch(f"{CACHED}{shop['dear'].pk}/", {"name": "Renamed"}, format="json")
    assert get(editor, ORDERS)["X-Cache"] == "MISS"
    assert get(editor, ORDERS, f"{order.reference}/")["X-Cache"] == "MISS"
    # and a tag by name, for writes no resource reports
    invalidate("test-catalog")
    assert get(editor, ORDERS)["X-Cache"] == "MISS"
    Order.objects.update(quantity=7)
    invalidate(Order)
    assert get(editor, ORDERS).json()["docs"][0]["quantity"] == 7


def test_a_save_under_manual_transaction_management_invalidates_and_never_raises(shop):
    """``transaction.set_autocommit(False)``: Django has no ``on_commit`` there (it raises
    ``TransactionManagementError``), so the save of a cached model must not ask for one;
    its bump is sent at once, and the read after the commit is a MISS with the new row."""
    from django.db import transaction

    editor = shop["editor"]
    get(editor, CACHED)
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    product = Product.objects.filter(organization=shop["a"]).order_by("pk").first()
    transaction.set_autocommit(False)
    try:
        product.name = "Manual"
        product.save()
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS"
    assert "Manual" in {d["name"] for d in after.json()["docs"]}


def test_a_write_in_one_tenant_retires_the_other_tenants_entries_too(shop):
    """Invalidation is per resource, not per organization (docs/query-cache.md): a write in
    the first organization makes the second's next read a MISS, with its rows unchanged."""
    other = shop["admin_b"]
    before = get(other, CACHED)
    assert get(other, CACHED)["X-Cache"] == "HIT"
    row = Product.objects.filter(organization=shop["a"]).order_by("pk").first()
    response = shop["admin"].patch(f"{CACHED}{row.pk}/", {"name": "P"}, format="json")
    assert response.status_code == 200, response.content
    after = get(other, CACHED)
    assert after["X-Cache"] == "MISS"
    assert after.content == before.content


def test_a_write_that_rolls_back_bumps_nothing(shop):
    from django.db import transaction

    editor = shop["editor"]
    get(editor, CACHED)
    with pytest.raises(RuntimeError), transaction.atomic():
        _save_outside(Product.objects.filter(organization=shop["a"]).first())
        raise RuntimeError("roll back")
    assert get(editor, CACHED)["X-Cache"] == "HIT"


# -- STALE ---------------------------------------------------------------------------------------


def test_a_stale_entry_is_served_at_once_then_refreshed_once(shop, monkeypatch):
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30, "tags": ["t"]})
    editor = shop["editor"]
    first = get(editor, CACHED)
    assert first["X-Cache"] == "MISS"
    # a change the cache is not told about (no signal, no invalidate())
    Product.objects.filter(organization=shop["a"]).update(name="Changed")
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    clock.offset += 31
    stale = get(editor, CACHED)
    assert stale["X-Cache"] == "STALE"
    assert stale.content == first.content  # served at once, the old answer
    # the refresh ran after that response was sent: the next read is fresh and new
    fresh = get(editor, CACHED)
    assert fresh["X-Cache"] == "HIT"
    assert {d["name"] for d in fresh.json()["docs"]} == {"Changed"}
    assert fresh.content == get(editor, UNCACHED).content


def test_a_stale_answer_a_middleware_replaces_is_refreshed_all_the_same(
    shop, monkeypatch, settings
):
    """``ConditionalGetMiddleware`` answers a STALE list the client already holds (its
    ``If-None-Match`` is the entry's ETag) with a new 304 response, and the server closes that
    one, not the STALE answer: the refresh it won the lock for still runs once the request is
    finished, rather than the lock keeping every later read STALE until it expires."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.http.ConditionalGetMiddleware"]
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30, "tags": ["t"]})
    editor = shop["editor"]
    first = get(editor, CACHED)
    assert first["X-Cache"] == "MISS"
    Product.objects.filter(organization=shop["a"]).update(name="Changed")  # no bump
    clock.offset += 31
    assert editor.get(CACHED, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    fresh = get(editor, CACHED)
    assert fresh["X-Cache"] == "HIT"
    assert {d["name"] for d in fresh.json()["docs"]} == {"Changed"}
    assert fresh.content == get(editor, UNCACHED).content


def test_a_stale_answer_a_page_cache_keeps_is_pickled_without_its_refresh(
    shop, monkeypatch, settings
):
    """Django's cache middleware pickles the answers it keeps. A STALE answer whose request
    won the refresh carries it (a closure) until it is sent: it pickles without it, and the
    refresh still runs. It was an HTML 500."""
    from django.core.cache import caches

    settings.MIDDLEWARE = [
        "django.middleware.cache.UpdateCacheMiddleware",
        *settings.MIDDLEWARE,
        "django.middleware.cache.FetchFromCacheMiddleware",
    ]
    settings.CACHE_MIDDLEWARE_SECONDS = 60
    caches["default"].clear()
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    editor = shop["editor"]
    first = get(editor, CACHED, "?limit=5&sort=name")
    assert first["X-Cache"] == "MISS"
    Product.objects.filter(organization=shop["a"]).update(name="Changed")  # no bump
    clock.offset += 31
    # the same query spelled otherwise: a miss of the page cache, the same entry of ours
    stale = get(editor, CACHED, "?sort=name&limit=5")
    assert stale.status_code == 200 and stale["X-Cache"] == "STALE"
    assert stale.content == first.content
    caches["default"].clear()  # the page cache's copies: the next read reaches the view
    fresh = get(editor, CACHED, "?limit=5&sort=name")
    assert fresh["X-Cache"] == "HIT"
    assert {d["name"] for d in fresh.json()["docs"]} == {"Changed"}


def test_only_one_request_refreshes_a_stale_entry(shop, monkeypatch, redis_cache):
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    editor = shop["editor"]
    get(editor, CACHED)
    clock.offset += 31
    # someone else holds the refresh lock: this request serves STALE without running SQL
    import redis as redis_py

    client = redis_py.Redis.from_url(REDIS_URL)
    locked = [
        k for k in client.scan_iter(f"{redis_cache['KEY_PREFIX']}*:e:*") if b":refresh" not in k
    ]
    assert len(locked) == 1
    client.set(locked[0] + b":refresh", b"1", ex=30)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert get(editor, CACHED)["X-Cache"] == "STALE"
    assert len(queries) == 0
    client.delete(locked[0] + b":refresh")
    assert get(editor, CACHED)["X-Cache"] == "STALE"  # this one refreshes
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    client.close()


def test_a_stale_entry_refreshed_by_another_request_meanwhile_is_not_refreshed_again(
    shop, monkeypatch
):
    """Two requests read the same STALE entry; the second wins the lock, refreshes and
    releases it before the first asks for it (the first was descheduled between its read and
    its ``SET NX``). The first then wins the lock too: it must find the entry fresh and leave
    it, or a stale entry is recomputed once per request that saw it, not once."""
    from django_arc.querycache.read import CachedRead
    from django_arc.querycache.store import QueryCacheStore

    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    editor = shop["editor"]
    get(editor, CACHED)
    Product.objects.filter(organization=shop["a"]).update(name="Changed")  # no bump
    clock.offset += 31
    reruns, other, waited = [], [], []
    real_rerun, real_try_lock = CachedRead.rerun, QueryCacheStore.try_lock

    def rerun(read):
        reruns.append(read)
        return real_rerun(read)

    def refreshed_meanwhile(store, key):
        if not waited:  # the first STALE reader, between reading the entry and the lock
            waited.append(key)
            same_caller = client_for(editor.user, HTTP_X_ORGANIZATION_ID=str(shop["a"].pk))

            def read():
                other.append(get(same_caller, CACHED)["X-Cache"])
                connections.close_all()

            thread = threading.Thread(target=read)
            thread.start()
            thread.join()
        return real_try_lock(store, key)

    monkeypatch.setattr(CachedRead, "rerun", rerun)
    monkeypatch.setattr(QueryCacheStore, "try_lock", refreshed_meanwhile)
    assert get(editor, CACHED)["X-Cache"] == "STALE"
    assert other == ["STALE"]
    assert len(reruns) == 1  # the other request's refresh; this one found the entry fresh
    fresh = get(editor, CACHED)
    assert fresh["X-Cache"] == "HIT"
    assert {d["name"] for d in fresh.json()["docs"]} == {"Changed"}


def test_a_refresh_outliving_its_lock_leaves_the_next_refreshers_lock_alone(
    shop, monkeypatch, redis_cache, caplog
):
    """A refresh slower than its lock (30 s) finds, when it ends, the lock of the refresher
    that took over since: it releases only its own, so a third request does not start a
    third refresh while the second still runs. The lock runs out as Redis expires it (the
    key goes), not by sleeping past a one-second lock: the third request then had to come
    within a second of the takeover, which a loaded machine need not do."""
    from django_arc.querycache import store as store_module
    from django_arc.querycache.read import CachedRead

    redis = redis_alias.client("redis")
    locks = f"{redis_cache['KEY_PREFIX']}:*:refresh"
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    editor = shop["editor"]
    get(editor, CACHED)
    clock.offset += 31
    refreshes = []
    real_refresh = CachedRead.refresh

    def refresh(read):
        refreshes.append(read)
        if len(refreshes) != 2:  # the second stands for one still running: it holds the lock
            real_refresh(read)

    def slow_rerun(read):
        if len(refreshes) == 1:
            (lock,) = redis.keys(locks)
            assert 0 < redis.ttl(lock) <= store_module.REFRESH_LOCK_SECONDS
            redis.delete(lock)  # outlives the lock, and another request takes it over
            assert get(editor, CACHED)["X-Cache"] == "STALE"
        raise RuntimeError("the database went away")  # the entry is kept, still STALE

    monkeypatch.setattr(CachedRead, "refresh", refresh)
    monkeypatch.setattr(CachedRead, "rerun", slow_rerun)
    with caplog.at_level(logging.WARNING, logger="django_arc.querycache"):
        assert get(editor, CACHED)["X-Cache"] == "STALE"
    assert len(refreshes) == 2
    assert get(editor, CACHED)["X-Cache"] == "STALE"
    assert len(refreshes) == 2  # the second refresher's lock is still held


def test_a_stale_get_refused_by_the_object_rule_leaves_the_refresh_to_the_next_caller(
    shop, monkeypatch
):
    """The buyer shares the editor's key for a dear product but the object rule refuses it
    the row: its 403 must not take the refresh lock, or no refresh would happen until the
    lock expired."""
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    editor, buyer, dear = shop["editor"], shop["buyer"], shop["dear"]
    assert get(editor, CACHED, f"{dear.pk}/")["X-Cache"] == "MISS"
    Product.objects.filter(pk=dear.pk).update(name="Renamed quietly")  # no invalidation
    clock.offset += 31
    refused = get(buyer, CACHED, f"{dear.pk}/")
    assert refused.status_code == 403 and "X-Cache" not in refused
    assert get(editor, CACHED, f"{dear.pk}/")["X-Cache"] == "STALE"
    fresh = get(editor, CACHED, f"{dear.pk}/")
    assert fresh["X-Cache"] == "HIT"
    assert fresh.json()["data"]["name"] == "Renamed quietly"
    assert fresh.content == get(editor, UNCACHED, f"{dear.pk}/").content


def test_a_refresh_that_finds_the_row_gone_drops_the_entry(shop, monkeypatch, caplog):
    """A get's row deleted by a write the cache was not told of (raw SQL): once stale, its
    refresh answers 404, which drops the entry: the next read is that 404, not the deleted row
    again and again until ``gc_seconds``. A 404 is the route's answer, not a failed refresh."""
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    editor, dear = shop["editor"], shop["dear"]
    assert get(editor, CACHED, f"{dear.pk}/")["X-Cache"] == "MISS"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Product._meta.db_table} WHERE id = %s", [dear.pk])
    clock.offset += 31
    caplog.set_level(logging.WARNING, logger="django_arc.querycache")
    assert get(editor, CACHED, f"{dear.pk}/")["X-Cache"] == "STALE"
    for _ in range(2):
        gone = get(editor, CACHED, f"{dear.pk}/")
        assert gone.status_code == 404 and gone.get("X-Cache") in (None, "MISS")
        assert body(gone) == body(get(editor, UNCACHED, f"{dear.pk}/"))
    assert [r.getMessage() for r in caplog.records if r.name == "django_arc.querycache"] == []


def test_a_refresh_answered_with_djangos_validation_error_drops_the_entry(
    shop, monkeypatch, caplog
):
    """A route refusing with Django's ``ValidationError`` (a project's filter backend, an
    object check: the handler answers it 400, as DRF's) gives an answer, not a failed
    refresh: the entry is dropped and the next read is that 400. It was logged as a failed
    refresh with its traceback, and the stale 200 kept being served until ``gc_seconds``."""
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    editor = shop["editor"]
    get(editor, CACHED)
    clock.offset += 31
    caplog.set_level(logging.WARNING, logger="django_arc.querycache")

    def refused(*args, **kwargs):
        raise DjangoValidationError({"q": ["No longer a valid query."]})

    monkeypatch.setattr(QuerySpec, "apply", refused)
    assert get(editor, CACHED)["X-Cache"] == "STALE"
    r = get(editor, CACHED)
    assert r.status_code == 400 and "X-Cache" not in r, (r.status_code, r.get("X-Cache"))
    assert r.json()["details"] == {"q": ["No longer a valid query."]}
    assert [r.getMessage() for r in caplog.records if r.name == "django_arc.querycache"] == []


def test_a_refresh_that_fails_keeps_the_entry_and_says_so(shop, monkeypatch, caplog):
    """An exception that is no HTTP answer (the database away) is logged, and the stale
    entry is kept: it is still served, and the next stale read tries again."""
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    editor = shop["editor"]
    first = get(editor, CACHED)
    clock.offset += 31
    caplog.set_level(logging.WARNING, logger="django_arc.querycache")

    def broken(*args, **kwargs):
        raise RuntimeError("database away")

    with monkeypatch.context() as patched:
        patched.setattr(QuerySpec, "apply", broken)
        stale = get(editor, CACHED)
    assert (stale["X-Cache"], stale.content) == ("STALE", first.content)
    failed = [r for r in caplog.records if r.name == "django_arc.querycache"]
    assert [r.getMessage() for r in failed] == [f"Refreshing cached {CACHED} failed"]
    assert get(editor, CACHED)["X-Cache"] == "STALE"
    assert get(editor, CACHED)["X-Cache"] == "HIT"


class CallerLocaleMiddleware:
    """Activates the caller's time zone (``X-Tz``) and language (``X-Language``) for the
    request, context-manager style: they are gone by the time the response is closed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = request.headers.get("X-Tz", "UTC")
        with timezone.override(zone), translation.override(request.headers.get("X-Language")):
            return self.get_response(request)


@pytest.fixture
def caller_locale(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.CallerLocaleMiddleware"]


def test_a_stale_entry_is_refreshed_in_the_time_zone_of_its_key(shop, monkeypatch, caller_locale):
    """The refresh runs once the response is closed, after the middleware's override has
    ended: it must still write the datetimes of Tokyo's entry in Tokyo's time zone."""
    clock = stale_on_a_clock(monkeypatch, {"stale_seconds": 30})
    tokyo = member(shop["a"], "editor")
    tokyo.credentials(HTTP_X_ORGANIZATION_ID=str(shop["a"].pk), HTTP_X_TZ="Asia/Tokyo")
    first = get(tokyo, CACHED)
    assert first["X-Cache"] == "MISS"
    assert first.json()["docs"][0]["created_at"].endswith("+09:00")
    clock.offset += 31
    assert get(tokyo, CACHED)["X-Cache"] == "STALE"
    refreshed = get(tokyo, CACHED)
    assert refreshed["X-Cache"] == "HIT"
    assert refreshed.json()["docs"][0]["created_at"].endswith("+09:00")
    assert refreshed.content == get(tokyo, UNCACHED).content


def test_a_stale_entry_is_refreshed_in_the_language_of_its_key(
    shop, monkeypatch, settings, caller_locale
):
    """As for the time zone: the French entry of a project serializer that translates stays
    French when it is refreshed."""
    monkeypatch.setattr(GreetingProductResource, "cache", {"stale_seconds": 30})
    clock = cache_clock(monkeypatch)
    editor, url = shop["editor"], "/g/greeting-products/"
    editor.credentials(HTTP_X_ORGANIZATION_ID=str(shop["a"].pk), HTTP_X_LANGUAGE="fr")
    with site_mounted(settings, "g", greeting_site):
        assert get(editor, url)["X-Cache"] == "MISS"
        clock.offset += 31
        assert get(editor, url)["X-Cache"] == "STALE"
        refreshed = get(editor, url)
        assert refreshed["X-Cache"] == "HIT"
        assert {d["word"] for d in refreshed.json()["docs"]} == {"Oui"}


# -- outages ---------------------------------------------------------------------------------------


def test_redis_stopped_mid_test_answers_200_uncached_with_one_warning(shop, tmp_path, caplog):
    editor = shop["editor"]
    with hit_then_redis_stopped(editor, tmp_path) as server:
        caplog.set_level(logging.WARNING, logger="django_arc.redis")
        for _ in range(3):
            response = same_as_uncached(editor)
            assert response.status_code == 200 and response["X-Cache"] == "MISS"
        # writes go on, their bumps wait for Redis
        created = shop["admin"].post(
            CACHED, {"name": "During", "sku": "D-1", "price": "1"}, format="json"
        )
        assert created.status_code == 201
        same_as_uncached(editor, detail=f"{created.json()['data']['id']}/")
        warnings = [r for r in caplog.records if r.name == "django_arc.redis"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "query cache" in warnings[0].getMessage()
        server["start"]()
        assert same_as_uncached(editor)["X-Cache"] == "MISS"
        assert get(editor, CACHED)["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    "config",
    [
        {"LOCATION": "memcached://127.0.0.1:11211"},
        {"LOCATION": [REDIS_URL], "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"}},
        {
            "LOCATION": "redis://mymaster/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.SentinelClient"},
        },
        {"LOCATION": REDIS_URL, "OPTIONS": {"CLIENT_CLASS": "nowhere.Client"}},
    ],
    ids=["bad url", "shard client", "sentinel misconfigured", "missing client class"],
)
def test_an_alias_whose_client_cannot_be_built_answers_uncached_not_500(
    shop, redis_cache, config, caplog
):
    """A django-redis alias whose client cannot be built (django-redis raises
    ``ImproperlyConfigured``, ``NotImplementedError``, ``ValueError``, ``ImportError``) was a
    500 on every cacheable read and on every write's bump after its commit. It is an outage:
    answered uncached, written through, warned about once."""
    editor = shop["editor"]
    broken = caches_with("redis", REDIS_URL, redis_cache["KEY_PREFIX"])
    broken["redis"] = {"BACKEND": "django_redis.cache.RedisCache", **config}
    caplog.set_level(logging.WARNING, logger="django_arc.redis")
    with override_settings(CACHES=broken):
        for _ in range(2):
            response = same_as_uncached(editor)
            assert response.status_code == 200 and response["X-Cache"] == "MISS"
        detail = same_as_uncached(editor, detail=f"{shop['dear'].pk}/")
        assert detail["X-Cache"] == "MISS"
        url = f"{CACHED}{shop['dear'].pk}/"
        assert shop["admin"].patch(url, {"name": "Meanwhile"}, format="json").status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_arc.redis"]
    assert len(warnings) == 1 and "CACHES['redis'] cannot be used" in warnings[0]
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS"  # the write's bump, held back, retired the old entries
    same_as_uncached(editor)


def test_a_bump_lost_to_an_outage_is_applied_before_this_process_reads_again(shop, redis_cache):
    """Redis unreachable (not restarted): its entries survive the outage, so the writes made
    meanwhile must still retire them."""
    editor = shop["editor"]
    before = get(editor, CACHED)
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    dead = caches_with("redis", "redis://127.0.0.1:1/0", redis_cache["KEY_PREFIX"])
    with override_settings(CACHES=dead):
        url = f"{CACHED}{shop['dear'].pk}/"
        patched = shop["admin"].patch(url, {"name": "Meanwhile"}, format="json")
        assert patched.status_code == 200
        assert get(editor, CACHED)["X-Cache"] == "MISS"
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS" and after.content != before.content
    same_as_uncached(editor)


def test_no_thread_reads_while_another_applies_the_bumps_an_outage_held_back(shop, monkeypatch):
    """While one thread sends the bumps an outage held back, another thread of the process
    must not read the versions those bumps are about to retire and serve a stale HIT, nor
    wait behind a Redis that may still be timing out: it answers uncached, at once."""
    import threading

    from django.db import connections

    from django_arc.querycache import store

    editor, viewer = shop["editor"], shop["viewer"]
    get(editor, CACHED)
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    # a write whose bump did not reach Redis (what bump() keeps when Redis is away)
    Product.objects.filter(organization=shop["a"]).update(name="Meanwhile")
    version = resource_version_key(arc.get_resource("cached-products"))
    store.held_back("redis").keys.add(version)
    sending, release = threading.Event(), threading.Event()
    bump = store.QueryCacheStore._bump

    def slow_bump(self, redis, keys):
        sending.set()
        release.wait(60)
        return bump(self, redis, keys)

    monkeypatch.setattr(store.QueryCacheStore, "_bump", slow_bump)
    answers = {}

    def read(name, client):
        try:
            answers[name] = get(client, CACHED)
        finally:
            connections.close_all()

    retrying = threading.Thread(target=read, args=("viewer", viewer))
    retrying.start()
    assert sending.wait(5)
    other = threading.Thread(target=read, args=("editor", editor))
    other.start()
    # the sender stays held until release is set: a reader queued behind it would never end
    # here, and one answered uncached may take a loaded machine more than a second or two
    other.join(30)
    done_while_sending = not other.is_alive()  # answered uncached, not queued behind it
    release.set()
    retrying.join()
    other.join()
    assert done_while_sending
    assert answers["editor"]["X-Cache"] == "MISS"
    assert answers["editor"].content == get(editor, UNCACHED).content


def test_a_bump_made_while_another_thread_sends_held_back_bumps_reaches_redis(shop, monkeypatch):
    """A write's bump to a Redis that answers is sent at once, even while another thread of
    the process is sending the bumps an outage held back: it is not held back itself (until
    this process next reads the cache), leaving every other process serving the entries the
    write made stale as HITs."""
    import threading

    from django_arc.querycache import store

    qc = store.QueryCacheStore("redis")
    version = resource_version_key(arc.get_resource("cached-products"))
    get(shop["editor"], CACHED)
    before = qc._alias.client().get(qc.key(version))
    store.held_back("redis").keys.add("held-back")
    sending, release = threading.Event(), threading.Event()
    bump = store.QueryCacheStore._bump

    def slow_bump(self, redis, keys):
        if "held-back" in keys:
            sending.set()
            release.wait(5)
        return bump(self, redis, keys)

    monkeypatch.setattr(store.QueryCacheStore, "_bump", slow_bump)
    retrying = threading.Thread(target=qc._redis)
    retrying.start()
    try:
        assert sending.wait(5)
        threading.Timer(0.3, release.set).start()
        qc.bump({version})
    finally:
        release.set()
        retrying.join()
    assert qc._alias.client().get(qc.key(version)) != before
    assert not store.held_back("redis").keys
    # and a process that only writes (a worker) sends those an outage held back with its own
    store.held_back("redis").keys.add("held-back")
    qc.bump({version})
    assert not store.held_back("redis").keys
    assert qc._alias.client().get(qc.key("held-back")) is not None


def test_bumps_held_back_for_a_dead_alias_do_not_touch_reads_of_a_live_one(shop, monkeypatch):
    """Bumps an outage held back belong to their alias: while a thread is (slowly) failing
    to send those of an alias whose Redis is gone, reads of the resources on another alias,
    whose Redis answers, are HITs as usual, not answered uncached as if theirs were away."""
    import threading

    from django.db import connections

    from django_arc.querycache import store

    editor = shop["editor"]
    with override_settings(CACHES=caches_with("dead", "redis://127.0.0.1:1/0")):
        store.QueryCacheStore("dead").bump({"dead-version"})  # refused: held back
        get(editor, CACHED)
        assert get(editor, CACHED)["X-Cache"] == "HIT"
        sending, release = threading.Event(), threading.Event()
        bump = store.QueryCacheStore._bump

        def slow_bump(self, redis, keys):
            if self.alias == "dead":
                sending.set()
                release.wait(5)
            return bump(self, redis, keys)

        monkeypatch.setattr(store.QueryCacheStore, "_bump", slow_bump)

        def retry_dead():
            try:
                store.QueryCacheStore("dead").read("entry", ["dead-version"])
            except store.Unavailable:
                pass
            finally:
                connections.close_all()

        retrying = threading.Thread(target=retry_dead)
        retrying.start()
        try:
            assert sending.wait(5)
            answers = [get(editor, CACHED)["X-Cache"] for _ in range(3)]
        finally:
            release.set()
            retrying.join()
        assert answers == ["HIT", "HIT", "HIT"]


def test_a_bump_refused_by_a_full_redis_still_retires_the_entries(shop, tmp_path):
    """A ``noeviction`` Redis at ``maxmemory`` refuses every ``SET`` but still answers
    ``MGET`` (and ``DEL``): the process that wrote keeps its bump for later, but every other
    process must not go on serving the entries the write made stale as HITs."""
    import redis as redis_py

    from django_arc.querycache import store

    editor = shop["editor"]
    with redis_server(tmp_path) as server:
        with override_settings(CACHES=caches_with("redis", server["url"])):
            get(editor, CACHED)
            assert get(editor, CACHED)["X-Cache"] == "HIT"
            client = redis_py.Redis.from_url(server["url"])
            client.config_set("maxmemory", "1")  # full: SET refused with OOM
            url = f"{CACHED}{shop['dear'].pk}/"
            assert shop["admin"].patch(url, {"name": "Full"}, format="json").status_code == 200
            store.held_back("redis").keys.clear()  # another process, which did not make the write
            after = same_as_uncached(editor)
            assert after["X-Cache"] == "MISS"
            assert "Full" in {d["name"] for d in after.json()["docs"]}
            client.config_set("maxmemory", "0")
            client.close()
            assert same_as_uncached(editor)["X-Cache"] == "MISS"
            assert get(editor, CACHED)["X-Cache"] == "HIT"


def test_a_version_key_evicted_is_a_miss_never_an_old_hit(shop, redis_cache):
    import redis as redis_py

    editor = shop["editor"]
    get(editor, CACHED)
    client = redis_py.Redis.from_url(REDIS_URL)
    resource = arc.get_resource("cached-products")
    version = redis_alias.make_key("redis", resource_version_key(resource))
    assert client.delete(version) == 1  # what an allkeys-lru eviction does
    client.close()
    assert get(editor, CACHED)["X-Cache"] == "MISS"
    assert get(editor, CACHED)["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    "shape", ["whole", "cut short", "older format", "another format version", "not ours"]
)
def test_only_a_whole_entry_in_this_format_is_ever_served(shop, shape):
    """An entry forged with the current version tokens is served as is (so the forgery is
    one a HIT would take); the same entry cut short, one in the earlier JSON-headed format,
    the same bytes under another format version's magic, or bytes that are no entry at all
    are a miss, and the route answers."""
    import redis as redis_py

    editor = shop["editor"]
    assert get(editor, CACHED)["X-Cache"] == "MISS"
    client = redis_py.Redis.from_url(REDIS_URL)
    (entry_key,) = client.keys(redis_alias.make_key("redis", "arc:qc:e:") + "*")
    resource = arc.get_resource("cached-products")
    names = version_keys(resource, cached_policy_for(resource).tags)
    tokens = client.mget([redis_alias.make_key("redis", k) for k in names])
    forged = Entry(time.time(), tuple(t.decode() for t in tokens), "application/json", b'"x"')
    value = {
        "whole": forged.encode(),
        "cut short": forged.encode()[:-1],
        # the same layout under another format's magic (one a later release may write)
        "another format version": b"arc-qc/9\n" + forged.encode()[len(b"arc-qc/2\n") :],
        "older format": b'{"t":%f,"v":["%s"],"ct":"application/json","b":3}\n"x"'
        % (time.time(), tokens[0]),
        "not ours": b"\xff" * 64,
    }[shape]
    client.set(entry_key, value)
    client.close()
    response = get(editor, CACHED)
    if shape == "whole":
        assert (response["X-Cache"], response.content) == ("HIT", b'"x"')
        return
    assert response["X-Cache"] == "MISS" and response.status_code == 200
    assert response.content == get(editor, UNCACHED).content
    assert get(editor, CACHED)["X-Cache"] == "HIT"


@pytest.mark.parametrize("shape", ["row cut short", "row not a pickle", "content type"])
def test_a_damaged_get_entry_is_a_miss_never_an_error(shop, shape):
    """A get's entry ends with its pickled row, whose length the head does not record: cut
    short, or not a pickle at all, it is a miss (the route answers), never a 500. Nor is a
    content type no header may carry."""
    import redis as redis_py

    editor = shop["editor"]
    detail = f"{shop['dear'].pk}/"
    assert get(editor, CACHED, detail)["X-Cache"] == "MISS"
    client = redis_py.Redis.from_url(REDIS_URL)
    (entry_key,) = client.keys(redis_alias.make_key("redis", "arc:qc:e:") + "*")
    entry = Entry.decode(client.get(entry_key))
    assert entry is not None and entry.obj
    value = {
        "row cut short": entry.encode()[:-1],
        "row not a pickle": entry._replace(obj=b"\xff" * 8).encode(),
        "content type": entry._replace(content_type="application/json\nX-Evil: 1").encode(),
    }[shape]
    client.set(entry_key, value)
    client.close()
    response = get(editor, CACHED, detail)
    assert response.status_code == 200 and response["X-Cache"] == "MISS"
    assert response.content == get(editor, UNCACHED, detail).content
    assert get(editor, CACHED, detail)["X-Cache"] == "HIT"


@pytest.mark.parametrize("shape", ["row not a pickle", "class gone"])
def test_a_damaged_entry_is_dropped_and_said_once_per_interval(shop, shape, caplog):
    """An entry whose row does not unpickle (corrupted bytes; a deploy removed or renamed
    the row's class) was a silent miss, left in Redis: when the route's answer is not
    stored in its place (the row deleted meanwhile by raw SQL: a 404), every later read
    unpickled it and failed again until ``gc_seconds``. It is now dropped, and a warning
    says so once per interval (the store's outage warning's mechanism), not once per
    read."""
    import redis as redis_py

    editor, dear = shop["editor"], shop["dear"]
    detail = f"{dear.pk}/"
    assert get(editor, CACHED, detail)["X-Cache"] == "MISS"
    client = redis_py.Redis.from_url(REDIS_URL)
    (entry_key,) = client.keys(redis_alias.make_key("redis", "arc:qc:e:") + "*")
    entry = Entry.decode(client.get(entry_key))
    assert entry is not None and entry.obj
    damaged = entry._replace(
        obj={"row not a pickle": b"\xff" * 8, "class gone": b"cshop.models\nGoneProduct\n."}[shape]
    ).encode()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Product._meta.db_table} WHERE id = %s", [dear.pk])
    caplog.set_level(logging.WARNING, logger="django_arc.querycache")
    try:
        for _ in range(2):
            client.set(entry_key, damaged)
            gone = get(editor, CACHED, detail)
            assert gone.status_code == 404 and gone.get("X-Cache") is None
            assert client.exists(entry_key) == 0  # dropped: the next read does not fail on it
    finally:
        client.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_arc.querycache"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"/api/cached-products/{detail}: a cached answer could not")
    assert "dropped, answered uncached (next warning in 60 s at most)" in warnings[0]


@contextlib.contextmanager
def _site_dropped(site):
    """``site`` dropped from the sites ``manage.py check`` reads once the test ends: its
    ``sku`` lookup (not unique, restricted to some readers) is arc.E006 and arc.E009 there,
    which are not the next test's business."""
    try:
        yield
    finally:
        sites._all_sites.remove(site)


class CachedBySkuResource(CachedProductResource):
    """Looked up by a text column: a row's ``sku`` may hold a control character, which the
    URL carries percent-encoded and ``request.path`` holds decoded."""

    name = "cached-by-sku"
    lookup_field = "sku"


def test_a_damaged_entrys_warning_escapes_a_control_character_in_the_path(settings, caplog):
    """Only a 200 stores an entry, so the path of a damaged one is a path some route
    answered: a text lookup (``sku``) lets a newline through (``/a%0Ab/``). The warning
    writes it escaped, as every log line writes a request's text (``log_text``): a raw one
    forged a second log line."""
    site = ResourceSite(name="cached-by-sku-site")
    site.register(CachedBySkuResource)
    org = OrganizationFactory()
    ProductFactory(organization=org, sku="a\nX-Forged: 1")
    editor = member(org, "editor")
    url = "/qs/cached-by-sku/a%0AX-Forged:%201/"
    with site_mounted(settings, "qs", site), _site_dropped(site):
        assert get(editor, url)["X-Cache"] == "MISS"
        client = redis_py.Redis.from_url(REDIS_URL)
        try:
            (entry_key,) = client.keys(redis_alias.make_key("redis", "arc:qc:e:") + "*")
            entry = Entry.decode(client.get(entry_key))
            assert entry is not None and entry.obj
            client.set(entry_key, entry._replace(obj=b"\xff" * 8).encode())
        finally:
            client.close()
        caplog.set_level(logging.WARNING, logger="django_arc.querycache")
        response = get(editor, url)
    assert response.status_code == 200 and response["X-Cache"] == "MISS"
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "django_arc.querycache"]
    assert warning.startswith("/qs/cached-by-sku/a\\nX-Forged: 1/: a cached answer"), warning
    assert "\n" not in warning


@pytest.mark.parametrize(
    "option",
    [{"stale_seconds": float("inf")}, {"gc_seconds": float("inf")}, {"gc_seconds": 1e30}],
    ids=str,
)
def test_an_infinite_lifetime_is_never_an_error(shop, monkeypatch, option):
    """``float("inf")`` for "never stale" or "never dropped" has no Redis expiry to become;
    it is a malformed option (arc.E014), so the resource answers uncached — never a 500
    from storing the miss under an expiry ``int()`` cannot write. So is a lifetime past
    ``MAX_SECONDS``, whose expiry Redis refuses."""
    monkeypatch.setattr(CachedProductResource, "cache", option)
    editor = shop["editor"]
    for _ in range(2):
        response = get(editor, CACHED)
        assert response.status_code == 200 and "X-Cache" not in response
        assert response.content == get(editor, UNCACHED).content


def test_the_longest_lifetime_allowed_is_cached(shop, monkeypatch):
    """``MAX_SECONDS``, the bound arc.E014 sets, is an expiry Redis takes."""
    monkeypatch.setattr(
        CachedProductResource, "cache", {"stale_seconds": MAX_SECONDS, "gc_seconds": MAX_SECONDS}
    )
    editor = shop["editor"]
    assert get(editor, CACHED)["X-Cache"] == "MISS"
    response = get(editor, CACHED)
    assert response["X-Cache"] == "HIT"
    assert response.content == get(editor, UNCACHED).content


def test_an_entry_lives_gc_seconds_from_when_it_was_computed(shop):
    """``gc_seconds`` counts from when the answer was computed (docs/decisions.md): the
    entry's Redis expiry is ``gc_seconds``, not ``stale_seconds + gc_seconds`` as arc's
    ``gcTime`` would make it."""
    policy = cached_policy_for(CachedProductResource)
    assert (policy.stale_seconds, policy.gc_seconds) == (30, 300)
    assert get(shop["editor"], CACHED)["X-Cache"] == "MISS"
    client = redis_py.Redis.from_url(REDIS_URL)
    (entry_key,) = client.keys(redis_alias.make_key("redis", "arc:qc:e:") + "*")
    expires_in = client.pttl(entry_key)
    client.close()
    assert (policy.gc_seconds - 10) * 1000 < expires_in <= policy.gc_seconds * 1000


def test_an_entry_written_late_expires_gc_seconds_after_it_was_computed(shop, monkeypatch):
    """A route that took long (here: the store's clock 100 s past the computation's) stores
    its entry for what is left of ``gc_seconds``, not for ``gc_seconds`` from the write."""
    import types

    from django_arc.querycache import store as qc_store

    late = types.SimpleNamespace(time=lambda: time.time() + 100)
    monkeypatch.setattr(qc_store, "time", late)
    assert get(shop["editor"], CACHED)["X-Cache"] == "MISS"
    client = redis_py.Redis.from_url(REDIS_URL)
    (entry_key,) = client.keys(redis_alias.make_key("redis", "arc:qc:e:") + "*")
    expires_in = client.pttl(entry_key)
    client.close()
    assert 190 * 1000 < expires_in <= 200 * 1000  # gc_seconds 300, less the 100 s


def test_an_entry_outlives_its_stale_seconds_when_gc_seconds_is_shorter(shop, monkeypatch):
    """``gc_seconds`` below ``stale_seconds`` (arc.E014 refuses it, but checks do not run
    under a WSGI server) is read as ``stale_seconds``: the entry is kept as long as it may
    be served, not dropped while still fresh."""
    monkeypatch.setattr(CachedProductResource, "cache", {"stale_seconds": 120, "gc_seconds": 10})
    assert get(shop["editor"], CACHED)["X-Cache"] == "MISS"
    client = redis_py.Redis.from_url(REDIS_URL)
    (entry_key,) = client.keys(redis_alias.make_key("redis", "arc:qc:e:") + "*")
    expires_in = client.pttl(entry_key)
    client.close()
    assert 110 * 1000 < expires_in <= 120 * 1000


def test_a_resource_left_at_none_follows_enabled_and_a_new_cache_value_is_read(shop, monkeypatch):
    """``cache = None`` follows ``ARC["CACHE"]["ENABLED"]`` (off unless set); a resource's
    ``cache`` set to another value after its policy was worked out is read again."""
    from tests.testapp.feature_resources import UncachedProductResource

    editor = shop["editor"]
    monkeypatch.setattr(UncachedProductResource, "cache", None)
    for _ in range(2):
        assert "X-Cache" not in get(editor, UNCACHED)  # ENABLED is not set: off
    enabled = arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30, "ENABLED": True})
    with override_settings(ARC=enabled):
        assert get(editor, UNCACHED)["X-Cache"] == "MISS"
        assert get(editor, UNCACHED)["X-Cache"] == "HIT"
    assert get(editor, CACHED)["X-Cache"] == "MISS"  # its policy is worked out
    monkeypatch.setattr(CachedProductResource, "cache", False)
    response = get(editor, CACHED)
    assert response.status_code == 200 and "X-Cache" not in response


def test_without_a_django_redis_alias_nothing_is_cached(shop):
    with override_settings(ARC=arc_with(CACHE={"ALIAS": "default"})):
        response = get(shop["editor"], CACHED)
        assert response.status_code == 200 and "X-Cache" not in response


def written_before_the_tokens_are_read(shop):
    """``QueryCacheStore.read`` for a MISS that a concurrent request's write and bump (the
    first organization's products renamed "Concurrent") commit just before, in a thread of
    its own: after the request's first query, before its version tokens are read."""
    from django.db import connections

    from django_arc.querycache import store as qc_store

    read = qc_store.QueryCacheStore.read

    def write_first(self, key, keys):
        def write():
            Product.objects.filter(organization=shop["a"]).update(name="Concurrent")
            invalidate(Product)
            connections.close_all()

        thread = threading.Thread(target=write)
        thread.start()
        thread.join()
        return read(self, key, keys)

    return write_first


@pytest.mark.parametrize("level", ["REPEATABLE_READ", "SERIALIZABLE", "READ_COMMITTED"])
def test_a_miss_read_in_an_older_snapshot_than_the_versions_is_not_stored(shop, monkeypatch, level):
    """``ATOMIC_REQUESTS`` at ``REPEATABLE READ`` or ``SERIALIZABLE``: the request's
    transaction takes its snapshot at its first query (authentication, the scope), before the
    version tokens are read. A write committed and bumped in between is in the tokens but not
    in the rows the route then reads: that answer must not be stored under those tokens (the
    next read would be a stale HIT). At ``READ COMMITTED`` each query sees what was committed
    before it, and the answer is stored as always."""
    from psycopg import IsolationLevel

    from django_arc.querycache import store as qc_store

    if connection.vendor != "postgresql":
        pytest.skip("isolation levels are PostgreSQL's here (ARC_TEST_DB=postgres)")
    web = client_for(shop["editor"].user, HTTP_X_ORGANIZATION_ID=str(shop["a"].pk))
    write_first = written_before_the_tokens_are_read(shop)

    settings_dict = connection.settings_dict
    monkeypatch.setitem(settings_dict, "ATOMIC_REQUESTS", True)
    monkeypatch.setitem(
        settings_dict,
        "OPTIONS",
        {**settings_dict["OPTIONS"], "isolation_level": IsolationLevel[level]},
    )
    connection.close()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(qc_store.QueryCacheStore, "read", write_first)
            first = web.get(CACHED)
        assert first["X-Cache"] == "MISS"
        again = web.get(CACHED)
        assert again.content == web.get(UNCACHED).content
        assert {row["name"] for row in again.json()["docs"]} == {"Concurrent"}
        stored = level == "READ_COMMITTED"
        assert again["X-Cache"] == ("HIT" if stored else "MISS")
    finally:
        connection.close()


def test_a_miss_read_outside_a_transaction_is_stored_at_any_level(shop, monkeypatch):
    """Without ``ATOMIC_REQUESTS`` each query of the route is a transaction of its own,
    started after the version tokens were read, whatever the isolation level: the answer
    is stored (a ``REPEATABLE READ`` option alone is no older snapshot)."""
    from psycopg import IsolationLevel

    if connection.vendor != "postgresql":
        pytest.skip("isolation levels are PostgreSQL's here (ARC_TEST_DB=postgres)")
    web = client_for(shop["editor"].user, HTTP_X_ORGANIZATION_ID=str(shop["a"].pk))
    settings_dict = connection.settings_dict
    monkeypatch.setitem(settings_dict, "ATOMIC_REQUESTS", False)
    monkeypatch.setitem(
        settings_dict,
        "OPTIONS",
        {**settings_dict["OPTIONS"], "isolation_level": IsolationLevel.REPEATABLE_READ},
    )
    connection.close()
    try:
        assert web.get(CACHED)["X-Cache"] == "MISS"
        assert web.get(CACHED)["X-Cache"] == "HIT"
    finally:
        connection.close()


def test_a_miss_read_at_the_servers_default_snapshot_level_is_not_stored(shop, monkeypatch):
    """As above, with ``REPEATABLE READ`` the server's default (``default_transaction_isolation``
    set in postgresql.conf, by ``ALTER ROLE``/``ALTER DATABASE`` or in ``OPTIONS["options"]``)
    rather than Django's ``isolation_level`` option: Django then takes the level for
    ``READ COMMITTED``, but the request's transaction reads one snapshot all the same."""
    from django_arc.querycache import store as qc_store

    if connection.vendor != "postgresql":
        pytest.skip("isolation levels are PostgreSQL's here (ARC_TEST_DB=postgres)")
    web = client_for(shop["editor"].user, HTTP_X_ORGANIZATION_ID=str(shop["a"].pk))
    write_first = written_before_the_tokens_are_read(shop)

    settings_dict = connection.settings_dict
    monkeypatch.setitem(settings_dict, "ATOMIC_REQUESTS", True)
    options = {"options": "-c default_transaction_isolation=repeatable\\ read"}
    monkeypatch.setitem(settings_dict, "OPTIONS", {**settings_dict["OPTIONS"], **options})
    connection.close()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(qc_store.QueryCacheStore, "read", write_first)
            assert web.get(CACHED)["X-Cache"] == "MISS"
        again = web.get(CACHED)
        assert {row["name"] for row in again.json()["docs"]} == {"Concurrent"}
        assert again["X-Cache"] == "MISS"
    finally:
        connection.close()


@pytest.mark.parametrize("store", ["cache", "database"])
def test_a_keyed_write_whose_answer_fails_to_be_kept_leaves_the_cache_true(
    shop, settings, redis_cache, store
):
    """A keyed write whose answer cannot be kept (a streamed answer failing as it is read):
    the request answers 500 and its writes are rolled back with the request's transaction,
    so the cached list, whether served again or read anew, is the uncached one, without the
    writes. (On the ``cache`` store the writes used to be committed by then, and this pinned
    that they retired the entries they made stale.) On the ``database`` store the record
    shares the request's transaction, so nothing is bumped and the list stays a HIT."""
    from django.http import StreamingHttpResponse

    from django_arc.sites import _all_sites

    def rows():
        yield b"name\n"
        raise RuntimeError("the export broke off")

    class ExportingProductResource(Resource):
        model = Product
        name = f"{store}-exporting-products"
        presets = [presets.MultiTenant()]
        permissions = {"list": P.require_org_membership()}
        idempotent = True

        @route("POST", "export", permissions=P.require_org_role("admin"))
        def export(self, request, view):
            view.get_queryset().update(name="Exported")
            return StreamingHttpResponse(rows(), content_type="text/csv")

    site = ResourceSite(name=f"{store}-exporting")
    site.register(ExportingProductResource)
    stores = {
        "cache": {"STORE": "cache", "ALIAS": "redis", "NAMESPACE": "", "TTL_SECONDS": 60},
        "database": {"STORE": "database", "TTL_SECONDS": 60},
    }
    arc_settings = arc_with(
        CACHE={"ALIAS": "redis", "STALE_SECONDS": 30}, IDEMPOTENCY=stores[store]
    )
    editor, admin = shop["editor"], shop["admin"]
    admin.raise_request_exception = False
    try:
        with override_settings(ARC=arc_settings), site_mounted(settings, "x", site):
            get(editor, CACHED)
            assert get(editor, CACHED)["X-Cache"] == "HIT"
            exported = admin.post(
                f"/x/{store}-exporting-products/export/", HTTP_IDEMPOTENCY_KEY="e-1"
            )
            assert exported.status_code == 500
            after = same_as_uncached(editor)
            if store == "database":
                assert after["X-Cache"] == "HIT", after.content
    finally:
        _all_sites.remove(site)
    assert "Exported" not in {d["name"] for d in after.json()["docs"]}
    assert not Product.objects.filter(name="Exported").exists()


@pytest.mark.parametrize("store", ["database", "cache"])
def test_a_keyed_write_to_a_cached_resource_invalidates_once_and_its_replay_keeps_the_entry(
    shop, settings, store
):
    """The example's products take keys and are cached. A keyed write's answer is stored and
    its commit bumps the versions (the next read is a MISS with the new row); its replay runs
    nothing, so it bumps nothing (the next read is a HIT) and adds no event; the same key
    from the other tenant runs as its own request and invalidates only what it wrote."""
    from django_arc.outbox import OutboxEvent
    from django_arc.sites import _all_sites

    class KeyedCachedProductResource(Resource):
        model = Product
        name = "keyed-cached-products"
        fields = ["id", "name", "price", "organization"]
        read_only_fields = ["id", "organization"]
        sort_fields = ["name"]
        presets = [presets.MultiTenant()]
        permissions = {
            "list": P.require_org_membership(),
            "update": P.require_org_role("admin", "editor"),
        }
        idempotent = True
        cache = {"stale_seconds": 30}

    site = ResourceSite(name="keyed-cached")
    site.register(KeyedCachedProductResource)
    idempotency = {"STORE": store, "ALIAS": "redis", "NAMESPACE": "", "TTL_SECONDS": 60}
    arc_settings = arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30}, IDEMPOTENCY=idempotency)
    editor, admin_b = shop["editor"], shop["admin_b"]
    listing = "/k/keyed-cached-products/?sort=name&limit=50"
    row = Product.objects.filter(organization=shop["a"], name="A0").get()
    row_b = Product.objects.filter(organization=shop["b"], name="B0").get()
    try:
        with override_settings(ARC=arc_settings), site_mounted(settings, "k", site):
            assert [editor.get(listing)["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]
            assert [admin_b.get(listing)["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]
            events = OutboxEvent.objects.count()

            def patch(client, pk):
                return client.patch(
                    f"/k/keyed-cached-products/{pk}/",
                    {"name": "Renamed"},
                    content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY="rename-1",
                )

            first = patch(editor, row.pk)
            assert first.status_code == 200, first.content
            assert OutboxEvent.objects.count() == events + 1
            after = editor.get(listing)
            assert after["X-Cache"] == "MISS"
            assert "Renamed" in {d["name"] for d in after.json()["docs"]}

            replay = patch(editor, row.pk)
            assert replay["X-Idempotency-Replayed"] == "true"
            assert replay.content == first.content
            assert OutboxEvent.objects.count() == events + 1
            again = editor.get(listing)
            assert again["X-Cache"] == "HIT" and again.content == after.content

            other = patch(admin_b, row_b.pk)  # the same raw key, another tenant's caller
            assert other.status_code == 200 and "X-Idempotency-Replayed" not in other
            assert OutboxEvent.objects.count() == events + 2
            b_after = admin_b.get(listing)
            assert b_after["X-Cache"] == "MISS"
            names_b = {d["name"] for d in b_after.json()["docs"]}
            assert "Renamed" in names_b and all(
                d["organization"] == shop["b"].pk for d in b_after.json()["docs"]
            )
    finally:
        _all_sites.remove(site)
    assert Product.objects.filter(name="Renamed").count() == 2


def test_cost8_a_hit_reads_the_caches_setting_once_per_process(shop, monkeypatch):
    """Whether the cache's alias is a django-redis one was asked of ``settings.CACHES`` on
    every cacheable read (about 3 k instructions of a HIT's, through Django's lazy
    settings); it is answered once per alias until ``CACHES`` changes, and a change is
    seen at once both ways (another backend: answered uncached; back: a HIT again)."""
    from django.conf import settings as django_settings

    editor = shop["editor"]
    assert get(editor, CACHED)["X-Cache"] == "MISS"
    read = []

    class CountedSettings:
        def __getattr__(self, name):
            if name == "CACHES":
                read.append(name)
            return getattr(django_settings, name)

    monkeypatch.setattr(redis_alias, "settings", CountedSettings())
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    assert read == []
    monkeypatch.undo()
    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    with override_settings(CACHES={**django_settings.CACHES, "redis": locmem}):
        uncached = get(editor, CACHED)
        assert uncached.status_code == 200 and "X-Cache" not in uncached
    assert get(editor, CACHED)["X-Cache"] == "HIT"


def test_cost8_the_allowed_methods_are_worked_out_once_per_route(shop, monkeypatch):
    """DRF works out every response's ``Allow`` header by asking the view for a handler of
    each HTTP method, on every request, a cache HIT's included; django-arc's ViewSets ask
    once per class and route (the handlers an instance holds). Each route still answers
    its own methods: a list's are not a row's, and both are the uncached twin's."""
    from rest_framework.views import APIView

    asked = []
    original = APIView._allowed_methods

    def counted(view):
        asked.append(type(view))
        return original(view)

    monkeypatch.setattr(APIView, "_allowed_methods", counted)
    editor = shop["editor"]
    row = f"{shop['dear'].pk}/"
    assert get(editor, CACHED)["X-Cache"] == "MISS"
    assert get(editor, f"{CACHED}{row}")["X-Cache"] == "MISS"
    worked_out = len(asked)
    hit, row_hit = get(editor, CACHED), get(editor, f"{CACHED}{row}")
    assert hit["X-Cache"] == row_hit["X-Cache"] == "HIT"
    assert len(asked) == worked_out
    assert hit["Allow"] == get(editor, UNCACHED)["Allow"]
    assert row_hit["Allow"] == get(editor, f"{UNCACHED}{row}")["Allow"]
    assert hit["Allow"] != row_hit["Allow"] and "OPTIONS" not in hit["Allow"]
