"""Hypothesis stateful test of ``Idempotency-Key`` (SPEC §10), on both stores.

Four callers — a user admin in tenant A, the same user acting in tenant B, another admin of
B, and a service client of A — send keyed writes to every route of ``idem-products``
(create, PATCH, DELETE, the ``double`` action, bulk create, update and delete, the
``raise-prices`` route) and to ``branch-notes`` (create, PATCH: a second resource, with a
tenant context dimension, that the service client may write), from a pool of three keys
every caller shares, in two namespaces, with valid and invalid bodies (so 400s, 404s and
409s are stored too); now and then an earlier request is sent again exactly, with another
body, as another caller, or in the other namespace.

The model is what the client sees: scoped key (namespace, caller, method, path, key) ->
(body, status, bytes answered), and the rows and outbox events the requests that ran made.
Observable behaviour it holds the code to:

- a request whose scoped key is new runs as the same request without a key would (an oracle
  of the two resources predicts its status and what it writes; requests without a key are
  drawn too and held to the same oracle), and is not a replay;
- an exact repeat gets the stored status and bytes with ``X-Idempotency-Replayed: true``;
- the scoped key with another body is 422 ``IDEMPOTENCY_KEY_REUSED``;
- a refusal before the key is looked at (the service client may not write products: 403)
  claims nothing, nor does a malformed key (400 naming the header);
- after every step the tables hold exactly the model's rows, the outbox exactly the events
  of the requests that ran, each keyed one as ``<scoped key>:<event type>:<resource id>``,
  and the store exactly one key per scoped key answered; no answer ever carries a row of
  another tenant.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from django_arc.auth import ServiceClient
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.outbox import OutboxEvent
from shop.models import Product
from tests.budget import examples
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import assert_error, assert_outbox_events, client_for
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTS = "/api/idem-products/"
NOTES = "/api/branch-notes/"
BRANCH = "1"
#: every caller sends these: the same raw key from two callers must never meet (``None``: no
#: key, a request held to the same oracle as a keyed one that runs; a tab makes a key malformed)
KEYS = ["k1", "shared", "k2", None, "tab\there"]
NAMESPACES = ["", "blue"]
SKUS = ["S0", "S1", "S2"]
NAMES = ["red", "green"]
PRICES = ["1.00", "2.50"]
OPS = [
    "create",
    "patch",
    "delete",
    "double",
    "bulk",
    "bulk_update",
    "bulk_delete",
    "raise",
    "note_create",
    "note_patch",
]
#: caller -> (kind, tenant): "a" and "ab" are one user in two tenants
CALLERS = {"a": ("user", "A"), "ab": ("user", "B"), "b": ("user", "B"), "svc": ("service", "A")}


@dataclass(frozen=True)
class Req:
    ns: str
    caller: str
    op: str
    method: str
    path: str
    body: Any  # JSON-able, or None (DELETE)
    key: str | None

    @property
    def notes(self) -> bool:
        return self.path.startswith(NOTES)

    @property
    def canonical(self) -> str:
        """What the fingerprint tells apart within one scoped key (method and path are in
        the scope already): the body, as canonical JSON."""
        return json.dumps(self.body if self.body is not None else {}, sort_keys=True)


def valid_price(value: Any) -> bool:
    try:
        Decimal(str(value))
    except InvalidOperation:
        return False
    return value is not None


def valid_product(item: dict) -> bool:
    return bool(item.get("name")) and bool(item.get("sku")) and valid_price(item.get("price"))


class IdempotencyMachine(RuleBasedStateMachine):
    # built once per test (users, tenants, clients): see ``build_world``
    tenants: dict = {}
    clients: dict = {}
    identities: dict = {}
    arc_settings: dict = {}
    store: str = "database"
    #: how often each kind of answer was checked, so the test proves it checked them
    seen: Counter = Counter()

    def __init__(self):
        super().__init__()
        # Every example starts empty: the database is only flushed, and the Redis alias only
        # given a new key prefix, per test
        Product.objects.all().delete()
        Note.objects.all().delete()
        OutboxEvent.objects.all().delete()
        IdempotencyRecord.objects.all().delete()
        if self.store == "cache":
            caches["redis"].delete_pattern("arc:idem:*")
        #: scoped key -> (canonical body, status, bytes)
        self.stored: dict[tuple, tuple[str, int, bytes]] = {}
        #: pk -> {"org", "name", "sku", "price"} / {"org", "text"}
        self.products: dict[int, dict] = {}
        self.notes: dict[int, dict] = {}
        #: every id ever created, with its tenant (deleted rows stay: 404 targets)
        self.owner: dict[tuple[str, int], int] = {}
        #: (type, resource id, idempotency key) of every event the requests that ran emitted
        self.events: Counter = Counter()
        self.history: list[Req] = []

    # -- scoping, as SPEC §10 and tests/test_idempotency.py pin it --------------------------------

    def scoped_hash(self, req: Req) -> str:
        identity = self.identities[req.caller]
        if req.notes:
            identity += ":context:" + json.dumps(["branch_id", BRANCH], ensure_ascii=False)
        material = json.dumps([req.ns, identity, req.method, req.path, req.key], ensure_ascii=False)
        return hashlib.sha256(material.encode()).hexdigest()

    def event(self, req: Req, type_: str, pk: int) -> None:
        key = None if req.key is None else f"{self.scoped_hash(req)}:{type_}:{pk}"
        self.events[(type_, str(pk), key)] += 1

    def tenant(self, caller: str) -> int:
        return self.tenants[CALLERS[caller][1]].pk

    # -- sending ------------------------------------------------------------------------------

    def send(self, req: Req):
        client = self.clients[req.caller]
        headers = {} if req.key is None else {"HTTP_IDEMPOTENCY_KEY": req.key}
        if req.notes:
            headers["HTTP_X_ARC_CONTEXT_BRANCH_ID"] = BRANCH
        call = getattr(client, req.method.lower())
        args = () if req.body is None else (req.body,)
        with override_settings(ARC=self.arc_settings[req.ns]):
            return call(req.path, *args, format="json", **headers)

    def step(self, req: Req) -> None:
        self.history.append(req)
        scoped = None if req.key is None else (req.ns, req.caller, req.method, req.path, req.key)
        stored = self.stored.get(scoped)
        response = self.send(req)
        replayed = response.get("X-Idempotency-Replayed")
        self.assert_own_rows(req, response)
        if stored is not None:
            canonical, status, content = stored
            if canonical == req.canonical:
                assert replayed == "true", (req, response.status_code, response.content)
                assert (response.status_code, response.content) == (status, content), req
                self.seen["replayed"] += 1
            else:
                assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
                assert replayed is None
                self.seen["reused"] += 1
            return  # nothing ran: the invariants find the tables as the model left them
        assert replayed is None, ("a new scoped key was answered by a replay", req)
        if req.key is not None and "\t" in req.key and not self.refused(req):
            body = assert_error(response, 400, "VALIDATION_ERROR")
            assert "Idempotency-Key" in body["details"]
            self.seen["malformed"] += 1
            return  # nothing runs, nothing is claimed
        status = self.run(req, response)
        self.seen[status] += 1
        if scoped is not None and not self.refused(req):
            self.stored[scoped] = (req.canonical, response.status_code, response.content)

    @staticmethod
    def refused(req: Req) -> bool:
        """Refused before the key is looked at: a service client writing products."""
        return not req.notes and CALLERS[req.caller][0] == "service"

    def assert_own_rows(self, req: Req, response) -> None:
        """No answer, run or replayed, names a row of another tenant."""
        if not response.content or response.status_code >= 300:
            return
        data = response.json()["data"]
        table = "notes" if req.notes else "products"
        mine = self.tenant(req.caller)
        if isinstance(data, dict) and "organization" in data:
            assert data["organization"] == mine, (req, data)
        for pk in data.get("ids", []) if isinstance(data, dict) else []:
            assert self.owner.get((table, pk), mine) == mine, (req, data)

    # -- the oracle: what the same request without a key does -----------------------------------

    def run(self, req: Req, response) -> int:
        org = self.tenant(req.caller)
        code = response.status_code
        if self.refused(req):
            assert_error(response, 403, "FORBIDDEN")
            return 403
        mine = {pk: row for pk, row in self.products.items() if row["org"] == org}
        skus = {row["sku"] for row in mine.values()}
        target = None
        if req.op in ("patch", "delete", "double", "note_patch"):
            target = int(req.path.split("/")[3])
            rows = self.notes if req.notes else self.products
            if rows.get(target, {}).get("org") != org:
                assert_error(response, 404, "NOT_FOUND")
                return 404
        if req.op == "create":
            if not valid_product(req.body):
                assert_error(response, 400, "VALIDATION_ERROR")
            elif req.body["sku"] in skus:
                assert_error(response, 409, "CONFLICT")
            else:
                assert code == 201, response.content
                pk = response.json()["data"]["id"]
                self.add_product(pk, org, req.body)
                self.event(req, "idem-products.created", pk)
        elif req.op == "bulk":
            items = req.body["items"]
            item_skus = [item.get("sku") for item in items]
            if not all(valid_product(item) for item in items):
                assert_error(response, 400, "VALIDATION_ERROR")
            elif len(set(item_skus)) < len(item_skus) or skus & set(item_skus):
                assert_error(response, 409, "CONFLICT")
            else:
                assert code == 201, response.content
                ids = response.json()["data"]["ids"]
                assert len(ids) == len(items)
                for pk, item in zip(ids, items, strict=True):
                    self.add_product(pk, org, item)
                    self.event(req, "idem-products.created", pk)
        elif req.op in ("bulk_update", "bulk_delete"):
            items = req.body["items" if req.op == "bulk_update" else "ids"]
            ids = [item["id"] for item in items] if req.op == "bulk_update" else items
            names = [item for item in items if isinstance(item, dict)]
            if len(set(ids)) < len(ids) or set(ids) - set(mine):  # "Given twice." "Not found."
                assert_error(response, 400, "VALIDATION_ERROR")
            elif not all(item["name"] for item in names):
                assert_error(response, 400, "VALIDATION_ERROR")
            else:
                assert code == 200, response.content
                assert response.json()["data"]["ids"] == ids
                for item in names:
                    mine[item["id"]]["name"] = item["name"]
                kind = "deleted" if req.op == "bulk_delete" else "updated"
                for pk in ids:
                    if req.op == "bulk_delete":
                        del self.products[pk]
                    self.event(req, f"idem-products.{kind}", pk)
        elif req.op == "patch":
            row, change = mine[target], req.body
            if not valid_product({**row, **change}):
                assert_error(response, 400, "VALIDATION_ERROR")
            elif change.get("sku", row["sku"]) in skus - {row["sku"]}:
                assert_error(response, 409, "CONFLICT")
            else:
                assert code == 200, response.content
                row.update({k: Decimal(v) if k == "price" else v for k, v in change.items()})
                self.event(req, "idem-products.updated", target)
        elif req.op == "delete":
            assert code == 200, response.content
            del self.products[target]
            self.event(req, "idem-products.deleted", target)
        elif req.op == "double":
            assert code == 200, response.content
            mine[target]["price"] *= 2
            self.event(req, "idem-products.double", target)
        elif req.op == "raise":
            assert code == 200, response.content
            assert response.json()["data"] == {"updated": len(mine)}
            for row in mine.values():
                row["price"] += 1  # QuerySet.update: no event
        elif req.op == "note_create":
            if not req.body["text"]:
                assert_error(response, 400, "VALIDATION_ERROR")
            else:
                assert code == 201, response.content
                pk = response.json()["data"]["id"]
                self.notes[pk] = {"org": org, "text": req.body["text"]}
                self.owner[("notes", pk)] = org
                self.event(req, "branch-notes.created", pk)
        elif req.op == "note_patch":
            if not req.body["text"]:
                assert_error(response, 400, "VALIDATION_ERROR")
            else:
                assert code == 200, response.content
                self.notes[target]["text"] = req.body["text"]
                self.event(req, "branch-notes.updated", target)
        return code

    def add_product(self, pk: int, org: int, item: dict) -> None:
        assert pk not in self.products
        self.products[pk] = {
            "org": org,
            "name": item["name"],
            "sku": item["sku"],
            "price": Decimal(item["price"]),
        }
        self.owner[("products", pk)] = org

    # -- rules ---------------------------------------------------------------------------------

    @rule(
        caller=st.sampled_from(list(CALLERS)),
        ns=st.sampled_from(NAMESPACES),
        key=st.sampled_from(KEYS),
        op=st.sampled_from(OPS),
        n=st.integers(0, 30),
        sku=st.sampled_from(SKUS),
        name=st.sampled_from(NAMES),
        price=st.sampled_from(PRICES),
        invalid=st.sampled_from([False, False, True]),
        size=st.integers(1, 2),
        own=st.sampled_from([True, True, False]),
    )
    def write(self, caller, ns, key, op, n, sku, name, price, invalid, size, own):
        """A request drawn afresh; its target a live row of the caller's tenant, or (not
        ``own``) an id of any tenant, deleted or not."""
        table = "notes" if op.startswith("note") else "products"
        rows = self.notes if table == "notes" else self.products
        ids = sorted(pk for pk, row in rows.items() if row["org"] == self.tenant(caller))
        if not (own and ids):
            ids = sorted(pk for t, pk in self.owner if t == table)
        target = ids[n % len(ids)] if ids else 10**6
        bad_price = {"price": "abc"} if n % 2 else {}
        item = {"name": name, "sku": sku, "price": price}
        if invalid:
            item = {"name": name, "sku": sku, **bad_price}
        if op == "create":
            req = ("POST", PRODUCTS, item)
        elif op == "bulk":
            second = {**item, "sku": SKUS[(SKUS.index(sku) + n) % len(SKUS)], "price": price}
            req = ("POST", f"{PRODUCTS}bulk/", {"items": [second, item][-size:]})
        elif op in ("bulk_update", "bulk_delete"):
            targets = [target, ids[(n + size) % len(ids)] if ids else target][:size]
            if op == "bulk_delete":
                req = ("DELETE", f"{PRODUCTS}bulk/", {"ids": targets})
            else:
                items = [{"id": pk, "name": "" if invalid else name} for pk in targets]
                req = ("PATCH", f"{PRODUCTS}bulk/", {"items": items})
        elif op == "patch":
            change = [{"name": name}, {"price": price}, {"sku": sku}][n % 3]
            req = ("PATCH", f"{PRODUCTS}{target}/", {"price": "zz"} if invalid else change)
        elif op == "delete":
            req = ("DELETE", f"{PRODUCTS}{target}/", None)
        elif op == "double":
            req = ("POST", f"{PRODUCTS}{target}/action/", {"action": "double"})
        elif op == "raise":
            req = ("POST", f"{PRODUCTS}raise-prices/", {})
        elif op == "note_create":
            req = ("POST", NOTES, {"text": "" if invalid else name})
        else:
            req = ("PATCH", f"{NOTES}{target}/", {"text": "" if invalid else name})
        method, path, body = req
        self.step(Req(ns, caller, op, method, path, body, key))

    @precondition(lambda self: self.products)
    @rule(i=st.integers(0, 100), ns=st.sampled_from(NAMESPACES), key=st.sampled_from(KEYS))
    def create_a_taken_sku(self, i, ns, key):
        """A create under the sku of a live product of the caller's tenant (a client that
        creates again under a new key): 409 ``CONFLICT``, stored like any answer. Drawn
        afresh, such a create is rare: most creates meet a key their caller used already."""
        row = self.products[sorted(self.products)[i % len(self.products)]]
        caller = "a" if row["org"] == self.tenants["A"].pk else "b"
        body = {"name": "again", "sku": row["sku"], "price": PRICES[0]}
        self.step(Req(ns, caller, "create", "POST", PRODUCTS, body, key))

    @precondition(lambda self: self.history)
    @rule(i=st.integers(0, 100))
    def repeat(self, i):
        """An earlier request, sent again exactly (a client's retry)."""
        self.step(self.history[i % len(self.history)])

    @precondition(lambda self: self.history)
    @rule(i=st.integers(0, 100), caller=st.sampled_from(list(CALLERS)), other_ns=st.booleans())
    def elsewhere(self, i, caller, other_ns):
        """An earlier request, the same key and body, from another caller or namespace."""
        req = self.history[i % len(self.history)]
        ns = NAMESPACES[1 - NAMESPACES.index(req.ns)] if other_ns else req.ns
        self.step(replace(req, caller=caller, ns=ns))

    @precondition(lambda self: any(req.key for req in self.history))
    @rule(i=st.integers(0, 100), name=st.sampled_from(["blue", ""]))
    def another_body(self, i, name):
        """An earlier keyed request with another body: a key reused (or, under a key never
        answered, a new request)."""
        keyed = [req for req in self.history if req.key]
        req = keyed[i % len(keyed)]
        if isinstance(req.body, dict) and "items" in req.body:
            body = {"items": [{**item, "name": name} for item in req.body["items"]]}
        elif isinstance(req.body, dict) and "action" not in req.body:
            body = {**req.body, "name" if not req.notes else "text": name}
        else:  # the action's body and a DELETE's (none): another field
            body = {**(req.body or {}), "reason": name}
        if body != req.body:
            self.step(replace(req, body=body))

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def tables_hold_what_ran(self):
        products = {
            p.pk: {"org": p.organization_id, "name": p.name, "sku": p.sku, "price": p.price}
            for p in Product.objects.all()
        }
        assert products == self.products
        notes = {n.pk: {"org": n.organization_id, "text": n.text} for n in Note.objects.all()}
        assert notes == self.notes
        assert set(Note.objects.values_list("branch", flat=True)) <= {BRANCH}

    @invariant()
    def outbox_holds_the_events_of_what_ran(self):
        """Exactly the events the requests that ran emitted, each keyed one once, under
        ``<scoped key>:<type>:<id>``: so no two rows were created for one scoped key."""
        assert_outbox_events(self.events)

    @invariant()
    def the_store_holds_one_key_per_answered_scoped_key(self):
        if self.store == "database":
            assert IdempotencyRecord.objects.filter(status__isnull=True).count() == 0
            count = IdempotencyRecord.objects.count()
        else:
            count = len(caches["redis"].keys("arc:idem:*"))
        assert count == len(self.stored)


def build_world(store: str) -> None:
    tenants = {"A": OrganizationFactory(), "B": OrganizationFactory()}
    user = MembershipFactory(organization=tenants["A"], role="admin").user
    MembershipFactory(user=user, organization=tenants["B"], role="admin")
    other = MembershipFactory(organization=tenants["B"], role="admin").user
    service, secret = ServiceClient.objects.create_with_key(
        name="pos", organization_id=tenants["A"].pk
    )
    machine = IdempotencyMachine
    machine.store, machine.tenants, machine.seen = store, tenants, Counter()
    machine.clients = {
        "a": client_for(user, HTTP_X_ORGANIZATION_ID=str(tenants["A"].pk)),
        "ab": client_for(user, HTTP_X_ORGANIZATION_ID=str(tenants["B"].pk)),
        "b": client_for(other, HTTP_X_ORGANIZATION_ID=str(tenants["B"].pk)),
        "svc": client_for(None, HTTP_AUTHORIZATION=f"Bearer {secret}"),
    }
    machine.identities = {
        "a": f"user:{user.pk}:org:{tenants['A'].pk}",
        "ab": f"user:{user.pk}:org:{tenants['B'].pk}",
        "b": f"user:{other.pk}:org:{tenants['B'].pk}",
        "svc": f"client:{service.client_id}:org:{tenants['A'].pk}",
    }


@pytest.mark.parametrize("store", ["database", pytest.param("cache", marks=pytest.mark.redis)])
def test_keyed_writes_run_once_per_scoped_key(store):
    if store == "cache" and not REDIS_URL:
        pytest.skip("ARC_REDIS_URL is not set (make test sets it)")
    idempotency = {
        "ENABLED": True,  # branch-notes too (idem-products has idempotent = True)
        "STORE": store,
        "ALIAS": "redis",
        "TTL_SECONDS": 3600,
        "LOCK_SECONDS": 30,
    }
    caches_setting = caches_with("redis", REDIS_URL) if REDIS_URL else None
    with override_settings(**({"CACHES": caches_setting} if caches_setting else {})):
        IdempotencyMachine.arc_settings = {
            ns: arc_with(IDEMPOTENCY={**idempotency, "NAMESPACE": ns}) for ns in NAMESPACES
        }
        build_world(store)
        run_state_machine_as_test(
            IdempotencyMachine,
            settings=settings(
                max_examples=examples(40),
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    seen = IdempotencyMachine.seen
    for outcome in ("replayed", "reused", "malformed", 200, 201, 400, 403, 404, 409):
        assert seen[outcome] >= 3, seen
