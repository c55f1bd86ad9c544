"""rev-fixes70: a review of rev-memos (hand-routed resources among the served ones; a field
copy's own default and error messages), and of the items it saw and left.

What a serializer copy holds of its prototype (``serializers._clone``) and where a resource
routed by hand (``Resource.as_viewset()`` of one on no site) is listed."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from django_arc import Resource, ResourceSite, sites
from django_arc import permissions as P
from tests.factories import UserFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Author, Book, Gauge

pytestmark = pytest.mark.django_db

AUDIT = "/admin/django_arc/auditlog/"


class Rf70HandGauges(Resource):
    model = Gauge
    name = "rf70-hand-gauges"
    fields = ["id", "reading"]
    permissions = {key: P.require_auth() for key in ("list", "get")}


def test_the_audit_logs_resource_filter_lists_a_resource_routed_by_hand(admin_client):
    """The audit log records a hand-routed resource's writes under its name, as a
    registered one's; the admin's "resource" filter listed the sites' resources only, so
    its entries could not be picked out from the list (only by typing the query string)."""
    saved = list(sites._routed_by_hand)
    try:
        Rf70HandGauges().as_viewset()  # routed by hand: served on no site
        page = admin_client.get(AUDIT)
        assert page.status_code == 200
        assert "?resource=rf70-hand-gauges" in page.content.decode()
        assert "?resource=all-articles" in page.content.decode()  # a site's, as before
    finally:
        sites._routed_by_hand[:] = saved
        sites._changed()


class CheckedAuthorBookSerializer(serializers.ModelSerializer):
    """A project serializer declaring a relation's rows as a queryset and checking a value
    against it (``in`` evaluates the queryset and keeps its rows, as iterating it does):
    DRF deep-copies declared fields for every serializer, the queryset without its rows."""

    author = serializers.PrimaryKeyRelatedField(queryset=Author.objects.all())

    class Meta:
        model = Book
        fields = ["id", "title", "isbn", "author"]

    def validate_author(self, author):
        if author not in self.fields["author"].queryset:
            raise serializers.ValidationError("Not one of the authors.")
        return author


class CheckedAuthorBooks(Resource):
    model = Book
    name = "rf70-checked-books"
    serializer_class = CheckedAuthorBookSerializer
    permissions = {key: P.require_auth() for key in ("list", "get", "create")}


def test_a_declared_querysets_rows_are_read_by_each_request(settings):
    """Every copy of the serializer's field held the prototype's queryset object: the first
    request that evaluated it left its rows in it, and every later request read those. An
    author added since was refused (400 ``Not one of the authors.``) though the relation
    found it; DRF's deep copy gives each serializer the queryset unevaluated."""
    site = ResourceSite(name="rf70-books")
    site.register(CheckedAuthorBooks)
    try:
        with site_mounted(settings, "rf70b", site):
            client = client_for(UserFactory())
            first = Author.objects.create(name="first")
            created = client.post(
                "/rf70b/rf70-checked-books/",
                {"title": "a", "isbn": "rf70-1", "author": first.pk},
                format="json",
            )
            assert created.status_code == 201, created.content
            later = Author.objects.create(name="later")
            created = client.post(
                "/rf70b/rf70-checked-books/",
                {"title": "b", "isbn": "rf70-2", "author": later.pk},
                format="json",
            )
            assert created.status_code == 201, created.content
            assert Book.objects.get(isbn="rf70-2").author_id == later.pk
            # the declared queryset itself is left unevaluated
            declared = CheckedAuthorBookSerializer._declared_fields["author"].queryset
            assert declared._result_cache is None
    finally:
        sites._all_sites.remove(site)
        sites._changed()


class StaffHintedGaugeSerializer(serializers.ModelSerializer):
    """A project serializer giving staff callers a hint in the browsable API's form as it is
    built (DRF gives every serializer fields of their own, their ``style`` included)."""

    class Meta:
        model = Gauge
        fields = ["id", "reading"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_staff:
            self.fields["reading"].style["placeholder"] = "staff-only-hint"


class StaffHintedGauges(Resource):
    model = Gauge
    name = "rf70-hinted-gauges"
    serializer_class = StaffHintedGaugeSerializer
    permissions = {key: P.require_auth() for key in ("list", "get", "create")}


def test_a_fields_style_is_each_requests_own(settings):
    """A field's ``style`` dict was the prototype's, shared by every copy: the hint set for
    a staff caller was in every later caller's form."""
    site = ResourceSite(name="rf70-hinted")
    site.register(StaffHintedGauges)
    try:
        with site_mounted(settings, "rf70h", site):
            staff = client_for(UserFactory(username="staff", is_staff=True))
            page = staff.get("/rf70h/rf70-hinted-gauges/", HTTP_ACCEPT="text/html")
            assert page.status_code == 200
            assert "staff-only-hint" in page.content.decode()
            member = client_for(UserFactory(username="member"))
            page = member.get("/rf70h/rf70-hinted-gauges/", HTTP_ACCEPT="text/html")
            assert page.status_code == 200
            assert "staff-only-hint" not in page.content.decode()
    finally:
        sites._all_sites.remove(site)
        sites._changed()
