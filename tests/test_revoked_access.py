"""Access taken away between two requests: what the second one may still be handed.

Every other test judges a request as a snapshot. Here a caller's access changes between two
requests — a role removed, a membership revoked, a user deactivated, a service key revoked or
its scopes narrowed, a field rule tightened in a deploy — and the second answer is asserted
against what the caller may have *now*: from the idempotency store (a replay), from the query
cache (a HIT) and through a keyset cursor minted under the old rights. A replay keeps the
write's outcome (status, id, one row written) but never a field the caller no longer sees
(docs/decisions.md, "A replay is shaped by what the caller may read now").
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

import pytest
from django.test import TestCase, override_settings
from django.urls import resolve
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.test import APIClient

from django_arc import Resource, ResourceSite, arc
from django_arc import fields as F
from django_arc import permissions as arc_permissions
from django_arc import presets as arc_presets
from django_arc.clients import ServiceClient
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.sites import _all_sites
from shop.models import Membership, Product
from tests.factories import MembershipFactory, OrganizationFactory, ProductFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.redis_support import (
    REDIS_URL,
    arc_with,
    idempotency_store,
    query_cache_on_redis,
)
from tests.testapp.feature_resources import CachedProductResource, IdempotentProductResource

IDEM = "/api/idem-products/"
CACHED = "/api/cached-products/"
#: ``TenantProductResource``: cost for admins, sku masked for viewers, writes for admins,
#: editors and services holding ``products:write``; sortable by cost
PRODUCTS = "/api/t-products/"
BODY = {"name": "Widget", "sku": "W-1", "price": "9.50"}

needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"
)


@pytest.fixture(params=["database", "cache"])
def store(request):
    """Each idempotency test on both stores; ``cache`` on the suite's Redis."""
    with idempotency_store(request.param) as store:
        yield store


@pytest.fixture
def org():
    return OrganizationFactory()


def member(org, *roles):
    """A client acting as a new user holding ``roles`` in ``org`` (``.user`` is that user)."""
    user = MembershipFactory(organization=org, role=roles[0]).user
    for role in roles[1:]:
        Membership.objects.create(user=user, organization=org, role=role)
    client = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    client.user = user
    return client


def set_roles(client, org, *roles):
    """The client's user now holds ``roles`` in ``org`` (none: no longer a member), the
    change committed (the shop's membership cache forgets its answer on commit)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        Membership.objects.filter(user=client.user, organization=org).delete()
        for role in roles:
            Membership.objects.create(user=client.user, organization=org, role=role)


def keyed(client, method, url, body, key):
    return getattr(client, method)(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


# -- idempotency: a replay to a caller whose access changed ---------------------------------------


@pytest.mark.django_db
def test_a_create_replayed_after_a_role_is_removed_drops_the_fields_it_no_longer_sees(store, org):
    """An admin creates (its answer carries ``cost``), is demoted to editor, and retries: the
    write is not made again and the retry learns its outcome, but not ``cost``."""
    client = member(org, "admin")
    first = keyed(client, "post", IDEM, BODY, "demoted")
    assert first.status_code == 201, first.content
    assert "cost" in first.json()["data"]
    set_roles(client, org, "editor")
    again = keyed(client, "post", IDEM, BODY, "demoted")
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    data = again.json()["data"]
    assert "cost" not in data
    assert data == {k: v for k, v in first.json()["data"].items() if k != "cost"}
    assert again.get("Location") == first.get("Location")
    assert Product.objects.filter(sku="W-1").count() == 1
    # a new request of the editor's is the editor's own answer: the same shape
    fresh = client.post(IDEM, {**BODY, "sku": "W-2"}, format="json")
    assert set(fresh.json()["data"]) == set(data)


@pytest.mark.django_db
def test_an_update_replayed_after_a_role_turns_masked_masks_it(store, org):
    """An admin's PATCH, replayed once the same user is an editor and a viewer (``sku``
    masked for viewers, ``cost`` for admins only): masked and dropped as a new answer would
    be, the rest as it was."""
    product = ProductFactory(organization=org, sku="S-1", cost=7)
    client = member(org, "admin")
    url = f"{IDEM}{product.pk}/"
    first = keyed(client, "patch", url, {"name": "Renamed"}, "masked")
    assert first.status_code == 200, first.content
    assert first.json()["data"]["sku"] == "S-1" and "cost" in first.json()["data"]
    set_roles(client, org, "editor", "viewer")
    uncached = client.get(url).json()["data"]
    again = keyed(client, "patch", url, {"name": "Renamed"}, "masked")
    assert again.status_code == 200, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    data = again.json()["data"]
    assert data["sku"] == "***" == uncached["sku"]
    assert "cost" not in data and "cost" not in uncached
    assert data["name"] == "Renamed"


@pytest.mark.django_db
def test_a_replay_to_an_unchanged_caller_is_still_the_first_answers_bytes(store, org):
    """Shaping a replay changes nothing for a caller who sees what it saw: byte for byte."""
    client = member(org, "editor", "viewer")
    first = keyed(client, "post", IDEM, BODY, "same")
    assert first.status_code == 201, first.content
    assert first.json()["data"]["sku"] == "***"
    again = keyed(client, "post", IDEM, BODY, "same")
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.content == first.content


@pytest.fixture
def deploy():
    """``deploy(name, rules)``: the registered resource ``name`` declared with ``rules`` as its
    field permissions, as a new release would be; the declaration is put back afterwards."""
    changed = []

    def redeclare(name, rules):
        resource = arc.get_resource(name)
        changed.append((resource, resource.__dict__.get("field_permissions")))
        resource.field_permissions = rules
        forget(resource)
        return resource

    yield redeclare
    for resource, rules in changed:
        if rules is None:
            del resource.field_permissions
        else:
            resource.field_permissions = rules
        forget(resource)


def forget(resource):
    """Drop what the resource compiled from its declaration."""
    for name in ("field_rules", "serializer", "output_fields"):
        resource.__dict__.pop(name, None)


@pytest.mark.django_db
@pytest.mark.parametrize("rule", ["hidden", "visible_to"])
def test_a_replay_after_a_deploy_tightens_a_field_rule_omits_it(store, org, deploy, rule):
    """A field rule tightened between the two requests (a deploy: ``name`` becomes
    ``hidden()``, or visible to admins only, and the caller is an editor): the replay
    carries no ``name``, as the answer of a new request would not."""
    client = member(org, "editor")
    first = keyed(client, "post", IDEM, BODY, "deploy")
    assert first.json()["data"]["name"] == "Widget"
    tightened = F.hidden() if rule == "hidden" else F.visible_to("admin")
    rules = {**IdempotentProductResource.field_permissions, "name": tightened}
    deploy("idem-products", rules)
    new = client.get(f"{IDEM}{first.json()['data']['id']}/").json()["data"]
    assert "name" not in new
    again = keyed(client, "post", IDEM, BODY, "deploy")
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.json()["data"] == new


@pytest.mark.django_db
def test_a_bulk_replay_after_a_role_change_keeps_its_counts(store, org):
    """A bulk answer (counts and ids, no row) is replayed whole, whatever the roles now."""
    client = member(org, "admin")
    body = {"items": [BODY, {**BODY, "sku": "W-2"}]}
    first = keyed(client, "post", f"{IDEM}bulk/", body, "bulk")
    assert first.status_code == 201, first.content
    set_roles(client, org, "editor")
    again = keyed(client, "post", f"{IDEM}bulk/", body, "bulk")
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.content == first.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "revoke, status, code",
    [
        ("viewer", 403, "FORBIDDEN"),  # no longer a writer
        (None, 403, "ORG_REQUIRED"),  # no longer a member
    ],
    ids=["demoted-to-viewer", "membership-removed"],
)
def test_a_caller_no_longer_allowed_to_write_gets_the_refusal_not_the_replay(
    store, org, revoke, status, code
):
    client = member(org, "editor")
    assert keyed(client, "post", IDEM, BODY, "refused").status_code == 201
    set_roles(client, org, *([revoke] if revoke else []))
    again = keyed(client, "post", IDEM, BODY, "refused")
    body = assert_error(again, status, code)
    assert "X-Idempotency-Replayed" not in again
    assert "data" not in body
    assert Product.objects.filter(sku="W-1").count() == 1


@pytest.mark.django_db
def test_a_deactivated_or_deleted_user_gets_401_not_the_replay(store, org, django_user_model):
    """Sessions: a user deactivated (or deleted) since its keyed write is anonymous now."""
    user = MembershipFactory(organization=org, role="editor").user
    user.set_password("pw")
    user.save()
    session = APIClient(HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert session.login(username=user.username, password="pw")
    assert keyed(session, "post", IDEM, BODY, "gone").status_code == 201
    django_user_model.objects.filter(pk=user.pk).update(is_active=False)
    again = keyed(session, "post", IDEM, BODY, "gone")
    assert again.status_code in (401, 403), again.content
    assert "X-Idempotency-Replayed" not in again
    django_user_model.objects.filter(pk=user.pk).delete()
    again = keyed(session, "post", IDEM, BODY, "gone")
    assert again.status_code in (401, 403), again.content
    assert "X-Idempotency-Replayed" not in again


def service(org, *scopes):
    client_row, raw = ServiceClient.objects.create_with_key(
        name="svc", organization_id=org.pk, scopes=scopes
    )
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {raw}")
    api.row = client_row
    return api


@pytest.mark.django_db
def test_a_revoked_or_narrowed_service_key_gets_the_refusal_not_the_replay(store, org):
    with override_settings(ARC=arc_with(IDEMPOTENCY={"ENABLED": True})):
        narrowed = service(org, "products:write")
        assert keyed(narrowed, "post", PRODUCTS, BODY, "svc").status_code == 201
        ServiceClient.objects.filter(pk=narrowed.row.pk).update(scopes=["products:read"])
        again = keyed(narrowed, "post", PRODUCTS, BODY, "svc")
        assert_error(again, 403, "FORBIDDEN")
        assert "X-Idempotency-Replayed" not in again

        revoked = service(org, "products:write")
        body = {**BODY, "sku": "W-2"}
        assert keyed(revoked, "post", PRODUCTS, body, "svc").status_code == 201
        ServiceClient.objects.filter(pk=revoked.row.pk).update(active=False)
        again = keyed(revoked, "post", PRODUCTS, body, "svc")
        assert_error(again, 401, "UNAUTHORIZED")
        assert "X-Idempotency-Replayed" not in again


# -- the query cache: a HIT to a caller whose access changed ---------------------------------------


@pytest.fixture
def redis_cache():
    with query_cache_on_redis() as config:
        yield config


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_cached_list_and_get_follow_the_roles_of_each_request(redis_cache, org):
    """Admin → editor+viewer → admin again: each answer is the one the roles of its
    request get uncached; no entry made for one set of roles reaches another."""
    product = ProductFactory(organization=org, sku="S-1", cost=7, price=5)
    client = member(org, "admin")
    for url in (CACHED, f"{CACHED}{product.pk}/"):
        first = client.get(url)
        assert first["X-Cache"] == "MISS"
        assert client.get(url)["X-Cache"] == "HIT"
        set_roles(client, org, "editor", "viewer")
        demoted = client.get(url)
        assert demoted["X-Cache"] == "MISS"
        text = demoted.content.decode()
        assert '"cost"' not in text and '"S-1"' not in text and '"***"' in text
        set_roles(client, org, "admin")
        assert client.get(url).content == first.content


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_cached_answer_is_not_served_to_a_revoked_member_user_or_key(redis_cache, org):
    """Every refusal runs before the cache is asked: no ``X-Cache``, no rows."""
    ProductFactory(organization=org, name="Secret")
    client = member(org, "viewer")
    assert client.get(CACHED)["X-Cache"] == "MISS"
    assert client.get(CACHED)["X-Cache"] == "HIT"
    set_roles(client, org)  # membership removed
    refused = client.get(CACHED)
    assert_error(refused, 403, "ORG_REQUIRED")
    assert "X-Cache" not in refused and b"Secret" not in refused.content

    user = MembershipFactory(organization=org, role="viewer").user
    user.set_password("pw")
    user.save()
    session = APIClient(HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert session.login(username=user.username, password="pw")
    assert session.get(CACHED)["X-Cache"] in ("MISS", "HIT")
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    refused = session.get(CACHED)
    assert refused.status_code in (401, 403) and "X-Cache" not in refused
    assert b"Secret" not in refused.content

    api = service(org, "products:read")
    assert api.get(CACHED)["X-Cache"] in ("MISS", "HIT")
    ServiceClient.objects.filter(pk=api.row.pk).update(active=False)
    refused = api.get(CACHED)
    assert_error(refused, 401, "UNAUTHORIZED")
    assert "X-Cache" not in refused and b"Secret" not in refused.content


# -- keyset cursors minted under the old rights ----------------------------------------------------


@pytest.mark.django_db
def test_a_cursor_sorting_by_a_field_the_caller_lost_is_refused(org):
    """An admin pages by ``cost``; demoted to editor (``cost`` is for admins), following the
    cursor would keep ordering by a field it may not read: 400 naming ``sort``, as the same
    sort without a cursor is."""
    for i in range(4):
        ProductFactory(organization=org, cost=i, price=i)
    client = member(org, "admin")
    first = client.get(f"{PRODUCTS}?sort=cost&limit=2&after=")
    assert first.status_code == 200, first.content
    cursor = first.json()["next"]
    assert cursor
    set_roles(client, org, "editor")
    refused = client.get(f"{PRODUCTS}?sort=cost&limit=2&after={cursor}")
    body = assert_error(refused, 400, "INVALID_QUERY")
    assert "sort" in json.dumps(body["details"])
    # the cursor under the sort the editor may use is someone else's: refused, not followed
    assert_error(client.get(f"{PRODUCTS}?sort=price&limit=2&after={cursor}"), 400, "INVALID_QUERY")


@pytest.mark.django_db
def test_a_cursor_followed_in_another_organization_pages_only_that_ones_rows(org):
    """A member moved to another organization follows its old cursor: the rows after it in
    the new organization only (the cursor is a position, never a filter)."""
    other = OrganizationFactory()
    for i in range(4):
        ProductFactory(organization=org, name=f"A{i}", price=i)
        ProductFactory(organization=other, name=f"B{i}", price=i)
    client = member(org, "viewer")
    first = client.get(f"{PRODUCTS}?sort=price&limit=2&after=")
    cursor = first.json()["next"]
    set_roles(client, org)
    with TestCase.captureOnCommitCallbacks(execute=True):
        Membership.objects.create(user=client.user, organization=other, role="viewer")
    client.credentials(HTTP_X_ORGANIZATION_ID=str(other.pk))
    moved = client.get(f"{PRODUCTS}?sort=price&limit=2&after={cursor}")
    assert moved.status_code == 200, moved.content
    names = [row["name"] for row in moved.json()["docs"]]
    assert names and all(name.startswith("B") for name in names)
    client.credentials(HTTP_X_ORGANIZATION_ID=str(org.pk))
    assert_error(client.get(f"{PRODUCTS}?sort=price&limit=2&after={cursor}"), 403, "ORG_REQUIRED")


@pytest.mark.django_db
def test_an_action_replayed_after_a_role_is_removed_drops_the_fields_it_no_longer_sees(store, org):
    """An ``@action`` answering the row (``double``), replayed once the admin is an editor:
    no ``cost``, and the price doubled once."""
    product = ProductFactory(organization=org, price=10, cost=7)
    client = member(org, "admin")
    url = f"{IDEM}{product.pk}/action/"
    first = keyed(client, "post", url, {"action": "double"}, "action")
    assert first.status_code == 200, first.content
    assert "cost" in first.json()["data"]
    set_roles(client, org, "editor")
    again = keyed(client, "post", url, {"action": "double"}, "action")
    assert again["X-Idempotency-Replayed"] == "true"
    assert "cost" not in again.json()["data"]
    assert again.json()["data"]["price"] == first.json()["data"]["price"] == "20.00"
    product.refresh_from_db()
    assert product.price == 20


# -- the admin's dead letters to a staff user losing its access -----------------------------------


@pytest.mark.django_db
def test_the_dead_letters_are_not_shown_to_staff_whose_permission_or_status_was_removed(
    client, django_user_model
):
    """The admin keeps no answer of its own: each page asks the user's permissions and
    staff status as they are now (Django's permission cache lives on one request's user)."""
    from django.contrib.auth.models import Permission

    from django_arc.outbox import OutboxEvent

    OutboxEvent.objects.create(
        event_id="e-1", type="orders.created", status="dead", attempts=8, last_error="Boom-1"
    )
    user = django_user_model.objects.create_user("support", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_outboxevent"))
    client.force_login(user)
    url = "/admin/django_arc/outboxevent/dead-letters/"
    shown = client.get(url)
    assert shown.status_code == 200 and b"Boom-1" in shown.content
    user.user_permissions.clear()
    refused = client.get(url)
    assert refused.status_code == 403 and b"Boom-1" not in refused.content
    user.user_permissions.add(Permission.objects.get(codename="view_outboxevent"))
    assert b"Boom-1" in client.get(url).content
    django_user_model.objects.filter(pk=user.pk).update(is_staff=False)
    gone = client.get(url)
    assert gone.status_code == 302 and b"Boom-1" not in gone.content


@needs_redis
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rule", ["hidden", "visible_to", "redact_for"])
def test_a_field_rule_tightened_by_a_deploy_is_not_served_from_the_old_entries(
    redis_cache, org, deploy, rule
):
    """Entries outlive a deploy (Redis keeps them); one stored before a field rule was
    tightened must not answer after it: the key holds what the caller may see."""
    product = ProductFactory(organization=org, name="Visible name")
    client = member(org, "editor")
    for url in (CACHED, f"{CACHED}{product.pk}/"):
        assert client.get(url)["X-Cache"] == "MISS"
        assert client.get(url)["X-Cache"] == "HIT"
    tightened = {
        "hidden": F.hidden(),
        "visible_to": F.visible_to("admin"),
        "redact_for": F.redact_for("editor"),
    }[rule]
    deploy("cached-products", {**CachedProductResource.field_permissions, "name": tightened})
    for url in (CACHED, f"{CACHED}{product.pk}/"):
        after = client.get(url)
        assert after["X-Cache"] == "MISS"
        assert b"Visible name" not in after.content


@pytest.mark.django_db
def test_a_superuser_demoted_since_an_elevated_write_gets_403_not_its_replay(
    store, org, django_user_model
):
    """Elevation is judged on every request (``ELEVATION_CHECK``): the elevated key's answer
    is not replayed to a user who no longer passes it."""
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    MembershipFactory(user=root, organization=org, role="editor")
    elevated = client_for(root, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_SCOPE="platform")
    body = {**BODY, "cost": "3.00"}
    first = keyed(elevated, "post", IDEM, body, "root")
    assert first.status_code == 201, first.content
    assert first.json()["data"]["cost"] == "3.00"
    django_user_model.objects.filter(pk=root.pk).update(is_superuser=False)
    root.is_superuser = False  # the client's user object, as a new session would load it
    again = keyed(elevated, "post", IDEM, body, "root")
    assert again.status_code == 403, again.content
    assert "X-Idempotency-Replayed" not in again and b"3.00" not in again.content
    assert Product.objects.count() == 1


@pytest.mark.django_db
def test_an_update_replayed_after_its_row_moved_to_another_tenant_is_still_its_outcome(store, org):
    """The judgement of docs/idempotency.md: the replay is the outcome of the caller's own
    write — the row as that write left it, shaped by the caller's fields — even once the row
    has moved to another organization, where a new request gets 404. Re-checking the row
    would answer 404 for a write that did happen."""
    product = ProductFactory(organization=org, name="Mine", cost=7)
    client = member(org, "editor")
    url = f"{IDEM}{product.pk}/"
    first = keyed(client, "patch", url, {"name": "Renamed"}, "moved")
    assert first.status_code == 200, first.content
    Product.objects.filter(pk=product.pk).update(organization=OrganizationFactory(), name="Theirs")
    assert_error(client.get(url), 404, "NOT_FOUND")
    again = keyed(client, "patch", url, {"name": "Renamed"}, "moved")
    assert again.status_code == 200 and again["X-Idempotency-Replayed"] == "true"
    assert again.content == first.content
    assert b"Theirs" not in again.content
    assert Product.objects.get(pk=product.pk).name == "Theirs"


@pytest.fixture
def raise_prices_answers(monkeypatch):
    """``raise_prices_answers(value)``: the idempotent products' ``raise-prices`` route
    answers ``value`` (a route's own value) for the test's duration."""
    spec = next(s for s in IdempotentProductResource().routes if s.name == "raise_prices")

    def answer(value):
        handler = value if callable(value) else (lambda view, request, **kwargs: value)
        monkeypatch.setattr(spec, "handler", handler)

    return answer


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [
        # a model field the serializer does not render, a reverse relation, a column name
        {"in_stock": False},
        {"orders": 3, "status": "active"},
        [{"organization_id": 1}, {"organization_id": 2}],
    ],
)
def test_a_routes_own_value_named_like_model_fields_is_replayed_as_it_was(
    store, org, raise_prices_answers, value
):
    """A route's own value whose keys happen to be model field names is no rendered row: a
    replay to the caller it answered, whose access did not change, is the first answer's
    bytes, not the value with every name the serializer does not render dropped."""
    raise_prices_answers(value)
    client = member(org, "editor")
    url = f"{IDEM}raise-prices/"
    first = keyed(client, "post", url, {}, "own-value")
    assert first.status_code == 200, first.content
    assert first.json()["data"] == value
    again = keyed(client, "post", url, {}, "own-value")
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.json()["data"] == value
    assert again.content == first.content


@pytest.mark.django_db
@pytest.mark.parametrize("paging", ["offset", "keyset"])
def test_a_page_answered_to_a_write_is_replayed_without_the_fields_taken_away(
    store, org, raise_prices_answers, paging
):
    """A write route answering a page of rows (a search sent as a POST: ``list_response``,
    whose envelope holds ``docs``, not ``data``), replayed once the admin is an editor:
    its rows shaped as the editor's new page would be, the page's own keys as stored."""
    ProductFactory(organization=org, name="A", cost=7)
    ProductFactory(organization=org, name="B", cost=8)
    query = "?limit=1" if paging == "offset" else "?limit=1&after="

    def search(view, request, **kwargs):
        return view.list_response(view.filter_queryset(view.get_queryset()))

    raise_prices_answers(search)
    client = member(org, "admin")
    url = f"{IDEM}raise-prices/{query}"
    first = keyed(client, "post", url, {}, "page")
    assert first.status_code == 200, first.content
    assert first.json()["docs"] and all("cost" in row for row in first.json()["docs"])
    set_roles(client, org, "editor")
    again = keyed(client, "post", url, {}, "page")
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.json()["docs"] == [
        {k: v for k, v in row.items() if k != "cost"} for row in first.json()["docs"]
    ]
    kept = {k: v for k, v in first.json().items() if k != "docs"}
    assert {k: v for k, v in again.json().items() if k != "docs"} == kept


@pytest.mark.django_db
def test_a_reshaped_replay_carries_no_header_describing_the_stored_body(
    store, org, raise_prices_answers
):
    """A route answering its own ``Response`` with headers describing its body (a project
    setting ``Content-Length``, an ``ETag`` or a digest of the bytes): once the replay's row
    is shaped for a demoted caller, those headers would describe bytes it is not sent — a
    ``Content-Length`` longer than the body stalls or cuts the client's read. They go with
    the stored bytes; the route's other headers stay."""
    import hashlib

    from rest_framework.renderers import JSONRenderer
    from rest_framework.response import Response

    product = ProductFactory(organization=org, cost=7)

    def answer(view, request, **kwargs):
        doc = {"success": True, "data": view.render(Product.objects.get(pk=product.pk))}
        body = JSONRenderer().render(doc)
        headers = {
            "Content-Length": str(len(body)),
            "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
            "X-Kept": "yes",
        }
        return Response(doc, headers=headers)

    raise_prices_answers(answer)
    client = member(org, "admin")
    url = f"{IDEM}raise-prices/"
    first = keyed(client, "post", url, {}, "headers")
    assert first.status_code == 200, first.content
    assert int(first["Content-Length"]) == len(first.content)
    same = keyed(client, "post", url, {}, "headers")  # unchanged caller: the stored bytes
    assert same.content == first.content and same["ETag"] == first["ETag"]
    assert int(same["Content-Length"]) == len(same.content)
    set_roles(client, org, "editor")
    again = keyed(client, "post", url, {}, "headers")
    assert again["X-Idempotency-Replayed"] == "true"
    assert "cost" not in again.json()["data"]
    assert again.get("ETag") != first["ETag"]
    assert int(again.get("Content-Length", len(again.content))) == len(again.content)
    assert again["X-Kept"] == "yes"


class StatusInBodyRenderer(JSONRenderer):
    """A project's JSON renderer reading the response it renders, as DRF's renderers may
    (``renderer_context["response"]``, which DRF always passes): it adds the status."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict):
            data = {**data, "status": renderer_context["response"].status_code}
        return super().render(data, accepted_media_type, renderer_context)


@pytest.mark.django_db
def test_a_replay_reshaped_by_a_project_renderer_reading_its_context_is_no_500(
    store, org, monkeypatch
):
    """The reshaped answer is rendered as the stored one was: with the renderer context DRF
    passes (``view``, ``request``, ``response``), not ``None``, which a project renderer
    reading ``renderer_context["response"]`` failed on — a 500 on the replay of a write
    that happened."""
    from django.urls import resolve

    view_class = resolve(IDEM).func.cls
    monkeypatch.setattr(view_class, "renderer_classes", [StatusInBodyRenderer])
    client = member(org, "admin")
    first = keyed(client, "post", IDEM, BODY, "ctx")
    assert first.status_code == 201, first.content
    assert first.json()["status"] == 201 and "cost" in first.json()["data"]
    set_roles(client, org, "editor")
    again = keyed(client, "post", IDEM, BODY, "ctx")
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.json()["status"] == 201
    assert again.json()["data"] == {k: v for k, v in first.json()["data"].items() if k != "cost"}


@pytest.mark.django_db
def test_a_create_rendered_by_a_viewsets_own_serializer_keeps_its_fields_on_a_replay(
    store, org, monkeypatch
):
    """A ViewSet subclass's ``get_serializer_class()`` rendering a column the resource does
    not (``in_stock``): the replay to the caller it answered, whose access did not change,
    is the first answer's bytes; once the caller is demoted, it loses ``cost`` (the field
    rule) and keeps ``in_stock`` (no rule takes it)."""
    from django.urls import resolve
    from rest_framework import serializers

    class WithStock(serializers.ModelSerializer):
        class Meta:
            model = Product
            fields = ["id", "name", "sku", "price", "cost", "in_stock", "organization"]
            read_only_fields = ["id", "organization"]

    view_class = resolve(IDEM).func.cls
    monkeypatch.setattr(view_class, "get_serializer_class", lambda self: WithStock)
    client = member(org, "admin")
    first = keyed(client, "post", IDEM, BODY, "own-serializer")
    assert first.status_code == 201, first.content
    assert first.json()["data"]["in_stock"] is True and "cost" in first.json()["data"]
    same = keyed(client, "post", IDEM, BODY, "own-serializer")
    assert same["X-Idempotency-Replayed"] == "true"
    assert same.content == first.content
    set_roles(client, org, "editor")
    again = keyed(client, "post", IDEM, BODY, "own-serializer")
    assert again.json()["data"] == {k: v for k, v in first.json()["data"].items() if k != "cost"}


@pytest.mark.django_db
def test_a_row_a_viewsets_serializer_renders_with_a_computed_field_is_shaped_on_a_replay(
    store, org, monkeypatch
):
    """A ViewSet subclass's serializer rendering a value of its own beside the row's
    columns (``label = SerializerMethodField()``): its name is no field of the resource's
    model or serializer, so the row was not recognised as one and the demoted caller's
    replay held ``cost``, which the field rule takes from it now."""
    from django.urls import resolve
    from rest_framework import serializers

    class WithLabel(serializers.ModelSerializer):
        label = serializers.SerializerMethodField()

        class Meta:
            model = Product
            fields = ["id", "name", "sku", "price", "cost", "organization", "label"]
            read_only_fields = ["id", "organization"]

        def get_label(self, obj: Product) -> str:
            return f"{obj.sku}: {obj.name}"

    view_class = resolve(IDEM).func.cls
    monkeypatch.setattr(view_class, "get_serializer_class", lambda self: WithLabel)
    client = member(org, "admin")
    body = {**BODY, "cost": "4.00"}
    first = keyed(client, "post", IDEM, body, "own-label")
    assert first.status_code == 201, first.content
    assert first.json()["data"]["label"] == "W-1: Widget"
    assert first.json()["data"]["cost"] == "4.00"
    set_roles(client, org, "editor")
    again = keyed(client, "post", IDEM, body, "own-label")
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.json()["data"] == {k: v for k, v in first.json()["data"].items() if k != "cost"}


@contextmanager
def _seen8c_products_site(settings, prefix, name, serializer_class, keys, **attrs):
    """A site ``<name>-site`` of one resource ``name``: products rendered by
    ``serializer_class``, idempotent, narrowed to the caller's organization, its members
    allowed ``keys`` (``attrs``: more of the resource's settings); mounted under
    ``<prefix>/`` for the block, then taken off the site registry, not a site the next
    tests check or write through."""
    resource = type(
        "".join(part.title() for part in name.split("-")) + "Resource",  # LabelledResource
        (Resource,),
        {
            "__module__": __name__,
            "model": Product,
            "name": name,
            "serializer_class": serializer_class,
            "idempotent": True,
            "presets": [arc_presets.MultiTenant(tenant_field="organization")],
            "permissions": {k: arc_permissions.require_org_membership() for k in keys},
            **attrs,
        },
    )
    site = ResourceSite(name=f"{name}-site")
    site.register(resource)
    try:
        with site_mounted(settings, prefix, site):
            yield site
    finally:
        _all_sites.remove(site)


@pytest.mark.django_db
def test_a_computed_field_hidden_by_a_deploy_is_left_out_of_a_replay(store, org, settings):
    """The resource's own serializer renders a value of its own (``label =
    SerializerMethodField()``); a deploy makes it ``hidden()``: a new answer has no
    ``label``, and the replay had it, as the stored row (its ``label`` no field of the model
    nor of the serializer now) was not recognised as a row."""

    class LabelSerializer(serializers.ModelSerializer):
        label = serializers.SerializerMethodField()

        class Meta:
            model = Product
            fields = ["id", "name", "sku", "price", "organization", "label"]

        def get_label(self, obj: Product) -> str:
            return f"{obj.sku}: {obj.name}"

    keys = ("list", "get", "create")
    with _seen8c_products_site(settings, "lb", "labelled", LabelSerializer, keys) as site:
        client = member(org, "editor")
        first = keyed(client, "post", "/lb/labelled/", BODY, "labelled")
        assert first.status_code == 201, first.content
        assert first.json()["data"]["label"] == "W-1: Widget"
        resource = site.get_resource("labelled")
        resource.field_permissions = {"label": F.hidden()}
        for name in ("field_rules", "serializer", "output_fields"):
            resource.__dict__.pop(name, None)
        new = client.get(f"/lb/labelled/{first.json()['data']['id']}/").json()["data"]
        assert "label" not in new
        again = keyed(client, "post", "/lb/labelled/", BODY, "labelled")
        assert again["X-Idempotency-Replayed"] == "true"
        assert again.json()["data"] == new


@pytest.mark.django_db
def test_a_column_a_serializer_adds_per_request_stays_in_a_replay(store, org, settings):
    """The resource's own serializer adds a column per request (a project's
    ``get_fields()``: ``cost`` for a request's caller, as for a staff user): the names the
    resource renders, built without a request, lack it, so a replay of the create to the
    same caller, whose access did not change, was reshaped without ``cost``."""

    class PerRequestSerializer(serializers.ModelSerializer):
        class Meta:
            model = Product
            fields = ["id", "name", "sku", "price", "organization"]

        def get_fields(self):
            fields = super().get_fields()
            if self.context.get("request") is not None:
                fields["cost"] = serializers.DecimalField(
                    max_digits=10, decimal_places=2, read_only=True
                )
            return fields

    keys = ("get", "create")
    with _seen8c_products_site(settings, "pr", "per-request", PerRequestSerializer, keys):
        client = member(org, "editor")
        first = keyed(client, "post", "/pr/per-request/", BODY, "per-request")
        assert first.status_code == 201, first.content
        assert "cost" in first.json()["data"]
        again = keyed(client, "post", "/pr/per-request/", BODY, "per-request")
        assert again["X-Idempotency-Replayed"] == "true"
        assert again.content == first.content


class _Seen8cMarginSerializer(serializers.ModelSerializer):
    """A products serializer giving staff a ``margin`` field (its ``get_fields()``, a
    project's per-request field): it renders ``staff only``."""

    class Meta:
        model = Product
        fields = ["id", "name", "sku", "price", "organization"]
        read_only_fields = ["id", "organization"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and request.user.is_staff:
            fields["margin"] = serializers.SerializerMethodField()
        return fields

    def get_margin(self, obj: Product) -> str:
        return "staff only"


def _seen8c_created_by_staff(org, monkeypatch, serializer_class, key):
    """``IDEM``'s ViewSet rendering with ``serializer_class``; a staff editor of ``org``
    creates with the ``Idempotency-Key`` ``key``, answered its ``margin``: the client, the
    answer."""
    view_class = resolve(IDEM).func.cls
    monkeypatch.setattr(view_class, "get_serializer_class", lambda self: serializer_class)
    client = member(org, "editor")
    client.user.is_staff = True
    client.user.save()
    first = keyed(client, "post", IDEM, BODY, key)
    assert first.status_code == 201, first.content
    assert first.json()["data"]["margin"] == "staff only"
    return client, first


def _seen8c_replayed_without_margin(client, first, key):
    """The retry of ``first`` (key ``key``) by its client, no longer staff: a replay of
    ``first`` without ``margin``; the answer."""
    again = keyed(client, "post", IDEM, BODY, key)
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.status_code == 201
    assert again.json()["data"] == {k: v for k, v in first.json()["data"].items() if k != "margin"}
    return again


@pytest.mark.django_db
def test_a_field_a_viewsets_serializer_gives_per_request_is_left_out_once_taken_away(
    store, org, monkeypatch
):
    """A ViewSet subclass's serializer adds a field per request (DRF's ``get_fields()``:
    ``margin`` for staff only); the staff user creates, loses ``is_staff`` and retries: a
    new answer would not hold ``margin``, and the replay held it, as it is no field rule's
    (only the read plan shaped a ViewSet subclass's row). The resource's own serializer's
    row was already shaped by what its serializer renders for the retry."""

    client, first = _seen8c_created_by_staff(
        org, monkeypatch, _Seen8cMarginSerializer, "staff-margin"
    )
    same = keyed(client, "post", IDEM, BODY, "staff-margin")
    assert same["X-Idempotency-Replayed"] == "true"
    assert same.content == first.content
    client.user.is_staff = False
    client.user.save()
    row_id = first.json()["data"]["id"]
    assert "margin" not in client.get(f"{IDEM}{row_id}/").json()["data"]
    _seen8c_replayed_without_margin(client, first, "staff-margin")


@pytest.mark.django_db
def test_a_row_holding_a_field_its_serializer_no_longer_gives_the_caller_is_still_shaped(
    store, org, settings
):
    """The resource's own serializer gives ``margin`` to staff only (its ``get_fields()``)
    and ``cost`` is an admin's (a field rule). A staff admin creates, then loses both: the
    stored row's ``margin`` was a name nothing knew for the retry (not the model's, not a
    rule's, not the retry's serializer's), so the row was not recognised as one and was
    replayed as stored — ``cost`` included, which the field rule takes from an editor."""

    class StaffMarginSerializer(_Seen8cMarginSerializer):
        class Meta:
            model = Product
            fields = ["id", "name", "sku", "price", "cost", "organization"]

    with _seen8c_products_site(
        settings,
        "sm",
        "staff-margin",
        StaffMarginSerializer,
        ("get", "create"),
        read_only_fields=["id"],
        field_permissions={"cost": F.visible_to("admin")},
    ):
        client = member(org, "admin")
        client.user.is_staff = True
        client.user.save()
        body = {**BODY, "cost": "4.00"}
        first = keyed(client, "post", "/sm/staff-margin/", body, "staff-margin")
        assert first.status_code == 201, first.content
        assert first.json()["data"]["margin"] == "staff only"
        assert first.json()["data"]["cost"] == "4.00"
        same = keyed(client, "post", "/sm/staff-margin/", body, "staff-margin")
        assert same.content == first.content
        client.user.is_staff = False
        client.user.save()
        set_roles(client, org, "editor")
        row_id = first.json()["data"]["id"]
        new = client.get(f"/sm/staff-margin/{row_id}/").json()["data"]
        assert "margin" not in new and "cost" not in new
        again = keyed(client, "post", "/sm/staff-margin/", body, "staff-margin")
        assert again["X-Idempotency-Replayed"] == "true"
        assert again.status_code == 201
        assert again.json()["data"] == new


@contextmanager
def _rf44_revision_site(settings, prefix: str):
    """Products under ``/<prefix>/seen8a-revision/``: a serializer whose ``get_fields()``
    adds ``revision`` for a row it is given (``self.instance``), ``cost`` visible to admins
    only; the site is taken off the registry after."""

    class RevisionSerializer(serializers.ModelSerializer):
        class Meta:
            model = Product
            fields = ["id", "name", "sku", "price", "cost", "organization"]

        def get_fields(self):
            fields = super().get_fields()
            if self.instance is not None:
                fields["revision"] = serializers.SerializerMethodField()
            return fields

        def get_revision(self, obj: Product) -> str:
            return f"r-{obj.name}"

    class RevisionResource(Resource):
        model = Product
        name = "seen8a-revision"
        serializer_class = RevisionSerializer
        read_only_fields = ["id"]
        idempotent = True
        presets = [arc_presets.MultiTenant(tenant_field="organization")]
        permissions = {
            k: arc_permissions.require_org_membership() for k in ("get", "create", "update")
        }
        field_permissions = {"cost": F.visible_to("admin")}

    site = ResourceSite(name=f"{prefix}-revision-site")
    site.register(RevisionResource)
    try:
        with site_mounted(settings, prefix, site):
            yield
    finally:
        _all_sites.remove(site)


@pytest.mark.django_db
def test_an_update_replay_keeps_a_field_its_serializer_gives_an_existing_row(store, org, settings):
    """A serializer whose ``get_fields()`` adds a field for a row it was given only
    (``self.instance``: ``revision``, rendered on an update's answer, not on a create's).
    The replay of an update to the same caller, whose access did not change, is the answer
    it had, byte for byte; a caller who lost ``cost`` since still loses it, ``revision``
    kept."""
    with _rf44_revision_site(settings, "rv"):
        client = member(org, "admin")
        created = client.post("/rv/seen8a-revision/", {**BODY, "cost": "4.00"}, format="json")
        assert created.status_code == 201, created.content
        assert "revision" not in created.json()["data"]
        url = f"/rv/seen8a-revision/{created.json()['data']['id']}/"
        first = keyed(client, "patch", url, {"name": "Gadget"}, "rev")
        assert first.status_code == 200, first.content
        assert first.json()["data"]["revision"] == "r-Gadget"
        assert first.json()["data"]["cost"] == "4.00"
        same = keyed(client, "patch", url, {"name": "Gadget"}, "rev")
        assert same["X-Idempotency-Replayed"] == "true"
        assert same.content == first.content
        set_roles(client, org, "editor")
        again = keyed(client, "patch", url, {"name": "Gadget"}, "rev")
        assert again["X-Idempotency-Replayed"] == "true"
        data = again.json()["data"]
        assert "cost" not in data and data["revision"] == "r-Gadget", data


@pytest.mark.django_db
def test_an_update_replay_runs_no_field_default_of_the_model(store, org, settings, monkeypatch):
    """An update's replay builds its serializer with a stand-in row (fix-seen8a), which was
    the model's ``Model()``: Django runs every callable field ``default`` for it, project
    code (a ``default=next_invoice_number`` drawing from a sequence, a counter's UPDATE), so
    each replay ran it once more, where a replay runs nothing of the write. The stand-in is
    built with no default run: the replay is the answer, byte for byte, and the default
    ran only for rows the write made."""
    drawn = []

    def rf44_next_status():
        drawn.append(1)
        return "draft"

    monkeypatch.setattr(Product._meta.get_field("status"), "default", rf44_next_status)
    monkeypatch.setattr(Product._meta.get_field("status"), "_get_default", rf44_next_status)

    with _rf44_revision_site(settings, "rf44"):
        client = member(org, "admin")
        created = client.post("/rf44/seen8a-revision/", BODY, format="json")
        assert created.status_code == 201, created.content
        url = f"/rf44/seen8a-revision/{created.json()['data']['id']}/"
        first = keyed(client, "patch", url, {"name": "Gadget"}, "rf44")
        assert first.status_code == 200, first.content
        assert first.json()["data"]["revision"] == "r-Gadget"
        drawn.clear()
        same = keyed(client, "patch", url, {"name": "Gadget"}, "rf44")
        assert same["X-Idempotency-Replayed"] == "true"
        assert same.content == first.content
        assert drawn == []


class _QueuingViewSet(IdempotentProductResource.as_viewset()):
    """A ViewSet subclass whose create answers a value of its own, not the row."""

    def create(self, request, *args, **kwargs):
        super().create(request, *args, **kwargs)
        return self.success_response({"queued": True, "name": "Widget"}, "Queued", 201)


@pytest.mark.django_db
def test_a_create_a_viewset_subclass_answers_with_its_own_value_is_replayed_as_it_was(
    store, org, settings
):
    """Only arc's own ``create()`` answers the row its serializer wrote; a ViewSet
    subclass's ``create()`` answering a value of its own (``{"queued": true, ...}``) is
    replayed as stored, not cut down to the serializer's names."""
    from django.urls import clear_url_caches, include, path
    from rest_framework.routers import SimpleRouter

    import tests.urls

    router = SimpleRouter()
    router.register("queuing", _QueuingViewSet, basename="queuing")
    patterns = [*tests.urls.urlpatterns, path("qv/", include(router.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    try:
        client = member(org, "admin")
        first = keyed(client, "post", "/qv/queuing/", BODY, "queued")
        assert first.status_code == 201, first.content
        assert first.json()["data"] == {"queued": True, "name": "Widget"}
        set_roles(client, org, "editor")
        again = keyed(client, "post", "/qv/queuing/", BODY, "queued")
        assert again["X-Idempotency-Replayed"] == "true"
        assert again.content == first.content
    finally:
        clear_url_caches()


@pytest.mark.django_db
def test_a_retry_asking_for_the_browsable_api_is_replayed_the_first_answers_bytes(store, org):
    """The names a replayed row keeps are those the view's serializer renders for the
    retry, built as a new answer's is, not as the browsable API's form (which keeps the
    fields a body may write only: ``id``, ``created_at``, the tenant went from the row)."""
    client = member(org, "admin")
    first = keyed(client, "post", IDEM, BODY, "browsable")
    assert first.status_code == 201, first.content
    assert {"id", "created_at", "organization"} <= first.json()["data"].keys()
    again = client.post(
        IDEM, BODY, format="json", HTTP_IDEMPOTENCY_KEY="browsable", HTTP_ACCEPT="text/html"
    )
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.content == first.content


def _camel(value):
    if isinstance(value, dict):
        return {
            "".join(p.title() if i else p for i, p in enumerate(k.split("_"))): _camel(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


class CamelCaseRenderer(JSONRenderer):
    """A project's renderer writing every key in camelCase (``organization_id`` →
    ``organizationId``), as djangorestframework-camel-case does."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return super().render(_camel(data), accepted_media_type, renderer_context)


class Latin1Renderer(JSONRenderer):
    """A project's renderer answering in ISO-8859-1, its declared ``charset``."""

    charset = "iso-8859-1"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        indent = self.get_indent(accepted_media_type, renderer_context or {})
        text = json.dumps(data, ensure_ascii=False, indent=indent, cls=self.encoder_class)
        return text.encode(self.charset)


@pytest.mark.django_db
@pytest.mark.parametrize("renderer", [CamelCaseRenderer, Latin1Renderer])
def test_a_replay_written_by_a_renaming_or_latin1_renderer_drops_the_fields_taken_away(
    store, org, monkeypatch, renderer
):
    """An answer a project renderer wrote under camelCase names, or in ISO-8859-1, was not
    read back as a row: the demoted caller's replay was the stored bytes, ``cost`` in them.
    Its document is kept beside it and shaped as any other; an unchanged caller still gets
    the stored bytes."""
    from django.urls import resolve

    monkeypatch.setattr(resolve(IDEM).func.cls, "renderer_classes", [renderer])
    client = member(org, "admin")
    body = {**BODY, "name": "Café Crème"}
    first = keyed(client, "post", IDEM, body, "renamed")
    assert first.status_code == 201, first.content
    charset = renderer.charset or "utf-8"
    stored = json.loads(first.content.decode(charset))["data"]
    assert "cost" in stored and stored["name"] == "Café Crème"
    same = keyed(client, "post", IDEM, body, "renamed")
    assert same.content == first.content
    if store == "database":
        # camelCase: the document is kept beside the body; ISO-8859-1 reads back through
        # its charset, so nothing is (nor for DRF's own renderer, below)
        (record,) = IdempotencyRecord.objects.all()
        if renderer is CamelCaseRenderer:
            assert json.loads(record.headers)["d"]["data"]["cost"] == stored["cost"]
        else:
            assert record.headers is None
    set_roles(client, org, "editor")
    again = keyed(client, "post", IDEM, body, "renamed")
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert again["Content-Type"] == first["Content-Type"]
    assert json.loads(again.content.decode(charset))["data"] == {
        k: v for k, v in stored.items() if k != "cost"
    }
    assert Product.objects.filter(sku="W-1").count() == 1


@pytest.mark.django_db
def test_a_reshaped_replay_keeps_the_stored_answers_indent(store, org):
    """A create answered to ``Accept: application/json; indent=4`` and replayed shaped to the
    demoted caller is indented as it was (it was rendered on one line)."""
    client = member(org, "admin")
    accept = {"HTTP_ACCEPT": "application/json; indent=4"}
    first = client.post(IDEM, BODY, format="json", HTTP_IDEMPOTENCY_KEY="indent", **accept)
    assert first.status_code == 201, first.content
    if store == "database":
        (record,) = IdempotencyRecord.objects.all()
        assert record.headers is None or isinstance(json.loads(record.headers), list)
    assert first.content.startswith(b'{\n    "')
    set_roles(client, org, "editor")
    again = client.post(IDEM, BODY, format="json", HTTP_IDEMPOTENCY_KEY="indent", **accept)
    assert again["X-Idempotency-Replayed"] == "true"
    assert "cost" not in again.json()["data"]
    assert again.content.startswith(b'{\n    "')
    assert again.content == json.dumps(again.json(), indent=4, ensure_ascii=False).encode()


@pytest.mark.django_db
def test_a_create_a_camel_case_renderer_wrote_is_replayed_whole(store, org, monkeypatch):
    """A replay of arc's own create() is shaped as the row it is, whatever its names
    (rev-fixes36's ``written_row``): a row a camelCase renderer wrote (``inStock``) kept
    only the keys named like the serializer's fields, and an unchanged caller's retry lost
    ``inStock`` and every other two-word field. Such a row is replayed as stored, as
    docs/idempotency.md says of an answer under other key names."""
    from django.urls import resolve

    view_class = resolve(IDEM).func.cls
    monkeypatch.setattr(view_class, "renderer_classes", [CamelCaseRenderer])
    client = member(org, "admin")
    first = keyed(client, "post", IDEM, BODY, "camel")
    assert first.status_code == 201, first.content
    assert any(k != k.lower() for k in first.json()["data"]), first.json()["data"]
    again = keyed(client, "post", IDEM, BODY, "camel")
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert again.json()["data"] == first.json()["data"]
    assert again.content == first.content


@pytest.mark.django_db
def test_a_field_swapped_for_another_per_request_is_left_out_of_a_replay(store, org, monkeypatch):
    """The serializer gives staff ``margin`` and others ``discount`` (``get_fields()``): the
    staff user creates, loses ``is_staff`` and retries. The stored row holds a name nothing
    knows now (``margin``) and lacks one the retry renders (``discount``), which is not a
    renamed row (camelCase: ``createdAt`` for ``created_at``): it is shaped, ``margin`` left
    out, not replayed as stored."""

    class SwappedPerRole(_Seen8cMarginSerializer):
        def get_fields(self):
            fields = super().get_fields()
            request = self.context.get("request")
            staff = request is not None and request.user.is_staff
            fields["margin" if staff else "discount"] = serializers.SerializerMethodField()
            return fields

        def get_discount(self, obj: Product) -> str:
            return "for all"

    client, first = _seen8c_created_by_staff(org, monkeypatch, SwappedPerRole, "swapped-margin")
    client.user.is_staff = False
    client.user.save()
    again = _seen8c_replayed_without_margin(client, first, "swapped-margin")
    assert "margin" not in again.json()["data"], again.json()


class SkuLessRenderer(JSONRenderer):
    """A project's renderer of its own media type that leaves ``sku`` out of every row: a
    caller answered by it never read the row's sku."""

    media_type = "application/vnd.shop+json"
    format = "shop"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            data = {**data, "data": {k: v for k, v in data["data"].items() if k != "sku"}}
        return super().render(data, accepted_media_type, renderer_context)


class LinesRenderer(BaseRenderer):
    """A project's non-JSON renderer (XML, YAML, CSV in the wild): one ``key=value`` line a
    field of the answer's row, ``sku`` left out."""

    media_type = "text/x-lines"
    format = "lines"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        row = data.get("data") if isinstance(data, dict) else None
        if not isinstance(row, dict):
            return json.dumps(data).encode()
        lines = (f"{k}={v}\n" for k, v in sorted(row.items()) if k != "sku")
        return "".join(lines).encode()


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["application/vnd.shop+json", "text/x-lines"])
def test_a_reshaped_replay_is_rendered_by_the_renderer_of_the_stored_media_type(
    store, org, monkeypatch, accept
):
    """A demoted caller's replay of an answer rendered by a project's renderer of another
    media type: a JSON one (``application/vnd.shop+json``) was rendered again by the view's
    first JSON renderer, DRF's, which wrote the ``sku`` the project's renderer had left out,
    under the stored ``Content-Type``; a non-JSON one (``text/x-lines``) was replayed as
    stored, ``cost`` in it. Both are rendered again by the renderer of the stored media type,
    from the document kept beside the body, ``cost`` out and no ``sku``."""
    from django.urls import resolve

    monkeypatch.setattr(
        resolve(IDEM).func.cls, "renderer_classes", [JSONRenderer, SkuLessRenderer, LinesRenderer]
    )
    client = member(org, "admin")
    send = {"HTTP_ACCEPT": accept, "HTTP_IDEMPOTENCY_KEY": "media"}
    first = client.post(IDEM, BODY, format="json", **send)
    assert first.status_code == 201, first.content
    assert first["Content-Type"].startswith(accept)
    assert b"cost" in first.content and b"sku" not in first.content
    set_roles(client, org, "editor")
    again = client.post(IDEM, BODY, format="json", **send)
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert again["Content-Type"] == first["Content-Type"]
    assert b"cost" not in again.content and b"sku" not in again.content
    assert b"name" in again.content and b"Widget" in again.content
    assert Product.objects.filter(sku="W-1").count() == 1


class SkuLessJSONRenderer(SkuLessRenderer):
    """``SkuLessRenderer`` under DRF's own media type, picked by ``?format=skuless``."""

    media_type = "application/json"
    format = "skuless"


@pytest.mark.django_db
def test_a_reshaped_replay_is_rendered_by_the_renderer_that_wrote_it_of_two_of_one_type(
    store, org, monkeypatch
):
    """Two renderers of the view share ``application/json``; the second (``?format=skuless``)
    leaves ``sku`` out, and wrote the first answer. The demoted caller's replay was rendered
    again by the first of that media type, DRF's, ``sku`` in it: it is rendered by the
    renderer that wrote the answer, named in the document kept beside it."""
    from django.urls import resolve

    monkeypatch.setattr(
        resolve(IDEM).func.cls, "renderer_classes", [JSONRenderer, SkuLessJSONRenderer]
    )
    client = member(org, "admin")
    url = f"{IDEM}?format=skuless"
    first = client.post(url, BODY, format="json", HTTP_IDEMPOTENCY_KEY="two")
    assert first.status_code == 201, first.content
    assert "cost" in first.json()["data"] and "sku" not in first.json()["data"]
    set_roles(client, org, "editor")
    again = client.post(url, BODY, format="json", HTTP_IDEMPOTENCY_KEY="two")
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    data = again.json()["data"]
    assert "cost" not in data and "sku" not in data, data
    assert data["name"] == "Widget" and "arc:renderer" not in again.json()
    assert Product.objects.filter(sku="W-1").count() == 1


@pytest.mark.django_db
def test_a_reshaped_replay_whose_renderer_is_gone_is_answered_in_json(store, org, monkeypatch):
    """The renderer of the stored media type is no longer the view's (a deploy took it out):
    the demoted caller's replay is the shaped document in the view's JSON, under its
    ``Content-Type``, never the stored bytes with ``cost`` in them."""
    from django.urls import resolve

    cls = resolve(IDEM).func.cls
    monkeypatch.setattr(cls, "renderer_classes", [JSONRenderer, LinesRenderer])
    client = member(org, "admin")
    send = {"HTTP_ACCEPT": "text/x-lines", "HTTP_IDEMPOTENCY_KEY": "gone"}
    first = client.post(IDEM, BODY, format="json", **send)
    assert first.status_code == 201 and b"cost=" in first.content, first.content
    monkeypatch.setattr(cls, "renderer_classes", [JSONRenderer])
    set_roles(client, org, "editor")
    again = client.post(IDEM, BODY, format="json", HTTP_IDEMPOTENCY_KEY="gone")
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert again["Content-Type"] == "application/json"
    data = again.json()["data"]
    assert "cost" not in data and data["name"] == "Widget"


class Named:
    """A value of the project's own that its renderer writes (``str()``), which DRF's
    ``JSONRenderer`` cannot encode."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


def _holding_itself(name):
    value = [name]
    value.append(value)
    return value


@pytest.mark.django_db
@pytest.mark.parametrize(
    "own, replayed", [(Named, b"name=Widget\n"), (_holding_itself, b"name=None\n")]
)
def test_a_non_json_answer_json_cannot_encode_is_still_reshaped_on_replay(
    store, org, monkeypatch, caplog, own, replayed
):
    """An answer of a non-JSON renderer whose row holds a value of the project's own
    (``name``: an object DRF's ``JSONRenderer`` cannot encode, or a list holding itself)
    kept no document, and the demoted caller's replay was the stored bytes, ``cost=`` in
    them. The document is kept with that value as its text (the list: the row's names, its
    values null, with a WARNING), and the replay is rendered again without ``cost``."""
    from django.urls import resolve

    cls = resolve(IDEM).func.cls
    monkeypatch.setattr(cls, "renderer_classes", [JSONRenderer, LinesRenderer])
    create = cls.create

    def create_naming_its_own(self, request, *args, **kwargs):
        response = create(self, request, *args, **kwargs)
        response.data["data"]["name"] = own(response.data["data"]["name"])
        return response

    monkeypatch.setattr(cls, "create", create_naming_its_own)
    client = member(org, "admin")
    send = {"HTTP_ACCEPT": "text/x-lines", "HTTP_IDEMPOTENCY_KEY": "own-value"}
    first = client.post(IDEM, BODY, format="json", **send)
    assert first.status_code == 201, first.content
    assert b"cost=" in first.content and b"name=" in first.content
    set_roles(client, org, "editor")
    again = client.post(IDEM, BODY, format="json", **send)
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert again["Content-Type"] == first["Content-Type"]
    assert b"cost" not in again.content, again.content
    assert replayed in again.content
    warned = any("could not be read as JSON" in r.getMessage() for r in caplog.records)
    assert warned is (own is _holding_itself)
    assert Product.objects.filter(sku="W-1").count() == 1


class Seen8aNoText:
    """A value of the project's own its renderer writes (``format()``) whose ``__str__``
    raises ``error``: a model's ``__str__`` following a relation deleted since."""

    def __init__(self, text, error):
        self.text, self.error = text, error

    def __format__(self, spec):
        return self.text

    def __str__(self):
        raise self.error


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    [
        ValueError("no text"),
        AttributeError("author"),
        KeyError("name"),
        RuntimeError("lazy"),
        Product.DoesNotExist("gone"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_answer_holding_a_value_whose_str_raises_is_kept_as_its_rows_names(
    store, org, monkeypatch, caplog, error
):
    """An answer of a non-JSON renderer whose row holds a value whose ``__str__`` raises
    (the encoder keeping the document writes such values as their text): whatever it
    raises, the document is kept as the row's names with null values, with the WARNING,
    as it was for ``ValueError`` and ``TypeError``; another error (``AttributeError``,
    ``KeyError``, a ``DoesNotExist``) escaped, a 500 for a 201 the renderer had written.
    The demoted caller's replay is still rendered again without ``cost``."""
    from django.urls import resolve

    cls = resolve(IDEM).func.cls
    monkeypatch.setattr(cls, "renderer_classes", [JSONRenderer, LinesRenderer])
    create = cls.create

    def create_naming_its_own(self, request, *args, **kwargs):
        response = create(self, request, *args, **kwargs)
        response.data["data"]["name"] = Seen8aNoText(response.data["data"]["name"], error)
        return response

    monkeypatch.setattr(cls, "create", create_naming_its_own)
    client = member(org, "admin")
    send = {"HTTP_ACCEPT": "text/x-lines", "HTTP_IDEMPOTENCY_KEY": "no-text"}
    first = client.post(IDEM, BODY, format="json", **send)
    assert first.status_code == 201, first.content
    assert b"cost=" in first.content and b"name=Widget" in first.content
    set_roles(client, org, "editor")
    again = client.post(IDEM, BODY, format="json", **send)
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert b"cost" not in again.content and b"name=None\n" in again.content, again.content
    assert any("could not be read as JSON" in r.getMessage() for r in caplog.records)
    assert Product.objects.filter(sku="W-1").count() == 1


class Rf44Unlistable:
    """A value of the project's own its renderer writes (``format()``) that DRF's encoder
    tries as a sequence, which raises ``error``: a lazy collection whose ``__iter__`` (or
    an array's ``tolist()``) reads a relation deleted since. Its text is its name."""

    def __init__(self, text, error, method):
        self.text, self.error = text, error
        setattr(self, method, self._raise)

    def _raise(self):
        raise self.error

    def __iter__(self):
        return self.__dict__["__iter__"]()

    def __format__(self, spec):
        return self.text

    def __str__(self):
        return self.text


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["__iter__", "tolist"])
@pytest.mark.parametrize(
    "error",
    [AttributeError("author"), Product.DoesNotExist("gone")],
    ids=lambda e: type(e).__name__,
)
def test_an_answer_holding_a_value_the_encoder_cannot_list_is_kept_as_its_text(
    store, org, monkeypatch, caplog, method, error
):
    """fix-seen8a made any error of a value's ``__str__`` the keeping encoder's
    ``TypeError``; DRF's encoder, asked first, lists a value with ``tolist()`` or
    ``__iter__``, and an error that raises other than ``TypeError`` escaped the encoder as
    before: an ERROR and a 500 for a 201 the renderer had written. The value is kept as its
    text, as one DRF cannot encode is, and the demoted caller's replay is rendered again
    with it, without ``cost``."""
    cls = resolve(IDEM).func.cls
    monkeypatch.setattr(cls, "renderer_classes", [JSONRenderer, LinesRenderer])
    create = cls.create

    def create_naming_its_own(self, request, *args, **kwargs):
        response = create(self, request, *args, **kwargs)
        name = response.data["data"]["name"]
        response.data["data"]["name"] = Rf44Unlistable(name, error, method)
        return response

    monkeypatch.setattr(cls, "create", create_naming_its_own)
    client = member(org, "admin")
    send = {"HTTP_ACCEPT": "text/x-lines", "HTTP_IDEMPOTENCY_KEY": "unlistable"}
    first = client.post(IDEM, BODY, format="json", **send)
    assert first.status_code == 201, first.content
    assert b"cost=" in first.content and b"name=Widget" in first.content
    set_roles(client, org, "editor")
    again = client.post(IDEM, BODY, format="json", **send)
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert b"cost" not in again.content and b"name=Widget\n" in again.content, again.content
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert Product.objects.filter(sku="W-1").count() == 1


class FixedColumnsRenderer(BaseRenderer):
    """A project's CSV renderer of fixed columns, ``cost`` among them: a row without it is
    a ``KeyError``."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        row = data["data"]
        return f"id,name,cost\n{row['id']},{row['name']},{row['cost']}\n".encode()


@pytest.mark.django_db
def test_a_reshaped_replay_its_renderer_cannot_render_is_answered_in_json(
    store, org, monkeypatch, caplog
):
    """The renderer of the stored media type fails on the shaped row (its fixed columns name
    ``cost``, which the demoted caller may not read): the replay was a 500, the write's
    outcome lost. It is the shaped document in the view's JSON, with a WARNING naming the
    renderer."""
    from django.urls import resolve

    monkeypatch.setattr(
        resolve(IDEM).func.cls, "renderer_classes", [JSONRenderer, FixedColumnsRenderer]
    )
    client = member(org, "admin")
    send = {"HTTP_ACCEPT": "text/csv", "HTTP_IDEMPOTENCY_KEY": "csv"}
    first = client.post(IDEM, BODY, format="json", **send)
    assert first.status_code == 201, first.content
    assert first.content.startswith(b"id,name,cost\n")
    assert client.post(IDEM, BODY, format="json", **send).content == first.content
    set_roles(client, org, "editor")
    again = client.post(IDEM, BODY, format="json", **send)
    assert again.status_code == 201, again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert again["Content-Type"] == "application/json"
    data = again.json()["data"]
    assert "cost" not in data and data["name"] == "Widget"
    assert any("FixedColumnsRenderer" in r.getMessage() for r in caplog.records)
    assert Product.objects.filter(sku="W-1").count() == 1
