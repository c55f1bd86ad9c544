"""Settings for the django-arc example shop.

Development-only values (DEBUG on, a fixed SECRET_KEY): this project exists to be read and
run locally with ``make demo``, never deployed. SQLite by default so a fresh checkout needs
nothing else; ``ARC_EXAMPLE_DB=postgres`` switches to the PostgreSQL that
``scripts/services.sh`` starts, using the same ``ARC_PG_*`` variables as the test suite.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-arc-example-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # the browsable API's templates (BrowsableAPIRenderer, below): without it every browser
    # request is a 500, which `manage.py check` reports as arc.W011
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and Redoc assets served from static files: /api/docs/ works offline.
    "drf_spectacular_sidecar",
    "django_arc",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Demo only: browser sessions get their organization filled in (see its docstring).
    "example.middleware.DefaultOrgForSessionMiddleware",
    # Builds request.arc_scope (org from X-Organization-Id, roles from MEMBERSHIP_RESOLVER);
    # it must come after AuthenticationMiddleware, which provides request.user.
    "django_arc.middleware.ScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example.urls"
WSGI_APPLICATION = "example.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # drf_spectacular/redoc.html: Redoc without its Google Fonts links (offline)
        "DIRS": [BASE_DIR / "templates"],
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

if os.environ.get("ARC_EXAMPLE_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("ARC_PG_NAME", "arc"),
            "USER": os.environ.get("ARC_PG_USER", "arc"),
            "PASSWORD": os.environ.get("ARC_PG_PASSWORD", ""),
            "HOST": os.environ.get("ARC_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ARC_PG_PORT", "5432"),
            "CONN_MAX_AGE": 60,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("ARC_EXAMPLE_SQLITE", str(BASE_DIR / "db.sqlite3")),
        }
    }

# The OpenAPI tests serve this project and send it thousands of made-up Basic credentials;
# Django's default hasher spends ~0.3 s of CPU on each, by design. Never set this for real use.
if os.environ.get("ARC_EXAMPLE_FAST_PASSWORDS") == "1":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
LOGIN_URL = "/api-auth/login/"
LOGIN_REDIRECT_URL = "/api/products/"

REST_FRAMEWORK = {
    # Order matters for the 401 challenge: the first class's ``authenticate_header`` is
    # what DRF sends back to an anonymous caller.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Authorization: Bearer <service key> (or X-Api-Key) -> a ServiceClient identity.
        "django_arc.auth.ServiceKeyAuthentication",
        # The browsable API and admin log-in.
        "rest_framework.authentication.SessionAuthentication",
        # Enabled in this EXAMPLE only, so the README's `curl -u acme-admin:demo12345`
        # works. Prefer service keys or tokens for real machine clients.
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django-arc example shop",
    "DESCRIPTION": "Products and orders of two demo organizations, served by django-arc.",
    "VERSION": "0.1.0",
    # The schema endpoint documents the API, not itself.
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --8<-- [start:arc-settings]
ARC = {
    "DEFAULT_PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 100,
    # (user, org_id) -> list of role names, read from shop.Membership.
    "MEMBERSHIP_RESOLVER": "shop.membership.resolve_membership",
    # ProductResource sets `idempotent = True`: a POST/PATCH/PUT/DELETE carrying an
    # Idempotency-Key runs once; records live in the database (IdempotencyRecord), and a
    # retry within TTL_SECONDS is answered the stored answer. Expired records stay until
    # arc_purge_idempotency (example/celery.py's beat schedule, or ../crontab) deletes them.
    "IDEMPOTENCY": {"STORE": "database", "TTL_SECONDS": 24 * 3600},
    # Delivered events stay in the outbox until arc_purge_outbox (beat or cron, as above)
    # deletes those delivered more than this many days ago; at least TTL_SECONDS (arc.W008).
    "OUTBOX": {"DELIVERED_RETENTION_DAYS": 7},
    # ProductResource sets `cache = {...}`: its lists and rows are cached in the Redis below.
    "CACHE": {"ALIAS": "redis"},
}
# --8<-- [end:arc-settings]

# The query cache's Redis: ARC_REDIS_URL (what scripts/services.sh exports; `make demo`
# starts one when it is unset), else a local Redis. Without any, the API answers uncached.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("ARC_REDIS_URL") or "redis://127.0.0.1:6379/1",
        # the OpenAPI tests give each server its own: one Redis serves every run of make test
        "KEY_PREFIX": os.environ.get("ARC_EXAMPLE_CACHE_PREFIX", "arc-example"),
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    },
}

# --8<-- [start:logging]
# Every django-arc logger is under `django_arc`: this one entry routes them all (Django's
# default LOGGING does not). INFO includes the 404 reasons and the purge tasks' totals.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "debug_on": {"()": "django.utils.log.RequireDebugTrue"},
        "debug_off": {"()": "django.utils.log.RequireDebugFalse"},
    },
    # when, how bad and from where: a bare StreamHandler printed the message alone
    "formatters": {"plain": {"format": "{asctime} {levelname} {name} {message}", "style": "{"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "errors": {
            "class": "logging.StreamHandler",
            "level": "ERROR",
            "filters": ["debug_off"],
            "formatter": "plain",
        },
        # Django's own two, as its default LOGGING has them, but formatted: its console
        # handler printed django.request's lines (a 404's, a 500's) as the message alone
        "django_console": {
            "class": "logging.StreamHandler",
            "level": "INFO",
            "filters": ["debug_on"],
            "formatter": "plain",
        },
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["debug_off"],
        },
    },
    "loggers": {
        "django_arc": {"handlers": ["console"], "level": "INFO"},
        # "django_arc.outbox.relay": {"level": "WARNING"},  # quiet arc_relay's batch lines
        # Django's loggers as Django's default configures them (with DEBUG on, INFO and up on
        # the console; otherwise an ERROR mailed to ADMINS, none here), the console formatted
        "django": {"handlers": ["django_console", "mail_admins"], "level": "INFO"},
        # a 500's traceback: Django's default prints it with DEBUG on only, and otherwise
        # mails it to ADMINS (none here); printed with DEBUG off too, still mailed
        "django.request": {"handlers": ["errors"]},
    },
}
# --8<-- [end:logging]
