"""Idempotency keys (SPEC §10, issue #17) on both stores, sequentially: replay, reuse,
validation, scoping, every write path, what is stored and what is not, expiry and purge.

Concurrency (threads, processes, crashed requests) is in ``test_idempotency_concurrency.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import sqlite3
import threading
import time
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from redis import Redis
from redis import exceptions as redis_exceptions
from rest_framework.response import Response

from django_arc import arc, redis_alias
from django_arc.idempotency import stores
from django_arc.idempotency.keys import caller_identity, fingerprint, scoped_key
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.outbox import OutboxEvent
from django_arc.settings import MAX_SECONDS
from django_arc.tasks import purge_idempotency, purge_outbox, relay_outbox
from shop.models import Order, Product
from tests.factories import OrganizationFactory, ProductFactory, member_client
from tests.helpers import assert_error
from tests.redis_support import (
    REDIS_URL,
    arc_with,
    caches_with,
    idempotency,
    idempotency_store,
    redis_server,
)
from tests.testapp.feature_resources import IdempotentProductResource

URL = "/api/idem-products/"
BODY = {"name": "Widget", "sku": "W-1", "price": "9.50"}


@pytest.fixture(params=["database", "cache"])
def store(request):
    """Each test runs on both stores; ``cache`` on the suite's Redis under its own prefix."""
    with idempotency_store(request.param) as store:
        yield store


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def editor(org):
    return member_client(org, "editor")


def post(client, body=BODY, key="key-1", url=URL, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(url, body, format="json", **headers, **extra)


def created_events():
    return list(OutboxEvent.objects.filter(type="idem-products.created"))


# -- replay ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_retry_gets_the_same_bytes_and_the_replay_header_and_writes_nothing(store, editor):
    first = post(editor)
    assert first.status_code == 201, first.content
    assert "X-Idempotency-Replayed" not in first
    second = post(editor)
    assert second.status_code == 201
    assert second.content == first.content
    assert second["X-Idempotency-Replayed"] == "true"
    assert second["Content-Type"] == first["Content-Type"]
    assert Product.objects.filter(sku="W-1").count() == 1
    assert len(created_events()) == 1
    # the replay is a new request: its own request id
    assert second["X-Request-Id"] != first["X-Request-Id"]


@pytest.mark.django_db
def test_a_retry_in_another_language_time_zone_and_host_is_replayed_the_first_answer(store, editor):
    """A replay is the answer the request had, not one rendered again: a retry sent in
    another language, time zone or to another host (a client behind another proxy) gets the
    first attempt's bytes — DRF's messages in the first one's language, datetimes in its
    zone — and its error ``code`` is the same in every language anyway."""
    with translation.override("fr"), timezone.override("Asia/Tokyo"):
        refused = post(editor, body={"name": "Widget"}, key="lang-400")
        created = post(editor, key="lang-201")
    assert refused.status_code == 400, refused.content
    assert refused.json()["code"] == "VALIDATION_ERROR"
    assert refused.json()["details"]["sku"] == ["Ce champ est obligatoire."]
    assert created.status_code == 201, created.content
    assert created.json()["data"]["created_at"].endswith("+09:00")
    for key, first, body in (
        ("lang-400", refused, {"name": "Widget"}),
        ("lang-201", created, BODY),
    ):
        again = post(editor, body=body, key=key, HTTP_HOST="other.example")
        assert again["X-Idempotency-Replayed"] == "true"
        assert (again.status_code, again.content) == (first.status_code, first.content)
    assert Product.objects.filter(sku="W-1").count() == 1


@pytest.mark.django_db
def test_i18n_a_replay_names_the_language_of_the_answer_it_gives(store, org, editor, settings):
    """Under ``LocaleMiddleware`` the answer's ``Content-Language`` is added by the
    middleware, after the view, from the language active then. A replay gives the first
    attempt's bytes (French messages) but was sent as ``Content-Language`` of the retry's
    language (``de``); it names the language of its body now, for a 400 and a 201. Without
    the middleware a replay carries no ``Content-Language``, as the first answer had none."""
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:2],
        "django.middleware.locale.LocaleMiddleware",
        *settings.MIDDLEWARE[2:],
    ]
    # LocaleMiddleware leaves the caller's language active on the thread: restore it
    with translation.override("en"):
        refused = post(editor, body={"name": "Widget"}, key="cl-400", HTTP_ACCEPT_LANGUAGE="fr")
        created = post(editor, key="cl-201", HTTP_ACCEPT_LANGUAGE="fr")
        assert refused.json()["details"]["sku"] == ["Ce champ est obligatoire."]
        for key, first, body in (
            ("cl-400", refused, {"name": "Widget"}),
            ("cl-201", created, BODY),
        ):
            assert first["Content-Language"] == "fr"
            again = post(editor, body=body, key=key, HTTP_ACCEPT_LANGUAGE="de")
            assert again["X-Idempotency-Replayed"] == "true"
            assert (again.status_code, again.content) == (first.status_code, first.content)
            assert again["Content-Language"] == "fr"
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("LocaleMiddleware")]
    without = member_client(org, "editor")  # a client loads the middleware once
    plain = post(without, body={"name": "Widget"}, key="cl-plain")
    again = post(without, body={"name": "Widget"}, key="cl-plain", HTTP_ACCEPT_LANGUAGE="de")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == plain.content
    assert "Content-Language" not in plain and "Content-Language" not in again


@pytest.mark.django_db
@pytest.mark.parametrize("store_name", ["database", "cache"])
def test_the_longest_lifetimes_allowed_keep_and_replay_the_answer(editor, store_name):
    """``TTL_SECONDS`` and ``LOCK_SECONDS`` at ``MAX_SECONDS``, the bound arc.E008 sets, are
    a ``datetime`` and a Redis expiry the stores can compute (past it every keyed request
    was a 500)."""
    if store_name == "cache" and not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    longest = idempotency(store_name, TTL_SECONDS=MAX_SECONDS, LOCK_SECONDS=MAX_SECONDS)
    caches = {"CACHES": caches_with("redis", REDIS_URL)} if REDIS_URL else {}
    with override_settings(ARC=arc_with(IDEMPOTENCY=longest), **caches):
        first = post(editor)
        second = post(editor)
    assert first.status_code == 201, first.content
    assert second.status_code == 201 and second["X-Idempotency-Replayed"] == "true"
    assert second.content == first.content
    assert Product.objects.filter(sku="W-1").count() == 1


@pytest.mark.django_db
def test_a_database_that_cannot_ignore_conflicts_claims_with_a_plain_insert(editor, monkeypatch):
    """(Oracle.) The claim is a plain ``INSERT``; a repeat's fails on the unique key — inside
    a savepoint when in a transaction (this test's), which the repeat's look-up survives."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_arc.idempotency import stores

    monkeypatch.setattr(connection.features, "supports_ignore_conflicts", False)
    monkeypatch.setattr(stores, "_statements", {})
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("database"))):
        first = post(editor)
        with CaptureQueriesContext(connection) as ctx:
            again = post(editor)
    assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
    claim = next(q["sql"] for q in ctx.captured_queries if "INSERT" in q["sql"])
    assert claim.startswith('INSERT INTO "django_arc_idempotencyrecord"')
    assert "IGNORE" not in claim and "CONFLICT" not in claim
    assert Product.objects.count() == 1 and len(created_events()) == 1


@pytest.mark.django_db
def test_the_events_key_is_the_scoped_key_then_type_and_id(store, editor, org):
    response = post(editor, key="pay-42")
    row_id = response.json()["data"]["id"]
    user_id = editor.handler._force_user.pk
    scope = type(
        "Scope",
        (),
        {"kind": "member", "user_id": user_id, "organization_id": org.pk, "context": {}},
    )
    scoped = scoped_key("", caller_identity(scope), "POST", URL, "pay-42")
    (event,) = created_events()
    assert event.meta["idempotency_key"] == f"{scoped}:idem-products.created:{row_id}"
    assert event.dedupe_key == event.meta["idempotency_key"]


def test_text_ids_in_the_caller_identity_cannot_pass_for_its_separators():
    """A project whose users, clients or organizations have text ids: ``5:org:7`` in ``x``
    and ``5`` in ``7:org:x`` were one identity, so one caller's retry replayed the other's
    answer. Ids without ``:``, ``"`` or ``\\`` (integers, UUIDs) keep the identity, and so
    the scoped keys, already stored."""

    def scope(kind, user_id=None, client_id=None, organization_id=None):
        fields = {"kind": kind, "user_id": user_id, "client_id": client_id}
        return type("Scope", (), {**fields, "organization_id": organization_id, "context": {}})

    for kind, id_field in (("member", "user_id"), ("service", "client_id")):
        one = caller_identity(scope(kind, **{id_field: "5:org:7", "organization_id": "x"}))
        other = caller_identity(scope(kind, **{id_field: "5", "organization_id": "7:org:x"}))
        assert one != other
        quoted = caller_identity(scope(kind, **{id_field: '"5"', "organization_id": "7"}))
        assert quoted != caller_identity(scope(kind, **{id_field: "5", "organization_id": "7"}))
    assert caller_identity(scope("member", user_id=5, organization_id="7")) == "user:5:org:7"
    uuid = "0b7c5c1e-2d1f-4c55-9a4e-1f2a3b4c5d6e"
    assert caller_identity(scope("service", client_id=uuid)) == f"client:{uuid}:org:"


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422_and_writes_nothing(store, editor):
    assert post(editor).status_code == 201
    response = post(editor, {**BODY, "price": "10.00"})
    assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
    assert Product.objects.count() == 1
    # another path or method is another key, not a reuse
    row = Product.objects.get()
    response = editor.patch(
        f"{URL}{row.pk}/", {"name": "Renamed"}, format="json", HTTP_IDEMPOTENCY_KEY="key-1"
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_a_key_is_its_method_and_paths_own_and_reused_by_another_query(store, editor, org):
    """Method and path are part of what a key is executed once per (SPEC §10): the same key
    sent with another method or to another path is another key and runs; only another query
    string or body on the same method and path is 422 (as the OpenAPI schema says)."""
    row = ProductFactory(organization=org, price=4)
    assert post(editor, key="k").status_code == 201
    patched = editor.patch(
        f"{URL}{row.pk}/", {"name": "P"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    put = editor.put(f"{URL}{row.pk}/", {"name": "Q"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    for response in (patched, put):
        assert response.status_code == 200 and "X-Idempotency-Replayed" not in response
    assert_error(post(editor, key="k", url=f"{URL}?dry=1"), 422, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.django_db
def test_the_fingerprint_ignores_key_order_and_whitespace_of_the_body(store, editor):
    first = editor.post(
        URL,
        '{"name": "Widget", "sku": "W-1", "price": "9.50"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    again = editor.post(
        URL,
        '{"price":"9.50","sku":"W-1","name":"Widget"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert first.status_code == 201
    assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content


@pytest.mark.django_db
def test_without_a_key_every_request_runs(store, editor):
    assert post(editor, key=None).status_code == 201
    assert post(editor, {**BODY, "sku": "W-2"}, key=None).status_code == 201
    assert Product.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 0


# -- key validation ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key", ["", "x" * 256, "tab\there", "caf\u00e9", "bell\x07", "line\nbreak"], ids=repr
)
def test_a_malformed_key_is_400_naming_the_header_and_nothing_runs(store, editor, key):
    response = post(editor, key=key)
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "Idempotency-Key" in body["details"]
    assert Product.objects.count() == 0 and OutboxEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_nul_in_the_path_is_the_same_404_with_a_key(store, editor):
    """The record keeps the path for people reading it; PostgreSQL's text cannot hold a
    NUL, which must not turn the 404 a keyed request gets into a 500."""
    for key in (None, "n"):
        assert_error(
            editor.patch(
                f"{URL}%00/",
                {"name": "x"},
                format="json",
                **({"HTTP_IDEMPOTENCY_KEY": key} if key else {}),
            ),
            404,
            "NOT_FOUND",
        )
        action = post(editor, {"action": "double"}, key=key, url=f"{URL}%00/action/")
        assert_error(action, 404, "NOT_FOUND")


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["a", "x" * 255, "".join(chr(c) for c in range(0x20, 0x7F))])
def test_keys_of_1_to_255_printable_characters_are_accepted(store, editor, key):
    assert post(editor, key=key).status_code == 201


# -- scoping ---------------------------------------------------------------------------------------


def test_the_scoped_key_and_the_fingerprint_are_sha256_of_their_json():
    """The formulas stores hold and events carry (SPEC §10): computing them another way
    would turn a retry sent across an upgrade into a new request, or a 422."""
    namespace, identity, path = "api-\u00e9", "user:1:org:2", '/api/it"em\\s/\u2028'
    scope = json.dumps([namespace, identity, "POST", path, "k 1"], ensure_ascii=False)
    assert scoped_key(namespace, identity, "POST", path, "k 1") == sha256(scope)
    body = {"b": [1, {"z": "\u00e9", "a": None}], "a": Decimal("1.50"), 3: True}
    canonical = '{"3":true,"a":"1.50","b":[1,{"a":null,"z":"\u00e9"}]}'
    material = json.dumps(["POST", f"{path}?q=1"], ensure_ascii=False) + "\n" + canonical
    assert fingerprint("POST", f"{path}?q=1", body) == sha256(material)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.django_db
def test_a_key_sent_to_both_spellings_of_a_route_runs_once(store, editor):
    """``/products`` is the no-slash twin of ``/products/`` (docs/decisions.md): one
    operation, so one key runs once whichever spelling a retry uses, as a retry to the
    same spelling would; its events and record are those of the canonical path."""
    first = post(editor, key="twin")
    again = post(editor, key="twin", url=URL.rstrip("/"))
    assert first.status_code == again.status_code == 201
    assert again["X-Idempotency-Replayed"] == "true" and again.content == first.content
    assert Product.objects.count() == 1 and len(created_events()) == 1
    row = Product.objects.get()
    patched = editor.patch(
        f"{URL}{row.pk}", {"name": "Renamed"}, format="json", HTTP_IDEMPOTENCY_KEY="twin-2"
    )
    assert patched.status_code == 200, patched.content
    replayed = editor.patch(
        f"{URL}{row.pk}/", {"name": "Renamed"}, format="json", HTTP_IDEMPOTENCY_KEY="twin-2"
    )
    assert replayed["X-Idempotency-Replayed"] == "true" and replayed.content == patched.content
    assert OutboxEvent.objects.filter(type="idem-products.updated").count() == 1
    # the query string still counts: another one through the twin is another request
    other = editor.patch(
        f"{URL}{row.pk}?x=1", {"name": "Renamed"}, format="json", HTTP_IDEMPOTENCY_KEY="twin-2"
    )
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    if store == "database":
        paths = set(IdempotencyRecord.objects.values_list("path", flat=True))
        assert paths == {URL, f"{URL}{row.pk}/"}


@pytest.mark.django_db
def test_the_same_key_from_two_users_runs_twice(store, org):
    a, b = member_client(org, "editor"), member_client(org, "editor")
    first = post(a, key="shared")
    second = post(b, {**BODY, "sku": "W-2"}, key="shared")
    assert first.status_code == second.status_code == 201
    assert "X-Idempotency-Replayed" not in second
    # the same body too: A's request runs (and meets B's row), it never gets B's response
    assert post(b, {**BODY, "sku": "W-3"}, key="shared-2").status_code == 201
    fourth = post(a, {**BODY, "sku": "W-3"}, key="shared-2")
    assert_error(fourth, 409, "CONFLICT")
    assert "X-Idempotency-Replayed" not in fourth
    keys = [e.dedupe_key for e in created_events()]
    assert len(keys) == len(set(keys))


@pytest.mark.django_db
def test_the_same_key_in_two_organizations_runs_twice(store):
    from tests.factories import MembershipFactory

    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    user = member_client(org_a, "editor").handler._force_user
    MembershipFactory(user=user, organization=org_b, role="editor")
    from tests.helpers import client_for

    in_a = client_for(user, HTTP_X_ORGANIZATION_ID=str(org_a.pk))
    in_b = client_for(user, HTTP_X_ORGANIZATION_ID=str(org_b.pk))
    assert post(in_a, key="k").status_code == 201
    response = post(in_b, key="k")
    assert response.status_code == 201 and "X-Idempotency-Replayed" not in response
    assert set(Product.objects.values_list("organization_id", flat=True)) == {org_a.pk, org_b.pk}


@pytest.mark.django_db
@pytest.mark.parametrize("caller", ["service client", "member"])
def test_the_same_key_in_two_branches_runs_twice_and_never_reaches_the_other_branch(
    store, org, caller
):
    """Context keys are tenant dimensions (SPEC §5): one caller in two branches is two
    callers, and a key never replays (or writes) one branch's row to the other."""
    from django_arc.auth import ServiceClient
    from tests.helpers import client_for
    from tests.testapp.models import Note

    if caller == "service client":
        _, secret = ServiceClient.objects.create_with_key(name="pos", organization_id=org.pk)
        auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
        user = None
    else:
        auth = {"HTTP_X_ORGANIZATION_ID": str(org.pk)}
        user = member_client(org, "editor").handler._force_user
    a = client_for(user, HTTP_X_ARC_CONTEXT_BRANCH_ID="A", **auth)
    b = client_for(user, HTTP_X_ARC_CONTEXT_BRANCH_ID="B", **auth)
    notes = "/api/branch-notes/"
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency(store, ENABLED=True))):
        first = a.post(notes, {"text": "order 1"}, format="json", HTTP_IDEMPOTENCY_KEY="o-1")
        assert first.status_code == 201
        second = b.post(notes, {"text": "order 1"}, format="json", HTTP_IDEMPOTENCY_KEY="o-1")
        assert second.status_code == 201 and "X-Idempotency-Replayed" not in second
        assert second.json()["data"]["branch"] == "B"
        assert (
            a.post(notes, {"text": "order 1"}, format="json", HTTP_IDEMPOTENCY_KEY="o-1")[
                "X-Idempotency-Replayed"
            ]
            == "true"
        )
        a_row = f"{notes}{first.json()['data']['id']}/"
        assert (
            a.patch(a_row, {"text": "A2"}, format="json", HTTP_IDEMPOTENCY_KEY="p").status_code
            == 200
        )
        other = b.patch(a_row, {"text": "A2"}, format="json", HTTP_IDEMPOTENCY_KEY="p")
        assert_error(other, 404, "NOT_FOUND")
    assert sorted(Note.objects.values_list("branch", "text")) == [("A", "A2"), ("B", "order 1")]


@pytest.mark.django_db
def test_an_elevated_request_and_the_same_users_plain_one_do_not_share_a_key(
    store, org, django_user_model
):
    """Elevation widens what a request may write and read: its answer is never replayed to
    the same user's plain request, which is judged (here refused) on its own."""
    from tests.factories import MembershipFactory
    from tests.helpers import client_for

    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    MembershipFactory(user=root, organization=org, role="editor")
    elevated = client_for(root, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_SCOPE="platform")
    plain = client_for(root, HTTP_X_ORGANIZATION_ID=str(org.pk))
    body = {**BODY, "cost": "3.00"}
    assert post(elevated, body, key="e").status_code == 201
    refused = post(plain, body, key="e")
    assert "X-Idempotency-Replayed" not in refused
    assert_error(refused, 403, "FIELD_WRITE_DENIED")
    assert Product.objects.count() == 1


@pytest.mark.django_db
def test_an_elevated_replay_is_audited_too(store, org, django_user_model):
    """The elevation is recorded before the key is looked at: a replay of an elevated
    request adds its own ``arc.scope.elevated`` event, and nothing else."""
    from tests.factories import MembershipFactory
    from tests.helpers import client_for

    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    MembershipFactory(user=root, organization=org, role="editor")
    elevated = client_for(root, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_SCOPE="platform")
    first = post(elevated, key="e")
    assert first.status_code == 201, first.content
    replay = post(elevated, key="e")
    assert replay["X-Idempotency-Replayed"] == "true" and replay.content == first.content
    assert OutboxEvent.objects.filter(type="arc.scope.elevated").count() == 2
    assert Product.objects.count() == 1 and len(created_events()) == 1


@pytest.mark.django_db
def test_two_namespaces_sharing_a_store_do_not_collide(store, editor):
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency(store, NAMESPACE="api"))):
        assert post(editor, key="k").status_code == 201
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency(store, NAMESPACE="jobs"))):
        # (another sku: the same one would meet the unique constraint, not a replay)
        response = post(editor, {**BODY, "sku": "W-2"}, key="k")
        assert response.status_code == 201 and "X-Idempotency-Replayed" not in response
        assert post(editor, {**BODY, "sku": "W-2"}, key="k")["X-Idempotency-Replayed"] == "true"
    assert Product.objects.count() == 2


# -- every write path --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_update_delete_bulk_action_and_route_are_replayed_not_rerun(store, editor, org):
    admin = member_client(org, "admin")
    row = ProductFactory(organization=org, price=4)
    detail = f"{URL}{row.pk}/"
    calls = [
        (editor.patch, detail, {"name": "Patched"}),
        (editor.put, detail, {"name": "Put"}),
        (editor.post, f"{detail}action/", {"action": "double"}),
        (editor.post, f"{URL}raise-prices/", {}),
        (editor.post, f"{URL}bulk/", {"items": [{"name": "B", "sku": "B-1", "price": "1"}]}),
        (editor.patch, f"{URL}bulk/", {"items": [{"id": row.pk, "name": "Bulk"}]}),
    ]
    for call, url, body in calls:
        first = call(url, body, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{url}-{call.__name__}")
        assert first.status_code in (200, 201), (url, first.content)
        state = list(Product.objects.order_by("pk").values_list("name", "price"))
        events = OutboxEvent.objects.count()
        again = call(url, body, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{url}-{call.__name__}")
        assert again["X-Idempotency-Replayed"] == "true", url
        assert again.content == first.content
        assert list(Product.objects.order_by("pk").values_list("name", "price")) == state
        assert OutboxEvent.objects.count() == events
    first = admin.delete(detail, HTTP_IDEMPOTENCY_KEY="del")
    assert first.status_code == 200
    again = admin.delete(detail, HTTP_IDEMPOTENCY_KEY="del")
    assert again.status_code == 200 and again.content == first.content  # not a 404
    assert again["X-Idempotency-Replayed"] == "true"


VOLATILE = {"id", "ids", "sku", "name", "price", "created_at"}


def _stable(value):
    """A JSON answer without what differs between two rows of one request (their ids, skus,
    names, prices, creation times)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def stored_answers(store_name: str) -> list[bytes]:
    """Every answer the store holds, as bytes: the records' bodies, or the Redis values."""
    if store_name == "database":
        return [bytes(b or b"") for b in IdempotencyRecord.objects.values_list("body", flat=True)]
    from django.conf import settings
    from django_redis import get_redis_connection

    redis = get_redis_connection("redis")
    prefix = settings.CACHES["redis"]["KEY_PREFIX"]
    return [redis.get(k) or b"" for k in redis.scan_iter(f"{prefix}*")]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["create", "bulk", "action", "route"])
def test_a_json_retry_of_a_browsable_first_request_gets_the_json_answer(store, org, path):
    """A keyed request sent with ``Accept: text/html`` (DRF's browsable API) stored the HTML
    page it was answered with — the caller's name and its CSRF form token included — and a
    JSON retry of the key was replayed that page. What is stored is now the JSON answer a
    JSON-first request gets (status, body, headers), never a page: the first caller still
    sees its page, the retry gets JSON, replayed."""
    editor = member_client(org, "editor")
    ours, twin = (
        ProductFactory(organization=org, price=4),
        ProductFactory(organization=org, price=4),
    )
    url, bodies = {
        "create": (URL, [BODY, {**BODY, "sku": "W-2"}]),
        "bulk": (f"{URL}bulk/", [{"items": [{**BODY, "sku": f"B-{i}"}]} for i in (1, 2)]),
        "action": (f"{URL}{{}}/action/", [{"action": "double"}] * 2),
        "route": (f"{URL}raise-prices/", [{}, {}]),
    }[path]
    html = {"HTTP_ACCEPT": "text/html"}

    def send(i, key, **extra):
        target = url.format((ours, twin)[i].pk)
        return editor.post(target, bodies[i], format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)

    page = send(0, "html-first", **html)
    assert page.status_code in (200, 201), page.content
    assert page["Content-Type"].startswith("text/html")  # the first caller gets its page
    token = re.search(rb'"csrfToken": "([^"]+)"', page.content)[1]  # the page's CSRF token
    state = list(Product.objects.order_by("pk").values_list("sku", "price"))
    replay = send(0, "html-first")
    assert replay["X-Idempotency-Replayed"] == "true"
    assert list(Product.objects.order_by("pk").values_list("sku", "price")) == state
    json_first = send(1, "json-first")  # what a JSON-first request of the same kind gets
    assert replay.status_code == json_first.status_code == page.status_code
    assert replay["Content-Type"] == json_first["Content-Type"] == "application/json"
    assert _stable(replay.json()) == _stable(json_first.json())
    assert replay.content == json.dumps(replay.json(), separators=(",", ":")).encode()
    names = {k for k, _ in replay.items() if k != "X-Idempotency-Replayed"}
    assert names == {k for k, _ in json_first.items()}
    stored = stored_answers(store)
    assert stored and all(token not in answer and b"<html" not in answer for answer in stored)
    # an HTML retry gets the stored JSON answer too, replayed byte for byte
    again = send(0, "html-first", **html)
    assert again["X-Idempotency-Replayed"] == "true" and again.content == replay.content


@pytest.mark.django_db
def test_a_refusal_answered_as_a_page_is_stored_as_its_json_envelope(store, editor):
    """A 400 is stored like any answer below 500: answered as the browsable API's page, it
    is stored as the error envelope a JSON request gets, page and CSRF token left out."""
    invalid = {"name": "Widget"}
    page = post(editor, invalid, key="bad", HTTP_ACCEPT="text/html")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
    replay = post(editor, invalid, key="bad")
    assert replay["X-Idempotency-Replayed"] == "true" and replay.status_code == 400
    assert replay["Content-Type"] == "application/json"
    assert replay.json()["code"] == "VALIDATION_ERROR" and "sku" in replay.json()["details"]
    token = re.search(rb'"csrfToken": "([^"]+)"', page.content)[1]
    stored = stored_answers(store)
    assert stored and all(token not in answer and b"<html" not in answer for answer in stored)


@pytest.mark.django_db
def test_each_event_of_a_bulk_request_has_its_own_key(store, editor):
    items = [{"name": f"B{i}", "sku": f"B-{i}", "price": "1"} for i in range(3)]
    response = post(editor, {"items": items}, url=f"{URL}bulk/", key="bulk-1")
    assert response.status_code == 201, response.content
    ids = response.json()["data"]["ids"]
    keys = sorted(e.dedupe_key for e in created_events())
    prefix = keys[0].split(":")[0]
    assert re.fullmatch(r"[0-9a-f]{64}", prefix)
    assert keys == sorted(f"{prefix}:idem-products.created:{pk}" for pk in ids)


@pytest.mark.django_db
def test_two_events_of_one_type_and_row_in_one_request_keep_two_keys(
    store, editor, org, monkeypatch
):
    """A route updating one row twice emits two ``updated`` events of that row: the second
    gets ``<scoped>:<type>#2:<id>``, so the outbox keeps both, and a retry (same writes, same
    order, same keys) is replayed."""
    from django_arc import arc

    row = ProductFactory(organization=org, price=4, name="start")
    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")

    def workflow(view, request, **kwargs):
        instance = view.get_queryset().get(pk=row.pk)
        view.perform_update(instance, {"name": "step 1"})
        view.perform_update(instance, {"name": "step 2"})
        return {"ok": True}

    monkeypatch.setattr(spec, "handler", workflow)
    url = f"{URL}raise-prices/"
    assert editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="w").status_code == 200
    updated = list(OutboxEvent.objects.filter(type="idem-products.updated").order_by("id"))
    assert [e.payload["data"]["name"] for e in updated] == ["step 1", "step 2"]
    first, second = (e.dedupe_key for e in updated)
    prefix = first.split(":")[0]
    assert first == f"{prefix}:idem-products.updated:{row.pk}"
    assert second == f"{prefix}:idem-products.updated#2:{row.pk}"
    again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="w")
    assert again["X-Idempotency-Replayed"] == "true"
    assert OutboxEvent.objects.filter(type="idem-products.updated").count() == 2


@pytest.mark.django_db
def test_a_route_reading_a_body_no_parser_takes_runs_with_a_key(store, editor, monkeypatch):
    """A non-raw route that reads the bytes itself (a CSV import): no parser takes its
    content type, which is no error while nothing asks for ``request.data``. A key must not
    turn it into a 415: the fingerprint then hashes the bytes, so a retry is replayed and
    another body under the same key is refused."""
    from django_arc import arc

    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")

    def csv_import(view, request, **kwargs):
        return {"lines": request.body.decode().splitlines()}

    monkeypatch.setattr(spec, "handler", csv_import)

    def send(body, **headers):
        return editor.generic(
            "POST", f"{URL}raise-prices/", body, content_type="text/csv", **headers
        )

    plain = send(b"a,b\n1,2\n")
    assert plain.json()["data"] == {"lines": ["a,b", "1,2"]}
    first = send(b"a,b\n1,2\n", HTTP_IDEMPOTENCY_KEY="csv")
    assert first.status_code == 200 and first.content.startswith(b'{"success":true')
    again = send(b"a,b\n1,2\n", HTTP_IDEMPOTENCY_KEY="csv")
    assert again.content == first.content and again["X-Idempotency-Replayed"] == "true"
    assert_error(send(b"a,b\n1,3\n", HTTP_IDEMPOTENCY_KEY="csv"), 422, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.django_db
def test_a_keyed_body_no_parser_takes_beyond_the_upload_limit_is_413_and_claims_nothing(
    store, editor, monkeypatch, settings
):
    """Such a body is hashed whole (docs/idempotency.md): past Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` a keyed request is 413 in the envelope, the route does
    not run and the key stays free, while the same request without a key reaches a route
    that never reads the body."""
    from django_arc import arc

    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")
    ran = []
    monkeypatch.setattr(spec, "handler", lambda view, request, **kw: ran.append(1) or {})
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    url, body = f"{URL}raise-prices/", b"a,b\n" + b"1,2\n" * 25

    def send(**headers):
        return editor.generic("POST", url, body, content_type="text/csv", **headers)

    assert send().status_code == 200 and ran == [1]
    assert_error(send(HTTP_IDEMPOTENCY_KEY="big"), 413, "PAYLOAD_TOO_LARGE")
    assert ran == [1]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    assert send(HTTP_IDEMPOTENCY_KEY="big").status_code == 200 and ran == [1, 1]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["204", "csv"])
def test_an_answer_without_json_is_replayed_with_its_own_headers(store, editor, monkeypatch, kind):
    from django.http import HttpResponse
    from rest_framework.response import Response

    from django_arc import arc

    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")

    def handler(view, request, **kwargs):
        if kind == "204":
            return Response(status=204)
        return HttpResponse("a,b\n1,2\n", content_type="text/csv; charset=utf-8")

    monkeypatch.setattr(spec, "handler", handler)
    url = f"{URL}raise-prices/"
    first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="r")
    again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="r")
    assert again["X-Idempotency-Replayed"] == "true"
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.get("Content-Type") == first.get("Content-Type")
    assert ("Content-Type" in again) is (kind == "csv")


@pytest.mark.django_db
@pytest.mark.parametrize("status", [201, 409])
def test_a_replay_carries_the_headers_of_the_first_answer(store, editor, monkeypatch, status):
    """``Location``, ``Content-Disposition`` or ``Retry-After`` a route (or an error it
    answered) set are part of its answer: a replay carries them, as it carries the bytes;
    the headers DRF gives every answer of the view are its own again, and the request id is
    the retry's."""
    from django.http import HttpResponse
    from rest_framework.response import Response

    from django_arc import arc

    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")

    def handler(view, request, **kwargs):
        if status == 409:
            return Response({"busy": True}, status=409, headers={"Retry-After": "7"})
        response = HttpResponse("a,b\n", content_type="text/csv", status=201)
        response["Location"] = "/exports/7/"
        response["Content-Disposition"] = 'attachment; filename="caf\u00e9 7.csv"'
        return response

    monkeypatch.setattr(spec, "handler", handler)
    url = f"{URL}raise-prices/"
    first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="h")
    again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="h")
    assert again.get("X-Idempotency-Replayed") == "true", (
        first.status_code,
        first.content,
        again.status_code,
        again.content,
    )
    assert "X-Idempotency-Replayed" not in first
    assert (again.status_code, again.content) == (first.status_code, first.content) != (0, b"")
    assert first.status_code == status
    own = ("Retry-After",) if status == 409 else ("Location", "Content-Disposition")
    for name in (*own, "Content-Type", "Allow", "Vary"):
        assert again.get(name) == first.get(name) and first.get(name), name
    assert again["X-Request-Id"] != first["X-Request-Id"]


def _tamper_stored_headers(store_name: str, value) -> None:
    """Overwrite the stored headers of every finished key with ``value`` (a record or cache
    entry edited by hand, or written by a buggy tool)."""
    if store_name == "database":
        text = value if value == "{not json" else json.dumps({"h": value})
        assert IdempotencyRecord.objects.update(headers=text) == 1
        return
    from django.conf import settings
    from django_redis import get_redis_connection

    redis = get_redis_connection("redis")
    prefix = settings.CACHES["redis"]["KEY_PREFIX"]
    done = 0
    for key in redis.scan_iter(f"{prefix}*"):
        stored = redis.get(key)
        if stored and stored.startswith(b"D"):  # finished
            head, _, body = stored[1:].partition(b"\n")
            meta = {**json.loads(head), "h": value}
            redis.set(key, b"D" + json.dumps(meta).encode() + b"\n" + body, keepttl=True)
            done += 1
    assert done == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tampered",
    [
        5,
        {"Location": "/x/"},
        [["Location"]],
        "ab",
        [5],
        # pairs no response can carry: Django's BadHeaderError / UnicodeEncodeError
        [["Location", "/x/\r\nSet-Cookie: s=1"]],
        [["Location\n", "/x/"]],
        [["Locatión", "/x/"]],
    ],
)
def test_stored_headers_of_another_shape_are_replayed_as_none_not_a_500(
    store, editor, monkeypatch, caplog, tampered
):
    """A finished key whose stored headers are not ``[name, value]`` pairs (``{"h": 5}``,
    edited by hand) was a 500 on every retry of the key (``_pairs`` unpacking an int): the
    retry gets the stored status and body without those headers, and a WARNING says so.
    So are pairs a response cannot carry (a line break, a name that is not ASCII), which
    setting on the replay raised (rev-fixes39)."""
    _replayed_after_tampering(store, editor, monkeypatch, caplog, tampered)


@pytest.mark.django_db
def test_a_database_record_whose_headers_column_is_not_json_is_replayed_without_them(
    editor, monkeypatch, caplog
):
    """The ``database`` store's ``headers`` column edited into text that is not JSON was a
    500 (``JSONDecodeError``) on every retry: replayed without headers, with the WARNING."""
    with idempotency_store("database"):
        _replayed_after_tampering("database", editor, monkeypatch, caplog, "{not json")


def _replayed_after_tampering(store, editor, monkeypatch, caplog, tampered):
    from django.http import HttpResponse

    from django_arc import arc

    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")

    def handler(view, request, **kwargs):
        response = HttpResponse("a,b\n", content_type="text/csv", status=201)
        response["Location"] = "/exports/7/"
        return response

    monkeypatch.setattr(spec, "handler", handler)
    url = f"{URL}raise-prices/"
    first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="h")
    assert first.status_code == 201 and first["Location"] == "/exports/7/"
    _tamper_stored_headers(store, tampered)
    with caplog.at_level(logging.WARNING, logger="django_arc.idempotency"):
        again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="h")
    assert (again.status_code, again.content) == (201, b"a,b\n"), again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert "Location" not in again
    assert any("stored headers" in r.getMessage() for r in caplog.records), caplog.text


def _seen8a_rewrite_cache_entry(rewrite) -> None:
    """Replace the one finished cache entry's value with ``rewrite(head, body)``."""
    from django.conf import settings
    from django_redis import get_redis_connection

    redis = get_redis_connection("redis")
    prefix = settings.CACHES["redis"]["KEY_PREFIX"]
    done = 0
    for key in redis.scan_iter(f"{prefix}*"):
        stored = redis.get(key)
        if stored and stored.startswith(b"D"):
            head, _, body = stored[1:].partition(b"\n")
            redis.set(key, rewrite(json.loads(head), body), keepttl=True)
            done += 1
    assert done == 1


def _seen8a_counting_route(monkeypatch):
    """The ``raise_prices`` route answering a CSV 201; returns the list its calls append to."""
    from django.http import HttpResponse

    from django_arc import arc

    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")
    calls = []

    def handler(view, request, **kwargs):
        calls.append(1)
        return HttpResponse(f"a,{len(calls)}\n", content_type="text/csv", status=201)

    monkeypatch.setattr(spec, "handler", handler)
    return calls


_SEEN8A_UNREADABLE = {
    "head not json": lambda head, body: b"D{not json\n" + body,
    "head not a dict": lambda head, body: b"D[1, 2]\n" + body,
    "status text": lambda head, body: (
        b"D" + json.dumps({**head, "status": "x"}).encode() + b"\n" + body
    ),
    "status true": lambda head, body: (
        b"D" + json.dumps({**head, "status": True}).encode() + b"\n" + body
    ),
    "status 0": lambda head, body: b"D" + json.dumps({**head, "status": 0}).encode() + b"\n" + body,
    "no status": lambda head, body: (
        b"D" + json.dumps({k: v for k, v in head.items() if k != "status"}).encode() + b"\n" + body
    ),
    "unknown kind": lambda head, body: b"Z" + json.dumps(head).encode() + b"\n" + body,
}


@pytest.mark.redis
@pytest.mark.django_db
@pytest.mark.parametrize("tampered", list(_SEEN8A_UNREADABLE))
def test_a_cache_entry_with_no_readable_answer_is_taken_over_not_a_500(
    editor, monkeypatch, caplog, tampered
):
    """A ``cache`` entry whose head is not a JSON object, or whose status no response can
    have (edited by hand, written by another tool), was a 500 on every retry of the key
    until it expired (``json.loads``, ``int("x")``, Django refusing status 0): it holds no
    answer to replay, so the retry takes the key over and runs, with a WARNING, as a
    ``database`` record holding no answer is taken over; its answer is then replayed."""
    calls = _seen8a_counting_route(monkeypatch)
    url = f"{URL}raise-prices/"
    with idempotency_store("cache"):
        first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        assert (first.status_code, first.content) == (201, b"a,1\n")
        _seen8a_rewrite_cache_entry(_SEEN8A_UNREADABLE[tampered])
        with caplog.at_level(logging.WARNING, logger="django_arc.idempotency"):
            again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        third = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
    assert (again.status_code, again.content) == (201, b"a,2\n"), again.content
    assert "X-Idempotency-Replayed" not in again
    assert any("can be read" in r.getMessage() for r in caplog.records), caplog.text
    assert (third.status_code, third.content) == (201, b"a,2\n")
    assert third["X-Idempotency-Replayed"] == "true"
    assert len(calls) == 2


@pytest.mark.redis
@pytest.mark.django_db
def test_two_retries_taking_over_one_unreadable_cache_entry_run_the_route_once(editor, monkeypatch):
    """Two retries that both read the same unreadable ``cache`` entry take it over with a
    compare-and-set: the second retry runs whole between the first one's read and its
    take-over here (the first is then the slower of two concurrent retries). The first
    finds the key changed since it read it: a 409, nothing run; the route ran once, and its
    answer is what the key replays."""
    calls = _seen8a_counting_route(monkeypatch)
    url = f"{URL}raise-prices/"
    take_over = stores.CacheStore._take_over
    overtaken = []

    def overtaken_first(self, request, key, value, claim, token):
        if not overtaken:
            overtaken.append(None)  # the nested retry takes the key over as it is
            overtaken[0] = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        return take_over(self, request, key, value, claim, token)

    with idempotency_store("cache"):
        first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        assert (first.status_code, first.content) == (201, b"a,1\n")
        _seen8a_rewrite_cache_entry(_SEEN8A_UNREADABLE["head not json"])
        monkeypatch.setattr(stores.CacheStore, "_take_over", overtaken_first)
        slower = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        monkeypatch.setattr(stores.CacheStore, "_take_over", take_over)
        replay = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
    [faster] = overtaken
    assert (faster.status_code, faster.content) == (201, b"a,2\n"), faster.content
    assert_error(slower, 409, "IDEMPOTENCY_CONFLICT")
    assert (replay.status_code, replay.content) == (201, b"a,2\n")
    assert replay["X-Idempotency-Replayed"] == "true"
    assert len(calls) == 2


def _rf44_reply_lost_once(monkeypatch, script) -> list:
    """The first run of ``script`` loses its reply: Redis runs it, then the connection drops
    (a ``CLIENT KILL``, a network cut) and ``redis_alias.command`` sends it again. Returns
    the list the lost reply is appended to."""
    exchange = redis_alias._exchange
    lost = []

    def reply_lost(client, args):
        reply = exchange(client, args)
        if args[:2] == ("EVALSHA", script.sha) and not lost:
            lost.append(reply)
            client.connection.disconnect()  # what redis-py does when the socket closes
            raise redis_exceptions.ConnectionError("Connection closed by server.")
        return reply

    monkeypatch.setattr(redis_alias, "_exchange", reply_lost)
    return lost


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db
def test_a_take_over_whose_reply_was_lost_and_was_sent_again_is_still_ours(editor, monkeypatch):
    """The connection can drop after Redis ran the script taking an unreadable ``cache``
    entry over, before its reply came: ``redis_alias.command`` sends it again, and it finds
    the claim it had just set, not the entry it was to replace. That claim is the request's
    own: the request runs. Taken for another request's, it was a 409 with nothing running,
    and every retry a 409 until ``LOCK_SECONDS`` passed (as a lost claim's reply was,
    ``test_a_claim_whose_reply_was_lost_and_was_sent_again_is_still_ours``)."""
    calls = _seen8a_counting_route(monkeypatch)
    url = f"{URL}raise-prices/"
    with idempotency_store("cache"):
        first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        assert (first.status_code, first.content) == (201, b"a,1\n")
        _seen8a_rewrite_cache_entry(_SEEN8A_UNREADABLE["status 0"])
        lost = _rf44_reply_lost_once(monkeypatch, stores._SET_IF_OURS)
        again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        replay = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
    assert lost == [1]  # the take-over did set the key; its reply never came
    assert (again.status_code, again.content) == (201, b"a,2\n"), again.content
    assert "X-Idempotency-Replayed" not in again
    assert (replay.status_code, replay.content) == (201, b"a,2\n")
    assert replay["X-Idempotency-Replayed"] == "true"
    assert len(calls) == 2


@pytest.mark.redis
@pytest.mark.django_db
@pytest.mark.parametrize("content_type", [5, None, ["text/csv"]])
def test_a_cache_entry_whose_content_type_is_not_text_is_replayed_without_it(
    editor, monkeypatch, caplog, content_type
):
    """A ``cache`` entry whose ``"ct"`` is not text was a 500 on every retry: the stored
    status and body are replayed without a ``Content-Type``, with a WARNING, as stored
    headers of another shape are replayed without them."""
    calls = _seen8a_counting_route(monkeypatch)
    url = f"{URL}raise-prices/"
    with idempotency_store("cache"):
        first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        assert first.status_code == 201
        _seen8a_rewrite_cache_entry(
            lambda head, body: (
                b"D" + json.dumps({**head, "ct": content_type}).encode() + b"\n" + body
            )
        )
        with caplog.at_level(logging.WARNING, logger="django_arc.idempotency"):
            again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
    assert (again.status_code, again.content) == (201, b"a,1\n"), again.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert "Content-Type" not in again
    assert any("Content-Type is not text" in r.getMessage() for r in caplog.records)
    assert len(calls) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("status", [0, 99, 600, 32767])
def test_a_database_record_whose_status_no_response_can_have_is_taken_over(
    editor, monkeypatch, caplog, status
):
    """A ``database`` record whose ``status`` column was edited to one no response can have
    was a 500 on every retry (Django refuses the status): taken over, as the ``cache``
    store's unreadable entry is; the retry runs and its answer is replayed after it."""
    calls = _seen8a_counting_route(monkeypatch)
    url = f"{URL}raise-prices/"
    with idempotency_store("database"):
        first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        assert first.status_code == 201
        assert IdempotencyRecord.objects.update(status=status) == 1
        with caplog.at_level(logging.WARNING, logger="django_arc.idempotency"):
            again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        third = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
    assert (again.status_code, again.content) == (201, b"a,2\n"), again.content
    assert "X-Idempotency-Replayed" not in again
    assert any("can be read" in r.getMessage() for r in caplog.records), caplog.text
    assert (third.status_code, third["X-Idempotency-Replayed"]) == (201, "true")
    assert IdempotencyRecord.objects.get().status == 201
    assert len(calls) == 2


@pytest.mark.django_db
def test_a_database_record_edited_to_no_status_and_no_lock_is_taken_over(editor, monkeypatch):
    """A finished record whose ``status`` was edited to null (its ``locked_until`` is null
    once answered) holds no answer and no live claim: the retry takes it over and runs, as
    for a claim whose lock ran out; the take-over's condition (``locked_until <= now``) did
    not match a null lock, and every retry was a 409 until the record expired."""
    calls = _seen8a_counting_route(monkeypatch)
    url = f"{URL}raise-prices/"
    with idempotency_store("database"):
        first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        assert first.status_code == 201
        assert IdempotencyRecord.objects.update(status=None, locked_until=None) == 1
        again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
    assert (again.status_code, again.content) == (201, b"a,2\n"), again.content
    assert "X-Idempotency-Replayed" not in again
    assert len(calls) == 2


@pytest.mark.django_db
def test_a_replay_keeps_a_content_type_longer_than_255_characters(store, editor, monkeypatch):
    """A ``Content-Type`` with long parameters (a ``multipart/related`` answer naming its
    root part) is replayed whole: the ``database`` store cut it to 255 characters."""
    from django.http import HttpResponse

    from django_arc import arc

    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")
    start = "<" + "root." * 60 + "example.org>"
    content_type = f'multipart/related; type="application/xop+xml"; start="{start}"; boundary=b'
    assert len(content_type) > 255
    monkeypatch.setattr(
        spec,
        "handler",
        lambda view, request, **kw: HttpResponse(b"--b--", content_type=content_type),
    )
    url = f"{URL}raise-prices/"
    first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="ct")
    again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="ct")
    assert first["Content-Type"] == content_type
    assert again["X-Idempotency-Replayed"] == "true"
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again["Content-Type"] == content_type


@pytest.mark.django_db
def test_raw_routes_and_safe_methods_ignore_the_header(store, editor):
    for _ in range(2):
        response = editor.post(
            f"{URL}hook/", b"raw", content_type="text/plain", HTTP_IDEMPOTENCY_KEY=""
        )
        assert response.status_code == 200 and "X-Idempotency-Replayed" not in response
    assert editor.get(URL, HTTP_IDEMPOTENCY_KEY="").status_code == 200
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.django_db
def test_the_setting_turns_it_on_for_every_resource_and_the_option_off(editor, org):
    other = "/api/t-products/"
    with override_settings(ARC=arc_with(IDEMPOTENCY={"ENABLED": True})):
        first = post(editor, url=other, key="g")
        assert post(editor, url=other, key="g")["X-Idempotency-Replayed"] == "true"
        assert first.status_code == 201
    with override_settings(ARC=arc_with(IDEMPOTENCY={"ENABLED": False})):
        # off globally: the header is not even validated on other resources
        assert post(editor, {**BODY, "sku": "Z"}, url=other, key="").status_code == 201
    IdempotentProductResource.idempotent = False
    try:
        assert post(editor, {**BODY, "sku": "Y"}, key="").status_code == 201
    finally:
        IdempotentProductResource.idempotent = True


# -- what is stored ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_4xx_is_stored_and_replayed(store, editor):
    first = post(editor, {"name": "No price"}, key="bad")
    assert_error(first, 400, "VALIDATION_ERROR")
    again = post(editor, {"name": "No price"}, key="bad")
    assert again.status_code == 400 and again.content == first.content
    assert again["X-Idempotency-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic_requests", [False, True], ids=["autocommit", "atomic_requests"])
def test_a_write_error_the_view_catches_is_answered_as_without_a_key(
    store, org, monkeypatch, atomic_requests
):
    """A project's ``create()`` that catches its write's database error (a taken sku) and
    answers a 409 of its own answers the same with a key: stored, replayed, nothing written.
    On the ``database`` store the failed write had marked the request's transaction for
    rollback, and storing the answer in it failed: a 500 where the unkeyed request got 409."""
    from django.db import IntegrityError, connection
    from rest_framework.response import Response

    from django_arc import arc

    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    editor = member_client(org, "editor")
    ProductFactory(organization=org, sku="W-1")
    viewset = arc.get_resource("idem-products").as_viewset()
    create = viewset.create

    def catching(self, request, *args, **kwargs):
        try:
            return create(self, request, *args, **kwargs)
        except IntegrityError:
            return Response({"taken": True}, status=409)

    monkeypatch.setattr(viewset, "create", catching)
    plain = post(editor, key=None)
    assert plain.status_code == 409 and plain.json() == {"taken": True}
    first = post(editor, key="taken")
    assert first.status_code == 409 and first.content == plain.content
    again = post(editor, key="taken")
    assert again.status_code == 409 and again.content == first.content
    assert again["X-Idempotency-Replayed"] == "true"
    assert Product.objects.filter(sku="W-1").count() == 1
    assert not created_events()


@pytest.mark.django_db
def test_a_body_with_a_lone_surrogate_is_the_same_400_with_a_key(store, editor):
    """JSON may carry a lone surrogate ("\\ud800"); hashing the body for the fingerprint
    must not fail on it: the serializer refuses it, keyed or not, and the 400 is replayed."""
    body = b'{"name": "a", "sku": "s\\ud800", "price": "1.00"}'

    def send(**headers):
        return editor.generic("POST", URL, body, content_type="application/json", **headers)

    plain = send()
    assert_error(plain, 400, "VALIDATION_ERROR")
    keyed = send(HTTP_IDEMPOTENCY_KEY="surrogate")
    assert_error(keyed, 400, "VALIDATION_ERROR")
    assert keyed.json()["details"] == plain.json()["details"]
    again = send(HTTP_IDEMPOTENCY_KEY="surrogate")
    assert again.content == keyed.content and again["X-Idempotency-Replayed"] == "true"
    assert not Product.objects.exists() and not created_events()


@pytest.mark.django_db
def test_a_5xx_is_not_stored_and_a_retry_runs(store, editor, monkeypatch):
    def explode(self, request, data):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(IdempotentProductResource, "before_create", explode)
    editor.raise_request_exception = False  # the hook's bug, reported as Django reports it
    assert_error(post(editor), 500, "INTERNAL_ERROR")
    assert Product.objects.count() == 0
    monkeypatch.undo()
    response = post(editor)
    assert response.status_code == 201 and "X-Idempotency-Replayed" not in response
    assert Product.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic_requests", [False, True])
@pytest.mark.parametrize("where", ["action", "route"])
def test_a_route_answering_5xx_under_a_key_leaves_no_write_for_the_retry_to_repeat(
    store, org, monkeypatch, atomic_requests, where
):
    """A route or action that writes, then answers a 5xx of its own (a payment gateway
    down): the key is given up and the retry runs anew, so the first run's writes must not
    stand, or the retry makes them a second time. The ``database`` store rolls them back
    with the request's transaction; the ``cache`` store, whose route commits its own, must
    roll the route's back as well (on it the action doubled the price twice)."""
    from django.db import connection
    from rest_framework.response import Response

    from django_arc import arc

    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    row = ProductFactory(organization=org, price=4)
    resource = arc.get_resource("idem-products")
    if where == "action":
        spec = resource.actions["double"]
        url, body = f"{URL}{row.pk}/action/", {"action": "double"}
    else:
        spec = next(s for s in resource.routes if s.name == "raise_prices")
        url, body = f"{URL}raise-prices/", {}
    handler = spec.handler

    def gateway_down(*args, **kwargs):
        handler(*args, **kwargs)
        return Response({"gateway": "down"}, status=503)

    with monkeypatch.context() as patch:
        patch.setattr(spec, "handler", gateway_down)
        first = editor.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="gw")
    assert first.status_code == 503
    row.refresh_from_db()
    assert row.price == 4
    assert not OutboxEvent.objects.exists()
    retry = editor.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="gw")
    assert retry.status_code == 200 and "X-Idempotency-Replayed" not in retry
    row.refresh_from_db()
    assert row.price == (8 if where == "action" else 5)
    assert OutboxEvent.objects.count() == (1 if where == "action" else 0)
    again = editor.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="gw")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == retry.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("failure", ["answers 503", "raises"])
def test_a_create_override_failing_after_its_write_leaves_nothing_for_the_retry_to_repeat(
    store, org, monkeypatch, failure
):
    """A project's ``create()`` that saves through the framework's, then answers a 5xx of
    its own or raises (the payment gateway it calls next is down): the key is given up and
    the retry runs anew, so the first write and its event must not stand on either store.
    On the ``cache`` store without ``ATOMIC_REQUESTS`` the write had committed in its own
    transaction, and the retry made a second row and a second event."""
    from rest_framework.response import Response

    from django_arc import arc

    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    viewset = arc.get_resource("idem-products").as_viewset()
    create = viewset.create

    def gateway_down(self, request, *args, **kwargs):
        create(self, request, *args, **kwargs)
        if failure == "raises":
            raise RuntimeError("gateway down")
        return Response({"gateway": "down"}, status=503)

    with monkeypatch.context() as patch:
        patch.setattr(viewset, "create", gateway_down)
        first = post(editor, key="gw")
    assert first.status_code == (503 if failure == "answers 503" else 500)
    assert not Product.objects.exists() and not created_events()
    retry = post(editor, key="gw")
    assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
    assert Product.objects.count() == 1 and len(created_events()) == 1
    again = post(editor, key="gw")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == retry.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "how", ["alone", "after a save", "in an atomic block", "after a write of its own"]
)
@pytest.mark.parametrize("keyed", [False, True], ids=["no key", "key"])
def test_a_create_override_catching_a_failed_save_goes_on_as_without_a_key(
    store, org, monkeypatch, keyed, how
):
    """A project's ``create()`` saves a row whose ``sku`` is taken (after saving another,
    alone, or inside a ``transaction.atomic()`` of its own), catches the ``IntegrityError``
    and answers 200 with the row that exists, which it reads. Without a key the failed
    save's transaction had ended and the view went on, the other row standing. Under a key
    the failed write, with no savepoint of its own, only marked the request's transaction
    for rollback: the read failed ("You can't execute queries until the end of the 'atomic'
    block"), a 500, and the other row was gone — on the ``cache`` store since its keyed
    requests run in one transaction, on the ``database`` store before. The answer, rows and
    events are now those without a key, and the answer is replayed. A row the view wrote
    itself, through the ORM, before the failed save stands too, as without a key: the
    failed save is undone to a savepoint of its own, not by rolling back the request's
    transaction, whatever the view wrote in it before."""
    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    taken = ProductFactory(organization=org, name="Taken", sku="TAKEN")
    own = []
    viewset = arc.get_resource("idem-products").as_viewset()

    def create_or_existing(self, request, *args, **kwargs):
        first = None
        if how == "after a save":
            first = self.perform_create({"name": "First", "sku": "F-1", "price": "1.00"})
        if how == "after a write of its own":
            own.append(Product.objects.create(organization=org, name="Own", sku="O-1", price=1))
        try:
            with transaction.atomic() if how == "in an atomic block" else nullcontext():
                self.perform_create(request.data)
        except IntegrityError:
            existing = Product.objects.get(organization=org, sku=request.data["sku"])
            made = first.instance.pk if first is not None else None
            return Response({"first": made, "existing": existing.pk}, status=200)
        return Response({}, status=201)

    monkeypatch.setattr(viewset, "create", create_or_existing)
    body = {"name": "Again", "sku": "TAKEN", "price": "2.00"}
    answer = post(editor, body=body, key="k" if keyed else None)
    assert answer.status_code == 200, answer.content
    made = list(Product.objects.filter(sku="F-1").values_list("pk", flat=True))
    assert len(made) == (1 if how == "after a save" else 0)
    assert answer.json() == {"first": made[0] if made else None, "existing": taken.pk}
    assert list(Product.objects.filter(sku="O-1")) == own
    assert Product.objects.count() == 1 + len(made) + len(own)
    assert [e.payload["id"] for e in created_events()] == made
    if keyed:
        again = post(editor, body=body, key="k")
        assert again["X-Idempotency-Replayed"] == "true" and again.content == answer.content
        assert Product.objects.count() == 1 + len(made) + len(own)
        assert len(created_events()) == len(made)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic", [False, True], ids=["bare", "in an atomic block"])
def test_a_create_override_catching_its_own_failed_orm_write_needs_an_atomic_block_under_a_key(
    store, org, monkeypatch, atomic
):
    """What idempotency.md says of a write of the project's own whose error the view
    catches: under a key the view runs in the request's transaction, and Django's
    ``save()`` marks it for rollback as it fails (as under ``ATOMIC_REQUESTS``), so the
    view's next query fails, a 500 whose key is given up, nothing committed — where the
    same view without a key went on. Inside a ``transaction.atomic()`` of its own the
    failed write is undone alone and the view goes on, its answer stored and replayed."""
    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    ProductFactory(organization=org, name="Taken", sku="TAKEN")
    viewset = arc.get_resource("idem-products").as_viewset()

    def create_noting_a_duplicate(self, request, *args, **kwargs):
        try:
            with transaction.atomic() if atomic else nullcontext():
                Product.objects.create(organization=org, name="Dup", sku="TAKEN", price=1)
        except IntegrityError:
            pass
        return Response({"id": self.perform_create(request.data).instance.pk}, status=201)

    monkeypatch.setattr(viewset, "create", create_noting_a_duplicate)
    answer = post(editor, key="own")
    again = post(editor, key="own")
    if atomic:
        assert answer.status_code == 201, answer.content
        assert again["X-Idempotency-Replayed"] == "true" and again.content == answer.content
        assert sorted(Product.objects.values_list("sku", flat=True)) == ["TAKEN", "W-1"]
        assert len(created_events()) == 1
    else:
        assert_error(answer, 500, "INTERNAL_ERROR")
        assert_error(again, 500, "INTERNAL_ERROR")  # run anew: the key was given up
        assert "X-Idempotency-Replayed" not in again
        assert list(Product.objects.values_list("sku", flat=True)) == ["TAKEN"]
        assert created_events() == []


@pytest.mark.django_db(transaction=True)
def test_a_view_returning_no_response_under_a_key_leaves_no_transaction_open(
    store, org, monkeypatch
):
    """A project's ``create()`` saves, then returns nothing: DRF refuses it as the answer is
    finalized, before the key's end ran. The keyed request's transaction stayed open on the
    thread's connection — on the ``cache`` store since its keyed requests run in one, on
    the ``database`` store before — which a server then closes inside it, and every later
    request of that thread failed; and the key stayed claimed, each retry a 409 until
    ``LOCK_SECONDS``. Now the write is rolled back, the connection left outside any
    transaction, and the key given up: the retry writes once."""
    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    viewset = arc.get_resource("idem-products").as_viewset()
    create = viewset.create

    def returns_nothing(self, request, *args, **kwargs):
        create(self, request, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(viewset, "create", returns_nothing)
        failed = post(editor, key="none")
    assert failed.status_code == 500
    assert not connection.in_atomic_block and connection.get_autocommit()
    assert not Product.objects.exists() and not created_events()
    retry = post(editor, key="none")
    assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
    assert Product.objects.count() == 1 and len(created_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_cache_store_claim_whose_transaction_cannot_open_is_given_up(org, monkeypatch):
    """The database goes away between the claim in Redis and the request's transaction:
    the request fails, and its key is given up at once, not locked for ``LOCK_SECONDS``
    with nothing running (the retry runs, not 409)."""
    from django.db import OperationalError

    from django_arc.idempotency import execution

    if not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    editor = member_client(org, "editor")
    editor.raise_request_exception = False

    class Unreachable:
        def __enter__(self):
            raise OperationalError("server closed the connection unexpectedly")

    caches = caches_with("redis", REDIS_URL)
    settings_ = arc_with(IDEMPOTENCY=idempotency("cache", LOCK_SECONDS=60))
    with override_settings(CACHES=caches, ARC=settings_):
        with monkeypatch.context() as patch:
            patch.setattr(execution, "atomic_on", lambda databases, **_: Unreachable())
            failed = post(editor, key="gone")
        assert failed.status_code >= 500 and failed.json()["success"] is False
        assert not Product.objects.exists()
        retry = post(editor, key="gone")
    assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
    assert Product.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_store_that_fails_to_release_a_5xx_key_still_answers_the_500_envelope(org, monkeypatch):
    """The database goes away mid-request: the route fails (500) and giving the key up
    fails too. The client gets the 500 in the envelope, not an error escaping the view, no
    transaction stays open, and the claim frees itself after ``LOCK_SECONDS``."""
    from django.db import OperationalError, connection

    editor = member_client(org, "editor")
    editor.raise_request_exception = False

    def explode(self, request, data):
        raise RuntimeError("database on fire")

    def unreachable(self, request, token):
        raise OperationalError("server closed the connection unexpectedly")

    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("database", LOCK_SECONDS=0.3))):
        with monkeypatch.context() as patch:
            patch.setattr(IdempotentProductResource, "before_create", explode)
            patch.setattr(stores.DatabaseStore, "release", unreachable)
            failed = post(editor, key="gone")
        assert_error(failed, 500, "INTERNAL_ERROR")
        assert "X-Request-Id" in failed
        assert not connection.in_atomic_block
        time.sleep(0.4)
        retry = post(editor, key="gone")
    assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
    assert Product.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_answer_that_fails_to_render_rolls_back_releases_and_leaves_no_transaction(
    store, org, monkeypatch
):
    """A handler bug that only shows when the answer is rendered (stored answers are
    rendered before the request ends): a 500 in the envelope, the write rolled back on both
    stores, the key given up, and the thread's connection outside any transaction for its
    next request."""
    from django.db import close_old_connections, connection

    from django_arc import arc

    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    row = ProductFactory(organization=org, price=4)
    spec = arc.get_resource("idem-products").actions["double"]
    double = spec.handler

    def unrenderable(self, request, instance, data):
        double(self, request, instance, data)
        return org  # a row of another model: JSON cannot encode it

    monkeypatch.setattr(spec, "handler", unrenderable)
    url = f"{URL}{row.pk}/action/"
    assert_error(
        editor.post(url, {"action": "double"}, format="json", HTTP_IDEMPOTENCY_KEY="a"),
        500,
        "INTERNAL_ERROR",
    )
    assert not connection.in_atomic_block
    row.refresh_from_db()
    assert row.price == 4
    monkeypatch.undo()
    close_old_connections()  # what Django runs between two requests of a worker thread
    retry = editor.post(url, {"action": "double"}, format="json", HTTP_IDEMPOTENCY_KEY="a")
    assert retry.status_code == 200 and "X-Idempotency-Replayed" not in retry
    assert post(editor, key=None).status_code == 201


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("failure", ["unrenderable", "after the write"])
def test_with_atomic_requests_a_5xx_after_the_write_leaves_nothing_for_the_retry_to_repeat(
    store, org, monkeypatch, failure, django_user_model
):
    """``ATOMIC_REQUESTS``: a keyed request whose write succeeded but whose answer is a 500
    (it fails to render, or something after the write raises) gives its key up, and the
    retry runs anew. The write is still uncommitted then, in the request's transaction, so
    it must be rolled back, on the ``cache`` store as on the ``database`` one, or the
    retry makes it a second time (the ``cache`` store committed it: two rows). What came
    before the key was claimed stays: an elevated request's audit event."""
    from django.db import connection

    from django_arc import arc
    from tests.factories import MembershipFactory
    from tests.helpers import client_for

    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    MembershipFactory(user=root, organization=org, role="editor")
    editor = client_for(root, HTTP_X_ORGANIZATION_ID=str(org.pk), HTTP_X_ARC_SCOPE="platform")
    editor.raise_request_exception = False
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    viewset = arc.get_resource("idem-products").as_viewset()
    render_saved = viewset.render_saved

    def broken(self, serializer):
        if failure == "unrenderable":
            return {"row": org}  # JSON cannot encode a model instance
        raise RuntimeError("after the write")

    with monkeypatch.context() as patch:
        patch.setattr(viewset, "render_saved", broken)
        assert_error(post(editor, key="late"), 500, "INTERNAL_ERROR")
    assert not connection.in_atomic_block
    assert not Product.objects.exists() and not created_events()
    assert OutboxEvent.objects.filter(type="arc.scope.elevated").count() == 1
    assert viewset.render_saved is render_saved
    retry = post(editor, key="late")
    assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
    again = post(editor, key="late")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == retry.content
    assert Product.objects.count() == 1 and len(created_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_with_atomic_requests_a_5xx_after_the_write_publishes_nothing_with_the_outbox_off(
    store, org, monkeypatch
):
    """The same rollback with the outbox off, where an event is published once its write's
    transaction commits: the rolled-back write's event must not go out when the request's
    transaction commits (only the retry's does)."""
    from django.conf import settings
    from django.db import connection

    from django_arc import arc
    from django_arc.events import get_transport

    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    events = {**settings.ARC.get("EVENTS", {}), "OUTBOX": False}
    viewset = arc.get_resource("idem-products").as_viewset()

    def broken(self, serializer):
        raise RuntimeError("after the write")

    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency(store), EVENTS=events)):
        transport = get_transport()
        transport.clear()
        with monkeypatch.context() as patch:
            patch.setattr(viewset, "render_saved", broken)
            assert_error(post(editor, key="late"), 500, "INTERNAL_ERROR")
        assert not Product.objects.exists()
        assert [e.type for e in transport.published] == []
        retry = post(editor, key="late")
        assert retry.status_code == 201
        created = [e for e in transport.published if e.type == "idem-products.created"]
    assert [e.payload["id"] for e in created] == [retry.json()["data"]["id"]]


@pytest.mark.django_db
def test_a_streamed_answer_keeps_its_writes_and_is_replayed(store, editor, org, monkeypatch):
    from django.http import StreamingHttpResponse

    from django_arc import arc

    row = ProductFactory(organization=org, price=4)
    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")

    def export(view, request, **kwargs):
        view.get_queryset().update(price=100)
        return StreamingHttpResponse(
            iter([b"id,price\n", f"{row.pk},100\n".encode()]), content_type="text/csv"
        )

    monkeypatch.setattr(spec, "handler", export)
    url = f"{URL}raise-prices/"
    first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="s")
    assert first.status_code == 200
    assert b"".join(first.streaming_content) == f"id,price\n{row.pk},100\n".encode()
    row.refresh_from_db()
    assert row.price == 100
    row.price = 4
    row.save()
    again = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="s")
    assert again["X-Idempotency-Replayed"] == "true" and again["Content-Type"] == "text/csv"
    assert again.content == f"id,price\n{row.pk},100\n".encode()
    row.refresh_from_db()
    assert row.price == 4


@pytest.mark.django_db
def test_an_error_inside_the_write_rolls_it_back_and_is_replayed(store, editor, monkeypatch):
    from django_arc import ArcError

    def refuse(self, request, instance):
        raise ArcError("OUT_OF_STOCK", "No stock", 409)

    monkeypatch.setattr(IdempotentProductResource, "after_create", refuse)
    first = post(editor)
    assert_error(first, 409, "OUT_OF_STOCK")
    assert Product.objects.count() == 0 and OutboxEvent.objects.count() == 0
    monkeypatch.undo()
    again = post(editor)
    assert again.content == first.content and again["X-Idempotency-Replayed"] == "true"
    assert Product.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("key", [None, "import-1"])
def test_a_route_that_catches_a_failed_write_keeps_the_same_rows_with_a_key(
    store, editor, monkeypatch, key
):
    """A route creating rows one by one and reporting the ones that fail (an import): each
    write is undone on its own when it fails, keyed or not — on the ``database`` store too,
    where the route runs inside the request's own transaction. Neither a row whose hook
    refused it (saved, then refused) nor a unique violation (which aborts the transaction
    on PostgreSQL) may change what the request commits or answers."""
    from django.db import IntegrityError

    from django_arc import ArcError, arc

    def refuse(self, request, instance):
        if instance.name == "refused":
            raise ArcError("OUT_OF_STOCK", "No stock", 409)

    def importer(view, request, **kwargs):
        report = {"done": [], "failed": []}
        for sku, name in (("A", "ok"), ("B", "refused"), ("A", "twice"), ("C", "ok")):
            try:
                view.perform_create({**BODY, "sku": sku, "name": name})
                report["done"].append(sku)
            except (ArcError, IntegrityError):
                report["failed"].append(sku)
        return report

    monkeypatch.setattr(IdempotentProductResource, "after_create", refuse)
    spec = next(s for s in arc.get_resource("idem-products").routes if s.name == "raise_prices")
    monkeypatch.setattr(spec, "handler", importer)
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    response = editor.post(f"{URL}raise-prices/", {}, format="json", **headers)
    assert response.status_code == 200, response.content
    assert response.json()["data"] == {"done": ["A", "C"], "failed": ["B", "A"]}
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["A", "C"]
    assert sorted(e.payload["data"]["sku"] for e in created_events()) == ["A", "C"]


@pytest.mark.django_db(transaction=True)
def test_with_atomic_requests_an_answer_whose_writes_fail_to_commit_is_not_replayed(
    store, org, monkeypatch
):
    """``ATOMIC_REQUESTS``: the request's writes commit after the view has answered. When
    that commit fails (here a deferred foreign key; a serialization failure or a lost
    connection alike) nothing was written: a retry must not be told "201 Created" for a row
    that does not exist. On the ``database`` store the answer rolls back with the writes;
    the ``cache`` store keeps it only once they commit (until then the claim holds, and a
    retry runs once ``LOCK_SECONDS`` pass)."""
    from django.db import connection

    editor = member_client(org, "editor")
    editor.raise_request_exception = False

    def dangling(self, request, instance):
        Order.objects.create(organization=org, product_id=10**9, customer_email="a@b.co")

    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency(store, LOCK_SECONDS=0.3))):
        with monkeypatch.context() as patch:
            patch.setattr(IdempotentProductResource, "after_create", dangling)
            assert post(editor, key="deferred").status_code == 500  # the commit failed
        assert not Product.objects.exists() and not created_events()
        time.sleep(0.4)
        retry = post(editor, key="deferred")
    assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
    assert Product.objects.get().pk == retry.json()["data"]["id"]
    assert len(created_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_with_atomic_requests_a_project_on_commit_callback_that_raises_keeps_the_answer(
    store, org, monkeypatch
):
    """``ATOMIC_REQUESTS``: the writes committed, then a callback the route asked to run on
    commit (a project's mail) raised, and Django ran none after it. The client got a 500
    for writes that were made, and retries: it must be told what they did, not make them
    again once the claim expires (the ``cache`` store used to ask for its answer to be
    stored after the route's own callbacks, so it was never stored, and the retry created
    the row again: here the SKU's unique constraint refused it with a 409)."""
    from django.db import connection, transaction

    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    mailed = []

    def mail(self, request, instance):
        transaction.on_commit(lambda: mailed.append(instance.pk) or 1 / 0)

    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency(store, LOCK_SECONDS=0.3))):
        with monkeypatch.context() as patch:
            patch.setattr(IdempotentProductResource, "after_create", mail)
            assert post(editor, key="mailed").status_code == 500  # the callback raised
        row = Product.objects.get()
        assert mailed == [row.pk] and len(created_events()) == 1
        time.sleep(0.4)  # past the claim's lock: an unstored answer lets the retry run
        retry = post(editor, key="mailed")
    assert retry.status_code == 201 and retry["X-Idempotency-Replayed"] == "true"
    assert retry.json()["data"]["id"] == row.pk
    assert Product.objects.count() == 1 and len(created_events()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_keyed_request_waiting_on_another_sqlite_write_is_told_what_its_own_key_is(
    org, monkeypatch
):
    """SQLite: another connection holds the database's write lock past the claim's wait.
    A key no request holds is answered 503 ``IDEMPOTENCY_UNAVAILABLE`` with ``Retry-After``
    (the database is busy), not 409 ``IDEMPOTENCY_CONFLICT`` (a key in progress, which it is
    not); a finished key is still replayed (its record can be read); a key whose request is
    still running is 409. Each used to be the 409."""
    import sqlite3

    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database-wide write lock")
    editor = member_client(org, "editor")
    first = post(editor, key="done")
    assert first.status_code == 201
    post(editor, body={**BODY, "sku": "W-2"}, key="running")
    running_pk = IdempotencyRecord.objects.latest("pk").pk  # as if its request still ran
    IdempotencyRecord.objects.filter(pk=running_pk).update(
        status=None, body=None, locked_until=timezone.now() + timedelta(hours=1)
    )
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.05)
    connection.close()  # reconnects with the short wait
    writer = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the write lock, as a long write of another request
    try:
        busy = post(editor, body={**BODY, "sku": "W-3"}, key="fresh")
        replay = post(editor, key="done")
        running = post(editor, body={**BODY, "sku": "W-2"}, key="running")
    finally:
        writer.rollback()
        writer.close()
    assert_error(busy, 503, "IDEMPOTENCY_UNAVAILABLE")
    assert busy["Retry-After"] == "1"
    assert replay.status_code == 201 and replay["X-Idempotency-Replayed"] == "true"
    assert replay.content == first.content
    assert_error(running, 409, "IDEMPOTENCY_CONFLICT")
    after = post(editor, body={**BODY, "sku": "W-3"}, key="fresh")
    assert after.status_code == 201 and "X-Idempotency-Replayed" not in after
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["W-1", "W-2", "W-3"]


@pytest.mark.django_db(transaction=True)
def test_a_cache_store_key_whose_sqlite_transaction_cannot_get_the_lock_is_503_and_free(
    org, monkeypatch
):
    """SQLite, ``cache`` store: other requests' writes hold the database's write lock past
    the keyed request's wait as its transaction begins. Nothing of the request ran, so it
    is answered as the ``database`` store's claim is then, 503 ``IDEMPOTENCY_UNAVAILABLE``
    with ``Retry-After`` (not a 500), and its key is free for the retry."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database-wide write lock")
    if not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.05)
    connection.close()  # reconnects with the short wait
    caches = caches_with("redis", REDIS_URL)
    with override_settings(CACHES=caches, ARC=arc_with(IDEMPOTENCY=idempotency("cache"))):
        writer = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # a long write of another request
        try:
            busy = post(editor, key="busy")
        finally:
            writer.rollback()
            writer.close()
        assert_error(busy, 503, "IDEMPOTENCY_UNAVAILABLE")
        assert busy["Retry-After"] == "1"
        assert not Product.objects.exists()
        retry = post(editor, key="busy")
    assert retry.status_code == 201 and "X-Idempotency-Replayed" not in retry
    assert Product.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_keyed_update_racing_another_sqlite_write_waits_for_it_instead_of_failing(
    store, org, monkeypatch
):
    """SQLite: another request starts writing between a keyed update's read of its row and
    its UPDATE. The keyed request's transaction began with a plain (deferred) ``BEGIN`` and
    had read: SQLite refuses to upgrade such a transaction while another holds the write
    lock, at once and without its busy timeout, so the update answered 500 ("database is
    locked") where the same update without a key waited for the other write and succeeded.
    On the ``cache`` store that came with the request's transaction; the ``database`` store
    had it already. The transaction now takes the write lock as it begins (``BEGIN
    IMMEDIATE``): the other write waits for it, or here gives up, and the update stands."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database-wide write lock")
    editor = member_client(org, "editor")
    editor.raise_request_exception = False
    row = ProductFactory(organization=org, name="Before")
    updating = threading.Event()
    releasers: list[threading.Thread] = []
    writer = sqlite3.connect(
        connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False, timeout=0
    )

    def another_write_begins(self, request, instance, data):
        try:
            writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # the keyed request holds the lock: no race
            return
        releasers.append(threading.Thread(target=release_after_the_update))
        releasers[0].start()

    def release_after_the_update():
        updating.wait(10)
        writer.rollback()

    def signal_the_update(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        finally:
            if sql.startswith("UPDATE") and Product._meta.db_table in sql:
                updating.set()

    monkeypatch.setattr(IdempotentProductResource, "before_update", another_write_begins)
    try:
        with connection.execute_wrapper(signal_the_update):
            answer = editor.patch(
                f"{URL}{row.pk}/", {"name": "After"}, format="json", HTTP_IDEMPOTENCY_KEY="u"
            )
    finally:
        updating.set()
        for releaser in releasers:
            releaser.join(10)
        writer.close()
    assert answer.status_code == 200, answer.content
    row.refresh_from_db()
    assert row.name == "After"
    replay = editor.patch(
        f"{URL}{row.pk}/", {"name": "After"}, format="json", HTTP_IDEMPOTENCY_KEY="u"
    )
    assert replay["X-Idempotency-Replayed"] == "true" and replay.content == answer.content


@pytest.mark.django_db
def test_a_refused_request_claims_nothing(store, org):
    viewer = member_client(org, "viewer")
    assert_error(post(viewer), 403, "FORBIDDEN")
    editor = member_client(org, "editor")
    assert post(editor).status_code == 201
    assert_error(post(viewer), 403, "FORBIDDEN")  # not the editor's replay


@pytest.mark.django_db
def test_a_claim_abandoned_by_its_request_is_taken_over_by_another_body_on_both_stores(
    store, editor, org
):
    """A request claims its key and dies (nothing of it commits on the ``database`` store):
    once its lock runs out, the key holds no answer and was used for nothing. The ``cache``
    store's claim expired, so a request with another body ran; the ``database`` store kept
    refusing it with 422 ``IDEMPOTENCY_KEY_REUSED`` until ``TTL_SECONDS`` (a day)."""
    user_id = editor.handler._force_user.pk
    scope = type(
        "Scope",
        (),
        {"kind": "member", "user_id": user_id, "organization_id": org.pk, "context": {}},
    )
    abandoned = stores.Request(
        key=scoped_key("", caller_identity(scope), "POST", URL, "k"),
        fingerprint=fingerprint("POST", URL, BODY),
        method="POST",
        path=URL,
        lock_seconds=0.3,
        ttl_seconds=3600,
    )
    assert stores.get_store(idempotency(store)).claim(abandoned).outcome == stores.CLAIMED
    other = {**BODY, "sku": "W-2"}
    assert_error(post(editor, other, key="k"), 422, "IDEMPOTENCY_KEY_REUSED")  # still held
    time.sleep(0.4)
    ran = post(editor, other, key="k")
    assert ran.status_code == 201 and "X-Idempotency-Replayed" not in ran, ran.content
    again = post(editor, other, key="k")
    assert again["X-Idempotency-Replayed"] == "true" and again.content == ran.content
    assert list(Product.objects.values_list("sku", flat=True)) == ["W-2"]


# -- expiry and purge ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_key_sent_again_after_its_ttl_runs_as_a_new_request_and_its_events_are_stored(
    store, editor, org
):
    """The same update with the same key, a day later: the key is forgotten, the request
    runs again, and its event is stored, not taken for the first run's (still in the
    outbox, whose rows outlive the key)."""
    row = ProductFactory(organization=org, price=4)
    url = f"{URL}{row.pk}/"
    one = editor.patch(url, {"name": "One"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert one.status_code == 200
    # a day on (the suite's TTL is an hour): the record, or Redis's key, and the event age
    if store == "database":
        IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    else:
        from django.core.cache import caches

        caches["redis"].clear()
    OutboxEvent.objects.update(created_at=F("created_at") - timedelta(days=1))
    two = editor.patch(url, {"name": "Two"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert two.status_code == 200 and "X-Idempotency-Replayed" not in two
    updated = OutboxEvent.objects.filter(type="idem-products.updated").order_by("id")
    assert [event.payload["data"]["name"] for event in updated] == ["One", "Two"]


@pytest.mark.django_db
def test_an_expired_record_runs_again_and_purge_deletes_expired_rows(editor):
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("database"))):
        assert post(editor).status_code == 201
        IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        again = post(editor, {**BODY, "sku": "W-2"})
        assert again.status_code == 201 and "X-Idempotency-Replayed" not in again
        assert Product.objects.count() == 2
        post(editor, {**BODY, "sku": "W-3"}, key="old")
        post(editor, {**BODY, "sku": "W-4"}, key="fresh")
        fresh = IdempotencyRecord.objects.latest("created_at")
        IdempotencyRecord.objects.exclude(pk=fresh.pk).update(
            expires_at=timezone.now() - timedelta(days=1)
        )
        out = StringIO()
        call_command("arc_purge_idempotency", stdout=out)
        assert out.getvalue() == "Deleted 2 expired idempotency record(s).\n"
        assert list(IdempotencyRecord.objects.all()) == [fresh]
        IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        assert purge_idempotency() == 1
        assert IdempotencyRecord.objects.count() == 0


def stored_record(key: str, expires_in: float) -> IdempotencyRecord:
    now = timezone.now()
    return IdempotencyRecord.objects.create(
        key=key,
        fingerprint="f",
        token="t",
        method="POST",
        path="/",
        status=201,
        body=b"{}",
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in),
    )


@pytest.mark.django_db
def test_the_purge_deletes_expired_records_a_batch_per_statement():
    """The purge was one ``DELETE`` of every expired row: on a large backlog it held every
    one of their locks until it finished, and claims, take-overs and answers touching them
    waited for all of it. It deletes ``batch_size`` rows per statement, each committed on
    its own, and leaves records not yet expired and claims still in flight."""
    for n in range(5):
        stored_record(f"expired-{n}", -60)
    stored_record("fresh", 3600)
    # a claim still running whose TTL is shorter than its lock: in flight until the lock ends
    store = stores.DatabaseStore()
    request = stores.Request("in-flight", "f", "POST", "/", lock_seconds=30, ttl_seconds=0.001)
    assert store.claim(request).outcome == stores.CLAIMED
    with CaptureQueriesContext(connection) as ctx:
        assert purge_idempotency(batch_size=2) == 5
    deletes = [q["sql"] for q in ctx.captured_queries if q["sql"].upper().startswith("DELETE")]
    assert len(deletes) == 3  # 2 + 2 + 1
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == [
        "fresh",
        "in-flight",
    ]
    assert store.claim(request).outcome == stores.IN_FLIGHT  # the claim still holds


def _expired_records(count: int) -> None:
    """``count`` records that expired a minute ago (``expired-0``…)."""
    now = timezone.now()
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(
            key=f"expired-{n}",
            fingerprint="f",
            token="t",
            method="POST",
            path="/",
            created_at=now,
            expires_at=now - timedelta(minutes=1),
        )
        for n in range(count)
    )


@pytest.mark.django_db
def test_the_purge_deletes_at_most_ten_thousand_records_a_statement():
    """``purge(batch_size=)`` (the task's ``batch_size``, ``--batch-size``) was not capped:
    on PostgreSQL, which has no parameter limit, ``batch_size=50_000`` deleted a backlog in
    one statement holding every row's lock, what the batches are there to avoid. It is
    capped at 10,000, as a relay batch is (SQLite's 999 parameters cap it sooner)."""
    _expired_records(10_001)
    with CaptureQueriesContext(connection) as ctx:
        assert purge_idempotency(batch_size=50_000) == 10_001
    deletes = [q["sql"] for q in ctx.captured_queries if q["sql"].upper().startswith("DELETE")]
    assert len(deletes) >= 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_the_purge_of_a_backlog_longer_than_a_batch_fits_the_backends_parameters():
    """A batch's ids are the ``DELETE``'s parameters: a full default batch (1000) and its
    cut-off are more than the 999 Django assumes of SQLite (the default of SQLite builds
    before 3.32, which Django supports), where the purge of a backlog of 1000 fails."""
    _expired_records(1500)
    stored_record("fresh", 3600)
    with CaptureQueriesContext(connection) as ctx:
        assert purge_idempotency() == 1500
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    deletes = [q["sql"] for q in ctx.captured_queries if q["sql"].upper().startswith("DELETE")]
    limit = connection.features.max_query_params or float("inf")
    # each id is a parameter, and so is the cut-off
    assert all(sql.split(" IN (", 1)[1].count(",") + 2 <= limit for sql in deletes), [
        sql.split(" IN (", 1)[1].count(",") + 2 for sql in deletes
    ]


@pytest.mark.django_db
def test_the_purge_command_takes_a_batch_size_and_refuses_a_bad_one():
    for n in range(3):
        stored_record(f"expired-{n}", -60)
    out = StringIO()
    with CaptureQueriesContext(connection) as ctx:
        call_command("arc_purge_idempotency", "--batch-size", "2", stdout=out)
    assert out.getvalue() == "Deleted 3 expired idempotency record(s).\n"
    assert sum(q["sql"].upper().startswith("DELETE") for q in ctx.captured_queries) == 2
    for bad in ("0", "-5"):
        with pytest.raises(CommandError, match="--batch-size must be a positive integer"):
            call_command("arc_purge_idempotency", "--batch-size", bad)
    with pytest.raises(CommandError):  # argparse: not an integer
        call_command("arc_purge_idempotency", "--batch-size", "lots")


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db
def test_a_lost_cache_store_answer_lets_a_retry_write_again_after_the_lock(org, monkeypatch):
    """The ``cache`` store's documented window: Redis fails while the answer is stored (the
    write is committed, the response goes out). Until ``LOCK_SECONDS`` pass a retry is 409;
    then it runs again, and a create is a second row with its own ``created`` event (its new
    id makes a new event key). The claim runs out as Redis expires it (the key goes): with
    a half-second lock, the 409 needed the retry within half a second of the first claim,
    which a loaded machine need not do."""
    editor = member_client(org, "editor")
    product = ProductFactory(organization=org, price=10)
    body = {"product": product.pk, "quantity": 1}
    caches = caches_with("redis", REDIS_URL)
    settings = idempotency("cache", ENABLED=True, LOCK_SECONDS=30)

    def lost(*args, **kwargs):
        raise redis_exceptions.ConnectionError("Redis went away while the answer was stored")

    def send():
        return post(editor, body, key="order-1", url="/api/cached-orders/")

    with (
        override_settings(CACHES=caches),
        override_settings(ARC=arc_with(IDEMPOTENCY=settings)),
    ):
        with monkeypatch.context() as patch:
            patch.setattr(stores, "_SET_IF_OURS", lost)
            first = send()
        assert first.status_code == 201, first.content
        assert_error(send(), 409, "IDEMPOTENCY_CONFLICT")
        redis = Redis.from_url(REDIS_URL)
        (claim,) = redis.keys(f"{caches['redis']['KEY_PREFIX']}:*")
        assert redis.get(claim).startswith(stores._IN_FLIGHT)
        assert 20_000 < redis.pttl(claim) <= 30_000  # it runs out after LOCK_SECONDS
        redis.delete(claim)  # ... now
        second = send()
        assert second.status_code == 201 and "X-Idempotency-Replayed" not in second
        assert send()["X-Idempotency-Replayed"] == "true"
    assert Order.objects.count() == 2
    keys = OutboxEvent.objects.filter(type="cached-orders.created").values_list(
        "dedupe_key", flat=True
    )
    assert len(set(keys)) == 2


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db
def test_the_cache_store_expires_keys_after_the_ttl(editor):
    """The answer's key carries ``TTL_SECONDS`` as its expiry, and once Redis has expired it
    (the key goes) the key is free. A one-second TTL slept past needed the replay within a
    second of the answer, which a loaded machine need not do."""
    caches = caches_with("redis", REDIS_URL)
    with (
        override_settings(CACHES=caches),
        override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("cache", TTL_SECONDS=60))),
    ):
        assert post(editor).status_code == 201
        assert post(editor)["X-Idempotency-Replayed"] == "true"
        redis = Redis.from_url(REDIS_URL)
        (answer,) = redis.keys(f"{caches['redis']['KEY_PREFIX']}:*")
        assert 30_000 < redis.pttl(answer) <= 60_000
        redis.delete(answer)  # the TTL has passed
        again = post(editor, {**BODY, "sku": "W-2"})
        assert again.status_code == 201 and "X-Idempotency-Replayed" not in again


@pytest.mark.redis
@pytest.mark.django_db
def test_a_redis_restart_between_keyed_requests_is_not_an_outage(editor, tmp_path, caplog):
    """The cache store's commands go over a connection the thread keeps, and its scripts
    by SHA. After a restart the next keyed request finds that connection closed and the
    scripts unknown: it reconnects and loads them, and answers as if nothing happened."""
    with (
        redis_server(tmp_path) as server,
        override_settings(CACHES=caches_with("redis", server["url"])),
        override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("cache"))),
    ):
        assert post(editor).status_code == 201
        server["stop"]()
        server["start"]()
        caplog.set_level(logging.WARNING, logger="django_arc.redis")
        again = post(editor, {**BODY, "sku": "W-2"}, key="key-2")
        assert again.status_code == 201 and "X-Idempotency-Replayed" not in again
        replay = post(editor, {**BODY, "sku": "W-2"}, key="key-2")
        assert replay["X-Idempotency-Replayed"] == "true" and replay.content == again.content
        assert Product.objects.filter(sku="W-2").count() == 1
        assert [r for r in caplog.records if r.name == "django_arc.redis"] == []


@pytest.mark.redis
@pytest.mark.django_db
def test_a_cache_store_redis_restarted_without_persistence_forgets_its_answers(org, tmp_path):
    """What docs/idempotency.md says of a Redis that loses its keys: a restart without
    persistence (the private server runs with ``save ""``, no AOF) forgets the answer, and
    the retry sent after it runs again, a second row with its own event (found by a soak
    restarting Redis under a gunicorn server; the docs only named eviction)."""
    editor = member_client(org, "editor")
    product = ProductFactory(organization=org, price=10)

    def send():
        body = {"product": product.pk, "quantity": 1}
        return post(editor, body, key="order-1", url="/api/cached-orders/")

    settings = idempotency("cache", ENABLED=True)
    with (
        redis_server(tmp_path) as server,
        override_settings(CACHES=caches_with("redis", server["url"])),
        override_settings(ARC=arc_with(IDEMPOTENCY=settings)),
    ):
        first = send()
        assert send()["X-Idempotency-Replayed"] == "true"
        server["stop"]()
        server["start"]()
        retry = send()
    assert first.status_code == retry.status_code == 201, retry.content
    assert "X-Idempotency-Replayed" not in retry
    assert retry.json()["data"]["id"] != first.json()["data"]["id"]
    assert Order.objects.count() == 2
    assert OutboxEvent.objects.filter(type="cached-orders.created").count() == 2


@pytest.mark.redis
@pytest.mark.django_db
@pytest.mark.parametrize(("retention_days", "updated_events"), [(7, 1), (1, 2)])
def test_an_outbox_purging_before_the_ttl_lets_a_rerun_update_store_its_event_twice(
    org, tmp_path, retention_days, updated_events
):
    """What arc.W008 warns of. An update retried after the ``cache`` store's Redis lost its
    answer (here a restart without persistence, two days on, inside a three-day TTL) runs
    again, and its event has the first run's key: the outbox dedupes it only while the first
    run's row is still there. Kept 7 days, it is (one ``updated`` event); purged after 1, it
    is gone, and the update's event is stored and delivered a second time."""
    editor = member_client(org, "editor")
    row = ProductFactory(organization=org, price=4)
    url = f"{URL}{row.pk}/"
    settings = arc_with(
        IDEMPOTENCY=idempotency("cache", TTL_SECONDS=3 * 86400),
        OUTBOX={"DELIVERED_RETENTION_DAYS": retention_days},
    )

    def send():
        return editor.patch(url, {"name": "Renamed"}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    with (
        redis_server(tmp_path) as server,
        override_settings(CACHES=caches_with("redis", server["url"])),
        override_settings(ARC=settings),
    ):
        first = send()
        assert first.status_code == 200, first.content
        assert relay_outbox()["relayed"] == 1
        two_days = timedelta(days=2)
        OutboxEvent.objects.update(
            created_at=F("created_at") - two_days, delivered_at=F("delivered_at") - two_days
        )
        assert purge_outbox() == (1 if retention_days < 2 else 0)
        server["stop"]()
        server["start"]()
        retry = send()
        assert retry.status_code == 200 and "X-Idempotency-Replayed" not in retry  # ran again
        delivered = 1 + relay_outbox()["relayed"]
    assert delivered == updated_events  # the deliveries of one request's `updated` event


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db
def test_a_claim_whose_reply_was_lost_and_was_sent_again_is_still_ours(editor, monkeypatch):
    """The connection can drop after Redis ran the claim script but before its reply arrived
    (a ``CLIENT KILL``, a network cut): ``redis_alias.command`` sends the script again, over
    the pool, and it finds the claim it had just set. That claim is the request's own (its
    token): the request runs. Taken for another request's, it was a 409 with nothing
    running, and the key stayed locked for ``LOCK_SECONDS``, each retry a 409 until then."""
    lost = _rf44_reply_lost_once(monkeypatch, stores._CLAIM)
    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("cache", LOCK_SECONDS=60))),
    ):
        first = post(editor)
        replay = post(editor)
    assert lost == [None]  # the first claim did set the key; its reply never came
    assert first.status_code == 201, first.content
    assert replay.status_code == 201 and replay["X-Idempotency-Replayed"] == "true"
    assert replay.content == first.content
    assert Product.objects.filter(sku="W-1").count() == 1
    assert len(created_events()) == 1


@pytest.mark.redis
@pytest.mark.django_db
def test_a_claim_redis_runs_after_the_request_gave_up_does_not_lock_the_key(editor, tmp_path):
    """A Redis that stalls (stopped here with SIGSTOP; a fork, a slow script, a swapping
    host) runs the claim script after the request's socket timeout has answered it 503: the
    key is then claimed by a request that runs nothing. Every retry was a 409 "still in
    progress" until ``LOCK_SECONDS`` passed (seen in a soak: keys sent by one client only
    answered 409 after a 3 s stall). The process gives such claims up before its next claim, so the
    retry runs, once."""
    body = {**BODY, "sku": "W-2"}
    with (
        redis_server(tmp_path) as server,
        override_settings(CACHES=caches_with("redis", server["url"])),
        override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("cache", LOCK_SECONDS=60))),
    ):
        pid = Redis.from_url(server["url"]).info("server")["process_id"]
        assert post(editor, key="warm-up").status_code == 201
        _stop(pid)
        try:
            assert_error(post(editor, body, key="stalled"), 503, "IDEMPOTENCY_UNAVAILABLE")
        finally:
            os.kill(pid, signal.SIGCONT)
        redis = Redis.from_url(server["url"])
        deadline = time.monotonic() + 5
        while not any(redis.get(k).startswith(b"F") for k in redis.keys("*arc:idem:*")):
            assert time.monotonic() < deadline, "Redis never ran the stalled claim"
            time.sleep(0.02)
        retry = post(editor, body, key="stalled")
        replay = post(editor, body, key="stalled")
    assert retry.status_code == 201, retry.content
    assert replay.status_code == 201 and replay["X-Idempotency-Replayed"] == "true"
    assert replay.content == retry.content
    assert Product.objects.filter(sku="W-2").count() == 1


@pytest.mark.redis
@pytest.mark.django_db
def test_a_take_over_redis_runs_after_the_request_gave_up_does_not_lock_the_key(
    editor, monkeypatch, tmp_path
):
    """The take-over of an unreadable ``cache`` entry is a script as the claim is: a Redis
    that stalls after the claim script answered (SIGSTOP here) runs the take-over after the
    request's socket timeout answered it 503, and the key is then claimed by a request that
    runs nothing. The claim's such scripts are given up before the process's next claim;
    the take-over's were not: every retry was a 409 "still in progress" until
    ``LOCK_SECONDS`` passed. The retry now runs, once."""
    calls = _seen8a_counting_route(monkeypatch)
    url = f"{URL}raise-prices/"
    take_over = stores.CacheStore._take_over

    def stalled_first(self, request, key, value, claim, token):
        if not stalled:
            stalled.append(key)
            _stop(pid)
        return take_over(self, request, key, value, claim, token)

    stalled = []
    settings = idempotency("cache", LOCK_SECONDS=60)
    with (
        redis_server(tmp_path) as server,
        override_settings(CACHES=caches_with("redis", server["url"])),
        override_settings(ARC=arc_with(IDEMPOTENCY=settings)),
    ):
        redis = Redis.from_url(server["url"])
        pid = redis.info("server")["process_id"]
        first = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        assert (first.status_code, first.content) == (201, b"a,1\n")
        _seen8a_rewrite_cache_entry(_SEEN8A_UNREADABLE["head not json"])
        monkeypatch.setattr(stores.CacheStore, "_take_over", stalled_first)
        try:
            gave_up = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert_error(gave_up, 503, "IDEMPOTENCY_UNAVAILABLE")
        deadline = time.monotonic() + 5
        while not (redis.get(stalled[0]) or b"").startswith(stores._IN_FLIGHT):
            assert time.monotonic() < deadline, "Redis never ran the stalled take-over"
            time.sleep(0.02)
        retry = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
        replay = editor.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="t")
    assert (retry.status_code, retry.content) == (201, b"a,2\n"), retry.content
    assert (replay.status_code, replay.content) == (201, b"a,2\n")
    assert replay["X-Idempotency-Replayed"] == "true"
    assert len(calls) == 2


def _stop(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until it is stopped: ``kill()`` returns before the signal is
    delivered, and on a loaded machine the server answered the next command first (the
    request meant to meet a stalled Redis was a 201)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    # /proc/<pid>/stat: "pid (comm) state ...": T (stopped) or t (traced)
    while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in "Tt":
        assert time.monotonic() < deadline, "redis-server never stopped"
        time.sleep(0.005)


def unusable_alias(**config) -> dict:
    """``CACHES`` whose ``redis`` alias is django-redis but cannot build a client."""
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    caches["redis"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        **config,
    }
    return caches


@pytest.mark.django_db
@pytest.mark.parametrize(
    "caches",
    [
        caches_with("redis", "redis://127.0.0.1:1/0"),  # nothing listens there
        {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        # django-redis aliases whose client cannot be built were a 500 on every keyed request
        unusable_alias(LOCATION="memcached://127.0.0.1:11211"),
        unusable_alias(OPTIONS={"CLIENT_CLASS": "nowhere.Client"}),
        unusable_alias(
            LOCATION=["redis://127.0.0.1:1/0"],
            OPTIONS={"CLIENT_CLASS": "django_redis.client.ShardClient"},
        ),
        unusable_alias(
            LOCATION="redis://mymaster/0",
            OPTIONS={"CLIENT_CLASS": "django_redis.client.SentinelClient"},
        ),
    ],
    ids=[
        "redis down",
        "no django-redis alias",
        "bad url",
        "missing client class",
        "shard client",
        "sentinel misconfigured",
    ],
)
def test_an_unreachable_cache_store_refuses_keyed_requests_with_503(editor, caches):
    with (
        override_settings(CACHES=caches),
        override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("cache"))),
    ):
        response = post(editor)
        assert_error(response, 503, "IDEMPOTENCY_UNAVAILABLE")
        assert response["Retry-After"] == "1"
        assert Product.objects.count() == 0
        # without a key the request runs as always
        assert post(editor, key=None).status_code == 201


@pytest.mark.django_db
def test_an_unreachable_cache_store_warns_once_per_interval_not_once_per_request(editor, caplog):
    """An outage must cost one log line per interval (``redis_alias``). Every keyed request
    refused 503 logged its own WARNING: under load that was a line per request for as long
    as Redis was away, on top of Django's own ``django.request`` line for each 503."""
    redis_alias.reset_outage_warnings()
    caplog.set_level(logging.WARNING, logger="django_arc")
    with (
        override_settings(CACHES=caches_with("redis", "redis://127.0.0.1:1/0")),
        override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("cache"))),
    ):
        for n in range(4):
            assert_error(post(editor, key=f"key-{n}"), 503, "IDEMPOTENCY_UNAVAILABLE")
    warnings = [r for r in caplog.records if r.name == "django_arc.idempotency"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Idempotency store unavailable" in warnings[0].getMessage()
    assert len([r for r in caplog.records if r.name == "django_arc.redis"]) == 1
    redis_alias.reset_outage_warnings()


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
@pytest.mark.django_db
def test_a_cache_store_request_outliving_its_lock_unclaimed_still_stores_its_answer(
    org, monkeypatch
):
    """A request slower than ``LOCK_SECONDS`` on the ``cache`` store, and no retry meanwhile:
    its claim expired, but nobody took the key. Its writes stand, so its answer must be kept
    for the retry sent after it, which would otherwise write again (the documented window is
    a retry sent while it runs, not one after it)."""
    editor = member_client(org, "editor")
    product = ProductFactory(organization=org, price=10)
    body = {"product": product.pk, "quantity": 1}
    settings = idempotency("cache", ENABLED=True, LOCK_SECONDS=0.2)
    complete = stores.CacheStore.complete

    def after_the_lock(self, request, *args, **kwargs):
        deadline = time.monotonic() + 5
        while self._redis().exists(self._key(request)) and time.monotonic() < deadline:
            time.sleep(0.02)  # the claim expires while the request still runs
        return complete(self, request, *args, **kwargs)

    def send():
        return post(editor, body, key="order-1", url="/api/cached-orders/")

    with (
        override_settings(CACHES=caches_with("redis", REDIS_URL)),
        override_settings(ARC=arc_with(IDEMPOTENCY=settings)),
    ):
        with monkeypatch.context() as patch:
            patch.setattr(stores.CacheStore, "complete", after_the_lock)
            first = send()
        assert first.status_code == 201, first.content
        retry = send()
        assert retry["X-Idempotency-Replayed"] == "true", retry.content
        assert retry.content == first.content
    assert Order.objects.count() == 1
    assert OutboxEvent.objects.filter(type="cached-orders.created").count() == 1


@pytest.mark.parametrize(
    "value",
    [
        {"fp": "a" * 64, "token": "b" * 32},
        {"fp": "a" * 64, "status": 201, "ct": "application/json; charset=utf-8"},
        {"fp": "f", "status": 200, "ct": "", "h": [["Location", "/products/5/"]]},
        [["Content-Disposition", 'attachment; filename="caf\u00e9.csv"'], ["X-Total", "3"]],
    ],
)
def test_stored_values_are_the_bytes_json_dumps_wrote(value):
    """Both stores encode their values with one encoder built at import, not with
    ``json.dumps(separators=...)`` per call: the text must be what that call wrote, or a key
    claimed or answered before the change would no longer match its own claim (the cache
    store compares the in-flight value) or replay other headers."""
    assert stores._compact_json(value) == json.dumps(value, separators=(",", ":"))


# -- servers whose clocks differ ---------------------------------------------------------------


@contextmanager
def _on_a_clock(monkeypatch, skew: timedelta):
    """Inside, ``timezone.now`` reads the clock of a server whose clock is ``skew`` off."""
    real_now = timezone.now
    with monkeypatch.context() as m:
        m.setattr(timezone, "now", lambda: real_now() + skew)
        yield


def _record_request(lock_seconds: float = 30, ttl_seconds: float = 3600) -> stores.Request:
    return stores.Request("clock-key", "fp", "POST", URL, lock_seconds, ttl_seconds)


#: SQLite lives on one host, whose clock every server using it shares (the store uses it)
one_host = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="servers on several hosts share PostgreSQL only"
)


@one_host
@pytest.mark.django_db
def test_a_server_whose_clock_runs_ahead_does_not_take_over_a_claim_in_flight(monkeypatch):
    """The ``database`` store's claim times are the database's: a repeat reaching a server
    whose clock ran five minutes ahead took the running request's claim over (its lock
    looked run out), and the first request, the one doing the work, was rolled back."""
    request = _record_request()
    first = stores.DatabaseStore().claim(request)
    assert first.outcome == stores.CLAIMED
    with _on_a_clock(monkeypatch, timedelta(minutes=5)):
        repeat = stores.DatabaseStore().claim(request)
    assert repeat.outcome == stores.IN_FLIGHT
    assert IdempotencyRecord.objects.get().token == first.token
    assert stores.DatabaseStore().complete(request, first.token, 201, "application/json", b"{}")


@one_host
@pytest.mark.django_db
def test_a_dead_requests_lock_runs_out_by_the_databases_clock(monkeypatch):
    """A request claimed its key on a server whose clock ran ten minutes ahead, then died:
    its lock runs out ``LOCK_SECONDS`` after the claim for a retry on any server, not ten
    minutes later, when the others' clocks reach the time the dead one wrote."""
    request = _record_request(lock_seconds=0.2)
    with _on_a_clock(monkeypatch, timedelta(minutes=10)):
        dead = stores.DatabaseStore().claim(request)
    assert dead.outcome == stores.CLAIMED
    time.sleep(0.3)
    retry = stores.DatabaseStore().claim(request)
    assert retry.outcome == stores.CLAIMED and retry.token != dead.token
    assert IdempotencyRecord.objects.get().token == retry.token


@one_host
@pytest.mark.django_db
def test_an_answer_stored_on_a_server_whose_clock_runs_behind_is_replayed(editor, monkeypatch):
    """A server (a container started with a stale clock) two days behind stored the answer
    of a keyed create: its record expires ``TTL_SECONDS`` after the database's time, so a
    retry on another server is replayed rather than taking the record for expired and
    running the create again (a second product; here the unique sku refused it, a 409)."""
    with override_settings(ARC=arc_with(IDEMPOTENCY=idempotency("database"))):
        with _on_a_clock(monkeypatch, -timedelta(days=2)):
            first = post(editor)
        assert first.status_code == 201
        again = post(editor)
        assert again.status_code == 201 and again["X-Idempotency-Replayed"] == "true"
        assert again.content == first.content
        assert Product.objects.count() == 1
        assert len(created_events()) == 1


@pytest.mark.django_db
def test_a_replay_of_an_answer_stored_without_headers_warns_of_nothing(store, editor, caplog):
    """The ``cache`` store keeps an answer's own headers under ``"h"`` only when it had any
    (a create's answer has none), and reading a value without them took the missing key as
    headers of another shape: every replay logged "stored headers are not [name, value]
    pairs", a WARNING an operator would chase for a tampered entry. Found by the benchmark's
    keyed creates (2026-12-07)."""
    first = post(editor)
    assert first.status_code == 201
    with caplog.at_level(logging.WARNING, logger="django_arc.idempotency"):
        again = post(editor)
    assert (again.status_code, again.content) == (201, first.content)
    assert again["X-Idempotency-Replayed"] == "true"
    assert not [r for r in caplog.records if "stored headers" in r.getMessage()], caplog.text
