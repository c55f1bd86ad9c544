"""rev-fixes46: review of the merges of rev-actions and rev-browsable."""

import re
import types
from html import unescape

import pytest
from django.urls import include, path
from rest_framework.renderers import (
    BrowsableAPIRenderer,
    JSONRenderer,
    StaticHTMLRenderer,
    TemplateHTMLRenderer,
)
from rest_framework.routers import SimpleRouter
from rest_framework.test import APIClient
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite, action, sites
from django_arc import permissions as P
from django_arc.checks import check_renderers_of_views_own_html, check_resource
from tests.helpers import site_mounted
from tests.testapp.models import Article, PagedRow

_RF46_HTML = {"HTTP_ACCEPT": "text/html"}


class _Rf46PageRenderer(TemplateHTMLRenderer):
    """A project's HTML renderer: every answer through its own template."""

    template_name = "rf46/page.html"


class _Rf46OwnRender(StaticHTMLRenderer):
    """A project's HTML renderer writing the envelope its own way."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return f"<pre>{data!r}</pre>"


class _Rf46ChosenTemplates(TemplateHTMLRenderer):
    """A project's renderer choosing the template per answer."""

    def get_template_names(self, response, view):
        return ["rf46/page.html"]


def _rf46_w014(settings, monkeypatch, renderer, viewset_attrs=None):
    resource = type(
        "_Rf46Articles",
        (Resource,),
        {
            "model": Article,
            "name": "rf46-articles",
            "fields": ["id", "title"],
            "permissions": {"list": P.allow_public(), "get": P.allow_public()},
            "renderer_classes": [JSONRenderer, renderer],
        },
    )
    viewset = resource.as_viewset()
    if viewset_attrs:
        viewset = type("_Rf46ViewSet", (viewset,), viewset_attrs)
    router = SimpleRouter()
    router.register("r", viewset, basename="rf46-w014")
    urlconf = types.ModuleType("rf46_w014_urls")
    urlconf.urlpatterns = [path("api/", include(router.urls))]
    # a ViewSet subclass mounted by hand serves the resource (no site's generated one)
    mounted = [] if viewset_attrs else [resource]
    monkeypatch.setattr(sites, "_all_sites", [types.SimpleNamespace(resources=mounted)])
    settings.ROOT_URLCONF = urlconf
    return [w.id for w in check_renderers_of_views_own_html()]


@pytest.mark.parametrize("renderer", [_Rf46PageRenderer, _Rf46OwnRender, _Rf46ChosenTemplates])
def test_rf46_a_project_html_renderer_rendering_its_own_way_is_no_arc_w014(
    settings, monkeypatch, renderer
):
    """arc.W014 warned of any ``TemplateHTMLRenderer``/``StaticHTMLRenderer`` subclass: a
    project's renderer naming its own ``template_name``, choosing templates itself or
    rendering its own way was reported as the 500 it never gives."""
    assert _rf46_w014(settings, monkeypatch, renderer) == []
    # DRF's own, unchanged, still are
    assert _rf46_w014(settings, monkeypatch, TemplateHTMLRenderer) == ["arc.W014"]
    assert _rf46_w014(settings, monkeypatch, StaticHTMLRenderer) == ["arc.W014"]


def test_rf46_a_viewset_choosing_its_templates_is_no_arc_w014(settings, monkeypatch):
    """DRF's ``TemplateHTMLRenderer`` asks the view's ``get_template_names`` before its
    ``template_name``: a ViewSet subclass defining it renders its own pages."""
    attrs = {"get_template_names": lambda self: ["rf46/page.html"]}
    assert _rf46_w014(settings, monkeypatch, TemplateHTMLRenderer, attrs) == []
    attrs = {"get_queryset_hint": None}  # a subclass choosing no template is still reported
    assert _rf46_w014(settings, monkeypatch, TemplateHTMLRenderer, attrs) == ["arc.W014"]


def _rf46_approve(self, request, instance, data):
    return None


def _rf46_approve_other(self, request, instance, data):
    return None


def test_rf46_one_action_under_two_attribute_names_is_no_arc_e019():
    """arc.E019 reported a method kept under a second name (``approve_now = approve``) as two
    declarations of one action ("one is never served"): both name the same action, which
    is served whichever attribute the resource's actions read."""
    approve = action(name="approve")(_rf46_approve)
    attrs = {"model": Article, "name": "rf46-e019", "fields": ["id"], "approve": approve}
    aliased = type("_Rf46Aliased", (Resource,), {**attrs, "approve_now": approve})()
    assert [e for e in check_resource(aliased) if e.id == "arc.E019"] == []
    # two methods under one name still are
    other = action(name="approve")(_rf46_approve_other)
    twice = type("_Rf46Twice", (Resource,), {**attrs, "approve_now": other})()
    errors = [e for e in check_resource(twice) if e.id == "arc.E019"]
    assert len(errors) == 1 and "declared by approve, approve_now" in errors[0].msg, errors


class _Rf46NullBoxes(Resource):
    model = PagedRow
    name = "rf46-null-boxes"
    fields = ["id", "label", "flag"]
    permissions = {k: P.allow_public() for k in ("list", "get", "create", "update")}


@pytest.fixture
def rf46_site(settings, monkeypatch):
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    site = ResourceSite(name="rev-fixes46-site")
    site.register(_Rf46NullBoxes)
    with site_mounted(settings, "rf46", site):
        yield


def _rf46_browser_post(page, method, ticked):
    """What a browser posts from ``method``'s form: every input's value in page order, a
    box's only when ticked (``ticked`` name → bool, else as shown)."""
    html = page.content.decode()
    if method == "POST":
        form = re.search(r'<form [^>]*method="POST" enctype=[^>]*>.*?</form>', html, re.S)[0]
    else:
        form = re.search(rf'<form [^>]*data-method="{method}"[^>]*>.*?</form>', html, re.S)[0]
    body = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or name[1] == "csrfmiddlewaretoken":
            continue
        value = re.search(r'value="([^"]*)"', tag)
        if 'type="checkbox"' in tag and not ticked.get(name[1], "checked" in tag):
            continue
        body.setdefault(name[1], []).append(unescape(value[1]) if value else "")
    return body


@pytest.mark.django_db
def test_rf46_a_nullable_box_showing_null_is_not_written_false_by_a_form(rf46_site):
    """A box cannot show null: DRF renders it unticked. The browsable form's hidden
    ``false`` before each box made a row's form, sent back to change the label alone, write
    ``false`` over the row's null, and a create's unticked nullable box save ``false`` where
    DRF's form saves null. Such a box now has no hidden ``false``; a nullable box showing a
    value still turns off when unticked."""
    client = APIClient()
    row = PagedRow.objects.create(label="a", flag=None)
    url = f"/rf46/rf46-null-boxes/{row.pk}/"
    page = client.get(url, **_RF46_HTML)
    assert page.status_code == 200
    body = _rf46_browser_post(page, "PUT", {}) | {"label": ["b"]}
    assert "flag" not in body, body
    sent = client.put(url, body, format="multipart")
    assert sent.status_code == 200, sent.content
    row.refresh_from_db()
    assert (row.label, row.flag) == ("b", None)
    # ticked, it saves true; a box showing true, unticked, saves false
    page = client.get(url, **_RF46_HTML)
    assert client.put(url, _rf46_browser_post(page, "PUT", {"flag": True}), format="multipart")
    row.refresh_from_db()
    assert row.flag is True
    page = client.get(url, **_RF46_HTML)
    sent = client.put(url, _rf46_browser_post(page, "PUT", {"flag": False}), format="multipart")
    assert sent.status_code == 200, sent.content
    row.refresh_from_db()
    assert row.flag is False
    # the create form's nullable box, left unticked, saves null as DRF's form does
    listing = client.get("/rf46/rf46-null-boxes/", **_RF46_HTML)
    body = _rf46_browser_post(listing, "POST", {}) | {"label": ["new"]}
    created = client.post("/rf46/rf46-null-boxes/", body, format="multipart")
    assert created.status_code == 201, created.content
    assert PagedRow.objects.get(label="new").flag is None
