from importlib import import_module

from django.apps import AppConfig
from django.db.backends.signals import connection_created

from .ranges import read_infinite_bounds_as_unbounded


class ArcConfig(AppConfig):
    name = "django_arc"
    label = "django_arc"
    verbose_name = "django-arc"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at module level: they import models, which the app registry
        # only allows once apps are loaded.
        from . import checks  # noqa: F401  (registers system checks)
        from .events.bus import on_scope_elevated
        from .outbox import receivers
        from .signals import resource_event, scope_elevated
        from .sites import arc
        from .uploads import watch_file_fields

        # Every elevation becomes an arc.scope.elevated event.
        scope_elevated.connect(
            on_scope_elevated, dispatch_uid="django_arc.events.on_scope_elevated"
        )
        # Every resource event is stored in the outbox (or published after commit).
        resource_event.connect(receivers.store_resource_event, dispatch_uid=receivers.DISPATCH_UID)
        # Registers the drf-spectacular extensions (security schemes, resource serializers).
        import_module("django_arc.openapi")

        # A time range with an `infinity` bound (written outside the API) reads as unbounded.
        connection_created.connect(
            read_infinite_bounds_as_unbounded, dispatch_uid="django_arc.ranges"
        )
        # A write that raises removes the files it stored (models with file fields).
        watch_file_fields()
        arc.autodiscover()
