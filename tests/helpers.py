"""Small helpers the HTTP tests share."""

import threading
import time
from collections import Counter
from contextlib import contextmanager

from django.db import connections
from django.urls import clear_url_caches, include, path
from rest_framework.test import APIClient

from django_arc.outbox import OutboxEvent


def client_for(user=None, **headers):
    """An API client authenticated as ``user`` (anonymous when None), sending ``headers``."""
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    client.credentials(**headers)
    return client


def assert_error(response, status, code):
    """The error envelope with ``status`` and ``code``; returns the body."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and body["code"] == code, body
    return body


@contextmanager
def site_mounted(settings, prefix, site):
    """The test project's URLs plus ``site``'s under ``<prefix>/``: a test's own resources,
    kept off the main site (whose schema the OpenAPI tests pin). ``settings`` is
    pytest-django's fixture, which restores ``ROOT_URLCONF`` after the test."""
    import tests.urls  # its resources register on import: once the apps are ready

    patterns = [*tests.urls.urlpatterns, path(f"{prefix}/", include(site.urls))]
    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": patterns})
    clear_url_caches()
    try:
        yield
    finally:
        clear_url_caches()


def assert_outbox_events(expected: Counter) -> None:
    """The outbox holds exactly ``expected``, counted as ``(type, resource id, idempotency
    key)``, and no two of its rows share a dedupe key: a stateful model's events, each keyed
    one stored once."""
    events = Counter(
        (e.type, e.meta["resource_id"], e.meta.get("idempotency_key"))
        for e in OutboxEvent.objects.all()
    )
    assert events == expected
    keyed = list(OutboxEvent.objects.exclude(dedupe_key=None).values_list("dedupe_key", flat=True))
    assert len(keyed) == len(set(keyed))


class Clock:
    """``time`` as the query cache's modules see it: the real clock plus an offset a test
    moves forward, so an entry goes stale without the test sleeping (and a fresh one stays
    fresh however slowly a loaded machine runs the test)."""

    offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


def cache_clock(monkeypatch) -> Clock:
    """A :class:`Clock` the query cache's modules read the time from for this test."""
    from django_arc.querycache import read, store

    clock = Clock()
    monkeypatch.setattr(read, "time", clock)
    monkeypatch.setattr(store, "time", clock)
    return clock


def in_thread(fn):
    """Run ``fn`` in a thread with its own database connection; returns (thread, results)."""
    results: list = []

    def target():
        try:
            results.append(fn())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            results.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, results
