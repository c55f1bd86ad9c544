"""A misconfigured resource fails closed: ``manage.py check`` (and so ``runserver``) refuses
to start, naming the resource and the key once (issue #18, point 1).

Every mistake below used to pass the checks and then either serve every tenant's rows (a
misspelt ``presets``), fall back to ``require_auth()`` (a misspelt permission key), grant
everyone (``P.require_org_role`` without its call) or answer 500 to every request.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from rest_framework.permissions import IsAdminUser, IsAuthenticated

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.checks import check_resource
from django_arc.resources import HOOKS, OPTIONS
from django_arc.sites import _all_sites
from shop.models import Product

MEMBERS = P.require_org_membership()


def single_check(attrs: dict) -> str:
    """The one line ``manage.py check`` prints for a resource ``Wrong`` named ``wrong``."""
    resource = type("Wrong", (Resource,), {"model": Product, "name": "wrong", **attrs})()
    errors = check_resource(resource)
    assert len(errors) == 1, [str(e) for e in errors]
    return str(errors[0])


@pytest.fixture
def registered():
    """Register resource classes on a throwaway site; the site is gone after the test, so
    the project's own ``check`` stays clean for every other test."""
    site = ResourceSite(name="misconfigured")
    yield site.register
    _all_sites.remove(site)


def refuses_to_start(line: str) -> None:
    """``check`` and ``runserver`` both stop with ``line`` in their report."""
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    assert line in str(excinfo.value)


def serving(*args, **kwargs):
    raise AssertionError("runserver got past its system checks")


def test_runserver_refuses_to_start(registered, monkeypatch):
    from django.core.management.commands import runserver

    monkeypatch.setattr(runserver, "run", serving)
    registered(type("Wrong", (Resource,), {"model": Product, "name": "wrong", "preset": []}))
    out = io.StringIO()
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("runserver", "127.0.0.1:0", use_reloader=False, skip_checks=False, stdout=out)
    assert "Wrong ('wrong'): (arc.E012) `preset` is not a Resource option" in str(excinfo.value)


TYPO = "is not a Resource option, hook, @action or @route."
MISTAKES = {
    # unknown attributes (arc.E012)
    "preset": (
        {"preset": [presets.MultiTenant()]},
        f"Wrong ('wrong'): (arc.E012) `preset` {TYPO} Did you mean 'presets'?",
    ),
    "permission": (
        {"permission": {"list": MEMBERS}},
        f"Wrong ('wrong'): (arc.E012) `permission` {TYPO} Did you mean 'permissions'?",
    ),
    "filter_field": (
        {"filter_field": {"status": ["eq"]}},
        f"Wrong ('wrong'): (arc.E012) `filter_field` {TYPO} Did you mean 'filter_fields'?",
    ),
    "sort_field": (
        {"sort_field": ["price"]},
        f"Wrong ('wrong'): (arc.E012) `sort_field` {TYPO} Did you mean 'sort_fields'?",
    ),
    "helper without underscore": (
        {"tax_rate": 0.2},
        f"Wrong ('wrong'): (arc.E012) `tax_rate` {TYPO}",
    ),
    "internal override": (
        {"serializer": object},
        "Wrong ('wrong'): (arc.E012) `serializer` is internal to Resource and cannot be "
        "overridden. Did you mean 'serializer_class'?",
    ),
    # permission keys nothing reads (arc.E013)
    "key typo": (
        {"permissions": {"lst": MEMBERS}},
        "Wrong ('wrong'): (arc.E013) `permissions['lst']` is not a permission key. "
        "Did you mean 'list'?",
    ),
    # permission values that cannot decide (arc.E010)
    "uncalled builder": (
        {"permissions": {"list": P.require_org_membership}},
        "Wrong ('wrong'): (arc.E010) `permissions['list']` is the builder "
        "P.require_org_membership itself, not a permission: call it, "
        "P.require_org_membership().",
    ),
    "uncalled builder with roles": (
        {"permissions": {"create": P.require_org_role}},
        "Wrong ('wrong'): (arc.E010) `permissions['create']` is the builder "
        "P.require_org_role itself, not a permission: call it, P.require_org_role(...).",
    ),
    "wrong signature": (
        {"permissions": {"get": lambda request: True}},
        "Wrong ('wrong'): (arc.E010) `permissions['get']` is the lambda (request), which "
        "cannot be called as (request, resource, action, obj=None); define it as "
        "def check(request, resource, action, obj=None).",
    ),
    "not a permission": (
        {"permissions": {"delete": "admin"}},
        "Wrong ('wrong'): (arc.E010) `permissions['delete']` is 'admin', which is not a "
        "permission.",
    ),
    "field rule as permission": (
        {"permissions": {"update": F.hidden()}},
        "Wrong ('wrong'): (arc.E010) `permissions['update']` is "
        f"{F.hidden()!r}, which is not a permission.",
    ),
    "DRF instance": (
        {"permissions": {"list": IsAuthenticated()}},
        "Wrong ('wrong'): (arc.E010) `permissions['list']` is an instance of the DRF "
        "permission IsAuthenticated: pass the class, IsAuthenticated.",
    ),
    "list of permissions": (
        {"permissions": {"list": [MEMBERS, P.require_auth()]}},
        "Wrong ('wrong'): (arc.E010) `permissions['list']` is a collection, not a permission: "
        "combine permissions with P.any_of(...) or P.all_of(...).",
    ),
    "uncalled builder inside any_of": (
        {"permissions": {"list": P.any_of(MEMBERS, P.require_service_scope)}},
        "Wrong ('wrong'): (arc.E010) `permissions['list']` any_of() argument 2 is the builder "
        "P.require_service_scope itself, not a permission: call it, "
        "P.require_service_scope(...).",
    ),
    "uncalled action_permissions": (
        {"action_permissions": P.require_auth},
        "Wrong ('wrong'): (arc.E010) `action_permissions` is the builder P.require_auth "
        "itself, not a permission: call it, P.require_auth().",
    ),
    "permissions not a dict": (
        {"permissions": MEMBERS},
        "Wrong ('wrong'): (arc.E010) `permissions` must be a dict of permission key → "
        "permission, not _FunctionPermission.",
    ),
    # presets (arc.E011)
    "uncalled preset": (
        {"presets": [presets.MultiTenant]},
        "Wrong ('wrong'): (arc.E011) `presets[0]` is the class MultiTenant, not a preset: "
        "instantiate it, MultiTenant().",
    ),
}


@pytest.mark.parametrize("attrs, line", MISTAKES.values(), ids=MISTAKES.keys())
def test_mistake_is_one_error_naming_resource_and_key_once(registered, attrs, line):
    reported = single_check(attrs)
    assert reported.split("\n")[0] == line
    assert reported.count("Wrong ('wrong')") == 1
    registered(type("Wrong", (Resource,), {"model": Product, "name": "wrong", **attrs}))
    refuses_to_start(line)


def test_key_naming_an_action_or_a_route_with_its_own_permission():
    class Wrong(Resource):
        model = Product
        name = "wrong"
        permissions = {"reprice": MEMBERS, "stats": MEMBERS}

        @action(permissions=MEMBERS)
        def reprice(self, request, instance, data):
            return instance

        @route("GET", "stats", permissions=MEMBERS)
        def stats(self, request):
            return {}

    assert sorted(str(e).split("\n")[0] for e in check_resource(Wrong())) == [
        "Wrong ('wrong'): (arc.E013) `permissions['reprice']` names the @action 'reprice'; "
        "an action's permission is @action(permissions=...), else `action_permissions`.",
        "Wrong ('wrong'): (arc.E013) `permissions['stats']` is never read: @route 'stats' "
        "has a permission of its own (permissions=...).",
    ]


def test_bad_permissions_of_actions_and_routes():
    class Wrong(Resource):
        model = Product
        name = "wrong"

        @action(permissions=P.require_org_role)
        def reprice(self, request, instance, data):
            return instance

        @route("GET", "stats", permissions=lambda request, view: True)
        def stats(self, request):
            return {}

    assert sorted(str(e).split("\n")[0] for e in check_resource(Wrong())) == [
        "Wrong ('wrong'): (arc.E010) @action 'reprice': permissions is the builder "
        "P.require_org_role itself, not a permission: call it, P.require_org_role(...).",
        "Wrong ('wrong'): (arc.E010) route 'stats': permissions is the lambda (request, view), "
        "which cannot be called as (request, resource, action, obj=None); define it as "
        "def check(request, resource, action, obj=None).",
    ]


def test_what_a_resource_may_declare_passes():
    """Options (on the class or a mixin), hooks, ``@action``/``@route`` methods, a key read
    by a route without a permission of its own, the project's underscore helpers, and every
    permission spelling the docs list."""

    def custom(request, resource, action, obj=None):
        return True

    class Extras:
        sort_fields = ["price"]

        def _tax(self) -> float:
            return 0.2

    class Fine(Extras, Resource):
        model = Product
        name = "fine"
        presets = [presets.MultiTenant()]
        permissions = {
            "list": P.any_of(MEMBERS, P.require_service_scope("products:read")),
            "get": custom,
            "create": IsAuthenticated & IsAdminUser,
            "update": IsAuthenticated,
            "delete": None,
            "stats": P.when(lambda request, *rest: True, P.require_org_role("admin")),
        }
        action_permissions = P.require_org_role("admin")
        _cache: dict = {}

        def before_create(self, request, data):
            return self._tax() and data

        def get_queryset(self, request):
            return super().get_queryset(request)

        @action
        def reprice(self, request, instance, data):
            return instance

        @route("GET", "stats")
        def stats(self, request):
            return {}

    assert check_resource(Fine()) == []


def test_every_public_data_attribute_of_resource_is_a_documented_option():
    """A new option added to ``Resource`` must join ``OPTIONS`` (and so the docs table),
    or setting it on a subclass would be refused as unknown."""
    from functools import cached_property

    data = {
        name
        for name, value in vars(Resource).items()
        if not name.startswith("_")
        and not callable(value)
        and not isinstance(value, (property, cached_property))
        and type(value).__name__ != "_hybrid"
    }
    assert data == set(OPTIONS)
    assert all(callable(getattr(Resource, hook)) for hook in HOOKS)


def test_a_builder_that_slips_through_refuses_instead_of_granting():
    """Defence in depth behind arc.E010: ``P.require_org_role`` used uncalled returns a
    permission when called with the request — truthy, it would have granted everyone."""
    permission = P.as_permission(P.require_org_role)
    with pytest.raises(TypeError, match="builder used without calling it"):
        permission(object(), None, "list")


def test_a_function_as_action_permissions_is_not_bound_to_the_resource():
    """Read through the instance, a function class attribute became a method of the
    resource and every action answered 500."""

    def staff_only(request, resource, action, obj=None):
        return P.PermissionResult(False, "Staff only")

    class Desk(Resource):
        model = Product
        name = "desk"
        action_permissions = staff_only

        @action
        def reprice(self, request, instance, data):
            return instance

    desk = Desk()
    assert check_resource(desk) == []
    result = desk.action_permission(desk.actions["reprice"])(object(), desk, "reprice")
    assert (result.granted, result.reason) == (False, "Staff only")


def _table_names(markdown: str, heading: str) -> list[str]:
    """Backticked names in the first column of the table under ``heading``."""
    import re

    section = markdown.split(heading, 1)[1]
    names: list[str] = []
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            first = line.split("|")[1]
            names += re.findall(r"`([a-z_]+)`", first)
        elif started:
            break
    return names


def test_docs_attribute_table_lists_exactly_the_options_the_check_accepts():
    from pathlib import Path

    docs = (Path(__file__).resolve().parent.parent / "docs" / "resources.md").read_text()
    assert sorted(_table_names(docs, "### Attributes")) == sorted(OPTIONS)
    assert sorted(_table_names(docs, "## Hooks\n")) == sorted(set(HOOKS) - {"get_queryset"})
    assert "get_queryset(self, request)" in docs


def test_check_output_matches_the_documented_example():
    """docs/decisions.md shows this exact report."""
    resource = type(
        "ProductResource",
        (Resource,),
        {"model": Product, "name": "products", "permissions": {"lst": MEMBERS}},
    )()
    (error,) = check_resource(resource)
    assert str(error) == (
        "ProductResource ('products'): (arc.E013) `permissions['lst']` is not a permission "
        "key. Did you mean 'list'?\n"
        "\tHINT: Permission keys of this resource: create, delete, get, list, update."
    )


def test_drf_composed_permissions_are_accepted_and_decide():
    """``IsAuthenticated & IsAdminUser`` is DRF's own spelling of a combined class: it was
    called like a check function (a TypeError, 500, on every request); it is instantiated."""
    from types import SimpleNamespace

    from django.contrib.auth.models import AnonymousUser

    permission = P.as_permission(IsAuthenticated & IsAdminUser)
    anonymous = SimpleNamespace(user=AnonymousUser(), parser_context={})
    staff = SimpleNamespace(
        user=SimpleNamespace(is_authenticated=True, is_staff=True), parser_context={}
    )
    assert permission(anonymous, None, "list").granted is False
    assert permission(staff, None, "list").granted is True
    assert P.permission_problem(IsAuthenticated & IsAdminUser) is None


def test_docs_checks_table_lists_exactly_the_check_ids_the_package_emits():
    """docs/resources.md's table of checks (arc.E001… and arc.W001…, W011 and the
    settings' E008 among them): every id listed is one a check reports, and every id a
    check reports is listed."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "resources.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `(arc\.[EW]\d{3})` \|", docs, re.M)
    assert len(listed) == len(set(listed)), "an id is listed twice"
    emitted = {
        found
        for path in (root / "django_arc").rglob("*.py")
        for found in re.findall(r"[\"'](arc\.[EW]\d{3})[\"']", path.read_text(encoding="utf-8"))
    }
    assert set(listed) == emitted
