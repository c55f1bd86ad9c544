"""The queryset fingerprint a cached answer's key holds (``keys.queryset_fingerprint``): the
classes and functions a query is made of are written as references into a table every
process builds alike (cost7), not by name. What must hold whatever the encoding: querysets
that may return other rows, columns or order never share a fingerprint, one queryset built
twice shares one, and two processes running the same code agree (the key is shared in Redis
by every worker)."""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import subprocess
import sys

import pytest
from django.db.models import Value

from django_arc.querycache import keys
from django_arc.querycache.keys import queryset_fingerprint
from tests.testapp.models import Author, Book, Species


def _cost7_pairs():
    """Pairs of querysets that differ in one thing each, any of which may change the rows,
    their columns or their order."""
    return {
        "lookup class": (
            Author.objects.filter(name__exact="x"),
            Author.objects.filter(name__iexact="x"),
        ),
        "lookup class (contains)": (
            Author.objects.filter(name__contains="x"),
            Author.objects.filter(name__icontains="x"),
        ),
        "value 1 / '1'": (
            Author.objects.annotate(v=Value(1)),
            Author.objects.annotate(v=Value("1")),
        ),
        "value 1 / True": (
            Author.objects.annotate(v=Value(1)),
            Author.objects.annotate(v=Value(True)),
        ),
        "value '1' / True": (
            Author.objects.annotate(v=Value("1")),
            Author.objects.annotate(v=Value(True)),
        ),
        "model": (Author.objects.filter(name="x"), Species.objects.filter(name="x")),
        "ordering direction": (Author.objects.order_by("name"), Author.objects.order_by("-name")),
        "only": (Book.objects.all(), Book.objects.only("title")),
        "only / defer": (Book.objects.only("title"), Book.objects.defer("title")),
        "select_related": (Book.objects.all(), Book.objects.select_related("author")),
        "database": (
            Author.objects.filter(name="x"),
            Author.objects.filter(name="x").using("routed"),
        ),
    }


@pytest.mark.parametrize("case", sorted(_cost7_pairs()))
def test_cost7_querysets_differing_in_one_thing_have_other_fingerprints(case):
    first, second = _cost7_pairs()[case]
    assert queryset_fingerprint(first) != queryset_fingerprint(second)


def test_cost7_one_queryset_built_twice_has_one_fingerprint():
    def build():
        return (
            Book.objects.filter(title__icontains="a", pages__gte=3)
            .select_related("author")
            .order_by("-published", "id")
            .only("title", "author__name")
            .annotate(v=Value("1"))[:20]
        )

    assert queryset_fingerprint(build()) == queryset_fingerprint(build())
    assert queryset_fingerprint(build()) == queryset_fingerprint(build().all())


def test_cost7_a_query_pickles_no_class_by_name():
    """The query's classes (``Query``, ``WhereNode``, the lookups, the field loader, a
    ``Decimal``) are references into the seeded table and its models are written by their
    names as strings: the pickler imports no module to write a class by name."""
    rows = Book.objects.filter(title__icontains="a", price__gte="3.5").select_related("author")
    buffer = io.BytesIO()
    pickler = keys._QueryPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.memo = keys._pickle_seed()[0]
    pickler.dump((rows.db, rows.query, rows._prefetch_related_lookups))
    named = [op.name for op, _, _ in pickletools.genops(buffer.getvalue()) if "GLOBAL" in op.name]
    assert named == []


def test_cost7_the_seeded_table_is_part_of_the_fingerprint(monkeypatch):
    """Two processes whose tables differ (another release, other models) read the same bytes
    as other classes: their fingerprints must differ, not collide."""
    rows = Author.objects.filter(name="x")
    memo, digest = keys._pickle_seed()
    before = queryset_fingerprint(rows)
    monkeypatch.setattr(keys, "_seed", (memo, bytes(16)))
    assert queryset_fingerprint(rows) != before
    monkeypatch.setattr(keys, "_seed", (memo, digest))
    assert queryset_fingerprint(rows) == before


def _cost7_make_model(table):
    """Two calls make two model classes of one module and qualified name
    (``_cost7_make_model.<locals>.Cost7Made``) reading other tables."""
    from django.db import models

    class Cost7Made(models.Model):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "testapp"
            managed = False
            db_table = table

    return Cost7Made


def test_cost7_models_of_one_name_reading_other_tables_are_kept_apart():
    """A model class is written by its module and qualified name only when its module holds
    it under that name; one a factory made is not, and is keyed by its compiled SQL (as
    pickling it by name did): two such classes reading two tables never share a key."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # the second registration replaces the first
        first = _cost7_make_model("cost7_first")
        second = _cost7_make_model("cost7_second")
    assert first.__qualname__ == second.__qualname__
    # unfiltered: the query holds no table alias yet, only the model names the table
    one, other = first.objects.all(), second.objects.all()
    assert queryset_fingerprint(one) != queryset_fingerprint(other)
    assert queryset_fingerprint(one) == queryset_fingerprint(first.objects.all())
    assert queryset_fingerprint(one) != queryset_fingerprint(Author.objects.all())


_COST7_CHILD = """
import django, json
django.setup()
from django.db.models import Value
from django_arc.querycache.keys import queryset_fingerprint
from tests.testapp.models import Book
rows = (Book.objects.filter(title__icontains="a", price__gte="3.5").select_related("author")
        .order_by("-published").only("title").annotate(v=Value(True))[:20])
print(json.dumps([queryset_fingerprint(rows), queryset_fingerprint(rows.using("routed"))]))
"""


def test_cost7_two_fresh_processes_agree_on_a_fingerprint():
    """Every worker shares the entries in Redis: the table is built from names, not ids or
    import order, so two processes (different hash seeds) give the same fingerprints, and
    the same as this one."""
    answers = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
        # the child imports what this process imports (pytest's ``pythonpath`` puts the
        # example project's apps on ``sys.path``, not in the environment)
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        done = subprocess.run(
            [sys.executable, "-c", _COST7_CHILD],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        answers.append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = (
        Book.objects.filter(title__icontains="a", price__gte="3.5")
        .select_related("author")
        .order_by("-published")
        .only("title")
        .annotate(v=Value(True))[:20]
    )
    assert (
        answers[0]
        == answers[1]
        == [queryset_fingerprint(rows), queryset_fingerprint(rows.using("routed"))]
    )
    assert answers[0][0] != answers[0][1]
