"""Hypothesis stateful test of the query cache (SPEC §11) and ``Idempotency-Key`` (SPEC §10)
at once, over HTTP, on one resource: ``cached-products`` with idempotency on.

Each feature has a stateful test of its own (``test_query_cache_stateful*.py``,
``test_idempotency_stateful.py``); what neither exercises is the two meeting: a keyed write
whose route runs inside the idempotency store's transaction must still retire the cached
answers when it commits, a replay (which writes nothing) must not, the cached answer a retry
follows must already show the first attempt's write, and a Redis outage takes the query cache
away while the ``cache`` idempotency store refuses keyed writes (503) and the ``database``
one keeps them.

Callers: an admin (sees ``cost``) and a viewer (no ``cost``, ``sku`` masked) of each of two
tenants, and an anonymous client (refused the resource: its refusal must never come from,
nor reach, the cache). Steps: cached list and get reads; keyed writes (create, PATCH,
DELETE, the ``double`` action, bulk create, update and delete, the ``raise-prices`` route) under keys from a
small pool every caller shares, sent again exactly, with another body, and by another
caller; writes without a key; ``QuerySet.update`` then ``invalidate()``; the clock moving
past ``stale_seconds``; Redis made unreachable and reachable again.

Invariants, after every step: a cached answer (HIT or STALE) is byte for byte what the same
caller gets from the uncached twin (``uncached-products``) at that moment; a repeat of a
(caller, key, body) is the first answer byte for byte, another body under it is 422; the
tables hold exactly the rows the model predicts and the outbox one event per write that ran
(a keyed create once, whatever the retries); no answer is a 500.

A STALE answer is held to the same equality as a HIT: invalidation retires an entry by
version token at the write's commit, so an entry a read finds (STALE or not) never predates
a write; staleness is only its age.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal
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

from django_arc import redis_alias
from django_arc.idempotency.models import IdempotencyRecord
from django_arc.outbox import OutboxEvent
from django_arc.querycache import invalidate
from shop.models import Product
from tests.budget import examples
from tests.factories import MembershipFactory, OrganizationFactory
from tests.helpers import Clock, assert_error, assert_outbox_events, cache_clock, client_for
from tests.redis_support import REDIS_URL, arc_with, caches_with
from tests.testapp.feature_resources import CachedProductResource

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True),
]

CACHED = "/api/cached-products/"
UNCACHED = "/api/uncached-products/"
STALE_SECONDS = 5
READERS = ["a_admin", "a_viewer", "b_admin", "b_viewer", "anon"]
#: a viewer may not write: refused (403) before its key is looked at, so nothing is claimed
WRITERS = ["a_admin", "b_admin", "a_admin", "b_admin", "a_viewer"]
KEYS = ["k1", "k2", "shared", None]
SKUS = ["S0", "S1", "S2", "S3"]
NAMES = ["red", "green"]
PRICES = ["1.00", "2.50", "150.00"]
OPS = [
    "create",
    "create",
    "patch",
    "delete",
    "double",
    "bulk",
    "bulk_update",
    "bulk_delete",
    "raise",
]
QUERIES = ["", "?select=name,price", "?sort=-price", "?price[gte]=2", "?limit=2&page=2"]
EVENT = "cached-products"


@dataclass(frozen=True)
class Req:
    caller: str
    op: str
    method: str
    path: str
    body: Any
    key: str | None

    @property
    def canonical(self) -> str:
        return json.dumps(self.body if self.body is not None else {}, sort_keys=True)


class FeaturesMachine(RuleBasedStateMachine):
    # built once per test: see ``build_world``
    orgs: dict = {}
    clients: dict = {}
    identities: dict = {}
    store: str = "database"
    arc_up: dict = {}
    caches_up: dict = {}
    caches_down: dict = {}
    clock: Clock = Clock()
    seen: Counter = Counter()

    def __init__(self):
        super().__init__()
        self.down = False
        # every example starts from the same rows, keys and events
        Product.objects.all().delete()
        IdempotencyRecord.objects.all().delete()
        if self.store == "cache":
            caches["redis"].delete_pattern("arc:idem:*")
        self.products: dict[int, dict] = {}
        for org in ("a", "b"):
            for i, sku in enumerate(SKUS[:2]):
                p = Product.objects.create(
                    organization=self.orgs[org], name=f"{org}{i}", sku=sku, price=10 + i
                )
                self.products[p.pk] = self.row(self.orgs[org].pk, p.name, sku, Decimal(10 + i))
        OutboxEvent.objects.all().delete()
        self.events: Counter = Counter()
        #: (caller, method, path, key) -> (canonical body, status, bytes)
        self.stored: dict[tuple, tuple[str, int, bytes]] = {}
        self.history: list[Req] = []
        self.ever: set[int] = set(self.products)

    @staticmethod
    def row(org: int, name: str, sku: str, price: Decimal, status: str = "draft") -> dict:
        return {"org": org, "name": name, "sku": sku, "price": price, "status": status}

    def org(self, caller: str) -> int:
        return self.orgs[caller[0]].pk

    def context(self):
        """Redis as it is now: the suite's, or an address nothing listens on (same prefix)."""
        return override_settings(CACHES=self.caches_down if self.down else self.caches_up)

    # -- reads ---------------------------------------------------------------------------------

    def compare(self, caller: str, path: str, again: bool = True, key: str | None = None) -> None:
        """Cached, uncached, (``again``) cached again: every cached answer is the uncached
        one. The first is whatever the steps before left; the second a HIT unless the first
        was STALE (refreshed meanwhile) or Redis is away."""
        client = self.clients[caller]
        headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
        with self.context():
            answers = [client.get(f"{CACHED}{path}", **headers)]
            uncached = client.get(f"{UNCACHED}{path}")
            if again:
                answers.append(client.get(f"{CACHED}{path}", **headers))
        assert uncached.status_code < 500, uncached.content
        for cached in answers:
            assert cached.status_code == uncached.status_code, (caller, path, cached.content)
            state = cached.get("X-Cache")
            if self.down:
                assert state in (None, "MISS"), (caller, path, state)
            if uncached.status_code == 200:
                assert state in ("HIT", "STALE", "MISS")
                assert cached.content == uncached.content, (caller, path, state)
                self.seen[state] += 1
            else:
                assert state in (None, "MISS"), (caller, path, state)  # never from the cache
                assert cached.json()["code"] == uncached.json()["code"]

    @rule(
        caller=st.sampled_from(READERS),
        query=st.sampled_from(QUERIES),
        key=st.sampled_from(KEYS),
    )
    def read_list(self, caller, query, key):
        """A read may carry a key too (a client sending it on every request): safe methods
        ignore it, and it must neither change nor split the cached answer."""
        self.compare(caller, query, key=key)

    @rule(caller=st.sampled_from(READERS), n=st.integers(0, 40), key=st.sampled_from(KEYS))
    def read_one(self, caller, n, key):
        """A row of any tenant, live or deleted (404s are never cached)."""
        pks = sorted(self.ever)
        self.compare(caller, f"{pks[n % len(pks)]}/", key=key)

    @invariant()
    def first_pages(self):
        """After every step, the first page of a caller (each in turn): an entry a write
        left valid, or a refresh stored wrong, shows here at once."""
        self.turn = getattr(self, "turn", -1) + 1
        self.compare(READERS[self.turn % len(READERS)], "", again=False)

    # -- keyed and unkeyed writes ----------------------------------------------------------------

    def scoped_hash(self, req: Req) -> str:
        material = json.dumps(["", self.identities[req.caller], req.method, req.path, req.key])
        return hashlib.sha256(material.encode()).hexdigest()

    def event(self, req: Req, kind: str, pk: int) -> None:
        type_ = f"{EVENT}.{kind}"
        key = None if req.key is None else f"{self.scoped_hash(req)}:{type_}:{pk}"
        self.events[(type_, str(pk), key)] += 1

    def send(self, req: Req):
        client = self.clients[req.caller]
        headers = {} if req.key is None else {"HTTP_IDEMPOTENCY_KEY": req.key}
        call = getattr(client, req.method.lower())
        args = () if req.body is None else (req.body,)
        with self.context():
            return call(req.path, *args, format="json", **headers)

    def step(self, req: Req) -> None:
        self.history.append(req)
        response = self.send(req)
        assert response.status_code != 500, (req, response.content)
        replayed = response.get("X-Idempotency-Replayed")
        if "viewer" in req.caller:
            assert_error(response, 403, "FORBIDDEN")
            assert replayed is None
            self.seen["refused"] += 1
            return
        if req.key is not None and self.down and self.store == "cache":
            assert_error(response, 503, "IDEMPOTENCY_UNAVAILABLE")
            self.seen["unavailable"] += 1
            return
        scoped = None if req.key is None else (req.caller, req.method, req.path, req.key)
        stored = self.stored.get(scoped)
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
            return
        assert replayed is None, req
        self.seen[self.run(req, response)] += 1
        if self.down and response.status_code < 300:
            self.seen["wrote while Redis was away"] += 1
        if scoped is not None:
            self.stored[scoped] = (req.canonical, response.status_code, response.content)

    def run(self, req: Req, response) -> int:
        """The oracle: what the request does when it runs."""
        org = self.org(req.caller)
        code = response.status_code
        mine = {pk: row for pk, row in self.products.items() if row["org"] == org}
        skus = {row["sku"] for row in mine.values()}
        target = None
        if req.op in ("patch", "delete", "double"):
            target = int(req.path.split("/")[3])
            if target not in mine:
                assert_error(response, 404, "NOT_FOUND")
                return 404
        if req.op == "create":
            if req.body["sku"] in skus:
                assert_error(response, 409, "CONFLICT")
            else:
                assert code == 201, response.content
                pk = response.json()["data"]["id"]
                self.add(pk, org, req.body)
                self.event(req, "created", pk)
        elif req.op == "bulk":
            item_skus = [item["sku"] for item in req.body["items"]]
            if len(set(item_skus)) < len(item_skus) or skus & set(item_skus):
                assert_error(response, 409, "CONFLICT")
            else:
                assert code == 201, response.content
                ids = response.json()["data"]["ids"]
                for pk, item in zip(ids, req.body["items"], strict=True):
                    self.add(pk, org, item)
                    self.event(req, "created", pk)
        elif req.op in ("bulk_update", "bulk_delete"):
            items = req.body["items" if req.op == "bulk_update" else "ids"]
            ids = [item["id"] for item in items] if req.op == "bulk_update" else items
            if len(set(ids)) < len(ids) or set(ids) - set(mine):  # "Given twice." "Not found."
                assert_error(response, 400, "VALIDATION_ERROR")
            else:
                assert code == 200, response.content
                assert response.json()["data"]["ids"] == ids
                for pk in ids:
                    if req.op == "bulk_delete":
                        del self.products[pk]
                        self.event(req, "deleted", pk)
                    else:
                        mine[pk]["name"] = next(i["name"] for i in items if i["id"] == pk)
                        self.event(req, "updated", pk)
        elif req.op == "patch":
            assert code == 200, response.content
            change = req.body
            mine[target].update({k: Decimal(v) if k == "price" else v for k, v in change.items()})
            self.event(req, "updated", target)
        elif req.op == "delete":
            assert code == 200, response.content
            del self.products[target]
            self.event(req, "deleted", target)
        elif req.op == "double":
            assert code == 200, response.content
            mine[target]["price"] *= 2
            self.event(req, "double", target)
        elif req.op == "raise":
            assert code == 200, response.content
            assert response.json()["data"] == {"updated": len(mine)}
            for row in mine.values():
                row["price"] += 1  # QuerySet.update in a route: no event
        return code

    def add(self, pk: int, org: int, item: dict) -> None:
        assert pk not in self.products
        self.products[pk] = self.row(org, item["name"], item["sku"], Decimal(item["price"]))
        self.ever.add(pk)

    @rule(
        caller=st.sampled_from(WRITERS),
        key=st.sampled_from(KEYS),
        op=st.sampled_from(OPS),
        n=st.integers(0, 40),
        sku=st.sampled_from(SKUS),
        name=st.sampled_from(NAMES),
        price=st.sampled_from(PRICES),
        own=st.sampled_from([True, True, False]),
    )
    def write(self, caller, key, op, n, sku, name, price, own):
        """A write drawn afresh; its target a live row of the caller's tenant, or (not
        ``own``) any row ever seen, deleted or of the other tenant."""
        ids = sorted(pk for pk, row in self.products.items() if row["org"] == self.org(caller))
        if not (own and ids):
            ids = sorted(self.ever)
        target = ids[n % len(ids)]
        item = {"name": name, "sku": sku, "price": price}
        if op == "create":
            method, path, body = "POST", CACHED, item
        elif op == "bulk":
            other = {**item, "sku": SKUS[(SKUS.index(sku) + 1 + n % 3) % len(SKUS)]}
            method, path, body = "POST", f"{CACHED}bulk/", {"items": [item, other][: 1 + n % 2]}
        elif op in ("bulk_update", "bulk_delete"):
            targets = [target, ids[(n + 1) % len(ids)]][: 1 + n % 2]
            if op == "bulk_delete":
                method, path, body = "DELETE", f"{CACHED}bulk/", {"ids": targets}
            else:
                items = [{"id": pk, "name": name} for pk in targets]
                method, path, body = "PATCH", f"{CACHED}bulk/", {"items": items}
        elif op == "patch":
            change = [{"name": name}, {"price": price}][n % 2]
            method, path, body = "PATCH", f"{CACHED}{target}/", change
        elif op == "delete":
            method, path, body = "DELETE", f"{CACHED}{target}/", None
        elif op == "double":
            method, path, body = "POST", f"{CACHED}{target}/action/", {"action": "double"}
        else:
            method, path, body = "POST", f"{CACHED}raise-prices/", {}
        self.step(Req(caller, op, method, path, body, key))

    @precondition(lambda self: self.history)
    @rule(i=st.integers(0, 100))
    def retry(self, i):
        """An earlier request sent again exactly (a client's retry): a keyed one when there
        is one, the most recent the likeliest."""
        sent = [req for req in self.history if req.key] or self.history
        self.step(sent[-1 - i % len(sent) // 2])

    @precondition(lambda self: any(req.key for req in self.history))
    @rule(i=st.integers(0, 100), name=st.sampled_from(["blue", "red"]))
    def another_body(self, i, name):
        keyed = [req for req in self.history if req.key]
        req = keyed[-1 - i % len(keyed)]
        if isinstance(req.body, dict) and "items" in req.body:
            body = {"items": [{**item, "name": name} for item in req.body["items"]]}
        elif isinstance(req.body, dict) and "action" not in req.body and req.body:
            body = {**req.body, "name": name}
        else:  # the action's body, a DELETE's (none), raise-prices' (empty)
            body = {**(req.body or {}), "reason": name}
        if body != req.body:
            self.step(replace(req, body=body))

    @precondition(lambda self: self.history)
    @rule(i=st.integers(0, 100), caller=st.sampled_from(WRITERS))
    def another_caller(self, i, caller):
        """An earlier request, its key and body, from another caller: another scoped key."""
        self.step(replace(self.history[-1 - i % len(self.history)], caller=caller))

    # -- writes no request makes, time, Redis --------------------------------------------------

    @rule(org=st.sampled_from(["a", "b"]), status=st.sampled_from(["active", "archived"]))
    def update_and_invalidate(self, org, status):
        with self.context():
            Product.objects.filter(organization=self.orgs[org]).update(status=status)
            invalidate(Product)
        for row in self.products.values():
            if row["org"] == self.orgs[org].pk:
                row["status"] = status

    @rule()
    def time_passes(self):
        """Past ``stale_seconds``: every entry stored so far is STALE on its next read."""
        self.clock.offset += STALE_SECONDS + 1

    @precondition(lambda self: not self.down)
    @rule()
    def redis_goes_away(self):
        self.down = True

    @precondition(lambda self: self.down)
    @rule()
    def redis_comes_back(self):
        self.down = False

    # -- the tables ----------------------------------------------------------------------------

    @invariant()
    def tables_hold_what_ran(self):
        rows = {
            p.pk: self.row(p.organization_id, p.name, p.sku, p.price, p.status)
            for p in Product.objects.all()
        }
        assert rows == self.products

    @invariant()
    def outbox_holds_one_event_per_write_that_ran(self):
        assert_outbox_events(self.events)

    @invariant()
    def one_stored_key_per_answered_scoped_key(self):
        if self.store == "database":
            assert IdempotencyRecord.objects.filter(status__isnull=True).count() == 0
            assert IdempotencyRecord.objects.count() == len(self.stored)
        elif not self.down:
            assert len(caches["redis"].keys("arc:idem:*")) == len(self.stored)


def build_world() -> None:
    machine = FeaturesMachine
    machine.orgs = {"a": OrganizationFactory(), "b": OrganizationFactory()}
    machine.clients, machine.identities = {"anon": client_for(None)}, {}
    for caller in READERS[:-1]:
        org, role = caller.split("_")
        user = MembershipFactory(organization=machine.orgs[org], role=role).user
        org_pk = machine.orgs[org].pk
        machine.clients[caller] = client_for(user, HTTP_X_ORGANIZATION_ID=str(org_pk))
        machine.identities[caller] = f"user:{user.pk}:org:{org_pk}"


@pytest.mark.parametrize("store", ["database", "cache"])
def test_cache_and_idempotency_together(store, monkeypatch):
    clock = cache_clock(monkeypatch)
    monkeypatch.setattr(
        CachedProductResource, "cache", {"stale_seconds": STALE_SECONDS, "tags": ["t"]}
    )
    up = caches_with("redis", REDIS_URL)
    prefix = up["redis"]["KEY_PREFIX"]
    down = caches_with("redis", "redis://127.0.0.1:1/0", prefix)
    idempotency = {
        "ENABLED": True,
        "STORE": store,
        "ALIAS": "redis",
        "TTL_SECONDS": 3600,
        "LOCK_SECONDS": 30,
    }
    arc = arc_with(CACHE={"ALIAS": "redis"}, IDEMPOTENCY=idempotency)
    with override_settings(CACHES=up), override_settings(ARC=arc):
        redis_alias.reset_outage_warnings()
        build_world()
        machine = FeaturesMachine
        machine.store, machine.clock, machine.seen = store, clock, Counter()
        machine.caches_up, machine.caches_down = up, down
        run_state_machine_as_test(
            FeaturesMachine,
            settings=settings(
                max_examples=examples(40),
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                # the same examples every run: the coverage checks below are then true or
                # false of the code, not of the draw (a random run once made 4 writes, not 10)
                derandomize=True,
            ),
        )
    # What proves the combination ran, not how often each outcome came: Hypothesis leaves
    # rules out of some examples (swarm testing) and an outage may last many steps, so
    # counts of single statuses vary widely from run to run.
    seen = FeaturesMachine.seen
    for outcome in ("HIT", "STALE", "MISS", "replayed", "reused", "refused"):
        assert seen[outcome] >= 1, seen
    assert seen[200] + seen[201] >= 10, seen
    if store == "cache":
        assert seen["unavailable"] >= 1, seen  # keyed writes refused while Redis is away
    else:
        assert seen["wrote while Redis was away"] >= 1, seen  # their bumps held back
