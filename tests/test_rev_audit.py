"""The audit log reviewed end to end (rev-audit): what each entry records, for whom, and
what an auditor reading it finds."""

import pytest

from django_arc import Resource, ResourceSite, audit, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.helpers import client_for, site_mounted
from tests.testapp.models import Export

pytestmark = pytest.mark.django_db


def rev_audit_tenant_row(org, slug):
    """A row of ``all-articles`` created by an admin of ``org`` through the API."""
    admin = MembershipFactory(organization=org, role="admin").user
    api = client_for(admin, HTTP_X_ORGANIZATION_ID=str(org.pk))
    r = api.post("/api/all-articles/", {"slug": slug, "title": slug}, format="json")
    assert r.status_code == 201, r.content
    return r.json()["data"]["id"]


def rev_audit_entries(**filters):
    return list(
        AuditLog.objects.filter(resource="all-articles", **filters)
        .order_by("id")
        .values_list("action", "object_id", "organization_id", "actor_kind")
    )


def test_rev_audit_an_elevated_write_without_an_org_header_is_in_the_rows_tenants_history():
    """A platform admin without ``X-Organization-Id`` updates, deletes and restores any
    tenant's rows; each entry names the row's organization (it named none: the tenant's
    history, the log filtered by its organization, left out every such change)."""
    a = OrganizationFactory()
    pk = rev_audit_tenant_row(a, "one")
    root = UserFactory(username="root", is_superuser=True)
    elevated = client_for(root, HTTP_X_ARC_SCOPE="platform")
    url = f"/api/all-articles/{pk}/"
    assert elevated.patch(url, {"title": "Two"}, format="json").status_code == 200
    assert elevated.delete(url).status_code == 200
    assert elevated.post(f"{url}restore/").status_code == 200
    assert rev_audit_entries(organization_id=str(a.pk)) == [
        ("created", str(pk), str(a.pk), "member"),
        ("updated", str(pk), str(a.pk), "elevated"),
        ("deleted", str(pk), str(a.pk), "elevated"),
        ("restored", str(pk), str(a.pk), "elevated"),
    ]
    assert not AuditLog.objects.filter(organization_id=None).exists()


def test_rev_audit_an_elevated_bulk_write_across_tenants_names_each_rows_organization():
    a, b = OrganizationFactory(), OrganizationFactory()
    first, other = rev_audit_tenant_row(a, "a1"), rev_audit_tenant_row(b, "b1")
    last = rev_audit_tenant_row(a, "a2")
    root = UserFactory(username="root", is_superuser=True)
    elevated = client_for(root, HTTP_X_ARC_SCOPE="platform")
    items = [{"id": pk, "title": f"t{pk}"} for pk in (first, other, last)]
    r = elevated.patch("/api/all-articles/bulk/", {"items": items}, format="json")
    assert r.status_code == 200, r.content
    r = elevated.delete("/api/all-articles/bulk/", {"ids": [first, other, last]}, format="json")
    assert r.status_code == 200, r.content
    expected = [(str(first), str(a.pk)), (str(other), str(b.pk)), (str(last), str(a.pk))]
    for verb in ("updated", "deleted"):
        got = [(o, org) for action, o, org, _ in rev_audit_entries(action=verb)]
        assert got == expected, verb


def test_rev_audit_an_elevated_write_naming_an_organization_records_that_one():
    a = OrganizationFactory()
    pk = rev_audit_tenant_row(a, "one")
    root = UserFactory(username="root", is_superuser=True)
    elevated = client_for(root, HTTP_X_ARC_SCOPE="platform", HTTP_X_ORGANIZATION_ID=str(a.pk))
    r = elevated.patch(f"/api/all-articles/{pk}/", {"title": "Two"}, format="json")
    assert r.status_code == 200, r.content
    assert rev_audit_entries(action="updated") == [("updated", str(pk), str(a.pk), "elevated")]


def test_rev_audit_an_elevated_write_of_a_resource_without_tenants_names_no_organization():
    root = UserFactory(username="root", is_superuser=True)
    elevated = client_for(root, HTTP_X_ARC_SCOPE="platform")
    r = elevated.post("/api/audited-articles/", {"slug": "s", "title": "T"}, format="json")
    assert r.status_code == 201, r.content
    row = AuditLog.objects.get()
    assert (row.actor_kind, row.organization_id) == ("elevated", None)


def test_rev_audit_a_custom_entry_names_the_organization_given_when_the_caller_names_none():
    from django.test import RequestFactory

    from django_arc import audit

    request = RequestFactory().post("/")
    request.user = UserFactory()
    assert audit.custom(request, "sent", organization_id=7).organization_id == "7"
    member = MembershipFactory(role="admin")
    request = RequestFactory().post("/", HTTP_X_ORGANIZATION_ID=str(member.organization_id))
    request.user = member.user
    row = audit.custom(request, "sent", organization_id=7)
    assert row.organization_id == str(member.organization_id)  # the caller's wins


#: exports addressed by their path, which a client chooses as long as it likes
rev_audit_long_site = ResourceSite(name="rev-audit-long-ids")
rev_audit_long_site.register(
    type(
        "RevAuditExportResource",
        (Resource,),
        {
            "model": Export,
            "name": "exports",
            "fields": ["id", "path", "title"],
            "lookup_field": "path",
            "presets": [presets.Audited()],
            "permissions": {"create": P.allow_public(), "delete": P.allow_public()},
        },
    )
)


def test_rev_audit_the_erasure_recipe_finds_the_entries_of_a_row_with_a_long_id(settings):
    """docs/retention.md's erasure (the example's ``shop.retention.erase``) looked the
    audit entries up by the id as the URL names it; an id past ``MAX_OBJECT_ID_BYTES`` is
    stored shortened, so the entries of such a row (its whole row in ``before``/``after``)
    were all kept."""
    from shop.retention import erase

    path = "exports-2026-" + "report-" * 400  # 2,813 bytes
    with site_mounted(settings, "rl", rev_audit_long_site):
        api = client_for(UserFactory())
        assert (
            api.post("/rl/exports/", {"path": path, "title": "Q4"}, format="json").status_code
            == 201
        )
        assert api.delete(f"/rl/exports/{path}/").status_code == 200
    assert AuditLog.objects.filter(object_id=audit.stored_object_id(path)).count() == 2
    erase("exports", path, "/rl/exports/")
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("sent", ["export\x00.csv", "export\ud800.csv"], ids=["nul", "surrogate"])
def test_rev_audit_a_custom_object_id_no_text_column_stores_is_recorded_on_every_database(sent):
    """``audit.custom(request, ..., object_id=request.GET["name"])`` with ``%00`` in the
    name: PostgreSQL refused the row (a ``DataError`` aborting the project's transaction, a
    500) where SQLite stored the NUL, and a lone surrogate failed on both. Recorded with
    U+FFFD in its place, and found by the id as sent."""
    from django.test import RequestFactory

    request = RequestFactory().post("/")
    request.user = UserFactory()
    row = audit.custom(request, "export.downloaded", resource="exports", object_id=sent)
    stored = AuditLog.objects.get(pk=row.pk)
    assert stored.object_id == "export\N{REPLACEMENT CHARACTER}.csv"
    assert AuditLog.objects.filter(object_id=audit.stored_object_id(sent)).count() == 1


def test_rev_audit_each_accepted_write_records_one_entry_refusals_and_replays_none(settings):
    """Create, an unchanged PATCH, PUT, soft delete, restore and bulk writes each record one
    entry per row; another tenant's 404, an editor's 403 and a 400 record none; a keyed
    write sent again is replayed and records nothing more."""
    from tests.redis_support import arc_with

    settings.ARC = arc_with(IDEMPOTENCY={"ENABLED": True, "STORE": "database"})
    a, b = OrganizationFactory(), OrganizationFactory()
    pk = rev_audit_tenant_row(a, "one")
    owner = AuditLog.objects.get().actor_user_id
    admin = MembershipFactory(organization=a, role="admin").user
    api = client_for(admin, HTTP_X_ORGANIZATION_ID=str(a.pk))
    other = client_for(
        MembershipFactory(organization=b, role="admin").user, HTTP_X_ORGANIZATION_ID=str(b.pk)
    )
    editor = client_for(
        MembershipFactory(organization=a, role="editor").user, HTTP_X_ORGANIZATION_ID=str(a.pk)
    )
    url = f"/api/all-articles/{pk}/"
    for _ in range(2):  # the second of each is a replay
        assert api.patch(url, {"title": "one"}, HTTP_IDEMPOTENCY_KEY="same").status_code == 200
        assert api.put(url, {"title": "two"}, HTTP_IDEMPOTENCY_KEY="put").status_code == 200
        assert api.delete(url, HTTP_IDEMPOTENCY_KEY="del").status_code == 200
        assert api.post(f"{url}restore/", HTTP_IDEMPOTENCY_KEY="res").status_code == 200
    assert other.patch(url, {"title": "x"}, format="json").status_code == 404
    assert other.delete(url).status_code == 404
    assert editor.patch(url, {"title": "x"}, format="json").status_code == 403  # not the owner
    assert api.patch(url, {"views": "many"}, format="json").status_code == 400
    items = {"items": [{"id": pk, "title": "three"}]}
    assert api.patch("/api/all-articles/bulk/", items, format="json").status_code == 200
    filtered = {"filter": {"views[gte]": 0}, "data": {"title": "four"}}
    assert api.patch("/api/all-articles/bulk/", filtered, format="json").status_code == 200
    assert api.delete("/api/all-articles/bulk/", {"ids": [pk]}, format="json").status_code == 200
    entries = list(
        AuditLog.objects.order_by("id").values_list("action", "actor_user_id", "before", "after")
    )
    assert [action for action, *_ in entries] == [
        *("created", "updated", "updated", "deleted", "restored"),
        *("updated", "updated", "deleted"),
    ]
    assert entries[0][1] == owner and {e[1] for e in entries[1:]} == {str(admin.pk)}
    assert entries[1][2:] == ({}, {})  # a PATCH changing nothing: recorded, empty
    assert entries[2][2:] == ({"title": "one"}, {"title": "two"})
    assert entries[5][2:] == ({"title": "two"}, {"title": "three"})
    assert entries[6][2:] == ({"title": "three"}, {"title": "four"})


def test_rf52_an_elevated_bulk_write_across_interleaved_tenants_is_one_audit_insert():
    """An elevated bulk write without ``X-Organization-Id`` over rows whose tenants
    alternate (rows in primary-key order, created by several tenants in turn) recorded
    one INSERT per run of one organization: one statement per row, where a bulk write's
    entries are one. Each entry still names its row's organization, in the batch's order."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    a, b = OrganizationFactory(), OrganizationFactory()
    pks, orgs = [], []
    for n in range(3):
        for org in (a, b):
            pks.append(rev_audit_tenant_row(org, f"s{org.pk}-{n}"))
            orgs.append(str(org.pk))
    root = UserFactory(username="root", is_superuser=True)
    elevated = client_for(root, HTTP_X_ARC_SCOPE="platform")
    items = [{"id": pk, "title": f"t{pk}"} for pk in pks]
    table = AuditLog._meta.db_table
    with CaptureQueriesContext(connection) as ctx:
        r = elevated.patch("/api/all-articles/bulk/", {"items": items}, format="json")
    assert r.status_code == 200, r.content
    inserts = [q for q in ctx.captured_queries if q["sql"].startswith(f'INSERT INTO "{table}"')]
    assert len(inserts) == 1
    got = [(o, org) for _, o, org, _ in rev_audit_entries(action="updated")]
    assert got == list(zip(map(str, pks), orgs, strict=True))
