"""``manage.py check`` for idempotency and the query cache (issue #17): bad settings and
options are errors (arc.E008, arc.E014); a feature without the Redis it needs, or a Redis
that may evict idempotency keys, is a warning (arc.W001–W004)."""

from __future__ import annotations

import socket
import time
from decimal import Decimal
from fractions import Fraction
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_arc import Resource, ResourceSite, checks
from django_arc.checks import _all_resources, check_redis_features, check_resource, check_settings
from django_arc.outbox.relay import retention_age
from django_arc.querycache.policy import policy_for
from django_arc.settings import MAX_SECONDS
from django_arc.sites import _all_sites
from tests.redis_support import REDIS_URL, arc_with, caches_with, redis_server
from tests.testapp.models import Book


def ids(messages):
    return sorted(m.id for m in messages)


def make(**attrs):
    attrs.setdefault("model", Book)
    attrs.setdefault("name", "checked")
    return type("Checked", (Resource,), attrs)()


@pytest.mark.parametrize(
    "attrs,needle",
    [
        ({"idempotent": "yes"}, "`idempotent`"),
        ({"cache": 30}, "`cache` must be a dict"),
        ({"cache": {"stale_second": 30}}, "key 'stale_second'. Did you mean 'stale_seconds'?"),
        ({"cache": {"stale_seconds": -1}}, "stale_seconds"),
        ({"cache": {"gc_seconds": 0}}, "gc_seconds"),
        ({"cache": {"stale_seconds": float("inf")}}, "stale_seconds"),
        ({"cache": {"stale_seconds": 30, "gc_seconds": float("inf")}}, "gc_seconds"),
        ({"cache": {"stale_seconds": 30, "gc_seconds": 1e30}}, "at most"),
        ({"cache": {"stale_seconds": float("nan")}}, "stale_seconds"),
        ({"cache": {"stale_seconds": 60, "gc_seconds": 30}}, "less than `stale_seconds`"),
        ({"cache": {"tags": "catalog"}}, "tags"),
        ({"cache": {"tags": ["ok", ""]}}, "tags"),
    ],
)
def test_bad_options_are_arc_e014(attrs, needle):
    errors = check_resource(make(**attrs))
    assert ids(errors) == ["arc.E014"], errors
    assert needle in errors[0].msg


@pytest.mark.parametrize(
    "attrs",
    [
        {"idempotent": True},
        {"cache": True},
        {"cache": False},
        {"cache": {"tags": ["a"]}},
        {"cache": {"stale_seconds": 86400, "gc_seconds": MAX_SECONDS}},
    ],
)
def test_good_options_pass(attrs):
    assert check_resource(make(**attrs)) == []


@pytest.mark.parametrize(
    "section,value,needle",
    [
        ("IDEMPOTENCY", {"STORE": "redis"}, "STORE"),
        ("IDEMPOTENCY", {"TTL_SECONDS": 0}, "TTL_SECONDS"),
        ("IDEMPOTENCY", {"LOCK_SECONDS": "30"}, "LOCK_SECONDS"),
        ("IDEMPOTENCY", {"ENABLED": "yes"}, "ENABLED"),
        ("IDEMPOTENCY", {"NAMESPACE": None}, "NAMESPACE"),
        ("CACHE", {"STALE_SECONDS": -1}, "STALE_SECONDS"),
        ("CACHE", {"GC_SECONDS": 0}, "GC_SECONDS"),
        ("CACHE", {"ALIAS": 1}, "ALIAS"),
        # longer than a datetime or a Redis expiry can hold: every keyed request was a 500
        ("IDEMPOTENCY", {"TTL_SECONDS": 1e12}, "TTL_SECONDS"),
        ("IDEMPOTENCY", {"LOCK_SECONDS": 1e12}, "LOCK_SECONDS"),
        ("IDEMPOTENCY", {"TTL_SECONDS": float("inf")}, "TTL_SECONDS"),
        ("CACHE", {"GC_SECONDS": 1e30}, "at most"),
    ],
)
def test_bad_feature_settings_are_arc_e008(settings, section, value, needle):
    settings.ARC = {section: value}
    errors = check_settings()
    assert ids(errors) == ["arc.E008"]
    assert needle in errors[0].msg


@pytest.mark.parametrize(
    "days", ["a week", "7", None, True, -1, float("nan"), float("inf"), 1e9], ids=repr
)
def test_a_bad_outbox_retention_is_arc_e008(settings, days):
    """``DELIVERED_RETENTION_DAYS`` was not checked: ``"a week"``, ``None`` or NaN made every
    purge fail (the admin's "Purge delivered" a 500, the ``purge_outbox`` task and
    ``arc_purge_outbox`` an error each run), so delivered rows were kept for ever, and a
    negative number purged rows delivered a moment ago."""
    settings.ARC = {"OUTBOX": {"DELIVERED_RETENTION_DAYS": days}}
    errors = check_settings()
    assert ids(errors) == ["arc.E008"], errors
    msg = errors[0].msg
    assert msg.startswith("ARC['OUTBOX']['DELIVERED_RETENTION_DAYS'] "), msg
    assert "must be a number of days" in msg or "reaches before the year 1" in msg, msg


@pytest.mark.parametrize("days", [0, 0.5, 7, 36500, 40000, Decimal("7")], ids=repr)
def test_a_good_outbox_retention_passes(settings, days):
    settings.ARC = {"OUTBOX": {"DELIVERED_RETENTION_DAYS": days}}
    assert [e for e in check_settings() if e.id == "arc.E008"] == []


@pytest.mark.parametrize(
    "days",
    [
        *(0, 0.5, 7, 36500, 40000, 700_000, 800_000, 1e9, Decimal("7"), Decimal("0.5")),
        *("7", "a week", None, True, False, -1, Decimal("-1"), Decimal("NaN"), Decimal("sNaN")),
        *(float("nan"), float("inf"), 1j, [7]),
    ],
    ids=repr,
)
def test_the_check_and_every_purge_read_the_retention_alike(settings, days):
    """arc.E008 bounded the retention at 36,500 days and refused a Decimal, while the purges
    (``retention_age``: the command, the task, the admin) took any number whose cut-off falls
    after the year 1, and the string ``"7"``: two rules for one value. The check now asks the
    purges' function: a value it passes every purge takes, one it refuses every purge
    refuses, with the same message."""
    settings.ARC = {"OUTBOX": {"DELIVERED_RETENTION_DAYS": days}}
    errors = [e for e in check_settings() if e.id == "arc.E008"]
    name = "ARC['OUTBOX']['DELIVERED_RETENTION_DAYS']"
    try:
        retention_age(days, name)
    except ValueError as exc:
        assert [e.msg for e in errors] == [str(exc)]
    else:
        assert errors == []


@pytest.mark.parametrize(
    "key,value,needle",
    [
        # 0 or less: every relay (arc_relay, relay_outbox, "Relay now") claimed nothing, for
        # ever, silently; a string, NaN: a ValueError at every start and every beat tick;
        # past 10,000 the relay claimed 10,000 and relay_outbox stopped after one batch
        *(("BATCH_SIZE", v, "an integer from 1 to 10000") for v in (0, -5, "100", "x")),
        *(("BATCH_SIZE", v, "an integer from 1 to 10000") for v in (True, 2.5, float("nan"))),
        ("BATCH_SIZE", 10_001, "an integer from 1 to 10000"),
        # 0 or less: a lease over as soon as it is taken (another worker takes the batch over
        # mid-publish: published twice); a string, NaN, infinity: an error at every start
        *(("LEASE_SECONDS", v, "a positive number") for v in (0, -5, "30", True, None)),
        *(("LEASE_SECONDS", v, "a positive number") for v in (float("nan"), float("inf"))),
        ("LEASE_SECONDS", 1e12, "a positive number"),
        # below 1, a string, NaN: exponential_backoff's ValueError at every start; True: 1
        *(("MAX_ATTEMPTS", v, "an integer ≥ 1") for v in (0, -5, "8", True, 2.5, float("nan"))),
    ],
    ids=repr,
)
def test_bad_outbox_relay_settings_are_arc_e008(settings, key, value, needle):
    settings.ARC = {"OUTBOX": {key: value}}
    errors = check_settings()
    assert ids(errors) == ["arc.E008"], errors
    assert errors[0].msg.startswith(f"ARC['OUTBOX']['{key}'] must be {needle}"), errors[0].msg
    assert f"got {value!r}" in errors[0].msg


@pytest.mark.parametrize(
    "key,value",
    [
        *(("BATCH_SIZE", v) for v in (1, 100, 10_000)),
        *(("LEASE_SECONDS", v) for v in (0.5, 30, MAX_SECONDS)),
        *(("MAX_ATTEMPTS", v) for v in (1, 8, 10**6)),
    ],
)
def test_good_outbox_relay_settings_pass(settings, key, value):
    settings.ARC = {"OUTBOX": {key: value}}
    assert check_settings() == []


@pytest.mark.parametrize("value", [None, "redis", ["ALIAS"]], ids=repr)
def test_a_cache_section_that_is_not_a_dict_is_arc_e008_not_a_crash(settings, value):
    """``ARC["CACHE"] = None`` raised AttributeError from every resource registration and
    every reload of ``ARC`` (the query cache asks each resource for its policy then): the
    project died at import, before ``check`` could name the setting."""
    settings.ARC = arc_with(CACHE=value)
    site = ResourceSite(name="cache-not-a-dict")
    try:
        site.register(type("Cached", (Resource,), {"model": Book, "name": "c", "cache": True}))
        assert policy_for(make(cache=True)) is None
        with pytest.raises(SystemCheckError) as raised:
            call_command("check")
    finally:
        _all_sites.remove(site)
    assert "arc.E008" in str(raised.value) and "ARC['CACHE'] must be a dict" in str(raised.value)


def test_the_cache_on_without_a_django_redis_alias_is_arc_w001(settings):
    # tests/testapp's cached resources, pointed at the in-process cache
    settings.ARC = arc_with(CACHE={"ALIAS": "default"})
    (warning,) = check_redis_features()
    assert warning.id == "arc.W001"
    assert "'default' is not a django-redis cache" in warning.msg


def test_arc_w001_names_five_cached_resources_and_counts_the_others(settings):
    """Which resources are cached depends on the test modules imported so far (a module's
    own site adds its own): the message names the first five by name, then how many more,
    rather than five of them as if they were all."""
    settings.ARC = arc_with(CACHE={"ALIAS": "default"})
    site = ResourceSite(name="w001-many")
    try:
        for n in range(6):
            cached = {"model": Book, "name": f"aaa-cached-{n}", "cache": True}
            site.register(type(f"Cached{n}", (Resource,), cached))
        (warning,) = check_redis_features()
    finally:
        _all_sites.remove(site)
    cached = sorted({str(r.name) for r in _all_resources() if policy_for(r) is not None})
    cached = sorted({*cached, *(f"aaa-cached-{n}" for n in range(6))})
    named = "aaa-cached-0, aaa-cached-1, aaa-cached-2, aaa-cached-3, aaa-cached-4"
    assert f"The query cache is on ({named} and {len(cached) - 5} more) but" in warning.msg


@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_a_django_redis_alias_silences_w001(settings):
    settings.CACHES = caches_with("redis", REDIS_URL)
    settings.ARC = arc_with(CACHE={"ALIAS": "redis"})
    assert check_redis_features() == []


def test_the_cache_store_without_a_django_redis_alias_is_arc_w002(settings):
    settings.ARC = arc_with(IDEMPOTENCY={"STORE": "cache"})
    messages = [m for m in check_redis_features() if m.id != "arc.W001"]
    assert ids(messages) == ["arc.W002"]
    assert "503" in messages[0].msg


@pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)")
def test_a_noeviction_redis_passes(settings):
    settings.CACHES = caches_with("redis", REDIS_URL)  # scripts/services.sh: noeviction
    settings.ARC = arc_with(IDEMPOTENCY={"STORE": "cache", "ALIAS": "redis"})
    assert [m for m in check_redis_features() if m.id != "arc.W001"] == []


def test_an_evicting_redis_is_arc_w003(settings, tmp_path):
    with redis_server(tmp_path, policy="allkeys-lru") as server:
        settings.CACHES = caches_with("redis", server["url"])
        settings.ARC = arc_with(IDEMPOTENCY={"ENABLED": True, "STORE": "cache", "ALIAS": "redis"})
        messages = [m for m in check_redis_features() if m.id != "arc.W001"]
        assert ids(messages) == ["arc.W003"]
        assert "'allkeys-lru'" in messages[0].msg


def test_an_unreachable_redis_is_arc_w004(settings):
    settings.CACHES = caches_with("redis", "redis://127.0.0.1:1/0")
    settings.ARC = arc_with(IDEMPOTENCY={"ENABLED": True, "STORE": "cache", "ALIAS": "redis"})
    messages = [m for m in check_redis_features() if m.id != "arc.W001"]
    assert ids(messages) == ["arc.W004"]


def store_messages(settings, **cache):
    """What the check says of an idempotency ``cache`` store on alias ``st`` = ``cache``."""
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["st"] = {"BACKEND": "django_redis.cache.RedisCache", **cache}
    settings.CACHES = caches
    settings.ARC = arc_with(IDEMPOTENCY={"ENABLED": True, "STORE": "cache", "ALIAS": "st"})
    return [m for m in check_redis_features() if m.id != "arc.W001"]


@pytest.mark.parametrize(
    "cache",
    [
        # redis-py cannot parse the URL
        {"LOCATION": "memcached://127.0.0.1:11211"},
        # a CLIENT_CLASS that is not installed
        {"LOCATION": "redis://127.0.0.1:1/0", "OPTIONS": {"CLIENT_CLASS": "nowhere.Client"}},
        # django-redis's ShardClient has no single client: get_client raises
        {
            "LOCATION": ["redis://127.0.0.1:1/0"],
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"},
        },
        # a Sentinel alias without its connection factory: ImproperlyConfigured
        {
            "LOCATION": "redis://mymaster/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.SentinelClient"},
        },
        # django-redis refuses the timeout's type when it builds the pool
        {"LOCATION": "redis://127.0.0.1:1/0", "OPTIONS": {"SOCKET_TIMEOUT": "2"}},
    ],
    ids=["bad-url", "missing-client-class", "shard-client", "sentinel-misconfigured", "bad-option"],
)
def test_an_alias_whose_client_cannot_be_built_is_arc_w004_not_a_crash(settings, cache):
    # These raised out of check_redis_features: `manage.py check` (and runserver, migrate)
    # died with a traceback instead of saying the store's policy went unverified.
    (warning,) = store_messages(settings, **cache)
    assert warning.id == "arc.W004"
    assert "Could not verify" in warning.msg and "CACHES['st']" in warning.msg


@pytest.mark.parametrize(
    "config",
    [
        {"LOCATION": "memcached://127.0.0.1:11211"},
        {
            "LOCATION": ["redis://127.0.0.1:1/0"],
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"},
        },
        {
            "LOCATION": "redis://mymaster/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.SentinelClient"},
        },
    ],
    ids=["bad-url", "shard-client", "sentinel-misconfigured"],
)
def test_a_query_cache_alias_whose_client_cannot_be_built_is_arc_w005(settings, config):
    """``check`` said nothing of a django-redis alias whose client cannot be built, and every
    cacheable read then answered uncached (a 500 before that was fixed)."""
    caches = {name: dict(c) for name, c in settings.CACHES.items()}
    caches["redis"] = {"BACKEND": "django_redis.cache.RedisCache", **config}
    settings.CACHES = caches
    settings.ARC = arc_with(CACHE={"ALIAS": "redis"})
    (warning,) = check_redis_features()
    assert warning.id == "arc.W005"
    assert "CACHES['redis'] cannot be used" in warning.msg


def test_a_query_cache_alias_that_is_only_down_is_not_arc_w005(settings):
    """Building the client sends nothing: a Redis that is down is an outage to ride out."""
    settings.CACHES = caches_with("redis", "redis://127.0.0.1:1/0")
    settings.ARC = arc_with(CACHE={"ALIAS": "redis"})
    assert check_redis_features() == []


def test_a_redis_that_never_answers_costs_the_check_its_own_timeout(settings, monkeypatch):
    """A server that accepts the connection but never replies (a hung Redis, a proxy) must not
    hang ``manage.py check`` for as long as the alias's timeouts allow: redis-py 5 waits
    forever by default, redis-py 8 five seconds."""
    monkeypatch.setattr(checks, "POLICY_TIMEOUT_SECONDS", 0.5, raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nothing ever answers
        port = silent.getsockname()[1]
        started = time.monotonic()
        (warning,) = store_messages(settings, LOCATION=f"redis://127.0.0.1:{port}/0")
        elapsed = time.monotonic() - started
    assert warning.id == "arc.W004"
    assert "no answer within 0.5 s" in warning.msg
    assert elapsed < 2.5


def test_a_user_refused_config_get_is_arc_w004_saying_where_to_look(settings, tmp_path):
    """Managed Redis (ElastiCache, Upstash) and ACL users without ``+config`` refuse
    ``CONFIG GET``: the warning says the policy went unverified and where to check it."""
    with redis_server(tmp_path) as server:
        admin = redis.Redis.from_url(server["url"])
        admin.execute_command(
            "ACL", "SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all", "-config"
        )
        location = server["url"].replace("redis://", "redis://app:s3cret@")
        (warning,) = store_messages(settings, LOCATION=location)
        admin.close()
    assert warning.id == "arc.W004"
    assert "NoPermissionError" in warning.msg
    assert "refuses CONFIG GET" in warning.hint and "noeviction" in warning.hint


def test_a_password_user_allowed_config_passes(settings, tmp_path):
    with redis_server(tmp_path) as server:
        admin = redis.Redis.from_url(server["url"])
        admin.execute_command("ACL", "SETUSER", "ops", "on", ">s3cret", "~*", "&*", "+@all")
        admin.execute_command("ACL", "SETUSER", "default", "off")
        assert store_messages(settings, LOCATION=server["url"]) != []  # default is off now
        location = server["url"].replace("redis://", "redis://ops:s3cret@")
        assert store_messages(settings, LOCATION=location) == []
        admin.close()


def test_the_store_is_not_checked_while_idempotency_is_off(settings):
    settings.CACHES = caches_with("redis", "redis://127.0.0.1:1/0")
    settings.ARC = arc_with(IDEMPOTENCY={"ENABLED": False, "STORE": "cache", "ALIAS": "redis"})
    # tests/testapp declares `idempotent = True` on one resource: that is enough to check
    assert "arc.W004" in ids(check_redis_features())


@pytest.mark.parametrize(
    "cache", [30, "yes", {"tags": "catalog"}, {"stale_seconds": "soon"}], ids=repr
)
def test_a_malformed_cache_option_caches_nothing_and_registers(cache):
    assert policy_for(make(cache=cache)) is None
    site = ResourceSite(name="malformed")
    try:
        site.register(type("Malformed", (Resource,), {"model": Book, "name": "m", "cache": cache}))
        assert site.is_registered("m")
    finally:
        _all_sites.remove(site)  # its arc.E014 is not the next test's business


# -- arc.W008: the outbox forgets delivered events before keys end -------------------------------

DAY = 86400


def retention(settings, days, ttl=3 * DAY, store="cache", **arc):
    """What arc.W008 says with ``days`` of outbox retention and a ``ttl`` of keys."""
    idem = {"STORE": store, "ALIAS": "redis", "TTL_SECONDS": ttl}
    settings.ARC = arc_with(IDEMPOTENCY=idem, OUTBOX={"DELIVERED_RETENTION_DAYS": days}, **arc)
    return [m for m in checks.check_outbox_retention() if m.id == "arc.W008"]


def test_an_outbox_purging_delivered_events_before_the_cache_stores_keys_end_is_arc_w008(
    settings,
):
    """tests/test_idempotency.py's
    ``test_an_outbox_purging_before_the_ttl_lets_a_rerun_update_store_its_event_twice``:
    on the ``cache`` store a keyed update can run twice within the TTL, and the outbox then
    dedupes its event only while it keeps the first run's row. A day of retention under a
    three-day TTL said nothing; ``manage.py check`` now says which settings conflict, and
    names the resources taking keys."""
    (warning,) = retention(settings, 1)
    assert "DELIVERED_RETENTION_DAYS'] = 1 purges delivered events" in warning.msg
    assert "TTL_SECONDS'] = 259200 (3 days)" in warning.msg
    assert "idem-products" in warning.msg and "cached-products" not in warning.msg
    assert "DELIVERED_RETENTION_DAYS >= 3" in warning.hint
    err = StringIO()
    call_command("check", stderr=err, stdout=StringIO())
    assert "(arc.W008)" in err.getvalue()


def test_a_decimal_retention_shorter_than_keys_is_arc_w008_too(settings):
    """A ``Decimal`` retention is one the purges take (and arc.E008 passes): arc.W008 judged
    only ints and floats, and said nothing of ``Decimal("1")`` under a three-day TTL."""
    (warning,) = retention(settings, Decimal("1"))
    assert "DELIVERED_RETENTION_DAYS'] = Decimal('1') purges delivered events" in warning.msg


@pytest.mark.parametrize(
    ("days", "ttl"),
    [(7, DAY), (1, DAY), (3, 3 * DAY), (0.5, 12 * 3600), (Decimal("3"), 3 * DAY)],
    ids=str,
)
def test_an_outbox_keeping_delivered_events_as_long_as_keys_is_not_arc_w008(settings, days, ttl):
    assert retention(settings, days, ttl) == []


def test_the_database_store_is_not_arc_w008(settings):
    """The ``database`` store commits the answer with the write: a retry within the TTL is
    always a replay, whatever the outbox has purged (the routed case is in
    tests/test_multidb.py)."""
    assert retention(settings, 1, store="database") == []


@pytest.mark.parametrize("bad", [None, "7", True, [7], Decimal("sNaN"), 1j], ids=repr)
def test_a_retention_that_is_not_a_number_is_not_arc_w008(settings, bad):
    assert retention(settings, bad) == []


@pytest.mark.parametrize(
    "days", [10**400, -(10**400), Fraction(10**400, 3)], ids=["10**400", "-10**400", "Fraction"]
)
def test_a_retention_past_a_floats_range_is_arc_e008_not_a_crash_of_arc_w008(settings, days):
    """arc.W008 read the retention with ``float()`` catching TypeError and ValueError only
    (6581136, to judge a ``Decimal``): an int or a ``Fraction`` past a float's range raised
    OverflowError out of the check, so ``manage.py check`` (every deploy's, every
    ``runserver``'s) was a traceback instead of arc.E008's "is too large". W008 says nothing
    of it; E008 refuses it."""
    assert retention(settings, days) == []
    with pytest.raises(SystemCheckError, match="arc.E008"):
        call_command("check", stderr=StringIO(), stdout=StringIO())


def test_arc_w008_waits_for_a_resource_taking_keys_and_an_outbox(settings, monkeypatch):
    monkeypatch.setattr(checks, "_all_resources", lambda: [make(), make(idempotent=False)])
    assert retention(settings, 1) == []
    monkeypatch.undo()
    assert retention(settings, 1, EVENTS={"OUTBOX": False}) == []
