"""Requests served at once by threads of one process (gunicorn ``--threads``, ``runserver``,
uWSGI threads): state django-arc keeps per class or per process must not carry one request's
values into another's."""

from __future__ import annotations

import threading
from typing import Any

from django.urls import include, path
from drf_spectacular.generators import SchemaGenerator

from django_arc import ResourceSite
from django_arc.openapi import ArcAutoSchema
from django_arc.sites import _all_sites
from tests.testapp.resources import ActionProductResource


class _SchemaProducts(ActionProductResource):
    """A list, a create, detail verbs, actions and routes: operations of one ViewSet class
    that differ in method, body and response."""

    name = "schema-products"


def _differing(one: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``(path, method)`` operations the two schemas describe differently."""
    paths = set(one["paths"]) | set(other["paths"])
    return sorted(
        (p, m)
        for p in paths
        for m in set(one["paths"].get(p, {})) | set(other["paths"].get(p, {}))
        if one["paths"].get(p, {}).get(m) != other["paths"].get(p, {}).get(m)
    )


def test_two_schemas_generated_at_once_each_describe_their_own_operations(monkeypatch):
    """drf-spectacular keeps the operation it describes on the view's schema (``view``,
    ``method``, ``path``); DRF's default gives every view its own schema, but the generated
    ViewSets held one schema object per class. Two requests for ``/api/schema/`` at once
    (Swagger UI and Redoc loading together) then described a list with the create's
    method and view: the list's 200 was one product, the create answered a page, an
    action's body was the PATCH's (and, when the interleaving fell elsewhere, the schema
    view raised: a 500). The interleaving is forced here: one generation is held in the
    middle of the list's operation while another runs whole."""
    site = ResourceSite(name="schema-threads")
    try:
        site.register(_SchemaProducts)
        patterns = [path("api/", include(site.urls))]

        def generate() -> dict[str, Any]:
            return SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)

        alone = generate()
        held, release = threading.Event(), threading.Event()
        first: list[Any] = []
        original = ArcAutoSchema.get_tags

        def get_tags(self: ArcAutoSchema) -> Any:
            if threading.current_thread() is holder and self.view.action == "list":
                if not held.is_set():
                    held.set()  # in the middle of the list's operation
                    assert release.wait(30)
            return original(self)

        monkeypatch.setattr(ArcAutoSchema, "get_tags", get_tags)

        def run() -> None:
            try:
                first.append(generate())
            except BaseException as exc:  # noqa: BLE001 - reported below
                first.append(exc)

        holder = threading.Thread(target=run)
        holder.start()
        try:
            assert held.wait(30)
            meanwhile = generate()
        finally:
            release.set()
            holder.join(30)
        assert not isinstance(first[0], BaseException), first[0]
        assert _differing(meanwhile, alone) == []
        assert _differing(first[0], alone) == []
    finally:
        _all_sites.remove(site)
