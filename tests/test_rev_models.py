"""Resources over the model shapes teams declare (rev-models): a multi-table child whose
tenant, owner and soft-delete fields are its parent's, a proxy of it, many-to-many relations
to tenant rows (one auto-created, one through a model of its own), reverse relations, and
field types JSON does not spell directly (``DurationField``, ``BinaryField``, ``UUIDField``,
``DecimalField``, ``JSONField``, choices, a conditional ``UniqueConstraint``)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import django
import pytest
from django.db import connection, models
from django.db.models.functions import Now
from django.test.utils import isolate_apps

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.outbox import OutboxEvent
from django_arc.sites import _all_sites
from shop.models import Organization
from tests.factories import AuthorFactory, BookFactory, MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, client_for, site_mounted
from tests.testapp.models import Author, Book, Oddity, Periodical, PeriodicalProxy, TenantShelf

pytestmark = pytest.mark.django_db

MEMBERS = {key: P.require_org_membership() for key in ("list", "get", "create", "update", "delete")}

site = ResourceSite(name="rev-models")


@site.register
class PeriodicalResource(Resource):
    model = Periodical
    name = "periodicals"
    fields = ["id", "organization", "owner", "title", "issue", "shelf", "shelves", "deleted_at"]
    filter_fields = {"shelves": ["eq", "in"], "title": ["eq"]}
    sort_fields = ["title", "issue"]
    presets = [presets.MultiTenant(), presets.OwnedBy(), presets.SoftDelete()]
    permissions = MEMBERS

    @action(permissions=P.require_org_membership())
    def bump(self, request, instance, data):
        instance.issue += 1
        instance.save()
        return instance


@site.register
class ProxiedPeriodicalResource(PeriodicalResource):
    model = PeriodicalProxy
    name = "proxied-periodicals"


@site.register
class OddityResource(Resource):
    model = Oddity
    name = "oddities"
    fields = [
        "id",
        "organization",
        "data",
        "amount",
        "span",
        "token",
        "blob",
        "kind",
        "code",
        "serial",
        "touched",
        "shelves",
    ]
    filter_fields = {"span": ["eq", "gte", "lt"], "blob": ["exists"]}
    sort_fields = ["span", "blob"]
    presets = [presets.MultiTenant(), presets.Bulk()]
    permissions = MEMBERS


@site.register
class StrippingOddityResource(OddityResource):
    name = "stripping-oddities"
    on_field_write_denied = "strip"


@site.register
class AuthorResource(Resource):
    model = Author
    name = "authors"
    fields = ["id", "name", "books"]
    presets = [presets.Bulk()]
    permissions = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}


def _member(org):
    user = MembershipFactory(organization=org, role="member").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID=str(org.pk))
    api.raise_request_exception = False  # a 500 is an answer to assert on, not an exception
    return api


@pytest.fixture
def mounted(settings):
    with site_mounted(settings, "rm", site):
        yield


def test_a_child_whose_tenant_is_its_parents_links_only_its_tenants_rows(mounted):
    """The tenant, owner and soft-delete fields live on the multi-table parent: every route,
    through the child's resource and a proxy's, is confined to the caller's tenant, and the
    relations a body writes (a foreign key, a many-to-many) may only name the caller's
    tenant's shelves."""
    org, other = OrganizationFactory(), OrganizationFactory()
    api, theirs_api = _member(org), _member(other)
    mine = TenantShelf.objects.create(organization=org, name="mine")
    theirs = TenantShelf.objects.create(organization=other, name="theirs")
    for body in ({"shelves": [theirs.pk]}, {"shelf": theirs.pk}):
        r = api.post("/rm/periodicals/", {"title": "t", **body}, format="json")
        assert assert_error(r, 400, "VALIDATION_ERROR")["details"].keys() == body.keys()
    r = api.post("/rm/periodicals/", {"title": "t", "shelves": [mine.pk]}, format="json")
    assert r.status_code == 201, r.content
    pk = r.json()["data"]["id"]
    for path in ("periodicals", "proxied-periodicals"):
        r = api.patch(f"/rm/{path}/{pk}/", {"shelves": [mine.pk, theirs.pk]}, format="json")
        assert_error(r, 400, "VALIDATION_ERROR")
        assert_error(theirs_api.get(f"/rm/{path}/{pk}/"), 404, "NOT_FOUND")
        assert_error(theirs_api.patch(f"/rm/{path}/{pk}/", {"title": "x"}), 404, "NOT_FOUND")
    assert api.get(f"/rm/periodicals/?shelves={mine.pk}").json()["total"] == 1
    assert theirs_api.get(f"/rm/periodicals/?shelves={mine.pk}").json()["total"] == 0
    r = api.post(f"/rm/periodicals/{pk}/action/", {"action": "bump"}, format="json")
    assert r.status_code == 200 and r.json()["data"]["issue"] == 2
    assert api.delete(f"/rm/proxied-periodicals/{pk}/").json()["data"] == {"id": pk, "soft": True}
    assert [row["id"] for row in api.get("/rm/periodicals/deleted/").json()["docs"]] == [pk]
    row = Periodical.objects.get()
    assert (row.organization_id, list(row.shelves.all())) == (org.pk, [mine])
    assert row.deleted_at is not None and not Periodical.objects.filter(shelves=theirs).exists()
    assert list(OutboxEvent.objects.order_by("created_at").values_list("type", flat=True)) == [
        "periodicals.created",
        "periodicals.bump",
        "proxied-periodicals.deleted",
    ]


@pytest.mark.parametrize(
    "span", ["999999999 00:00:00", "-999999999 00:00:00", "106751992 00:00:00"]
)
def test_a_duration_no_database_column_holds_is_400_naming_the_field(mounted, span):
    """A ``timedelta`` reaches 999 999 999 days; SQLite (and MySQL) store a duration as a
    64-bit count of microseconds (about 292 000 years). Such a value in a body reached
    SQLite's driver, whose ``OverflowError`` was a 500 (PostgreSQL stored it), and in a
    filter was a 500 too: now 400 naming the field or parameter, on every database, nothing
    written."""
    api = _member(OrganizationFactory())
    r = api.post("/rm/oddities/", {"span": span}, format="json")
    assert "span" in assert_error(r, 400, "VALIDATION_ERROR")["details"]
    r = api.post("/rm/oddities/bulk/", {"items": [{"span": "1"}, {"span": span}]}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"]["items"].keys() == {"1"}
    assert not Oddity.objects.exists()
    for param in ("span", "span[gte]", "span[lt]"):
        r = api.get("/rm/oddities/", {param: span})
        assert assert_error(r, 400, "INVALID_QUERY")["details"].keys() == {param}
    # the largest duration every database holds is written, found and rendered
    r = api.post("/rm/oddities/", {"span": "106751991 04:00:54.775807"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["data"]["span"] == "106751991 04:00:54.775807"
    assert api.get("/rm/oddities/", {"span": "106751991 04:00:54.775807"}).json()["total"] == 1


@pytest.mark.postgres
def test_a_cursor_walks_past_a_row_holding_a_duration_only_postgresql_holds(mounted):
    """PostgreSQL's ``interval`` holds durations beyond SQLite's range (a row written outside
    the API): a keyset walk sorted by it still passes that row, where a filter naming the
    same value is refused on every database."""
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL's interval holds such a duration")
    org = OrganizationFactory()
    api = _member(org)
    for days in (1, 200_000_000, 300_000_000):
        Oddity.objects.create(organization=org, span=timedelta(days=days), code=str(days))
    seen, cursor = [], ""
    for _ in range(4):
        r = api.get("/rm/oddities/", {"sort": "span", "limit": 1, "after": cursor})
        assert r.status_code == 200, r.content
        seen += [row["code"] for row in r.json()["docs"]]
        cursor = r.json()["next"]
        if cursor is None:
            break
    assert seen == ["1", "200000000", "300000000"]


@pytest.mark.parametrize("blob", ["!!not base64", "aGVsbG8", "é", 5, {"a": 1}, [1], True])
def test_a_binary_value_that_is_not_base64_text_is_400_naming_the_field(mounted, blob):
    """DRF writes a ``BinaryField`` through its ``ModelField``, which handed the value to
    ``BinaryField.to_python()``: text that is not base64 (``binascii.Error``) or not ASCII,
    and anything not text, were 500s. Now 400 naming the field; base64 text round-trips
    through the response, the event and the row."""
    api = _member(OrganizationFactory())
    r = api.post("/rm/oddities/", {"blob": blob}, format="json")
    assert assert_error(r, 400, "VALIDATION_ERROR")["details"] == {
        "blob": ["Enter base64-encoded text."]
    }
    r = api.post("/rm/oddities/bulk/", {"items": [{"blob": blob}]}, format="json")
    assert_error(r, 400, "VALIDATION_ERROR")
    assert not Oddity.objects.exists() and not OutboxEvent.objects.exists()
    encoded = base64.b64encode(b"\x00\xffbytes").decode()
    r = api.post("/rm/oddities/", {"blob": encoded}, format="json")
    assert r.status_code == 201 and r.json()["data"]["blob"] == encoded
    row = Oddity.objects.get()
    assert bytes(row.blob) == b"\x00\xffbytes"
    assert OutboxEvent.objects.get().payload["data"]["blob"] == encoded
    r = api.patch(f"/rm/oddities/{row.pk}/", {"blob": blob}, format="json")
    assert_error(r, 400, "VALIDATION_ERROR")
    row.refresh_from_db()
    assert bytes(row.blob) == b"\x00\xffbytes"


@pytest.mark.parametrize("sort", ["blob", "-blob"])
def test_a_cursor_walks_a_list_sorted_by_a_binary_field(mounted, sort):
    """A keyset cursor holds the last row's sort values as JSON: a ``BinaryField``'s value
    (a ``memoryview``) had no JSON spelling, so the first keyset page sorted by one was a 500.
    It is written as base64 text and read back as the column's bytes: the walk meets every
    row once, in the order of the offset list (ties, an empty value and NULLs included)."""
    org = OrganizationFactory()
    api = _member(org)
    blobs = [b"hi", b"\x00", b"\xff\x00", None, b"hi", b"", None, b"\x00\x01"]
    for i, blob in enumerate(blobs):
        Oddity.objects.create(organization=org, blob=blob, code=str(i))
    listed = [row["id"] for row in api.get("/rm/oddities/", {"sort": sort}).json()["docs"]]
    walked, cursor = [], ""
    for _ in range(len(blobs)):
        r = api.get("/rm/oddities/", {"sort": sort, "limit": 3, "after": cursor})
        assert r.status_code == 200, r.content
        walked += [row["id"] for row in r.json()["docs"]]
        cursor = r.json()["next"]
        if cursor is None:
            break
    assert walked == listed and len(set(walked)) == len(blobs)


def test_a_many_to_many_through_a_model_of_its_own_is_refused_in_a_body(mounted):
    """DRF renders a many-to-many with a ``through`` model read-only (a link row needs the
    through model's other columns) and dropped it from a body without a word: 201, the links
    not written. It is refused like the other fields DRF reads only (``FIELD_WRITE_DENIED``),
    dropped under ``strip``, and still rendered."""
    org = OrganizationFactory()
    api = _member(org)
    shelf = TenantShelf.objects.create(organization=org, name="s")
    r = api.post("/rm/oddities/", {"code": "c", "shelves": [shelf.pk]}, format="json")
    assert assert_error(r, 403, "FIELD_WRITE_DENIED")["details"] == {"fields": ["shelves"]}
    assert not Oddity.objects.exists()
    r = api.post("/rm/stripping-oddities/", {"code": "c", "shelves": [shelf.pk]}, format="json")
    assert r.status_code == 201 and r.json()["data"]["shelves"] == [], r.content
    oddity = Oddity.objects.get()
    oddity.shelves.add(shelf, through_defaults={"position": 1})
    r = api.patch(f"/rm/oddities/{oddity.pk}/", {"shelves": []}, format="json")
    assert_error(r, 403, "FIELD_WRITE_DENIED")
    assert api.get(f"/rm/oddities/{oddity.pk}/").json()["data"]["shelves"] == [shelf.pk]
    assert list(oddity.shelves.all()) == [shelf]


def test_the_reverse_side_of_a_foreign_key_is_rendered_and_never_written(mounted):
    """``books`` of an author (the reverse side of ``Book.author``) named in ``fields``:
    DRF wrote it by re-pointing the books named at this author (one ``UPDATE`` of Book: a
    row of another resource moved without its permissions, tenancy, events or cache bumps)
    and left a book left out of the list where it was (200, nothing changed). It is
    rendered, and a body naming it is refused like a read-only field."""
    author, other = AuthorFactory(), AuthorFactory()
    book = BookFactory(author=other)
    api = client_for()
    api.raise_request_exception = False
    r = api.patch(f"/rm/authors/{author.pk}/", {"books": [book.pk]}, format="json")
    assert assert_error(r, 403, "FIELD_WRITE_DENIED")["details"] == {"fields": ["books"]}
    r = api.post("/rm/authors/", {"name": "n", "books": [book.pk]}, format="json")
    assert_error(r, 403, "FIELD_WRITE_DENIED")
    r = api.patch(
        "/rm/authors/bulk/", {"items": [{"id": author.pk, "books": [book.pk]}]}, format="json"
    )
    assert assert_error(r, 403, "FIELD_WRITE_DENIED")["details"] == {
        "fields": ["books"],
        "items": {"0": ["books"]},
    }
    assert Book.objects.get().author == other and Author.objects.count() == 2
    assert not OutboxEvent.objects.exists()
    assert api.get(f"/rm/authors/{other.pk}/").json()["data"]["books"] == [book.pk]


@pytest.mark.skipif(django.VERSION < (5, 0), reason="db_default is new in Django 5.0")
@pytest.mark.django_db(transaction=True)
def test_a_field_with_a_database_default_may_be_left_out_of_a_create(settings):
    """DRF makes a model field optional when ``has_default()``, which knows ``default``
    only: a field with a ``db_default`` was required by the generated serializer (400
    ``This field is required.``, single and bulk) though the database fills it in. Left
    out, the row gets the database's default, and the response and the event say so."""
    with isolate_apps("tests.testapp"):

        class Ticket(models.Model):
            title = models.CharField(max_length=50)
            views = models.IntegerField(db_default=7)
            label = models.CharField(max_length=20, db_default="new")
            opened = models.DateTimeField(db_default=Now())

            class Meta:
                app_label = "testapp"

    class TicketResource(Resource):
        model = Ticket
        name = "tickets"
        fields = ["id", "title", "views", "label", "opened"]
        presets = [presets.Bulk()]
        permissions = {key: P.allow_public() for key in ("list", "get", "create", "update")}

    tickets = ResourceSite(name="rev-models-tickets")
    tickets.register(TicketResource)
    with connection.schema_editor() as editor:
        editor.create_model(Ticket)
    try:
        with site_mounted(settings, "tk", tickets):
            api = client_for()
            api.raise_request_exception = False
            r = api.post("/tk/tickets/", {"title": "t"}, format="json")
            assert r.status_code == 201, r.content
            data = r.json()["data"]
            assert (data["views"], data["label"]) == (7, "new") and data["opened"]
            assert OutboxEvent.objects.get().payload["data"] == data
            r = api.post("/tk/tickets/", {"title": "u", "views": 3}, format="json")
            assert r.status_code == 201 and r.json()["data"]["views"] == 3, r.content
            r = api.post("/tk/tickets/bulk/", {"items": [{"title": "v"}]}, format="json")
            assert r.status_code == 201, r.content
        rows = Ticket.objects.order_by("pk")
        assert [(t.title, t.views, t.label) for t in rows] == [
            ("t", 7, "new"),
            ("u", 3, "new"),
            ("v", 7, "new"),
        ]
        assert all(t.opened is not None for t in rows)
    finally:
        _all_sites.remove(tickets)
        with connection.schema_editor() as editor:
            editor.delete_model(Ticket)


def _seen8c_tenant_models(
    rows: dict,
    proxies: tuple = (),
    children: dict | None = None,
    own_key_children: tuple = (),
) -> tuple[type[models.Model], ...]:
    """Isolated models (app ``testapp``, no migration) of the tests of a tenant named
    through another model than the organization's: ``proxies`` are proxies of the
    organization model, ``children`` multi-table children of it (name → extra fields),
    ``own_key_children`` children whose own pk is not their parent link (``own_id``,
    ``link``), and ``rows`` models naming their tenant (name → (the tenant model's name,
    {nullable foreign key → the target model's name})). Returned in that order, the order
    their tables are created in."""
    made: dict[str, type[models.Model]] = {}

    def model(name: str, base: type[models.Model], fields: dict, proxy: bool = False) -> None:
        meta = type("Meta", (), {"app_label": "testapp", **({"proxy": True} if proxy else {})})
        made[name] = type(name, (base,), {**fields, "Meta": meta, "__module__": __name__})

    with isolate_apps("tests.testapp"):
        for name in proxies:
            model(name, Organization, {}, proxy=True)
        for name, fields in (children or {}).items():
            model(name, Organization, fields)
        for name in own_key_children:
            own_key = {
                "own_id": models.AutoField(primary_key=True),
                "link": models.OneToOneField(Organization, models.CASCADE, parent_link=True),
            }
            model(name, Organization, own_key)
        for name, (tenant, relations) in rows.items():
            target = Organization if tenant == "Organization" else made[tenant]
            fields = {"organization": models.ForeignKey(target, on_delete=models.CASCADE)}
            for field, related in relations.items():
                fields[field] = models.ForeignKey(made[related], models.CASCADE, null=True)
            model(name, models.Model, fields)
    return tuple(made.values())


@contextmanager
def _seen8c_tables(made: tuple[type[models.Model], ...], site: ResourceSite) -> Iterator[None]:
    """The tables of ``made`` (a proxy has none of its own) for the test's body; then
    ``site`` taken off the registry and the tables dropped, in reverse order."""
    tables = [model for model in made if not model._meta.proxy]
    with connection.schema_editor() as editor:
        for model in tables:
            editor.create_model(model)
    try:
        yield
    finally:
        _all_sites.remove(site)
        with connection.schema_editor() as editor:
            for model in reversed(tables):
                editor.delete_model(model)


def _seen8c_boxes_site(
    name: str, box: type[models.Model], lid: type[models.Model], box_fields: list
) -> ResourceSite:
    """A site named ``name`` of ``boxes`` (``box``, ``box_fields``) and ``lids`` (``lid``),
    both tenant-narrowed resources its members use."""

    class BoxResource(Resource):
        model = box
        name = "boxes"
        fields = box_fields
        presets = [presets.MultiTenant()]
        permissions = MEMBERS

    class LidResource(Resource):
        model = lid
        name = "lids"
        fields = ["id", "box"]
        presets = [presets.MultiTenant()]
        permissions = MEMBERS

    site = ResourceSite(name=name)
    site.register(BoxResource)
    site.register(LidResource)
    return site


def _seen8c_crates_and_boxes_are_narrowed(
    api: Any, made: tuple, crates: tuple, boxes: tuple
) -> None:
    """Through the ``bx/`` site of :func:`_seen8c_boxes_site`: ``api``'s member links
    neither the other tenant's crate to a box nor its box to a lid (400 naming the field),
    and links its own (201); the boxes and lids (``made``: their models) then hold only
    its own (and the boxes made before without a crate)."""
    (box_model, lid_model), (mine, theirs), (my_box, their_box) = made, crates, boxes
    r = api.post("/bx/boxes/", {"crate": theirs.pk}, format="json")
    assert "crate" in assert_error(r, 400, "VALIDATION_ERROR")["details"]
    r = api.post("/bx/lids/", {"box": their_box.pk}, format="json")
    assert "box" in assert_error(r, 400, "VALIDATION_ERROR")["details"]
    assert api.post("/bx/boxes/", {"crate": mine.pk}, format="json").status_code == 201
    assert api.post("/bx/lids/", {"box": my_box.pk}, format="json").status_code == 201
    assert set(box_model.objects.values_list("crate", flat=True)) == {None, mine.pk}
    assert list(lid_model.objects.values_list("box", flat=True)) == [my_box.pk]


@pytest.mark.django_db(transaction=True)
def test_a_relation_to_rows_whose_tenant_is_a_proxy_of_the_organization_is_narrowed(settings):
    """A model may name its tenant through a proxy of the organization model (one table,
    the same rows): ``related_queryset`` compared the two tenant relations' models by
    identity, so a crate whose ``organization`` points at ``OrgProxy`` was not narrowed
    from a box whose ``organization`` points at ``Organization``, and a member linked
    another tenant's crate (201); the other way round as well."""
    made = _seen8c_tenant_models(
        proxies=["OrgProxy"],
        rows={
            "Crate": ("OrgProxy", {}),
            "Box": ("Organization", {"crate": "Crate"}),
            "Lid": ("OrgProxy", {"box": "Box"}),
        },
    )
    _, Crate, Box, Lid = made

    boxes = _seen8c_boxes_site("rev-models-boxes", Box, Lid, ["id", "crate"])
    with _seen8c_tables(made, boxes):
        org, other = OrganizationFactory(), OrganizationFactory()
        api = _member(org)
        mine, theirs = (Crate.objects.create(organization_id=o.pk) for o in (org, other))
        my_box, their_box = (Box.objects.create(organization=o) for o in (org, other))
        with site_mounted(settings, "bx", boxes):
            _seen8c_crates_and_boxes_are_narrowed(
                api, (Box, Lid), (mine, theirs), (my_box, their_box)
            )


@pytest.mark.django_db(transaction=True)
def test_a_relation_to_rows_whose_tenant_is_a_multi_table_child_of_the_organization_is_narrowed(
    settings,
):
    """A model may name its tenant through a multi-table child of the organization model
    (``Company(Organization)``: its own table, its pk the organization's): ``related_queryset``
    narrowed only the same model or a proxy of it, so a crate whose ``organization`` points
    at ``Company`` was not narrowed from a box whose ``organization`` points at
    ``Organization`` (a member linked another tenant's crate, 201), nor the other way round.
    The two are compared along the inheritance chain, a child whose own pk is not its parent
    link (``OwnKeyCompany``) included."""
    made = _seen8c_tenant_models(
        children={"Company": {"code": models.CharField(max_length=10, default="")}},
        own_key_children=["OwnKeyCompany"],
        rows={
            "Crate": ("Company", {}),
            "Tray": ("OwnKeyCompany", {}),
            "Box": ("Organization", {"crate": "Crate", "tray": "Tray"}),
            "Lid": ("Company", {"box": "Box"}),
        },
    )
    Company, OwnKeyCompany, Crate, Tray, Box, Lid = made

    boxes = _seen8c_boxes_site("fix-seen7-boxes", Box, Lid, ["id", "crate", "tray"])
    with _seen8c_tables(made, boxes):
        org, other = OrganizationFactory(), OrganizationFactory()
        for o in (org, other):  # each organization is a company too (its child row only)
            Company(organization_ptr_id=o.pk, name=o.name, slug=o.slug).save_base(raw=True)
            OwnKeyCompany(link_id=o.pk, name=o.name, slug=o.slug).save_base(raw=True)
        api = _member(org)
        mine, theirs = (Crate.objects.create(organization_id=o.pk) for o in (org, other))
        my_tray, their_tray = (
            Tray.objects.create(organization=OwnKeyCompany.objects.get(link_id=o.pk))
            for o in (org, other)
        )
        my_box, their_box = (Box.objects.create(organization=o) for o in (org, other))
        with site_mounted(settings, "bx", boxes):
            _seen8c_crates_and_boxes_are_narrowed(
                api, (Box, Lid), (mine, theirs), (my_box, their_box)
            )
            # a child whose pk is not the organization's (its own_id 1 may be org 2's id)
            r = api.post("/bx/boxes/", {"tray": their_tray.pk}, format="json")
            assert "tray" in assert_error(r, 400, "VALIDATION_ERROR")["details"]
            assert api.post("/bx/boxes/", {"tray": my_tray.pk}, format="json").status_code == 201
        assert set(Box.objects.values_list("tray", flat=True)) == {None, my_tray.pk}


@pytest.mark.django_db(transaction=True)
def test_a_relation_to_rows_whose_tenant_is_a_sibling_child_of_the_organization_is_narrowed(
    settings,
):
    """Two multi-table children of the organization model (``Company(Organization)`` and
    ``Agency(Organization)``, or one whose own pk is not its parent link) name an
    organization each; neither is in the other's parent list, so ``related_queryset``
    narrowed nothing: a lid whose tenant is a ``Company`` linked another tenant's tray,
    whose tenant is an ``Agency`` (201). They are compared through the organization
    they share."""
    made = _seen8c_tenant_models(
        children={"Company": {}, "Agency": {}},
        own_key_children=["OwnKeyAgency"],
        rows={
            "Tray": ("Agency", {}),
            "Bin": ("OwnKeyAgency", {}),
            "Lid": ("Company", {"tray": "Tray", "bin": "Bin"}),
        },
    )
    Company, Agency, OwnKeyAgency, Tray, Bin, Lid = made

    class LidResource(Resource):
        model = Lid
        name = "lids"
        fields = ["id", "tray", "bin"]
        presets = [presets.MultiTenant()]
        permissions = MEMBERS

    lids = ResourceSite(name="rev-fixes39-lids")
    lids.register(LidResource)
    with _seen8c_tables(made, lids):
        org, other = OrganizationFactory(), OrganizationFactory()
        for o in (org, other):  # each organization is a company and two agencies too
            for child in (Company, Agency):
                child(organization_ptr_id=o.pk, name=o.name, slug=o.slug).save_base(raw=True)
            OwnKeyAgency(link_id=o.pk, name=o.name, slug=o.slug).save_base(raw=True)
        OwnKeyAgency.objects.filter(link_id=org.pk).update(own_id=other.pk + 100)
        api = _member(org)
        my_tray, their_tray = (Tray.objects.create(organization_id=o.pk) for o in (org, other))
        my_bin, their_bin = (
            Bin.objects.create(organization=OwnKeyAgency.objects.get(link_id=o.pk))
            for o in (org, other)
        )
        with site_mounted(settings, "lx", lids):
            r = api.post("/lx/lids/", {"tray": their_tray.pk}, format="json")
            assert "tray" in assert_error(r, 400, "VALIDATION_ERROR")["details"]
            r = api.post("/lx/lids/", {"bin": their_bin.pk}, format="json")
            assert "bin" in assert_error(r, 400, "VALIDATION_ERROR")["details"]
            assert api.post("/lx/lids/", {"tray": my_tray.pk}, format="json").status_code == 201
            assert api.post("/lx/lids/", {"bin": my_bin.pk}, format="json").status_code == 201
        assert set(Lid.objects.values_list("tray", flat=True)) == {None, my_tray.pk}
        assert set(Lid.objects.values_list("bin", flat=True)) == {None, my_bin.pk}
