"""fix-seen11b: what the last reviewers saw in filters, no-op writes and presets.

A ``PATCH {}`` is a write (as in arc 2.9): one UPDATE, one audit entry, one ``updated``
event with ``changed: []``; a bulk filter that every row matches is a filter (arc 2.9 refuses
only an empty one), bounded by the tenant and ``max_items``; an empty ``[in]`` of a
structured field is the empty list, as on every other field; a preset whose ``check()``
raises is an arc.E011 naming it, not a traceback out of ``manage.py check``; a value a
preset forces on a bulk write that its ``write_values`` refuses is its item's error."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.db.backends.postgresql.psycopg_any import NumericRange
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import ValidationError

from django_arc import Resource, ResourceSite, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.outbox.models import OutboxEvent
from django_arc.presets.base import Preset
from django_arc.sites import _all_sites
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Article, Specimen

pytestmark = pytest.mark.django_db

fs11b_site = ResourceSite(name="fix-seen11b")
_FS11B_PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}


@pytest.fixture
def fs11b_mounted(settings):
    with site_mounted(settings, "fs11b", fs11b_site):
        yield


def _fs11b_admin(org):
    user = MembershipFactory(organization=org, role="admin").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on
    return api


# -- 1. a PATCH changing nothing is a write, as in arc 2.9 -------------------------------------


@pytest.mark.parametrize("body", [{}, {"title": "same"}])
def test_fs11b_a_patch_changing_nothing_is_one_update_one_audit_entry_one_event(body):
    """arc 2.9's ``update()`` calls the repository's update and then its after-hooks
    whatever the body holds (its audit hook records ``changes: []``, its event hook
    publishes ``<name>.updated``): so here. The row is written (its ``auto_now`` column
    stamped), one audit entry with both sides empty, one event saying ``changed: []``,
    and the answer is 200 with the row."""
    org = OrganizationFactory()
    api = _fs11b_admin(org)
    created = api.post("/api/all-articles/", {"slug": "s", "title": "same"}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["data"]["id"]
    stamped = Article.objects.get(pk=pk).edited_at
    AuditLog.objects.all().delete()
    OutboxEvent.objects.all().delete()
    with CaptureQueriesContext(connection) as queries:
        r = api.patch(f"/api/all-articles/{pk}/", body, format="json")
    assert r.status_code == 200, r.content
    assert {k: r.json()["data"][k] for k in ("id", "slug", "title")} == {
        "id": pk,
        "slug": "s",
        "title": "same",
    }
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len([sql for sql in updates if "testapp_article" in sql]) == 1
    assert Article.objects.get(pk=pk).edited_at > stamped
    assert list(AuditLog.objects.values_list("action", "object_id", "before", "after")) == [
        ("updated", str(pk), {}, {})
    ]
    [event] = OutboxEvent.objects.all()
    assert event.type == "all-articles.updated"
    assert (event.payload["id"], event.payload["changed"], event.payload["previous"]) == (
        pk,
        [],
        {},
    )


# -- 2. a bulk filter every row matches is a filter --------------------------------------------


@pytest.mark.parametrize("filters", [{"title[contains]": ""}, {"views[gte]": 0}])
def test_fs11b_a_bulk_filter_every_row_matches_reaches_the_callers_rows_only(filters):
    """arc 2.9's ``bulkUpdate`` refuses an empty ``filter`` object only (``Object.keys``),
    so ``{"name": {"$exists": true}}`` reaches every row of the tenant there. Here too: a
    filter that happens to match every row is a filter (refusing it would depend on the
    data); what it reaches is the caller's tenant, and no more than ``max_items`` rows."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api = _fs11b_admin(org)
    mine = [Article.objects.create(organization=org, slug=f"m{i}", title=f"t{i}") for i in range(3)]
    theirs = Article.objects.create(organization=other, slug="o", title="t")
    body = {"filter": filters, "data": {"title": "all"}}
    r = api.patch("/api/all-articles/bulk/", body, format="json")
    assert r.status_code == 200, r.content
    assert sorted(r.json()["data"]["ids"]) == sorted(a.pk for a in mine)
    assert set(Article.objects.filter(organization=org).values_list("title", flat=True)) == {"all"}
    assert Article.objects.get(pk=theirs.pk).title == "t"
    refused = api.patch(
        "/api/all-articles/bulk/", {"filter": {}, "data": {"title": "x"}}, format="json"
    )
    assert assert_error(refused, 400, "VALIDATION_ERROR")["details"] == {
        "filter": ["Expected a non-empty object of filters."]
    }


def test_fs11b_a_bulk_filter_matching_more_than_max_items_is_refused_whole():
    """The bound that keeps a filter every row matches from being a table-wide write: more
    rows than ``max_items`` (50 on ``all-articles``) is a 400, nothing written."""
    org = OrganizationFactory()
    api = _fs11b_admin(org)
    Article.objects.bulk_create(
        Article(organization=org, slug=f"m{i}", title="t") for i in range(51)
    )
    body = {"filter": {"views[gte]": 0}, "data": {"title": "all"}}
    r = api.patch("/api/all-articles/bulk/", body, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "filter": ["Matches more than 50 rows, the most one request may update."]
    }
    assert set(Article.objects.values_list("title", flat=True)) == {"t"}


# -- 3. an empty [in] of a structured field ----------------------------------------------------

fs11b_needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="reads and writes PostgreSQL's column types"
)


@fs11b_site.register
class _Fs11bSpecimens(Resource):
    model = Specimen
    name = "fs11b-specimens"
    fields = ["id", "organization", "name", "numbers", "attrs", "span"]
    filter_fields = {
        "name": ["in", "nin"],
        "numbers": ["in", "nin"],
        "attrs": ["in", "nin"],
        "span": ["in", "nin"],
    }
    presets = [presets.MultiTenant(), presets.Bulk()]
    permissions = {
        key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")
    }


@fs11b_needs_postgres
@pytest.mark.parametrize("name", ["name", "numbers", "attrs", "span"])
def test_fs11b_an_empty_in_is_the_empty_list_on_a_structured_field_too(fs11b_mounted, name):
    """``?numbers[in]=`` was a 400 (``'' is not valid JSON``) where ``?name[in]=`` is the
    empty list (no row) and ``[nin]=`` excludes nothing, as docs/query-language.md says of
    every ``in``/``nin``: the same now on an array, an hstore and a range. A bulk filter's
    empty ``[in]`` matches no row."""
    org = OrganizationFactory()
    api = _fs11b_admin(org)
    for row_name, numbers, span in (("a", [1], NumericRange(1, 5)), ("b", [], None)):
        Specimen.objects.create(
            organization=org, name=row_name, numbers=numbers, attrs={}, span=span
        )
    url = "/fs11b/fs11b-specimens/"
    r = api.get(url, {f"{name}[in]": ""})
    assert r.status_code == 200, r.content
    assert r.json()["docs"] == []
    r = api.get(url, {f"{name}[nin]": ""})
    assert r.status_code == 200, r.content
    assert sorted(row["name"] for row in r.json()["docs"]) == ["a", "b"]
    body = {"filter": {f"{name}[in]": ""}, "data": {"name": "z"}}
    r = api.patch(f"{url}bulk/", body, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["updated"] == 0
    assert sorted(Specimen.objects.values_list("name", flat=True)) == ["a", "b"]


# -- 4. a preset whose check() raises ----------------------------------------------------------


class _Fs11bBrokenCheck(Preset):
    name = "fs11b-broken"

    def check(self, resource):
        raise KeyError("no such option")


@pytest.fixture
def fs11b_throwaway_site():
    """A site gone after the test: the project's own ``check`` stays clean for every other
    test file."""
    site = ResourceSite(name="fix-seen11b-checks")
    yield site
    _all_sites.remove(site)


def test_fs11b_a_preset_whose_check_raises_is_an_arc_error_naming_it(fs11b_throwaway_site):
    """``manage.py check`` ended in the preset's ``KeyError`` traceback, naming neither the
    preset nor the resource, and no other problem was reported. It is arc.E011 on the
    resource now, naming the preset and what it raised; the checks after it still run."""

    @fs11b_throwaway_site.register
    class Fs11bBrokenResource(Resource):
        model = Article
        name = "fs11b-broken"
        fields = ["id", "title", "nope"]
        presets = [presets.Bulk(), _Fs11bBrokenCheck()]
        permissions = _FS11B_PUBLIC

    found = [
        m
        for m in checks.run_checks(tags=["django_arc"])
        if getattr(m.obj, "name", None) == "fs11b-broken"
    ]
    assert sorted(m.id for m in found) == ["arc.E001", "arc.E011"]
    [error] = [m for m in found if m.id == "arc.E011"]
    assert error.level == checks.ERROR
    assert error.msg == (
        "`presets[1]` (fs11b-broken, _Fs11bBrokenCheck) could not be checked: its check() "
        "raised KeyError: 'no such option'"
    )
    assert "Fs11bBrokenResource" in str(error)


# -- 5. a value a preset forces, refused, on a bulk write --------------------------------------


class _Fs11bRefusingValues(Preset):
    """Refuses to force values on a row titled ``refused`` (an update), and on every
    create while ``refuse_create`` is set, as a project's preset checking a quota might."""

    name = "fs11b-refusing"
    needs_transaction = False

    def __init__(self, error=ValidationError):
        self.error = error

    def write_values(self, view, instance=None):
        if instance is None and view.request.headers.get("X-Fs11b-Refuse"):
            raise self.error({"title": ["No quota left."]})
        if instance is not None and instance.title == "refused":
            raise self.error({"title": ["This row is locked."]})
        return {}


@fs11b_site.register
class _Fs11bRefusedArticles(Resource):
    model = Article
    name = "fs11b-articles"
    fields = ["id", "slug", "title", "views"]
    filter_fields = {"title": ["eq"]}
    presets = [presets.Bulk(max_items=10), presets.Audited(), _Fs11bRefusingValues()]
    permissions = _FS11B_PUBLIC


@fs11b_site.register
class _Fs11bDjangoRefusedArticles(_Fs11bRefusedArticles):
    name = "fs11b-django-articles"
    presets = [
        presets.Bulk(max_items=10),
        presets.Audited(),
        _Fs11bRefusingValues(DjangoValidationError),
    ]


@pytest.mark.parametrize("name", ["fs11b-articles", "fs11b-django-articles"])
def test_fs11b_a_bulk_creates_refused_forced_values_are_its_items(fs11b_mounted, name):
    """A preset's ``write_values`` raising ``ValidationError({"title": …})`` on a bulk
    create was answered ``{"title": [...]}``, at the top level, where every other per-item
    refusal is under ``items``: it is the first item's now (the values are each item's,
    asked item by item), and nothing is written. The create of one row answers the fields."""
    api = client_for(None)
    items = [{"slug": "a", "title": "a"}, {"slug": "b", "title": "b"}]
    url = f"/fs11b/{name}/"
    r = api.post(f"{url}bulk/", {"items": items}, format="json", HTTP_X_FS11B_REFUSE="1")
    body = assert_error(r, 400, "VALIDATION_ERROR")
    assert body["details"] == {"items": {"0": {"title": ["No quota left."]}}}
    assert not Article.objects.exists()
    assert not AuditLog.objects.exists() and not OutboxEvent.objects.exists()
    single = api.post(url, items[0], format="json", HTTP_X_FS11B_REFUSE="1")
    assert assert_error(single, 400, "VALIDATION_ERROR")["details"] == {"title": ["No quota left."]}
    r = api.post(f"{url}bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    assert Article.objects.count() == 2


@pytest.mark.parametrize("name", ["fs11b-articles", "fs11b-django-articles"])
@pytest.mark.parametrize("shape", ["items", "filter"])
def test_fs11b_a_bulk_updates_refused_forced_values_are_its_rows(fs11b_mounted, name, shape):
    """The same on a bulk update's batched path, whose values were asked row by row
    outside the per-item loop: the refused row is named (by its index under ``items``, by
    its id under ``ids`` for a ``filter``, as the row-by-row path names it), nothing is
    written."""
    rows = [
        Article.objects.create(slug=f"s{i}", title=title)
        for i, title in enumerate(["ok", "refused", "ok"])
    ]
    api = client_for(None)
    if shape == "items":
        body = {"items": [{"id": row.pk, "views": 5} for row in rows]}
        named = {"items": {"1": {"title": ["This row is locked."]}}}
    else:
        body = {"filter": {"title[eq]": "refused"}, "data": {"views": 5}}
        named = {"ids": {str(rows[1].pk): {"title": ["This row is locked."]}}}
    r = api.patch(f"/fs11b/{name}/bulk/", body, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == named
    assert set(Article.objects.values_list("views", flat=True)) == {0}
    assert not AuditLog.objects.exists() and not OutboxEvent.objects.exists()
