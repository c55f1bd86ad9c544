"""arc.E008's transport part and arc.W011 judge the classes a project really runs: a
transport given as a ``functools.partial`` or a factory (read, never called: no transport
is built, no broker connected), and the renderers of every ViewSet that serves a resource
(a ViewSet subclass's ``renderer_classes``, a resource mounted by hand), not the defaults
alone (fix-seen4b)."""

from __future__ import annotations

import functools
import sys
import types

import pytest
from django.urls import include, path
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.routers import SimpleRouter

from django_arc import Resource, sites
from django_arc import permissions as P
from django_arc.checks import check_rest_framework_installed, check_settings
from django_arc.events.transports import (
    MemoryTransport,
    RedisPubSubTransport,
    RedisStreamsTransport,
)
from tests.testapp.models import Article

URL = "redis://127.0.0.1:1/0"
built: list[str] = []


def streams_factory(**options):
    """A project's factory building arc's Redis Streams transport (a module global)."""
    built.append("streams")
    return RedisStreamsTransport(**options)


def pubsub_factory_importing_inside(**options):
    """A factory importing the transport where it builds it."""
    from django_arc.events import transports

    built.append("pubsub")
    return transports.RedisPubSubTransport(**options)


def memory_factory(**options):
    """A factory of a transport that needs no redis-py."""
    built.append("memory")
    return MemoryTransport()


class WrappingTransportFactory:
    """A class factory whose ``__init__`` builds arc's transport (a wrapper)."""

    def __init__(self, **options):
        built.append("wrapper")
        self.inner = RedisStreamsTransport(**options)


def _checked(settings, transport, options=None):
    settings.ARC = {"EVENTS": {"TRANSPORT": transport, **({"OPTIONS": options} if options else {})}}
    return [(m.id, m.msg) for m in check_settings() if m.id in ("arc.E008", "arc.W012")]


def _e008(settings, transport, options=None):
    return [msg for id_, msg in _checked(settings, transport, options) if id_ == "arc.E008"]


class ProjectStreamsTransport(RedisStreamsTransport):
    """A project's subclass of arc's Redis Streams transport."""


def debug_or_streams_factory(**options):
    """A factory naming arc's Redis transport only in a branch it does not take here."""
    from django.conf import settings

    built.append("debug-or-streams")
    if not settings.DEBUG and options.get("url"):
        return RedisStreamsTransport(**options)
    return MemoryTransport()


@pytest.mark.parametrize(
    ("transport", "options"),
    [
        (RedisStreamsTransport, {"url": URL}),
        (ProjectStreamsTransport, {"url": URL}),
        (functools.partial(RedisStreamsTransport, url=URL), None),
        (functools.partial(functools.partial(RedisPubSubTransport), url=URL), None),
    ],
    ids=["class", "subclass", "partial", "partial-of-partial"],
)
def test_a_redis_transport_class_or_partial_without_redis_py_is_arc_e008(
    settings, monkeypatch, transport, options
):
    """E008 saw arc's Redis transports only as the class itself: given as a
    ``functools.partial``, ``check`` passed without redis-py, and the first publish raised
    ``ModuleNotFoundError`` (the relay stopped, the outbox-off publish lost the event). A
    transport that certainly is one (the class, a subclass, a ``partial`` of either) is an
    Error; nothing is built by the check."""
    built.clear()
    assert _checked(settings, transport, options) == []
    monkeypatch.setitem(sys.modules, "redis", None)
    found = _checked(settings, transport, options)
    assert [id_ for id_, _ in found] == ["arc.E008"], found
    assert "django-arc[redis]" in found[0][1]
    assert built == []


@pytest.mark.parametrize(
    ("transport", "options"),
    [
        ("tests.test_checks_runtime_classes.streams_factory", {"url": URL}),
        ("tests.test_checks_runtime_classes.pubsub_factory_importing_inside", {"url": URL}),
        ("tests.test_checks_runtime_classes.WrappingTransportFactory", {"url": URL}),
        ("tests.test_checks_runtime_classes.debug_or_streams_factory", {"url": URL}),
    ],
    ids=["factory", "factory-importing", "wrapping-class", "factory-with-a-branch"],
)
def test_a_factory_whose_code_names_a_redis_transport_without_redis_py_is_arc_w012(
    settings, monkeypatch, transport, options
):
    """A factory (a function, a wrapping class) is read, never called, and its code may
    name a Redis transport in a branch it never takes (``debug_or_streams_factory`` builds
    a ``MemoryTransport`` here): arc.E008 failed ``manage.py check`` on that guess, where
    arc.W010's like reading of a middleware is a warning. It is arc.W012, a warning that
    says redis-py is missing, and no Error."""
    built.clear()
    assert _checked(settings, transport, options) == []
    monkeypatch.setitem(sys.modules, "redis", None)
    found = _checked(settings, transport, options)
    assert [id_ for id_, _ in found] == ["arc.W012"], found
    assert "django-arc[redis]" in found[0][1]
    assert built == []


def test_a_factory_of_another_transport_without_redis_py_passes(settings, monkeypatch):
    built.clear()
    monkeypatch.setitem(sys.modules, "redis", None)
    assert _e008(settings, "tests.test_checks_runtime_classes.memory_factory") == []
    assert _e008(settings, functools.partial(MemoryTransport)) == []
    assert built == []


class SelfBuildingStreams(RedisStreamsTransport):
    """A ready Redis transport that is its own factory: ``build_transport`` calls what is
    callable, and this returns itself."""

    def __call__(self, **options):
        return self


#: built in a settings module with a client of the project's own (no redis-py imported)
SELF_BUILDING = SelfBuildingStreams(client=object())


def test_a_ready_redis_transport_that_is_callable_without_redis_py_is_arc_e008(
    settings, monkeypatch
):
    """A callable is read as a factory's code; an instance has none, so a ready Redis
    transport that is also callable passed without redis-py, unlike a ready one that is
    not (42d7d84 tells a Redis transport's instance first, callable or not: a change
    its message did not name, pinned here). Its publish needs redis-py as any other's."""
    monkeypatch.setitem(sys.modules, "redis", None)
    for transport in ("tests.test_checks_runtime_classes.SELF_BUILDING", SELF_BUILDING):
        messages = _e008(settings, transport)
        assert any("django-arc[redis]" in m for m in messages), messages


# -- arc.W011 -----------------------------------------------------------------------------


class JsonOnlyArticles(Resource):
    model = Article
    name = "w011-json-only"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    renderer_classes = [JSONRenderer]


class BrowsableArticles(Resource):
    model = Article
    name = "w011-browsable"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]


class PlainArticles(Resource):
    model = Article
    name = "w011-plain"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}


def _urlconf(*viewsets):
    router = SimpleRouter()
    for index, viewset in enumerate(viewsets):
        router.register(f"r{index}", viewset, basename=f"w011-{index}")
    urlconf = types.ModuleType("w011_urls")  # hashable, as get_resolver's cache needs
    urlconf.urlpatterns = [path("api/", include(router.urls))]
    return urlconf


@pytest.fixture
def without_rest_framework(settings, monkeypatch):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    monkeypatch.setattr(sites, "_all_sites", [])
    return settings


def _w011(settings, urlconf, *site_resources):
    sites._all_sites[:] = [types.SimpleNamespace(resources=list(site_resources))]
    settings.ROOT_URLCONF = urlconf
    return [w.id for w in check_rest_framework_installed()]


def test_w011_is_silent_when_every_resource_renders_json_only(without_rest_framework):
    """Every resource's ``renderer_classes`` JSON only: no view renders DRF's templates,
    whatever ``DEFAULT_RENDERER_CLASSES`` says (DRF's default names the browsable API).
    W011 warned all the same, reading the defaults as if some view used them."""
    settings = without_rest_framework
    urlconf = _urlconf(JsonOnlyArticles.as_viewset())
    assert _w011(settings, urlconf, JsonOnlyArticles) == []
    # a resource left on the defaults still warns
    assert _w011(settings, _urlconf(PlainArticles.as_viewset()), PlainArticles) == ["arc.W011"]


def test_w011_sees_the_renderers_of_a_viewset_subclass_routed_by_hand(without_rest_framework):
    """A subclass of a resource's ViewSet setting ``renderer_classes`` (docs/resources.md:
    subclass ``as_viewset()`` and route it by hand) renders what it names: W011 read the
    resource's ``renderer_classes`` and the defaults only, so the browsable API a subclass
    adds answered every browser 500 with ``check`` silent."""
    settings = without_rest_framework
    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    }
    browsable = type(
        "BrowsableSubclass",
        (JsonOnlyArticles.as_viewset(),),
        {"renderer_classes": [JSONRenderer, BrowsableAPIRenderer]},
    )
    assert _w011(settings, _urlconf(JsonOnlyArticles.as_viewset()), JsonOnlyArticles) == []
    assert _w011(settings, _urlconf(browsable), JsonOnlyArticles) == ["arc.W011"]


def test_w011_sees_a_resource_mounted_by_hand_without_a_site(without_rest_framework):
    """A resource routed by hand (``as_viewset()`` in the project's router, no site) is
    served all the same: its browsable renderer was not seen."""
    settings = without_rest_framework
    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    }
    assert _w011(settings, _urlconf(JsonOnlyArticles.as_viewset())) == []
    assert _w011(settings, _urlconf(BrowsableArticles.as_viewset())) == ["arc.W011"]


def _labelled_partial():
    """A partial of a partial Python does not flatten (the inner one carries an attribute,
    as a project's tagged partial may)."""
    inner = functools.partial(RedisStreamsTransport)
    inner.label = "events"
    return functools.partial(inner, url=URL)


def opaque_factory(**options):
    """A factory whose signature cannot be read (``inspect.signature`` raises TypeError)."""
    built.append("opaque")
    return RedisStreamsTransport(**options)


opaque_factory.__signature__ = "unreadable"


@pytest.mark.parametrize(
    "transport, expected",
    [
        (_labelled_partial, "arc.E008"),
        (lambda: "tests.test_checks_runtime_classes.opaque_factory", "arc.W012"),
        (lambda: RedisStreamsTransport(url=URL), "arc.E008"),  # built lazily: no broker
    ],
    ids=["partial-of-a-tagged-partial", "unreadable-signature", "ready-instance"],
)
def test_a_redis_transport_seen_past_every_wrapper_without_redis_py_is_reported(
    settings, monkeypatch, transport, expected
):
    """The check finds arc's Redis transport through every layer of partials (not the first
    only: arc.E008), in a factory whose signature cannot be read (its OPTIONS unchecked,
    its code still read: arc.W012, a guess from code), and in a ready instance (which
    ignores OPTIONS: arc.E008): each undone passed every test (mutation round 6)."""
    transport = transport()
    built.clear()
    assert _checked(settings, transport, {"url": URL}) == []
    monkeypatch.setitem(sys.modules, "redis", None)
    found = _checked(settings, transport, {"url": URL})
    assert [id_ for id_, _ in found] == [expected], found
    assert "django-arc[redis]" in found[0][1]
    assert built == []


def test_w011_sees_the_renderers_of_a_viewset_subclass_action(without_rest_framework):
    """A DRF ``@action`` of a ViewSet subclass naming its own ``renderer_classes`` (a
    browsable page for one route) renders DRF's templates on that route: W011 reads the
    actions' renderers too (dropping that read passed every test, mutation round 6)."""
    from rest_framework.decorators import action
    from rest_framework.response import Response

    settings = without_rest_framework
    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    }

    def report(self, request, pk=None):
        return Response({})

    with_page = type(
        "WithBrowsableAction",
        (JsonOnlyArticles.as_viewset(),),
        {
            "report": action(detail=True, renderer_classes=[BrowsableAPIRenderer])(report),
            "__module__": __name__,
        },
    )
    assert _w011(settings, _urlconf(with_page), JsonOnlyArticles) == ["arc.W011"]


def test_w011_sees_a_site_resource_not_routed_by_root_urlconf(without_rest_framework):
    """A registered site served outside ``ROOT_URLCONF`` (a host's own URLconf,
    ``request.urlconf``) still serves its resources: W011 reads every site's ViewSets, not
    only the routes ``ROOT_URLCONF`` holds (reading the routes alone passed every test,
    mutation round 6)."""
    settings = without_rest_framework
    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    }
    assert _w011(settings, _urlconf(), JsonOnlyArticles) == []
    assert _w011(settings, _urlconf(), BrowsableArticles) == ["arc.W011"]


# -- fix-seen6b: transports built in __new__ or a metaclass, plugs the check cannot read --


class NewBuildsStreams:
    """A transport class whose ``__new__`` builds arc's Redis transport (its ``__init__``,
    which the check read, is ``object``'s)."""

    def __new__(cls, **options):
        built.append("new")
        return RedisStreamsTransport(**options)


class BuildsStreams(type):
    """A metaclass whose ``__call__`` (the class's construction) builds arc's transport."""

    def __call__(cls, **options):
        built.append("metaclass")
        return RedisStreamsTransport(**options)


class MetaclassBuiltStreams(metaclass=BuildsStreams):
    """Built by its metaclass: nothing of its own names the transport."""


class BaseWrapper:
    def __init__(self, **options):
        built.append("base")
        self.inner = RedisStreamsTransport(**options)


class InheritedWrapper(BaseWrapper):
    """Its ``__init__`` is its base's."""


class CallableFactory:
    """A factory object: calling the instance builds arc's transport."""

    def __call__(self, **options):
        built.append("callable")
        return RedisStreamsTransport(**options)


@pytest.mark.parametrize(
    "transport",
    [NewBuildsStreams, MetaclassBuiltStreams, InheritedWrapper, CallableFactory()],
    ids=["__new__", "metaclass-__call__", "inherited-__init__", "callable-instance"],
)
def test_a_transport_building_redis_in_new_a_metaclass_a_base_or_its_call_is_arc_w012(
    settings, monkeypatch, transport
):
    """W012 read a class's own ``__init__`` and ``__call__`` only: a class building arc's
    Redis transport in ``__new__``, in its metaclass's ``__call__`` or in an inherited
    ``__init__``, and a callable instance whose class's ``__call__`` builds it, passed
    ``check`` without redis-py (the first publish raised ``ModuleNotFoundError``)."""
    built.clear()
    assert _checked(settings, transport, {"url": URL}) == []
    monkeypatch.setitem(sys.modules, "redis", None)
    found = _checked(settings, transport, {"url": URL})
    assert [id_ for id_, _ in found] == ["arc.W012"], found
    assert "django-arc[redis]" in found[0][1]
    assert built == []


class ClassRaises:
    """A callable whose ``__class__`` raises (as a lazy proxy's may, building its target)."""

    def __call__(self, **options):
        return MemoryTransport()

    @property
    def __class__(self):
        raise RuntimeError("not built yet")


class WrappedRaises:
    """A callable whose ``__wrapped__`` raises (``inspect.signature`` unwraps it)."""

    def __call__(self, **options):
        return MemoryTransport()

    @property
    def __wrapped__(self):
        raise RuntimeError("no target")


class ReprRaises(WrappedRaises):
    def __repr__(self):
        raise RuntimeError("no repr either")


@pytest.mark.parametrize(
    "plug_class",
    [ClassRaises, WrappedRaises, ReprRaises],
    ids=["__class__", "__wrapped__", "__wrapped__-and-__repr__"],
)
@pytest.mark.parametrize("dotted", ["EVENTS.TRANSPORT", "ELEVATION_CHECK"])
def test_a_plug_the_check_cannot_read_is_arc_w013_not_a_traceback(settings, plug_class, dotted):
    """``manage.py check`` raised the plug's own exception (``isinstance`` asks
    ``__class__``, ``inspect.signature`` unwraps ``__wrapped__``): every deploy, ``migrate``
    and ``runserver`` a traceback. The plug is not checked, and the check says so: arc.W013,
    a warning (the plug may well work when called). Built in the test: pytest's collection
    reads the parameters' ``__class__`` too."""
    plug = plug_class()
    section, _, key = dotted.rpartition(".")
    settings.ARC = {section: {key: plug}} if section else {key: plug}
    found = [(m.id, m.level, m.msg) for m in check_settings() if m.id.startswith("arc.")]
    assert [(id_, level) for id_, level, _ in found] == [("arc.W013", 30)], found
    assert f"ARC['{dotted}']" in found[0][2]
    assert "RuntimeError" in found[0][2]


class WrongAndReprRaises:
    """A plug taking none of the arguments django-arc passes, whose ``__repr__`` raises."""

    def __call__(self):
        return True

    def __repr__(self):
        raise RuntimeError("no repr")


def test_a_wrong_plug_whose_repr_raises_is_arc_e008_not_w013(settings):
    """The arc.E008 message quoted the plug with ``{value!r}``: a wrong plug whose
    ``__repr__`` raises was reported as arc.W013 ("could not be read", a warning) instead
    of the error it is. It is quoted by its type, as arc.W013 quotes one."""
    settings.ARC = {"ELEVATION_CHECK": WrongAndReprRaises()}
    found = [(m.id, m.msg) for m in check_settings() if m.id.startswith("arc.")]
    assert [id_ for id_, _ in found] == ["arc.E008"], found
    assert "WrongAndReprRaises object>" in found[0][1]


def test_a_transport_whose_class_raises_is_built_at_run_time(settings):
    """Run time read the plug with ``isinstance`` too: the relay and every publish raised
    where calling the factory builds a working transport."""
    from django_arc.events.configured import build_transport

    settings.ARC = {"EVENTS": {"TRANSPORT": ClassRaises()}}
    assert issubclass(type(build_transport()), MemoryTransport)
