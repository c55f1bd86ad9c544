from importlib import import_module

from django.apps import AppConfig


class ArcConfig(AppConfig):
    name = "django_arc"
    label = "django_arc"
    verbose_name = "django-arc"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
        from .sites import autodiscover

        # Connects the scope_elevated receiver (every elevation becomes an event).
        import_module("django_arc.events")
        # Connects the resource_event receiver that stores events in the outbox.
        import_module("django_arc.outbox.receivers")
        # Registers the drf-spectacular extensions (security schemes, resource serializers).
        import_module("django_arc.openapi")

        autodiscover()
