"""Requests served at once by threads of one process (gunicorn ``--threads``, ``runserver``,
uWSGI threads): state django-arc keeps per class or per process must not carry one request's
values into another's."""

from __future__ import annotations

import inspect
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings
from django.urls import include, path, reverse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from django_arc import ResourceSite
from django_arc import settings as settings_module
from django_arc.events import create_event, publish
from django_arc.events.transports import MemoryTransport
from django_arc.openapi import ArcAutoSchema
from django_arc.outbox import OutboxEvent
from django_arc.querycache import invalidation
from django_arc.settings import ArcSettings, arc_settings
from django_arc.sites import _all_sites
from django_arc.tasks import relay_outbox
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.redis_support import REDIS_URL, arc_with, caches_with
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


class _GatedTransport(MemoryTransport):
    """Publishes through ``gate`` (set by the test), which may hold a thread or fail it."""

    gate: Any = None

    def publish(self, event: Any) -> None:
        type(self).gate()
        super().publish(event)

    def publish_many(self, events: Any) -> list[Any]:
        type(self).gate()
        return super().publish_many(events)


@pytest.mark.django_db(transaction=True)
def test_two_relay_tasks_in_one_worker_process_each_own_their_lease(monkeypatch):
    """Celery's ``threads`` pool (gevent, eventlet alike) runs two ``relay_outbox`` tasks at
    once in one process, and both named their leases ``celery:<host>:<pid>``. A lease that
    ran out while its task was still publishing was taken over by the other task, as it
    should; but the first task's late outcome was then the second's too: its failure cleared
    the second's lease and scheduled a retry of a row the second published, whose
    acknowledgement was then refused, so the row stayed pending and was published again.
    Each task call owns its leases, as two workers do: the late failure is an
    ``ownership_mismatch`` and the row is delivered."""
    first_publishing, first_fails = threading.Event(), threading.Event()
    second_publishing, second_publishes = threading.Event(), threading.Event()

    def gate() -> None:
        if threading.current_thread() is first:
            first_publishing.set()
            assert first_fails.wait(30)
            raise ConnectionError("the broker went away")
        second_publishing.set()
        assert second_publishes.wait(30)

    monkeypatch.setattr(_GatedTransport, "gate", staticmethod(gate))
    arc = {"EVENTS": {"TRANSPORT": _GatedTransport, "OPTIONS": {}}}
    with override_settings(ARC=arc):
        event_id = publish(create_event("orders.created", {"n": 1})).id
        totals: dict[str, Any] = {}

        def task(name: str) -> Any:
            def run() -> None:
                try:
                    totals[name] = relay_outbox(max_batches=1)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    totals[name] = exc
                finally:
                    connections.close_all()

            return threading.Thread(target=run)

        first, second = task("first"), task("second")
        first.start()
        try:
            assert first_publishing.wait(30)
            # the first task's lease runs out while it is still publishing
            OutboxEvent.objects.update(lease_expires_at=timezone.now() - timedelta(hours=1))
            second.start()
            assert second_publishing.wait(30)
            first_fails.set()
            first.join(30)
        finally:
            first_fails.set()
            second_publishes.set()
            first.join(30)
            second.join(30)
    assert not isinstance(totals["first"], BaseException), totals["first"]
    assert not isinstance(totals["second"], BaseException), totals["second"]
    row = OutboxEvent.objects.get(event_id=event_id)
    assert (row.status, row.attempts, row.lease_owner) == ("delivered", 0, None)
    assert (totals["second"]["relayed"], totals["second"]["ownership_mismatches"]) == (1, 0)
    assert (totals["first"]["publish_failed"], totals["first"]["ownership_mismatches"]) == (1, 1)


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db
def test_a_path_memo_emptied_by_another_thread_between_its_check_and_its_read_is_a_miss(
    monkeypatch,
):
    """A cached read asks which models its row conditions read, from a per-process memo
    (``invalidation._path_models``) that a thread finding it full empties. It was read as
    ``key in memo`` then ``memo[key]``: emptied by another thread in between, the read was a
    ``KeyError``, a 500. The interleaving is forced by a memo that empties itself as it
    answers the check."""

    class EmptiedMeanwhile(dict):
        def __contains__(self, key: object) -> bool:
            found = super().__contains__(key)
            self.clear()  # another thread, finding the memo full, empties it
            return found

        def get(self, key: Any, default: Any = None) -> Any:
            found = super().get(key, default)
            self.clear()
            return found

    org = OrganizationFactory()
    ProductFactory(organization=org)
    client = member_client(org, "admin")
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(CACHE={"ALIAS": "redis", "STALE_SECONDS": 30})),
    ):
        assert client.get("/api/cached-products/").status_code == 200
        memo = EmptiedMeanwhile(invalidation._path_models)
        assert memo  # the tenant condition's path is remembered
        monkeypatch.setattr(invalidation, "_path_models", memo)
        response = client.get("/api/cached-products/?name[contains]=Product")
        assert response.status_code == 200, response.content
        assert len(response.json()["docs"]) == 1


@pytest.mark.django_db
def test_arc_settings_changed_by_another_thread_while_a_request_reads_them(monkeypatch):
    """``arc_settings`` remembers the merged ``ARC`` dict and the objects its dotted paths
    name; a change of ``ARC`` (another thread's ``override_settings`` ending: a live
    server's threads under a test's settings) forgets both. Each was read as a check, a
    fill, then a second read of the attribute: forgotten in between, the merged dict read
    as ``None`` (a ``TypeError``) and a dotted path as a ``KeyError`` (the membership
    resolver every member's request asks for), a 500. The interleaving is forced by
    forgetting them as they are filled."""
    org = OrganizationFactory()
    ProductFactory(organization=org)
    client = member_client(org, "admin")
    assert client.get("/api/products/").status_code == 200
    forgotten: list[str] = []

    def forget(settings: ArcSettings) -> None:
        # what another thread's ARC change does (``reload()``; its callbacks run there)
        object.__setattr__(settings, "_cache", None)
        object.__setattr__(settings, "_imports", {})

    class ForgottenAsFilled(dict):
        def __setitem__(self, key: str, value: Any) -> None:
            super().__setitem__(key, value)
            if key == "MEMBERSHIP_RESOLVER" and "imports" not in forgotten:
                forgotten.append("imports")
                forget(arc_settings)

    def set_forgetting(self: ArcSettings, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "_cache" and value is not None and "merged" not in forgotten:
            forgotten.append("merged")
            forget(self)

    arc_settings.reload()
    monkeypatch.setattr(arc_settings, "_imports", ForgottenAsFilled())
    monkeypatch.setattr(ArcSettings, "__setattr__", set_forgetting)
    response = client.get("/api/products/")
    assert sorted(forgotten) == ["imports", "merged"]
    assert response.status_code == 200, response.content
    assert len(response.json()["docs"]) == 1


@pytest.mark.django_db
def test_the_outbox_forgotten_by_another_thread_as_it_is_built_is_still_the_one_answered(
    client, django_user_model
):
    """``get_outbox()`` remembers the outbox it builds in a module global, which a change of
    ``ARC`` (another thread's ``override_settings`` ending, as ``arc_settings``' memos in
    dd1842b) forgets. It was a check, a fill, then a second read of the global: forgotten
    in between, ``None`` was answered, and the admin's "Relay now" (``run_relay`` asks
    ``get_outbox()``) was a 500. The interleaving is forced by forgetting the outbox at the
    line that answers it."""
    from django_arc.outbox import configured

    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    code = configured.get_outbox.__code__
    lines, first_line = inspect.getsourcelines(configured.get_outbox)
    answer_line = first_line + len(lines) - 1  # its last line: ``return ...``
    forgotten: list[int] = []

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == answer_line and not forgotten:
            forgotten.append(answer_line)
            configured._drop_outbox()  # what another thread's ARC change does
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    with override_settings(ARC={"EVENTS": {"TRANSPORT": MemoryTransport, "OPTIONS": {}}}):
        publish(create_event("orders.created", {"n": 1}))
        previous = sys.gettrace()
        sys.settrace(tracer)
        try:
            response = client.post(reverse("admin:django_arc_outboxevent_relay_now"), follow=True)
        finally:
            sys.settrace(previous)
    assert forgotten == [answer_line]
    assert response.status_code == 200
    assert "Relayed 1 event(s) in 1 batch(es)" in response.content.decode()
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"delivered"}


def test_arc_settings_computed_across_a_change_of_arc_are_not_kept():
    """A thread computing the merged ``ARC`` dict read ``ARC`` before another thread changed
    it (a live server's request thread, a test's ``override_settings``) and stored its dict
    after that change had forgotten the old one: the old settings were then served to every
    request until the next change. The interleaving is forced: the first computation is held
    after it read ``ARC``, while the change is made; the value it then computed is answered
    to its own reader only, and the next read computes the new settings."""
    held, release = threading.Event(), threading.Event()
    original = settings_module._merge

    def merge(defaults: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        if threading.current_thread() is holder and not held.is_set():
            held.set()  # ``ARC`` read, its dict not stored yet
            assert release.wait(30)
        return original(defaults, user)

    read: list[Any] = []

    def run() -> None:
        try:
            read.append(arc_settings.MAX_PAGE_SIZE)
        except BaseException as exc:  # noqa: BLE001 - reported below
            read.append(exc)

    with override_settings(ARC={"MAX_PAGE_SIZE": 7}):
        # forgotten as a change forgets it (its callbacks may read it again at once)
        object.__setattr__(arc_settings, "_cache", None)
        holder = threading.Thread(target=run)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(settings_module, "_merge", merge)
            holder.start()
            try:
                assert held.wait(30)
                with override_settings(ARC={"MAX_PAGE_SIZE": 9}):
                    release.set()
                    holder.join(30)
                    assert read == [7]  # what it read before the change
                    assert arc_settings.MAX_PAGE_SIZE == 9
            finally:
                release.set()
                holder.join(30)
        assert arc_settings.MAX_PAGE_SIZE == 7


def _read_traced(trace: Any) -> tuple[threading.Thread, list[Any]]:
    """A started thread reading ``arc_settings.MAX_PAGE_SIZE`` under ``trace``, and the
    list it appends what it read (or what the read raised) to."""
    read: list[Any] = []

    def run() -> None:
        sys.settrace(trace)
        try:
            read.append(arc_settings.MAX_PAGE_SIZE)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            read.append(exc)
        finally:
            sys.settrace(None)

    holder = threading.Thread(target=run)
    holder.start()
    return holder, read


def test_a_change_of_arc_waits_for_a_dict_being_stored_and_forgets_it():
    """The check that no change happened since ``ARC`` was read and the store of the dict
    are one step under the lock a change takes: a change landing between them (after the
    check, before the store) stored the old dict after the change had forgotten it, the
    stale settings served until the next change. The interleaving is forced at the store:
    the change waits for it (a second at most, then goes on without) and forgets what it
    stored; without the lock the change went through at once, and the old dict stayed."""
    line = next(
        number
        for number, text in enumerate(
            inspect.getsourcelines(ArcSettings.merged.fget)[0],
            ArcSettings.merged.fget.__code__.co_firstlineno,
        )
        if "self._cache = merged" in text
    )
    code = ArcSettings.merged.fget.__code__
    at_store, changed = threading.Event(), threading.Event()

    def trace(frame, event, arg):
        if frame.f_code is not code:
            return None
        if event == "line" and frame.f_lineno == line and not at_store.is_set():
            at_store.set()
            changed.wait(1)  # the change cannot come meanwhile while the lock is held
        return trace

    with override_settings(ARC={"MAX_PAGE_SIZE": 7}):
        object.__setattr__(arc_settings, "_cache", None)
        holder, read = _read_traced(trace)
        try:
            assert at_store.wait(30)
            # the change alone: the memos its callbacks drop read the settings again, and
            # would store the new dict themselves once the old one is in
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(settings_module, "_reload_callbacks", [])
                with override_settings(ARC={"MAX_PAGE_SIZE": 9}):
                    changed.set()
                    holder.join(30)
                    assert read == [7]
                    assert arc_settings.MAX_PAGE_SIZE == 9
        finally:
            changed.set()
            holder.join(30)
        assert arc_settings.MAX_PAGE_SIZE == 7


def test_arc_settings_count_a_change_made_just_after_arc_was_read():
    """The generation is read before ``ARC``: a change between the two is then a change
    "since", and the dict merged from the old ``ARC`` is not stored. Read after ``ARC``, a
    change landing just after ``ARC`` was read went uncounted, and the old dict was stored
    for every later request. The interleaving is forced as ``ARC`` is read (the return of
    ``user_settings``)."""
    code = ArcSettings.user_settings.fget.__code__
    returned, changed = threading.Event(), threading.Event()

    def trace(frame, event, arg):
        if frame.f_code is not code:
            return None
        if event == "return" and not returned.is_set():
            returned.set()
            assert changed.wait(30)
        return trace

    with override_settings(ARC={"MAX_PAGE_SIZE": 7}):
        object.__setattr__(arc_settings, "_cache", None)
        holder, read = _read_traced(trace)
        try:
            assert returned.wait(30)
            with override_settings(ARC={"MAX_PAGE_SIZE": 9}):
                changed.set()
                holder.join(30)
                assert read == [7]
                assert arc_settings.MAX_PAGE_SIZE == 9
        finally:
            changed.set()
            holder.join(30)
        assert arc_settings.MAX_PAGE_SIZE == 7
