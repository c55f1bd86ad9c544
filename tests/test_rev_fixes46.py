"""rev-fixes46: review of the merges of rev-actions and rev-browsable."""

import types

import pytest
from django.urls import include, path
from rest_framework.renderers import JSONRenderer, StaticHTMLRenderer, TemplateHTMLRenderer
from rest_framework.routers import SimpleRouter

from django_arc import Resource, action, sites
from django_arc import permissions as P
from django_arc.checks import check_renderers_of_views_own_html, check_resource
from tests.testapp.models import Article


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
