"""django_arc.membership.cached_resolver: caching, negative answers, invalidation, outages."""

import hashlib
import logging
import threading
import warnings
from types import SimpleNamespace

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import CacheKeyWarning
from django.db import connections, transaction
from django.test import override_settings

from django_arc import redis_alias
from django_arc.membership import cached_resolver
from shop.membership import resolve_membership
from shop.models import Membership
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory


def counting(answer):
    calls = []

    def resolver(user, org_id):
        calls.append((user.pk, org_id))
        return answer

    return resolver, calls


def test_caches_roles_and_non_membership():
    user = SimpleNamespace(pk=1)
    for answer, expected in ((["admin"], ["admin"]), (None, None)):
        resolver, calls = counting(answer)
        cached = cached_resolver(resolver, prefix=f"t{answer}")
        assert cached(user, "5") == expected
        assert cached(user, "5") == expected
        assert len(calls) == 1
        cached.invalidate(1, "5")
        assert cached(user, "5") == expected
        assert len(calls) == 2


def test_invalidate_forgets_every_spelling_and_a_lost_generation_is_a_miss():
    """A resolver may read ``"01"`` as organization 1: ``invalidate(user, 1)`` must forget
    that spelling's answer too, not leave a revoked member its roles for ``ttl``. The
    user's generation evicted (an LRU cache) makes its answers misses, never hits."""
    resolver, calls = counting(["viewer"])
    cached = cached_resolver(resolver, prefix="spellings")
    user = SimpleNamespace(pk=4)
    for org in ("1", "01", "2"):
        assert cached(user, org) == ["viewer"]
        assert cached(user, org) == ["viewer"]
    assert len(calls) == 3
    cached.invalidate(4, 1)
    for org in ("1", "01", "2"):
        assert cached(user, org) == ["viewer"]
    assert len(calls) == 6
    caches["default"].delete("spellings.g:4")
    assert cached(user, "01") == ["viewer"]
    assert len(calls) == 7
    assert cached(user, "01") == ["viewer"]
    assert len(calls) == 7


def test_a_membership_revoked_while_it_is_being_resolved_is_not_cached_as_granted():
    """The resolver reads the membership, then it is revoked and invalidated, then the answer
    read before is stored: it must not be served afterwards (it was stored after the
    invalidation deleted the key, and kept the revoked roles for ``ttl``)."""
    calls = []

    def racing(user, org_id):
        calls.append(org_id)
        roles = ["admin"] if len(calls) == 1 else None
        if len(calls) == 1:
            cached.invalidate(user.pk, org_id)  # revoked while the answer is on its way
        return roles

    cached = cached_resolver(racing, prefix="racing")
    user = SimpleNamespace(pk=5)
    assert cached(user, "1") == ["admin"]  # the request that was already resolving
    assert cached(user, "1") is None  # the next one asks again
    assert len(calls) == 2


def test_odd_org_ids_get_portable_keys():
    resolver, calls = counting(["x"])
    cached = cached_resolver(resolver)
    user = SimpleNamespace(pk=2)
    for org in ("a b", "ü" * 100, "x" * 500, ""):
        assert cached(user, org) == ["x"]
        assert cached(user, org) == ["x"]
    assert len(calls) == 4


def test_an_org_header_spelled_like_a_digest_never_reads_a_hashed_orgs_entry():
    """An odd organization id goes into the key as a digest; that digest used to be ``h``
    and hex, which is also a plain organization id a client can send: the header
    ``h<digest of "a b">`` read the roles cached for organization ``"a b"``. A digest is
    marked with a character no plain id has."""
    user = SimpleNamespace(pk=3)

    def resolver(user, org_id):
        return ["admin"] if org_id == "a b" else None

    cached = cached_resolver(resolver, prefix="digest-spelling")
    assert cached(user, "a b") == ["admin"]
    digest = hashlib.sha256(b"a b").hexdigest()[:32]
    for spelling in ("h" + digest, "~" + digest):
        assert cached(user, spelling) is None


def test_anonymous_users_are_not_cached():
    resolver, calls = counting(None)
    cached = cached_resolver(resolver)
    anon = SimpleNamespace(pk=None)
    cached(anon, "1")
    cached(anon, "1")
    assert len(calls) == 2


#: a Redis cache nothing listens behind: every call fails at once
DEAD_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.2},
    }
}


@override_settings(CACHES=DEAD_CACHE)
def test_cache_outage_degrades_to_the_resolver():
    resolver, calls = counting(["viewer"])
    cached = cached_resolver(resolver)
    assert cached(SimpleNamespace(pk=3), "1") == ["viewer"]
    assert cached(SimpleNamespace(pk=3), "1") == ["viewer"]
    assert len(calls) == 2
    cached.invalidate(3, "1")  # no exception


@override_settings(CACHES=DEAD_CACHE)
def test_a_cache_outage_warns_once_per_interval_not_once_per_request(caplog):
    """Every request resolves its membership: with the cache away, each logged a WARNING
    with its traceback, a line per request for as long as the outage lasted, as the
    idempotency store's 503s did before they were rate-limited. One per interval, as every
    other outage warning; a failed ``invalidate`` (a revoked member keeps access up to
    ``ttl``) is still logged each time."""
    redis_alias.reset_outage_warnings()
    caplog.set_level(logging.WARNING, logger="django_arc.membership")
    resolver, calls = counting(["viewer"])
    cached = cached_resolver(resolver)
    for _ in range(5):
        assert cached(SimpleNamespace(pk=3), "1") == ["viewer"]
    assert len(calls) == 5
    warnings = [r for r in caplog.records if r.name == "django_arc.membership"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "membership cache 'default' unavailable" in warnings[0].getMessage()
    caplog.clear()
    cached.invalidate(3, "1")
    cached.invalidate(3, "1")
    assert len([r for r in caplog.records if r.name == "django_arc.membership"]) == 2
    redis_alias.reset_outage_warnings()


def read_in_another_connection(user, org_id):
    """What a concurrent request resolves: its own thread, its own database connection."""
    answers = []

    def target():
        try:
            answers.append(resolve_membership(user, org_id))
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    return answers[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["revoke", "demote"])
def test_the_example_forgets_a_membership_when_its_change_commits(change):
    """The example shop cleared the cached answer at ``post_save``/``post_delete``, before
    the change committed: a request resolving in between still read the old membership and
    cached it again, so a revoked member kept access for the resolver's whole ``ttl`` after
    the commit. The answer is cleared when the change commits."""
    caches["default"].clear()
    membership = MembershipFactory(role="editor")
    user, org_id = membership.user, str(membership.organization_id)
    assert resolve_membership(user, org_id) == ["editor"]  # cached
    with transaction.atomic():
        if change == "revoke":
            membership.delete()
        else:
            membership.role = "viewer"
            membership.save()
        # not committed: another request still sees, and may cache, the old membership
        assert read_in_another_connection(user, org_id) == ["editor"]
    assert resolve_membership(user, org_id) == (None if change == "revoke" else ["viewer"])
    assert read_in_another_connection(user, org_id) == resolve_membership(user, org_id)


@pytest.mark.django_db(transaction=True)
def test_the_example_keeps_the_cached_membership_when_the_change_rolls_back():
    caches["default"].clear()
    membership = MembershipFactory(role="editor")
    user, org_id = membership.user, str(membership.organization_id)
    assert resolve_membership(user, org_id) == ["editor"]
    with pytest.raises(RuntimeError), transaction.atomic():
        membership.delete()
        raise RuntimeError("the request failed")
    with override_settings(DEBUG=True):
        connection = connections["default"]
        queries = len(connection.queries)
        assert resolve_membership(user, org_id) == ["editor"]
        assert len(connection.queries) == queries  # still the cached answer: nothing changed


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("field", ["organization", "user"])
def test_the_example_forgets_the_old_pair_when_a_membership_moves(field):
    """An admin editing a membership's user or organization took the role from the old
    (user, organization) pair, but only the new pair's answer was forgotten: the old member
    kept the cached role for the resolver's ``ttl``."""
    caches["default"].clear()
    membership = MembershipFactory(role="admin")
    user, org_id = membership.user, str(membership.organization_id)
    assert resolve_membership(user, org_id) == ["admin"]
    loaded = Membership.objects.get(pk=membership.pk)  # as the admin's change form loads it
    if field == "organization":
        loaded.organization = OrganizationFactory()
    else:
        loaded.user = UserFactory()
    loaded.save()
    assert resolve_membership(user, org_id) is None
    assert resolve_membership(loaded.user, str(loaded.organization_id)) == ["admin"]


@pytest.mark.django_db(transaction=True)
def test_the_example_forgets_the_committed_pair_after_a_move_that_rolled_back():
    """The pair a membership was loaded with is what the database holds until a change
    commits. It was replaced at ``post_save``, before the commit: a move to another user
    that rolled back (the request failed) left the instance remembering that user, so when
    the same instance was then moved again and committed, the member who actually lost the
    role was never forgotten and kept it for the resolver's ``ttl``."""
    caches["default"].clear()
    membership = MembershipFactory(role="admin")
    owner, org_id = membership.user, str(membership.organization_id)
    assert resolve_membership(owner, org_id) == ["admin"]  # cached
    loaded = Membership.objects.get(pk=membership.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        loaded.user = UserFactory()
        loaded.save()
        raise RuntimeError("the request failed")
    assert resolve_membership(owner, org_id) == ["admin"]  # nothing changed
    loaded.user = UserFactory()  # tried again, and committed
    loaded.save()
    assert Membership.objects.get(pk=membership.pk).user_id == loaded.user_id
    assert resolve_membership(owner, org_id) is None
    assert resolve_membership(loaded.user, org_id) == ["admin"]


def test_a_users_long_or_spaced_text_pk_makes_keys_memcached_takes():
    """The user's pk went into the answer's and the generation's keys as it is: a text pk
    of 300 characters, or with a space, is a key memcached refuses, so that user's roles
    were resolved again on every request with the cache logged as unavailable. Such a pk
    is hashed; the answer is cached and ``invalidate`` still reaches it."""
    resolver, calls = counting(["viewer"])
    cached = cached_resolver(resolver, prefix="textpk")
    for pk in ("urn:idp:" + "u" * 300, "Jane Doe"):
        user = SimpleNamespace(pk=pk)
        calls.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error", CacheKeyWarning)
            assert cached(user, "1") == ["viewer"]
            assert cached(user, "1") == ["viewer"]
            assert len(calls) == 1
            cached.invalidate(pk, "1")
            assert cached(user, "1") == ["viewer"]
        assert len(calls) == 2
