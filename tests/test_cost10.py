"""cost10: what a query-cache HIT spends inside the query cache, and the gaps found on the way.

- a model class nested in another (``Outer.Inner``) is written into the queryset fingerprint
  by its names, as a module-level one is, instead of compiling its SQL on every HIT;
- the fingerprint's seeded table numbers each object once, whatever names it is listed under;
- a HIT asks each preset's ``row_filter`` once, not once for the key and again for the models
  it reads; the table-to-model map a preset adding a table is checked against is kept until
  a model is registered;
- the fingerprint of a queryset as a manager hands it out is remembered (its pickle depends
  on its database, model and prefetch paths alone).
"""

from __future__ import annotations

import importlib
import io
import pickle
import pickletools
import warnings
from typing import ClassVar

import pytest
from django.db import models
from django.db.models import Prefetch, Q, Value
from django.test.utils import isolate_apps

from django_arc import Resource, ResourceSite
from django_arc import permissions as P
from django_arc.presets.base import Preset
from django_arc.querycache import keys
from django_arc.querycache.keys import queryset_fingerprint
from django_arc.sites import _all_sites
from tests.factories import BookFactory
from tests.helpers import client_for, site_mounted
from tests.redis_support import REDIS_URL, query_cache_on_redis
from tests.testapp.models import Author, Book


class Cost10Outer:
    """Holds model classes as a class body would nest them (``Cost10Outer.Inner``)."""


def _cost10_nested(table: str, attribute: str = "Inner") -> type[models.Model]:
    """A model class of this module nested in :class:`Cost10Outer` as ``attribute``, as a
    class statement in its body makes one (``__qualname__`` ``Cost10Outer.Inner``)."""

    with warnings.catch_warnings():
        # every call registers a model named Inner: the later replaces the earlier
        warnings.simplefilter("ignore", RuntimeWarning)

        class Inner(models.Model):
            name = models.CharField(max_length=10)

            class Meta:
                app_label = "testapp"
                managed = False
                db_table = table

    Inner.__qualname__ = f"Cost10Outer.{attribute}"
    setattr(Cost10Outer, attribute, Inner)
    return Inner


def _no_compiling(queryset):
    raise AssertionError("the fingerprint compiled the SQL")


@isolate_apps("tests.testapp")
def test_cost10_a_nested_model_is_fingerprinted_without_compiling_its_sql(monkeypatch):
    inner = _cost10_nested("cost10_inner")
    other = _cost10_nested("cost10_other", "Other")
    try:
        monkeypatch.setattr(keys, "_compiled", _no_compiling)
        rows = inner.objects.filter(name="x")
        assert queryset_fingerprint(rows) == queryset_fingerprint(inner.objects.filter(name="x"))
        assert queryset_fingerprint(rows) != queryset_fingerprint(inner.objects.filter(name="y"))
        assert queryset_fingerprint(inner.objects.all()) != queryset_fingerprint(
            other.objects.all()
        )
    finally:
        del Cost10Outer.Inner, Cost10Outer.Other


@isolate_apps("tests.testapp")
def test_cost10_a_nested_name_holding_another_class_is_keyed_by_its_sql():
    """``Cost10Outer.Inner`` replaced by a class reading another table: the first class is
    no longer what its names find, so it cannot be written by them (it would share the
    replacement's key); it is keyed by its compiled SQL, and the two stay apart."""
    first = _cost10_nested("cost10_first")
    second = _cost10_nested("cost10_second")
    try:
        assert Cost10Outer.Inner is second
        assert first.__qualname__ == second.__qualname__
        assert queryset_fingerprint(first.objects.all()) != queryset_fingerprint(
            second.objects.all()
        )
        assert queryset_fingerprint(first.objects.all()) == queryset_fingerprint(
            first.objects.all()
        )
    finally:
        del Cost10Outer.Inner


def test_cost10_a_seeded_object_listed_twice_is_numbered_once(monkeypatch):
    """Two names of one object in the table: the memo must number the objects 0, 1, … with
    no number given twice, or what the pickler memoises next (numbered by the memo's size)
    takes a number a seeded object already has, and two different object graphs write the
    same bytes."""
    doubled = (*keys._SEEDED[:3], keys._SEEDED[0], *keys._SEEDED[3:])
    monkeypatch.setattr(keys, "_SEEDED", doubled)
    monkeypatch.setattr(keys, "_seed", None)
    memo, _ = keys._pickle_seed()
    table = memo.copy()  # the pickler's memo proxy, as a dict: id -> (number, object)
    assert sorted(number for number, _ in table.values()) == list(range(len(table)))
    assert len(table) == len(keys._SEEDED) - 1
    # a value the table does not hold, memoised after the seeded ones, is read back by the
    # number it was given, not by a seeded object's
    buffer = io.BytesIO()
    pickler = keys._QueryPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.memo = memo
    value = ("not seeded", 1)
    pickler.dump([value, value])
    gets = [arg for op, arg, _ in pickletools.genops(buffer.getvalue()) if "GET" in op.name]
    assert gets == [len(table) + 2]  # after the list and the string: the tuple's number


def test_cost10_the_seeded_table_lists_no_object_twice():
    """The table shipped: each name resolves to its own object (on Django 4.2 and 5.2)."""
    found = [getattr(importlib.import_module(m), n) for m, n in keys._SEEDED]
    assert len({id(value) for value in found}) == len(found)


# -- a HIT asks each preset's row_filter once --------------------------------------------------


@pytest.fixture
def cost10_redis():
    """The query cache on Redis under a prefix of this test's own."""
    if not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    with query_cache_on_redis() as config:
        yield config


class Cost10CountingPreset(Preset):
    """A project's preset narrowing rows by a column of the model itself, counting how often
    it is asked."""

    name = "cost10_counting"
    asked: ClassVar[list[str]] = []

    def row_filter(self, view):
        Cost10CountingPreset.asked.append(view.action)
        return Q(title__startswith="D")


class Cost10CountedBookResource(Resource):
    model = Book
    name = "cost10-counted-books"
    fields = ["id", "title"]
    presets = [Cost10CountingPreset()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}
    cache = {"stale_seconds": 30}


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_cost10_a_hit_asks_each_presets_row_filter_once(settings, cost10_redis):
    """A HIT built the queryset it keys (the presets' ``row_filter`` asked once) and then
    asked every preset again which models its condition reads: each hook ran twice per
    request. Asked once now, the answers the same (the condition's rows, a HIT)."""
    dune = BookFactory(title="Dune")
    BookFactory(title="Emma")
    anon = client_for(None)
    site = ResourceSite(name="cost10-counted")
    site.register(Cost10CountedBookResource)
    try:
        with site_mounted(settings, "c10", site):
            for path in ("/c10/cost10-counted-books/", f"/c10/cost10-counted-books/{dune.pk}/"):
                anon.get(path)
                Cost10CountingPreset.asked.clear()
                hit = anon.get(path)
                assert hit.status_code == 200 and hit["X-Cache"] == "HIT", hit.content
                assert len(Cost10CountingPreset.asked) == 1, Cost10CountingPreset.asked
            listed = anon.get("/c10/cost10-counted-books/").json()["docs"]
            assert [row["title"] for row in listed] == ["Dune"]
    finally:
        _all_sites.remove(site)


def test_cost10_the_table_map_follows_models_registered_later():
    """The map of tables to models is kept between requests and rebuilt when a model is
    registered: a table whose model comes later (a factory's, a test's) is found."""
    from django.apps import apps

    from django_arc.querycache.invalidation import _models_by_table

    assert "cost10_late" not in _models_by_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)

        class Cost10Late(models.Model):
            class Meta:
                app_label = "testapp"
                managed = False
                db_table = "cost10_late"

    try:
        assert _models_by_table()["cost10_late"] is Cost10Late
    finally:
        del apps.all_models["testapp"]["cost10late"]
        apps.clear_cache()
    assert "cost10_late" not in _models_by_table()


# -- a manager's untouched queryset: its fingerprint remembered --------------------------------


def test_cost10_an_untouched_querysets_fingerprint_is_its_pickles_remembered(monkeypatch):
    """``Author.objects.all()`` pickles to the same bytes on every request: the first
    fingerprint is remembered (the same digest the pickle gives) and the next ones pickle
    nothing."""
    monkeypatch.setattr(keys, "_untouched", {})
    rows = Author.objects.all()
    pickled = keys._pickled_fingerprint(rows, (rows.db, rows.query, rows._prefetch_related_lookups))
    assert queryset_fingerprint(rows) == pickled

    def dump(self, obj):
        raise AssertionError("pickled again")

    monkeypatch.setattr(keys._QueryPickler, "dump", dump)
    assert queryset_fingerprint(Author.objects.all()) == pickled


@pytest.mark.parametrize(
    "touched",
    [
        lambda: Author.objects.filter(name="x"),
        lambda: Author.objects.exclude(name="x"),
        lambda: Author.objects.order_by("-name"),
        lambda: Author.objects.all()[:5],
        lambda: Author.objects.only("name"),
        lambda: Author.objects.values("name"),
        lambda: Author.objects.annotate(v=Value(1)),
        lambda: Author.objects.distinct(),
        lambda: Author.objects.none(),
        lambda: Author.objects.using("routed"),
        lambda: Author.objects.prefetch_related("books"),
        lambda: Author.objects.prefetch_related(Prefetch("books", Book.objects.filter(pk=0))),
        lambda: Book.objects.select_related("author"),
        lambda: Book.objects.all(),
    ],
)
def test_cost10_a_queryset_touched_in_any_way_is_not_the_untouched_ones(monkeypatch, touched):
    """Remembered or not, every queryset that may run other SQL keeps its own fingerprint:
    the untouched one's, remembered first, is never handed to another."""
    monkeypatch.setattr(keys, "_untouched", {})
    untouched = queryset_fingerprint(Author.objects.all())
    assert queryset_fingerprint(Author.objects.all()) == untouched  # remembered
    queryset = touched()
    fingerprint = queryset_fingerprint(queryset)
    assert fingerprint != untouched
    # and the same as the pickle gives, whether this one was remembered or not
    assert fingerprint == keys._pickled_fingerprint(
        queryset, (queryset.db, queryset.query, queryset._prefetch_related_lookups)
    )


def test_cost10_a_compiled_querysets_state_is_not_taken_for_untouched(monkeypatch):
    """A queryset whose query was compiled holds what compiling cached on it: it is pickled
    as before, not taken for the untouched one."""
    monkeypatch.setattr(keys, "_untouched", {})
    rows = Author.objects.all()
    str(rows.query)  # compiles it (caches base_table on the query)
    assert keys._untouched_key(rows.db, rows.query, rows._prefetch_related_lookups) is None


@isolate_apps("tests.testapp")
def test_cost10_an_untouched_queryset_of_a_replaced_class_is_kept_apart(monkeypatch):
    """A class remembered while its module held it, then replaced under its name by one
    reading another table: the first is no longer what its names find, and is not served
    the remembered fingerprint, nor the replacement's."""
    monkeypatch.setattr(keys, "_untouched", {})
    first = _cost10_nested("cost10_first")
    try:
        remembered = queryset_fingerprint(first.objects.all())
        second = _cost10_nested("cost10_second")
        assert queryset_fingerprint(second.objects.all()) != queryset_fingerprint(
            first.objects.all()
        )
        assert queryset_fingerprint(first.objects.all()) != remembered
    finally:
        del Cost10Outer.Inner
