"""fix-seen10a: what the last reviewers saw in bulk writes, presets and browsable forms.

A multi-table child's bulk create names the item a unique conflict refuses; a preset's
``after_write`` moving a row with ``QuerySet.update()`` is caught; a select ordered by an
``OrderBy(Random())`` expression is offered in a stable order; a ``related_queryset``
returning a new but unfiltered queryset counts as unnarrowed; a caller refused the trash
restores its own row as arc does."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from django_arc.presets import Audited
from shop.models import Product
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.factories import member_client as fs10a_member_client
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Animal, Fs10aChippedDog, RevSdPage

pytestmark = pytest.mark.django_db

fs10a_site = ResourceSite(name="fix-seen10a")
_FS10A_PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}
_FS10A_FAULT = {"code": "INTERNAL_ERROR", "error": "Internal server error"}
_FS10A_CONFLICT = {"code": "CONFLICT", "error": "The request conflicts with existing data"}


@pytest.fixture
def fs10a_mounted(settings):
    with site_mounted(settings, "fs10a", fs10a_site):
        yield


@pytest.fixture
def fs10a_api():
    client = client_for(UserFactory())
    client.raise_request_exception = False
    return client


# -- 1. a multi-table child's bulk create ------------------------------------------------------


@fs10a_site.register
class _Fs10aChippedDogs(Resource):
    """Bulk over a multi-table child (saved row by row, each parent row first) with audit."""

    model = Fs10aChippedDog
    name = "fs10a-dogs"
    fields = ["id", "name", "chip"]
    presets = [presets.Bulk(max_items=10), presets.Audited()]
    permissions = _FS10A_PUBLIC


@pytest.mark.parametrize("clash", ["batch", "table"])
def test_fs10a_a_multi_table_childs_bulk_create_conflict_names_the_item(
    fs10a_mounted, fs10a_api, clash
):
    """A multi-table child's rows span two tables, so its bulk create saves each row (its
    parent's row, then its own) outside the per-item loop: a unique value taken by an
    earlier item, or by a row already stored (the batch's uniqueness queries are left to
    the database), was the whole request's 409 naming no item. It is the item's 409 now, as
    on the other row-by-row path, and nothing is written: no child row, no parent row left
    behind, no event, no audit entry."""
    if clash == "table":
        Fs10aChippedDog.objects.create(name="stored", chip="fs10a-dup")
    items = [
        {"name": "a", "chip": "fs10a-0"},
        {"name": "b", "chip": "fs10a-dup" if clash == "table" else "fs10a-1"},
        {"name": "c", "chip": "fs10a-dup" if clash == "table" else "fs10a-1"},
    ]
    named = "1" if clash == "table" else "2"
    r = fs10a_api.post("/fs10a/fs10a-dogs/bulk/", {"items": items}, format="json")
    assert r.status_code == 409, r.content
    body = r.json()
    assert body["code"] == "CONFLICT"
    assert body["details"] == {"items": {named: _FS10A_CONFLICT}}
    stored = 1 if clash == "table" else 0
    assert Fs10aChippedDog.objects.count() == stored
    assert Animal.objects.count() == stored
    assert not OutboxEvent.objects.exists()
    assert not AuditLog.objects.exists()


def test_fs10a_a_multi_table_childs_bulk_create_still_writes_every_row(fs10a_mounted, fs10a_api):
    items = [{"name": "a", "chip": "fs10a-a"}, {"name": "b", "chip": "fs10a-b"}]
    r = fs10a_api.post("/fs10a/fs10a-dogs/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    assert sorted(Fs10aChippedDog.objects.values_list("chip", flat=True)) == ["fs10a-a", "fs10a-b"]
    assert Animal.objects.count() == 2
    assert OutboxEvent.objects.filter(type="fs10a-dogs.created").count() == 2


# -- 2. a preset's after_write moving a row with QuerySet.update() ----------------------------


@pytest.fixture
def fs10a_orgs():
    return OrganizationFactory(), OrganizationFactory()


@pytest.fixture
def fs10a_audit_updates(monkeypatch, fs10a_orgs):
    """``Audited`` changed to move each row it records to the other organization with
    ``QuerySet.update()``, behind the instance's back."""
    _, other = fs10a_orgs
    single, many = Audited.after_write, Audited.after_write_many

    def fs10a_after_write(self, view, verb, instance, before, after):
        single(self, view, verb, instance, before, after)
        Product.objects.filter(pk=instance.pk).update(organization_id=other.pk)

    def fs10a_after_write_many(self, view, verb, records):
        many(self, view, verb, records)
        pks = [instance.pk for instance, _, _ in records]
        Product.objects.filter(pk__in=pks).update(organization_id=other.pk)

    monkeypatch.setattr(Audited, "after_write", fs10a_after_write)
    monkeypatch.setattr(Audited, "after_write_many", fs10a_after_write_many)


def _fs10a_product_write(client, route, existing):
    new = {"name": "new", "sku": "FS10A-9", "price": "1.00"}
    if route == "create":
        return client.post("/api/products/", new, format="json")
    if route == "update":
        return client.patch(f"/api/products/{existing.pk}/", {"name": "x"}, format="json")
    if route == "bulk create":
        return client.post("/api/products/bulk/", {"items": [new]}, format="json")
    if route == "bulk update":
        body = {"items": [{"id": existing.pk, "name": "x"}]}
        return client.patch("/api/products/bulk/", body, format="json")
    body = {"filter": {"name[contains]": "old"}, "data": {"name": "x"}}
    return client.patch("/api/products/bulk/", body, format="json")


_FS10A_ROUTES = ["create", "update", "bulk create", "bulk update", "bulk filter update"]


@pytest.mark.parametrize("route", _FS10A_ROUTES)
def test_fs10a_a_presets_after_write_moving_a_row_with_queryset_update_writes_nothing(
    fs10a_orgs, fs10a_audit_updates, route
):
    """The forced-values check after the presets' ``after_write`` read the instance's
    attributes: a preset moving the row with ``QuerySet.update()`` left the instance as it
    was, and the row was written into another organization, answered 201/200 as the
    caller's. An ``UPDATE`` run by the presets' ``after_write`` now has the forced columns
    read back: 500 naming the item, nothing written, no event, no audit entry."""
    mine, other = fs10a_orgs
    client = fs10a_member_client(mine, "admin")
    client.raise_request_exception = False
    existing = Product.objects.create(organization=mine, name="old", sku="FS10A-0", price=1)
    r = _fs10a_product_write(client, route, existing)
    assert r.status_code == 500, r.content
    assert r.json()["code"] == "INTERNAL_ERROR"
    if route.startswith("bulk"):
        key, name = ("ids", str(existing.pk)) if "filter" in route else ("items", "0")
        assert r.json()["details"] == {key: {name: _FS10A_FAULT}}
    assert not Product.objects.filter(organization=other).exists()
    assert list(Product.objects.values_list("pk", "organization_id", "name")) == [
        (existing.pk, mine.pk, "old")
    ]
    assert not OutboxEvent.objects.exists()
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("route", _FS10A_ROUTES)
def test_fs10a_the_stored_check_reads_nothing_when_no_preset_ran_an_update(fs10a_orgs, route):
    """The read-back costs a query only after a preset's ``UPDATE``: the audit preset's
    ``INSERT`` alone reads nothing back (no ``SELECT`` of the organization column after the
    audit row's ``INSERT``), and the write succeeds."""
    mine, _ = fs10a_orgs
    client = fs10a_member_client(mine, "admin")
    existing = Product.objects.create(organization=mine, name="old", sku="FS10A-0", price=1)
    with CaptureQueriesContext(connection) as captured:
        r = _fs10a_product_write(client, route, existing)
    assert r.status_code in (200, 201), r.content
    statements = [q["sql"] for q in captured.captured_queries]
    audit = [
        i for i, sql in enumerate(statements) if f'INSERT INTO "{AuditLog._meta.db_table}"' in sql
    ]
    assert audit, statements
    after = statements[audit[-1] + 1 :]
    assert not [
        sql for sql in after if sql.startswith("SELECT") and Product._meta.db_table in sql
    ], after


# -- 5. a restore asks `update`, as arc's does ---------------------------------------------------


@fs10a_site.register
class _Fs10aTrashRefused(Resource):
    """Members write and restore their own pages; only an admin lists them (the trash too)."""

    model = RevSdPage
    name = "fs10a-pages"
    fields = ["id", "organization", "owner", "slug", "title", "deleted_at"]
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.SoftDelete(), presets.Audited()]
    permissions = {
        "list": P.require_org_role("admin"),
        "get": P.require_org_membership(),
        "create": P.require_org_membership(),
        "update": P.require_org_membership(),
        "delete": P.require_org_membership(),
    }


def test_fs10a_a_caller_refused_the_trash_restores_its_own_row_as_arc_does(fs10a_mounted):
    """arc 2.9.1's soft-delete preset guards ``GET /deleted`` with ``list`` and
    ``POST /:id/restore`` with ``update`` alone (``src/presets/softDelete.ts``), and so does
    this one: a member refused the trash (403) still restores its own page by its id (200,
    the row live again, its ``restored`` event and audit entry). Another member's page and
    another tenant's are 404 (the ``list`` refusal makes ``OwnedBy``'s 403 a 404, as the
    caller may not read the trash), neither restored."""
    org, elsewhere = OrganizationFactory(), OrganizationFactory()
    member = MembershipFactory(organization=org, role="member").user
    api = client_for(member, HTTP_X_ORGANIZATION_ID=str(org.pk))
    other = MembershipFactory(organization=org, role="member").user
    mine = RevSdPage.objects.create(organization=org, owner=member, slug="mine", deleted_at=now())
    theirs = RevSdPage.objects.create(
        organization=org, owner=other, slug="theirs", deleted_at=now()
    )
    foreign = RevSdPage.objects.create(
        organization=elsewhere, owner=member, slug="foreign", deleted_at=now()
    )
    assert_error(api.get("/fs10a/fs10a-pages/deleted/"), 403, "FORBIDDEN")
    # refused by OwnedBy, answered as a row it may not read (the trash is refused it)
    assert_error(api.post(f"/fs10a/fs10a-pages/{theirs.pk}/restore/"), 404, "NOT_FOUND")
    assert_error(api.post(f"/fs10a/fs10a-pages/{foreign.pk}/restore/"), 404, "NOT_FOUND")
    r = api.post(f"/fs10a/fs10a-pages/{mine.pk}/restore/")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["deleted_at"] is None
    assert list(RevSdPage.objects.filter(deleted_at=None).values_list("pk", flat=True)) == [mine.pk]
    assert [e.meta["resource_id"] for e in OutboxEvent.objects.all()] == [str(mine.pk)]
    assert list(AuditLog.objects.values_list("action", flat=True)) == ["restored"]


@pytest.mark.parametrize("route", _FS10A_ROUTES)
def test_fs10a_a_presets_after_write_update_that_moves_nothing_is_read_back_and_kept(
    monkeypatch, fs10a_orgs, route
):
    """A preset's ``UPDATE`` that leaves the tenant alone (a counter, a denormalised copy)
    has the forced column read back once, found the caller's (the scope's organization id,
    as the request sent it, against the column's integer), and the write stands."""
    mine, _ = fs10a_orgs
    many = Audited.after_write_many

    def fs10a_touch(self, view, verb, records):
        many(self, view, verb, records)
        Product.objects.filter(pk__in=[i.pk for i, _, _ in records]).update(in_stock=False)

    monkeypatch.setattr(
        Audited,
        "after_write",
        lambda self, view, verb, instance, before, after: fs10a_touch(
            self, view, verb, [(instance, before, after)]
        ),
    )
    monkeypatch.setattr(Audited, "after_write_many", fs10a_touch)
    client = fs10a_member_client(mine, "admin")
    existing = Product.objects.create(organization=mine, name="old", sku="FS10A-0", price=1)
    with CaptureQueriesContext(connection) as captured:
        r = _fs10a_product_write(client, route, existing)
    assert r.status_code in (200, 201), r.content
    # the pk and the forced column alone (Django 5.2 names each with AS, 4.2 does not)
    table = Product._meta.db_table
    read_back = [
        q["sql"]
        for q in captured.captured_queries
        if re.match(
            rf'SELECT "{table}"\."id"( AS "pk")?, "{table}"\."organization_id"'
            rf'( AS "organization_id")? FROM "{table}" WHERE',
            q["sql"],
        )
    ]
    assert len(read_back) == 1, read_back
    assert set(Product.objects.values_list("organization_id", flat=True)) == {mine.pk}
    assert Product.objects.filter(in_stock=False).count() == 1  # the row written
    assert OutboxEvent.objects.exists()
