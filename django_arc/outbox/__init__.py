"""Transactional outbox: store events with the write, relay them to a transport afterwards."""

from .models import OutboxEvent, OutboxStatus

__all__ = ["OutboxEvent", "OutboxStatus"]
