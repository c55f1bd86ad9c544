"""The query cache when a database router sends the cached model's rows to another alias
than ``default``, whose ``ATOMIC_REQUESTS`` transaction commits after the view has answered:
a write's bump must wait for *that* commit (SPEC §11: "within the same request's commit").

The alias ``routed`` is a test mirror of ``default`` (the same database, other connections),
added here for these tests only; its ``ATOMIC_REQUESTS`` is switched on by the fixture, so the
rest of the suite never opens it.
"""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings

from django_arc.querycache import store as qc_store
from tests import test_query_cache
from tests.helpers import client_for
from tests.redis_support import REDIS_URL
from tests.test_query_cache import CACHED, UNCACHED, get

# test_query_cache's fixtures: Redis under a prefix of the test's own (autouse), and the shop
redis_cache = test_query_cache.redis_cache
shop = test_query_cache.shop

settings.DATABASES.setdefault(
    "routed", {**settings.DATABASES["default"], "TEST": {"MIRROR": "default"}}
)
connections.settings.setdefault("routed", settings.DATABASES["routed"])

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
    pytest.mark.django_db(transaction=True, databases=["default", "routed"]),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="two connections writing one SQLite file wait on each other's locks",
    ),
]


class ShopRouted:
    """The shop's models (products, orders) are read and written through ``routed``."""

    def db_for_read(self, model, **hints):
        return "routed" if model._meta.app_label == "shop" else None

    db_for_write = db_for_read

    def allow_relation(self, *args, **hints):
        return True


@pytest.fixture
def routed(monkeypatch):
    """``routed`` with ``ATOMIC_REQUESTS`` on, and the shop routed to it. A mirror's
    connection in this thread takes the default's settings; one opened by another thread
    reads ``connections.settings``, whose name is pointed at the test database here."""
    config = connections.settings["routed"]
    monkeypatch.setitem(config, "NAME", connections["default"].settings_dict["NAME"])
    monkeypatch.setitem(config, "ATOMIC_REQUESTS", True)
    connections["routed"].close()
    try:
        with override_settings(DATABASE_ROUTERS=[ShopRouted()]):
            yield
    finally:
        connections["routed"].close()


def test_a_routes_bump_waits_for_the_commit_of_the_database_its_rows_are_written_to(
    shop, routed, monkeypatch
):
    """A route writing with ``QuerySet.update`` (no signal: the request seam's bump is the
    only one) through the routed alias. Its bump went out at once, on ``default``, which has
    no transaction open, while the update was still uncommitted in ``routed``'s request
    transaction: a read right after the bump (a thread of its own) stored the old prices under
    the new tokens, and once the write had committed the list was a stale HIT."""
    admin, editor = shop["admin"], shop["editor"]
    assert get(editor, CACHED)["X-Cache"] == "MISS"
    bump = qc_store.QueryCacheStore.bump
    between = []

    def read_right_after(store, keys):
        bump(store, keys)
        if not between:
            same_caller = client_for(editor.user, HTTP_X_ORGANIZATION_ID=str(shop["a"].pk))

            def read():
                between.append(get(same_caller, CACHED).status_code)
                connections.close_all()

            thread = threading.Thread(target=read)
            thread.start()
            thread.join()

    monkeypatch.setattr(qc_store.QueryCacheStore, "bump", read_right_after)
    assert admin.post(f"{CACHED}raise-prices/").status_code == 200
    assert between == [200]
    after = get(editor, CACHED)
    assert after.content == get(editor, UNCACHED).content


class Undo(Exception):
    pass


def test_a_bump_waiting_on_one_database_does_not_stand_for_a_write_on_another(shop, routed):
    """A bump of the products' versions waits for ``default``'s commit when a write on
    ``routed`` sends a signal with the same versions: it is registered on ``routed`` all the
    same (the one waiting on ``default`` is dropped with that transaction's rollback), so the
    next read is a MISS with the row ``routed`` committed."""
    from django.db import transaction

    from shop.models import Product

    editor = shop["editor"]
    get(editor, CACHED)
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    one, other = Product.objects.filter(organization=shop["a"]).order_by("pk")[:2]
    try:
        with transaction.atomic(using="default"):
            one.name = "renamed on default"
            one.save(using="default")  # waiting on default's commit
            with transaction.atomic(using="routed"):
                other.name = "renamed on routed"
                other.save()  # routed (the router): waits on routed's commit
            raise Undo
    except Undo:
        pass
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS"
    names = [p["name"] for p in after.json()["docs"]]
    assert "renamed on routed" in names and "renamed on default" not in names
    assert after.content == get(editor, UNCACHED).content


def test_invalidate_of_a_routed_model_waits_for_that_databases_commit(shop, routed):
    """``invalidate(Product)`` inside ``atomic(using="routed")``, where the router writes
    Product's rows: the bump waits for ``routed``'s commit, so a write rolled back there
    bumps nothing (the entry stays a HIT with the rows as they are), and one committed
    makes the next read a MISS with them."""
    from django.db import transaction

    from django_arc.querycache import invalidate
    from shop.models import Product

    editor = shop["editor"]
    get(editor, CACHED)
    assert get(editor, CACHED)["X-Cache"] == "HIT"
    try:
        with transaction.atomic(using="routed"):
            Product.objects.filter(organization=shop["a"]).update(name="rolled back")
            invalidate(Product)
            raise Undo
    except Undo:
        pass
    kept = get(editor, CACHED)
    assert kept["X-Cache"] == "HIT", kept.content
    with transaction.atomic(using="routed"):
        Product.objects.filter(organization=shop["a"]).update(name="committed")
        invalidate(Product)
    after = get(editor, CACHED)
    assert after["X-Cache"] == "MISS"
    assert {p["name"] for p in after.json()["docs"]} == {"committed"}
