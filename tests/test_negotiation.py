"""Content negotiation on resource views: DRF's default answers, remembered per question
(``django_arc.negotiation``), and a project's own negotiator left alone."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.http import Http404
from django.test import override_settings
from django.urls import resolve
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from django_arc import negotiation
from django_arc.generics import ResourceGenericViewSet
from django_arc.negotiation import ArcContentNegotiation
from tests.factories import BookFactory
from tests.helpers import assert_error

QUESTIONS = [
    ({}, ""),
    ({"HTTP_ACCEPT": "*/*"}, ""),
    ({"HTTP_ACCEPT": "application/json"}, ""),
    ({"HTTP_ACCEPT": "application/json; indent=4"}, ""),
    ({"HTTP_ACCEPT": "text/html"}, ""),
    ({"HTTP_ACCEPT": "text/html;q=0.1, application/json"}, ""),
    ({"HTTP_ACCEPT": "application/*"}, ""),
    ({}, "?format=json"),
    ({}, "?format=api"),
    ({"HTTP_ACCEPT": "text/html, application/json"}, "?format=json"),
    ({}, "?%66ormat=api"),
    ({}, "?formats=api&x=format"),
    ({}, "?status=active&format=json"),
]


def renderers():
    return [JSONRenderer(), BrowsableAPIRenderer()]


def request_for(headers, query=""):
    return Request(APIRequestFactory().get(f"/api/books/{query}", **headers))


@pytest.fixture(autouse=True)
def nothing_remembered():
    negotiation._answers.clear()
    yield
    negotiation._answers.clear()


@pytest.mark.parametrize(("headers", "query"), QUESTIONS)
def test_a_remembered_answer_is_drfs_answer_with_this_requests_renderer(headers, query):
    """Asked twice, the second time from memory: both answers are DRF's, and the renderer
    is always one of the renderers of the request asking (a renderer may keep state for the
    response it renders, so none is shared between requests)."""
    expected_renderer, expected_type = DefaultContentNegotiation().select_renderer(
        request_for(headers, query), renderers()
    )
    for _ in range(2):
        mine = renderers()
        renderer, media_type = ArcContentNegotiation().select_renderer(
            request_for(headers, query), mine
        )
        assert (type(renderer), media_type) == (type(expected_renderer), expected_type)
        assert any(renderer is r for r in mine)
    assert len(negotiation._answers) == 1


def test_a_format_suffix_is_part_of_the_question():
    arc = ArcContentNegotiation()
    json_answer = arc.select_renderer(request_for({}), renderers(), format_suffix="json")
    api_answer = arc.select_renderer(request_for({}), renderers(), format_suffix="api")
    assert type(json_answer[0]) is JSONRenderer
    assert type(api_answer[0]) is BrowsableAPIRenderer


def test_other_renderers_are_another_question():
    """The same header against another view's renderers is negotiated again."""
    arc = ArcContentNegotiation()
    first = arc.select_renderer(request_for({"HTTP_ACCEPT": "text/html"}), renderers())
    only_json = arc.select_renderer(
        request_for({"HTTP_ACCEPT": "text/html, application/json;q=0.5"}), [JSONRenderer()]
    )
    assert type(first[0]) is BrowsableAPIRenderer
    assert type(only_json[0]) is JSONRenderer


def test_refusals_are_raised_every_time_and_never_remembered():
    arc = ArcContentNegotiation()
    for _ in range(2):
        with pytest.raises(NotAcceptable):
            arc.select_renderer(request_for({"HTTP_ACCEPT": "application/xml"}), renderers())
        with pytest.raises(Http404):
            arc.select_renderer(request_for({}, "?format=yaml"), renderers())
    assert negotiation._answers == {}


def test_the_memory_is_bounded_whatever_headers_clients_send():
    arc = ArcContentNegotiation()
    for i in range(negotiation.MAX_REMEMBERED + 50):
        accept = f"application/json; indent={i % 9}; x={i}"
        arc.select_renderer(request_for({"HTTP_ACCEPT": accept}), renderers())
        assert len(negotiation._answers) <= negotiation.MAX_REMEMBERED


class ProjectNegotiation(BaseContentNegotiation):
    """A project's own negotiator: always the first parser and renderer."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@pytest.mark.django_db
def test_resource_views_negotiate_with_drfs_default_as_drf_does(api):
    BookFactory()
    for accept, media_type in [
        ("application/json; indent=2", "application/json; indent=2"),
        ("text/html", "text/html"),
        ("application/json; indent=2", "application/json; indent=2"),
    ]:
        response = api.get("/api/books/", HTTP_ACCEPT=accept)
        assert response.status_code == 200
        assert response["Content-Type"].startswith(media_type.split(";")[0])
        assert response.accepted_media_type == media_type
    indented = api.get("/api/books/", HTTP_ACCEPT="application/json; indent=2")
    assert indented.content.startswith(b'{\n  "')
    assert api.get("/api/books/", HTTP_ACCEPT="application/xml").status_code == 406


def test_a_projects_own_negotiator_is_used_as_it_is():
    """``content_negotiation_class`` (DRF's ``DEFAULT_CONTENT_NEGOTIATION_CLASS``, or a
    view's own): DRF's default becomes the remembering one, anything else is kept."""

    class ProjectView(ResourceGenericViewSet):
        content_negotiation_class = ProjectNegotiation

    class DefaultView(ResourceGenericViewSet):
        content_negotiation_class = DefaultContentNegotiation

    assert type(ProjectView().get_content_negotiator()) is ProjectNegotiation
    assert type(DefaultView().get_content_negotiator()) is ArcContentNegotiation


@pytest.mark.django_db
def test_a_quality_of_zero_is_ignored_as_drf_ignores_it(api):
    """``Accept: application/json;q=0, text/html`` says JSON is not acceptable (RFC 9110
    §12.4.2); DRF's negotiation ignores quality values and answers JSON, and so do resource
    views (fix-seen7, decisions.md: parity with DRF, the query cache keyed by the header as
    sent). Pinned so a change to it is a decision, not an accident."""
    BookFactory()
    response = api.get("/api/books/", HTTP_ACCEPT="application/json;q=0, text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    expected_renderer, _ = DefaultContentNegotiation().select_renderer(
        request_for({"HTTP_ACCEPT": "application/json;q=0, text/html"}), renderers()
    )
    assert type(expected_renderer) is JSONRenderer


# -- an unknown ?format= (rev-fixes40) ---------------------------------------------------------


class Rf40FormatlessRenderer(BaseRenderer):
    """A project's renderer chosen by ``Accept`` alone: ``BaseRenderer``'s ``format`` is
    ``None``."""

    media_type = "text/csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return b"csv"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/books/", "/api/"])
def test_rf40_an_unknown_format_beside_a_renderer_of_no_format_is_a_400(api, monkeypatch, path):
    """The 400's message lists the renderers' formats; one of them ``None`` made the join
    raise ``TypeError``: a 500 for ``?format=xml``. A format two renderers share is named
    once. The renderer of no format still answers its ``Accept``."""
    view_class = resolve(path).func.cls
    monkeypatch.setattr(
        view_class, "renderer_classes", [JSONRenderer, Rf40FormatlessRenderer, JSONRenderer]
    )
    body = assert_error(api.get(f"{path}?format=xml"), 400, "INVALID_QUERY")
    assert body["details"] == {"format": "unknown format; one of: json"}
    assert api.get(path, HTTP_ACCEPT="text/csv").content == b"csv"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/books/", "/api/"])
def test_rf40_an_unknown_format_names_the_projects_url_format_override(api, path):
    """DRF's ``URL_FORMAT_OVERRIDE`` (decisions.md: it reaches resource views) renames the
    parameter: ``?fmt=xml`` was refused naming ``format``, a parameter never sent."""
    BookFactory()
    renamed = {**settings.REST_FRAMEWORK, "URL_FORMAT_OVERRIDE": "fmt"}
    with override_settings(REST_FRAMEWORK=renamed):
        body = assert_error(api.get(f"{path}?fmt=xml"), 400, "INVALID_QUERY")
        assert body["details"] == {"fmt": "unknown format; one of: json, api"}
        assert "'fmt'" in body["error"]
        assert api.get(f"{path}?fmt=json").status_code == 200


@pytest.mark.django_db
def test_rf40_an_unknown_format_suffix_of_a_projects_route_is_a_404():
    """A project routing a resource's ViewSet with DRF's ``format_suffix_patterns``: an
    unknown suffix (``/books.xml``) is part of the path, not a query parameter; it was a 400
    naming ``format``, a parameter the request does not carry. It is the envelope's 404,
    as the path of nothing is; a known suffix answers."""
    BookFactory()
    view = resolve("/api/books/").func.cls.as_view({"get": "list"})
    factory = APIRequestFactory()
    refused = view(factory.get("/books.xml"), format="xml").render()
    assert refused.status_code == 404, refused.content
    assert json.loads(refused.content)["code"] == "NOT_FOUND"
    answer = view(factory.get("/books.json"), format="json")
    assert answer.status_code == 200 and answer.accepted_renderer.format == "json"


@pytest.mark.django_db
def test_a_renamed_format_parameter_is_not_read_as_a_filter(api):
    """DRF's ``URL_FORMAT_OVERRIDE`` names the format parameter; the query language reserved
    only ``format``, so a project naming it after a field (here ``title``) had its
    ``?title=json`` both choose the renderer and filter the rows by a title "json"."""
    BookFactory(title="Dune")
    renamed = {**settings.REST_FRAMEWORK, "URL_FORMAT_OVERRIDE": "title"}
    with override_settings(REST_FRAMEWORK=renamed):
        response = api.get("/api/books/?title=json")
        assert response.status_code == 200, response.content
        assert [row["title"] for row in json.loads(response.content)["docs"]] == ["Dune"]
