"""fix-seen12a: start-up checks and field rules the last stop left."""

from __future__ import annotations

import gc
import io
import types
import weakref
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db.models import F
from django.urls import include, path
from rest_framework import serializers

from django_arc import Resource, ResourceSite, presets
from django_arc import fields as FR
from django_arc import permissions as P
from django_arc.checks import check_resource
from django_arc.querycache.invalidation import _models_read
from django_arc.sites import _all_sites
from shop.models import Order, Product
from tests.factories import BookFactory, OrganizationFactory, ProductFactory, member_client
from tests.helpers import site_mounted
from tests.testapp.models import Author, Book

PUBLIC = {"list": P.allow_public(), "get": P.allow_public()}
MEMBERS = P.require_org_membership()


@pytest.fixture
def fs12a_site():
    """A throwaway site: its resources are checked by ``manage.py check`` while the test
    runs, and gone after it."""
    site = ResourceSite(name="fs12a")
    yield site
    _all_sites.remove(site)


def _fs12a_resource(**attrs):
    attrs = {"model": Book, "name": "fs12a-books", "permissions": PUBLIC, **attrs}
    return type("Fs12aBooks", (Resource,), attrs)


# -- 1. default_sort given as a list, as Django's Meta.ordering is -------------------------


@pytest.mark.parametrize("declared", [["-title"], ("-title",), ["-pages", "title"]])
def test_fs12a_a_default_sort_list_passes_check_and_start_up(fs12a_site, declared):
    """``default_sort = ["-title"]`` (Django's ``Meta.ordering`` is a list) was an
    ``AttributeError`` ('list' has no 'split') at registration (the query cache's watch
    reads the paths it joins) and in ``manage.py check``. A list of names is read as the
    comma-separated text."""
    fs12a_site.register(_fs12a_resource(default_sort=declared))
    call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    resource = fs12a_site.resources[0]
    assert resource.default_sort == ",".join(declared)
    assert check_resource(resource) == []


def test_fs12a_a_default_sort_list_through_a_relation_is_watched():
    """The query cache watches the models a ``default_sort`` path joins, list or text."""
    resource = _fs12a_resource(default_sort=["author__name"])()
    assert Author in _models_read(resource)


@pytest.mark.django_db
def test_fs12a_a_default_sort_list_orders_the_list(settings, fs12a_site):
    fs12a_site.register(_fs12a_resource(default_sort=["-pages", "title"]))
    BookFactory(title="b", pages=1)
    BookFactory(title="a", pages=1)
    BookFactory(title="c", pages=9)
    with site_mounted(settings, "fs12a", fs12a_site):
        from django.test import Client

        response = Client().get("/fs12a/fs12a-books/")
    assert response.status_code == 200, response.content
    assert [row["title"] for row in response.json()["docs"]] == ["c", "a", "b"]


@pytest.mark.parametrize(
    "declared",
    [5, [F("title").desc()], ["-title", 3], {"title": "desc"}],
    ids=["number", "expression", "mixed", "dict"],
)
def test_fs12a_a_default_sort_neither_text_nor_names_is_a_check_error(fs12a_site, declared):
    """Anything else is ``manage.py check``'s error naming the option, not a traceback."""
    fs12a_site.register(_fs12a_resource(default_sort=declared))
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    assert "arc.E004" in str(excinfo.value)
    assert "`default_sort`" in str(excinfo.value)


# -- 2. a read-only field named like a column writes nothing ------------------------------


class _Fs12aBandSerializer(serializers.ModelSerializer):
    """``cost`` is a computed band (a ``SerializerMethodField`` named like the column, its
    value ruled for admins), ``unit_cost`` writes the ``cost`` column."""

    cost = serializers.SerializerMethodField()
    unit_cost = serializers.DecimalField(
        source="cost", max_digits=10, decimal_places=2, required=False, allow_null=True
    )

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "cost", "unit_cost"]

    def get_cost(self, obj):
        return "high" if (obj.cost or 0) > 5 else "low"


def _fs12a_band_resource():
    return type(
        "Fs12aBandResource",
        (Resource,),
        {
            "model": Product,
            "name": "fs12a-bands",
            "serializer_class": _Fs12aBandSerializer,
            "presets": [presets.MultiTenant()],
            "permissions": {k: MEMBERS for k in ("list", "get", "create", "update")},
            "field_permissions": {"cost": FR.visible_to("admin")},
        },
    )


@pytest.mark.django_db
def test_fs12a_a_method_field_named_like_a_column_does_not_rule_its_writers(settings, fs12a_site):
    """A ``SerializerMethodField`` named ``cost`` (read-only, computed: it renders and writes
    no column) joined the ``cost`` column's write group, so its ``visible_to("admin")``
    refused an editor's write of the column through ``unit_cost``, the field that writes it
    and renders it to the editor (403 ``FIELD_WRITE_DENIED``): a false refusal."""
    fs12a_site.register(_fs12a_band_resource())
    call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    org = OrganizationFactory()
    row = ProductFactory(organization=org, cost=Decimal("7.00"))
    editor = member_client(org, "editor")
    with site_mounted(settings, "fs12a", fs12a_site):
        r = editor.patch(f"/fs12a/fs12a-bands/{row.pk}/", {"unit_cost": "3.00"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["unit_cost"] == "3.00" and "cost" not in r.json()["data"]
    row.refresh_from_db()
    assert row.cost == Decimal("3.00")
    # the method field itself stays refused: it writes nothing
    with site_mounted(settings, "fs12a", fs12a_site):
        r = editor.patch(f"/fs12a/fs12a-bands/{row.pk}/", {"cost": "9.00"}, format="json")
    assert r.status_code == 403 and r.json()["details"] == {"fields": ["cost"]}, r.content


# -- 3. a project's own field with a ``queryset`` and no ``get_queryset()`` ---------------


class _Fs12aProductById(serializers.Field):
    """A project's own field naming a product by id through its ``queryset`` attribute: no
    DRF relation, so no ``get_queryset()``."""

    def __init__(self, queryset, **kwargs):
        self.queryset = queryset
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return self.queryset.get(pk=data)
        except (Product.DoesNotExist, ValueError, TypeError):
            raise serializers.ValidationError("No such product.") from None

    def to_representation(self, value):
        return value.pk


class _Fs12aOrderSerializer(serializers.ModelSerializer):
    product = _Fs12aProductById(queryset=Product.objects.all())

    class Meta:
        model = Order
        fields = ["id", "organization", "product", "quantity", "customer_email"]


def _fs12a_order_resource():
    return type(
        "Fs12aOrderResource",
        (Resource,),
        {
            "model": Order,
            "name": "fs12a-orders",
            "serializer_class": _Fs12aOrderSerializer,
            "presets": [presets.MultiTenant()],
            "permissions": {k: MEMBERS for k in ("list", "get", "create", "update")},
        },
    )


@pytest.mark.django_db
def test_fs12a_a_field_of_its_own_with_a_queryset_is_narrowed_not_a_500(settings, fs12a_site):
    """A field that is no DRF relation but carries a ``queryset`` (read by its own
    ``to_internal_value``) was handed to the relation narrowing, which then asked it for
    ``get_queryset()``: ``AttributeError``, a 500 on every write. Its ``queryset`` is
    narrowed as a relation's is: the caller's own product is written, another tenant's is
    400 naming the field, as no such row."""
    fs12a_site.register(_fs12a_order_resource())
    org, other = OrganizationFactory(), OrganizationFactory()
    mine, theirs = ProductFactory(organization=org), ProductFactory(organization=other)
    editor = member_client(org, "editor")
    editor.raise_request_exception = False  # a 500 is an answer to assert on
    body = {"quantity": 2, "customer_email": "a@example.com"}
    with site_mounted(settings, "fs12a", fs12a_site):
        r = editor.post("/fs12a/fs12a-orders/", {**body, "product": mine.pk}, format="json")
        assert r.status_code == 201, r.content
        assert r.json()["data"]["product"] == mine.pk
        r = editor.post("/fs12a/fs12a-orders/", {**body, "product": theirs.pk}, format="json")
    assert r.status_code == 400, r.content
    assert "product" in r.json()["details"], r.content
    assert list(Order.objects.values_list("product_id", flat=True)) == [mine.pk]


# -- 5. what is decided per model or field class is neither kept forever nor stale ---------


def test_fs12a_a_models_generic_pairs_are_read_as_it_is_now_and_not_kept():
    """``generic_foreign_keys`` was a ``functools.cache``: every model class it was asked
    about was kept for the life of the process (each ``isolate_apps`` test's classes), and
    a pair added to a model after its first answer (``add_to_class``) was never seen, so
    the write's pair check skipped it."""
    from django.contrib.contenttypes.fields import GenericForeignKey
    from django.contrib.contenttypes.models import ContentType
    from django.db import models
    from django.test.utils import isolate_apps

    from django_arc.query import generic_foreign_keys

    with isolate_apps("tests.testapp"):

        class Fs12aPinned(models.Model):
            content_type = models.ForeignKey(
                ContentType, on_delete=models.CASCADE, related_name="+"
            )
            object_id = models.PositiveIntegerField()

            class Meta:
                app_label = "testapp"

        assert generic_foreign_keys(Fs12aPinned) == ()
        Fs12aPinned.add_to_class("target", GenericForeignKey())
        assert [f.name for f in generic_foreign_keys(Fs12aPinned)] == ["target"]
        gone = weakref.ref(Fs12aPinned)
    del Fs12aPinned
    gc.collect()
    assert gone() is None


class _Fs12aLateRows(serializers.Field):
    """A project's field resolving a product by id through its class's ``queryset``, which
    a plug-in installs after start-up (``None`` until then: the project's own lookup)."""

    queryset = None

    def to_internal_value(self, data):
        rows = self.queryset if self.queryset is not None else Product.objects.none()
        try:
            return rows.get(pk=data)
        except (Product.DoesNotExist, ValueError, TypeError):
            raise serializers.ValidationError("No such product.") from None

    def to_representation(self, value):
        return value.pk


class _Fs12aLateOrderSerializer(serializers.ModelSerializer):
    product = _Fs12aLateRows()

    class Meta:
        model = Order
        fields = ["id", "organization", "product", "quantity", "customer_email"]


@pytest.mark.django_db
def test_fs12a_a_field_class_given_rows_after_its_first_write_is_narrowed(
    settings, fs12a_site, monkeypatch
):
    """Whether a field class names rows was decided on its first write and kept
    (``functools.cache``): a class given a ``queryset`` afterwards was still skipped by the
    relation walk, so its rows were never narrowed and a member linked another tenant's
    product (201). A field's rows are read as it has them on each write."""
    resource = _fs12a_order_resource()
    resource.name, resource.serializer_class = "fs12a-late-orders", _Fs12aLateOrderSerializer
    fs12a_site.register(resource)
    org, other = OrganizationFactory(), OrganizationFactory()
    theirs = ProductFactory(organization=other)
    editor = member_client(org, "editor")
    body = {"quantity": 2, "customer_email": "a@example.com", "product": theirs.pk}
    with site_mounted(settings, "fs12a", fs12a_site):
        r = editor.post("/fs12a/fs12a-late-orders/", body, format="json")
        assert r.status_code == 400, r.content  # no rows yet: the project's own answer
        monkeypatch.setattr(_Fs12aLateRows, "queryset", Product.objects.all())
        r = editor.post("/fs12a/fs12a-late-orders/", body, format="json")
    assert r.status_code == 400, r.content
    assert "product" in r.json()["details"], r.content
    assert not Order.objects.exists()


# -- 6. what manage.py check sees: every site, and the views ROOT_URLCONF routes ----------


def test_fs12a_a_sites_resources_are_checked_in_no_urlconf_at_all(fs12a_site):
    """A site a project mounts only in a per-request URLconf (``request.urlconf``, set by
    its middleware per host) is in no URLconf ``check`` reads: its resources are checked
    all the same, as every registered site's are."""
    fs12a_site.register(_fs12a_resource(sort_fields=["ghost"]))
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    assert "Fs12aBooks ('fs12a-books'): (arc.E004)" in str(excinfo.value)


def test_fs12a_a_viewset_routed_only_per_request_is_not_seen_by_check(settings, monkeypatch):
    """A project's own ViewSet (no site) is found by the ``ROOT_URLCONF`` it is routed in:
    one routed only through a ``request.urlconf`` is not (documented in decisions.md,
    "check sees ROOT_URLCONF's views"). Register its resource on a site, or route it in
    ``ROOT_URLCONF`` too, for ``check`` to see it."""
    from rest_framework.renderers import JSONRenderer, TemplateHTMLRenderer
    from rest_framework.routers import SimpleRouter

    from django_arc.checks import check_renderers_of_views_own_html

    html = type(
        "Fs12aHtmlViewSet",
        (_fs12a_resource().as_viewset(),),
        {"renderer_classes": [JSONRenderer, TemplateHTMLRenderer]},
    )
    router = SimpleRouter()
    router.register("fs12a-html", html, basename="fs12a-html")
    per_request = types.ModuleType("fs12a_host_urls")
    per_request.urlpatterns = [path("api/", include(router.urls))]
    assert "arc.W014" not in [w.id for w in check_renderers_of_views_own_html()]
    settings.ROOT_URLCONF = per_request
    assert [w.id for w in check_renderers_of_views_own_html()] == ["arc.W014"]


# -- 4. the fields a write is judged by are the request's serializer's --------------------


class _Fs12aMetaSerializer(serializers.Serializer):
    cost = serializers.DecimalField(max_digits=10, decimal_places=2, required=False)


class _Fs12aPerRequestSerializer(serializers.ModelSerializer):
    """Chooses its write fields per request (``get_fields()``, as DRF allows): built without
    one (as the field rules read it), it has neither ``cost_eur`` nor ``meta``."""

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization", "cost"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
            fields["cost_eur"] = serializers.DecimalField(
                source="cost", max_digits=10, decimal_places=2, required=False, write_only=True
            )
            fields["meta"] = _Fs12aMetaSerializer(source="*", required=False, write_only=True)
        return fields


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, denied",
    [({"cost_eur": "1.00"}, "cost_eur"), ({"meta": {"cost": "1.00"}}, "meta.cost")],
)
def test_fs12a_a_column_written_through_a_field_chosen_per_request_is_judged(
    settings, fs12a_site, body, denied
):
    """``cost`` is ``visible_to("admin")``; the serializer adds ``cost_eur =
    DecimalField(source="cost")`` and ``meta = MetaSerializer(source="*")`` for writes in its
    ``get_fields()``. The field rules read the serializer as built without a request, so
    neither was seen: an editor wrote ``cost`` through them (200). The write is judged by
    the fields the request's serializer has: 403 naming the key, the row as it was; an
    admin writes it."""
    resource = _fs12a_band_resource()
    resource.name, resource.serializer_class = "fs12a-per-request", _Fs12aPerRequestSerializer
    fs12a_site.register(resource)
    org = OrganizationFactory()
    row = ProductFactory(organization=org, cost=Decimal("7.00"))
    url = f"/fs12a/fs12a-per-request/{row.pk}/"
    with site_mounted(settings, "fs12a", fs12a_site):
        r = member_client(org, "editor").patch(url, body, format="json")
        assert r.status_code == 403, r.content
        assert r.json()["details"] == {"fields": [denied]}
        row.refresh_from_db()
        assert row.cost == Decimal("7.00")
        r = member_client(org, "admin").patch(url, body, format="json")
    assert r.status_code == 200, r.content
    row.refresh_from_db()
    assert row.cost == Decimal("1.00")
