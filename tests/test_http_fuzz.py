"""Raw HTTP against the example's products, which are cached *and* idempotent: JSON bodies
whose strings and keys hold any code point (NUL and lone surrogates included, which JSON
carries as ``\\u0000`` and ``\\ud800`` and no URL can) on every write route, keyed or not.

Never a 5xx nor an exception out of the view; a refusal is the error envelope and leaves no
row changed and no event or audit row behind; a keyed request sent again gets the same
status. Found this way: a choice field quoting a lone surrogate in its 400 (which could not
be rendered), a bulk filter's lone surrogate reaching the driver, an action input's NUL or
infinity reaching the event encoder (see ``docs/decisions.md``).
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from shop.models import Product
from tests.budget import examples
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.redis_support import REDIS_URL, arc_with, caches_with

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["database", "cache"])
def store(request):
    """The idempotency store; with a Redis, the query cache is on too."""
    if request.param == "cache" and not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    idem = {"STORE": request.param, "ALIAS": "redis", "TTL_SECONDS": 3600, "NAMESPACE": ""}
    if not REDIS_URL:
        with override_settings(ARC=arc_with(IDEMPOTENCY=idem)):
            yield request.param
        return
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(IDEMPOTENCY=idem, CACHE={"ALIAS": "redis"})),
    ):
        yield request.param


# any code point: lone surrogates and NUL included (hypothesis leaves surrogates out unless
# told), plus look-alikes of what the parsers refuse
any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=6),
    st.sampled_from(["\x00", "\ud800", "a\udfff", "active", "1", "-1", "1,2", ""]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([1e300, -1e300, 0.5, float("inf"), float("-inf")]),  # inf is sent as 1e400
    any_text,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(any_text, inner, max_size=2),
    max_leaves=4,
)
FIELDS = ["name", "sku", "price", "status", "cost", "secret_notes", "in_stock", "organization"]
fields = st.dictionaries(st.one_of(st.sampled_from(FIELDS), any_text), values, max_size=4)
FILTERS = ["status", "status[in]", "price[gte]", "name[contains]", "name", "sort"]
filters = st.dictionaries(st.one_of(st.sampled_from(FILTERS), any_text), values, max_size=2)
ROUTES = ["create", "update", "bulk-create", "bulk-items", "bulk-filter", "bulk-delete", "action"]


def request_for(route, product, body, filter_, ids):
    """``(method, path, body)`` of one write: a valid row overlaid with the random fields."""
    row = {"name": "n", "sku": "s", "price": "1", **body}
    return {
        "create": ("POST", "/api/products/", row),
        "update": ("PATCH", f"/api/products/{product}/", body),
        "bulk-create": ("POST", "/api/products/bulk/", {"items": [row]}),
        "bulk-items": ("PATCH", "/api/products/bulk/", {"items": [{**body, "id": product}]}),
        "bulk-filter": ("PATCH", "/api/products/bulk/", {"filter": filter_, "data": body}),
        "bulk-delete": ("DELETE", "/api/products/bulk/", {"ids": ids}),
        "action": ("POST", f"/api/products/{product}/action/", {"action": "reprice", **body}),
    }[route]


def encoded(body):
    """JSON as a client sends it: ASCII, a lone surrogate escaped (``\\ud800``), an infinity
    as the number ``1e400`` (the parser refuses the word ``Infinity``, not the number)."""
    return json.dumps(body).replace("-Infinity", "-1e400").replace("Infinity", "1e400")


def state():
    return (
        list(Product.objects.order_by("pk").values()),
        OutboxEvent.objects.count(),
        AuditLog.objects.count(),
    )


@settings(
    max_examples=examples(120),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    body=fields,
    filter_=filters,
    ids=st.lists(values, max_size=2),
    key=st.sampled_from([None, "fuzz-1", "fuzz-2"]),
)
def test_any_code_point_in_a_write_body_never_5xx_and_refusals_write_nothing(
    store, route, body, filter_, ids, key
):
    org = OrganizationFactory()
    product = ProductFactory(organization=org, price=10).pk
    client = member_client(org, "admin")
    method, path, payload = request_for(route, product, body, filter_, ids)
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    data = encoded(payload)
    before = state()
    first = client.generic(method, path, data, content_type="application/json", **headers)
    event(f"{route} {first.status_code}")
    assert first.status_code < 500, (method, path, data, first.content)
    if first.status_code >= 400:
        answer = first.json()
        assert answer["success"] is False and answer["code"], answer
        assert state() == before, (method, path, data, first.content)
    if key:
        again = client.generic(method, path, data, content_type="application/json", **headers)
        assert again.status_code == first.status_code, (data, again.content)
