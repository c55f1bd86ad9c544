"""A ``MIDDLEWARE`` entry whose module refuses to import without a setting the project has
not made (as some third-party middleware do): ``manage.py check`` must still run."""

from django.core.exceptions import ImproperlyConfigured

raise ImproperlyConfigured("BROKEN_MIDDLEWARE_SETTING is not set")
