"""Resources over models whose shape is not an integer ``id``: UUID and text primary keys
(with ``/ . % space``, unicode, digits), a pk not named ``id`` and one in another column,
``to_field`` and UUID foreign keys, multi-table inheritance, proxies, an abstract tenant
base, an unmanaged model, a default manager that hides rows, a composite primary key."""

from __future__ import annotations

import json
from urllib.parse import quote

import django
import pytest
from django.db import connection, models, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext, isolate_apps
from django.urls import clear_url_caches, include, path
from rest_framework import serializers

from django_arc import Resource, ResourceSite, action, presets
from django_arc import permissions as P
from django_arc.audit.models import AuditLog
from django_arc.checks import check_resource
from django_arc.outbox import OutboxEvent
from django_arc.sites import _all_sites
from shop.models import Membership, Organization
from tests.factories import AuthorFactory, MembershipFactory, OrganizationFactory, UserFactory
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import (
    Animal,
    AnimalProxy,
    Article,
    Author,
    AuthorView,
    Book,
    CodeChild,
    CodeThing,
    CodeThingProxy,
    Dog,
    DogProxy,
    DogTag,
    Edition,
    Ledger,
    Memo,
    OrgSettings,
    Rack,
    RackItem,
    RackView,
    SlugLedger,
    UuidThing,
)

pytestmark = pytest.mark.django_db

PUBLIC = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}
#: a client-chosen primary key cannot be created through the API (arc.E016)
NO_CREATE = {key: P.allow_public() for key in ("list", "get", "update", "delete")}
OBSERVED = [presets.Bulk(), presets.Audited()]


def _resource(name, model, fields, **attrs):
    attrs.setdefault("permissions", PUBLIC)
    attrs.setdefault("presets", OBSERVED)
    title = name.title().replace("-", "")
    return type(
        f"{title}Resource", (Resource,), {"model": model, "name": name, "fields": fields, **attrs}
    )


def _shout(instance):
    instance.name = instance.name.upper()
    instance.save()
    return instance


shapes = ResourceSite(name="shapes")
for _cls in (
    _resource(
        "uuids",
        UuidThing,
        ["id", "name", "rank"],
        filter_fields={"id": ["eq", "in"], "rank": ["eq"]},
        sort_fields=["rank", "name"],
    ),
    _resource(
        "codes",
        CodeThing,
        ["code", "name", "rank"],
        permissions=NO_CREATE,
        filter_fields={"code": ["eq", "in", "contains"], "rank": ["eq"]},
        sort_fields=["rank", "code"],
    ),
    _resource("code-proxies", CodeThingProxy, ["code", "name"], permissions=NO_CREATE),
    _resource(
        "editions",
        Edition,
        ["isbn", "title"],
        permissions=NO_CREATE,
        filter_fields={"isbn": ["eq", "in"]},
        sort_fields=["isbn", "title"],
    ),
    _resource(
        "rack-items",
        RackItem,
        ["id", "rack", "thing", "name"],
        filter_fields={
            "rack": ["eq", "in"],
            "rack__room": ["eq"],
            "thing": ["eq", "exists"],
            "thing__name": ["eq"],
        },
        sort_fields=["rack", "rack__room", "thing", "thing__name", "name"],
    ),
    # default fields: the parent link ``animal_ptr`` (the pk) and the parent's ``id``
    _resource(
        "dogs",
        Dog,
        None,
        filter_fields={"animal_ptr": ["eq"], "name": ["eq"]},
        sort_fields=["name"],
    ),
    _resource("animal-proxies", AnimalProxy, ["id", "name"]),
    _resource("dog-proxies", DogProxy, ["animal_ptr", "name", "barks"]),
    # multi-table under a client-chosen text pk: the parent's ``code`` is the child's pk too
    _resource("code-children", CodeChild, None, permissions=NO_CREATE),
    _resource("author-views", AuthorView, ["id", "name"], permissions=NO_CREATE),
    _resource("memos", Memo, ["id", "text", "archived"], queryset=Memo.all_objects.all()),
    _resource(
        "slug-ledgers",
        SlugLedger,
        ["id", "name", "organization"],
        presets=[presets.MultiTenant(), presets.Bulk()],
        permissions={key: P.require_org_membership() for key in PUBLIC},
        filter_fields={"organization": ["eq"]},
        sort_fields=["organization"],
    ),
    _resource(
        "idempotent-codes",
        CodeThing,
        ["code", "name"],
        permissions=NO_CREATE,
        idempotent=True,
    ),
    _resource(
        "owned-codes",
        CodeThing,
        ["code", "name", "owner"],
        presets=[presets.SoftDelete(), presets.OwnedBy(), presets.Bulk(), presets.Audited()],
        permissions=NO_CREATE,
        sort_fields=["code"],
        shout=action(lambda self, request, instance, data: _shout(instance), name="shout"),
        action_permissions=P.require_auth(),
    ),
    # the tenant field is the primary key: MultiTenant sets it on create
    _resource(
        "org-settings",
        OrgSettings,
        ["organization", "theme"],
        presets=[presets.MultiTenant(), presets.Bulk()],
        permissions={key: P.require_org_membership() for key in PUBLIC},
    ),
    _resource(
        "ledgers",
        Ledger,
        ["id", "name", "organization"],
        presets=[presets.MultiTenant(), presets.Bulk()],
        permissions={key: P.require_org_membership() for key in PUBLIC},
    ),
):
    shapes.register(_cls)


@pytest.fixture
def api(settings):
    with site_mounted(settings, "shapes", shapes):
        yield client_for()


def events():
    return [(e.type, e.meta["resource_id"]) for e in OutboxEvent.objects.order_by("id")]


def audits():
    return list(AuditLog.objects.order_by("id").values_list("action", "object_id"))


# -- a default manager that hides rows ----------------------------------------------------------


def test_a_bulk_update_writes_the_rows_a_filtering_default_manager_hides(api):
    """The resource serves every memo (``queryset = Memo.all_objects``), the model's default
    manager hides the archived ones. ``bulk_update`` went through the default manager, so
    the archived row's UPDATE matched nothing and the "deleted meanwhile" check (through
    the base manager) found every row: a 400 ``{"items": {}}`` naming nothing. It writes
    through the base manager now, as ``save()`` does for one row."""
    visible, archived = (
        Memo.objects.create(text="a"),
        Memo.all_objects.create(text="b", archived=True),
    )
    items = [{"id": visible.pk, "text": "x"}, {"id": archived.pk, "text": "y"}]
    r = api.patch("/shapes/memos/bulk/", {"items": items}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"updated": 2, "ids": [visible.pk, archived.pk]}
    assert dict(Memo.all_objects.values_list("pk", "text")) == {visible.pk: "x", archived.pk: "y"}
    assert events() == [("memos.updated", str(visible.pk)), ("memos.updated", str(archived.pk))]


def test_a_bulk_delete_deletes_the_rows_a_filtering_default_manager_hides(api):
    """The DELETE went through the default manager: the archived row was answered as
    deleted (with its event and audit row) and stayed in the table."""
    visible, archived = (
        Memo.objects.create(text="a"),
        Memo.all_objects.create(text="b", archived=True),
    )
    r = api.delete("/shapes/memos/bulk/", {"ids": [visible.pk, archived.pk]}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"] == {"deleted": 2, "ids": [visible.pk, archived.pk]}
    assert not Memo.all_objects.exists()
    assert audits() == [("deleted", str(visible.pk)), ("deleted", str(archived.pk))]


def test_single_writes_reach_a_row_the_default_manager_hides(api):
    archived = Memo.all_objects.create(text="b", archived=True)
    r = api.patch(f"/shapes/memos/{archived.pk}/", {"text": "c"}, format="json")
    assert r.status_code == 200 and r.json()["data"]["text"] == "c"
    assert api.delete(f"/shapes/memos/{archived.pk}/").status_code == 200
    assert not Memo.all_objects.exists()


def test_the_lowest_64_bit_id_is_found_by_bulk_ids_and_bulk_relations(api, settings):
    """The lowest signed 64-bit integer became a value in a9f7f32 (the query language and
    serializers), but two twins still read ``abs(id) >= 2**63`` as "no database holds it":
    a bulk body naming the row with that id answered "Not found.", and a bulk create
    pointing a foreign key at it "does not exist"."""
    low = -(2**63)
    Memo.objects.create(pk=low, text="a")
    assert api.get(f"/shapes/memos/{low}/").status_code == 200
    r = api.patch("/shapes/memos/bulk/", {"items": [{"id": low, "text": "b"}]}, format="json")
    assert r.status_code == 200, r.content
    assert Memo.objects.get(pk=low).text == "b"
    r = api.delete("/shapes/memos/bulk/", {"ids": [low]}, format="json")
    assert r.status_code == 200, r.content
    assert not Memo.all_objects.exists()
    author = Author.objects.create(pk=low, name="x")
    books = ResourceSite(name="low-books")
    books.register(_resource("books", Book, ["id", "title", "isbn", "author"]))
    try:
        with site_mounted(settings, "low-books", books):
            item = {"title": "t", "isbn": "1", "author": low}
            r = client_for().post("/low-books/books/bulk/", {"items": [item]}, format="json")
    finally:
        _all_sites.remove(books)
    assert r.status_code == 201, r.content
    assert Book.objects.get().author == author


# -- multi-table inheritance -------------------------------------------------------------------


def test_a_multi_table_child_renders_its_parent_link_primary_key_as_its_value(api):
    """A child model's primary key is ``animal_ptr``, the link to its parent row, which DRF
    rendered as the parent *instance*: every answer of a resource over it with its default
    fields was a 500 (the audit row's snapshot too). It is the parent's pk now."""
    r = api.post("/shapes/dogs/", {"name": "rex"}, format="json")
    assert r.status_code == 201, r.content
    dog = Dog.objects.get()
    assert r.json()["data"] == {"id": dog.pk, "name": "rex", "animal_ptr": dog.pk, "barks": True}
    assert api.get(f"/shapes/dogs/{dog.pk}/").json()["data"]["animal_ptr"] == dog.pk
    listed = api.get(f"/shapes/dogs/?animal_ptr={dog.pk}&sort=name&limit=1&after=&select=name")
    assert listed.status_code == 200 and listed.json()["docs"] == [
        {"id": dog.pk, "animal_ptr": dog.pk, "name": "rex"}
    ]
    r = api.patch("/shapes/dogs/bulk/", {"items": [{"id": dog.pk, "name": "max"}]}, format="json")
    assert r.status_code == 200, r.content
    assert api.delete(f"/shapes/dogs/{dog.pk}/").status_code == 200
    assert not Animal.objects.exists()
    key = str(dog.pk)
    assert events() == [("dogs.created", key), ("dogs.updated", key), ("dogs.deleted", key)]
    assert audits() == [("created", key), ("updated", key), ("deleted", key)]


def test_a_multi_table_child_cannot_move_its_row_through_its_parents_primary_key(api):
    """The child's own pk (``codething_ptr``) is never writable, but its parent's pk
    (``code``) is the same value under another name and was: a PATCH of ``code`` saved a
    copy of the row under the new key and left the old one (two rows, an ``updated`` event
    for the copy), and a bulk update of it was a 500 (``bulk_update`` refuses a pk). Every
    primary key along the parent links is as read-only as the child's own."""
    CodeChild.objects.create(code="x1", name="a")
    r = api.patch("/shapes/code-children/x1/", {"code": "y", "name": "b"}, format="json")
    assert r.status_code == 403 and r.json()["details"] == {"fields": ["code"]}
    items = [{"id": "x1", "code": "y"}]
    r = api.patch("/shapes/code-children/bulk/", {"items": items}, format="json")
    assert r.status_code == 403 and r.json()["details"]["fields"] == ["code"]
    r = api.patch("/shapes/code-children/x1/", {"name": "b"}, format="json")
    assert r.status_code == 200 and r.json()["data"]["codething_ptr"] == "x1"
    assert list(CodeThing.objects.values_list("code", "name")) == [("x1", "b")]
    assert list(CodeChild.objects.values_list("codething_ptr", flat=True)) == ["x1"]
    # and so its create cannot set it: the check says so
    assert _check_ids(_resource("cc1", CodeChild, None)) == ["arc.E016"]


def test_a_multi_table_child_is_bulk_created(api):
    """Django's ``bulk_create`` refuses a multi-table child ("Can't bulk create a
    multi-table inherited model"), so a bulk create of dogs was a 500 with nothing
    written. Each row is saved on its own now, in the route's one transaction."""
    r = api.post("/shapes/dogs/bulk/", {"items": [{"name": "a"}, {"name": "b"}]}, format="json")
    assert r.status_code == 201, r.content
    dogs = list(Dog.objects.order_by("pk").values_list("pk", "name"))
    assert [name for _, name in dogs] == ["a", "b"]
    assert r.json()["data"] == {"created": 2, "ids": [pk for pk, _ in dogs]}
    assert events() == [("dogs.created", str(pk)) for pk, _ in dogs]
    # all or none: an invalid item writes no row
    r = api.post("/shapes/dogs/bulk/", {"items": [{"name": "c"}, {"name": ""}]}, format="json")
    assert r.status_code == 400 and Dog.objects.count() == 2


def test_a_bulk_create_through_a_proxy_is_one_insert(api):
    """A proxy's ``_meta.parents`` names the model it proxies (with no parent link), so
    the bulk create that saves a multi-table child's rows one by one saved a proxy's one by
    one too: an INSERT (and a ``post_save``) per row instead of one ``bulk_create``. Only a
    multi-table child is saved row by row, a proxy of one included."""
    items = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    with CaptureQueriesContext(connection) as queries:
        r = api.post("/shapes/animal-proxies/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    inserts = [q for q in queries if q["sql"].startswith("INSERT") and "testapp_animal" in q["sql"]]
    assert len(inserts) == 1
    assert list(Animal.objects.order_by("pk").values_list("name", flat=True)) == ["a", "b", "c"]
    r = api.post("/shapes/dog-proxies/bulk/", {"items": items[:2]}, format="json")
    assert r.status_code == 201, r.content
    assert sorted(Dog.objects.values_list("name", flat=True)) == ["a", "b"]


# -- checks ------------------------------------------------------------------------------------


def _check_ids(resource_class):
    site = ResourceSite(name="shape-checks")
    try:
        site.register(resource_class)
        return [e.id for e in check_resource(site.get_resource(resource_class.name))]
    finally:
        _all_sites.remove(site)  # its errors are not manage.py check's in other tests


def test_a_client_chosen_primary_key_with_create_permitted_is_a_check_error():
    """The primary key is never writable from a body, so a create on a model whose pk the
    client chooses (no default) stored ``""`` and the next create answered 409."""
    assert _check_ids(_resource("c1", CodeThing, ["code", "name"])) == ["arc.E016"]
    assert _check_ids(_resource("c2", Edition, ["isbn", "title"])) == ["arc.E016"]
    assert _check_ids(_resource("c3", CodeThing, ["code", "name"], permissions=NO_CREATE)) == []
    for model in (UuidThing, Dog, RackItem):  # a default, a parent link, an AutoField
        assert _check_ids(_resource("c4", model, None)) == []


def test_a_client_chosen_primary_key_is_no_check_error_when_create_never_grants(settings):
    """``"create": P.deny_all()`` lets nobody create (not even an elevated caller), so no
    body can bring a key, yet arc.E016 reported it as it does a create someone may be
    granted: only a missing or ``None`` key was exempt. A rule that never grants as declared
    is exempt now; one that may grant, or denies at request time only, is still reported."""

    def nobody(request, resource, action, obj=None):
        return False

    never = [
        P.deny_all(),
        P.all_of(P.require_auth(), P.deny_all()),
        P.deny_all() & P.allow_public(),
        P.any_of(P.deny_all(), P.all_of(P.deny_all(), P.require_auth())),
        P.any_of(),
        None,
    ]
    for rule in never:
        resource = _resource("c5", CodeThing, ["code", "name"], permissions={"create": rule})
        assert _check_ids(resource) == [], rule
    maybe = [
        P.require_auth(),
        P.any_of(P.deny_all(), P.require_org_role("admin")),
        P.deny_all() | P.allow_public(),
        P.all_of(),
        P.when(lambda *_: True, P.deny_all()),
        nobody,  # denies at request time only: a deploy may change it, unchecked
    ]
    for rule in maybe:
        resource = _resource("c6", CodeThing, ["code", "name"], permissions={"create": rule})
        assert _check_ids(resource) == ["arc.E016"], rule
    # a composite key is refused whatever the create rule: its rows have no one-value URL
    # (test_a_composite_primary_key_is_a_check_error); and deny_all denies at request time
    exempt = _resource(
        "codes-deny", CodeThing, ["code", "name"], permissions={**NO_CREATE, "create": P.deny_all()}
    )
    site = ResourceSite(name="shape-deny")
    try:
        site.register(exempt)
        with site_mounted(settings, "deny", site):
            elevated = client_for(UserFactory(is_superuser=True), HTTP_X_ARC_SCOPE="platform")
            for client in (client_for(UserFactory()), elevated):
                r = client.post("/deny/codes-deny/", {"code": "k", "name": "n"}, format="json")
                assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", r.content
    finally:
        _all_sites.remove(site)
    assert not CodeThing.objects.exists()


def test_a_primary_key_a_preset_sets_on_create_is_no_check_error(api):
    """A row per organization whose primary key is its tenant field (a one-to-one link
    that is not a parent link): MultiTenant writes it on every create, so the API creates
    such rows. arc.E016 judged only the key's default and refused it, so ``manage.py
    check`` (and with it ``runserver`` and ``migrate``) stopped a project that worked."""
    assert _check_ids(shapes.get_resource("org-settings").__class__) == []
    org = OrganizationFactory()
    member = MembershipFactory(organization=org, role="admin").user
    api = client_for(member, HTTP_X_ORGANIZATION_ID=str(org.pk))
    r = api.post("/shapes/org-settings/", {"theme": "dark"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["data"] == {"organization": org.pk, "theme": "dark"}
    assert OrgSettings.objects.get().pk == org.pk
    # without a preset setting it the key is the client's to choose, which no body can
    assert _check_ids(_resource("o1", OrgSettings, ["organization", "theme"])) == ["arc.E016"]


@pytest.mark.skipif(django.VERSION < (5, 2), reason="CompositePrimaryKey is Django 5.2's")
def test_a_composite_primary_key_is_a_check_error():
    with isolate_apps("tests.testapp"):

        class Pair(models.Model):
            pk = models.CompositePrimaryKey("left", "right")
            left = models.IntegerField()
            right = models.IntegerField()

            class Meta:
                app_label = "testapp"

    resource = _resource("pairs", Pair, ["left", "right"], permissions={"list": P.allow_public()})
    assert _check_ids(resource) == ["arc.E016"]


# -- what was found sound ----------------------------------------------------------------------

#: text primary keys a URL carries escaped (all but ``/``: see test_a_slash_…)
CODES = ["v1.2", "50%", "with space", "ünï-😀", "123", "0123", "a.json", "..", "%2F", "?x#y"]


def test_text_primary_keys_route_filter_sort_page_and_write(api):
    for i, code in enumerate(CODES):
        CodeThing.objects.create(code=code, name="n", rank=i % 3)
    for code in CODES:
        url = f"/shapes/codes/{quote(code, safe='')}/"
        assert api.get(url).json()["data"]["code"] == code
        assert api.patch(url, {"name": "m"}, format="json").status_code == 200
        assert api.put(url, {"name": "p", "rank": 1}, format="json").status_code == 200
        assert api.get(f"/shapes/code-proxies/{quote(code, safe='')}/").json()["data"] == {
            "code": code,
            "name": "p",
        }
    # "123" is text: "0123" another row, and an integer in a bulk body names "123"
    assert [d["code"] for d in api.get("/shapes/codes/?code=123").json()["docs"]] == ["123"]
    assert api.get("/shapes/codes/?code[contains]=%25").json()["total"] == 2
    seen, url = [], "/shapes/codes/?sort=-code&limit=3&after="
    while url:
        body = api.get(url).json()
        seen += [d["code"] for d in body["docs"]]
        url = body["next"] and f"/shapes/codes/?sort=-code&limit=3&after={body['next']}"
    assert seen == sorted(CODES, reverse=True)
    r = api.patch("/shapes/codes/bulk/", {"items": [{"id": 123, "name": "B"}]}, format="json")
    assert r.json()["data"] == {"updated": 1, "ids": ["123"]}
    r = api.delete("/shapes/codes/bulk/", {"ids": ["50%", "ünï-😀"]}, format="json")
    assert r.json()["data"] == {"deleted": 2, "ids": ["50%", "ünï-😀"]}
    assert api.delete(f"/shapes/codes/{quote('with space')}/").status_code == 200
    # every id in events and the audit log is the pk as text
    assert all(isinstance(rid, str) for _, rid in events())
    assert ("codes.updated", "123") in events() and ("updated", "123") in audits()
    assert ("codes.deleted", "with space") in events()


def test_a_slash_in_a_text_primary_key_is_not_a_detail_url(api):
    """DRF's ``lookup_value_regex`` is ``[^/]+`` and Django decodes ``%2F`` before routing:
    a row whose pk holds ``/`` has no detail URL (404 from the URL resolver), as in DRF.
    The list's filters and the bulk routes, whose ids ride in the body, reach it."""
    CodeThing.objects.create(code="a/b", name="n")
    assert api.get(f"/shapes/codes/{quote('a/b', safe='')}/").status_code == 404
    # nor has a value the name of a route beside the list: ``bulk/`` is the bulk route
    CodeThing.objects.create(code="bulk", name="n")
    assert api.get("/shapes/codes/bulk/").status_code == 405
    assert api.get("/shapes/codes/?code=a/b").json()["total"] == 1
    r = api.patch("/shapes/codes/bulk/", {"items": [{"id": "a/b", "name": "x"}]}, format="json")
    assert r.json()["data"] == {"updated": 1, "ids": ["a/b"]}


def test_uuid_primary_keys_and_a_pk_in_another_column(api):
    thing = api.post("/shapes/uuids/", {"name": "u", "rank": 1}, format="json").json()["data"]
    other = UuidThing.objects.create(name="v", rank=1)
    for spelling in (thing["id"], thing["id"].upper(), thing["id"].replace("-", "")):
        assert api.get(f"/shapes/uuids/{spelling}/").json()["data"]["id"] == thing["id"]
    assert api.get("/shapes/uuids/nope/").status_code == 404
    assert api.get("/shapes/uuids/?id=zzz").status_code == 400
    assert api.get(f"/shapes/uuids/?id[in]={thing['id']},{other.pk.hex}").json()["total"] == 2
    first = api.get("/shapes/uuids/?sort=rank&limit=1&after=").json()
    second = api.get(f"/shapes/uuids/?sort=rank&limit=1&after={first['next']}").json()
    assert {first["docs"][0]["id"], second["docs"][0]["id"]} == {thing["id"], str(other.pk)}
    items = [{"id": other.pk.hex, "name": "w"}]
    assert api.patch("/shapes/uuids/bulk/", {"items": items}, format="json").json()["data"] == {
        "updated": 1,
        "ids": [str(other.pk)],
    }
    assert events() == [("uuids.created", thing["id"]), ("uuids.updated", str(other.pk))]
    assert audits() == [("created", thing["id"]), ("updated", str(other.pk))]
    Edition.objects.create(isbn="978-1", title="t")
    assert api.patch("/shapes/editions/978-1/", {"title": "z"}, format="json").status_code == 200
    page = api.get("/shapes/editions/?isbn[in]=978-1&sort=-isbn&limit=1&after=").json()
    assert page["docs"] == [{"isbn": "978-1", "title": "z"}]
    assert (
        api.delete("/shapes/editions/bulk/", {"ids": ["978-1"]}, format="json").status_code == 200
    )
    assert ("editions.deleted", "978-1") in events()


def test_foreign_keys_to_a_unique_field_and_to_a_uuid_pk(api):
    thing = UuidThing.objects.create(name="w")
    a, b = (
        Rack.objects.create(label="A/1", room="r1"),
        Rack.objects.create(label="B.2", room="r2"),
    )
    RackItem.objects.create(rack=a, thing=thing, name="i1")
    RackItem.objects.create(rack=b, name="i2")

    def names(query):
        r = api.get(f"/shapes/rack-items/?{query}")
        assert r.status_code == 200, r.content
        return [d["name"] for d in r.json()["docs"]]

    assert names("rack=A/1") == ["i1"]
    assert names(f"rack={a.pk}") == []  # the to_field's value, not the rack's pk
    assert names("rack[in]=A/1,B.2&sort=-rack") == ["i2", "i1"]
    assert names("rack__room=r2") == ["i2"]
    assert names(f"thing={thing.pk}") == names("thing__name=w") == ["i1"]
    assert names("thing[exists]=false") == ["i2"]
    assert names("sort=-thing__name") == ["i1", "i2"]
    assert api.get("/shapes/rack-items/?sort=thing&limit=1&after=").json()["hasNext"] is True
    r = api.post("/shapes/rack-items/", {"rack": "B.2", "thing": thing.pk.hex, "name": "n"})
    assert r.status_code == 201 and r.json()["data"]["rack"] == "B.2"
    assert r.json()["data"]["thing"] == str(thing.pk)
    r = api.post("/shapes/rack-items/", {"rack": a.pk, "thing": "bad", "name": "n"})
    assert r.status_code == 400 and set(r.json()["details"]) == {"rack", "thing"}
    items = [{"rack": "A/1", "name": "m"}, {"rack": "B.2", "thing": str(thing.pk), "name": "o"}]
    assert api.post("/shapes/rack-items/bulk/", {"items": items}).status_code == 201


def test_an_unmanaged_model_and_a_proxy_serve_their_table(api):
    author = AuthorFactory(name="a")
    r = api.patch(f"/shapes/author-views/{author.pk}/", {"name": "b"}, format="json")
    assert r.json()["data"] == {"id": author.pk, "name": "b"}
    author.refresh_from_db()
    assert author.name == "b"
    CodeThing.objects.create(code="x", name="n")
    r = api.patch("/shapes/code-proxies/x/", {"name": "m"}, format="json")
    assert r.status_code == 200 and api.get("/shapes/codes/x/").json()["data"]["name"] == "m"
    assert events()[-1] == ("code-proxies.updated", "x")


def test_a_tenant_field_from_an_abstract_base_isolates_tenants(api):
    one, two = OrganizationFactory(), OrganizationFactory()
    member = MembershipFactory(organization=one, role="admin").user
    api = client_for(member, HTTP_X_ORGANIZATION_ID=str(one.pk))
    mine = api.post("/shapes/ledgers/", {"name": "m"}, format="json").json()["data"]
    theirs = Ledger.objects.create(organization=two, name="t")
    assert mine["organization"] == one.pk
    assert [d["name"] for d in api.get("/shapes/ledgers/").json()["docs"]] == ["m"]
    assert api.get(f"/shapes/ledgers/{theirs.pk}/").status_code == 404
    assert api.patch(f"/shapes/ledgers/{theirs.pk}/", {"name": "x"}).status_code == 404
    r = api.delete("/shapes/ledgers/bulk/", {"ids": [theirs.pk]}, format="json")
    assert r.status_code == 400 and r.json()["details"] == {"ids": {"0": {"id": ["Not found."]}}}
    r = api.post("/shapes/ledgers/", {"name": "n", "organization": two.pk}, format="json")
    assert r.status_code == 403
    assert Ledger.objects.get(pk=theirs.pk).name == "t"


def test_event_payloads_carry_text_ids(api):
    code = CodeThing.objects.create(code="123", name="n")
    api.patch(f"/shapes/codes/{code.pk}/", {"name": "m"}, format="json")
    meta = json.loads(json.dumps(OutboxEvent.objects.get().meta))
    assert meta["resource_id"] == "123"


def slug_resolver(user, org_id):
    """A ``MEMBERSHIP_RESOLVER`` reading the organization header as its slug."""
    roles = Membership.objects.filter(user_id=user.pk, organization__slug=org_id)
    return list(roles.values_list("role", flat=True)) or None


def test_a_tenant_field_to_the_organizations_slug_isolates_tenants(api, settings):
    """``organization = ForeignKey(Organization, to_field="slug")``: the header, the tenant
    filter, the written value and the body's own organization are all the slug."""
    settings.ARC = {**settings.ARC, "MEMBERSHIP_RESOLVER": f"{__name__}.slug_resolver"}
    one, two = OrganizationFactory(slug="one"), OrganizationFactory(slug="two")
    user = MembershipFactory(organization=one, role="admin").user
    api = client_for(user, HTTP_X_ORGANIZATION_ID="one")
    r = api.post("/shapes/slug-ledgers/", {"name": "m", "organization": "one"}, format="json")
    assert r.status_code == 201 and r.json()["data"]["organization"] == "one"
    r = api.post("/shapes/slug-ledgers/", {"name": "m", "organization": "two"}, format="json")
    assert r.status_code == 403
    theirs = SlugLedger.objects.create(organization=two, name="t")
    assert [d["name"] for d in api.get("/shapes/slug-ledgers/").json()["docs"]] == ["m"]
    assert api.get("/shapes/slug-ledgers/?organization=two").json()["total"] == 0
    assert api.get(f"/shapes/slug-ledgers/{theirs.pk}/").status_code == 404
    r = api.patch("/shapes/slug-ledgers/bulk/", {"items": [{"id": theirs.pk, "name": "x"}]})
    assert r.status_code == 400
    assert (
        client_for(user, HTTP_X_ORGANIZATION_ID="two").get("/shapes/slug-ledgers/").status_code
        == 403
    )
    assert SlugLedger.objects.get(pk=theirs.pk).name == "t"
    assert OutboxEvent.objects.get().meta["organization_id"] == "one"


def test_idempotency_event_keys_end_with_the_text_primary_key(api):
    CodeThing.objects.create(code="a b", name="n")
    CodeThing.objects.create(code="123", name="n")
    for _ in range(2):
        r = api.patch(
            f"/shapes/idempotent-codes/{quote('a b')}/", {"name": "k"}, HTTP_IDEMPOTENCY_KEY="k1"
        )
        assert r.status_code == 200
    items = [{"id": 123, "name": "z"}, {"id": "a b", "name": "z"}]
    r = api.patch("/shapes/idempotent-codes/bulk/", {"items": items}, HTTP_IDEMPOTENCY_KEY="k2")
    assert r.status_code == 200
    keys = {(e.meta["resource_id"], e.meta["idempotency_key"]) for e in OutboxEvent.objects.all()}
    assert len(keys) == 3  # the replayed PATCH wrote no second event
    for resource_id, key in keys:
        assert key.endswith(f":idempotent-codes.updated:{resource_id}")
    assert {rid for rid, _ in keys} == {"a b", "123"}
    assert sorted(OutboxEvent.objects.values_list("dedupe_key", flat=True)) == sorted(
        k for _, k in keys
    )


def test_soft_delete_ownership_and_actions_on_text_primary_keys(api):
    owner, stranger = UserFactory(), UserFactory()
    mine, theirs = client_for(owner), client_for(stranger)
    codes = ["a.json", "50%", "ü x", "123"]
    for code in codes:
        CodeThing.objects.create(code=code, name="n", owner=owner)
    for code in codes:
        url = f"/shapes/owned-codes/{quote(code, safe='')}/"
        shout = {"action": "shout"}
        assert theirs.post(f"{url}action/", shout, format="json").status_code == 403
        assert theirs.patch(url, {"name": "x"}).status_code == 403
        assert theirs.delete(url).status_code == 403
        r = mine.post(f"{url}action/", shout, format="json")
        assert r.json()["data"] == {"code": code, "name": "N", "owner": owner.pk}
        assert mine.delete(url).json()["data"] == {"id": code, "soft": True}
        assert mine.get(url).status_code == 404
        assert theirs.post(f"{url}restore/").status_code == 403
        assert mine.post(f"{url}restore/").json()["data"]["code"] == code
    r = theirs.delete("/shapes/owned-codes/bulk/", {"ids": codes}, format="json")
    assert r.status_code == 403
    r = mine.delete("/shapes/owned-codes/bulk/", {"ids": codes}, format="json")
    assert r.json()["data"] == {"deleted": 4, "ids": codes}
    page = mine.get("/shapes/owned-codes/deleted/?sort=code&limit=2&after=").json()
    assert [d["code"] for d in page["docs"]] == ["123", "50%"]
    page = mine.get(f"/shapes/owned-codes/deleted/?sort=code&limit=2&after={page['next']}").json()
    assert [d["code"] for d in page["docs"]] == ["a.json", "ü x"]
    assert events()[-4:] == [("owned-codes.deleted", code) for code in codes]
    assert audits()[-4:] == [("deleted", code) for code in codes]


# -- the query cache over two models of one table ----------------------------------------------

CACHED = {"stale_seconds": 30}
READ_ONLY = {"list": P.allow_public(), "get": P.allow_public()}
cached = ResourceSite(name="shapes-cached")
for _cls in (
    _resource("authors", Author, ["id", "name"], cache=CACHED, presets=[], permissions=READ_ONLY),
    _resource(
        "codes", CodeThing, ["code", "name"], cache=CACHED, presets=[], permissions=READ_ONLY
    ),
    _resource(
        "items",
        RackItem,
        ["id", "name"],
        filter_fields={"rack__room": ["eq"]},
        cache=CACHED,
        presets=[],
        permissions=READ_ONLY,
    ),
    # ``dog__name`` joins Dog's table and its parent Animal's, which holds ``name``
    _resource(
        "dog-tags",
        DogTag,
        ["id", "label"],
        filter_fields={"dog__name": ["eq"]},
        cache=CACHED,
        presets=[],
        permissions=READ_ONLY,
    ),
):
    cached.register(_cls)


@pytest.fixture
def cache_api(settings):
    """Both sites mounted: the writes go through ``/shapes/``, the cached reads ``/cached/``."""
    import tests.urls

    caches = caches_with("redis", REDIS_URL)
    arc = arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})
    patterns = [
        *tests.urls.urlpatterns,
        path("shapes/", include(shapes.urls)),
        path("cached/", include(cached.urls)),
    ]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    with override_settings(CACHES=caches, ARC=arc):
        yield client_for()
    clear_url_caches()


def hit(api, url):
    api.get(url)
    response = api.get(url)
    assert response["X-Cache"] == "HIT", response.content
    return response


@pytest.mark.parametrize("through", ["api", "orm"])
@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_write_through_an_unmanaged_model_invalidates_the_cached_model_of_its_table(
    cache_api, through
):
    """``AuthorView`` (unmanaged) and ``Author`` are two models over one table. Invalidation
    went by model class, so a write through the unmanaged one — its resource's PATCH, or a
    save in the shell — left the cached author (and the cached answers filtering on it)
    stale until ``stale_seconds``; it goes by table now."""
    author = Author.objects.create(name="a")
    hit(cache_api, f"/cached/authors/{author.pk}/")
    hit(cache_api, "/cached/authors/")
    if through == "api":
        r = cache_api.patch(f"/shapes/author-views/{author.pk}/", {"name": "b"}, format="json")
        assert r.status_code == 200
    else:
        view = AuthorView.objects.get(pk=author.pk)
        view.name = "b"
        view.save()
    fresh = cache_api.get(f"/cached/authors/{author.pk}/")
    assert fresh["X-Cache"] == "MISS" and fresh.json()["data"]["name"] == "b"
    assert cache_api.get("/cached/authors/").json()["docs"][0]["name"] == "b"


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_writes_through_a_proxy_and_a_to_field_join_invalidate(cache_api):
    CodeThing.objects.create(code="a b", name="n")
    rack = Rack.objects.create(label="L/1", room="r")
    RackItem.objects.create(rack=rack, name="i")
    hit(cache_api, "/cached/codes/a%20b/")
    hit(cache_api, "/cached/items/?rack__room=r")
    cache_api.patch("/shapes/code-proxies/a%20b/", {"name": "m"}, format="json")
    assert cache_api.get("/cached/codes/a%20b/").json()["data"]["name"] == "m"
    rack.room = "q"
    rack.save()
    assert cache_api.get("/cached/items/?rack__room=r").json()["total"] == 0


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_save_through_an_unmanaged_model_over_a_table_cached_answers_read_invalidates(
    cache_api,
):
    """The cached items are filtered through ``rack__room``: they read Rack's table, which
    no cached resource serves. A save through ``RackView`` (unmanaged, over that table)
    sent a signal no receiver heard: only models over the tables of *cached* models were
    connected, not over the tables cached answers read, and the items stayed stale."""
    rack = Rack.objects.create(label="L", room="r")
    RackItem.objects.create(rack=rack, name="i")
    hit(cache_api, "/cached/items/?rack__room=r")
    mirror = RackView.objects.get(pk=rack.pk)
    mirror.room = "q"
    mirror.save()
    fresh = cache_api.get("/cached/items/?rack__room=r")
    assert fresh["X-Cache"] == "MISS" and fresh.json()["total"] == 0


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_save_of_the_parent_of_a_multi_table_model_cached_answers_read_invalidates(
    cache_api,
):
    """The cached tags are filtered through ``dog__name``: they read Dog's rows, whose
    ``name`` is in its parent Animal's table. A save through Animal (its admin, a shell, a
    resource over Animal) writes that row with no signal of Dog's, and no receiver heard
    Animal's: the models cached answers read were connected, not their parents (as a
    cached model's own parents are), and the tags stayed stale."""
    dog = Dog.objects.create(name="rex")
    DogTag.objects.create(dog=dog, label="t")
    hit(cache_api, "/cached/dog-tags/?dog__name=rex")
    animal = Animal.objects.get(pk=dog.pk)
    animal.name = "max"
    animal.save()
    fresh = cache_api.get("/cached/dog-tags/?dog__name=rex")
    assert fresh["X-Cache"] == "MISS" and fresh.json()["total"] == 0


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db(transaction=True)
def test_the_signals_of_one_write_bump_the_same_versions_once(cache_api, monkeypatch):
    """The cached tags read Dog's and Animal's rows. Deleting a dog deletes its Animal row
    too, and Django sends a ``post_delete`` for each: two bumps of the same versions, two
    Redis round trips, for one write; a bulk create of dogs (saved one by one) sent one
    per row. A bump already waiting for the same commit is not registered again."""
    from django_arc.querycache.store import QueryCacheStore

    bumps = []
    real = QueryCacheStore._bump
    monkeypatch.setattr(
        QueryCacheStore,
        "_bump",
        lambda self, redis, keys: (bumps.append(1), real(self, redis, keys)),
    )
    items = [{"name": "rex"}, {"name": "rex"}, {"name": "b"}]
    r = cache_api.post("/shapes/dogs/bulk/", {"items": items}, format="json")
    assert r.status_code == 201, r.content
    assert len(bumps) == 1
    dog = Dog.objects.order_by("pk").first()
    DogTag.objects.create(dog=dog, label="t")
    hit(cache_api, "/cached/dog-tags/?dog__name=rex")
    bumps.clear()
    assert cache_api.delete(f"/shapes/dogs/{dog.pk}/").status_code == 200
    assert len(bumps) == 1
    fresh = cache_api.get("/cached/dog-tags/?dog__name=rex")
    assert fresh["X-Cache"] == "MISS" and fresh.json()["total"] == 0
    # a bump registered in a savepoint rolled back since is gone: the next write's is not
    # dropped as a repeat of it
    other = Dog.objects.get(name="b")
    DogTag.objects.create(dog=other, label="u")
    hit(cache_api, "/cached/dog-tags/?dog__name=b")
    with transaction.atomic():
        try:
            with transaction.atomic():
                Animal.objects.filter(pk=other.pk).get().save()
                raise RuntimeError
        except RuntimeError:
            pass
        animal = Animal.objects.get(pk=other.pk)
        animal.name = "c"
        animal.save()
    fresh = cache_api.get("/cached/dog-tags/?dog__name=b")
    assert fresh["X-Cache"] == "MISS" and fresh.json()["total"] == 0


def test_fields_drf_makes_read_only_are_refused_like_read_only_fields(settings):
    """DRF's ``ModelSerializer`` makes a field read-only by itself when the model says so
    (``auto_now``/``auto_now_add``, ``editable=False``, an ``AutoField``): a body naming one
    was dropped without a word (200, the value ignored), where a field named in
    ``read_only_fields`` is 403 ``FIELD_WRITE_DENIED``. Both are never writable from a body
    now and answered alike: refused under ``reject``, dropped under ``strip``."""
    author = AuthorFactory()

    class Stamped(Resource):
        model = Book
        name = "stamped"
        fields = ["id", "title", "isbn", "author", "created_at"]
        permissions = PUBLIC

    class Edited(Resource):
        model = Article
        name = "edited"
        fields = ["id", "slug", "title", "edited_at"]
        permissions = PUBLIC

    class StrippedStamped(Stamped):
        name = "stripped-stamped"
        on_field_write_denied = "strip"

    class IsbnFixed(serializers.ModelSerializer):
        class Meta:
            model = Book
            fields = ["id", "title", "isbn", "author"]
            read_only_fields = ["isbn"]

    class Declared(Resource):
        model = Book
        name = "declared"
        serializer_class = IsbnFixed
        permissions = PUBLIC

    site = ResourceSite(name="stamps")
    try:
        for resource in (Stamped, Edited, StrippedStamped, Declared):
            site.register(resource)
        with site_mounted(settings, "st", site):
            api = client_for()
            body = {"title": "t", "isbn": "1", "author": author.pk}
            r = api.post(
                "/st/stamped/", {**body, "created_at": "2001-01-01T00:00:00Z"}, format="json"
            )
            assert r.status_code == 403, r.content
            assert r.json()["code"] == "FIELD_WRITE_DENIED"
            assert r.json()["details"] == {"fields": ["created_at"]}
            assert not Book.objects.exists()
            book = api.post("/st/stamped/", body, format="json").json()["data"]
            r = api.patch(
                f"/st/stamped/{book['id']}/", {"created_at": "2001-01-01T00:00:00Z"}, format="json"
            )
            assert r.status_code == 403 and r.json()["details"] == {"fields": ["created_at"]}
            r = api.post(
                "/st/edited/", {"slug": "s", "title": "t", "edited_at": None}, format="json"
            )
            assert r.status_code == 403 and r.json()["details"] == {"fields": ["edited_at"]}
            r = api.post(
                "/st/stripped-stamped/",
                {**body, "isbn": "2", "created_at": "2001-01-01T00:00:00Z"},
                format="json",
            )
            assert r.status_code == 201 and r.json()["data"]["created_at"] > "2002"
            # a project serializer's own read-only field: the same answer
            r = api.patch(f"/st/declared/{book['id']}/", {"isbn": "9"}, format="json")
            assert r.status_code == 403 and r.json()["details"] == {"fields": ["isbn"]}
            r = api.patch(f"/st/declared/{book['id']}/", {"title": "u"}, format="json")
            assert r.status_code == 200, r.content
            assert Book.objects.get(pk=book["id"]).isbn == "1"
    finally:
        _all_sites.remove(site)


def test_a_model_attribute_the_generated_serializer_renders_is_refused_in_a_body(settings):
    """A model property or method named in ``fields`` (``__str__``,
    ``get_status_display``) is rendered by DRF's ``ReadOnlyField``: a body naming it was
    dropped without a word (201), where ``created_at``, read-only too, is 403 since
    a144233. It is refused alike under ``reject``, dropped under ``strip``."""
    author = AuthorFactory()

    class Shown(Resource):
        model = Book
        name = "shown"
        fields = ["id", "title", "isbn", "author", "__str__"]
        permissions = PUBLIC

    class StrippedShown(Shown):
        name = "stripped-shown"
        on_field_write_denied = "strip"

    site = ResourceSite(name="shown")
    try:
        for resource in (Shown, StrippedShown):
            site.register(resource)
        with site_mounted(settings, "sh", site):
            api = client_for()
            body = {"title": "t", "isbn": "1", "author": author.pk, "__str__": "x"}
            r = api.post("/sh/shown/", body, format="json")
            assert r.status_code == 403, r.content
            assert r.json()["details"] == {"fields": ["__str__"]}
            assert not Book.objects.exists()
            r = api.post("/sh/stripped-shown/", body, format="json")
            assert r.status_code == 201, r.content
            assert r.json()["data"]["__str__"] == "t"
    finally:
        _all_sites.remove(site)


def test_a_model_property_or_method_in_fields_passes_the_checks():
    """``fields`` may name a model property or method (``__str__``, ``get_…_display``), which
    the generated serializer renders read-only (docs/query-cache.md keys such entries by
    language; d5d7a48 refuses them in a body), but arc.E001 read every name as a model
    field: ``manage.py check`` refused the resource as naming an "unknown field". Names
    that are no property or method of the model's still are: a typo, a manager, a reverse
    accessor DRF would build a relation for, Django's own ``delete()`` (DRF calls a method
    taking no argument to render it)."""

    def shown(*extra):
        return type(
            "Shown",
            (Resource,),
            {"model": Book, "name": "shown", "fields": ["id", "title", *extra]},
        )()

    assert check_resource(shown("__str__")) == []
    for name in ("titel", "objects", "DoesNotExist", "_meta"):
        assert [(e.id, e.msg) for e in check_resource(shown(name))] == [
            ("arc.E001", f"`fields` names unknown field '{name}' of Book.")
        ]
    for name in ("delete", "save"):
        assert [(e.id, e.msg) for e in check_resource(shown(name))] == [
            (
                "arc.E001",
                f"`fields` names '{name}', which Django's Model defines, not a field of "
                "Book: DRF would call it to render the row.",
            )
        ]
    assert [(e.id, e.msg) for e in check_resource(shown("pk"))] == [
        (
            "arc.E001",
            "`fields` names 'pk', Django's alias of Book's primary key: name the field, 'id'.",
        )
    ]
    note = type(
        "Noted",
        (Resource,),
        {"model": Organization, "name": "noted", "fields": ["id", "note_set"]},
    )()
    assert [e.id for e in check_resource(note)] == ["arc.E001"]
    # the attribute is refused in a body, never a relation DRF builds
    assert shown("__str__").drf_read_only == {"id", "__str__"}


def test_pk_in_the_query_settings_is_named_as_the_primary_keys_alias():
    """arc.E001 names ``pk`` in ``fields`` as Django's alias of the primary key; its twins
    in ``filter_fields`` (E002), ``sort_fields`` and ``default_sort`` (E004) still called it
    an "unknown field", though the model has it (``default_sort = "-pk"`` is how a project
    writes newest first). They now name the field to write instead."""

    def shown(**attrs):
        attrs = {"model": Book, "name": "shown", "fields": ["id", "title"], **attrs}
        return [(e.id, e.msg) for e in check_resource(type("Shown", (Resource,), attrs)())]

    alias = "names 'pk', Django's alias of Book's primary key: name the field, 'id'."
    assert shown(filter_fields={"pk": ["eq"]}) == [("arc.E002", f"`filter_fields` {alias}")]
    assert shown(sort_fields=["pk"]) == [("arc.E004", f"`sort_fields` {alias}")]
    assert shown(default_sort="-pk") == [("arc.E004", f"`default_sort` {alias}")]
    assert shown(sort_fields=["titel"]) == [
        ("arc.E004", "`sort_fields` names unknown field 'titel'.")
    ]


@isolate_apps("tests.testapp")
def test_what_django_model_defines_is_refused_in_fields_even_overridden():
    """``query.model_attribute`` judged a name by the first class defining it: a project's
    own ``save``/``delete`` override (``def save(self, *args, **kwargs)``, as most projects
    write it) passed arc.E001, and DRF would call ``delete()`` to render it; a method of a
    model Django ships (``AbstractUser.get_full_name``) was refused as an unknown field and
    not counted read-only. Now what ``Model`` defines is refused, overridden or not, and
    anything else the model answers is the row's."""
    from django.contrib.auth.models import User

    class Saving(models.Model):
        title = models.CharField(max_length=10)

        class Meta:
            app_label = "testapp"

        def save(self, *args, **kwargs):
            return super().save(*args, **kwargs)

        def delete(self, *args, **kwargs):
            return super().delete(*args, **kwargs)

        def full_clean(self, *args, **kwargs):
            return super().full_clean(*args, **kwargs)

    def shown(model, *extra):
        attrs = {"model": model, "name": "shown", "fields": ["id", *extra]}
        return type("Shown", (Resource,), attrs)()

    for name in ("save", "delete", "full_clean"):
        assert [(e.id, e.msg) for e in check_resource(shown(Saving, name))] == [
            (
                "arc.E001",
                f"`fields` names '{name}', which Django's Model defines, not a field of "
                "Saving: DRF would call it to render the row.",
            )
        ]
    assert check_resource(shown(User, "get_full_name")) == []
    assert shown(User, "get_full_name").drf_read_only == {"id", "get_full_name"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00", "Object with label=a\x00 does not exist."),
        ("\ud800", "Invalid value."),
        ("zz", "Object with label=zz does not exist."),
    ],
    ids=["NUL", "surrogate", "no such label"],
)
def test_a_to_field_relation_refuses_a_value_no_database_can_match(api, settings, value, message):
    """A relation by a unique non-pk field (``to_field``, DRF's ``SlugRelatedField``) looked
    a value holding a NUL character up as it came: PostgreSQL refuses to compare it, a 500.
    It is no row, refused as DRF refuses a label no row has (SQLite's answer too)."""
    Rack.objects.create(label="a")
    body = json.dumps({"rack": value, "name": "n"})
    with site_mounted(settings, "shapes", shapes):
        response = api.post("/shapes/rack-items/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["details"] == {"rack": [message.replace("\ud800", "\ufffd")]}
    assert not RackItem.objects.exists()


def test_a_path_ending_in_pk_is_named_by_the_related_primary_keys_field():
    """``pk`` in the query settings is named as the primary key's alias; a path ending in
    it through a relation (``author__pk``), which Django's ORM reads as well, was only an
    "unknown field", with no word of what to write instead. It is refused still, as
    django-filter's ``Meta.fields`` refuses it (a second spelling of one filter), and now
    named by the field (``author__id``), or in ``filter_fields`` by the relation itself
    (``author``, filtered by the related row's id) where the foreign key points at that
    primary key; ``author__id`` is accepted as it was."""

    def shown(model=Book, **attrs):
        attrs = {"model": model, "name": "shown", "fields": ["id"], **attrs}
        return [(e.id, e.msg) for e in check_resource(type("Shown", (Resource,), attrs)())]

    alias = "names 'author__pk', Django's alias of Author's primary key: name the field, "
    assert shown(filter_fields={"author__pk": ["eq", "in"]}) == [
        (
            "arc.E002",
            f"`filter_fields` {alias}'author__id', or the relation, 'author', which filters by it.",
        )
    ]
    assert shown(sort_fields=["author__pk"]) == [
        ("arc.E004", f"`sort_fields` {alias}'author__id'.")
    ]
    assert shown(default_sort="-author__pk") == [
        ("arc.E004", f"`default_sort` {alias}'author__id'.")
    ]
    # a relation onto another field (``to_field``) filters by that field, not the pk
    assert shown(RackItem, filter_fields={"rack__pk": ["eq"]}) == [
        (
            "arc.E002",
            "`filter_fields` names 'rack__pk', Django's alias of Rack's primary key: name "
            "the field, 'rack__id'.",
        )
    ]
    # through a reverse relation
    assert shown(Author, filter_fields={"books__pk": ["eq"]}) == [
        (
            "arc.E002",
            "`filter_fields` names 'books__pk', Django's alias of Book's primary key: name "
            "the field, 'books__id'.",
        )
    ]
    # to a primary key not named ``id`` (a multi-table child's)
    assert shown(DogTag, filter_fields={"dog__pk": ["eq"]}) == [
        (
            "arc.E002",
            "`filter_fields` names 'dog__pk', Django's alias of Dog's primary key: name the "
            "field, 'dog__animal_ptr', or the relation, 'dog', which filters by it.",
        )
    ]
    assert shown(filter_fields={"author__id": ["eq", "in"], "author": ["eq"]}) == []
    # a path that is no relation, or names no field, stays unknown
    assert shown(filter_fields={"title__pk": ["eq"]}) == [
        ("arc.E002", "`filter_fields` names unknown field 'title__pk'.")
    ]
    assert shown(filter_fields={"author__nmae": ["eq"]}) == [
        ("arc.E002", "`filter_fields` names unknown field 'author__nmae'.")
    ]


def test_a_sorted_path_ending_in_pk_across_a_to_many_relation_is_named_as_one():
    """``books__pk`` in the sorting settings was named by its field, ``books__id``, which
    the same check then refuses (a to-many path cannot be sorted): the hint sent the
    project from one error to another. It is refused as the path it is, crossing a
    to-many relation; in ``filter_fields``, where ``books__id`` is accepted, it is named by
    the field as before."""

    def shown(**attrs):
        attrs = {"model": Author, "name": "shown", "fields": ["id"], **attrs}
        return [(e.id, e.msg) for e in check_resource(type("Shown", (Resource,), attrs)())]

    for setting, value, field in (
        ("sort_fields", ["books__pk"], ["books__id"]),
        ("default_sort", "-books__pk", "-books__id"),
    ):
        assert shown(**{setting: value}) == [
            (
                "arc.E004",
                f"'books__pk' crosses a to-many relation and cannot be sorted (`{setting}`): "
                "a row would be listed once per related row.",
            )
        ], setting
        assert shown(**{setting: field})[0][1].startswith("'books__id' crosses a to-many relation")
    assert shown(filter_fields={"books__pk": ["eq"]}) == [
        (
            "arc.E002",
            "`filter_fields` names 'books__pk', Django's alias of Book's primary key: name "
            "the field, 'books__id'.",
        )
    ]
    assert shown(filter_fields={"books__id": ["eq"]}) == []
