"""Side (a): what a DRF user writes by hand for the same API."""

import django_filters
from django.db import transaction
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import pagination, serializers, viewsets
from rest_framework.filters import OrderingFilter, SearchFilter

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

    def perform_create(self, serializer: ItemSerializer) -> None:
        with transaction.atomic():
            serializer.save()
            OutboxRow.objects.create(type="items.created", payload=serializer.data)
