"""ScopeRateThrottle: buckets per service client, per user + org, per IP; 429 in the envelope."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from django_arc.auth import ServiceKeyAuthentication
from django_arc.clients import ServiceClient
from django_arc.exceptions import exception_handler
from django_arc.redis_alias import reset_outage_warnings
from django_arc.throttling import ScopeRateThrottle
from tests.redis_support import caches_with, redis_server

pytestmark = pytest.mark.django_db


class ThrottledView(APIView):
    authentication_classes = [ServiceKeyAuthentication, SessionAuthentication]
    permission_classes: list = []
    throttle_classes = [ScopeRateThrottle]

    def get_exception_handler(self):
        return exception_handler

    def get(self, request):
        return Response({"ok": True})


view = ThrottledView.as_view()


@pytest.fixture(autouse=True)
def rates(settings):
    cache.clear()
    settings.ARC = {"MEMBERSHIP_RESOLVER": lambda user, org_id: ["viewer"]}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "arc_service": "3/min",
            "arc_member": "2/min",
            "arc_anon": "1/min",
        },
    }
    yield settings
    cache.clear()


def request(user=None, ip="10.0.0.1", **headers):
    req = APIRequestFactory().get("/t/", REMOTE_ADDR=ip, **headers)
    if user is not None:
        force_authenticate(req, user=user)
    return req


def cache_key(req):
    drf_request = ThrottledView().initialize_request(req)
    return ScopeRateThrottle().get_cache_key(drf_request, None)


@pytest.fixture
def users(django_user_model):
    return (
        django_user_model.objects.create_user("u1", password="pw"),
        django_user_model.objects.create_user("u2", password="pw"),
    )


def test_cache_keys_differ_per_client_user_org_and_ip(users):
    c1, k1 = ServiceClient.objects.create_with_key(name="c1", organization_id=1)
    c2, k2 = ServiceClient.objects.create_with_key(name="c2", organization_id=1)
    u1, u2 = users
    keys = {
        "client1": cache_key(request(HTTP_X_API_KEY=k1)),
        "client1_other_ip": cache_key(request(ip="10.9.9.9", HTTP_X_API_KEY=k1)),
        "client2": cache_key(request(HTTP_X_API_KEY=k2)),
        "u1_org1": cache_key(request(u1, HTTP_X_ORGANIZATION_ID="1")),
        "u1_org2": cache_key(request(u1, HTTP_X_ORGANIZATION_ID="2")),
        "u1_no_org": cache_key(request(u1)),
        "u2_org1": cache_key(request(u2, HTTP_X_ORGANIZATION_ID="1")),
        "anon_ip1": cache_key(request()),
        "anon_ip2": cache_key(request(ip="10.0.0.2")),
    }
    assert keys["client1"] == keys["client1_other_ip"]  # a client is one bucket wherever it is
    assert keys["client1"] == f"arc_throttle_arc_service_client:{c1.client_id}"
    assert keys["u1_org1"] == f"arc_throttle_arc_member_user:{u1.pk}:org:1"
    assert keys["anon_ip1"] == "arc_throttle_arc_anon_ip:10.0.0.1"
    distinct = {k: v for k, v in keys.items() if k != "client1_other_ip"}
    assert len(set(distinct.values())) == len(distinct)


def test_an_elevated_callers_organization_header_is_hashed_into_a_key_any_cache_takes(users):
    """An elevated caller's organization header is taken as sent: spaces, control
    characters, 128 of them. memcached refuses such keys (Django's warnings say which), so
    the bucket holds a digest of it; two headers are still two buckets."""
    from django.core.cache.backends.base import memcache_key_warnings

    root = users[0]
    root.is_superuser = True
    root.save()
    odd = ["a b\tc", "é" * 128, "x\x01y"]
    keys = [
        cache_key(request(root, HTTP_X_ARC_SCOPE="platform", HTTP_X_ORGANIZATION_ID=org))
        for org in odd
    ]
    for key in keys:
        assert list(memcache_key_warnings(key)) == [], key
    assert len(set(keys)) == len(odd)
    plain = cache_key(request(root, HTTP_X_ARC_SCOPE="platform", HTTP_X_ORGANIZATION_ID="42"))
    assert plain == f"arc_throttle_arc_member_user:{root.pk}:org:42"


class TextIdUser:
    """A principal a project's authentication may hand DRF: a text primary key (an identity
    provider's subject) that may be long or hold spaces."""

    is_authenticated = True
    is_active = True
    arc_roles = ()

    def __init__(self, pk):
        self.pk = pk


def test_a_users_text_pk_is_hashed_into_a_key_any_cache_takes():
    """The user's pk went into the bucket's key as it is: a text pk of 300 characters, or
    one with a space, is a key memcached refuses (``InvalidCacheKey``, a 500 on every
    request of that user). Such a pk is hashed like an odd organization header; two pks are
    still two buckets, and an integer pk's key is what it was."""
    from django.core.cache.backends.base import memcache_key_warnings

    odd = ["urn:idp:" + "u" * 300, "urn:idp:" + "u" * 299 + "v", "Jane Doe"]
    keys = [cache_key(request(TextIdUser(pk))) for pk in odd]
    keys += [cache_key(request(TextIdUser(pk), HTTP_X_ORGANIZATION_ID="1")) for pk in odd]
    for key in keys:
        assert list(memcache_key_warnings(key)) == [], key
    assert len(set(keys)) == len(keys)
    assert cache_key(request(TextIdUser(7))) == "arc_throttle_arc_member_user:7:org:-"


def test_an_anonymous_callers_forwarded_for_header_is_hashed_into_a_key_any_cache_takes(
    settings,
):
    """Without ``NUM_PROXIES`` DRF's ``get_ident`` is the whole ``X-Forwarded-For`` header,
    spaces removed, and with it one entry of it: text the client chooses, went into the
    anonymous bucket's key as it is. One over 250 bytes, or with a control character, is a
    key memcached refuses (``InvalidCacheKey``, a 500 on every anonymous request carrying
    it). Such an ident is hashed as odd organization ids and user pks are; two idents are
    still two buckets, and an IPv4 or IPv6 address keys as it did."""
    from django.core.cache.backends.base import memcache_key_warnings

    odd = ["10.0.0.1," * 40, "10.0.0.2," * 40, "a\x01b", "fe80::1%" + "x" * 300]
    keys = [cache_key(request(HTTP_X_FORWARDED_FOR=value)) for value in odd]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 2}
    keys.append(cache_key(request(HTTP_X_FORWARDED_FOR="x" * 300 + ", 10.0.0.9")))
    for key in keys:
        assert list(memcache_key_warnings(key)) == [], key
    assert len(set(keys)) == len(keys)
    plain = [cache_key(request(HTTP_X_FORWARDED_FOR=ip)) for ip in ("10.0.0.7", "2001:db8::1")]
    assert plain == [
        "arc_throttle_arc_anon_ip:10.0.0.7",
        "arc_throttle_arc_anon_ip:2001:db8::/64",
    ]


def test_anonymous_is_throttled_per_ip():
    assert view(request()).status_code == 200
    blocked = view(request())
    assert blocked.status_code == 429
    assert blocked.data["code"] == "THROTTLED"
    assert int(blocked["Retry-After"]) > 0
    assert view(request(ip="10.0.0.2")).status_code == 200


def test_members_are_throttled_per_user_and_org(users):
    u1, u2 = users
    for _ in range(2):
        assert view(request(u1, HTTP_X_ORGANIZATION_ID="1")).status_code == 200
    assert view(request(u1, HTTP_X_ORGANIZATION_ID="1")).status_code == 429
    # same user in another org, and another user in the same org, have their own buckets
    assert view(request(u1, HTTP_X_ORGANIZATION_ID="2")).status_code == 200
    assert view(request(u2, HTTP_X_ORGANIZATION_ID="1")).status_code == 200


def test_service_clients_are_throttled_per_client_across_ips():
    _, k1 = ServiceClient.objects.create_with_key(name="c1", organization_id=1)
    _, k2 = ServiceClient.objects.create_with_key(name="c2", organization_id=1)
    for i in range(3):
        assert view(request(ip=f"10.1.0.{i}", HTTP_X_API_KEY=k1)).status_code == 200
    assert view(request(ip="10.1.0.99", HTTP_X_API_KEY=k1)).status_code == 429
    assert view(request(HTTP_X_API_KEY=k2)).status_code == 200


def test_unconfigured_bucket_is_not_throttled(rates):
    rates.REST_FRAMEWORK = {**rates.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"arc_anon": "1/min"}}
    _, key = ServiceClient.objects.create_with_key(name="c", organization_id=1)
    for _ in range(10):
        assert view(request(HTTP_X_API_KEY=key)).status_code == 200


def test_scope_error_is_still_counted_against_the_user(users):
    """A non-member naming an org is refused by the view; the throttle still keys by user."""
    u1, _ = users
    no_members = {"MEMBERSHIP_RESOLVER": lambda user, org_id: None}
    with override_settings(ARC=no_members):
        assert cache_key(request(u1, HTTP_X_ORGANIZATION_ID="5")) == (
            f"arc_throttle_arc_member_user:{u1.pk}:org:-"
        )


def test_a_throttle_cache_that_is_down_lets_requests_through_with_one_warning(caplog):
    """Counters out of reach are an outage, not an error: DRF's throttle answers 500 when its
    cache raises; this one lets the request through uncounted and logs once per interval."""
    reset_outage_warnings()
    caplog.set_level(logging.WARNING, logger="django_arc.redis")
    with override_settings(CACHES=caches_with("default", "redis://127.0.0.1:1/0")):
        answers = [view(request()) for _ in range(3)]  # the anonymous rate is 1/min
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.data for a in answers] == [{"ok": True}] * 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_arc.redis"]
    assert len(warnings) == 1
    assert warnings[0].startswith("throttling: Redis unavailable")


def test_counting_resumes_when_the_throttle_cache_comes_back(tmp_path):
    """The outage lets requests through only while it lasts: once Redis answers again, the
    bucket fills and the next request over the rate is 429 again, with no restart."""
    reset_outage_warnings()
    with redis_server(tmp_path) as server:
        with override_settings(CACHES=caches_with("default", server["url"])):
            assert view(request()).status_code == 200
            assert view(request()).status_code == 429
            server["stop"]()
            assert [view(request()).status_code for _ in range(2)] == [200, 200]
            server["start"]()
            assert view(request(ip="10.0.0.3")).status_code == 200
            assert view(request(ip="10.0.0.3")).status_code == 429


def test_a_bucket_holding_more_requests_than_a_lowered_rate_still_says_retry_after(rates):
    """DRF's ``wait()`` is ``None`` when a bucket holds more requests than the rate allows
    (the rate was lowered, or concurrent requests took the last slot together), so the 429
    came without ``Retry-After``, the header SPEC and docs/errors.md promise. The wait is
    when the request that keeps the bucket full leaves the window."""
    rates.REST_FRAMEWORK = {
        **rates.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "5/min"},
    }
    assert [view(request()).status_code for _ in range(5)] == [200] * 5
    for lowered in ("2/min", "2/hour"):
        rates.REST_FRAMEWORK = {
            **rates.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"arc_anon": lowered},
        }
        refused = view(request())
        assert refused.status_code == 429
        assert refused.data["code"] == "THROTTLED"
        window = 60 if lowered.endswith("min") else 3600
        assert 0 < int(refused["Retry-After"]) <= window
        assert window - 5 <= int(refused["Retry-After"])  # five requests made just now


class TenSecondRateThrottle(ScopeRateThrottle):
    """A project's subclass reading ``"<n>/<k>s"`` its own way (a common DRF recipe)."""

    anon_scope = "arc_anon_ten"

    def parse_rate(self, rate):
        count, period = rate.split("/")
        if not period[:-1].isdigit():
            return super().parse_rate(rate)
        return int(count), int(period[:-1])


@pytest.mark.parametrize(
    "rate", ["100/fortnight", "1.5/min", "1/10s", "ten/min", "abc", "5/", 100, "-1/min"]
)
def test_a_rate_the_throttle_cannot_read_is_a_system_check_error(settings, rate):
    """A rate ``parse_rate`` cannot read raised on every request of that bucket: every
    anonymous caller of every throttled route was answered 500, and nothing said so before
    the first request. ``manage.py check`` names it now (arc.E020); a negative count,
    which refused everyone with no ``Retry-After``, too."""
    from django_arc.checks import check_throttle_rates

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": ["django_arc.throttling.ScopeRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"arc_member": "10/min", "arc_anon": rate},
    }
    errors = check_throttle_rates()
    assert [(e.id, e.obj) for e in errors] == [("arc.E020", "REST_FRAMEWORK")]
    assert "DEFAULT_THROTTLE_RATES['arc_anon']" in errors[0].msg
    answered = [view(request()).status_code]
    assert answered in ([500], [429])  # what the check spares a project: 500 (429: "-1")


def test_rates_the_throttles_read_pass_the_check_with_their_own_parse_rate(settings):
    """Good rates, an unset or ``None`` one (no limit), a rate no serving class reads, and
    a subclass's own spelling read by its own ``parse_rate`` are no error."""
    from django_arc.checks import check_throttle_rates

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": [
            "django_arc.throttling.ScopeRateThrottle",
            "tests.test_throttling.TenSecondRateThrottle",
        ],
        "DEFAULT_THROTTLE_RATES": {
            "arc_service": "600/minute",
            "arc_member": None,
            "arc_anon": "0/s",
            "arc_anon_ten": "5/10s",
            "someone_elses": "1/fortnight",
        },
    }
    assert check_throttle_rates() == []
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "5/10s", "arc_anon_ten": "5/10s"},
    }
    errors = check_throttle_rates()
    assert [e.id for e in errors] == ["arc.E020"]  # ScopeRateThrottle's "arc_anon" only
    assert "DEFAULT_THROTTLE_RATES['arc_anon']" in errors[0].msg


def test_an_anonymous_ipv6_host_is_one_bucket_across_its_64_network():
    """An anonymous IPv6 caller was keyed by its whole address: a host holds a /64 and may
    send from any address of it (privacy addresses rotate through it), so one host had
    2**64 buckets and the anonymous rate limited nothing. Its bucket is its /64 now; another
    /64 is another bucket, and an IPv4 address mapped into IPv6 is that IPv4 address, not
    one ``::/64`` all of them would share."""
    assert view(request(ip="2001:db8:1:2::1")).status_code == 200
    again = view(request(ip="2001:db8:1:2:dead:beef:0:7"))
    assert again.status_code == 429
    assert again.data["code"] == "THROTTLED"
    assert view(request(ip="2001:db8:1:3::1")).status_code == 200
    assert view(request(ip="::ffff:10.0.0.1")).status_code == 200
    assert view(request(ip="10.0.0.1")).status_code == 429  # the same IPv4 caller
    assert view(request(ip="::ffff:10.0.0.2")).status_code == 200  # not one ::/64 for all


class _ThrottleBy56(ScopeRateThrottle):
    ipv6_prefix = 56


def test_a_subclass_sets_the_ipv6_network_an_anonymous_bucket_spans():
    drf_request = ThrottledView().initialize_request(request(ip="2001:db8:1:2ff::1"))
    assert _ThrottleBy56().get_cache_key(drf_request, None) == (
        "arc_throttle_arc_anon_ip:2001:db8:1:200::/56"
    )


@pytest.fixture
def rev_throttling_books(monkeypatch):
    """The routed ``books`` and ``authors`` ViewSets throttled by ``ScopeRateThrottle`` (DRF
    binds ``DEFAULT_THROTTLE_CLASSES`` when the class is built, before any test's settings)."""
    from django.urls import resolve

    for url in ("/api/books/", "/api/authors/"):
        monkeypatch.setattr(resolve(url).func.cls, "throttle_classes", [ScopeRateThrottle])


def test_refusals_before_the_throttle_spend_no_allowance_and_the_rest_do(
    rev_throttling_books, rates
):
    """The pipeline's order (scope, permission, throttle: SPEC §7) decides what counts: a
    401 (no credentials, or a service key that is no key) is answered before the throttle
    and spends nothing, so it is never a 429 either; anything past it counts, whatever it
    answers — a 404, a 400 body, a raw route (docs/decisions.md, rev-throttling)."""
    from rest_framework.test import APIClient

    api = APIClient()
    rates.REST_FRAMEWORK = {
        **rates.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "3/min"},
    }
    refused = [api.get("/api/authors/1/"), api.get("/api/books/", HTTP_X_API_KEY="nope")] * 3
    assert [r.status_code for r in refused] == [401] * 6
    answered = [
        api.get("/api/books/999999/").status_code,
        api.post("/api/books/", b"{", content_type="application/json").status_code,
        api.post("/api/books/webhook/", b"x", content_type="application/octet-stream").status_code,
        api.get("/api/books/").status_code,
        api.get("/api/authors/1/").status_code,  # still the 401, not a 429
    ]
    assert answered == [404, 400, 202, 429, 401]


class _Rf52ThrottleByNoNetwork(ScopeRateThrottle):
    ipv6_prefix = 129


class _Rf52ThrottleByText(ScopeRateThrottle):
    ipv6_prefix = "64"


def test_rf52_an_ipv6_prefix_no_network_has_is_a_system_check_error(settings):
    """A serving subclass's ``ipv6_prefix`` that no IPv6 network has (129, ``"/64"``)
    raised ``ValueError`` building every anonymous IPv6 caller's bucket: a 500 to each of
    them, found by the first one. arc.E020 names it at ``manage.py check``; a prefix
    ``ipaddress`` reads (0, 128, ``"64"``) is no error."""
    from django_arc.checks import check_throttle_rates

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": [
            "tests.test_throttling._Rf52ThrottleByNoNetwork",
            "tests.test_throttling._Rf52ThrottleByText",
        ],
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "5/min"},
    }
    errors = check_throttle_rates()
    assert [(e.id, e.obj) for e in errors] == [("arc.E020", "REST_FRAMEWORK")]
    assert "_Rf52ThrottleByNoNetwork.ipv6_prefix = 129" in errors[0].msg
    drf_request = ThrottledView().initialize_request(request(ip="2001:db8::1"))
    with pytest.raises(ValueError):  # what the check spares a project: a 500
        _Rf52ThrottleByNoNetwork().get_cache_key(drf_request, None)
    assert _Rf52ThrottleByText().get_cache_key(drf_request, None).endswith("2001:db8::/64")


def test_rf52_a_bucket_written_by_servers_whose_clocks_differ_says_a_positive_retry_after(
    rates,
):
    """Servers sharing the throttle cache each put their own time at the head of the
    history, so with clocks apart it is not newest first: an entry past the window may sit
    before a recent one. ``wait()`` read the ``num_requests``-th entry as it lay, a
    request already out of the window, and said ``Retry-After: -50``. An entry past the
    window is no request in it, wherever it lies."""
    import time

    rates.REST_FRAMEWORK = {
        **rates.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "1/min"},
    }
    now = time.time()
    key = cache_key(request(ip="10.9.9.9"))
    cache.set(key, [now - 110, now - 10], 60)  # a server 100 s behind wrote the newer one
    refused = view(request(ip="10.9.9.9"))
    assert refused.status_code == 429
    assert 40 <= int(refused["Retry-After"]) <= 60


@pytest.mark.parametrize(
    "stored",
    [["a", None], "not-a-list", 12.5, [None], [True, "x", 1e308j]],
    ids=["strings", "text", "number", "none", "mixed"],
)
def test_rf53_a_history_holding_no_times_counts_no_request_instead_of_a_500(rates, stored):
    """A throttle key holding something that is no list of times (written by an older
    release or another library sharing the cache) made sorting/comparing the history raise
    TypeError: a 500 on every request of that bucket until the key expired. Such entries
    count no request; the bucket answers, counts this request, and refuses the next."""
    rates.REST_FRAMEWORK = {
        **rates.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"arc_anon": "1/min"},
    }
    key = cache_key(request(ip="10.9.9.53"))
    cache.set(key, stored, 60)
    assert view(request(ip="10.9.9.53")).status_code == 200
    assert view(request(ip="10.9.9.53")).status_code == 429
