"""The OpenAPI schema of the test app's resources says what the routes really do.

Generated in-process from ``tests/urls.py`` (every test resource: tenancy, field rules,
actions, custom and preset routes, a throttled one, a UUID lookup, ``update_method="PATCH"``),
then read the way a client would. Responses of real requests are validated against it at the
end, route by route, with the same validator schemathesis uses.
"""

from __future__ import annotations

import inspect
import io
import json
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator

from django_arc import envelope
from tests.redis_support import REDIS_URL, arc_with, caches_with

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict[str, Any]:
    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def op(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return schema["paths"][path][method]


def params(operation: dict[str, Any], location: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == location}


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def body_schema(schema: dict[str, Any], operation: dict[str, Any], status: str) -> dict:
    return resolve(schema, operation["responses"][status]["content"]["application/json"]["schema"])


def request_schema(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    content = operation["requestBody"]["content"]
    assert list(content) == ["application/json"]
    return resolve(schema, content["application/json"]["schema"])


# -- generation ------------------------------------------------------------------------------


def test_spectacular_validates_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert out.getvalue().startswith("openapi: 3.0.3")


def test_no_slash_twins_are_not_documented(schema, client):
    paths = list(schema["paths"])
    assert paths and all(path.endswith("/") for path in paths)
    ids = [o["operationId"] for item in schema["paths"].values() for o in item.values()]
    assert len(ids) == len(set(ids))
    # ... and still answer (routers.py)
    assert client.get("/api/books").status_code == 200


def test_no_internal_docstring_becomes_a_description(schema):
    """Descriptions come from resources and user serializers, never from django-arc's own
    classes (``ArcSerializerMixin``'s "Caches the result of get_fields()…", the mixins')."""
    text = json.dumps(schema)
    internal = []
    for module_name in ("serializers", "mixins", "generics", "viewsets", "filters", "pagination"):
        module = getattr(__import__(f"django_arc.{module_name}"), module_name)
        for _name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            members = [obj, *vars(obj).values()] if inspect.isclass(obj) else [obj]
            for member in members:
                doc = (
                    inspect.getdoc(member) if callable(member) or inspect.isclass(member) else None
                )
                if doc and len(doc) > 25:
                    internal.append(doc.split("\n")[0])
    assert internal
    leaked = [line for line in internal if json.dumps(line)[1:-1] in text]
    assert leaked == []
    assert "Caches the result" not in text


# -- lists: envelope, query language, pagination ---------------------------------------------------


def test_list_documents_both_envelopes(schema):
    page = body_schema(schema, op(schema, "/api/books/", "get"), "200")
    offset, keyset = page["oneOf"]
    # exactly the keys the envelopes have (django_arc.envelope)
    assert set(offset["required"]) == set(envelope.page([], 1, 20, 0))
    assert set(keyset["required"]) == set(envelope.keyset([], 20, None))
    assert keyset["properties"]["next"]["nullable"] is True
    item = resolve(schema, offset["properties"]["docs"]["items"])
    assert item is resolve(schema, keyset["properties"]["docs"]["items"])
    # field permissions and ?select= may omit any field but the identifiers
    assert item["required"] == ["id"]


def test_every_filter_operator_is_a_parameter(schema):
    query = params(op(schema, "/api/books/", "get"), "query")
    for name in (
        "pages",
        "pages[ne]",
        "pages[gt]",
        "pages[gte]",
        "pages[lt]",
        "pages[lte]",
        "pages[in]",
        "pages[nin]",
        "title",
        "title[contains]",
        "title[icontains]",
        "title[startswith]",
        "rating[exists]",
        "author__name",
        "price[gte]",
    ):
        assert name in query, name
    assert "price" not in query  # only gte/lte are allowed on price
    assert "pages[eq]" not in query  # documented as the plain parameter
    assert query["pages[in]"]["schema"]["type"] == "array"
    assert (query["pages[in]"]["style"], query["pages[in]"]["explode"]) == ("form", False)
    assert query["pages[in]"]["schema"]["maxItems"] == 500
    assert query["published"]["schema"] == {"type": "string", "format": "date"}
    assert query["uid"]["schema"] == {"type": "string", "format": "uuid"}
    assert query["price[gte]"]["schema"]["pattern"] == r"^-?\d{1,6}(\.\d{1,2})?$"
    assert query["rating[exists]"]["schema"]["pattern"].startswith("^([Tt][Rr][Uu][Ee]")
    for name in ("page", "limit", "after", "sort", "select", "search"):
        assert name in query, name
    assert query["page"]["schema"] == {"type": "integer", "minimum": 1}
    assert query["page"]["allowEmptyValue"] is True  # "page=" is the first page
    sort = re.compile(query["sort"]["schema"]["items"]["pattern"])
    assert all(sort.match(v) for v in ("title", "-title", " +author__name ", ""))
    assert not any(sort.match(v) for v in ("isbn", "-", "title-"))


def test_the_after_parameter_names_the_sorts_it_cannot_page(schema):
    """The ``sort`` parameter lists ``author__name``, a related model's column, which a
    cursor cannot follow (``?after=`` with it is a 400 naming ``after``): the ``after``
    parameter names it, where a client reading the schema met the 400 first (rev-paging).
    A list sorting by its own columns only says nothing more."""
    after = params(op(schema, "/api/books/", "get"), "query")["after"]["description"]
    assert after.endswith("A `sort` by `author__name` has offset pages only (400 naming `after`).")
    orders = params(op(schema, "/api/orders/", "get"), "query")
    assert "offset pages only" not in orders.get("after", {}).get("description", "")


def test_query_values_are_typed_like_the_parser(schema):
    """Integer bounds come from the model field's validators (a PositiveIntegerField is >= 0),
    and text filters refuse only the NUL character."""
    from django_arc.query import _Refused, parse_value
    from shop.models import Order

    query = params(op(schema, "/api/orders/", "get"), "query")
    quantity = query["quantity[gte]"]["schema"]
    field = Order._meta.get_field("quantity")
    for bound, outside in ((quantity["minimum"], -1), (quantity["maximum"], 1)):
        assert parse_value(field, str(bound)) == bound
        with pytest.raises(_Refused):
            parse_value(field, str(bound + outside))
    assert query["product"]["schema"]["type"] == "integer"
    assert query["placed_at[gte]"]["schema"]["format"] == "date-time"
    books = params(op(schema, "/api/books/", "get"), "query")
    assert books["title[contains]"]["schema"] == {
        "type": "string",
        "pattern": "^[^\\x00]*$",
        "maxLength": 1000,
    }


def test_an_equality_on_a_field_with_choices_takes_one_of_them(schema):
    """The parser refuses an equality's value outside a field's choices, the empty one too
    on a field without ``blank`` (``?status=`` is a 400): the schema says so with an
    ``enum``, where any text let schemathesis send ``?status=`` as a valid request. An
    ``in`` list's empty items are skipped, so its items may be empty."""
    query = params(op(schema, "/api/products/", "get"), "query")
    assert query["status"]["schema"]["enum"] == ["draft", "active", "archived"]
    assert query["status[in]"]["schema"]["items"]["enum"] == ["draft", "active", "archived", ""]
    assert "enum" not in query["name[contains]"]["schema"]


def test_select_lists_the_fields_everyone_may_read(schema):
    query = params(op(schema, "/api/t-products/", "get"), "query")
    selectable = re.compile(query["select"]["schema"]["items"]["pattern"])
    assert selectable.match("name") and selectable.match(" id ")
    # visible_to / redact_for: not for every caller; hidden: does not exist for the API
    assert not any(selectable.match(f) for f in ("cost", "sku", "secret_notes"))
    assert "secret_notes" not in json.dumps(op(schema, "/api/t-products/", "get"))
    assert "Refused (400) for callers who may not read `cost`" in query["cost[gte]"]["description"]


def test_preset_page_route_is_a_list(schema):
    archived = op(schema, "/api/archived-notes/archived/", "get")
    assert {"text", "text[in]", "sort", "page", "after"} <= set(params(archived, "query"))
    assert "oneOf" in body_schema(schema, archived, "200")


# -- single rows: lookup, envelopes, writes ----------------------------------------------------------


def test_lookup_is_the_real_field_and_format(schema):
    orders = params(op(schema, "/api/orders/{id}/", "get"), "path")["id"]
    assert orders["schema"]["type"] == "string" and orders["schema"]["format"] == "uuid"
    assert "reference" in orders["description"]
    books = params(op(schema, "/api/books/{id}/", "get"), "path")["id"]
    assert books["schema"]["type"] == "integer"
    isbn = params(op(schema, "/api/isbn-books/{id}/", "get"), "path")["id"]
    assert isbn["schema"]["type"] == "string" and "isbn" in isbn["description"]


def test_single_row_envelope(schema):
    envelope = body_schema(schema, op(schema, "/api/books/{id}/", "get"), "200")
    assert envelope["required"] == ["success", "data"]
    assert resolve(schema, envelope["properties"]["data"])["properties"]["title"]
    created = op(schema, "/api/books/", "post")["responses"]
    assert "201" in created and "200" not in created


def test_delete_is_200_with_id_and_soft(schema):
    responses = op(schema, "/api/orders/{id}/", "delete")["responses"]
    assert "204" not in responses
    deleted = body_schema(schema, op(schema, "/api/orders/{id}/", "delete"), "200")
    data = deleted["properties"]["data"]
    assert data["required"] == ["id", "soft"]
    assert data["properties"]["id"] == {"type": "string", "format": "uuid"}  # the lookup value


def test_put_is_documented_as_the_partial_update(schema):
    put = request_schema(schema, op(schema, "/api/books/{id}/", "put"))
    patch = request_schema(schema, op(schema, "/api/books/{id}/", "patch"))
    assert put == patch and "required" not in put
    assert "requestBody" in op(schema, "/api/books/{id}/", "put")
    assert "alias of `PATCH`" in op(schema, "/api/books/{id}/", "put")["description"]


def test_create_body_is_what_may_be_written(schema):
    body = request_schema(schema, op(schema, "/api/t-products/", "post"))
    # read-only, tenant-managed and hidden fields are not part of a request
    assert not {"id", "created_at", "organization", "secret_notes"} & set(body["properties"])
    assert set(body["required"]) == {"name", "sku", "price"}
    name = body["properties"]["name"]
    assert name["minLength"] == 1 and name["pattern"] == "^[^\\x00]*[^\\s\\x00][^\\x00]*$"
    assert body["properties"]["price"]["pattern"] == r"^-?\d{1,8}(\.\d{1,2})?$"
    assert "Writable only by: admin" in json.dumps(body["properties"]["status"])
    assert op(schema, "/api/t-products/", "post")["requestBody"]["required"] is True


def test_redacted_fields_may_be_their_mask(schema):
    item = resolve(
        schema,
        body_schema(schema, op(schema, "/api/t-products/{id}/", "get"), "200")["properties"][
            "data"
        ],
    )
    sku = item["properties"]["sku"]
    assert {"allOf": [{"type": "string", "enum": ["***"]}]} in sku["anyOf"]


def test_two_resources_over_one_model_get_their_own_components(schema):
    components = schema["components"]["schemas"]
    assert "title" in components["Book"]["properties"]
    assert "pages" not in components["IsbnBook"]["properties"]


# -- errors, headers, security ------------------------------------------------------------------------


def test_errors_per_route(schema):
    def statuses(path, method):
        return {s for s in op(schema, path, method)["responses"] if s >= "400"}

    assert statuses("/api/books/", "get") == {"400", "401", "403"}
    assert statuses("/api/books/{id}/", "get") == {"400", "401", "403", "404"}
    assert statuses("/api/books/", "post") == {"400", "401", "403", "409", "413", "415"}
    assert statuses("/api/books/{id}/", "delete") == {"400", "401", "403", "404", "409"}
    assert "429" in statuses("/api/throttled-authors/", "get")
    error = body_schema(schema, op(schema, "/api/books/", "get"), "401")
    assert set(error["required"]) == {"success", "error", "code", "requestId"}
    # a bulk item's errors are keyed by its index (test_a_hook_refusing_one_bulk_item_names_the_
    # item), not by a field: the description of details must not promise "field → messages" only
    details = error["properties"]["details"]["description"]
    assert '{"items": {"1":' in details and "NON_FIELD_ERRORS_KEY" in details
    assert (
        "FIELD_WRITE_DENIED" in op(schema, "/api/books/", "post")["responses"]["403"]["description"]
    )
    assert "INVALID_QUERY" in op(schema, "/api/books/", "get")["responses"]["400"]["description"]
    throttled = op(schema, "/api/throttled-authors/", "get")["responses"]["429"]["headers"]
    assert "Retry-After" in throttled


def test_scope_headers(schema):
    headers = params(op(schema, "/api/t-products/", "get"), "header")
    assert {"X-Organization-Id", "X-Arc-Scope", "X-Request-Id"} <= set(headers)
    elevation = re.compile(headers["X-Arc-Scope"]["schema"]["pattern"])
    # what the scope accepts: "platform" in any case, or blank (= absent)
    assert all(elevation.match(v) for v in ("platform", " PLATFORM ", "", " "))
    assert not any(elevation.match(v) for v in ("plat", "platforms", "root"))
    branch = params(op(schema, "/api/branch-notes/", "get"), "header")
    assert "X-Arc-Context-Branch-Id" in branch
    assert "X-Arc-Context-Branch-Id" not in headers
    response_headers = op(schema, "/api/books/", "get")["responses"]["200"]["headers"]
    assert response_headers["X-Request-Id"]["required"] is True


def test_idempotency_key_and_its_answers_where_keys_are_read(schema):
    """The header, the replay header and the three codes on the unsafe routes of a resource
    taking keys; nowhere else (its reads, its raw route, a resource without keys)."""
    create = op(schema, "/api/idem-products/", "post")
    key = params(create, "header")["Idempotency-Key"]
    assert not key.get("required")
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    printable = re.compile(key["schema"]["pattern"])
    assert printable.match("order-42 retry") and not printable.match("caf\u00e9")
    assert not printable.match("tab\there")
    responses = create["responses"]
    assert "IDEMPOTENCY_CONFLICT" in responses["409"]["description"]
    assert "IDEMPOTENCY_KEY_REUSED" in responses["422"]["description"]
    # method and path are part of the key: only another query or body is a reuse
    # (test_a_key_is_its_method_and_paths_own_and_reused_by_another_query)
    reused = responses["422"]["description"]
    assert "another query string or body" in reused and "another method, path" not in reused
    assert "another query or body is 422" in key["description"]
    assert "IDEMPOTENCY_UNAVAILABLE" in responses["503"]["description"]
    # not only the key store down: SQLite's write lock not obtained as the keyed request's
    # transaction begins is the same 503 (idempotency/execution.py, b70acd9)
    assert "on SQLite" in responses["503"]["description"]
    for status in ("409", "503"):
        assert "Retry-After" in responses[status]["headers"], status
    assert "X-Idempotency-Replayed" in responses["201"]["headers"]
    for path, method in (
        ("/api/idem-products/{id}/", "patch"),
        ("/api/idem-products/{id}/", "delete"),
        ("/api/idem-products/{id}/action/", "post"),
        ("/api/idem-products/bulk/", "post"),
        ("/api/idem-products/raise-prices/", "post"),
    ):
        assert "Idempotency-Key" in params(op(schema, path, method), "header"), (path, method)
        assert "422" in op(schema, path, method)["responses"], (path, method)
    for path, method in (
        ("/api/idem-products/", "get"),
        ("/api/idem-products/{id}/", "get"),
        ("/api/idem-products/hook/", "post"),
        ("/api/books/", "post"),
        ("/api/cached-products/", "post"),
    ):
        operation = op(schema, path, method)
        assert "Idempotency-Key" not in params(operation, "header"), (path, method)
        assert not {"422", "503"} & set(operation["responses"]), (path, method)
        assert "IDEMPOTENCY_CONFLICT" not in operation["responses"].get("409", {}).get(
            "description", ""
        )


def test_x_cache_on_the_reads_of_cached_resources(schema):
    for path in ("/api/cached-products/", "/api/cached-products/{id}/"):
        responses = op(schema, path, "get")["responses"]
        header = responses["200"]["headers"]["X-Cache"]
        assert header["schema"]["enum"] == ["HIT", "STALE", "MISS"]
        # only a 200 is stored and marked (querycache/read.py): an error carries no X-Cache
        # (test_errors_of_cached_reads_carry_no_x_cache)
        documented = [s for s, r in responses.items() if "X-Cache" in r.get("headers", {})]
        assert documented == ["200"], path
    for path, method in (
        ("/api/uncached-products/", "get"),
        ("/api/books/", "get"),
        ("/api/cached-products/", "post"),
    ):
        for status, response in op(schema, path, method)["responses"].items():
            assert "X-Cache" not in response.get("headers", {}), (path, method, status)


def test_security_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["arcServiceKey"]["scheme"] == "bearer"
    assert schemes["arcApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": schemes["arcApiKey"]["description"],
    }
    assert "X-CSRFToken" in schemes["cookieAuth"]["description"]
    public = op(schema, "/api/books/", "get")["security"]
    assert {} in public and {"arcServiceKey": []} in public
    private = op(schema, "/api/t-products/", "get")["security"]
    assert {} not in private


# -- actions and custom routes ----------------------------------------------------------------------------


def test_actions_are_one_body_discriminated_by_action(schema):
    operation = op(schema, "/api/action-products/{id}/action/", "post")
    assert operation["requestBody"]["required"] is True
    body = request_schema(schema, operation)
    assert body["discriminator"]["propertyName"] == "action"
    assert set(body["discriminator"]["mapping"]) == {"publish", "archive"}
    publish = resolve(schema, {"$ref": body["discriminator"]["mapping"]["publish"]})
    assert set(publish["required"]) == {"action", "note"}
    assert publish["properties"]["action"] == {"allOf": [{"type": "string", "enum": ["publish"]}]}
    assert publish["properties"]["note"]["maxLength"] == 20
    assert publish["properties"]["note"]["minLength"] == 1  # like DRF's validation
    assert publish["properties"]["price"]["pattern"] == r"^-?\d{1,8}(\.\d{1,2})?$"
    assert "- `publish`: Put a product on sale" in operation["description"]
    assert {"400", "404", "409"} <= set(operation["responses"])


def test_custom_routes(schema):
    stats = op(schema, "/api/books/stats/", "get")
    assert body_schema(schema, stats, "200")["required"] == ["success", "data"]
    webhook = op(schema, "/api/books/webhook/", "post")
    assert list(webhook["responses"])[0] == "202"
    assert webhook["requestBody"]["content"] == {
        "*/*": {"schema": {"type": "string", "format": "binary"}}
    }
    card = op(schema, "/api/action-products/{id}/card/", "get")
    assert "id" in params(card, "path")
    assert body_schema(schema, card, "200")["properties"]["data"]["$ref"].endswith("/ActionProduct")


def test_links_carry_ids_out_of_the_envelope(schema):
    created = op(schema, "/api/orders/", "post")["responses"]["201"]["links"]
    assert created["retrieve"] == {
        "operationId": "orders_retrieve",
        "parameters": {"id": "$response.body#/data/reference"},
    }
    listed = op(schema, "/api/books/", "get")["responses"]["200"]["links"]
    assert listed["destroy"]["parameters"] == {"id": "$response.body#/docs/0/id"}
    assert "action" in op(schema, "/api/action-products/", "get")["responses"]["200"]["links"]


# -- real responses conform ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checker(schema):
    """``check(path, method, response)``: the response's status is documented for the route
    and its body and headers match, by schemathesis' own validator."""
    import requests
    import schemathesis
    from schemathesis.core.transport import Response

    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(schema)))

    def check(path: str, method: str, response: Any) -> Any:
        operation = loaded[path][method.upper()]
        assert str(response.status_code) in schema["paths"][path][method]["responses"], (
            response.status_code,
            response.content,
        )
        headers = {name: [value] for name, value in response.items()}
        request = requests.Request(method.upper(), f"http://testserver{path}").prepare()
        operation.validate_response(
            Response(response.status_code, headers, response.content, request, 0.0, False)
        )
        return response

    return check


@pytest.fixture
def tenant():
    from rest_framework.test import APIClient

    from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory

    org = OrganizationFactory()

    def member(role):
        client = APIClient()
        client.force_authenticate(MembershipFactory(organization=org, role=role).user)
        client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
        return client

    return {
        "product": ProductFactory(organization=org, status="draft", price=10, cost=4, sku="S-1"),
        "admin": member("admin"),
        "viewer": member("viewer"),
    }


def test_generated_routes_answer_as_documented(api, checker):
    from tests.factories import BookFactory

    books = [BookFactory() for _ in range(3)]
    checker("/api/books/", "get", api.get("/api/books/?limit=2&select=title"))
    keyset = checker("/api/books/", "get", api.get("/api/books/?after=&limit=2"))
    assert keyset.json()["next"]
    checker(
        "/api/books/", "get", api.get("/api/books/?after=" + keyset.json()["next"] + "&limit=2")
    )
    checker("/api/books/", "get", api.get("/api/books/?pages[gte]=abc"))
    checker("/api/books/{id}/", "get", api.get(f"/api/books/{books[0].pk}/"))
    checker("/api/books/{id}/", "get", api.get("/api/books/999999/"))
    author = books[0].author_id
    created = checker(
        "/api/books/",
        "post",
        api.post("/api/books/", {"title": "T", "isbn": "978-0", "author": author, "pages": 3}),
    )
    assert created.status_code == 201, created.content
    checker("/api/books/", "post", api.post("/api/books/", {"pages": "many"}))
    checker("/api/books/{id}/", "put", api.put(f"/api/books/{books[1].pk}/", {"pages": 9}))
    checker("/api/books/{id}/", "delete", api.delete(f"/api/books/{books[2].pk}/"))
    checker("/api/books/", "post", api.post("/api/books/", "x", content_type="text/plain"))
    too_big = json.dumps({"title": "x" * 3_000_000})
    assert (
        checker(
            "/api/books/", "post", api.post("/api/books/", too_big, content_type="application/json")
        ).status_code
        == 413
    )


def test_field_rules_answer_as_documented(tenant, checker):
    """A viewer gets ``sku`` masked and no ``cost``: the item schema allows both."""
    pk = tenant["product"].pk
    viewer = checker("/api/t-products/{id}/", "get", tenant["viewer"].get(f"/api/t-products/{pk}/"))
    assert viewer.json()["data"]["sku"] == "***" and "cost" not in viewer.json()["data"]
    checker("/api/t-products/", "get", tenant["admin"].get("/api/t-products/?select=name"))
    denied = tenant["viewer"].post("/api/t-products/", {"name": "n", "sku": "s", "price": "1"})
    checker("/api/t-products/", "post", denied)


def test_actions_and_routes_answer_as_documented(tenant, checker, api):
    pk = tenant["product"].pk
    path = "/api/action-products/{id}/action/"
    admin = tenant["admin"]
    published = admin.post(
        f"/api/action-products/{pk}/action/", {"action": "publish", "note": "go"}
    )
    assert checker(path, "post", published).status_code == 200
    archived = admin.post(f"/api/action-products/{pk}/action/", {"action": "archive"})
    assert checker(path, "post", archived).json()["data"] == {"archived": True}
    checker(path, "post", admin.post(f"/api/action-products/{pk}/action/", {"action": "nope"}))
    checker(path, "post", admin.post("/api/action-products/999999/action/", {"action": "archive"}))
    card = admin.get(f"/api/action-products/{pk}/card/")
    assert checker("/api/action-products/{id}/card/", "get", card).status_code == 200
    checker("/api/action-products/stats/", "get", admin.get("/api/action-products/stats/"))
    checker("/api/books/stats/", "get", api.get("/api/books/stats/"))
    hook = api.post("/api/books/webhook/", b"raw bytes", content_type="application/octet-stream")
    assert checker("/api/books/webhook/", "post", hook).status_code == 202


def test_throttling_answers_as_documented(api, checker):
    from django.core.cache import cache

    cache.clear()
    statuses = [
        checker("/api/throttled-authors/", "get", api.get("/api/throttled-authors/")).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_idempotency_answers_as_documented(tenant, checker):
    """A keyed create, its replay, the key sent with another body (422) and an invalid key
    (400), each validated against the route's documented responses and headers."""
    admin = tenant["admin"]
    path = "/api/idem-products/"
    body = {"name": "Keyed", "sku": "K-1", "price": "5.00"}
    first = checker(path, "post", admin.post(path, body, HTTP_IDEMPOTENCY_KEY="k-1"))
    assert first.status_code == 201, first.content
    again = checker(path, "post", admin.post(path, body, HTTP_IDEMPOTENCY_KEY="k-1"))
    assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
    reused = admin.post(path, {**body, "name": "Other"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert checker(path, "post", reused).status_code == 422
    assert reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    invalid = checker(path, "post", admin.post(path, body, HTTP_IDEMPOTENCY_KEY="caf\u00e9"))
    assert invalid.status_code == 400 and "Idempotency-Key" in invalid.json()["details"]


@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_cached_reads_answer_as_documented(tenant, checker):
    admin = tenant["admin"]
    pk = tenant["product"].pk
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        states = []
        for path, url in (
            ("/api/cached-products/", "/api/cached-products/?limit=5"),
            ("/api/cached-products/{id}/", f"/api/cached-products/{pk}/"),
        ):
            for _ in range(2):
                states.append(checker(path, "get", admin.get(url))["X-Cache"])
    assert states == ["MISS", "HIT", "MISS", "HIT"]


@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_errors_of_cached_reads_carry_no_x_cache(tenant, checker):
    """What the schema says of the errors of a cached read (no ``X-Cache``): a 404 and a
    400 are not stored, and neither says where it came from."""
    admin = tenant["admin"]
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        for path, url, status in (
            ("/api/cached-products/{id}/", "/api/cached-products/999999/", 404),
            ("/api/cached-products/", "/api/cached-products/?limit=abc", 400),
        ):
            for _ in range(2):
                response = checker(path, "get", admin.get(url))
                assert response.status_code == status, response.content
                assert "X-Cache" not in response, url
