"""The connection each thread keeps for the commands of the query cache and the
idempotency ``cache`` store (``redis_alias.command``), against a real Redis."""

from __future__ import annotations

import threading

import pytest
from redis import Redis

from django_arc import redis_alias
from tests.redis_support import REDIS_URL

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ARC_REDIS_URL is not set (make test sets it)"),
]


def connection_id(redis: Redis) -> int:
    """The server's id of the connection the command went over."""
    return redis_alias.command(redis, "CLIENT ID")


def test_a_thread_keeps_one_connection_per_pool_it_sends_to():
    """Two aliases used one after the other (their own pools) each keep their connection:
    neither is replaced when the thread sends to the other."""
    first, second = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    seen = [(connection_id(first), connection_id(second)) for _ in range(3)]
    assert len(set(seen)) == 1
    assert seen[0][0] != seen[0][1]


def test_each_thread_has_its_own_connection():
    redis = Redis.from_url(REDIS_URL)
    mine = connection_id(redis)
    theirs: list[int] = []
    thread = threading.Thread(target=lambda: theirs.append(connection_id(redis)))
    thread.start()
    thread.join()
    assert theirs and theirs[0] != mine
    assert connection_id(redis) == mine


def test_a_thread_gives_its_connections_back_past_a_few_pools():
    """Aliases reconfigured over and over (tests do) do not pile up connections: past
    ``MAX_POOLS`` the thread's connections go back to their pools."""
    limit = redis_alias._ThreadConnections.MAX_POOLS
    aliases = [Redis.from_url(REDIS_URL) for _ in range(2 * limit + 1)]
    for redis in aliases:
        connection_id(redis)
    held = sum(len(redis.connection_pool._in_use_connections) for redis in aliases)
    assert 1 <= held <= limit


def test_a_project_client_class_is_used_as_it_is():
    class ProjectRedis(Redis):
        pass

    redis = ProjectRedis.from_url(REDIS_URL)
    assert redis_alias._connections.get(redis) is redis
