"""Models of the django_arc app; each lives in the module of its concern and is imported here
so Django finds it."""

from .audit.models import AuditLog  # noqa: F401
from .clients import ServiceClient  # noqa: F401
from .idempotency.models import IdempotencyRecord  # noqa: F401
from .outbox.models import OutboxEvent  # noqa: F401
