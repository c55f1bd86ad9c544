"""System checks (arc.E0xx) and the ResourceSite registry."""

import functools

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import include, path, reverse
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, arc, presets
from django_arc import fields as F
from django_arc.checks import check_resource, check_settings
from django_arc.middleware import ScopeMiddleware
from tests.testapp.models import Article, Author, Book, Dog, Gauge


def ids(errors):
    return sorted(e.id for e in errors)


def make(**attrs):
    attrs.setdefault("model", Book)
    attrs.setdefault("name", "checked")
    return type("Checked", (Resource,), attrs)()


def test_valid_resources_pass_manage_py_check():
    call_command("check")  # raises SystemCheckError on any arc.E error


@pytest.mark.parametrize(
    "attrs,error_id,needle",
    [
        ({"fields": ["id", "nonexistent"]}, "arc.E001", "nonexistent"),
        ({"read_only_fields": ["ghost"]}, "arc.E001", "ghost"),
        ({"filter_fields": {"ghost": ["eq"]}}, "arc.E002", "ghost"),
        ({"filter_fields": {"title": ["eq", "fuzzy"]}}, "arc.E003", "fuzzy"),
        ({"filter_fields": {"pages": ["contains"]}}, "arc.E003", "contains"),
        ({"filter_fields": {"is_available": ["gt"]}}, "arc.E003", "gt"),
        ({"filter_fields": {"title": "eq"}}, "arc.E003", "title"),
        ({"sort_fields": ["ghost"]}, "arc.E004", "ghost"),
        ({"default_sort": "-ghost"}, "arc.E004", "ghost"),
        # JSON orders differently on each database, and a cursor cannot page by it
        ({"model": Gauge, "sort_fields": ["labels"]}, "arc.E004", "JSON field 'labels'"),
        ({"model": Gauge, "default_sort": "-labels"}, "arc.E004", "JSON field 'labels'"),
        # one row per review: pages repeat a book that total counts once
        ({"sort_fields": ["reviews__body"]}, "arc.E004", "to-many"),
        ({"model": Author, "default_sort": "books__title"}, "arc.E004", "to-many"),
        ({"search_fields": ["pages"]}, "arc.E005", "pages"),
        ({"search_fields": ["ghost"]}, "arc.E005", "ghost"),
        ({"lookup_field": "title"}, "arc.E006", "unique"),
        ({"lookup_field": "ghost"}, "arc.E006", "ghost"),
        ({"field_permissions": {"title": "hidden"}}, "arc.E009", "title"),
        ({"field_permissions": {"ghost": F.hidden()}}, "arc.E009", "ghost"),
        # a lookup by a field the caller may not read is an oracle for its values
        ({"lookup_field": "isbn", "field_permissions": {"isbn": F.hidden()}}, "arc.E009", "isbn"),
        (
            {"lookup_field": "isbn", "field_permissions": {"isbn": F.visible_to("admin")}},
            "arc.E009",
            "looked up by",
        ),
        (
            {"lookup_field": "isbn", "field_permissions": {"isbn": F.redact_for("viewer")}},
            "arc.E009",
            "looked up by",
        ),
        (
            {
                "model": Article,
                "presets": [presets.SlugLookup()],
                "field_permissions": {"slug": F.visible_to("admin")},
            },
            "arc.E009",
            "looked up by",
        ),
        # rows are looked up by their primary key when ``lookup_field`` is "pk" (the
        # default): a read rule on the field it names is the same oracle
        ({"field_permissions": {"id": F.visible_to("admin")}}, "arc.E009", "looked up by"),
        (
            {"lookup_field": "id", "field_permissions": {"id": F.hidden()}},
            "arc.E009",
            "looked up by",
        ),
        # a multi-table child's pk (``animal_ptr``) holds its parent's ``id``: the same value
        (
            {"model": Dog, "fields": ["id", "name"], "field_permissions": {"id": F.hidden()}},
            "arc.E009",
            "looked up by",
        ),
        ({"permissions": {"list": 42}}, "arc.E010", "list"),
        ({"on_field_write_denied": "ignore"}, "arc.E008", "on_field_write_denied"),
    ],
)
def test_bad_resource_definitions_are_reported(attrs, error_id, needle):
    errors = check_resource(make(**attrs))
    assert error_id in ids(errors), errors
    assert any(needle in e.msg for e in errors if e.id == error_id)
    for error in errors:
        # the resource is named once, by the check framework, not again in the message
        assert str(error).startswith(f"Checked ('checked'): ({error.id}) ")
        assert str(error).count("Checked") == 1


def test_multitenant_unknown_field_is_reported():
    from django_arc import presets

    errors = check_resource(make(presets=[presets.MultiTenant(tenant_field="tenant")]))
    assert ids(errors) == ["arc.E011"]
    assert "tenant" in errors[0].msg


@pytest.mark.parametrize(
    "value,error_id,needle",
    [
        ({"NOPE": 1}, "arc.E007", "NOPE"),
        ({"OUTBOX": {"BATCHSIZE": 3}}, "arc.E007", "OUTBOX.BATCHSIZE"),
        ({"MAX_PAGE_SIZE": 0}, "arc.E008", "MAX_PAGE_SIZE"),
        ({"DEFAULT_PAGE_SIZE": "20"}, "arc.E008", "DEFAULT_PAGE_SIZE"),
        ({"ON_FIELD_WRITE_DENIED": "drop"}, "arc.E008", "ON_FIELD_WRITE_DENIED"),
        ({"MEMBERSHIP_RESOLVER": "no.such.module.fn"}, "arc.E008", "MEMBERSHIP_RESOLVER"),
        ({"EVENTS": "memory"}, "arc.E008", "EVENTS"),
    ],
)
def test_bad_settings_are_reported(settings, value, error_id, needle):
    settings.ARC = value
    errors = check_settings()
    assert error_id in ids(errors)
    assert any(needle in e.msg for e in errors)


def test_bad_setting_fails_manage_py_check(settings):
    settings.ARC = {"NOPE": 1}
    with pytest.raises(SystemCheckError, match="arc.E007"):
        call_command("check")


def test_settings_reload_on_override(settings):
    from django_arc.settings import arc_settings

    assert arc_settings.MAX_PAGE_SIZE == 100
    settings.ARC = {"MAX_PAGE_SIZE": 7}
    assert arc_settings.MAX_PAGE_SIZE == 7
    assert arc_settings.EVENTS["OUTBOX"] is True  # nested defaults merged


def test_duplicate_name_raises_improperly_configured_naming_it():
    site = ResourceSite(name="dupes")

    class A(Resource):
        model = Author
        name = "people"

    class B(Resource):
        model = Author
        name = "people"

    site.register(A)
    with pytest.raises(ImproperlyConfigured, match="people"):
        site.register(B)


def test_register_works_as_decorator_and_default_name():
    site = ResourceSite(name="deco")

    @site.register
    class AuthorRes(Resource):
        model = Author

    assert AuthorRes.__name__ == "AuthorRes"
    assert site.is_registered("authors")


def test_register_rejects_non_resources():
    with pytest.raises(ImproperlyConfigured):
        ResourceSite(name="bad").register(Author)


def test_autodiscover_registered_example_and_test_resources():
    names = {r.name for r in arc.resources}
    assert {"products", "orders", "books", "isbn-books", "authors"} <= names


def test_url_names_are_namespaced_by_site():
    assert reverse("arc:books-list") == "/api/books/"
    assert reverse("arc:books-detail", kwargs={"id": 3}) == "/api/books/3/"


def test_as_viewset_on_class_gives_a_model_viewset():
    from rest_framework.viewsets import ModelViewSet

    from tests.testapp.resources import BookResource

    viewset = BookResource.as_viewset()
    assert issubclass(viewset, ModelViewSet)
    assert viewset is BookResource.as_viewset()


@pytest.mark.django_db
def test_second_site_serves_its_own_resources(client, settings):
    site = ResourceSite(name="internal")

    @site.register
    class InternalAuthors(Resource):
        model = Author
        name = "staff"
        permissions = {"list": lambda request, resource, action, obj=None: True}

    import sys
    import types

    urlconf = types.ModuleType("tmp_internal_urls")
    urlconf.urlpatterns = [path("internal/", include(site.urls))]
    sys.modules["tmp_internal_urls"] = urlconf
    settings.ROOT_URLCONF = "tmp_internal_urls"
    Author.objects.create(name="x")
    r = client.get("/internal/staff/")
    assert r.status_code == 200
    assert r.json()["total"] == 1
    assert reverse("internal:staff-list") == "/internal/staff/"


#: a URLconf without any resource site (``ROOT_URLCONF`` of the test below)
urlpatterns = [path("plain/", lambda request: None)]


class ProjectScopeMiddleware(ScopeMiddleware):
    """A project's subclass of the middleware."""


def test_a_mounted_site_without_scope_middleware_is_warned_of(settings):
    """Without ``ScopeMiddleware`` an unknown path under a site's prefix is the project's
    HTML 404 page, not the envelope's, and nothing said so: ``manage.py check`` warns
    (``arc.W010``) when a site is mounted and no ``MIDDLEWARE`` entry is the middleware (or
    a subclass of it), and only then."""
    from django.core.checks import run_checks

    def w010():
        return [m for m in run_checks(tags=["django_arc"]) if m.id == "arc.W010"]

    assert w010() == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "ScopeMiddleware" not in m]
    [warning] = w010()
    assert "ScopeMiddleware" in warning.msg and "404" in warning.msg
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.ProjectScopeMiddleware"]
    assert w010() == []
    settings.MIDDLEWARE = settings.MIDDLEWARE[:-1]
    settings.ROOT_URLCONF = __name__
    assert w010() == []
    # a site mounted inside a project's own include (a version prefix) is mounted too
    from django.urls import include, path

    from django_arc import arc

    nested = [path("v1/", include([path("pages/", include([])), path("api/", include(arc.urls))]))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": nested})
    assert [m.id for m in w010()] == ["arc.W010"]
    # a URLconf that cannot be imported (refusing a missing setting): Django's own urls
    # check says so; this one passes it by rather than crash manage.py check
    settings.ROOT_URLCONF = "tests.testapp.broken_middleware"
    assert w010() == []


def test_the_middleware_check_survives_a_middleware_that_cannot_be_imported(settings):
    """arc.W010 imports every ``MIDDLEWARE`` entry; one whose module raises on import
    (``ImproperlyConfigured`` from a setting a third-party middleware wants) escaped the
    check, so ``manage.py check`` (and ``migrate``, which runs the checks) crashed where it
    had passed: such an entry is passed by, as one that is not found."""
    from django.core.checks import run_checks

    settings.MIDDLEWARE = ["tests.testapp.broken_middleware.Middleware", *settings.MIDDLEWARE]
    assert [m for m in run_checks(tags=["django_arc"]) if m.id == "arc.W010"] == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "ScopeMiddleware" not in m]
    assert [m.id for m in run_checks(tags=["django_arc"]) if m.id == "arc.W010"] == ["arc.W010"]


class _BookInput(serializers.Serializer):
    note = serializers.CharField()


def _with_action(input):
    def approve(self, request, instance, data):
        return None

    return make(approve=action(input=input)(approve))


@pytest.mark.parametrize(
    "given,needle",
    [
        (_BookInput(), "a _BookInput instance; pass the class itself"),
        (_BookInput(many=True), "a ListSerializer instance; pass the class itself"),
        (dict, "the class dict, which is no DRF serializer"),
        ("BookInput", "a str, which is no DRF serializer class"),
    ],
)
def test_an_action_input_that_is_no_serializer_class_is_reported(given, needle):
    """``@action(input=...)`` takes a serializer class, which each request builds with its
    body (``input(data=…, context=…)``). Given an instance (``input=ApproveInput()``, as
    drf-spectacular's ``request=`` takes one), every call of the action was a 500
    (``TypeError: 'ApproveInput' object is not callable``) and ``manage.py check`` passed;
    it is now arc.E018, naming the action."""
    errors = [e for e in check_resource(_with_action(given)) if e.id == "arc.E018"]
    assert len(errors) == 1, errors
    assert errors[0].msg.startswith("@action 'approve': `input` is "), errors[0].msg
    assert needle in errors[0].msg, errors[0].msg
    assert check_resource(_with_action(_BookInput)) == []
    assert check_resource(_with_action(None)) == []


def tracing_scope_middleware(get_response):
    """Django's function-factory middleware wrapping ``ScopeMiddleware`` (a project adding
    its own header around it)."""
    scope = ScopeMiddleware(get_response)

    def middleware(request):
        response = scope(request)
        response["X-Traced"] = "1"
        return response

    return middleware


def _wrapping(middleware_class):
    def factory(get_response):
        inner = middleware_class(get_response)
        return lambda request: inner(request)

    return factory


#: a factory built by a helper, the class in its closure
closure_scope_middleware = _wrapping(ScopeMiddleware)


class WrappingScopeMiddleware:
    """A class middleware (no subclass) holding ``ScopeMiddleware``."""

    def __init__(self, get_response):
        self.inner = ScopeMiddleware(get_response)

    def __call__(self, request):
        return self.inner(request)


def unrelated_middleware(get_response):
    return lambda request: get_response(request)


@pytest.mark.parametrize(
    "entry",
    [
        "tracing_scope_middleware",
        "closure_scope_middleware",
        "WrappingScopeMiddleware",
        "tests.testapp.wrapping_middleware.through_its_module",
        "tests.testapp.wrapping_middleware.imported_inside",
    ],
)
def test_a_middleware_wrapping_scope_middleware_is_not_warned_of(settings, entry):
    """arc.W010 looked for ``ScopeMiddleware`` or a subclass in ``MIDDLEWARE``: a project's
    function-factory middleware (Django's other middleware shape) or class wrapping it was
    warned of although it serves the envelope's 404. The check now reads, without calling
    it, whether an entry's code names the class (a global, a module's attribute, a closure
    of a helper's factory, a class's ``__init__``/``__call__``); an entry that does not is
    still warned of."""
    from django.core.checks import run_checks
    from django.test import Client

    def w010():
        return [m.id for m in run_checks(tags=["django_arc"]) if m.id == "arc.W010"]

    others = [m for m in settings.MIDDLEWARE if "ScopeMiddleware" not in m]
    settings.MIDDLEWARE = [*others, entry if "." in entry else f"{__name__}.{entry}"]
    assert w010() == []
    page = Client().get("/api/nope/")  # the wrapped middleware answers the envelope's 404
    assert page.status_code == 404 and page.json()["code"] == "NOT_FOUND"
    settings.MIDDLEWARE = [*others, f"{__name__}.unrelated_middleware"]
    assert w010() == ["arc.W010"]


class WrappingBase:
    """A project's middleware base running ``ScopeMiddleware`` inside its own."""

    def __init__(self, get_response):
        self.inner = ScopeMiddleware(get_response)

    def __call__(self, request):
        return self.inner(request)


class InheritsTheWrapping(WrappingBase):
    """Runs the base's ``__init__``/``__call__``: ``ScopeMiddleware`` answers."""


class ExtendsTheWrapping(WrappingBase):
    """Runs the base's ``__init__`` through ``super()``: ``ScopeMiddleware`` answers."""

    def __init__(self, get_response):
        super().__init__(get_response)
        self.calls = 0

    def __call__(self, request):
        self.calls += 1
        return super().__call__(request)


class NamesItsBase(WrappingBase):
    """Runs the base's ``__init__`` by its name, not ``super()``: ``ScopeMiddleware`` answers."""

    def __init__(self, get_response):
        WrappingBase.__init__(self, get_response)


class ReplacesTheWrapping(WrappingBase):
    """Replaces both without ``super()``: the base names ``ScopeMiddleware``, nothing runs it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)


def _decorated(method):
    @functools.wraps(method)
    def counting(self, *args, **kwargs):
        return method(self, *args, **kwargs)

    return counting


class DecoratedExtension(WrappingBase):
    """Runs the base's through ``super()`` inside methods a ``functools.wraps`` decorator
    wraps: the wrapper's code names no ``super``, the wrapped function's does."""

    @_decorated
    def __init__(self, get_response):
        super().__init__(get_response)

    @_decorated
    def __call__(self, request):
        return super().__call__(request)


@pytest.mark.parametrize(
    "entry, runs_it",
    [
        ("InheritsTheWrapping", True),
        ("DecoratedExtension", True),
        ("ExtendsTheWrapping", True),
        ("NamesItsBase", True),
        ("ReplacesTheWrapping", False),
    ],
)
def test_the_middleware_check_reads_a_base_class_only_where_its_code_runs(settings, entry, runs_it):
    """arc.W010 reads a class middleware's base classes too (fix-seen6b): their
    ``__init__``/``__call__`` run when the class inherits them or calls them through
    ``super()``. A base is read only so: a subclass replacing both without ``super()`` never
    runs the ``ScopeMiddleware`` its base names, and was not warned of although a path under
    the site's prefix got the project's 404 page. The warning says what the 404 shows."""
    from django.core.checks import run_checks
    from django.test import Client

    others = [m for m in settings.MIDDLEWARE if "ScopeMiddleware" not in m]
    settings.MIDDLEWARE = [*others, f"{__name__}.{entry}"]
    warned = [m.id for m in run_checks(tags=["django_arc"]) if m.id == "arc.W010"]
    page = Client().get("/api/nope/")
    assert page.status_code == 404
    envelope = page.get("Content-Type", "").startswith("application/json")
    assert (envelope, warned) == ((True, []) if runs_it else (False, ["arc.W010"]))


def test_the_middleware_check_never_builds_a_lazy_global_a_middleware_names(settings):
    """arc.W010 reads each ``MIDDLEWARE`` entry's code for the names it uses; asking whether
    a global of its module is ``ScopeMiddleware`` with ``isinstance`` built a lazy object
    (``SimpleLazyObject``: its ``__class__`` is the built object's): a middleware naming a
    lazy GeoIP reader, which cannot be built where ``manage.py check`` runs, made the check
    command raise (and ran the project's code the check promises never to run). The entry
    is read without building it: the warning, nothing built."""
    from django.core.checks import run_checks

    from tests.testapp import wrapping_middleware

    others = [m for m in settings.MIDDLEWARE if "ScopeMiddleware" not in m]
    settings.MIDDLEWARE = [*others, "tests.testapp.wrapping_middleware.locating_middleware"]
    wrapping_middleware.BUILT.clear()
    warnings = [m.id for m in run_checks(tags=["django_arc"]) if m.id == "arc.W010"]
    assert warnings == ["arc.W010"]
    assert wrapping_middleware.BUILT == []


def _rev_actions_noop(name="handler"):
    """A fresh method named ``name`` each call: ``@action`` marks the function it decorates
    (and names the action after it by default)."""

    def handler(self, request, instance, data):
        return None

    handler.__name__ = name
    return handler


@pytest.mark.parametrize(
    "attrs,needle",
    [
        # an action's event is ``<name>.<action>``: named after a verb the resource writes
        # under, it was a ``deleted`` event (and audit entry) for a row nobody deleted
        ({"deleted": action(_rev_actions_noop("deleted"))}, "@action 'deleted' is named after"),
        ({"approve": action(name="created")(_rev_actions_noop())}, "@action 'created' is named"),
        (
            {
                "model": Article,
                "presets": [presets.SoftDelete()],
                "undo": action(name="restored")(_rev_actions_noop()),
            },
            "@action 'restored' is named after",
        ),
        # two methods under one name: one of them was silently never served
        (
            {
                "approve": action(_rev_actions_noop("approve")),
                "approve_again": action(name="approve")(_rev_actions_noop()),
            },
            "@action 'approve' is declared by approve, approve_again",
        ),
        # a name no JSON body can send as a string: an action nobody can call
        ({"approve": action(name=5)(_rev_actions_noop())}, "@action name 5 is not a string"),
    ],
)
def test_an_action_named_after_a_write_verb_twice_or_not_a_string_is_reported(attrs, needle):
    errors = [e for e in check_resource(make(**attrs)) if e.id == "arc.E019"]
    assert len(errors) == 1, errors
    assert needle in errors[0].msg, errors[0].msg


def test_an_action_named_restored_without_soft_delete_passes_the_check():
    """``restored`` is SoftDelete's verb; on a resource without it the name is free."""
    resource = make(undo=action(name="restored")(_rev_actions_noop()))
    assert [e for e in check_resource(resource) if e.id == "arc.E019"] == []


class _RevActionsInputWithAction(serializers.Serializer):
    action = serializers.CharField()
    note = serializers.CharField(required=False)


def test_an_action_input_declaring_a_field_named_action_is_reported():
    """The body's ``action`` names the action and is never handed to ``input``: a required
    ``action`` field made every call a 400 ("action: This field is required."), an optional
    one never received a value, and the schema's ``action`` constant was replaced by it."""
    errors = [
        e for e in check_resource(_with_action(_RevActionsInputWithAction)) if e.id == "arc.E018"
    ]
    assert len(errors) == 1, errors
    assert "declares a field named `action`" in errors[0].msg, errors[0].msg
