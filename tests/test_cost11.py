"""A cache HIT's Redis work outside the query cache (issue #17, cost11): the commands
``redis_alias`` packs itself, and the cache backend it keeps out of Django's ``caches``."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import caches, close_caches
from django.test import override_settings
from django_redis.cache import RedisCache
from redis import Redis
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, redis_alias
from django_arc import permissions as P
from tests.factories import AuthorFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import REDIS_URL, caches_with, command_names
from tests.testapp.models import Author

_no_redis = pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")


def needs_redis(test):
    return pytest.mark.redis(_no_redis(test))


@needs_redis
@pytest.mark.parametrize(
    "args",
    [
        ("MGET", "arc:qc:e:one", "arc:qc:v:two"),
        ("GET", "clé-ünïcode"),
        ("SET", "k", b"\x00\r\n binary"),
        ("DEL", "a", "b", "c"),
    ],
)
def test_a_hot_command_is_packed_as_redis_py_packs_it(args):
    """The bytes ``redis_alias`` writes for a command of text and bytes are the bytes
    redis-py's own packer writes (the same encoding of the text)."""
    connection = Redis.from_url(REDIS_URL).connection_pool.make_connection()
    packed = redis_alias._packed(args, connection.encoder)
    assert packed is not None
    assert b"".join(packed) == b"".join(connection.pack_command(*args))


@needs_redis
@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "0" * 40, 1, "k"),  # a number
        ("SCRIPT LOAD", "return 1"),  # a name of two words
        ("SET", "k", b"x" * 7000),  # past the buffer redis-py sends on its own
        ("SET", "k", 1.5),
    ],
)
def test_any_other_command_is_left_to_redis_py(args):
    connection = Redis.from_url(REDIS_URL).connection_pool.make_connection()
    assert redis_alias._packed(args, connection.encoder) is None


@needs_redis
def test_a_packed_command_reaches_the_server_and_answers_as_redis_py(monkeypatch):
    """A hot command leaves through the connection's ``send_packed_command`` as one write
    (redis-py's error and disconnect handling around it), and answers what redis-py's own
    call answers."""
    from redis.connection import AbstractConnection

    redis = Redis.from_url(REDIS_URL)
    key = f"arc:test:cost11:{threading.get_ident()}"
    redis.set(key, b"v")
    writes: list[list[str]] = []
    send_packed = AbstractConnection.send_packed_command

    def recorded(connection, command, *args, **kwargs):
        writes.append(command_names(command))
        return send_packed(connection, command, *args, **kwargs)

    try:
        redis_alias.command(redis, "ECHO", "warm")  # the thread's connection, connected
        monkeypatch.setattr(AbstractConnection, "send_packed_command", recorded)
        monkeypatch.setattr(AbstractConnection, "send_command", None)  # never reached
        answer = redis_alias.command(redis, "MGET", key, f"{key}:missing")
    finally:
        monkeypatch.undo()
        redis.delete(key)
    assert answer == [b"v", None]
    assert writes == [["MGET"]]


@needs_redis
def test_arcs_backend_leaves_djangos_caches_alone():
    """django-arc's commands take the alias's backend of their own (:func:`backend`): the
    thread's ``caches[alias]`` is never built, so Django's ``close_caches`` at the end of
    every request has no django-redis ``close()`` to run for it."""
    with override_settings(CACHES=caches_with("redis", REDIS_URL)):
        closed: list[RedisCache] = []
        own = redis_alias.backend("redis")
        assert isinstance(own, RedisCache)
        assert redis_alias.Alias("redis").key("k") == own.make_key("k")
        assert redis_alias.backend("redis") is own  # kept for the thread
        original = RedisCache.close
        RedisCache.close = lambda self, **kw: closed.append(self)  # type: ignore[method-assign]
        try:
            close_caches()  # Django's receiver of request_finished
        finally:
            RedisCache.close = original  # type: ignore[method-assign]
        assert closed == []
        assert not hasattr(caches._connections, "redis")


@needs_redis
def test_an_alias_whose_close_disconnects_is_taken_from_caches():
    """django-redis's ``CLOSE_CONNECTION`` asks for the alias's connections to be closed at
    the end of each request: that alias is Django's ``caches[alias]``, closed as before."""
    config = caches_with("redis", REDIS_URL)
    config["redis"]["OPTIONS"] = {**config["redis"]["OPTIONS"], "CLOSE_CONNECTION": True}
    with override_settings(CACHES=config):
        assert redis_alias.backend("redis") is caches["redis"]
    with override_settings(
        CACHES=caches_with("redis", REDIS_URL), DJANGO_REDIS_CLOSE_CONNECTION=True
    ):
        assert redis_alias.backend("redis") is caches["redis"]


@needs_redis
def test_the_backend_follows_caches_changes():
    """A changed ``CACHES`` (another ``KEY_PREFIX``) is read again: keys carry the new prefix."""
    with override_settings(CACHES=caches_with("redis", REDIS_URL, prefix="p-one")):
        first = redis_alias.make_key("redis", "k")
    with override_settings(CACHES=caches_with("redis", REDIS_URL, prefix="p-two")):
        second = redis_alias.make_key("redis", "k")
    assert first.startswith("p-one:") and second.startswith("p-two:")


@needs_redis
def test_an_alias_caches_does_not_name_is_djangos_error():
    with pytest.raises(redis_alias.AliasUnusable, match="doesn't exist"):
        redis_alias.Alias("no-such-alias").client()


@needs_redis
def test_each_thread_builds_its_own_backend():
    with override_settings(CACHES=caches_with("redis", REDIS_URL)):
        mine = redis_alias.backend("redis")
        theirs: list[object] = []
        thread = threading.Thread(target=lambda: theirs.append(redis_alias.backend("redis")))
        thread.start()
        thread.join()
        assert theirs and theirs[0] is not mine
        assert theirs[0].make_key("k") == mine.make_key("k")


# -- parsers ---------------------------------------------------------------------------------

BUILT: list[str] = []


class CountedJSONParser(JSONParser):
    """A project's JSON parser (DRF's underneath) that notes each instance built."""

    def __init__(self) -> None:
        BUILT.append(type(self).__name__)


parsers_site = ResourceSite(name="cost11-parsers")


@parsers_site.register
class CountedParserAuthorResource(Resource):
    model = Author
    name = "counted-parser-authors"
    fields = ["id", "name"]
    permissions = {k: P.allow_public() for k in ("list", "get", "create")}
    parser_classes = [CountedJSONParser]


@pytest.mark.django_db
def test_a_request_builds_one_parser_per_class_under_the_bounds(settings):
    """DRF built each parser class's instance and django-arc then built its bounded class's
    in its place, on every request, a GET's too (two instances per class); one now, of the
    bounded class, and a body still gets the bounds and the project's parse()."""
    AuthorFactory(name="Ann")
    api = client_for(None)
    with site_mounted(settings, "p11", parsers_site):
        BUILT.clear()
        assert api.get("/p11/counted-parser-authors/").status_code == 200
        assert BUILT == ["CountedJSONParser"]
        deep = "[" * 1000 + "]" * 1000
        answer = api.generic("POST", "/p11/counted-parser-authors/", deep, "application/json")
        assert_error(answer, 400, "VALIDATION_ERROR")
        assert answer.json()["error"] == "JSON parse error - nested deeper than 128 levels"
        created = api.post("/p11/counted-parser-authors/", {"name": "Bea"}, format="json")
        assert created.status_code == 201, created.content


class ProjectParsers(APIView):
    """A project's ``get_parsers`` that django-arc's reaches through ``super()``: still asked."""

    def get_parsers(self):
        BUILT.append("project")
        return super().get_parsers()


def test_a_projects_get_parsers_under_django_arcs_is_still_asked():
    from django_arc.generics import ResourceGenericViewSet
    from django_arc.parsers import ArcJSONParser

    mixed = type(
        "Mixed",
        (ResourceGenericViewSet, ProjectParsers),
        {"parser_classes": [CountedJSONParser]},
    )
    BUILT.clear()
    parsers = mixed().get_parsers()
    assert BUILT[0] == "project"
    assert [type(p).__name__ for p in parsers] == ["CountedJSONParser"]
    assert isinstance(parsers[0], ArcJSONParser)  # under the bounds all the same


# -- negotiation -----------------------------------------------------------------------------


def test_a_remembered_negotiation_reads_the_django_request_directly(monkeypatch):
    """The remembered answer is found from the Django request's ``META``: DRF's request's
    ``__getattr__`` (reached only after Python's own lookup failed) is not asked."""
    from django.test import RequestFactory
    from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
    from rest_framework.request import Request

    from django_arc.negotiation import ArcContentNegotiation

    renderers = [JSONRenderer(), BrowsableAPIRenderer()]
    negotiation = ArcContentNegotiation()
    request = Request(RequestFactory().get("/x/", HTTP_ACCEPT="text/html"))
    first = negotiation.select_renderer(request, renderers)
    asked: list[str] = []
    proxy = Request.__getattr__

    def counted(self, name):
        asked.append(name)
        return proxy(self, name)

    monkeypatch.setattr(Request, "__getattr__", counted)
    again = negotiation.select_renderer(request, renderers)
    assert asked == []
    assert again == first and isinstance(again[0], BrowsableAPIRenderer)
    assert again[1] == "text/html"
