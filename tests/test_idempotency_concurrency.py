"""Idempotency keys under concurrency (SPEC §10, issue #17): requests racing for one key in
threads and in processes, a repeat while the first is in flight, a worker killed mid-request,
and a request that outlives its lock.

What must hold every time: one row and one event per key; every other answer is 409
``IDEMPOTENCY_CONFLICT`` (with ``Retry-After: 1``) or the first answer replayed byte for byte.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from django_arc.outbox import OutboxEvent
from shop.models import Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import assert_error, in_thread
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.relay_procs import REPO, relay_env
from tests.testapp.feature_resources import IdempotentProductResource

URL = "/api/idem-products/"
BODY = {"name": "Widget", "sku": "W-1", "price": "9.50"}

pytestmark = pytest.mark.django_db(transaction=True)

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL's row locks and processes"
)


@pytest.fixture(params=["database", "cache"])
def store(request):
    if request.param == "cache" and not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    prefix = f"arc-test-{uuid.uuid4().hex[:12]}"
    idem = {"STORE": request.param, "ALIAS": "redis", "LOCK_SECONDS": 30}
    caches = caches_with("redis", REDIS_URL, prefix) if REDIS_URL else None
    with override_settings(ARC=arc_with(IDEMPOTENCY=idem)):
        if caches is None:
            yield {"name": request.param, "prefix": prefix}
        else:
            with override_settings(CACHES=caches):
                yield {"name": request.param, "prefix": prefix}


def clone(client: APIClient) -> APIClient:
    """Another client for the same caller (clients are not shared between threads)."""
    other = APIClient()
    other.force_authenticate(client.handler._force_user)
    other.credentials(**client._credentials)
    return other


def post(client, key, body=BODY, url=URL):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_repeat_while_the_first_runs_is_409_then_the_replay(store, monkeypatch):
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    entered, release = threading.Event(), threading.Event()

    def slow(self, request, data):
        entered.set()
        assert release.wait(20)

    monkeypatch.setattr(IdempotentProductResource, "before_create", slow)
    first_client = clone(editor)
    thread, results = in_thread(lambda: post(first_client, "slow"))
    assert entered.wait(20)
    try:
        repeat = post(editor, "slow")
        body = assert_error(repeat, 409, "IDEMPOTENCY_CONFLICT")
        assert repeat["Retry-After"] == "1"
        assert "in progress" in body["error"]
        # another body under the held key is a reuse, even while it runs
        assert_error(post(editor, "slow", {**BODY, "sku": "X"}), 422, "IDEMPOTENCY_KEY_REUSED")
    finally:
        release.set()
        thread.join(30)
    (first,) = results
    assert first.status_code == 201, first.content
    replay = post(editor, "slow")
    assert replay.content == first.content and replay["X-Idempotency-Replayed"] == "true"
    assert Product.objects.count() == 1
    assert OutboxEvent.objects.filter(type="idem-products.created").count() == 1


@needs_postgres
def test_with_atomic_requests_a_repeat_waits_for_the_first_and_gets_its_answer(monkeypatch):
    """``database`` store under ``ATOMIC_REQUESTS``: the claim joins the request's
    transaction, so a repeat's claim waits on the uncommitted row and, once the first
    request commits, is answered with its replay instead of a 409."""
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    entered, release = threading.Event(), threading.Event()

    def slow(self, request, data):
        entered.set()
        assert release.wait(20)

    monkeypatch.setattr(IdempotentProductResource, "before_create", slow)
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    with override_settings(ARC=arc_with(IDEMPOTENCY={"STORE": "database"})):
        first_client, repeat_client = clone(editor), clone(editor)
        first_thread, firsts = in_thread(lambda: post(first_client, "slow"))
        assert entered.wait(20)
        repeat_thread, repeats = in_thread(lambda: post(repeat_client, "slow"))
        try:
            repeat_thread.join(0.5)
            assert repeat_thread.is_alive()  # waiting for the first request's commit
        finally:
            release.set()
            first_thread.join(30)
            repeat_thread.join(30)
    (first,), (repeat,) = firsts, repeats
    assert first.status_code == 201, first.content
    assert repeat.status_code == 201, repeat.content
    assert repeat["X-Idempotency-Replayed"] == "true"
    assert repeat.content == first.content
    assert Product.objects.count() == 1
    assert OutboxEvent.objects.filter(type="idem-products.created").count() == 1


@pytest.mark.parametrize("threads", [2, 4])
def test_threads_racing_for_one_key_write_one_row_and_one_event(store, threads):
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    for attempt in range(5):
        barrier = threading.Barrier(threads)
        key = f"race-{attempt}"
        body = {**BODY, "sku": f"R-{attempt}"}

        def sender(client, key=key, body=body, barrier=barrier):
            def send():
                barrier.wait(10)
                return post(client, key, body)

            return send

        started = [in_thread(sender(clone(editor))) for _ in range(threads)]
        answers = []
        for thread, results in started:
            thread.join(30)
            answers.extend(results)
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(201) >= 1, [a.content for a in answers]
        created = [a for a in answers if a.status_code == 201]
        first = next(a for a in created if "X-Idempotency-Replayed" not in a)
        for answer in answers:
            if answer.status_code == 201:
                assert answer.content == first.content
            else:
                assert_error(answer, 409, "IDEMPOTENCY_CONFLICT")
                assert answer["Retry-After"] == "1"
        assert sum("X-Idempotency-Replayed" not in a for a in created) == 1
        assert Product.objects.filter(sku=f"R-{attempt}").count() == 1
    assert OutboxEvent.objects.filter(type="idem-products.created").count() == 5


def first_update_waits(monkeypatch):
    """An editor and a product whose first update waits in ``before_update`` (``entered``
    set) until ``release`` is set; later updates run through."""
    org = OrganizationFactory()
    editor = member_client(org, "editor")
    row = ProductFactory(organization=org, name="Before")
    entered, release = threading.Event(), threading.Event()
    calls = []

    def first_waits(self, request, instance, data):
        calls.append(1)
        if len(calls) == 1:
            entered.set()
            assert release.wait(20)

    monkeypatch.setattr(IdempotentProductResource, "before_update", first_waits)
    return editor, row, entered, release


@needs_postgres
@pytest.mark.parametrize("body", ["After", "Other"], ids=["same-body", "another-body"])
def test_a_request_that_outlives_its_lock_is_rolled_back_when_taken_over(monkeypatch, body):
    """``database`` store: the takeover wins, the late request's write is undone and it
    answers 409 — one update, one event, whatever the timing. The store takes a claim whose
    lock ran out over whatever the body, and such a claim may belong to a request still
    running (slow, not dead): with another body too, the late request must find its claim
    gone at its end, not commit a second, different write under the key. (On the SQLite
    test database the takeover would wait for the late request's table lock instead.)"""
    editor, row, entered, release = first_update_waits(monkeypatch)
    idem = {"STORE": "database", "LOCK_SECONDS": 0.3}
    with override_settings(ARC=arc_with(IDEMPOTENCY=idem)):
        late_client = clone(editor)
        url = f"{URL}{row.pk}/"
        thread, results = in_thread(
            lambda: late_client.patch(
                url, {"name": "After"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
            )
        )
        assert entered.wait(20)
        time.sleep(0.5)  # the first request's lock runs out
        takeover = editor.patch(url, {"name": body}, format="json", HTTP_IDEMPOTENCY_KEY="k")
        assert takeover.status_code == 200 and "X-Idempotency-Replayed" not in takeover
        release.set()
        thread.join(30)
        (late,) = results
        assert "taken over" in assert_error(late, 409, "IDEMPOTENCY_CONFLICT")["error"]
        again = editor.patch(url, {"name": "After"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
        if body == "After":
            assert again.content == takeover.content and again["X-Idempotency-Replayed"] == "true"
        else:
            assert_error(again, 422, "IDEMPOTENCY_KEY_REUSED")
    row.refresh_from_db()
    assert row.name == body
    assert OutboxEvent.objects.filter(type="idem-products.updated").count() == 1


@needs_postgres
def test_a_request_outliving_a_ttl_shorter_than_its_lock_is_not_taken_over(monkeypatch):
    """``database`` store, ``TTL_SECONDS`` below ``LOCK_SECONDS``: a claim is in flight until
    its lock runs out, as on the ``cache`` store (whose in-flight key lives ``LOCK_SECONDS``
    whatever the TTL). A repeat while it runs is 409, not a takeover that discards the
    request's work."""
    editor, row, entered, release = first_update_waits(monkeypatch)
    idem = {"STORE": "database", "LOCK_SECONDS": 30, "TTL_SECONDS": 0.3}
    with override_settings(ARC=arc_with(IDEMPOTENCY=idem)):
        first_client = clone(editor)
        url = f"{URL}{row.pk}/"
        thread, results = in_thread(
            lambda: first_client.patch(
                url, {"name": "After"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
            )
        )
        try:
            assert entered.wait(20)
            time.sleep(0.5)  # past the TTL, well within the lock
            repeat = editor.patch(url, {"name": "After"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
            assert_error(repeat, 409, "IDEMPOTENCY_CONFLICT")
        finally:
            release.set()
            thread.join(30)
        (first,) = results
        assert first.status_code == 200, first.content
    assert OutboxEvent.objects.filter(type="idem-products.updated").count() == 1


# -- processes (PostgreSQL) ------------------------------------------------------------------------


def start_process(tmp_path: Path, store: dict, args: list[str], name: str, lock: float = 30):
    env = relay_env(
        tmp_path,
        ARC_IDEM_STORE=store["name"],
        ARC_IDEM_PREFIX=store["prefix"],
        ARC_IDEM_LOCK=str(lock),
    )
    env["DJANGO_SETTINGS_MODULE"] = "tests.idempotency_proc_settings"
    out = open(tmp_path / f"{name}.out", "wb")  # noqa: SIM115 - closed in answer()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.idempotency_procs", *args],
        env=env,
        cwd=str(REPO),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    proc.out = out  # type: ignore[attr-defined]
    proc.log = tmp_path / f"{name}.out"  # type: ignore[attr-defined]
    return proc


def answer(proc) -> dict:
    assert proc.wait(timeout=60) == 0, proc.log.read_text()
    proc.out.close()
    lines = proc.log.read_text().strip().splitlines()
    return json.loads(lines[-1])


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_two_processes_with_one_key_write_one_row(store, tmp_path):
    org = OrganizationFactory()
    user = member_client(org, "editor").handler._force_user
    for attempt in range(3):
        start_at = str(time.time() + 3.0)  # both processes are set up by then
        key = f"proc-{attempt}"
        procs = [
            start_process(tmp_path, store, [str(user.pk), str(org.pk), key, start_at], f"p{i}")
            for i in range(2)
        ]
        answers = [answer(p) for p in procs]
        Product.objects.filter(sku="W-1").delete()  # the next attempt creates it again
        created = [a for a in answers if a["status"] == 201]
        assert created, answers
        assert len({a["body"] for a in created}) == 1
        assert sum(a["replayed"] is None for a in created) == 1, answers
        for a in answers:
            if a["status"] != 201:
                assert a["status"] == 409 and '"IDEMPOTENCY_CONFLICT"' in a["body"], a
    assert OutboxEvent.objects.filter(type="idem-products.created").count() == 3


@pytest.mark.slow
@pytest.mark.postgres
@needs_postgres
def test_a_killed_worker_frees_its_key_after_the_lock_timeout(store, tmp_path):
    """SIGKILL mid-request: nothing of it is committed (the database store's transaction dies
    with its connection) and the key is free again once ``LOCK_SECONDS`` pass."""
    org = OrganizationFactory()
    user = member_client(org, "editor").handler._force_user
    lock = 2.0
    victim = start_process(
        tmp_path, store, [str(user.pk), str(org.pk), "crash", "0", "hang"], "victim", lock
    )
    deadline = time.monotonic() + 30
    while b"in flight" not in victim.log.read_bytes():
        assert victim.poll() is None, victim.log.read_text()
        assert time.monotonic() < deadline, "the victim never reached its write"
        time.sleep(0.05)
    killed_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    victim.out.close()
    early = start_process(tmp_path, store, [str(user.pk), str(org.pk), "crash", "0"], "early", lock)
    early_answer = answer(early)
    if time.monotonic() - killed_at < lock - 0.5:
        assert early_answer["status"] == 409, early_answer
    time.sleep(max(0.0, lock + 0.2 - (time.monotonic() - killed_at)))
    retry = answer(
        start_process(tmp_path, store, [str(user.pk), str(org.pk), "crash", "0"], "retry", lock)
    )
    if early_answer["status"] == 201:
        # Under load the early process can take longer than LOCK_SECONDS to start: it then
        # found the key free and wrote, and the retry is the replay of its answer.
        assert early_answer["replayed"] is None, early_answer
        assert retry["replayed"] == "true" and retry["body"] == early_answer["body"], retry
    else:
        assert retry["status"] == 201 and retry["replayed"] is None, retry
    assert Product.objects.filter(organization=org).count() == 1
    assert OutboxEvent.objects.filter(type="idem-products.created").count() == 1


def test_a_purge_racing_a_takeover_of_an_expired_key_keeps_the_new_answer():
    """The purge finds an expired record; before its DELETE runs, a retry takes the key over,
    writes and stores its answer. The purge must not then delete that fresh answer, or a
    repeat of the retry runs it once more. A project's ``pre_delete`` receiver for every
    model (an audit log) was enough to turn the ORM's one-statement delete into a select,
    then a delete by id, with this gap between them; the retry runs in it, forced by a
    wrapper on the purge's statements."""
    from datetime import timedelta

    from django.db.models.signals import pre_delete
    from django.utils import timezone

    from django_arc.idempotency.models import IdempotencyRecord
    from django_arc.tasks import purge_idempotency

    org = OrganizationFactory()
    editor = member_client(org, "editor")
    idem = {"STORE": "database", "LOCK_SECONDS": 30}
    again = {**BODY, "sku": "W-2"}  # the key expired: a new request may use it
    table = IdempotencyRecord._meta.db_table
    retries: list = []

    def retry_before_the_delete(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("DELETE") and table in sql and not retries:
            retry_client = clone(editor)
            thread, results = in_thread(lambda: post(retry_client, "k", again))
            thread.join(20)
            retries.extend(results)
        return execute(sql, params, many, context)

    def audit(sender, **kwargs):  # any project's receiver for every model's deletes
        pass

    with override_settings(ARC=arc_with(IDEMPOTENCY=idem)):
        assert post(editor, "k").status_code == 201
        IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        pre_delete.connect(audit, weak=False, dispatch_uid="test-audit")
        try:
            with connection.execute_wrapper(retry_before_the_delete):
                purge_idempotency()
        finally:
            pre_delete.disconnect(dispatch_uid="test-audit")
        (retry,) = retries
        assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
        repeat = post(editor, "k", again)
        assert repeat.status_code == 201, repeat.content
        assert repeat["X-Idempotency-Replayed"] == "true"
        assert repeat.content == retry.content
        assert Product.objects.count() == 2
        assert OutboxEvent.objects.filter(type="idem-products.created").count() == 2


def test_a_5xx_outliving_its_lock_does_not_release_the_takeovers_answer():
    """A request fails (5xx) after its lock ran out; before it gives the key up, a retry takes
    the key over, writes and stores its answer. Giving the key up must leave that answer, or
    a repeat of the retry writes again. (With a project's delete receiver for every model,
    the release selected the claim and then deleted it by id, whoever held it by then.)"""
    from datetime import timedelta

    from django.db.models.signals import pre_delete
    from django.utils import timezone

    from django_arc.idempotency.models import IdempotencyRecord

    org = OrganizationFactory()
    editor = member_client(org, "editor")
    editor.raise_request_exception = False  # the hook's bug, reported as Django reports it
    idem = {"STORE": "database", "LOCK_SECONDS": 30}
    table = IdempotencyRecord._meta.db_table
    calls: list = []
    retries: list = []

    def fails_once_past_its_lock(self, request, data):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("after the lock")

    def retry_before_the_delete(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("DELETE") and table in sql and not retries:
            # this request outlived its lock (set here, its transaction rolled back: on
            # SQLite another connection cannot write while the request's transaction, which
            # takes the write lock as it begins, is open)
            IdempotencyRecord.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
            retry_client = clone(editor)
            thread, results = in_thread(lambda: post(retry_client, "k"))
            thread.join(20)
            retries.extend(results)
        return execute(sql, params, many, context)

    def audit(sender, **kwargs):  # any project's receiver for every model's deletes
        pass

    with override_settings(ARC=arc_with(IDEMPOTENCY=idem)), pytest.MonkeyPatch.context() as mp:
        mp.setattr(IdempotentProductResource, "before_create", fails_once_past_its_lock)
        pre_delete.connect(audit, weak=False, dispatch_uid="test-audit")
        try:
            with connection.execute_wrapper(retry_before_the_delete):
                assert_error(post(editor, "k"), 500, "INTERNAL_ERROR")
        finally:
            pre_delete.disconnect(dispatch_uid="test-audit")
        (retry,) = retries
        assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
        repeat = post(editor, "k")
        assert repeat["X-Idempotency-Replayed"] == "true", repeat.content
        assert repeat.content == retry.content
        assert Product.objects.count() == 1
        assert OutboxEvent.objects.filter(type="idem-products.created").count() == 1
