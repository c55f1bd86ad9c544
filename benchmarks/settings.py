"""Django settings for ``benchmarks/crud.py`` and ``access.py``: PostgreSQL, minimal middleware.

Both sides (hand-written DRF and django-arc) are served by this one project in the same
process, so they share the server, middleware and database; the only difference is the
view code. Production-like: DEBUG off, persistent connections.
"""

import os

SECRET_KEY = "django-arc-benchmark"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "benchmarks.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "django_filters",
    "django_arc",
    "benchmarks.benchapp",
]

# No session/auth middleware: both APIs are public here, and django-arc's ScopeMiddleware is
# left out too (the viewset resolves the scope itself), so neither side pays for the other.
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("ARC_PG_NAME", "arc"),
        "USER": os.environ.get("ARC_PG_USER", "arc"),
        "PASSWORD": os.environ.get("ARC_PG_PASSWORD", ""),
        "HOST": os.environ.get("ARC_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("ARC_PG_PORT", "5432"),
        "CONN_MAX_AGE": 600,
        #: ``ARC_BENCH_ATOMIC_REQUESTS=1``: every request in one transaction (Django's
        #: ``ATOMIC_REQUESTS``), for the outbox benchmark's transactional baseline.
        "ATOMIC_REQUESTS": os.environ.get("ARC_BENCH_ATOMIC_REQUESTS") == "1",
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}

# The access benchmark's members authenticate with HTTP Basic on every request; a fast hasher
# keeps password checking from dominating what is a benchmark of access control (both sides
# of that comparison authenticate the same way, so it cancels out anyway).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

#: ``ARC_BENCH_EVENTS=off`` (the second gunicorn server; ``override_settings`` in-process):
#: no outbox row and nothing published (NullTransport), to compare create like-for-like with
#: DRF, which has no events at all.
EVENTS_OFF = {
    "OUTBOX": False,
    "TRANSPORT": "benchmarks.benchapp.transports.NullTransport",
}

ARC = {"MEMBERSHIP_RESOLVER": "benchmarks.benchapp.membership.resolve_membership"}
if os.environ.get("ARC_BENCH_EVENTS") == "off":
    ARC["EVENTS"] = EVENTS_OFF

#: ``ARC_BENCH_MEMBERSHIP=cached``: the resolver that caches roles across requests (LocMem).
CACHED_RESOLVER = "benchmarks.benchapp.membership.resolve_membership_cached"
if os.environ.get("ARC_BENCH_MEMBERSHIP") == "cached":
    ARC["MEMBERSHIP_RESOLVER"] = CACHED_RESOLVER

# ``cache.py``: Redis (what scripts/services.sh starts) as the django-redis alias "redis".
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("ARC_REDIS_URL"):
    CACHES["redis"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ["ARC_REDIS_URL"],
        # cache.py sets a prefix per run: entries of an earlier run (other rows) never count
        "KEY_PREFIX": os.environ.get("ARC_BENCH_REDIS_PREFIX", "arc-bench"),
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
    }

#: ``ARC_BENCH_CACHE=on``: the query cache on for resources that leave ``cache`` unset
#: (``benchapp``'s ``cached-items``), fresh for the whole run so every repeat is a HIT.
CACHE_ON = {"ENABLED": True, "ALIAS": "redis", "STALE_SECONDS": 3600, "GC_SECONDS": 7200}
if os.environ.get("ARC_BENCH_CACHE") == "on":
    ARC["CACHE"] = CACHE_ON


def idempotency_on(store: str) -> dict:
    """``ARC_BENCH_IDEMPOTENCY=database|cache``: ``Idempotency-Key`` honoured everywhere."""
    return {"ENABLED": True, "STORE": store, "ALIAS": "redis"}


if os.environ.get("ARC_BENCH_IDEMPOTENCY"):
    ARC["IDEMPOTENCY"] = idempotency_on(os.environ["ARC_BENCH_IDEMPOTENCY"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django.request": {"handlers": ["null"], "propagate": False}},
}
