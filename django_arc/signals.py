"""Django signals django-arc sends.

``resource_event`` is the one path by which every write reaches the outbox: it is sent
*inside* the write's transaction, and the built-in receiver stores the event in that same
transaction, so a rolled-back write leaves no event behind.
"""

from django.dispatch import Signal

#: sent with ``event`` (an :class:`django_arc.events.Event`) inside the write's transaction.
resource_event = Signal()

#: sent with ``request`` and ``scope`` whenever a request is elevated (``X-Arc-Scope``).
scope_elevated = Signal()

#: sent with ``event`` when a transport delivers an event to this process's subscribers.
event_received = Signal()
