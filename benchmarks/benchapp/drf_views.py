"""Side (a): what a DRF user writes by hand for the same API."""

import hashlib
import json
import os
import re
import secrets
from datetime import timedelta
from typing import Any

import django_filters
from django.db import connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from django_redis import get_redis_connection
from rest_framework import pagination, serializers, viewsets
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .models import Item, OutboxRow

FIELDS = ["id", "category", "name", "sku", "price", "status", "quantity", "created_at"]


class ItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = FIELDS
        read_only_fields = ["id", "created_at"]


class ItemFilter(django_filters.FilterSet):
    class Meta:
        model = Item
        fields = {
            "status": ["exact", "in"],
            "price": ["gte", "lte"],
            "name": ["contains"],
            "category": ["exact"],
        }


class PagePagination(pagination.PageNumberPagination):
    # page + limit + total count, like arc's offset pagination (one COUNT, one SELECT).
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100


class ItemViewSet(viewsets.ModelViewSet):
    queryset = Item.objects.all()
    serializer_class = ItemSerializer
    filter_backends = [DjangoFilterBackend, OrderingFilter, SearchFilter]
    filterset_class = ItemFilter
    ordering_fields = ["price", "created_at", "name"]
    ordering = ["-created_at"]
    search_fields = ["name", "sku"]
    pagination_class = PagePagination
    authentication_classes = []
    permission_classes = []


class ItemOutboxViewSet(ItemViewSet):
    """(a') The same viewset with the transactional outbox written by hand: the item and its
    ``items.created`` row commit together or not at all."""

    #: whether a create inside an open transaction takes a savepoint (``atomic()``'s default)
    savepoint = True

    def perform_create(self, serializer: ItemSerializer) -> None:
        with transaction.atomic(savepoint=self.savepoint):
            serializer.save()
            OutboxRow.objects.create(type="items.created", payload=serializer.data)


# --------------------------------------------------------------------------- idempotency ceiling
# ``cache.py`` compares what django-arc's ``Idempotency-Key`` adds to a create with what the
# same guarantee costs written by hand on the same stack: the claim a concurrent repeat sees
# before the write runs (Redis ``SET NX PX``, or an ``INSERT … ON CONFLICT DO NOTHING``
# committed on its own), a fingerprint of the body, and the answer stored only by the claim's
# owner (a compare-and-set script, or an ``UPDATE`` in the create's transaction). No scope,
# settings, store abstraction or outage handling: the least a key can cost here. Only the
# path the benchmark measures is complete: a create that fails leaves its claim to expire.

_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_REDIS_PREFIX = os.environ.get("ARC_BENCH_REDIS_PREFIX", "arc-bench") + ":hand-idem:"
_LOCK_MS, _TTL_MS = 30_000, 86_400_000
_COMPLETE_IF_OURS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class _KeyedCreate(ItemOutboxViewSet):
    """``ItemOutboxViewSet`` whose create honours an ``Idempotency-Key``."""

    def create(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        if key is None:
            return super().create(request, *args, **kwargs)
        if not _VALID_KEY.fullmatch(key):
            return Response({"Idempotency-Key": ["1 to 255 printable characters"]}, status=400)
        # anonymous callers (this viewset authenticates no one): method, path and key
        scoped = hashlib.sha256(f"{request.method} {request.path} {key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(
            json.dumps(request.data, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        return self.keyed_create(request, scoped, fingerprint)

    def save(self, request: Request) -> bytes:
        """The create itself, its outbox row included; the answer's bytes."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        return JSONRenderer().render(serializer.data)

    def keyed_create(self, request: Request, scoped: str, fingerprint: str) -> HttpResponse:
        raise NotImplementedError


def _answer(status: int, body: bytes, replayed: bool = False) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="application/json")
    if replayed:
        response["X-Idempotency-Replayed"] = "true"
    return response


class CacheKeyedItemViewSet(_KeyedCreate):
    """The key in Redis (django-redis's client, as a DRF user reaches it)."""

    complete_if_ours: Any = None  # the script, registered with the first client

    def keyed_create(self, request: Request, scoped: str, fingerprint: str) -> HttpResponse:
        redis = get_redis_connection("redis")
        name = _REDIS_PREFIX + scoped
        claim = f"F{fingerprint}:{secrets.token_hex(16)}".encode()
        if not redis.set(name, claim, nx=True, px=_LOCK_MS):
            held = redis.get(name) or b"F"
            if held[1:65].decode() != fingerprint:
                return Response({"detail": "key reused"}, status=422)
            if held[:1] == b"F":
                return Response({"detail": "in flight"}, status=409, headers={"Retry-After": "1"})
            return _answer(int(held[65:68]), held[68:], replayed=True)
        body = self.save(request)
        done = f"D{fingerprint}201".encode() + body
        script = CacheKeyedItemViewSet.complete_if_ours
        if script is None:
            script = CacheKeyedItemViewSet.complete_if_ours = redis.register_script(
                _COMPLETE_IF_OURS
            )
        script(keys=[name], args=[claim, done, _TTL_MS], client=redis)
        return _answer(201, body)


class DatabaseKeyedItemViewSet(_KeyedCreate):
    """The key in ``django_arc_idempotencyrecord`` (the same table and indexes as
    django-arc's ``database`` store), in SQL."""

    savepoint = False  # keyed_create's transaction is already open: no savepoint inside it

    def keyed_create(self, request: Request, scoped: str, fingerprint: str) -> HttpResponse:
        now = timezone.now()
        token = secrets.token_hex(16)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_arc_idempotencyrecord (key, fingerprint, token, method, "
                "path, locked_until, content_type, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, '', %s, %s) ON CONFLICT DO NOTHING",
                [
                    scoped,
                    fingerprint,
                    token,
                    request.method,
                    request.path,
                    now + timedelta(milliseconds=_LOCK_MS),
                    now,
                    now + timedelta(milliseconds=_TTL_MS),
                ],
            )
            claimed = cursor.rowcount == 1
        if not claimed:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT fingerprint, status, body FROM django_arc_idempotencyrecord "
                    "WHERE key = %s",
                    [scoped],
                )
                held = cursor.fetchone()
            if held is None or held[0] != fingerprint:
                return Response({"detail": "key reused"}, status=422)
            if held[1] is None:
                return Response({"detail": "in flight"}, status=409, headers={"Retry-After": "1"})
            return _answer(held[1], bytes(held[2]), replayed=True)
        with transaction.atomic():
            body = self.save(request)
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE django_arc_idempotencyrecord SET status = 201, content_type = "
                    "'application/json', body = %s, locked_until = NULL "
                    "WHERE key = %s AND token = %s AND status IS NULL",
                    [body, scoped, token],
                )
                if cursor.rowcount != 1:
                    transaction.set_rollback(True)
                    return Response({"detail": "taken over"}, status=409)
        return _answer(201, body)
