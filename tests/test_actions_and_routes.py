"""SPEC §7: ``POST /<name>/{id}/action/`` and ``@route`` (raw and enveloped)."""

import copy
import hashlib
import json
import uuid

import pytest
from rest_framework import serializers
from rest_framework.test import APIClient

from django_arc import Resource, ResourceSite, action, presets, route
from django_arc import permissions as P
from django_arc.actions import INSTANCE
from django_arc.outbox.models import OutboxEvent
from shop.models import Product
from tests.factories import BookFactory, MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import site_mounted
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    a, b = OrganizationFactory(), OrganizationFactory()

    def member(org, role):
        client = APIClient()
        client.force_authenticate(MembershipFactory(organization=org, role=role).user)
        client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
        return client

    return {
        "mine": ProductFactory(organization=a, status="draft", price=10, cost=4),
        "theirs": ProductFactory(organization=b, status="draft"),
        "admin": member(a, "admin"),
        "editor": member(a, "editor"),
        "viewer": member(a, "viewer"),
    }


def act(client, product, body):
    return client.post(f"/api/action-products/{product.pk}/action/", body, format="json")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and body["code"] == code
    return body


def test_action_runs_emits_and_renders_the_instance_through_field_permissions(shop):
    mine = shop["mine"]
    r = act(shop["editor"], mine, {"action": "publish", "note": "go", "price": "12.50"})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["success"] is True
    assert body["data"]["status"] == "active" and body["data"]["price"] == "12.50"
    assert "cost" not in body["data"]  # editors do not see cost
    mine.refresh_from_db()
    assert (mine.status, str(mine.price)) == ("active", "12.50")
    event = OutboxEvent.objects.get(type="action-products.publish")
    assert event.payload == {
        "id": mine.pk,
        "action": "publish",
        "input": {"note": "go", "price": "12.50"},
    }
    assert event.meta["resource_id"] == str(mine.pk)
    admin_view = act(shop["admin"], mine, {"action": "publish", "note": "again"}).json()
    assert admin_view["data"]["cost"] == "4.00"


def test_unknown_or_missing_action_is_400_naming_the_allowed_ones(shop):
    for body in ({"action": "explode"}, {"note": "x"}, {"action": 3}):
        err = assert_error(act(shop["admin"], shop["mine"], body), 400, "VALIDATION_ERROR")
        assert "archive, publish" in err["details"]["action"][0]
    r = shop["admin"].post(f"/api/action-products/{shop['mine'].pk}/action/", [1, 2], format="json")
    assert_error(r, 400, "VALIDATION_ERROR")
    assert not OutboxEvent.objects.exists()


def test_action_input_is_validated_and_nothing_is_written(shop):
    mine = shop["mine"]
    err = assert_error(
        act(shop["editor"], mine, {"action": "publish", "note": "x" * 21, "price": "-1"}),
        400,
        "VALIDATION_ERROR",
    )
    assert set(err["details"]) == {"note", "price"}
    mine.refresh_from_db()
    assert mine.status == "draft" and not OutboxEvent.objects.exists()


def test_action_on_a_row_of_another_tenant_is_404(shop):
    r = act(shop["admin"], shop["theirs"], {"action": "publish", "note": "x"})
    assert_error(r, 404, "NOT_FOUND")
    r = shop["admin"].post("/api/action-products/999999/action/", {"action": "archive"})
    assert_error(r, 404, "NOT_FOUND")
    shop["theirs"].refresh_from_db()
    assert shop["theirs"].status == "draft" and not OutboxEvent.objects.exists()


def test_action_permissions_own_then_resource_wide_then_deny(shop):
    mine = shop["mine"]
    # publish: its own permission (admin or editor)
    assert_error(act(shop["viewer"], mine, {"action": "publish", "note": "x"}), 403, "FORBIDDEN")
    # archive: none of its own, so action_permissions (admin)
    assert_error(act(shop["editor"], mine, {"action": "archive"}), 403, "FORBIDDEN")
    r = act(shop["admin"], mine, {"action": "archive"})
    assert r.status_code == 200 and r.json()["data"] == {"archived": True}
    # anonymous: 401
    assert_error(act(APIClient(), mine, {"action": "archive"}), 401, "UNAUTHORIZED")
    # a resource with neither: denied to everyone, even where everything else is public
    book = BookFactory(title="quiet")
    r = APIClient().post(f"/api/books/{book.pk}/action/", {"action": "shout"}, format="json")
    assert_error(r, 401, "UNAUTHORIZED")
    book.refresh_from_db()
    assert book.title == "quiet"


def test_a_failing_action_rolls_back_its_writes_and_its_event(shop):
    mine = shop["mine"]
    r = act(shop["editor"], mine, {"action": "publish", "note": "fail"})
    assert_error(r, 409, "PUBLISH_FAILED")
    mine.refresh_from_db()
    assert mine.status == "draft" and not OutboxEvent.objects.exists()


def test_resources_without_actions_have_no_action_route(shop):
    r = shop["admin"].post(f"/api/t-products/{shop['mine'].pk}/action/", {"action": "x"})
    assert r.status_code == 404


def test_enveloped_route_reads_through_the_view(shop):
    ProductFactory(organization=shop["mine"].organization)
    r = shop["viewer"].get("/api/action-products/stats/")
    assert r.status_code == 200
    assert r.json() == {"success": True, "data": {"count": 2}}  # not the other tenant's row
    assert_error(APIClient().get("/api/action-products/stats/"), 401, "UNAUTHORIZED")


def test_detail_route_looks_up_through_the_filters_and_renders_by_field_permissions(shop):
    r = shop["editor"].get(f"/api/action-products/{shop['mine'].pk}/card/")
    assert r.status_code == 200 and "cost" not in r.json()["data"]
    assert (
        shop["admin"].get(f"/api/action-products/{shop['mine'].pk}/card/").json()["data"]["cost"]
        == "4.00"
    )
    assert_error(
        shop["admin"].get(f"/api/action-products/{shop['theirs'].pk}/card/"), 404, "NOT_FOUND"
    )


@pytest.mark.parametrize(
    "body,content_type",
    [
        (b'{"b": 1,   "a": [1,2]}\n', "application/json"),
        (b"\x00\xffnot json at all", "application/octet-stream"),
        (b"t=1&v=%ZZ", "application/x-www-form-urlencoded"),
    ],
)
def test_raw_route_gets_the_body_bytes_untouched_and_answers_without_envelope(body, content_type):
    r = APIClient().post("/api/books/webhook/", body, content_type=content_type)
    assert r.status_code == 202, r.content
    assert r.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_raw_route_still_checks_its_permission(settings):
    r = APIClient().get("/api/books/webhook/")
    assert r.status_code == 405  # only POST is mapped
    assert Product.objects.count() == 0


class MeasureInput(serializers.Serializer):
    """An input with DRF fields that take any JSON value: NUL and lone surrogates pass them."""

    labels = serializers.JSONField(required=False)
    extra = serializers.DictField(required=False)
    tags = serializers.ListField(required=False)


measure_site = ResourceSite(name="measure")


@measure_site.register
class MeasuredProductResource(Resource):
    model = Product
    name = "measured-products"
    fields = ["id", "name", "sku", "price", "organization"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}

    @action(permissions=P.require_org_role("admin", "editor"), input=MeasureInput)
    def measure(self, request, instance, data):
        instance.name = "measured"
        instance.save(update_fields=["name"])
        return {"ok": True}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"labels": {"a": "\x00"}}, "labels", "Null characters are not allowed."),
        ({"labels": "\ud800"}, "labels", "Surrogate characters are not allowed: U+D800."),
        ({"extra": {"\x00": 1}}, "extra", "Null characters are not allowed."),
        ({"tags": ["ok", "a\x00"]}, "tags", "Null characters are not allowed."),
        ({"tags": [1e400]}, "tags", "Infinity and NaN are not valid JSON numbers."),
        ({"extra": {"a": -1e400}}, "extra", "Infinity and NaN are not valid JSON numbers."),
    ],
    ids=["json nul", "json surrogate", "dict key nul", "list nul", "list inf", "dict -inf"],
)
def test_an_action_input_its_event_cannot_store_is_400_naming_the_field(
    shop, settings, body, field, message
):
    """DRF's JSON, dict and list fields take NUL and lone surrogates, and its dict and list
    fields the infinity ``1e400`` parses to, which the action's event cannot store: the
    event's encoder refused them inside the write, a 500. Now a 400 naming the field, with
    nothing written."""
    mine = shop["mine"]
    # an infinity as the number 1e400 parses to (the parser refuses the word Infinity)
    payload = json.dumps({"action": "measure", **body}).replace("Infinity", "1e400")
    with site_mounted(settings, "m", measure_site):
        r = shop["editor"].post(
            f"/m/measured-products/{mine.pk}/action/", payload, content_type="application/json"
        )
        body = assert_error(r, 400, "VALIDATION_ERROR")
        assert body["details"] == {field: [message]}
        ok = shop["editor"].post(
            f"/m/measured-products/{mine.pk}/action/",
            {"action": "measure", "labels": {"a": "b"}},
            format="json",
        )
        assert ok.status_code == 200, ok.content
    mine.refresh_from_db()
    assert mine.name == "measured"
    assert OutboxEvent.objects.filter(type="measured-products.measure").count() == 1


nested_site = ResourceSite(name="nested-writes")


@nested_site.register
class RenumberedBookResource(Resource):
    """A detail route that reuses the update path and then saves the row itself."""

    model = Book
    name = "renumbered-books"
    fields = ["id", "title", "pages"]
    permissions = {k: P.allow_public() for k in ("list", "get", "update")}

    @route("POST", "renumber", detail=True, permissions=P.allow_public(), response=INSTANCE)
    def renumber(self, request, instance, view):
        view.perform_update(instance, {"title": "renumbered"})
        # the row goes (another request's DELETE, committed between the two writes)
        Book.objects.filter(pk=instance.pk).delete()
        instance.pages = 99
        instance.save()
        return instance

    @route("POST", "clone", detail=True, permissions=P.allow_public(), response=INSTANCE)
    def clone(self, request, instance):
        clone = copy.copy(instance)
        clone.pk, clone.uid, clone.isbn, clone.title = None, uuid.uuid4(), "copy", "copy"
        clone._state.adding = True
        clone.save()
        return clone


def test_a_routes_own_save_after_a_nested_perform_update_still_only_updates(settings, api):
    """An unsafe detail route's handler runs with its row's ``save()`` update-only, so a row
    deleted meanwhile is 404, not inserted again. ``perform_update`` (which a route may call,
    as docs/decisions.md says) guards its own save the same way and, on leaving, removed the
    guard altogether: the route's later ``save()`` brought the deleted row back (200)."""
    book = BookFactory(title="old", pages=1)
    with site_mounted(settings, "nested", nested_site):
        response = api.post(f"/nested/renumbered-books/{book.pk}/renumber/")
    assert_error(response, 404, "NOT_FOUND")
    # the route's transaction rolled back: the update, the delete and the event
    assert list(Book.objects.filter(pk=book.pk).values_list("title", "pages")) == [("old", 1)]
    assert not OutboxEvent.objects.filter(type="renumbered-books.updated").exists()


def test_a_copy_a_detail_route_makes_of_its_row_saves_as_itself(settings, api):
    """The route's row has an update-only ``save`` as an instance attribute while the
    handler runs; ``copy.copy()`` copied it, bound to the original, so the clone's
    ``save()`` updated the original row and inserted nothing: 200 with ``"id": null``."""
    book = BookFactory(title="old", isbn="orig", pages=1)
    with site_mounted(settings, "nested", nested_site):
        response = api.post(f"/nested/renumbered-books/{book.pk}/clone/")
    assert response.status_code == 200, response.content
    created = response.json()["data"]
    assert created["id"] not in (None, book.pk) and created["title"] == "copy"
    assert sorted(Book.objects.values_list("isbn", "title")) == [("copy", "copy"), ("orig", "old")]


# -- a route's body: the same answer with or without an Idempotency-Key ----------------------


def _seen8c_admin_client(org):
    """An API client of an admin of ``org``, naming it in every request."""
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="admin").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    return client


def _seen8c_raise_prices(body, content_type, keyed):
    """``body`` POSTed to ``idem-products``' ``raise-prices`` route by an admin of a new
    organization holding one product priced 5 (with an ``Idempotency-Key`` when
    ``keyed``): the answer, and the product as it is then."""
    org = OrganizationFactory()
    product = ProductFactory(organization=org, price=5)
    headers = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())} if keyed else {}
    r = _seen8c_admin_client(org).generic(
        "POST", "/api/idem-products/raise-prices/", body, content_type=content_type, **headers
    )
    product.refresh_from_db()
    return r, product


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        ("{bad", "application/json", "JSON parse error - Expecting property name"),
        ("[" * 200 + "]" * 200, "application/json", "JSON parse error - nested deeper"),
        ("--zz\r\nbroken", "multipart/form-data", "Multipart form parse error"),
    ],
    ids=["malformed", "too-deep", "multipart"],
)
@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_a_routes_body_that_does_not_parse_is_400_with_or_without_a_key(
    body, content_type, error, keyed
):
    """A keyed request's body is parsed for its fingerprint before the route runs, so a
    malformed JSON body to a route that never reads ``request.data`` (``raise-prices``) was
    400 with an ``Idempotency-Key`` and ran (200, prices raised) without one. A body a
    parser takes is read before any non-raw route runs: 400 both ways, nothing written."""
    r, product = _seen8c_raise_prices(body, content_type, keyed)
    assert r.status_code == 400, r.content[:300]
    assert r.json()["code"] == "VALIDATION_ERROR" and r.json()["error"].startswith(error)
    assert product.price == 5


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_a_route_still_takes_a_body_no_parser_takes(keyed):
    """A body of a type no parser takes (a CSV the route reads from ``request.body``) is
    the route's to read: it runs, with or without a key."""
    r, product = _seen8c_raise_prices("a,b\n1,2\n", "text/csv", keyed)
    assert r.status_code == 200, r.content[:300]
    assert product.price == 6


def test_a_preset_routes_malformed_body_is_400_and_restores_nothing():
    org = OrganizationFactory()
    client = _seen8c_admin_client(org)
    created = client.post("/api/all-articles/", {"title": "t", "slug": "s"}, format="json")
    article = created.json()["data"]["id"]
    assert client.delete(f"/api/all-articles/{article}/").status_code == 200
    events = OutboxEvent.objects.count()
    url = f"/api/all-articles/{article}/restore/"
    r = client.generic("POST", url, "{bad", content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"
    assert client.get(f"/api/all-articles/{article}/").status_code == 404
    assert OutboxEvent.objects.count() == events


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_a_delete_whose_body_does_not_parse_is_400_with_or_without_a_key(keyed):
    """``DELETE`` reads no body, but a keyed one is parsed for its fingerprint: malformed
    JSON was 400 with a key and deleted the row without one. 400 both ways, row kept; a
    body no parser takes is ignored both ways, as before."""
    org = OrganizationFactory()
    client = _seen8c_admin_client(org)
    headers = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())} if keyed else {}
    product = ProductFactory(organization=org)
    url = f"/api/idem-products/{product.pk}/"
    r = client.generic("DELETE", url, "{bad", content_type="application/json", **headers)
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", r.content
    assert Product.objects.filter(pk=product.pk).exists()
    assert not OutboxEvent.objects.filter(type__endswith=".deleted").exists()
    headers = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())} if keyed else {}
    r = client.generic("DELETE", url, "x", content_type="text/plain", **headers)
    assert r.status_code == 200, r.content
    assert not Product.objects.filter(pk=product.pk).exists()


def _seen8a_helper_taking_text(self, text):
    return json.loads(text)


def _seen8a_helper_taking_nothing(self):
    return None


@pytest.mark.parametrize(
    "helper",
    [_seen8a_helper_taking_text, _seen8a_helper_taking_nothing],
    ids=["taking-text", "taking-nothing"],
)
def test_a_viewset_subclass_method_named_parse_body_does_not_replace_arcs_parsing(
    monkeypatch, helper
):
    """A project's ViewSet subclass with a helper of its own named ``parse_body`` replaced
    the step parsing every unsafe request's body (then a public method of that name): one
    taking an argument made every unsafe request a 500 (``TypeError``), one taking none let
    a route run on a body that does not parse (prices raised on ``{bad``). The step is
    private: the malformed body is the 400 and the route runs on a body that parses."""
    from django.urls import resolve

    org = OrganizationFactory()
    product = ProductFactory(organization=org, price=5)
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role="admin").user)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    url = "/api/idem-products/raise-prices/"
    monkeypatch.setattr(resolve(url).func.cls, "parse_body", helper, raising=False)
    r = client.generic("POST", url, "{bad", content_type="application/json")
    assert r.status_code == 400, r.content[:300]
    assert r.json()["code"] == "VALIDATION_ERROR"
    product.refresh_from_db()
    assert product.price == 5
    r = client.generic("POST", url, "{}", content_type="application/json")
    assert r.status_code == 200, r.content[:300]
    product.refresh_from_db()
    assert product.price == 6


# -- a non-raw route reading request.body of a multipart body --------------------------------

body_site = ResourceSite(name="route-bodies")


@body_site.register
class BodyReadingBookResource(Resource):
    """A non-raw route reading the body as it arrived after arc has parsed it."""

    model = Book
    name = "body-books"
    fields = ["id", "title"]
    permissions = {"list": P.allow_public()}

    @route("POST", "digest", permissions=P.allow_public())
    def digest(self, request):
        body = request.body
        return {"sha256": hashlib.sha256(body).hexdigest(), "fields": sorted(request.data)}

    @route("POST", "names", permissions=P.allow_public())
    def names(self, request):
        return {"fields": sorted(request.data)}


def _seen8c_post_digest(settings, payload, headers):
    """``payload``, a multipart body (boundary ``zz``), POSTed to ``body_site``'s
    ``digest`` route with ``headers``: the answer."""
    with site_mounted(settings, "rb", body_site):
        return APIClient().generic(
            "POST",
            "/rb/body-books/digest/",
            payload,
            content_type="multipart/form-data; boundary=zz",
            **headers,
        )


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_a_route_reads_the_body_of_a_multipart_request_arc_parsed(settings, keyed):
    """The body of a non-raw route is parsed before it runs; a multipart one was read from
    the request's stream, so the route's ``request.body`` raised Django's
    ``RawPostDataException`` (a 500). Within ``DATA_UPLOAD_MAX_MEMORY_SIZE`` the bytes are
    kept: the route reads both the body and the parsed fields."""
    payload = (
        b'--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
        b'--zz\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--zz--\r\n"
    )
    headers = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())} if keyed else {}
    r = _seen8c_post_digest(settings, payload, headers)
    assert r.status_code == 200, r.content[:300]
    assert r.json()["data"] == {"sha256": hashlib.sha256(payload).hexdigest(), "fields": ["a", "f"]}


def test_a_route_reading_a_multipart_body_past_the_memory_limit_is_413(settings):
    """Past ``DATA_UPLOAD_MAX_MEMORY_SIZE`` the body is not kept (an upload route streams its
    files): the route's ``request.body`` is the 413 Django answers to reading such a body,
    not a 500."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    payload = (
        b'--zz\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + b"x" * 500 + b"\r\n--zz--\r\n"
    )
    r = _seen8c_post_digest(settings, payload, {})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.django_db(transaction=True)
def test_a_route_given_a_body_of_no_stated_length_past_the_limit_is_not_refused(
    settings, monkeypatch
):
    """A body with no ``Content-Length`` (``Transfer-Encoding: chunked`` under ASGI, which
    spools it) is one DRF parses nothing of, so arc's parse leaves the stream unread and no
    route meets ``RawPostDataException``. ``parse_body`` still read it into memory for a
    route, as its length was taken for 0: the whole body in memory on Django 4.2, a 413 on
    Django 5.2 (which measures the spooled body) for a route that never reads it, where the
    same body with its length stated runs the route."""
    from tests import asgi_support

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    stated = asgi_support.scope_of

    def chunked(*args, **kwargs):
        scope = stated(*args, **kwargs)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        return scope

    payload = (
        b'--zz\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + b"x" * 500 + b"\r\n--zz--\r\n"
    )
    headers = {"content-type": "multipart/form-data; boundary=zz"}
    with site_mounted(settings, "rb", body_site):
        with_length = asgi_support.serve("POST", "/rb/body-books/names/", headers, payload)
        monkeypatch.setattr(asgi_support, "scope_of", chunked)
        without = asgi_support.serve("POST", "/rb/body-books/names/", headers, payload)
    assert with_length.status == 200, with_length.content[:300]
    assert json.loads(with_length.content)["data"] == {"fields": ["f"]}
    assert without.status == 200, without.content[:300]
    assert json.loads(without.content)["data"] == {"fields": []}


# -- a project middleware that read request.POST before the route (fix-seen8b) -------------


def fs8b_reading_post_middleware(get_response):
    """A project's middleware reading ``request.POST`` (a CSRF-like check, a logger): on a
    multipart body Django reads the request's stream for it, and keeps no bytes."""

    def middleware(request):
        request.POST  # noqa: B018
        return get_response(request)

    return middleware


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_a_route_reading_a_body_a_middleware_read_first_is_415_not_a_500(settings, keyed, caplog):
    """A multipart body a project middleware read as ``request.POST`` has no bytes left: the
    route's ``request.body`` raised Django's ``RawPostDataException``, a 500. It is a 415 in
    the envelope (the route cannot take this body as multipart here; JSON or a form keeps its
    bytes), the operator is told why, and a route reading ``request.data`` still gets the
    fields Django parsed."""
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "tests.test_actions_and_routes.fs8b_reading_post_middleware",
    ]
    payload = (
        b'--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
        b'--zz\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--zz--\r\n"
    )
    headers = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())} if keyed else {}
    with site_mounted(settings, "rb", body_site):
        client = APIClient(raise_request_exception=False)
        multipart = "multipart/form-data; boundary=zz"
        digest = client.generic("POST", "/rb/body-books/digest/", payload, multipart, **headers)
        names = client.generic("POST", "/rb/body-books/names/", payload, multipart)
        form = client.generic(
            "POST", "/rb/body-books/digest/", b"a=1&b=2", "application/x-www-form-urlencoded"
        )
    body = assert_error(digest, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "multipart" in body["error"]
    assert any("read before" in r.getMessage() for r in caplog.records)
    assert names.status_code == 200, names.content[:300]
    assert names.json()["data"] == {"fields": ["a", "f"]}
    assert form.status_code == 200, form.content[:300]
    assert form.json()["data"] == {
        "sha256": hashlib.sha256(b"a=1&b=2").hexdigest(),
        "fields": ["a", "b"],
    }
