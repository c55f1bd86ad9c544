"""Settings for the test suite.

``ARC_TEST_DB=postgres`` switches to the PostgreSQL started by ``scripts/services.sh``
(connection read from the ``ARC_PG_*`` variables it exports); the default is in-memory SQLite.
``ARC_REDIS_URL`` points the Redis tests at a real server.
"""

import os
import tempfile

SECRET_KEY = "django-arc-tests"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # ArrayField, HStoreField and range fields (rev-pgfields' Specimen): its app registers
    # the hstore type with each PostgreSQL connection; nothing on SQLite
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "django_arc",
    "shop",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_arc.middleware.ScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"

if os.environ.get("ARC_TEST_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("ARC_PG_NAME", "arc"),
            "USER": os.environ.get("ARC_PG_USER", "arc"),
            "PASSWORD": os.environ.get("ARC_PG_PASSWORD", ""),
            "HOST": os.environ.get("ARC_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ARC_PG_PORT", "5432"),
        }
    }
else:
    # The test database is a file, not Django's shared-cache in-memory one: tests that race
    # threads for one row (idempotency claims) need SQLite's busy timeout, and shared-cache
    # table locks fail at once ("database table is locked") instead of waiting.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "TEST": {
                "NAME": os.path.join(tempfile.gettempdir(), f"arc-test-{os.getpid()}.sqlite3")
            },
        }
    }

REDIS_URL = os.environ.get("ARC_REDIS_URL", "")

# "default" stays in-process (membership caches, tests that clear it); "redis" is the
# django-redis alias of the query cache (the test resources with `cache = {...}`). The cache
# and idempotency tests give it a key prefix of their own (tests/redis_support.py).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CACHES["redis"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "arc-tests",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "django_arc.auth.ServiceKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

ARC = {
    "MEMBERSHIP_RESOLVER": "shop.membership.resolve_membership",
    "CACHE": {"ALIAS": "redis"},
}
if not REDIS_URL:
    # Without a Redis the cached test resources are served uncached; every manage.py
    # command of the suite would say so (arc.W001) on stderr that tests compare.
    SILENCED_SYSTEM_CHECKS = ["arc.W001"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django.request": {"handlers": ["null"], "propagate": False}},
}
