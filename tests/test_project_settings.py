"""django-arc under global Django and DRF settings a project may choose, which differ from
the test settings: what arc writes itself follows them where DRF's own answers do, so one
API never spells one thing two ways."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import translation
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from django_arc import Resource, ResourceSite
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.exceptions import ArcError
from django_arc.serializers import ArcJSONField
from shop.models import Product
from tests.factories import (
    AuthorFactory,
    OrganizationFactory,
    ProductFactory,
    UserFactory,
    member_client,
)
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Author, Book, Gauge

pytestmark = pytest.mark.django_db


class NamedAuthorSerializer(serializers.ModelSerializer):
    """A project serializer with an object-level rule: DRF files its error under the
    project's ``NON_FIELD_ERRORS_KEY``."""

    class Meta:
        model = Author
        fields = ["id", "name"]

    def validate(self, attrs):
        if attrs.get("name") == "nobody":
            raise serializers.ValidationError("An author needs a name.")
        return attrs


settings_site = ResourceSite(name="project-settings")


@settings_site.register
class NamedAuthorResource(Resource):
    model = Author
    name = "named-authors"
    serializer_class = NamedAuthorSerializer
    permissions = {k: P.require_auth() for k in ("list", "get", "create", "update", "delete")}


def _not_on_rows(request, resource, action, obj=None):
    """A project's check raising Django's own ``PermissionDenied`` for a row: DRF answers it
    403 on a request (``handle_exception``), never a 500."""
    if obj is not None and obj.name == "locked" and action != "get":
        raise DjangoPermissionDenied("This author is locked.")
    return request.user.is_authenticated


@settings_site.register
class LockedAuthorResource(Resource):
    model = Author
    name = "locked-authors"
    fields = ["id", "name"]
    permissions = {k: _not_on_rows for k in ("list", "get", "create", "update", "delete")}


def _sealed_rows(request, resource, action, obj=None):
    """A project's check raising Django's own ``PermissionDenied`` on reading a row it lets
    the caller change."""
    if obj is not None and obj.name == "sealed" and action == "get":
        raise DjangoPermissionDenied("This author is sealed.")
    return request.user.is_authenticated


@settings_site.register
class SealedAuthorResource(Resource):
    model = Author
    name = "sealed-authors"
    fields = ["id", "name"]
    permissions = {k: _sealed_rows for k in ("list", "get", "create", "update", "delete")}


def _checked_rows(request, resource, action, obj=None):
    """A project's check refusing to read a row with Django's own ``ValidationError`` (a
    request answers it 400) while letting the caller change it."""
    if obj is not None and obj.name == "checked" and action == "get":
        raise DjangoValidationError({"name": ["This author is being checked."]})
    return request.user.is_authenticated


@settings_site.register
class CheckedAuthorResource(Resource):
    model = Author
    name = "checked-authors"
    fields = ["id", "name"]
    permissions = {k: _checked_rows for k in ("list", "get", "create", "update", "delete")}


def _frozen_rows(request, resource, action, obj=None):
    """A project's check refusing a write of a row with Django's own ``ValidationError``
    (a request answers it 400, naming the field), on a row the caller reads."""
    if obj is not None and obj.name == "frozen" and action != "get":
        raise DjangoValidationError({"name": ["This author is frozen."]})
    return request.user.is_authenticated


@settings_site.register
class FrozenAuthorResource(Resource):
    model = Author
    name = "frozen-authors"
    fields = ["id", "name"]
    permissions = {k: _frozen_rows for k in ("list", "get", "create", "update", "delete")}


class _ThrottledByHeader(BaseThrottle):
    """Throttles the requests sending ``X-Throttle-Me`` (a rate spent, without a clock)."""

    def allow_request(self, request, view):
        return "HTTP_X_THROTTLE_ME" not in request.META

    def wait(self):
        return 60


@settings_site.register
class ThrottledBookResource(Resource):
    model = Book
    name = "throttled-books"
    fields = ["id", "title", "isbn", "pages"]
    throttle_classes = [_ThrottledByHeader]
    permissions = {k: P.require_auth() for k in ("list", "get", "update")}


@settings_site.register
class CuratedBookResource(Resource):
    """Only an admin sets whether a book is available (a boolean: a form's unchecked box)."""

    model = Book
    name = "curated-books"
    fields = ["id", "title", "isbn", "pages", "author", "is_available"]
    field_permissions = {"is_available": F.writable_by("admin")}
    permissions = {"create": P.allow_public()}


class _RequiredLabelsSerializer(serializers.ModelSerializer):
    labels = ArcJSONField()  # required, not null

    class Meta:
        model = Gauge
        fields = ["id", "reading", "labels"]


@settings_site.register
class LabelledGaugeResource(Resource):
    model = Gauge
    name = "labelled-gauges"
    serializer_class = _RequiredLabelsSerializer
    permissions = {"create": P.allow_public()}


@settings_site.register
class LateCheckedBookResource(Resource):
    """An update whose hooks change the row before it is refused: ``before_update`` adds a
    field the body did not send, ``after_update`` refuses the saved title."""

    model = Book
    name = "late-books"
    fields = ["id", "title", "isbn", "pages"]
    permissions = {k: P.require_auth() for k in ("list", "get", "create", "update", "delete")}

    def before_update(self, request, instance, data):
        return {**data, "pages": 999}

    def after_update(self, request, instance):
        if instance.title == "late":  # one message, not a list
            raise ArcError("TITLE_LATE", "Refused", 422, {"title": "Refused after the save."})


class _UserGroupsSerializer(serializers.ModelSerializer):
    """A user's groups, choosable among the "team" groups only (a queryset narrower than
    the table: the rows a body may name)."""

    groups = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Group.objects.filter(name__startswith="team"),
    )

    class Meta:
        model = User
        fields = ["id", "username", "groups"]


@settings_site.register
class TeamUserResource(Resource):
    model = User
    name = "team-users"
    serializer_class = _UserGroupsSerializer
    permissions = {k: P.allow_public() for k in ("list", "get", "update")}


@pytest.fixture
def non_field_errors_key(settings):
    """The project names object-level errors ``__all__`` (Django forms' spelling)."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NON_FIELD_ERRORS_KEY": "__all__"}
    api_settings.reload()
    yield "__all__"
    settings.REST_FRAMEWORK = {
        k: v for k, v in settings.REST_FRAMEWORK.items() if k != "NON_FIELD_ERRORS_KEY"
    }
    api_settings.reload()


def test_object_level_errors_are_filed_under_the_projects_non_field_errors_key(
    settings, non_field_errors_key
):
    """DRF files a serializer's object-level errors under ``NON_FIELD_ERRORS_KEY``; django-arc
    wrote its own (a body that is not an object, a bulk item that is not one) under
    ``non_field_errors`` whatever the setting, so one API answered them under two keys."""
    api = client_for(UserFactory())
    with site_mounted(settings, "s", settings_site):
        own = assert_error(
            api.post("/s/named-authors/", {"name": "nobody"}, format="json"),
            400,
            "VALIDATION_ERROR",
        )
        assert own["details"] == {non_field_errors_key: ["An author needs a name."]}
        for body in ([1, 2], "text"):
            answer = assert_error(
                api.post("/s/named-authors/", body, format="json"), 400, "VALIDATION_ERROR"
            )
            assert answer["details"] == {non_field_errors_key: ["Expected a JSON object."]}
    author = AuthorFactory()
    bulk = assert_error(
        api.post(
            "/api/bulk-books/bulk/",
            {"items": [{"title": "t", "isbn": "i", "author": author.pk}, 7]},
            format="json",
        ),
        400,
        "VALIDATION_ERROR",
    )
    assert bulk["details"] == {"items": {"1": {non_field_errors_key: ["Expected a JSON object."]}}}


class CamelCaseJSONParser(JSONParser):
    """A project's JSON parser: DRF's, with the keys renamed (djangorestframework-camel-case
    subclasses DRF's JSONParser the same way)."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if isinstance(data, dict):
            return {k.replace("fullName", "name"): v for k, v in data.items()}
        return data


class ProjectFormParser(FormParser):
    """A project's form parser, DRF's underneath."""


@pytest.mark.parametrize("key", [None, "k-1"])
def test_a_projects_subclasses_of_drfs_parsers_keep_the_body_bounds(settings, monkeypatch, key):
    """``DEFAULT_PARSER_CLASSES`` naming subclasses of DRF's parsers (DRF reads the setting
    into ``APIView.parser_classes`` on import, as the test sets it): only DRF's own classes
    were put under django-arc's bounds, so a body nested 100,000 levels deep made ``json``
    raise ``RecursionError`` (a 500), and a form body in a charset Django cannot decode with
    (``punycode``) a ``UnicodeError`` (a 500). Both are 400 now, and the project's parse()
    still runs."""
    monkeypatch.setattr(APIView, "parser_classes", [CamelCaseJSONParser, ProjectFormParser])
    api = client_for(UserFactory())
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    with site_mounted(settings, "s", settings_site):
        deep = "[" * 100_000 + "]" * 100_000
        answer = api.generic("POST", "/s/named-authors/", deep, "application/json", **headers)
        assert_error(answer, 400, "VALIDATION_ERROR")
        assert answer.json()["error"] == "JSON parse error - nested deeper than 128 levels"
        form = "application/x-www-form-urlencoded; charset=punycode"
        assert_error(
            api.generic("POST", "/s/named-authors/", "name=x", form, **headers),
            400,
            "VALIDATION_ERROR",
        )
        created = api.post("/s/named-authors/", {"fullName": "Ann"}, format="json")
        assert created.status_code == 201, created.content
        assert created.json()["data"]["name"] == "Ann"
    assert list(Author.objects.values_list("name", flat=True)) == ["Ann"]


class FormOrJSONParser(FormParser, JSONParser):
    """A project's parser built on two of DRF's: its ``parse()`` and ``media_type`` are
    FormParser's, the first in its MRO."""


def test_a_parser_on_two_of_drfs_gets_the_bounds_of_the_one_it_parses_with(settings, monkeypatch):
    """The bounds were chosen by the first of DRF's parsers in django-arc's own table the
    class is an instance of (JSONParser), not by the one its ``parse()`` resolves to: the
    form reading ran under the JSON bounds, and a form body in a charset Django cannot
    decode with (``punycode``) raised ``UnicodeError`` (a 500). It is the form parser's 400
    now, and a decodable form still creates the row."""
    monkeypatch.setattr(APIView, "parser_classes", [FormOrJSONParser])
    api = client_for(UserFactory())
    with site_mounted(settings, "s", settings_site):
        form = "application/x-www-form-urlencoded; charset=punycode"
        answer = api.generic("POST", "/s/named-authors/", "name=x", form)
        assert_error(answer, 400, "VALIDATION_ERROR")
        assert answer.json()["error"] == (
            "Form parse error - the body cannot be decoded with its charset"
        )
        created = api.generic(
            "POST", "/s/named-authors/", "name=Ann", "application/x-www-form-urlencoded"
        )
        assert created.status_code == 201, created.content
    assert list(Author.objects.values_list("name", flat=True)) == ["Ann"]


def _html_form(page, method):
    """The inputs (name → value) of the browsable API's HTML form for ``method``, and the
    JSON its raw-data form starts with; ``None`` when the page has no such form."""
    html = page.content.decode()
    form = re.search(rf'<form [^>]*data-method="{method}"[^>]*>.*?</form>', html, re.S)
    if method == "POST":
        form = re.search(r'<form [^>]*method="POST" enctype=[^>]*>.*?</form>', html, re.S)
    if form is None:
        return None, None
    inputs = dict(
        re.findall(r'<(?:input|select)[^>]* name="([^"]+)"[^>]*?(?:value="([^"]*)")?', form[0])
    )
    inputs.pop("csrfmiddlewaretoken", None)
    raw = re.search(r'<textarea name="_content"[^>]*>(.*?)</textarea>', html, re.S)
    return inputs, json.loads(unescape(raw[1])) if raw else None


def test_the_browsable_apis_forms_hold_only_what_the_caller_may_write(monkeypatch):
    """``DEFAULT_RENDERER_CLASSES`` with DRF's ``BrowsableAPIRenderer`` (read into
    ``APIView.renderer_classes`` on import, as the test sets it): its forms were built from
    the resource's whole serializer, so an editor's page offered ``cost`` (a field only
    admins may even read) and ``status`` (only admins may write), and the HTML form, which
    posts every input it shows, was refused with 403 ``FIELD_WRITE_DENIED`` whatever was
    typed. The forms now hold what this caller may write; an admin's still hold both."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, cost="7.00")
    editor, admin = member_client(org, "editor"), member_client(org, "admin")
    html = {"HTTP_ACCEPT": "text/html"}

    for page, method in (("/api/t-products/", "POST"), (f"/api/t-products/{product.pk}/", "PUT")):
        inputs, raw = _html_form(editor.get(page, **html), method)
        assert set(inputs) == set(raw) == {"name", "sku", "price"}, (page, inputs, raw)
        inputs, raw = _html_form(admin.get(page, **html), method)
        assert set(inputs) == set(raw) == {"name", "sku", "price", "status", "cost"}
    inputs, _ = _html_form(editor.get("/api/t-products/", **html), "POST")
    typed = {**inputs, "name": "Typed", "sku": "T-1", "price": "3.00"}
    created = editor.post("/api/t-products/", typed, format="multipart", **html)
    assert created.status_code == 201, created.content
    assert Product.objects.filter(sku="T-1", organization=org).exists()
    # a viewer, who may not write, is offered no form at all; an anonymous caller no page
    assert _html_form(member_client(org, "viewer").get("/api/t-products/", **html), "POST") == (
        None,
        None,
    )
    anonymous = client_for().get(f"/api/t-products/{product.pk}/", **html)
    assert anonymous.status_code == 401
    assert "7.00" not in anonymous.content.decode()


def _form_html(page, method):
    """The HTML of ``method``'s form on the page (the ``POST`` form is a plain one, the
    others are sent by DRF's script from their ``data-method``), ``None`` when it has none."""
    html = page.content.decode()
    if method == "POST":
        form = re.search(r'<form [^>]*method="POST" enctype=[^>]*>.*?</form>', html, re.S)
    else:
        form = re.search(rf'<form [^>]*data-method="{method}"[^>]*>.*?</form>', html, re.S)
    return form[0] if form else None


def _filled(page, method):
    """The values of the ``<input>`` elements of ``method``'s HTML form (name → value)."""
    form = _form_html(page, method)
    inputs = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name, value = re.search(r'name="([^"]+)"', tag), re.search(r'value="([^"]*)"', tag)
        if name and name[1] != "csrfmiddlewaretoken":
            inputs[name[1]] = unescape(value[1]) if value else None
    return inputs


def _selected(page, method, name):
    """The ``(value, label)`` options of ``method``'s form's ``<select name=...>``, and the
    value of the selected one."""
    form = _form_html(page, method)
    select = re.search(rf'<select[^>]* name="{name}".*?</select>', form, re.S)[0]
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)
    chosen = re.findall(r'<option value="([^"]*)"\s*selected', select)
    return [o for o in options if o[0]], chosen


def test_the_browsable_apis_put_form_holds_the_row_as_the_caller_may_write_it(monkeypatch):
    """A row's page offered an empty ``PUT`` form: DRF fills it from the serializer behind
    the response's data, which the envelope hides. The HTML and raw-data forms now hold the
    row — the fields this caller may write, nothing else (an editor's page never shows the
    admin-only ``cost``) — and an admin's hold ``status`` and ``cost`` too."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Lamp", sku="L-1", price="12.50", cost="913.57")
    page = f"/api/t-products/{product.pk}/"
    html = {"HTTP_ACCEPT": "text/html"}

    editor = member_client(org, "editor").get(page, **html)
    _, raw = _html_form(editor, "PUT")
    assert _filled(editor, "PUT") == {"name": "Lamp", "sku": "L-1", "price": "12.50"}
    assert raw == {"name": "Lamp", "sku": "L-1", "price": "12.50"}
    assert "913.57" not in editor.content.decode()

    admin = member_client(org, "admin").get(page, **html)
    _, raw = _html_form(admin, "PUT")
    assert _filled(admin, "PUT") == {
        "name": "Lamp",
        "sku": "L-1",
        "price": "12.50",
        "cost": "913.57",
    }
    assert _selected(admin, "PUT", "status")[1] == ["active"]
    assert raw == {
        "name": "Lamp",
        "sku": "L-1",
        "price": "12.50",
        "status": "active",
        "cost": "913.57",
    }


def test_the_page_a_browsable_put_answers_holds_the_saved_row(monkeypatch):
    """The page answering a ``PUT`` (or ``PATCH``) sent from the browsable API is the row's
    page too, but only a get's filled its forms: after a save the ``PUT`` form was empty
    again, and sending it as shown (its text inputs post ``""``) changed one field and
    blanked or refused the others. It holds the saved row, as a get's page does, with the
    same narrowing (the editor's never holds ``cost``). A refused ``PUT``'s page holds what
    was sent (over the row, for what was not):
    ``test_a_refused_browsable_write_shows_its_form_again_with_what_was_sent``."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Lamp", sku="L-1", price="12.50", cost="913.57")
    url, html = f"/api/t-products/{product.pk}/", {"HTTP_ACCEPT": "text/html"}
    editor = member_client(org, "editor")
    for method, name in (("put", "Desk"), ("patch", "Chair")):
        body = {"name": name, "sku": "L-1", "price": "12.50"}
        saved = getattr(editor, method)(url, body, format="multipart", **html)
        assert saved.status_code == 200, saved.content
        assert _filled(saved, "PUT") == body
        assert _html_form(saved, "PUT")[1] == body
        assert "913.57" not in saved.content.decode()
    refused = editor.put(url, {"price": "not a price"}, format="multipart", **html)
    assert refused.status_code == 400
    assert _filled(refused, "PUT") == {"name": "Chair", "sku": "L-1", "price": "not a price"}


def _as_posted(page, method):
    """What a browser posts from ``method``'s HTML form as shown: every text input's value,
    a checked box's, each ``<select>``'s selected option (the first one when none is), a
    ``<textarea>``'s text."""
    form = _form_html(page, method)
    body = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or name[1] == "csrfmiddlewaretoken":
            continue
        if 'type="checkbox"' in tag:
            if "checked" in tag:
                body[name[1]] = "on"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        body[name[1]] = unescape(value[1]) if value else ""
    for name, options in re.findall(r'<select[^>]* name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        values = re.findall(r'<option value="([^"]*)"', options)
        chosen = re.findall(r'<option value="([^"]*)"\s*selected', options)
        body[name] = unescape((chosen or values)[0])
    for name, text in re.findall(
        r'<textarea[^>]* name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S
    ):
        body[name] = unescape(text)
    return body


def _form_errors(page, method):
    """The error messages ``method``'s HTML form shows under its inputs."""
    shown = re.findall(r'<span class="help-block">([^<]+)</span>', _form_html(page, method))
    return [unescape(message) for message in shown]


def test_a_refused_browsable_write_shows_its_form_again_with_what_was_sent(monkeypatch):
    """DRF shows the form of a refused write (a 400) again with what was sent and each
    field's error; the envelope hides the serializer DRF reads them from, so the page of a
    refused ``POST`` offered an empty form and a refused ``PUT``'s an empty one too: what
    was typed was lost. The form sent is shown again holding what was sent (a ``PUT``'s over
    the row, for the fields it did not send) and the errors under their inputs, narrowed as
    every form is: the fields the caller may write, none it reads masked. A refused
    ``PATCH`` (the raw-data form's) shows the ``PUT`` form filled from the row, as DRF does,
    and the raw-data forms hold what they hold on the row's page."""
    from shop.models import Membership

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Lamp", sku="L-1", price="12.50", cost="913.57")
    url, html = f"/api/t-products/{product.pk}/", {"HTTP_ACCEPT": "text/html"}
    editor = member_client(org, "editor")

    typed = {"name": "Typed", "sku": "T-9", "price": "not a price"}
    refused = editor.post("/api/t-products/", typed, format="multipart", **html)
    assert refused.status_code == 400, refused.content
    assert _filled(refused, "POST") == typed
    assert _form_errors(refused, "POST") == ["A valid number is required."]
    assert _html_form(refused, "POST")[1] == {"name": "", "sku": "", "price": None}
    assert not Product.objects.filter(sku="T-9").exists()

    refused = editor.put(url, {"name": "Desk", "price": "-"}, format="multipart", **html)
    assert refused.status_code == 400, refused.content
    assert _filled(refused, "PUT") == {"name": "Desk", "sku": "L-1", "price": "-"}
    assert _form_errors(refused, "PUT") == ["A valid number is required."]
    assert _html_form(refused, "PUT")[1] == {"name": "Lamp", "sku": "L-1", "price": "12.50"}
    assert "913.57" not in refused.content.decode()
    # sent again once corrected, it saves what was typed and nothing else
    saved = editor.put(url, {**_as_posted(refused, "PUT"), "price": "13.00"}, format="multipart")
    assert saved.status_code == 200, saved.content
    product.refresh_from_db()
    assert (product.name, product.sku, str(product.price), str(product.cost)) == (
        "Desk",
        "L-1",
        "13.00",
        "913.57",
    )

    refused = editor.patch(url, {"price": "-"}, format="json", **html)
    assert refused.status_code == 400, refused.content
    assert _filled(refused, "PUT") == {"name": "Desk", "sku": "L-1", "price": "13.00"}
    assert _form_errors(refused, "PUT") == []

    # an admin's form shown again holds the admin's fields; a writer reading sku masked
    # is never shown the row's sku, even in the form of its refused write
    admin = member_client(org, "admin")
    refused = admin.put(url, {"cost": "x"}, format="multipart", **html)
    assert _filled(refused, "PUT") == {"name": "Desk", "sku": "L-1", "price": "13.00", "cost": "x"}
    writer = member_client(org, "editor")
    user = Membership.objects.filter(organization=org, role="editor").last().user
    Membership.objects.create(user=user, organization=org, role="viewer")
    refused = writer.put(url, {"name": "Chair", "price": "-"}, format="multipart", **html)
    assert refused.status_code == 400, refused.content
    assert _filled(refused, "PUT") == {"name": "Chair", "price": "-"}
    assert "L-1" not in _form_html(refused, "PUT")


def test_drfs_admin_renderer_shows_a_refused_writes_form_with_what_was_sent(monkeypatch):
    """DRF's ``AdminRenderer`` shows a refused write's form above the list or row (its
    "error form"): it was empty too; it holds what was sent and the field's error."""
    from rest_framework.renderers import AdminRenderer

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, AdminRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Lamp", sku="L-1", price="12.50")
    editor, html = member_client(org, "editor"), {"HTTP_ACCEPT": "text/html"}
    for method, url, body in (
        ("post", "/api/t-products/", {"name": "Typed", "sku": "T-9", "price": "-"}),
        ("put", f"/api/t-products/{product.pk}/", {"name": "Typed", "price": "-"}),
    ):
        refused = getattr(editor, method)(url, body, format="multipart", **html)
        assert refused.status_code == 400, refused.content
        page = refused.content.decode()
        assert '<input name="name" class="form-control" type="text"  value="Typed" >' in page
        assert '<span class="help-block">A valid number is required.</span>' in page


def test_a_refused_update_whose_row_was_never_read_offers_no_blank_put_form(monkeypatch):
    """An update refused before its row is read (a keyed ``PUT`` whose key was used for
    another body: 422 ``IDEMPOTENCY_KEY_REUSED`` from ``initial()``) left the form shown
    again with no row under it: its ``PUT`` forms (HTML and raw-data) held what was sent
    and blanks for the rest, ``sku`` (which this writer reads masked) among them, so the
    form sent back as shown overwrote the masked ``sku`` and blanked ``price``. A refused
    update's page offers its ``PUT``/``PATCH`` forms only over its row."""
    from shop.models import Membership

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Lamp", sku="L-1", price="12.50")
    writer = member_client(org, "editor")
    user = Membership.objects.filter(organization=org, role="editor").last().user
    Membership.objects.create(user=user, organization=org, role="viewer")
    url = f"/api/idem-products/{product.pk}/"
    first = writer.put(url, {"name": "Desk"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 200, first.content
    again = writer.put(
        url, {"name": "Chair"}, format="json", HTTP_IDEMPOTENCY_KEY="k1", HTTP_ACCEPT="text/html"
    )
    assert again.status_code == 422, again.content
    assert _html_form(again, "PUT") == (None, None)
    # no field, label or raw-data value names it (the page's random CSRF tokens, which may
    # spell "sku" by chance, left out)
    assert "sku" not in re.sub(r"[A-Za-z0-9]{32,}", "", again.content.decode()).lower()
    # a refused update whose row was read is still shown again over it
    refused = writer.put(
        url, {"name": "Chair", "price": "-"}, format="multipart", HTTP_ACCEPT="text/html"
    )
    assert refused.status_code == 400, refused.content
    assert _filled(refused, "PUT") == {"name": "Chair", "price": "-"}


def test_a_refused_deletes_page_fills_its_put_form_from_the_row(monkeypatch):
    """The page of a ``DELETE`` refused with 409 (a product its orders ``PROTECT``) is the
    row's page, still there; its ``PUT`` forms (HTML and raw-data) were built from no row:
    blanks, and ``sku``, which this admin reads masked (it holds ``viewer`` too), so the form
    sent back as shown blanked the product and overwrote its masked ``sku``. They are filled
    from the row, as a get's page's are; the page of a delete that happened offers none."""
    from shop.models import Membership
    from tests.factories import OrderFactory

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Lamp", sku="L-1", price="12.50", cost="913.57")
    OrderFactory(product=product)
    admin, html = member_client(org, "admin"), {"HTTP_ACCEPT": "text/html"}
    user = Membership.objects.filter(organization=org, role="admin").last().user
    Membership.objects.create(user=user, organization=org, role="viewer")
    url = f"/api/t-products/{product.pk}/"
    got = admin.get(url, **html)
    refused = admin.delete(url, **html)
    assert refused.status_code == 409, refused.content
    assert (
        _filled(refused, "PUT")
        == _filled(got, "PUT")
        == {
            "name": "Lamp",
            "price": "12.50",
            "cost": "913.57",
        }
    )
    assert _html_form(refused, "PUT")[1] == _html_form(got, "PUT")[1]
    assert "L-1" not in refused.content.decode() and 'name="sku"' not in refused.content.decode()
    # a delete that happened leaves no row to offer a PUT form over
    gone = ProductFactory(organization=org, name="Gone")
    deleted = admin.delete(f"/api/t-products/{gone.pk}/", **html)
    assert deleted.status_code == 200, deleted.content
    assert _html_form(deleted, "PUT") == (None, None)
    # nor does a soft delete, whose row is still in its table
    from tests.testapp.models import Article

    article = Article.objects.create(slug="soft", title="Soft")
    soft = admin.delete(f"/api/soft-articles/{article.pk}/", **html)
    assert soft.status_code == 200, soft.content
    assert Article.objects.filter(pk=article.pk, deleted_at__isnull=False).exists()
    assert _html_form(soft, "PUT") == (None, None)


def test_a_rows_page_answered_before_the_row_was_read_offers_no_blank_put_form(
    settings, monkeypatch
):
    """A row's page answered before its row was read (a throttled get, 429) offered DRF's
    ``PUT`` forms (HTML and raw-data) built from no row: blanks, which, sent as shown,
    blanked the row. A row's ``PUT``/``PATCH`` forms are offered only filled from it; the
    get's own page still is."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    book = Book.objects.create(title="Early", isbn="I-1", pages=120, author=AuthorFactory())
    api, html = client_for(UserFactory()), {"HTTP_ACCEPT": "text/html"}
    with site_mounted(settings, "s", settings_site):
        got = api.get(f"/s/throttled-books/{book.pk}/", **html)
        throttled = api.get(f"/s/throttled-books/{book.pk}/", HTTP_X_THROTTLE_ME="1", **html)
    assert got.status_code == 200, got.content
    assert _html_form(got, "PUT")[1] == {"title": "Early", "isbn": "I-1", "pages": 120}
    assert throttled.status_code == 429, throttled.content
    assert _html_form(throttled, "PUT") == (None, None)


def test_a_refused_updates_form_is_shown_again_over_the_row_as_stored(settings, monkeypatch):
    """A write refused after its save (an ``after_update`` check; the transaction rolled
    back) left its hooks' changes on the instance read: its form, shown again, held a
    ``pages`` the hook set and the table never kept. The row is read again, as stored."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    book = Book.objects.create(title="Early", isbn="I-1", pages=120, author=AuthorFactory())
    api = client_for(UserFactory())
    with site_mounted(settings, "s", settings_site):
        refused = api.put(
            f"/s/late-books/{book.pk}/",
            {"title": "late"},
            format="multipart",
            HTTP_ACCEPT="text/html",
        )
    assert refused.status_code == 422, refused.content
    assert _filled(refused, "PUT") == {"title": "late", "isbn": "I-1", "pages": "120"}
    assert _form_errors(refused, "PUT") == ["Refused after the save."]
    book.refresh_from_db()
    assert (book.title, book.pages) == ("Early", 120)


def test_a_refused_puts_form_keeps_the_rows_value_of_a_field_it_did_not_send(monkeypatch):
    """A PUT is partial: a field its form body leaves out keeps the row's value. The form
    shown again after a refused PUT holds the row's value for it too, a checkbox among them
    (DRF reads a checkbox a non-partial form body leaves out as unchecked: ``False``)."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    book = Book.objects.create(
        title="Early", isbn="I-2", pages=120, is_available=True, author=AuthorFactory()
    )
    refused = client_for().put(
        f"/api/books/{book.pk}/",
        {"title": "Late", "pages": "many"},
        format="multipart",
        HTTP_ACCEPT="text/html",
    )
    assert refused.status_code == 400, refused.content
    assert _filled(refused, "PUT")["title"] == "Late"
    assert re.search(r'<input[^>]*name="is_available"[^>]*checked', _form_html(refused, "PUT"))
    book.refresh_from_db()
    assert (book.title, book.is_available) == ("Early", True)


def test_a_write_a_hook_refuses_shows_its_form_again_with_what_was_sent(monkeypatch):
    """A ``before_create`` hook refusing the body (``ArcError`` 422, naming the field with one
    message, not a list) is a refusal of what was sent too: its form is shown again holding
    it, the message once under the field it names."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    author = AuthorFactory()
    body = {"title": "forbidden", "isbn": "I-9", "author": author.pk}
    refused = client_for().post("/api/books/", body, format="multipart", HTTP_ACCEPT="text/html")
    assert refused.status_code == 422, refused.content
    assert _filled(refused, "POST")["title"] == "forbidden"
    assert _filled(refused, "POST")["isbn"] == "I-9"
    assert _selected(refused, "POST", "author")[1] == [str(author.pk)]
    assert _form_errors(refused, "POST") == ["x"]


def test_a_refused_form_shown_again_offers_only_the_callers_tenants_rows(monkeypatch):
    """A form shown again after its write was refused holds what was sent, but its
    relations still offer only the caller's tenant's rows: another tenant's product named in
    the body is neither an option nor selected, and its name is nowhere on the page."""
    from tests.factories import OrderFactory

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    lamp = ProductFactory(organization=ours, name="Our lamp")
    desk = ProductFactory(organization=ours, name="Our desk")
    secret = ProductFactory(organization=theirs, name="Their secret prototype")
    order = OrderFactory(product=lamp, quantity=3, customer_email="buyer@ours.example")
    editor, html = member_client(ours, "editor"), {"HTTP_ACCEPT": "text/html"}
    body = {"product": secret.pk, "quantity": "2", "customer_email": "typed@ours.example"}
    ours_only = sorted([(str(lamp.pk), "Our lamp"), (str(desk.pk), "Our desk")])
    for method, url, form in (
        ("post", "/api/orders/", "POST"),
        ("put", f"/api/orders/{order.reference}/", "PUT"),
    ):
        refused = getattr(editor, method)(url, body, format="multipart", **html)
        assert refused.status_code == 400, refused.content
        options, chosen = _selected(refused, form, "product")
        assert sorted(options) == ours_only and chosen == [], (method, options, chosen)
        assert _filled(refused, form) == {"quantity": "2", "customer_email": "typed@ours.example"}
        assert _form_errors(refused, form) == [f'Invalid pk "{secret.pk}" - object does not exist.']
        assert "Their secret prototype" not in refused.content.decode()
    order.refresh_from_db()
    assert (order.product_id, order.quantity) == (lamp.pk, 3)


def test_the_filled_put_form_leaves_out_what_the_caller_reads_masked(monkeypatch):
    """``redact_for`` masks a field on read but lets the caller write it: filled from the
    row, the form would have shown the value the caller is only shown as ``***``. A field the
    caller reads masked is left out of the filled forms (the empty ``POST`` form still
    offers it), and a post of the filled form leaves its value alone."""
    from shop.models import Membership

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Lamp", sku="SECRET-SKU-1", price="12.50")
    writer = member_client(org, "editor")  # an editor who is also a viewer: sku is masked
    user = Membership.objects.get(organization=org, role="editor").user
    Membership.objects.create(user=user, organization=org, role="viewer")
    page = writer.get(f"/api/t-products/{product.pk}/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert "SECRET-SKU-1" not in page.content.decode()
    filled = _filled(page, "PUT")
    assert filled == {"name": "Lamp", "price": "12.50"}
    assert _html_form(page, "PUT")[1] == {"name": "Lamp", "price": "12.50"}
    saved = writer.put(
        f"/api/t-products/{product.pk}/", {**filled, "name": "Desk"}, format="multipart"
    )
    assert saved.status_code == 200, saved.content
    product.refresh_from_db()
    assert (product.name, product.sku) == ("Desk", "SECRET-SKU-1")
    listing = writer.get("/api/t-products/", HTTP_ACCEPT="text/html")
    assert "sku" in _html_form(listing, "POST")[0]


def test_the_filled_put_form_offers_only_the_callers_tenants_rows(monkeypatch):
    """Filled from the row, the form's relations are still narrowed to the rows a body may
    name: an order's ``product`` ``<select>`` holds the caller's tenant's products, the
    order's own selected, and no other tenant's product is anywhere on the page."""
    from tests.factories import OrderFactory

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    lamp = ProductFactory(organization=ours, name="Our lamp")
    desk = ProductFactory(organization=ours, name="Our desk")
    ProductFactory(organization=theirs, name="Their secret prototype")
    order = OrderFactory(product=lamp, quantity=3, customer_email="buyer@ours.example")
    page = member_client(ours, "editor").get(
        f"/api/orders/{order.reference}/", HTTP_ACCEPT="text/html"
    )
    assert page.status_code == 200
    options, chosen = _selected(page, "PUT", "product")
    assert sorted(options) == sorted([(str(lamp.pk), "Our lamp"), (str(desk.pk), "Our desk")])
    assert chosen == [str(lamp.pk)]
    _, raw = _html_form(page, "PUT")
    assert _filled(page, "PUT") == {"quantity": "3", "customer_email": "buyer@ours.example"}
    assert raw == {"product": lamp.pk, "quantity": 3, "customer_email": "buyer@ours.example"}
    assert "Their secret prototype" not in page.content.decode()


def test_a_filled_form_leaves_out_a_relation_whose_row_it_does_not_offer(monkeypatch):
    """An order of the caller's tenant whose product is another tenant's (written by the
    platform, or before the narrowing): its filled form's ``product`` ``<select>`` offers
    the caller's tenant's products, none of them the order's, so none was selected and the
    browser sent the first one: the form, sent back untouched, re-pointed the order. A
    relation whose current row its form does not offer is left out of the filled forms
    (HTML and raw-data): the form sent back leaves it alone; a relation it offers stays."""
    from shop.models import Order
    from tests.factories import OrderFactory

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    lamp = ProductFactory(organization=ours, name="Our lamp")
    secret = ProductFactory(organization=theirs, name="Their secret prototype")
    order = OrderFactory(
        organization=ours, product=secret, quantity=3, customer_email="buyer@ours.example"
    )
    editor, html = member_client(ours, "editor"), {"HTTP_ACCEPT": "text/html"}
    url = f"/api/orders/{order.reference}/"
    page = editor.get(url, **html)
    assert page.status_code == 200
    assert 'name="product"' not in _form_html(page, "PUT")
    assert _html_form(page, "PUT")[1] == {"quantity": 3, "customer_email": "buyer@ours.example"}
    assert "Their secret prototype" not in page.content.decode()
    sent = editor.put(url, {**_as_posted(page, "PUT"), "quantity": "4"}, format="multipart")
    assert sent.status_code == 200, sent.content
    assert Order.objects.values_list("product_id", "quantity").get(pk=order.pk) == (secret.pk, 4)
    # the page of that save, and of a refused one, leave it out too
    saved = editor.put(url, {"quantity": "5"}, format="multipart", **html)
    assert saved.status_code == 200 and 'name="product"' not in _form_html(saved, "PUT")
    refused = editor.put(url, {"quantity": "-1"}, format="multipart", **html)
    assert refused.status_code == 400 and 'name="product"' not in _form_html(refused, "PUT")
    # an order whose product is offered keeps its select, that product selected
    mine = OrderFactory(product=lamp)
    page = editor.get(f"/api/orders/{mine.reference}/", **html)
    assert _selected(page, "PUT", "product")[1] == [str(lamp.pk)]


def test_the_bulk_page_offers_no_delete_button(monkeypatch):
    """DRF offers a ``DELETE`` button on every page whose route allows the method; it sends
    no body, and a bulk delete needs one (``ids`` or ``filter``), so the bulk page's button
    was only ever refused. The bulk page offers none; a row's page still does."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org)
    admin, html = member_client(org, "admin"), {"HTTP_ACCEPT": "text/html"}
    bulk = admin.get("/api/idem-products/bulk/", **html)
    assert "DELETE" in bulk["Allow"]
    assert 'data-method="DELETE"' not in bulk.content.decode()
    assert ">DELETE</button>" not in bulk.content.decode()
    row = admin.get(f"/api/idem-products/{product.pk}/", **html)
    assert row.status_code == 200 and 'data-method="DELETE"' in row.content.decode()


def test_the_put_form_is_offered_only_to_who_may_change_that_row(monkeypatch):
    """DRF judges a form's row by the object permissions: with the row now known, a page's
    ``PUT`` form is offered to its owner (``OwnedBy``) and not to another user, who may read
    the row but not change it (the form used to be offered to both, and its post refused)."""
    from tests.testapp.models import Article

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    owner, other = UserFactory(), UserFactory()
    article = Article.objects.create(owner=owner, slug="a", title="Mine")
    page = f"/api/owned-articles/{article.pk}/"
    mine = client_for(owner).get(page, HTTP_ACCEPT="text/html")
    assert _filled(mine, "PUT")["title"] == "Mine"
    theirs = client_for(other).get(page, HTTP_ACCEPT="text/html")
    assert theirs.status_code == 200 and 'data-method="PUT"' not in theirs.content.decode()


def test_a_row_page_whose_form_check_raises_djangos_permission_denied_is_no_500(
    settings, monkeypatch
):
    """With the row known, DRF judges a page's forms by the object permissions, catching only
    its own ``APIException``: a project's check raising Django's ``PermissionDenied`` (or
    ``Http404``), which a request answers 403, escaped the page's rendering: Django answered
    the row's page, which the caller may read, with its own HTML 403. The page is served and
    offers no form the check refuses."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    user = UserFactory()
    locked = Author.objects.create(name="locked")
    with site_mounted(settings, "s", settings_site):
        client = client_for(user)
        assert client.put(f"/s/locked-authors/{locked.pk}/", {"name": "x"}).status_code == 403
        page = client.get(f"/s/locked-authors/{locked.pk}/", HTTP_ACCEPT="text/html")
        assert page.status_code == 200
        assert 'data-method="PUT"' not in page.content.decode()
        open_row = Author.objects.create(name="open")
        page = client.get(f"/s/locked-authors/{open_row.pk}/", HTTP_ACCEPT="text/html")
        assert page.status_code == 200
        assert _filled(page, "PUT") == {"name": "open"}


def test_a_row_page_whose_form_check_raises_djangos_validation_error_is_no_500(
    settings, monkeypatch
):
    """An object check refusing a write with Django's ``ValidationError`` (a refusal below
    500 like any other since fix-seen4b: a PUT of the row answers 400 naming the field)
    escaped the page's rendering as Django's ``PermissionDenied`` did: DRF judges a page's
    forms by the object permissions and catches its own ``APIException`` only, so the row's
    page, which the caller may read, was a 500. The page is served without the form."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    user = UserFactory()
    frozen = Author.objects.create(name="frozen")
    with site_mounted(settings, "s", settings_site):
        client = client_for(user)
        r = client.put(f"/s/frozen-authors/{frozen.pk}/", {"name": "x"}, format="json")
        assert r.status_code == 400, r.content
        assert r.json()["details"] == {"name": ["This author is frozen."]}
        page = client.get(f"/s/frozen-authors/{frozen.pk}/", HTTP_ACCEPT="text/html")
        assert page.status_code == 200
        assert 'data-method="PUT"' not in page.content.decode()
        open_row = Author.objects.create(name="open")
        page = client.get(f"/s/frozen-authors/{open_row.pk}/", HTTP_ACCEPT="text/html")
        assert page.status_code == 200
        assert _filled(page, "PUT") == {"name": "open"}


def test_a_routes_page_offers_no_single_row_form(monkeypatch):
    """A bulk route's or an action's page offered the resource's single-row HTML form and a
    raw-data form holding one row, bodies the route refuses (``{"items": [...]}``, ``{"action":
    ...}``). A route's page offers its raw-data form empty, and no HTML form."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org)
    editor = member_client(org, "editor")
    for url in ("/api/idem-products/bulk/", f"/api/idem-products/{product.pk}/action/"):
        page = editor.get(url, HTTP_ACCEPT="text/html")
        assert page.status_code == 405, url
        html = page.content.decode()
        assert not re.search(r'<form [^>]*enctype="multipart/form-data"', html), url
        raws = re.findall(r'<textarea name="_content"[^>]*>(.*?)</textarea>', html, re.S)
        assert all(raw.strip() == "" for raw in raws), (url, raws)
        # bulk offers its raw-data forms (POST, PATCH); an action without a body resolves
        # no action, whose permission grants nothing: no form at all
        assert len(raws) == (2 if "bulk" in url else 0), (url, raws)
    # the resource's own pages still offer theirs
    assert _html_form(editor.get("/api/idem-products/", HTTP_ACCEPT="text/html"), "POST")[0]


def test_a_projects_filter_backends_pagination_and_permissions_do_not_reach_resources(
    settings, monkeypatch
):
    """``DEFAULT_FILTER_BACKENDS`` with DRF's ``SearchFilter``/``OrderingFilter``,
    ``DEFAULT_PAGINATION_CLASS`` with a ``PAGE_SIZE`` and ``DEFAULT_PERMISSION_CLASSES`` of
    ``AllowAny`` (DRF reads them into the generic views on import, as the test sets them):
    a resource keeps its query language, pages and permissions, so ``?ordering=cost`` cannot
    sort a viewer's rows by a field it may not read, and an anonymous caller is still 401."""
    from rest_framework.filters import OrderingFilter, SearchFilter
    from rest_framework.generics import GenericAPIView
    from rest_framework.pagination import PageNumberPagination
    from rest_framework.permissions import AllowAny

    monkeypatch.setattr(GenericAPIView, "filter_backends", [SearchFilter, OrderingFilter])
    monkeypatch.setattr(GenericAPIView, "pagination_class", PageNumberPagination)
    monkeypatch.setattr(APIView, "permission_classes", [AllowAny])
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "PAGE_SIZE": 1}
    api_settings.reload()
    try:
        org = OrganizationFactory()
        for cost in ("3.00", "1.00", "2.00"):
            ProductFactory(organization=org, cost=cost, name=f"p{cost}")
        viewer = member_client(org, "viewer")
        default = viewer.get("/api/t-products/").json()
        assert (default["limit"], default["total"], len(default["docs"])) == (20, 3, 3)
        for ordering in ("cost", "-cost"):
            answer = viewer.get(f"/api/t-products/?ordering={ordering}").json()
            assert answer["docs"] == default["docs"]
        assert_error(viewer.get("/api/t-products/?sort=cost"), 400, "INVALID_QUERY")
        assert_error(client_for().get("/api/t-products/"), 401, "UNAUTHORIZED")
    finally:
        settings.REST_FRAMEWORK = {
            k: v for k, v in settings.REST_FRAMEWORK.items() if k != "PAGE_SIZE"
        }
        api_settings.reload()


def test_codes_stay_the_same_in_every_language(settings):
    """With ``LocaleMiddleware`` and a French caller, DRF's and Django's messages are
    French (a field's validation message, a 405), django-arc's own are SPEC's English words;
    the ``code`` a client acts on is the same in every language."""
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:2],
        "django.middleware.locale.LocaleMiddleware",
        *settings.MIDDLEWARE[2:],
    ]
    # LocaleMiddleware leaves the caller's language active on the thread: restore it
    with translation.override("en"):
        french = {"HTTP_ACCEPT_LANGUAGE": "fr"}
        org = OrganizationFactory()
        admin = member_client(org, "admin")
        invalid = assert_error(
            admin.post("/api/t-products/", {"name": "x"}, format="json", **french),
            400,
            "VALIDATION_ERROR",
        )
        assert invalid["details"]["sku"] == ["Ce champ est obligatoire."]
        refused = assert_error(
            admin.options("/api/t-products/", **french), 405, "METHOD_NOT_ALLOWED"
        )
        assert refused["error"].startswith("Méthode") and "OPTIONS" in refused["error"]
        anonymous = assert_error(
            client_for().get("/api/t-products/", **french), 401, "UNAUTHORIZED"
        )
        assert anonymous["error"] == "Authentication required"
        viewer = member_client(org, "viewer")
        assert_error(viewer.post("/api/t-products/", {}, format="json", **french), 403, "FORBIDDEN")
        assert_error(viewer.get("/api/t-products/?sort=zzz", **french), 400, "INVALID_QUERY")


def test_a_projects_versioning_answers_an_unknown_version_in_the_envelope(monkeypatch):
    """``DEFAULT_VERSIONING_CLASS`` with ``ALLOWED_VERSIONS`` (read into the classes on
    import, as the test sets them): an unknown version is DRF's refusal (406 in ``Accept``,
    404 in the query string) in the error envelope, on reads and writes; a known one is
    served."""
    from rest_framework import versioning

    user = client_for(UserFactory())
    schemes = {
        versioning.AcceptHeaderVersioning: (406, "NOT_ACCEPTABLE"),
        versioning.QueryParameterVersioning: (404, "NOT_FOUND"),
    }
    for scheme, (status, code) in schemes.items():
        monkeypatch.setattr(scheme, "allowed_versions", ["1", "2"])
        monkeypatch.setattr(APIView, "versioning_class", scheme)
        bad = {"HTTP_ACCEPT": "application/json; version=9"}
        assert_error(user.get("/api/authors/?version=9", **bad), status, code)
        post = user.post("/api/plain-authors/?version=9", {"name": "x"}, format="json", **bad)
        assert_error(post, status, code)
        good = {"HTTP_ACCEPT": "application/json; version=2"}
        assert user.get("/api/authors/?version=2", **good).status_code == 200
    assert not Author.objects.exists()


def test_the_browsable_apis_forms_offer_only_the_callers_tenants_rows(monkeypatch):
    """The HTML form renders a writable relation as a ``<select>`` of its queryset's rows:
    an order's ``product`` listed every organization's products, names and ids, to a
    member of one. Its choices are now the rows a body may name (the preset's narrowing of
    a write), the caller's tenant's."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    own = ProductFactory(organization=ours, name="Our lamp")
    ProductFactory(organization=theirs, name="Their secret prototype")
    page = member_client(ours, "admin").get("/api/t-orders/", HTTP_ACCEPT="text/html")
    html = page.content.decode()
    form = re.search(r'<form [^>]*method="POST" enctype=[^>]*>.*?</form>', html, re.S)[0]
    product = re.search(r'<select[^>]* name="product".*?</select>', form, re.S)[0]
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', product)
    assert [o for o in options if o[0]] == [(str(own.pk), "Our lamp")]
    assert "Their secret prototype" not in html


def test_drfs_admin_renderer_answers_a_refused_request_with_its_error(monkeypatch):
    """DRF's ``AdminRenderer`` answers a 400 by running the request again as a GET to show
    the page behind the error: a GET refused by the query language raised again inside the
    renderer, and a route without GET (a bulk write, an action) has no ``get`` to run; both
    were a 500 instead of the 400. The error is rendered alone now; a write's 400 on a route
    with a GET still shows the page behind it."""
    from rest_framework.renderers import AdminRenderer

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, AdminRenderer])
    org = OrganizationFactory()
    product = ProductFactory(organization=org, name="Our lamp")
    admin = member_client(org, "admin")
    html = {"HTTP_ACCEPT": "text/html"}
    refused = admin.get("/api/t-products/?sort=nope", **html)
    assert refused.status_code == 400
    assert "INVALID_QUERY" in refused.content.decode()
    for url, body in (
        ("/api/idem-products/bulk/", {"items": "nope"}),
        (f"/api/idem-products/{product.pk}/action/", {"price": "nope"}),
    ):
        refused = admin.post(url, body, format="json", **html)
        assert refused.status_code == 400, (url, refused.status_code)
        assert "VALIDATION_ERROR" in refused.content.decode()
    invalid = admin.post("/api/t-products/", {"name": "x"}, format="json", **html)
    assert invalid.status_code == 400
    assert "Our lamp" in invalid.content.decode()  # the list behind the error
    assert admin.get("/api/t-products/?sort=nope").json()["code"] == "INVALID_QUERY"


def test_drfs_admin_renderer_answers_a_refused_write_whose_get_raises_djangos_error(
    settings, monkeypatch
):
    """DRF's ``AdminRenderer`` runs a 400's request again as a GET, outside the view's
    exception handling; django-arc catches DRF's ``APIException`` there (the GET is refused
    too: the error is rendered alone), but a project's check raising Django's
    ``PermissionDenied`` (or ``Http404``) on that GET, which a request answers 403, escaped
    the renderer: a 500 instead of the write's 400."""
    from rest_framework.renderers import AdminRenderer

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, AdminRenderer])
    sealed = Author.objects.create(name="sealed")
    with site_mounted(settings, "s", settings_site):
        client = client_for(UserFactory())
        url = f"/s/sealed-authors/{sealed.pk}/"
        assert client.get(url).status_code == 403
        refused = client.patch(url, {"name": "x" * 101}, format="json", HTTP_ACCEPT="text/html")
        assert refused.status_code == 400
        assert "VALIDATION_ERROR" in refused.content.decode()


def test_drfs_admin_renderer_answers_a_refused_write_whose_get_raises_djangos_validation_error(
    settings, monkeypatch
):
    """The same GET refused with Django's ``ValidationError`` (the handler answers it 400,
    as DRF's) escaped the renderer too: a 500 instead of the write's 400."""
    from rest_framework.renderers import AdminRenderer

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, AdminRenderer])
    checked = Author.objects.create(name="checked")
    with site_mounted(settings, "s", settings_site):
        client = client_for(UserFactory())
        url = f"/s/checked-authors/{checked.pk}/"
        assert client.get(url).status_code == 400
        refused = client.patch(url, {"name": "x" * 101}, format="json", HTTP_ACCEPT="text/html")
        assert refused.status_code == 400
        assert "VALIDATION_ERROR" in refused.content.decode()


def test_a_filled_form_leaves_out_a_many_relation_one_of_whose_rows_it_does_not_offer(
    settings, monkeypatch
):
    """A ``many=True`` relation whose current rows its ``<select multiple>`` offers only in
    part (a user in a "team" group and in one the relation's queryset hides): the form
    selected the offered one only, and sent back untouched it dropped the hidden group. The
    relation is left out, so the form sent back leaves the groups alone; a user whose every
    group is offered keeps the select, those groups selected."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    team, staff = Group.objects.create(name="team-a"), Group.objects.create(name="staff")
    mixed, plain = User.objects.create(username="mixed"), User.objects.create(username="plain")
    mixed.groups.set([team, staff])
    plain.groups.set([team])
    api, html = client_for(), {"HTTP_ACCEPT": "text/html"}
    with site_mounted(settings, "s", settings_site):
        page = api.get(f"/s/team-users/{mixed.pk}/", **html)
        assert page.status_code == 200, page.content
        assert 'name="groups"' not in _form_html(page, "PUT")
        sent = api.put(
            f"/s/team-users/{mixed.pk}/",
            {**_as_posted(page, "PUT"), "username": "renamed"},
            format="multipart",
        )
        assert sent.status_code == 200, sent.content
        page = api.get(f"/s/team-users/{plain.pk}/", **html)
    assert set(mixed.groups.all()) == {team, staff}
    assert User.objects.get(pk=mixed.pk).username == "renamed"
    assert _selected(page, "PUT", "groups")[1] == [str(team.pk)]


def test_whether_a_refused_forms_many_relation_offers_its_rows_is_one_query(settings, monkeypatch):
    """A refused update's page fills its forms from the row read again, without its
    prefetches: deciding whether the ``groups`` ``<select multiple>`` offers every current
    group listed them (one query) and then counted the offered ones (another), where the
    docs say one query per relation and page decides. It is one query now: whether a
    current group is not among the offered ones. Left out (a hidden group) or kept (every
    group offered, then rendered selected), the check is one of the page's queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    team, staff = Group.objects.create(name="team-a"), Group.objects.create(name="staff")
    mixed, plain = User.objects.create(username="mixed"), User.objects.create(username="plain")
    mixed.groups.set([team, staff])
    plain.groups.set([team])
    api, html = client_for(), {"HTTP_ACCEPT": "text/html"}

    def refused_page(user):
        with CaptureQueriesContext(connection) as ctx:
            page = api.patch(f"/s/team-users/{user.pk}/", {"username": ""}, format="json", **html)
        assert page.status_code == 400, page.content
        return page, [q["sql"] for q in ctx.captured_queries if '"auth_group"' in q["sql"]]

    with site_mounted(settings, "s", settings_site):
        page, reads = refused_page(mixed)
        assert 'name="groups"' not in _form_html(page, "PUT")
        # the row's prefetch, the check (the select is left out: nothing renders the groups)
        assert len(reads) == 2, reads
        # every group offered: the select is kept, its group selected
        page, reads = refused_page(plain)
        assert _selected(page, "PUT", "groups")[1] == [str(team.pk)]
    assert set(mixed.groups.all()) == {team, staff}


def test_a_rows_put_form_sent_as_shown_keeps_its_blank_and_json_values(api, monkeypatch):
    """A form body was read as a dict of each name's value as sent, where DRF reads each
    field's (``get_value()``): a blank for a nullable number or date is ``null`` to DRF, and a
    ``JSONField``'s text is JSON. So a row whose ``rating``/``published`` are null, its
    ``PUT`` form sent back as shown, was refused ("A valid number is required."), and a JSON
    column sent from its form was stored as the text of its JSON (``{"a": 1}`` became the
    string ``'{"a": 1}'``). A form body is read as DRF reads it."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    html = {"HTTP_ACCEPT": "text/html"}
    book = Book.objects.create(title="Blank", isbn="B-1", pages=10, author=AuthorFactory())
    page = api.get(f"/api/books/{book.pk}/", **html)
    assert page.status_code == 200, page.content
    sent = api.put(f"/api/books/{book.pk}/", _as_posted(page, "PUT"), format="multipart")
    assert sent.status_code == 200, sent.content
    book.refresh_from_db()
    assert (book.title, book.rating, book.published) == ("Blank", None, None)

    gauge = Gauge.objects.create(reading=1, labels={"a": [1, "b"]})
    page = api.get(f"/api/gauges/{gauge.pk}/", **html)
    sent = api.put(f"/api/gauges/{gauge.pk}/", _as_posted(page, "PUT"), format="multipart")
    assert sent.status_code == 200, sent.content
    gauge.refresh_from_db()
    assert gauge.labels == {"a": [1, "b"]}
    created = api.post("/api/gauges/", {"reading": "2", "labels": '{"c": 2}'}, format="multipart")
    assert created.status_code == 201, created.content
    assert created.json()["data"]["labels"] == {"c": 2}
    # what JSON cannot hold, or is no JSON, is refused naming the field, as DRF refuses it
    for text in (
        "NaN",
        '{"x": Infinity}',
        "1e999",
        "[" * 100_000,
        "[" * 129 + "]" * 129,
        "not json",
    ):
        refused = api.post("/api/gauges/", {"reading": "3", "labels": text}, format="multipart")
        assert_error(refused, 400, "VALIDATION_ERROR")
        assert refused.json()["details"] == {"labels": ["Value must be valid JSON."]}
    assert Gauge.objects.count() == 2


def test_a_create_form_without_a_checked_box_is_false_as_drf_reads_it(api):
    """A browser sends no value for an unchecked box: DRF reads a form's missing boolean as
    ``False`` on a create. The body was read as a dict, so the box left unchecked on the
    create form made the row ``is_available`` (the model's default, ``True``)."""
    author = AuthorFactory()
    body = {"title": "Off", "isbn": "O-1", "pages": "3", "author": str(author.pk)}
    created = api.post("/api/books/", body, format="multipart")
    assert created.status_code == 201, created.content
    assert created.json()["data"]["is_available"] is False
    assert Book.objects.get(isbn="O-1").is_available is False
    # a JSON body leaving it out gets the model's default, as with DRF
    created = api.post("/api/books/", {**body, "isbn": "O-2"}, format="json")
    assert created.json()["data"]["is_available"] is True
    # an update leaves a box the form did not send alone (PUT is partial)
    book = Book.objects.get(isbn="O-2")
    sent = api.put(f"/api/books/{book.pk}/", {"title": "Renamed"}, format="multipart")
    assert sent.status_code == 200, sent.content
    book.refresh_from_db()
    assert (book.title, book.is_available) == ("Renamed", True)


def test_a_create_form_leaves_a_box_the_caller_may_not_write_unsent(api, settings):
    """A form that leaves a box out is ``False`` on a create, but only for a field the caller
    may write: one it may not is not on its form, and reading the box as ``False`` there
    would answer every create 403 ``FIELD_WRITE_DENIED`` for a field it never sent."""
    author = AuthorFactory()
    body = {"title": "Kept", "isbn": "K-1", "pages": "3", "author": str(author.pk)}
    with site_mounted(settings, "s", settings_site):
        created = api.post("/s/curated-books/", body, format="multipart")
    assert created.status_code == 201, created.content
    assert Book.objects.get(isbn="K-1").is_available is True


def test_a_json_fields_blank_or_null_form_value_is_not_sent_or_refused(api, settings, monkeypatch):
    """The create form of a JSON column without an initial value shows ``null``; parsed, it
    was ``None`` past DRF's null check (which saw text), and a column that holds no null
    answered 409 (DRF: a 500). A blank or ``null`` form value is ``null`` where the field
    allows it, not sent where it is optional (the model's default), and refused as null
    where it is required."""
    monkeypatch.setattr(APIView, "renderer_classes", [JSONRenderer, BrowsableAPIRenderer])
    page = api.get("/api/gauges/", HTTP_ACCEPT="text/html")
    assert _as_posted(page, "POST")["labels"] == "null"
    created = api.post(
        "/api/gauges/", _as_posted(page, "POST") | {"reading": "1"}, format="multipart"
    )
    assert created.status_code == 201, created.content
    assert created.json()["data"]["labels"] == {}
    gauge = Gauge.objects.get()
    sent = api.put(f"/api/gauges/{gauge.pk}/", {"labels": " "}, format="multipart")
    assert sent.status_code == 200, sent.content
    assert Gauge.objects.get().labels == {}
    with site_mounted(settings, "s", settings_site):
        for text, message in (
            ("null", "This field may not be null."),
            ("", "Value must be valid JSON."),  # DRF's answer to a blank
        ):
            refused = api.post(
                "/s/labelled-gauges/", {"reading": "1", "labels": text}, format="multipart"
            )
            body = assert_error(refused, 400, "VALIDATION_ERROR")
            assert body["details"] == {"labels": [message]}
    assert Gauge.objects.count() == 1
