"""rev-fixes65: review of cost7 (the queryset fingerprint's seeded pickle) and cost8 (the
django-redis answer and the ``Allow`` header kept between requests)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import CharField, Func

from django_arc.querycache.keys import queryset_fingerprint
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
