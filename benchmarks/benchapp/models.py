"""The benchmark's model: one table with a FK, shaped like a typical catalogue."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100)


class Item(models.Model):
    STATUSES = [("draft", "Draft"), ("active", "Active"), ("archived", "Archived")]

    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="items")
    name = models.CharField(max_length=200)
    sku = models.CharField(max_length=64)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=20, choices=STATUSES, default="draft")
    quantity = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["status", "price"]), models.Index(fields=["created_at"])]


class OutboxRow(models.Model):
    """The outbox a DRF user writes by hand for the same guarantee as django-arc's: the event
    id, its type, the JSON payload and when it was stored, written in the create's
    transaction (``drf_views.ItemOutboxViewSet``)."""

    event_id = models.UUIDField(unique=True, default=uuid.uuid4)
    type = models.CharField(max_length=200)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)


# --------------------------------------------------------------------------- access benchmark
# ``benchmarks/access.py`` serves one model through a bare resource and through the same
# resource with tenancy, field rules and role checks, so it needs tenants and memberships.


class Organization(models.Model):
    name = models.CharField(max_length=100)


class Membership(models.Model):
    """A user's role in an organization; what ``benchapp.membership`` resolves."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bench_members"
    )
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
    role = models.CharField(max_length=20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="bench_member_once")
        ]


class TenantItem(models.Model):
    """``Item`` plus a tenant and the fields the field rules guard (``cost``, ``internal_note``)."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="tenant_items")
    name = models.CharField(max_length=200)
    sku = models.CharField(max_length=64)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    cost = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    status = models.CharField(max_length=20, choices=Item.STATUSES, default="draft")
    quantity = models.PositiveIntegerField(default=0)
    internal_note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "price"], name="bench_titem_status_price"),
            models.Index(
                fields=["organization", "status", "price"], name="bench_titem_org_status_price"
            ),
            models.Index(fields=["created_at"], name="bench_titem_created"),
        ]


# --------------------------------------------------------------------------- presets benchmark
# ``benchmarks/presets.py`` serves one model through a bare resource and through the same
# resource with every preset (MultiTenant, SoftDelete, SlugLookup, OwnedBy, Bulk, Audited)
# and field rules, so the model carries every preset's column.


class PresetItem(models.Model):
    """``TenantItem`` plus the columns the presets use: ``owner`` (``OwnedBy``), ``slug``
    (``SlugLookup``) and ``deleted_at`` (``SoftDelete``). Both sides of the benchmark read and
    write this one table, so table, indexes and data are the same for both."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="preset_items"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bench_preset_items",
    )
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="preset_items")
    name = models.CharField(max_length=200)
    sku = models.CharField(max_length=64)
    # Not unique: the create benchmark posts the same body over and over; the slug route
    # answers 404 when a lookup matches several rows. Indexed with the tenant below.
    slug = models.SlugField(max_length=80, db_index=False)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    cost = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    status = models.CharField(max_length=20, choices=Item.STATUSES, default="draft")
    quantity = models.PositiveIntegerField(default=0)
    internal_note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "price"], name="bench_pitem_status_price"),
            # What docs/presets/soft-delete.md advises: the tenant's list index only over
            # live rows, so a page's COUNT(*) is an index-only scan like the bare side's.
            models.Index(
                fields=["organization", "status", "price"],
                name="bench_pitem_org_status_price",
                condition=models.Q(deleted_at__isnull=True),
            ),
            models.Index(fields=["organization", "slug"], name="bench_pitem_org_slug"),
            models.Index(fields=["created_at"], name="bench_pitem_created"),
        ]
