"""Hypothesis stateful test of the query cache over relations (SPEC §11): answers that read
the rows of other models — a rendered reverse foreign key (a shelf's ``items``), a many-to-many
relation rendered from either side (an item's ``tags``, a tag's ``items``), filter, sort and
search paths through relations (``shelf__name``, ``tags__name``, ``items__shelf__name``) —
while those other models are written in every way a project writes them: ``save()``,
``delete()``, cascades (a shelf takes its items, and they their many-to-many rows, without
``m2m_changed``), ``add``/``remove``/``clear``/``set`` from either side, ``QuerySet.update``
(and a delete of the many-to-many table's rows) followed by the documented
``invalidate(Model)``, and the API's own routes on the cached resources and their uncached
twins.

The invariant of ``test_query_cache_stateful``: every cached answer is byte for byte what the
same caller (two tenants, an admin who sees ``note`` and a viewer who does not) gets from the
uncached twin at that moment.

The models live in an isolated app registry with tables of this test's own (as
``test_query_cache_invalidation``'s ``labels``), so no other test's flush looks for them.
Only lists are read: a cached get pickles its row, and a model of an isolated registry
cannot be pickled (gets share the lists' version tokens, so their invalidation is the same).
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from django.db import connection, models
from django.test import override_settings
from django.test.utils import isolate_apps
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from django_arc import Resource, presets, route
from django_arc import fields as F
from django_arc import permissions as P
from django_arc.querycache import invalidate
from tests.budget import examples
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.test_query_cache_invalidation import registered_site

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True),
]

CALLERS = ["a_admin", "a_viewer", "b_admin", "b_viewer"]
ADMINS = ["a_admin", "b_admin"]
NAMES = ["red", "blue", "green"]
TITLES = ["x", "y", "z"]
#: per resource, the queries read: relations rendered, and paths through them
QUERIES = {
    "items": [
        "",
        "?shelf__name=red",
        "?tags__name=blue",
        "?sort=-shelf__name",
        "?sort=shelf__name&limit=2&page=2",
        "?search=re",
        "?select=title,tags",
    ],
    "shelves": ["", "?items__title=x", "?items__box[exists]=true", "?sort=-name", "?search=y"],
    "tags": ["", "?items__shelf__name=red", "?items__title=y", "?sort=name&limit=2", "?search=z"],
}
#: read after every step, one caller in turn: entries that a write must retire
WATCHED = [
    ("items", ""),
    ("items", "?tags__name=red&sort=shelf__name"),
    ("shelves", "?items__title=x"),
    ("shelves", "?items__box[exists]=true"),
    ("tags", ""),
    ("tags", "?items__shelf__name=blue"),
]
MEMBERS = P.require_org_membership()
ADMIN = P.require_org_role("admin")
PERMISSIONS = {"list": MEMBERS, "get": MEMBERS, "create": ADMIN, "update": ADMIN, "delete": ADMIN}


def relation_models():
    """Shelves hold items (``CASCADE``), items carry tags (many-to-many) and may be in a box
    (``SET_NULL``: deleting a box updates the items, no signal of theirs); every row belongs
    to a tenant (``org``, the organization's id). Call inside ``isolate_apps``."""

    class Shelf(models.Model):
        org = models.IntegerField()
        name = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"
            ordering = ["pk"]

    class Tag(models.Model):
        org = models.IntegerField()
        name = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"
            ordering = ["pk"]

    class Box(models.Model):
        org = models.IntegerField()

        class Meta:
            app_label = "testapp"

    class Item(models.Model):
        org = models.IntegerField()
        title = models.CharField(max_length=20)
        note = models.CharField(max_length=20, default="n")
        shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE, related_name="items")
        tags = models.ManyToManyField(Tag, related_name="items", blank=True)
        box = models.ForeignKey(Box, on_delete=models.SET_NULL, null=True)

        class Meta:
            app_label = "testapp"
            ordering = ["pk"]

    return Shelf, Tag, Item, Box


@route("POST", "rename-all", permissions=ADMIN)
def rename_all(self, request, view):
    """Rename every shelf of the caller's tenant with ``QuerySet.update`` (no model signal:
    only the request seam tells the cache, and the items' answers read shelves' names)."""
    return {"updated": view.get_queryset().update(name=request.data["name"])}


def resources(Shelf, Tag, Item):  # noqa: N803 - model classes
    """A cached resource and its uncached twin per model (``c-`` and ``u-``)."""
    declarations = {
        "items": {
            "model": Item,
            "fields": ["id", "title", "note", "shelf", "tags", "box"],
            "field_permissions": {"note": F.visible_to("admin")},
            "filter_fields": {"shelf__name": ["eq"], "tags__name": ["eq"]},
            "sort_fields": ["shelf__name", "title"],
            "search_fields": ["title", "shelf__name"],
        },
        "shelves": {
            "model": Shelf,
            "fields": ["id", "name", "items"],
            "read_only_fields": ["items"],
            "filter_fields": {"items__title": ["eq"], "items__box": ["exists"]},
            "sort_fields": ["name"],
            "search_fields": ["items__title"],
            "rename_all": rename_all,
        },
        "tags": {
            "model": Tag,
            "fields": ["id", "name", "items"],
            "filter_fields": {"items__shelf__name": ["eq"], "items__title": ["eq"]},
            "sort_fields": ["name"],
            "search_fields": ["items__title"],
        },
    }
    made = []
    for name, attrs in declarations.items():
        for prefix, cache in (("c", {"stale_seconds": 30}), ("u", False)):
            body = {
                **attrs,
                "name": f"{prefix}-{name}",
                "cache": cache,
                "permissions": PERMISSIONS,
                "presets": [presets.MultiTenant(tenant_field="org")],
            }
            made.append(type(f"{prefix.upper()}{name.title()}Resource", (Resource,), body))
    return made


@pytest.fixture
def world(settings):
    """The models, their tables, the resources on a site of this test's own, and a client
    per caller."""
    with isolate_apps("tests.testapp"):
        Shelf, Tag, Item, Box = relation_models()  # noqa: N806 - model classes
    with connection.schema_editor() as editor:
        for model in (Shelf, Tag, Box, Item):
            editor.create_model(model)
    try:
        with (
            override_settings(CACHES=caches_with("redis", REDIS_URL)),
            override_settings(ARC=arc_with(CACHE={"ALIAS": "redis"})),
            registered_site("cached-relations-test", *resources(Shelf, Tag, Item)) as site,
            site_mounted(settings, "rel", site),
        ):
            orgs = {"a": OrganizationFactory(), "b": OrganizationFactory()}
            clients = {}
            for caller in CALLERS:
                org, role = caller.split("_")
                user = MembershipFactory(organization=orgs[org], role=role).user
                clients[caller] = client_for(user, HTTP_X_ORGANIZATION_ID=str(orgs[org].pk))
            yield {
                "Shelf": Shelf,
                "Tag": Tag,
                "Item": Item,
                "Box": Box,
                "orgs": orgs,
                "clients": clients,
            }
    finally:
        with connection.schema_editor() as editor:
            for model in (Item, Box, Tag, Shelf):
                editor.delete_model(model)


class RelationsMachine(RuleBasedStateMachine):
    world: dict = {}
    seen: Counter = Counter()
    counter = itertools.count()

    def __init__(self):
        super().__init__()
        w = self.world
        self.Shelf, self.Tag, self.Item, self.Box = w["Shelf"], w["Tag"], w["Item"], w["Box"]
        self.clients = w["clients"]
        self.steps = 0
        # every example starts from the same rows: two shelves, three tags, three items
        self.Shelf.objects.all().delete()  # its items, and their many-to-many rows
        self.Tag.objects.all().delete()
        self.Box.objects.all().delete()
        for org in self.orgs():
            red = self.Shelf.objects.create(org=org, name="red")
            blue = self.Shelf.objects.create(org=org, name="blue")
            tags = [self.Tag.objects.create(org=org, name=name) for name in NAMES]
            for i, (title, shelf) in enumerate(zip(TITLES, (red, blue, red), strict=True)):
                box = self.Box.objects.create(org=org) if i == 0 else None
                item = self.Item.objects.create(org=org, title=title, shelf=shelf, box=box)
                item.tags.set(tags[: i + 1])

    def orgs(self):
        return [org.pk for org in self.world["orgs"].values()]

    def org(self, caller):
        return self.world["orgs"][caller[0]].pk

    def pick(self, model, caller, n):
        """One of the caller's tenant's rows of ``model``, or ``None``."""
        rows = list(model.objects.filter(org=self.org(caller)).order_by("pk"))
        return rows[n % len(rows)] if rows else None

    def compare(self, caller, resource, query=""):
        client = self.clients[caller]
        path = f"{resource}/{query}"
        first = client.get(f"/rel/c-{path}")
        uncached = client.get(f"/rel/u-{path}")
        again = client.get(f"/rel/c-{path}")
        assert uncached.status_code == 200, (path, uncached.content)
        for cached in (first, again):
            assert cached.status_code == 200, (path, cached.content)
            assert cached.content == uncached.content, (caller, path, cached["X-Cache"])
            self.seen[cached["X-Cache"]] += 1

    # -- reads ---------------------------------------------------------------------------------

    @rule(data=st.data(), caller=st.sampled_from(CALLERS), resource=st.sampled_from(list(QUERIES)))
    def read_list(self, data, caller, resource):
        query = data.draw(st.sampled_from(QUERIES[resource]))
        self.compare(caller, resource, query)

    @invariant()
    def watched(self):
        caller = CALLERS[self.steps % len(CALLERS)]
        self.steps += 1
        for resource, query in WATCHED:
            self.compare(caller, resource, query)

    # -- writes outside any request: save, delete, cascades ------------------------------------

    @rule(caller=st.sampled_from(ADMINS), n=st.integers(0, 9), title=st.sampled_from(TITLES))
    def item_saved(self, caller, n, title):
        """A new item, or one renamed and moved to another shelf."""
        shelf = self.pick(self.Shelf, caller, n)
        if shelf is None:
            return
        item = self.pick(self.Item, caller, n) if n % 2 else None
        if item is None:
            item = self.Item(org=self.org(caller))
        item.title, item.shelf = title, shelf
        item.save()

    @rule(caller=st.sampled_from(ADMINS), n=st.integers(0, 9), one=st.booleans())
    def item_deleted(self, caller, n, one):
        """One, or a shelf's through ``QuerySet.delete()``: their many-to-many rows go with
        them (no ``m2m_changed``)."""
        item = self.pick(self.Item, caller, n)
        if item is not None and one:
            item.delete()
        elif item is not None:
            self.Item.objects.filter(shelf=item.shelf_id).delete()

    @rule(
        caller=st.sampled_from(ADMINS),
        model=st.sampled_from(["Shelf", "Tag"]),
        n=st.integers(0, 9),
        name=st.sampled_from(NAMES),
    )
    def renamed_or_created(self, caller, model, n, name):
        model = getattr(self, model)
        row = self.pick(model, caller, n) if n % 3 else None
        if row is None:
            row = model(org=self.org(caller))
        row.name = name
        row.save()

    @rule(
        caller=st.sampled_from(ADMINS), model=st.sampled_from(["Shelf", "Tag"]), n=st.integers(0, 9)
    )
    def deleted(self, caller, model, n):
        """A shelf's delete cascades to its items and their many-to-many rows; a tag's
        empties its many-to-many rows."""
        row = self.pick(getattr(self, model), caller, n)
        if row is not None:
            row.delete()

    @rule(caller=st.sampled_from(ADMINS), n=st.integers(0, 9), delete=st.booleans())
    def boxed(self, caller, n, delete):
        """An item put in a new box, or a box deleted (its items' ``box`` set to null)."""
        if delete:
            box = self.pick(self.Box, caller, n)
            if box is not None:
                box.delete()
            return
        item = self.pick(self.Item, caller, n)
        if item is not None:
            item.box = self.Box.objects.create(org=self.org(caller))
            item.save()

    # -- many-to-many, from either side ----------------------------------------------------------

    @rule(
        caller=st.sampled_from(ADMINS),
        from_tag=st.booleans(),
        op=st.sampled_from(["add", "remove", "clear", "set"]),
        n=st.integers(0, 9),
        m=st.integers(0, 9),
    )
    def linked(self, caller, from_tag, op, n, m):
        item, tag = self.pick(self.Item, caller, n), self.pick(self.Tag, caller, m)
        if item is None or tag is None:
            return
        manager, other = (tag.items, item) if from_tag else (item.tags, tag)
        if op == "clear":
            manager.clear()
        elif op == "set":
            manager.set([other])
        else:
            getattr(manager, op)(other)

    # -- QuerySet writes and the documented invalidate() -----------------------------------------

    @rule(caller=st.sampled_from(ADMINS), n=st.integers(0, 9), name=st.sampled_from(NAMES))
    def updated_and_invalidated(self, caller, n, name):
        org = self.org(caller)
        choice = n % 6
        if choice == 0:
            self.Shelf.objects.filter(org=org, name__in=["red", "blue"]).update(name=name)
            invalidate(self.Shelf)
        elif choice == 1:
            self.Tag.objects.filter(org=org, name__in=NAMES[: 1 + n % 3]).update(name=name)
            invalidate(self.Tag)
        elif choice == 2:
            shelf = self.pick(self.Shelf, caller, n)
            if shelf is not None:
                self.Item.objects.filter(org=org).update(shelf=shelf)
            invalidate(self.Item)
        elif choice == 3:
            # rows of the many-to-many table itself, which send no signal
            through = self.Item.tags.through
            through.objects.filter(tag__org=org, tag__name=name).delete()
            invalidate(through)
        elif choice == 4:
            through = self.Item.tags.through
            linked = set(through.objects.values_list("item_id", "tag_id"))
            rows = [
                through(item_id=item, tag_id=tag)
                for item in self.Item.objects.filter(org=org).values_list("pk", flat=True)
                for tag in self.Tag.objects.filter(org=org, name=name).values_list("pk", flat=True)
                if (item, tag) not in linked
            ]
            through.objects.bulk_create(rows)
            invalidate(through)
        else:
            shelf = self.pick(self.Shelf, caller, n)
            if shelf is not None:
                self.Item.objects.bulk_create([self.Item(org=org, title=name, shelf=shelf)])
            invalidate(self.Item)

    # -- writes through the API, on the cached resources and their uncached twins ----------------

    @rule(
        caller=st.sampled_from(ADMINS),
        prefix=st.sampled_from("cu"),
        n=st.integers(0, 9),
        write=st.sampled_from(["create", "move", "retag", "delete"]),
    )
    def item_api(self, caller, prefix, n, write):
        client, base = self.clients[caller], f"/rel/{prefix}-items/"
        item = self.pick(self.Item, caller, n)
        shelf, tag = self.pick(self.Shelf, caller, n), self.pick(self.Tag, caller, n)
        if write == "create" and shelf is not None:
            body = {"title": TITLES[n % 3], "shelf": shelf.pk, "tags": [tag.pk] if tag else []}
            response = client.post(base, body, format="json")
            assert response.status_code == 201, response.content
        elif item is None:
            return
        elif write == "move" and shelf is not None:
            response = client.patch(f"{base}{item.pk}/", {"shelf": shelf.pk}, format="json")
            assert response.status_code == 200, response.content
        elif write == "retag":
            tags = [tag.pk] if tag else []
            response = client.patch(f"{base}{item.pk}/", {"tags": tags}, format="json")
            assert response.status_code == 200, response.content
        elif write == "delete":
            assert client.delete(f"{base}{item.pk}/").status_code == 200

    @rule(
        caller=st.sampled_from(ADMINS),
        prefix=st.sampled_from("cu"),
        resource=st.sampled_from(["shelves", "tags"]),
        n=st.integers(0, 9),
        write=st.sampled_from(["rename", "relink", "delete", "rename-all"]),
    )
    def shelf_or_tag_api(self, caller, prefix, resource, n, write):
        client, base = self.clients[caller], f"/rel/{prefix}-{resource}/"
        if write == "rename-all" and resource == "shelves":
            body = {"name": NAMES[n % 3]}
            response = client.post(f"{base}rename-all/", body, format="json")
            assert response.status_code == 200, response.content
            return
        row = self.pick(self.Shelf if resource == "shelves" else self.Tag, caller, n)
        if row is None:
            return
        if write == "rename":
            body = {"name": NAMES[n % 3]}
        elif write == "relink" and resource == "tags":
            # a tag's items set from the tag's side
            item = self.pick(self.Item, caller, n)
            body = {"items": [item.pk] if item else []}
        elif write == "delete":
            assert client.delete(f"{base}{row.pk}/").status_code == 200
            return
        else:
            return
        response = client.patch(f"{base}{row.pk}/", body, format="json")
        assert response.status_code == 200, response.content


def test_every_cached_answer_over_relations_equals_the_uncached_one(world):
    RelationsMachine.world = world
    RelationsMachine.seen = Counter()
    run_state_machine_as_test(
        RelationsMachine,
        settings=settings(
            max_examples=examples(8),
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    # about 1,000 HITs and 700 MISSes: the answers compared were cached ones
    # both answers seen many times over, in proportion to the examples this run tries
    least = 300 * examples(8) // 8
    assert RelationsMachine.seen["HIT"] >= least, RelationsMachine.seen
    assert RelationsMachine.seen["MISS"] >= least, RelationsMachine.seen
