"""Event transports: where relayed events go and how subscribers receive them.

Every transport implements ``publish``, ``publish_many``, ``subscribe``, ``dead_letter`` and
``close``.

* :class:`MemoryTransport` delivers synchronously inside ``publish``; tests and the demo.
* :class:`RedisStreamsTransport` speaks arc 2.9.1's ``RedisStreamTransport`` wire: entries
  ``type``/``data`` in the stream ``arc:events``, consumer group ``default``, dead letters in
  ``arc:events:dlq``. Use it for events that must not be lost.
* :class:`RedisPubSubTransport` speaks arc's ``RedisEventTransport`` wire
  (``arc-events:<type>``): fire and forget.
"""

from .base import Handler, Transport
from .memory import MemoryTransport
from .redis_pubsub import RedisPubSubTransport
from .redis_streams import RedisStreamsTransport, default_consumer_name

__all__ = [
    "Handler",
    "MemoryTransport",
    "RedisPubSubTransport",
    "RedisStreamsTransport",
    "Transport",
    "default_consumer_name",
]
