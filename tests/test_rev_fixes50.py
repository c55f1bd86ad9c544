"""rev-fixes50: review of rev-django52, fix-seen9c and the lead's ``actions.as_declared``."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django
import pytest
from django.db import connection, models
from django.test.utils import isolate_apps
from rest_framework.test import APIClient

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from django_arc.checks import check_resource
from django_arc.sites import _all_sites
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article

RF50_ROUTES = ("list", "get", "create", "update", "delete")

rf50_site = ResourceSite(name="rf50")


@rf50_site.register
class RF50ProductResource(Resource):
    model = Product
    name = "rf50-products"
    fields = ["id", "name", "status", "organization"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    action_permissions = P.require_org_role("admin", "editor")

    @classmethod
    @action
    def activate(cls, request, instance, data):
        instance.status = "active"
        instance.save(update_fields=["status"])
        return instance

    @classmethod
    @route("GET", "tally", permissions=P.require_org_membership())
    def tally(cls, request, view):
        return {"count": view.get_queryset().count()}


@pytest.mark.django_db
def test_rf50_a_classmethod_over_an_action_or_a_route_still_answers(settings):
    """``as_declared`` (fe3d288) took the method a ``@classmethod`` over ``@action``/``@route``
    reads as from the class (bound to it) for a project's decorator and handed it the
    resource as well: a ``TypeError``, 500 on every call, where before it answered."""
    org = OrganizationFactory()
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="editor").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    row = ProductFactory(organization=org, status="draft")
    ProductFactory(organization=OrganizationFactory())
    with site_mounted(settings, "rf50", rf50_site):
        done = client.post(
            f"/rf50/rf50-products/{row.pk}/action/", {"action": "activate"}, format="json"
        )
        assert done.status_code == 200, done.content
        assert done.json()["data"]["status"] == "active"
        counted = client.get("/rf50/rf50-products/tally/")
        assert counted.status_code == 200, counted.content
        assert counted.json()["data"] == {"count": 1}
    row.refresh_from_db()
    assert row.status == "active"


@contextmanager
def rf50_mounted(settings: Any, *resources: type[Resource]) -> Iterator[Any]:
    """``resources`` served under ``/rf50m/`` with their isolated models' tables made for the
    test; an anonymous API client."""
    site = ResourceSite(name="rf50-models")
    for resource in resources:
        site.register(resource)
    with connection.schema_editor() as editor:
        for resource in resources:
            editor.create_model(resource.model)
    try:
        with site_mounted(settings, "rf50m", site):
            api = client_for()
            api.raise_request_exception = False
            yield api
    finally:
        _all_sites.remove(site)
        with connection.schema_editor() as editor:
            for resource in resources:
                editor.delete_model(resource.model)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(django.VERSION < (5, 0), reason="db_default is Django 5.0's")
def test_rf50_a_nullable_database_default_in_a_unique_set_left_out_is_the_default(settings):
    """A nullable ``db_default`` field in a unique set was given DRF's ``default=None`` (its
    uniqueness kwargs: ``null`` counts as a default), so a create leaving it out stored NULL
    rather than the database's default, and its uniqueness went unjudged (NULLs are
    distinct): the same create twice was two rows. Left out, the database's default is
    stored, and a second one is the set's 400."""
    with isolate_apps("tests.testapp"):

        class RF50Slot(models.Model):
            title = models.CharField(max_length=20)
            label = models.CharField(max_length=20, db_default="new", null=True)

            class Meta:
                app_label = "testapp"
                constraints = [
                    models.UniqueConstraint(
                        fields=["title", "label"],
                        name="rf50_slot_title_label",
                        violation_error_message="title taken for this label",
                    )
                ]

    class RF50SlotResource(Resource):
        model = RF50Slot
        name = "slots"
        fields = ["id", "title", "label"]
        presets = [presets.Bulk()]
        permissions = {key: P.allow_public() for key in RF50_ROUTES}

    with rf50_mounted(settings, RF50SlotResource) as api:
        r = api.post("/rf50m/slots/", {"title": "a"}, format="json")
        assert r.status_code == 201 and r.json()["data"]["label"] == "new", r.content
        r = api.post("/rf50m/slots/", {"title": "a"}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
            "non_field_errors": ["title taken for this label"]
        }
        r = api.post("/rf50m/slots/", {"title": "a", "label": None}, format="json")
        assert r.status_code == 201 and r.json()["data"]["label"] is None, r.content
        r = api.post("/rf50m/slots/bulk/", {"items": [{"title": "b"}]}, format="json")
        assert r.status_code == 201, r.content
        assert sorted(RF50Slot.objects.values_list("title", "label"), key=repr) == [
            ("a", "new"),
            ("a", None),
            ("b", "new"),
        ]


def _rf50_approve(self, request, instance, data):
    return None


def _rf50_logged(func):
    @functools.wraps(func)
    def rf50_wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return rf50_wrapper


def test_rf50_one_action_under_two_different_callables_is_arc_e019():
    """Since fe3d288 the resource serves an action through the attribute that holds it; a
    project keeping the decorated method and a wrapped copy (``approve_logged =
    logged(approve)``, ``functools.wraps`` copying the spec) served whichever came last in
    ``dir()`` order, silently (the log here), where arc.E019 saw one declaration. An alias
    of the same method (``approve_now = approve``) and a ``@classmethod`` are still one."""
    approve = action(name="approve")(_rf50_approve)
    attrs = {"model": Article, "name": "rf50-e019", "fields": ["id"], "approve": approve}
    wrapped = type("_Rf50Wrapped", (Resource,), {**attrs, "approve_logged": _rf50_logged(approve)})
    errors = [e for e in check_resource(wrapped()) if e.id == "arc.E019"]
    assert len(errors) == 1 and "declared by approve, approve_logged" in errors[0].msg, errors
    aliased = type("_Rf50Aliased", (Resource,), {**attrs, "approve_now": approve})
    assert [e for e in check_resource(aliased()) if e.id == "arc.E019"] == []
    stacked = type("_Rf50Stacked", (Resource,), {**attrs, "approve": _rf50_logged(approve)})
    assert [e for e in check_resource(stacked()) if e.id == "arc.E019"] == []
    bound = classmethod(approve)
    classy = type("_Rf50Class", (Resource,), {**attrs, "approve": bound, "again": bound})
    assert [e for e in check_resource(classy()) if e.id == "arc.E019"] == []


def test_rf50_a_classmethod_over_an_action_or_a_route_is_no_arc_e012():
    """arc.E012 read the class body's ``classmethod`` object, which does not carry the
    spec, and called the served action and route "not a Resource option, hook, @action or
    @route" (an error stopping ``manage.py check``)."""
    resource = rf50_site.get_resource("rf50-products")
    assert [e.msg for e in check_resource(resource) if e.id == "arc.E012"] == []


def _rf50_tally(self, request):
    return {"count": 0}


def test_rf50_one_route_under_two_different_callables_is_arc_e019():
    """A ``@route`` kept beside a wrapped copy (``tally_logged = logged(tally)``) was routed
    twice on one path and name since fe3d288, the last in ``dir()`` order answering and the
    other never, without a word; an alias of the same method is still one route."""
    tally = route("GET", "tally", permissions=P.allow_public())(_rf50_tally)
    attrs = {"model": Article, "name": "rf50-e019-routes", "fields": ["id"], "tally": tally}
    wrapped = type("_Rf50Routes", (Resource,), {**attrs, "tally_logged": _rf50_logged(tally)})
    errors = [e for e in check_resource(wrapped()) if e.id == "arc.E019"]
    assert len(errors) == 1 and "@route on 'tally' is declared by tally, tally_logged" in (
        errors[0].msg
    ), errors
    aliased = type("_Rf50RouteAlias", (Resource,), {**attrs, "tally_now": tally})
    assert [e for e in check_resource(aliased()) if e.id == "arc.E019"] == []
