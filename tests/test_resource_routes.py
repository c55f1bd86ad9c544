"""Generated CRUD routes: status codes, envelopes, hooks, lookup fields, transactions."""

import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_arc.exceptions import new_request_id
from django_arc.outbox.models import OutboxEvent
from shop.models import Product
from tests.factories import (
    AuthorFactory,
    BookFactory,
    OrganizationFactory,
    ProductFactory,
    member_client,
)
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def test_list_envelope_is_flat_with_offset_pagination(api):
    BookFactory.create_batch(25)
    r = api.get("/api/books/?page=2&limit=10")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"success", "docs", "page", "limit", "total", "pages", "hasNext", "hasPrev"}
    assert body["success"] is True
    assert (body["page"], body["limit"], body["total"], body["pages"]) == (2, 10, 25, 3)
    assert body["hasNext"] is True and body["hasPrev"] is True
    titles = sorted(Book.objects.values_list("title", flat=True))
    assert [d["title"] for d in body["docs"]] == titles[10:20]


def test_list_last_page_and_beyond(api):
    BookFactory.create_batch(5)
    body = api.get("/api/books/?limit=2&page=3").json()
    assert len(body["docs"]) == 1 and body["hasNext"] is False and body["hasPrev"] is True
    body = api.get("/api/books/?limit=2&page=99").json()
    assert body["docs"] == [] and body["total"] == 5 and body["pages"] == 3


def test_get_returns_data_envelope(api):
    book = BookFactory(title="Dune")
    r = api.get(f"/api/books/{book.pk}/")
    assert r.status_code == 200
    assert r.json()["success"] is True
    assert r.json()["data"]["title"] == "Dune"
    assert r.json()["data"]["author"] == book.author_id


def test_missing_row_and_malformed_id_are_the_same_404(api):
    r1 = api.get("/api/books/999999/")
    r2 = api.get("/api/books/not-a-number/")
    for r in (r1, r2):
        assert r.status_code == 404
        body = r.json()
        assert body["code"] == "NOT_FOUND" and body["success"] is False
        assert body["error"] == "Resource not found"
        assert "details" not in body


def test_create_201_with_message_and_one_event(api):
    author = AuthorFactory()
    r = api.post(
        "/api/books/",
        {"title": "New", "isbn": "x-1", "author": author.pk},
        format="json",
        HTTP_X_REQUEST_ID="req-123",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["message"] == "Created successfully"
    assert body["data"]["title"] == "New"
    assert r["X-Request-Id"] == "req-123"
    book = Book.objects.get(isbn="x-1")
    events = list(OutboxEvent.objects.filter(type="books.created"))
    assert len(events) == 1
    assert events[0].meta["correlation_id"] == "req-123"
    assert events[0].meta["resource_id"] == str(book.pk)


def test_create_validation_error_names_fields(api):
    r = api.post("/api/books/", {"title": "", "pages": "many"}, format="json")
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert set(body["details"]) >= {"title", "pages", "isbn", "author"}
    assert all(isinstance(v, list) for v in body["details"].values())
    assert Book.objects.count() == 0


@pytest.mark.parametrize("payload", [[1, 2], "text", 5, None])
def test_create_with_non_object_body_is_400(api, payload):
    r = api.post("/api/books/", payload, format="json")
    assert r.status_code == 400
    assert r.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("rating", ["NaN", "nan", "Infinity", "-inf", "1e999"])
def test_non_finite_float_is_400_naming_the_field_and_writes_nothing(api, rating):
    # DRF's FloatField takes these; JSON (the response, the event's jsonb) cannot carry them
    author = AuthorFactory()
    body = {"title": "t", "isbn": "nan-1", "author": author.pk, "rating": rating}
    r = api.post("/api/books/", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == {"rating": ["A valid number is required."]}
    book = BookFactory(rating=1.5)
    r = api.patch(f"/api/books/{book.pk}/", {"rating": rating}, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["details"]) == ["rating"]
    book.refresh_from_db()
    assert book.rating == 1.5
    assert Book.objects.count() == 1
    assert OutboxEvent.objects.count() == 0


@pytest.mark.parametrize("pages", [2**63, -(2**63) - 1, 10**30])
def test_integer_beyond_64_bits_is_400_naming_the_field(api, pages):
    # Django 4.2's SQLite backend gives integer columns no range: the value reached the
    # driver, whose OverflowError was a 500
    book = BookFactory(pages=120)
    r = api.patch(f"/api/books/{book.pk}/", {"pages": pages}, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["details"]) == ["pages"]
    book.refresh_from_db()
    assert book.pages == 120
    assert OutboxEvent.objects.count() == 0


@pytest.mark.parametrize("author", [2**63, 10**30, 9.3e18, -(2**64)])
def test_out_of_range_foreign_key_is_400_naming_the_field(api, author):
    # Django 4.2's SQLite backend raises OverflowError for such an id, which DRF lets through
    r = api.post("/api/books/", {"title": "t", "isbn": "oor", "author": author}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert list(r.json()["details"]) == ["author"]
    book = BookFactory()
    r = api.patch(f"/api/books/{book.pk}/", {"author": author}, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["details"]) == ["author"]


def test_malformed_json_is_400_in_envelope(api):
    r = api.generic("POST", "/api/books/", "{not json", content_type="application/json")
    assert r.status_code == 400
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert "requestId" in r.json()


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # json itself hits the recursion limit
        '{"reading": 1, "labels": ' + "[" * 500 + "]" * 500 + "}",  # parses, fails later
        '{"reading": 1, "labels": ' + '{"a":' * 128 + "1" + "}" * 128 + "}",  # 129 levels
    ],
    ids=["100000", "501", "129"],
)
def test_json_nested_too_deeply_is_400_not_a_recursion_error(api, body):
    r = api.generic("POST", "/api/gauges/", body, content_type="application/json")
    assert r.status_code == 400, r.content[:300]
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert r.json()["error"] == "JSON parse error - nested deeper than 128 levels"
    assert OutboxEvent.objects.count() == 0


def test_json_nested_128_levels_deep_is_accepted(api):
    labels = 1
    for _ in range(127):
        labels = {"a": labels}
    r = api.post("/api/gauges/", {"reading": 1, "labels": labels}, format="json")
    assert r.status_code == 201, r.content[:300]
    assert OutboxEvent.objects.get().payload["data"]["labels"] == labels


def test_unsupported_media_type_is_415(api):
    r = api.generic("POST", "/api/books/", "<x/>", content_type="application/xml")
    assert r.status_code == 415
    assert r.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_before_hook_arc_error_aborts_with_its_status_and_writes_nothing(api):
    author = AuthorFactory()
    r = api.post(
        "/api/books/", {"title": "forbidden", "isbn": "f-1", "author": author.pk}, format="json"
    )
    assert r.status_code == 422
    assert r.json()["code"] == "TITLE_FORBIDDEN"
    assert r.json()["details"] == {"title": "x"}
    assert Book.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


def test_after_hook_error_rolls_back_row_and_event(api):
    author = AuthorFactory()
    r = api.post(
        "/api/books/", {"title": "boom-after", "isbn": "b-1", "author": author.pk}, format="json"
    )
    assert r.status_code == 409
    assert Book.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


def test_before_hook_may_replace_data(api):
    author = AuthorFactory()
    r = api.post(
        "/api/books/", {"title": "shout", "isbn": "s-1", "author": author.pk}, format="json"
    )
    assert r.status_code == 201
    assert Book.objects.get().title == "SHOUT"


def test_patch_updates_and_reports_changed_fields_in_event(api):
    book = BookFactory(title="Old", pages=10)
    r = api.patch(f"/api/books/{book.pk}/", {"title": "New"}, format="json")
    assert r.status_code == 200
    assert r.json()["message"] == "Updated successfully"
    assert r.json()["data"]["title"] == "New"
    book.refresh_from_db()
    assert book.title == "New" and book.pages == 10
    event = OutboxEvent.objects.get(type="books.updated")
    assert event.payload["changed"] == ["title"]
    assert event.payload["previous"] == {"title": "Old"}


def test_put_is_partial_alias_of_patch(api):
    book = BookFactory(title="Old", pages=10)
    r = api.put(f"/api/books/{book.pk}/", {"pages": 11}, format="json")
    assert r.status_code == 200
    book.refresh_from_db()
    assert (book.title, book.pages) == ("Old", 11)


def test_put_refused_when_update_method_is_patch(api):
    book = BookFactory(isbn="978-1")
    r = api.put("/api/isbn-books/978-1/", {"title": "x"}, format="json")
    assert r.status_code == 405
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"
    # the route does not exist: the Allow header and the OpenAPI schema say so too
    assert "PUT" not in r["Allow"] and "PATCH" in r["Allow"]
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert "put" not in paths["/api/isbn-books/{id}/"] and "put" in paths["/api/books/{id}/"]
    book.refresh_from_db()
    assert book.title != "x"


def test_update_hook_error_writes_nothing(api):
    book = BookFactory(title="Keep")
    r = api.patch(f"/api/books/{book.pk}/", {"title": "forbidden"}, format="json")
    assert r.status_code == 422
    book.refresh_from_db()
    assert book.title == "Keep"
    assert OutboxEvent.objects.count() == 0


def test_read_only_field_in_body_is_refused(api):
    book = BookFactory()
    r = api.patch(
        f"/api/books/{book.pk}/", {"id": 5, "created_at": "2020-01-01T00:00:00Z"}, format="json"
    )
    assert r.status_code == 403
    assert r.json()["code"] == "FIELD_WRITE_DENIED"
    assert r.json()["details"] == {"fields": ["created_at", "id"]}


def test_delete_returns_200_envelope_never_204(api):
    book = BookFactory()
    r = api.delete(f"/api/books/{book.pk}/")
    assert r.status_code == 200
    assert r.json() == {
        "success": True,
        "data": {"id": book.pk, "soft": False},
        "message": "Deleted successfully",
    }
    assert not Book.objects.filter(pk=book.pk).exists()
    assert OutboxEvent.objects.get(type="books.deleted").payload == {"id": book.pk, "soft": False}


def test_delete_hook_error_keeps_row(api):
    book = BookFactory(title="undeletable")
    r = api.delete(f"/api/books/{book.pk}/")
    assert r.status_code == 423
    assert Book.objects.filter(pk=book.pk).exists()


def test_delete_protected_row_is_409_conflict(api):
    from django.db.models import ProtectedError  # noqa: F401  (documents the cause)

    from tests.testapp.models import Author

    # Authors are PROTECTed by books; deleting through the ORM proves the mapping
    author = AuthorFactory()
    BookFactory(author=author)
    from rest_framework.test import APIRequestFactory

    from django_arc.exceptions import exception_handler

    request = APIRequestFactory().delete("/")
    try:
        Author.objects.filter(pk=author.pk).delete()
    except Exception as exc:  # ProtectedError
        response = exception_handler(exc, {"request": request})
    assert response.status_code == 409
    assert response.data["code"] == "CONFLICT"


def test_unique_violation_is_409_not_500(api):
    BookFactory(isbn="dup")
    author = AuthorFactory()
    r = api.post("/api/books/", {"title": "t", "isbn": "dup", "author": author.pk}, format="json")
    # DRF's UniqueValidator catches it first (400); either way never a 500
    assert r.status_code in (400, 409)


def test_lookup_field_uses_unique_non_pk_field(api):
    book = BookFactory(isbn="978-3-16")
    r = api.get("/api/isbn-books/978-3-16/")
    assert r.status_code == 200
    assert r.json()["data"]["id"] == book.pk
    r = api.patch("/api/isbn-books/978-3-16/", {"title": "Renamed"}, format="json")
    assert r.status_code == 200
    r = api.delete("/api/isbn-books/978-3-16/")
    assert r.json()["data"] == {"id": "978-3-16", "soft": False}


def test_uuid_lookup_on_example_orders(admin_client_api_for_orders):
    api, order = admin_client_api_for_orders
    r = api.get(f"/api/orders/{order.reference}/")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["reference"] == str(order.reference)
    assert api.get(f"/api/orders/{uuid.uuid4()}/").status_code == 404
    assert api.get("/api/orders/not-a-uuid/").status_code == 404


@pytest.fixture
def admin_client_api_for_orders(api, django_user_model):
    from tests.factories import OrderFactory

    order = OrderFactory()
    user = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    api.force_authenticate(user)
    api.credentials(HTTP_X_ARC_SCOPE="platform")
    return api, order


@pytest.mark.parametrize("path", ["/api/books", "/api/books/"])
def test_trailing_slash_optional(api, path):
    author = AuthorFactory()
    assert api.get(path).status_code == 200
    r = api.post(path, {"title": "t", "isbn": f"i{len(path)}", "author": author.pk}, format="json")
    assert r.status_code == 201


def test_detail_without_trailing_slash(api):
    book = BookFactory()
    assert api.get(f"/api/books/{book.pk}").status_code == 200


def test_method_not_allowed_is_405_envelope(api):
    r = api.delete("/api/books/")
    assert r.status_code == 405
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"


def test_custom_route(api):
    BookFactory.create_batch(3)
    r = api.get("/api/books/stats/")
    assert r.status_code == 200
    assert r.json() == {"success": True, "data": {"count": 3}}


def test_request_id_generated_when_missing_or_malformed(api):
    r = api.get("/api/books/", HTTP_X_REQUEST_ID="bad id with spaces")
    rid = r["X-Request-Id"]
    assert rid != "bad id with spaces"
    uuid.UUID(rid)
    r = api.get("/api/books/999/", HTTP_X_REQUEST_ID="a" * 129)
    assert r.json()["requestId"] == r["X-Request-Id"] != "a" * 129
    r = api.get("/api/books/999/", HTTP_X_REQUEST_ID="trace:abc.1-2_3")
    assert r.json()["requestId"] == "trace:abc.1-2_3"


def test_generated_request_ids_are_version_4_uuids_in_their_usual_form():
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid  # lower-case hex, 8-4-4-4-12
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
    # the 122 random bits vary: every hex digit but the fixed version digit takes many values
    digits = [{rid.replace("-", "")[i] for rid in ids} for i in range(32)]
    assert [i for i, seen in enumerate(digits) if len(seen) < 4] == [12]


@pytest.mark.parametrize("page_size", [1, 20, 100])
def test_list_runs_constant_queries_whatever_the_page_size(api, page_size):
    BookFactory.create_batch(100)
    with CaptureQueriesContext(connection) as ctx:
        r = api.get(f"/api/books/?limit={page_size}&sort=author__name")
    assert r.status_code == 200
    assert len(r.json()["docs"]) == page_size
    assert len(ctx.captured_queries) == 2  # count + page


@pytest.mark.parametrize("page_size", [1, 20, 100])
def test_reverse_relation_list_is_prefetched(api, page_size, django_assert_num_queries):
    for _ in range(100):
        BookFactory(author=AuthorFactory())
    with django_assert_num_queries(3):  # count + page + prefetch of books
        r = api.get(f"/api/authors/?limit={page_size}")
    assert len(r.json()["docs"]) == page_size
    assert all(doc["book_count"] == 1 for doc in r.json()["docs"])


def test_user_serializer_get_requires_auth_by_default(api):
    author = AuthorFactory()
    r = api.get(f"/api/authors/{author.pk}/")
    assert r.status_code == 401
    assert r.json()["code"] == "UNAUTHORIZED"


def test_missing_permission_key_fails_closed(api, django_user_model):
    # AuthorResource declares no "create" permission: anonymous → 401, user → 403
    r = api.post("/api/authors/", {"name": "x"}, format="json")
    assert r.status_code == 401
    api.force_authenticate(django_user_model.objects.create_user("u", password="pw"))
    r = api.post("/api/authors/", {"name": "x"}, format="json")
    assert r.status_code == 403
    assert r.json()["code"] == "FORBIDDEN"
    from tests.testapp.models import Author

    assert not Author.objects.filter(name="x").exists()


def test_resource_drf_policies_apply_and_throttling_uses_the_envelope(api):
    assert api.get("/api/throttled-authors/").status_code == 200
    assert api.get("/api/throttled-authors/").status_code == 200
    r = api.get("/api/throttled-authors/")
    assert r.status_code == 429
    assert r.json()["code"] == "THROTTLED"
    assert int(r["Retry-After"]) > 0
    from tests.testapp.resources import ThrottledAuthorResource

    assert ThrottledAuthorResource.as_viewset().authentication_classes == []


@pytest.mark.parametrize("outbox", [True, False])
def test_writes_open_a_transaction_only_when_needed(api, settings, outbox):
    """A hook-less, preset-less resource with events off writes in one statement; with the
    outbox on (the default) row and event always commit together. (Inside the test's own
    transaction, a write's ``atomic()`` shows up as a SAVEPOINT.)"""
    settings.ARC = {"EVENTS": {"OUTBOX": outbox}}

    def savepoints(ctx):
        return sum(q["sql"].upper().startswith("SAVEPOINT") for q in ctx.captured_queries)

    with CaptureQueriesContext(connection) as plain:
        r = api.post("/api/plain-authors/", {"name": "a"}, format="json")
    assert r.status_code == 201
    author = BookFactory().author  # a resource with hooks always gets a transaction
    with CaptureQueriesContext(connection) as hooked:
        r2 = api.post(
            "/api/books/",
            {"title": "t", "isbn": f"tx-{outbox}", "author": author.pk},
            format="json",
        )
    assert r2.status_code == 201
    assert savepoints(plain) == (1 if outbox else 0)
    assert savepoints(hooked) == 1


def test_tenancy_alone_does_not_force_a_transaction():
    from django_arc.presets import Preset
    from tests.testapp.resources import GuardedProductResource, TenantOrderResource

    assert Preset.needs_transaction is True  # unknown presets are treated as writers
    assert TenantOrderResource(site=None).write_needs_transaction is False
    assert GuardedProductResource(site=None).write_needs_transaction is False


@pytest.mark.parametrize(
    "labels", [{"a": "x\x00"}, {"k\x00": 1}, [["\x00"]]], ids=["value", "key", "nested"]
)
def test_json_field_with_nul_is_400_naming_the_field_on_every_backend(api, labels):
    # PostgreSQL's jsonb cannot store NUL: without the check this is a DataError (500) there
    r = api.post("/api/gauges/", {"reading": 1, "labels": labels}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == {"labels": ["Null characters are not allowed."]}
    assert OutboxEvent.objects.count() == 0


@pytest.mark.parametrize(
    "labels,code_point", [({"a": "\ud800"}, "D800"), ({"\udfff": 1}, "DFFF")], ids=["value", "key"]
)
def test_json_field_with_a_lone_surrogate_is_400_naming_the_field(api, labels, code_point):
    # not UTF-8: jsonb refuses it, and on SQLite the response itself could not be encoded
    body = json.dumps({"reading": 1, "labels": labels})  # JSON escapes it as \\udXXX
    r = api.post("/api/gauges/", body, content_type="application/json")
    assert r.status_code == 400, r.content
    assert r.json()["details"] == {
        "labels": [f"Surrogate characters are not allowed: U+{code_point}."]
    }
    assert OutboxEvent.objects.count() == 0


@pytest.mark.parametrize("key", [None, "echo-1"])
@pytest.mark.parametrize(
    ("url", "body", "field", "message"),
    [
        (
            "/api/products/",
            {"name": "n", "sku": "s", "price": "1", "status": "\ud800"},
            "status",
            '"\N{REPLACEMENT CHARACTER}" is not a valid choice.',
        ),
        (
            "/api/products/bulk/",
            {"filter": {"\ud800": "1"}, "data": {"price": "2"}},
            "filter",
            {"\N{REPLACEMENT CHARACTER}": ["Not a filter of this resource."]},
        ),
    ],
    ids=["choice", "bulk-filter-name"],
)
def test_an_error_quoting_a_lone_surrogate_is_the_400_with_u_fffd_in_its_place(
    url, body, field, message, key
):
    """Error messages quote what was sent (DRF's choice field, a bulk filter's name), and a
    JSON body can carry a lone surrogate, which no response can be encoded with: rendering
    the 400 raised from the view, a 500 (the example's cached, idempotent products, keyed or
    not). The surrogate is written as U+FFFD; nothing is written."""
    org = OrganizationFactory()
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    client = member_client(org, "admin")
    product = ProductFactory(organization=org, price=1)
    payload = json.dumps(body)  # ASCII: the surrogate travels escaped, as \ud800
    method = "PATCH" if url.endswith("bulk/") else "POST"
    r = client.generic(method, url, payload, content_type="application/json", **headers)
    assert r.status_code == 400, r.content
    details = r.json()["details"]
    assert details[field] == (message if isinstance(message, dict) else [message])
    product.refresh_from_db()
    assert Product.objects.count() == 1 and product.price == 1
    assert OutboxEvent.objects.count() == 0


def test_json_field_keeps_look_alikes_an_escaped_backslash_u0000_and_an_emoji(api):
    labels = {"a": "\\u0000", "e": "\U0001f600"}
    r = api.post("/api/gauges/", {"reading": 1, "labels": labels}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["data"]["labels"] == labels


@pytest.mark.parametrize(
    "body,field",
    [({"reading": "NaN"}, "reading"), ({"labels": {"a": "\x00"}}, "labels")],
    ids=["nan", "nul"],
)
def test_a_user_model_serializer_gets_the_strict_model_fields(api, body, field):
    r = api.post("/api/custom-gauges/", body, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()["details"]) == [field]
    assert api.post("/api/custom-gauges/", {"reading": 2.5}, format="json").status_code == 201


def test_every_401_carries_a_challenge(api):
    """RFC 9110: a 401 names how to authenticate. The first challenge the route's
    authentication classes offer (here the service key's), else the session fallback."""
    author = AuthorFactory()
    r = api.get(f"/api/authors/{author.pk}/")  # get: require_auth by default
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    assert r["WWW-Authenticate"] == 'Bearer realm="api"'
    r = api.post(f"/api/books/{BookFactory().pk}/action/", {"action": "shout"}, format="json")
    assert r.status_code == 401 and r["WWW-Authenticate"] == 'Bearer realm="api"'
    # a resource without authentication classes: no scheme to offer but the session's
    r = api.get(f"/api/throttled-authors/{author.pk}/")
    assert r.status_code == 401 and r["WWW-Authenticate"] == 'Session realm="api"'


def test_autodiscover_is_public_on_the_site():
    from django_arc import arc

    before = {r.name for r in arc.resources}
    arc.autodiscover()  # importing resources.py again registers nothing twice
    assert {r.name for r in arc.resources} == before


def test_the_allow_header_lists_only_methods_that_are_served():
    """OPTIONS is answered 405 (no metadata: decisions.md "OPTIONS is not served"), yet DRF's
    ``Allow`` header, on every answer and on the 405 itself, listed it on every route: a
    client trusting ``Allow`` asked with a method it was then refused. Every method listed
    is served now, on each kind of route."""
    org = OrganizationFactory()
    product = ProductFactory(organization=org)
    admin = member_client(org, "admin")
    routes = {
        "/api/idem-products/": {"GET", "POST", "HEAD"},
        f"/api/idem-products/{product.pk}/": {"GET", "PUT", "PATCH", "DELETE", "HEAD"},
        f"/api/idem-products/{product.pk}/action/": {"POST"},
        "/api/idem-products/bulk/": {"POST", "PATCH", "DELETE"},
        "/api/idem-products/raise-prices/": {"POST"},
        "/api/isbn-books/978-1/": {"GET", "PATCH", "DELETE", "HEAD"},
    }
    BookFactory(isbn="978-1")
    for url, served in routes.items():
        refused = admin.options(url)
        assert refused.status_code == 405, url
        assert refused.json()["code"] == "METHOD_NOT_ALLOWED"
        assert set(refused["Allow"].split(", ")) == served, (url, refused["Allow"])
        assert set(admin.head(url)["Allow"].split(", ")) == served
    assert (
        set(admin.get("/api/idem-products/")["Allow"].split(", ")) == routes["/api/idem-products/"]
    )


def test_a_drf_error_whose_detail_is_a_dict_is_answered_without_its_repr(api, monkeypatch):
    """A DRF error other than a validation error, raised with a dict (or list) detail, is
    answered with its status and code and the message "Request failed": its detail is no
    message, and its ``str()`` is the Python repr of ``ErrorDetail`` objects."""
    from django.urls import resolve
    from rest_framework.exceptions import PermissionDenied

    view = resolve("/api/books/").func.cls

    def get_queryset(self):
        raise PermissionDenied({"why": "the project's reason"})

    monkeypatch.setattr(view, "get_queryset", get_queryset)
    answer = api.get("/api/books/")
    assert answer.status_code == 403
    body = answer.json()
    assert (body["code"], body["error"]) == ("FORBIDDEN", "Request failed")
    assert "ErrorDetail" not in answer.content.decode()


# -- a BOM before a JSON body; where a JSON body fails to parse (fix-seen8b) ----------------


def test_a_json_body_after_a_utf8_bom_is_read_as_without_it(api):
    """RFC 8259 §8.1: a parser MAY ignore a byte order mark; Python's ``json`` refuses one
    ("Unexpected UTF-8 BOM"), which was a 400 for a body a Windows tool wrote. The body is
    read as the same JSON without it."""
    body = json.dumps({"reading": 1.5, "labels": {"a": 1}}).encode()
    first = api.generic(
        "POST", "/api/gauges/", b"\xef\xbb\xbf" + body, "application/json; charset=utf-8"
    )
    assert first.status_code == 201, first.content
    assert first.json()["data"]["reading"] == 1.5 and first.json()["data"]["labels"] == {"a": 1}
    assert OutboxEvent.objects.count() == 1
    # a BOM anywhere but first is no whitespace JSON allows
    inner = api.generic("POST", "/api/gauges/", b" \xef\xbb\xbf" + body, "application/json")
    assert inner.status_code == 400


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('{"reading": ', "line 1 column 13 (char 12)"),
        ('{"reading": 1,\n "labels": {"a" 1}}', "line 2 column 17 (char 31)"),
        (b'{"reading": "\xff"}', "position 13"),
    ],
    ids=["truncated", "second-line", "not-utf8"],
)
def test_a_json_parse_error_names_where_in_its_details(api, body, where):
    """A body that does not parse is 400 ``VALIDATION_ERROR`` whose ``details`` say where,
    as SPEC's validation details are spelled (a key, a list of messages): the whole body is
    no field, so the key is the non-field one, as for a body that is no JSON object."""
    r = api.generic("POST", "/api/gauges/", body, content_type="application/json")
    assert r.status_code == 400, r.content
    answer = r.json()
    assert answer["code"] == "VALIDATION_ERROR"
    assert answer["error"].startswith("JSON parse error - ")
    (message,) = answer["details"]["non_field_errors"]
    assert where in message and where in answer["error"]
    assert set(answer["details"]) == {"non_field_errors"}
    assert OutboxEvent.objects.count() == 0


def test_json_nested_too_deeply_says_so_in_its_details_too(api):
    body = '{"reading": 1, "labels": ' + '{"a":' * 128 + "1" + "}" * 128 + "}"
    r = api.generic("POST", "/api/gauges/", body, content_type="application/json")
    assert r.status_code == 400
    assert r.json()["details"] == {"non_field_errors": ["nested deeper than 128 levels"]}
