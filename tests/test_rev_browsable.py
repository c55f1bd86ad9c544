"""The browsable API's pages and forms (rev-browsable): what DRF's ``BrowsableAPIRenderer``
offers a caller on a resource's pages, and what its forms send back."""

import re
import types
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import include, path
from rest_framework import serializers
from rest_framework.renderers import (
    BrowsableAPIRenderer,
    JSONRenderer,
    StaticHTMLRenderer,
    TemplateHTMLRenderer,
)
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, presets, sites
from django_arc import permissions as P
from django_arc.checks import check_renderers_of_views_own_html
from shop.models import Product
from tests.factories import AuthorFactory, OrganizationFactory, member_client
from tests.helpers import site_mounted
from tests.test_request_cost import cost_site
from tests.testapp.models import Article, Book

pytestmark = pytest.mark.django_db

_RB_HTML = {"HTTP_ACCEPT": "text/html"}


class _RbWriteOnlySerializer(serializers.ModelSerializer):
    """A project's serializer with write-only values (an API token, a cost), which DRF never
    renders: a row's form cannot be filled with them."""

    secret_notes = serializers.CharField(write_only=True, required=False, allow_blank=True)

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "secret_notes", "cost", "organization"]
        extra_kwargs = {"cost": {"write_only": True}}


class _RbRequiredWriteOnlySerializer(_RbWriteOnlySerializer):
    secret_notes = serializers.CharField(write_only=True)


class _RbWriteOnlyResource(Resource):
    model = Product
    name = "rb-write-only"
    serializer_class = _RbWriteOnlySerializer
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {
        k: P.require_org_membership() for k in ("list", "get", "create", "update", "delete")
    }


class _RbRequiredWriteOnlyResource(_RbWriteOnlyResource):
    name = "rb-required-write-only"
    serializer_class = _RbRequiredWriteOnlySerializer


@pytest.fixture
def rb_site(settings, monkeypatch):
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    site = ResourceSite(name="rev-browsable-site")
    site.register(_RbWriteOnlyResource)
    site.register(_RbRequiredWriteOnlyResource)
    with site_mounted(settings, "rb", site):
        yield


def _rb_form(page, method):
    """The HTML of ``method``'s form on the page (``None`` when it has none)."""
    html = page.content.decode()
    if method == "POST":
        form = re.search(r'<form [^>]*method="POST" enctype=[^>]*>.*?</form>', html, re.S)
    else:
        form = re.search(rf'<form [^>]*data-method="{method}"[^>]*>.*?</form>', html, re.S)
    return form[0] if form else None


def _rb_as_posted(page, method):
    """What a browser posts from ``method``'s HTML form as shown (its text inputs)."""
    body = {}
    for tag in re.findall(r"<input[^>]*>", _rb_form(page, method)):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or name[1] == "csrfmiddlewaretoken":
            continue
        value = re.search(r'value="([^"]*)"', tag)
        body[name[1]] = unescape(value[1]) if value else ""
    return body


@pytest.mark.parametrize("name", ["rb-write-only", "rb-required-write-only"])
def test_rb_a_rows_put_form_sent_as_shown_keeps_its_write_only_values(rb_site, name):
    """A row's ``PUT`` form is filled from the row, but a ``write_only`` field has no value
    to fill it with (DRF never renders it): its input was blank, and the form sent back to
    change the name alone blanked the token and nulled the cost (200), or, the token being
    required, was refused 400 "may not be blank" unless it was typed again. A filled form
    leaves write-only fields out, as it leaves out what the caller reads masked; the
    create form still offers them."""
    client = member_client(OrganizationFactory(), "editor")
    body = {"name": "Lamp", "sku": "L-1", "price": "1.00", "secret_notes": "TOKEN", "cost": "3.00"}
    created = client.post(f"/rb/{name}/", body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["data"]["id"]

    page = client.get(f"/rb/{name}/{pk}/", **_RB_HTML)
    assert page.status_code == 200
    shown = _rb_as_posted(page, "PUT")
    assert shown == {"name": "Lamp", "sku": "L-1", "price": "1.00"}, shown
    sent = client.put(f"/rb/{name}/{pk}/", {**shown, "name": "Desk"}, format="multipart")
    assert sent.status_code == 200, sent.content
    row = Product.objects.get(pk=pk)
    assert (row.name, row.secret_notes, row.cost) == ("Desk", "TOKEN", Decimal("3.00"))
    # the page a saved PUT answers is filled from the saved row the same way
    saved = client.put(f"/rb/{name}/{pk}/", {"name": "Shelf"}, format="multipart", **_RB_HTML)
    assert saved.status_code == 200
    assert _rb_as_posted(saved, "PUT") == {"name": "Shelf", "sku": "L-1", "price": "1.00"}
    # a create's form is empty: it offers them
    listing = client.get(f"/rb/{name}/", **_RB_HTML)
    assert {"secret_notes", "cost"} <= set(_rb_as_posted(listing, "POST"))


def test_rb_a_refused_updates_form_shows_again_only_the_write_only_values_it_sent(rb_site):
    """The page of a refused ``PUT`` shows its form again with what was sent, over the row:
    a write-only value the body sent is shown again (sent back once corrected, it is not
    lost), one it did not send is left out, as on the row's page (its blank would blank the
    row)."""
    client = member_client(OrganizationFactory(), "editor")
    body = {"name": "Lamp", "sku": "L-2", "price": "1.00", "secret_notes": "TOKEN", "cost": "3.00"}
    created = client.post("/rb/rb-write-only/", body, format="json")
    url = f"/rb/rb-write-only/{created.json()['data']['id']}/"

    sent = {"price": "not a price", "secret_notes": "NEW"}
    refused = client.put(url, sent, format="multipart", **_RB_HTML)
    assert refused.status_code == 400
    shown = _rb_as_posted(refused, "PUT")
    assert shown == {"name": "Lamp", "sku": "L-2", "price": "not a price", "secret_notes": "NEW"}
    refused = client.put(url, {"price": "not a price"}, format="multipart", **_RB_HTML)
    assert refused.status_code == 400
    assert _rb_as_posted(refused, "PUT") == {"name": "Lamp", "sku": "L-2", "price": "not a price"}
    row = Product.objects.get(sku="L-2")
    assert (row.secret_notes, row.cost) == ("TOKEN", Decimal("3.00"))


def _rb_browser_post(page, method, ticked):
    """What a browser posts from ``method``'s HTML form, each box ticked as ``ticked`` says
    (name → bool; the others as shown): every name's values in the order of the page, a
    box's value only when it is ticked."""
    body = {}
    for tag in re.findall(r"<input[^>]*>", _rb_form(page, method)):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or name[1] == "csrfmiddlewaretoken":
            continue
        value = re.search(r'value="([^"]*)"', tag)
        if 'type="checkbox"' in tag and not ticked.get(name[1], "checked" in tag):
            continue
        body.setdefault(name[1], []).append(unescape(value[1]) if value else "")
    return body


def test_rb_a_box_unticked_on_a_rows_form_is_saved_false(api, monkeypatch):
    """A browser sends nothing for an unticked box, and an update is partial: a row's ``PUT``
    form sent with ``is_available`` unticked answered 200 and left it ``True``, so no
    browsable form could ever turn a box off. The form's box now comes after a hidden
    ``false`` of its name: unticked it sends ``false``, ticked ``false`` then ``true``, read
    as DRF reads a form (the last), on an update and a create alike."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    book = Book.objects.create(title="B", isbn="RB-1", pages=1, author=AuthorFactory())
    url = f"/api/books/{book.pk}/"
    assert book.is_available is True

    page = api.get(url, **_RB_HTML)
    sent = api.put(url, _rb_browser_post(page, "PUT", {"is_available": False}), format="multipart")
    assert sent.status_code == 200, sent.content
    book.refresh_from_db()
    assert book.is_available is False
    page = api.get(url, **_RB_HTML)
    sent = api.put(url, _rb_browser_post(page, "PUT", {"is_available": True}), format="multipart")
    assert sent.status_code == 200, sent.content
    book.refresh_from_db()
    assert book.is_available is True
    # sent back as shown, the box keeps its value; the create form's box reads as ticked
    page = api.get(url, **_RB_HTML)
    assert api.put(url, _rb_browser_post(page, "PUT", {}), format="multipart").status_code == 200
    book.refresh_from_db()
    assert book.is_available is True
    listing = api.get("/api/books/", **_RB_HTML)
    body = _rb_browser_post(listing, "POST", {"is_available": True})
    body |= {"title": "C", "isbn": "RB-2", "pages": ["2"], "author": [str(book.author_id)]}
    created = api.post("/api/books/", body, format="multipart")
    assert created.status_code == 201, created.content
    assert Book.objects.get(isbn="RB-2").is_available is True
    body |= {"isbn": "RB-3", "is_available": ["false"]}
    assert api.post("/api/books/", body, format="multipart").status_code == 201
    assert Book.objects.get(isbn="RB-3").is_available is False


def test_rb_a_many_relation_deselected_on_a_rows_form_is_saved_empty(api, settings, monkeypatch):
    """A browser sends nothing for a multiple select with nothing selected, and an update is
    partial: a row's ``PUT`` form with every group deselected answered 200 and left the
    user's groups as they were, so no browsable form could empty a many-to-many relation.
    The select now comes after a hidden blank of its name, which a list of rows or choices
    drops: nothing selected is ``[]``, a selection is itself, the form as shown changes
    nothing."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    groups = [Group.objects.create(name=f"rb-g{i}") for i in range(3)]
    user = get_user_model().objects.create(username="rb-user")
    user.groups.set(groups[:2])
    url = f"/cost/grouped-users/{user.pk}/"

    def sent(selected):
        page = api.get(url, **_RB_HTML)
        assert page.status_code == 200, page.content
        body = _rb_browser_post(page, "PUT", {})
        select = re.search(
            r'<select multiple[^>]* name="groups">(.*?)</select>', _rb_form(page, "PUT"), re.S
        )
        shown = re.findall(r'<option value="([^"]*)"\s*selected', select[1])
        body.setdefault("groups", []).extend(
            shown if selected is None else [str(g.pk) for g in selected]
        )
        answer = api.put(url, body, format="multipart")
        assert answer.status_code == 200, answer.content
        return sorted(user.groups.values_list("pk", flat=True))

    with site_mounted(settings, "cost", cost_site):
        assert sent(None) == [groups[0].pk, groups[1].pk]
        assert sent([]) == []
        assert sent([groups[2]]) == [groups[2].pk]
        # a client's own form body sending a blank for the list is the empty list too
        assert api.patch(url, {"groups": [""]}, format="multipart").status_code == 200
        assert not user.groups.exists()


class _RbHtmlViewArticles(Resource):
    model = Article
    name = "rb-template-html"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    renderer_classes = [JSONRenderer, TemplateHTMLRenderer]


class _RbJsonArticles(_RbHtmlViewArticles):
    name = "rb-json"
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]


def _rb_w014(settings, monkeypatch, resource):
    router = SimpleRouter()
    router.register("r", resource.as_viewset(), basename="rb-w014")
    urlconf = types.ModuleType("rb_w014_urls")
    urlconf.urlpatterns = [path("api/", include(router.urls))]
    monkeypatch.setattr(sites, "_all_sites", [types.SimpleNamespace(resources=[resource])])
    settings.ROOT_URLCONF = urlconf
    return [w.id for w in check_renderers_of_views_own_html()]


def test_rb_a_template_or_static_html_renderer_on_resources_is_arc_w014(settings, monkeypatch):
    """DRF's ``TemplateHTMLRenderer`` renders the template a view names, and its
    ``StaticHTMLRenderer`` writes the string a view returns; a resource does neither, so
    with one among its renderers (``DEFAULT_RENDERER_CLASSES`` too) a browser's get of a row
    or a list answered 500 (``ImproperlyConfigured``), or the envelope's keys run together.
    ``manage.py check`` now says so (arc.W014); a resource's own ``renderer_classes``
    without them is silent."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, TemplateHTMLRenderer])
    client = member_client(OrganizationFactory(), "admin")
    client.raise_request_exception = False
    assert client.get("/api/t-products/", **_RB_HTML).status_code == 500
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, StaticHTMLRenderer])
    page = client.get("/api/t-products/", **_RB_HTML)
    assert page.content.startswith(b"successdocs")

    assert _rb_w014(settings, monkeypatch, _RbHtmlViewArticles) == ["arc.W014"]
    assert _rb_w014(settings, monkeypatch, _RbJsonArticles) == []
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_RENDERER_CLASSES": [
            "rest_framework.renderers.JSONRenderer",
            "rest_framework.renderers.StaticHTMLRenderer",
        ],
    }
    plain = type("_RbPlain", (Resource,), {"model": Article, "name": "rb-plain", "fields": ["id"]})
    assert _rb_w014(settings, monkeypatch, plain) == ["arc.W014"]
