"""rev-fixes65: review of cost7 (the queryset fingerprint's seeded pickle) and cost8 (the
django-redis answer and the ``Allow`` header kept between requests)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import CharField, Func

from django_arc.querycache.keys import queryset_fingerprint
from tests.budget import examples
from tests.testapp.models import Oddity


def _rf65_unpicklable_rows(value: dict) -> object:
    """Oddity rows holding ``value`` in ``data``, annotated with a function class made in
    a function (as a project's ``get_queryset`` may): its query cannot be pickled by name,
    so it is fingerprinted by its compiled SQL and parameters."""

    class Rf65Upper(Func):
        function = "UPPER"
        output_field = CharField()

    return Oddity.objects.filter(data__contains=value).annotate(shout=Rf65Upper("code"))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's JSON adapter")
def test_rf65_the_compiled_fallback_keeps_long_json_values_apart():
    """The fallback wrote the parameters by ``repr()``; psycopg's ``Jsonb`` writes its value
    cut after 35 characters (``Jsonb({'k': 'xxx ... (58 chars))``), so two querysets
    filtering on two long JSON values of one length shared a fingerprint: a cached list of
    one served to the other (another query's rows)."""
    prefix = "x" * 40
    one = _rf65_unpicklable_rows({"k": prefix + "one"})
    two = _rf65_unpicklable_rows({"k": prefix + "two"})
    assert queryset_fingerprint(one) != queryset_fingerprint(two)
    assert queryset_fingerprint(one) == queryset_fingerprint(
        _rf65_unpicklable_rows({"k": prefix + "one"})
    )


def test_rf65_a_parameter_without_state_to_record_is_not_keyed():
    """A fallback parameter that cannot be pickled has no faithful record (its repr may be
    its address): the queryset is not keyed at all (``None``: not cached)."""

    class Rf65Text(str):
        pass

    rows = _rf65_unpicklable_rows({"k": "v"})
    rows = rows.model.objects.filter(code=Rf65Text("a")).annotate(
        shout=rows.query.annotations["shout"]
    )
    assert queryset_fingerprint(rows) is None


def _rf65_route_paths() -> list[str]:
    """One path per route of the sites the tests mount under ``/api/`` (each resource's
    list and detail routes, their slashless twins, ``@route``s, presets' routes), a
    route's groups filled with ``1``."""
    import re

    from django.urls import URLPattern, URLResolver, get_resolver

    paths: list[str] = []

    def walk(patterns, prefix):
        for pattern in patterns:
            regex = pattern.pattern.regex.pattern.lstrip("^").rstrip("$").replace(r"\Z", "")
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + regex)
            elif isinstance(pattern, URLPattern) and getattr(
                pattern.callback, "arc_site_route", False
            ):
                filled = re.sub(r"\(\?P<\w+>[^)]*\)", "1", prefix + regex).replace("\\", "")
                paths.append("/" + filled)

    walk(get_resolver().url_patterns, "")
    return sorted(set(paths))


@pytest.mark.django_db
def test_rf65_every_routes_allow_header_is_the_uncached_one(monkeypatch):
    """cost8 keeps the ``Allow`` header's methods per view class, ``metadata_class`` and the
    names of the instance's attributes: over every route of the test sites and every
    method, a staff caller's and an anonymous one's, the header a kept answer gives (first
    and again) is the one worked out afresh."""
    from django.contrib.auth import get_user_model

    from django_arc import generics
    from tests.helpers import client_for

    class Rf65NeverKept(dict):
        def get(self, key, default=None):
            return default

        def __setitem__(self, key, value):
            pass

    staff = get_user_model().objects.create_superuser("rf65", "rf65@example.com", "pw")
    paths = _rf65_route_paths()
    assert any(path.endswith("/1/") for path in paths) and len(paths) > 20

    def sweep():
        seen = {}
        for who, client in (("anonymous", client_for()), ("staff", client_for(staff))):
            for path in paths:
                for method in ("get", "head", "options", "post", "put", "patch", "delete"):
                    response = getattr(client, method)(path)
                    seen[(who, path, method)] = (response.status_code, response.get("Allow"))
        return seen

    generics._ALLOWED.clear()
    first, again = sweep(), sweep()
    monkeypatch.setattr(generics, "_ALLOWED", Rf65NeverKept())
    fresh = sweep()
    differ = {
        k: (first[k], again[k], fresh[k]) for k in fresh if not first[k] == again[k] == fresh[k]
    }
    # a write may change a row between sweeps (a status), never the header
    headers = {k: v for k, v in differ.items() if len({x[1] for x in v}) > 1}
    assert headers == {}
    assert sum(1 for value in fresh.values() if value[1]) > 100


def _rf65_built(plan) -> object:
    """A Book queryset built from a drawn ``plan``: conditions, an exclusion, annotations,
    ordering, column choices, joins, a slice and a database."""
    from django.db.models import Value

    from tests.testapp.models import Book

    rows = Book.objects.all()
    for lookup, value in plan["filters"]:
        rows = rows.filter(**{lookup: value})
    for lookup, value in plan["excludes"]:
        rows = rows.exclude(**{lookup: value})
    if plan["value"] is not None:
        rows = rows.annotate(v=Value(plan["value"]))
    if plan["order"]:
        rows = rows.order_by(*plan["order"])
    if plan["only"]:
        rows = rows.only(*plan["only"])
    if plan["related"]:
        rows = rows.select_related("author")
        if plan["only"]:
            rows = rows.only(*plan["only"], "author")
    if plan["slice"]:
        rows = rows[: plan["slice"]]
    return rows.using(plan["db"])


def _rf65_compiled(rows) -> tuple:
    """What ``rows`` runs: its database, SQL (compiled for the default connection: the
    routed alias is a name only) and each parameter with its type."""
    from django.core.exceptions import EmptyResultSet

    try:
        sql, params = rows.query.get_compiler(connection=connection).as_sql()
    except EmptyResultSet:
        return (rows.db, "<empty>", ())
    return (rows.db, sql, tuple((type(p).__name__, p) for p in params))


def _rf65_plans():
    import datetime
    import decimal

    from hypothesis import strategies as st

    values = st.sampled_from(
        [0, 1, True, False, "1", "a", "A", 1.0, decimal.Decimal("1"), decimal.Decimal("1.0")]
        + [datetime.date(2024, 1, 1), None]
    )
    text = st.sampled_from(["1", "a", "A", "a "])
    number = st.sampled_from([0, 1, 2, decimal.Decimal("1"), decimal.Decimal("1.5")])
    condition = st.one_of(
        st.tuples(
            st.sampled_from(
                ["title", "title__iexact", "title__contains", "title__icontains", "author__name"]
            ),
            text,
        ),
        st.tuples(st.sampled_from(["pages__gte", "pages__gt", "pages__lt", "author"]), number),
        st.tuples(st.sampled_from(["price__lte", "price"]), number),
        st.tuples(st.just("author__isnull"), st.booleans()),
        st.tuples(
            st.just("published__gte"),
            st.sampled_from([datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)]),
        ),
    )
    return st.fixed_dictionaries(
        {
            "filters": st.lists(condition, max_size=2),
            "excludes": st.lists(condition, max_size=1),
            "value": values,
            "order": st.lists(
                st.sampled_from(["title", "-title", "pages", "-pages", "author__name"]),
                max_size=2,
                unique=True,
            ),
            "only": st.lists(st.sampled_from(["title", "pages"]), max_size=2, unique=True),
            "related": st.booleans(),
            "slice": st.sampled_from([0, 1, 20]),
            "db": st.sampled_from(["default", "routed"]),
        }
    )


def test_rf65_querysets_sharing_a_fingerprint_run_one_sql():
    """Hypothesis over Book querysets (conditions on own and joined columns, exclusions,
    annotated values of types that compare equal — ``1``, ``True``, ``1.0``,
    ``Decimal("1")``, ``"1"`` —, orderings, ``only``, ``select_related``, slices, two
    databases): two whose fingerprints are equal compile to one database, SQL and
    parameters, types included (cost7's seeded table must not merge two of them)."""
    from hypothesis import HealthCheck, given, settings

    seen: dict[str, tuple] = {}

    @settings(
        max_examples=examples(300),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(_rf65_plans())
    def check(plan):
        fingerprint = queryset_fingerprint(_rf65_built(plan))
        compiled = _rf65_compiled(_rf65_built(plan))
        if plan["value"] is not None:  # Value's parameter type is in its pickle, not its SQL
            compiled += (type(plan["value"]).__name__, plan["value"])
        assert seen.setdefault(fingerprint, compiled) == compiled

    check()
    assert len(seen) > 100 * examples(300) // 300  # a third of the examples, distinct


def test_rf65_a_caches_change_landing_during_the_question_is_seen(monkeypatch):
    """``is_django_redis`` (cost8) reads ``CACHES`` then keeps its answer; a change of
    ``CACHES`` that lands in between (another thread's ``override_settings``: the setting
    replaced, then ``setting_changed``, which forgot the memo) left the answer read from
    the old setting kept until the next change: a django-redis alias taken for another
    backend (reads uncached, writes not invalidating the entries a later HIT serves), or
    the other way round (503 for keyed writes). The change is now seen on the next
    question."""
    from django.conf import settings as django_settings
    from django.core.signals import setting_changed

    from django_arc import redis_alias

    locmem = {"rf65": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    django_redis = {"rf65": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "x"}}
    current = {"caches": locmem}

    class Rf65RacingSettings:
        def __getattr__(self, name):
            if name != "CACHES":
                return getattr(django_settings, name)
            read = current["caches"]
            if read is locmem:  # the other thread's override lands after this read
                current["caches"] = django_redis
                setting_changed.send(sender=None, setting="CACHES", value=django_redis, enter=True)
            return read

    monkeypatch.setattr(redis_alias, "settings", Rf65RacingSettings())
    redis_alias._forget_backends(setting="CACHES")
    assert redis_alias.is_django_redis("rf65") is False  # what it read
    assert redis_alias.is_django_redis("rf65") is True  # the setting in force now
    redis_alias._forget_backends(setting="CACHES")


@pytest.mark.django_db
def test_rf65_routes_given_their_own_http_method_names_keep_their_own_allow():
    """cost8 kept the ``Allow`` header per class and *names* of the instance's attributes:
    one ViewSet routed twice with ``http_method_names`` of its own (``as_view()`` takes any
    class attribute, as Django's and DRF's do) answered the second route with the first
    one's methods (``POST`` listed where it is a 405)."""
    from rest_framework.test import APIRequestFactory

    from tests.testapp.resources import BookResource

    viewset = BookResource.as_viewset()
    actions = {"get": "list", "post": "create"}
    narrow = viewset.as_view(dict(actions), http_method_names=["get", "head"])
    wide = viewset.as_view(dict(actions), http_method_names=["get", "post", "head"])
    factory = APIRequestFactory()
    assert wide(factory.get("/"))["Allow"] == "GET, POST, HEAD"
    assert narrow(factory.get("/"))["Allow"] == "GET, HEAD"
    refused = narrow(factory.post("/", {}, format="json"))
    assert refused.status_code == 405 and refused["Allow"] == "GET, HEAD"
