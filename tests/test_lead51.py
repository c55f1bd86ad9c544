"""The lead's own fixes of stop 51, each from a reviewer's "seen, not fixed"."""

import functools

import pytest
from rest_framework.test import APIClient

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import site_mounted

pytestmark = pytest.mark.django_db

lead51_site = ResourceSite(name="lead51")
lead51_calls: list[str] = []


def lead51_logged(func):
    """A project's decorator stacked over ``@action``/``@route``: ``functools.wraps`` copies
    the inner function's ``__dict__``, django-arc's spec included."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        lead51_calls.append(func.__name__)
        return func(*args, **kwargs)

    return wrapper


@lead51_site.register
class Lead51ProductResource(Resource):
    model = Product
    name = "l51-products"
    fields = ["id", "name", "status", "organization"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    action_permissions = P.require_org_role("admin", "editor")

    @lead51_logged
    @action
    def approve(self, request, instance, data):
        instance.status = "active"
        instance.save(update_fields=["status"])
        return instance

    @lead51_logged
    @route("GET", "count", permissions=P.require_org_membership())
    def count(self, request, view):
        return {"count": view.get_queryset().count()}


def test_a_project_decorator_over_an_action_or_a_route_runs(settings):
    """The spec's handler wrapped the undecorated function, so a project's decorator over
    ``@action``/``@route`` (logging, a lock, a check of its own) was silently skipped."""
    org = OrganizationFactory()
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="editor").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    row = ProductFactory(organization=org, status="draft")
    ProductFactory(organization=OrganizationFactory())
    lead51_calls.clear()
    with site_mounted(settings, "l51", lead51_site):
        done = client.post(
            f"/l51/l51-products/{row.pk}/action/", {"action": "approve"}, format="json"
        )
        assert done.status_code == 200, done.content
        assert done.json()["data"]["status"] == "active"
        counted = client.get("/l51/l51-products/count/")
        assert counted.status_code == 200, counted.content
    assert counted.json()["data"] == {"count": 1}
    row.refresh_from_db()
    assert row.status == "active"
    assert lead51_calls == ["approve", "count"]
