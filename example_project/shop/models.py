"""The demo shop: organizations (tenants), memberships with roles, products and orders."""

import uuid

from django.conf import settings
from django.db import models


class Organization(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    ROLES = [("admin", "Admin"), ("editor", "Editor"), ("viewer", "Viewer")]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=ROLES)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization", "role"], name="uniq_membership_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization}: {self.role}"


class Product(models.Model):
    STATUSES = [("draft", "Draft"), ("active", "Active"), ("archived", "Archived")]

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="products"
    )
    name = models.CharField(max_length=200)
    sku = models.CharField(max_length=64)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=20, choices=STATUSES, default="draft")
    cost = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    secret_notes = models.TextField(blank=True, default="")
    in_stock = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "sku"], name="uniq_product_sku_per_org")
        ]
        indexes = [models.Index(fields=["organization", "status", "created_at"])]

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="orders")
    reference = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    quantity = models.PositiveIntegerField(default=1)
    customer_email = models.EmailField()
    placed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Order {self.reference}"


class Page(models.Model):
    """An organization's content page ("about", "shipping"), addressed by its slug: written
    by an editor, kept in a trash when deleted."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="pages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    slug = models.SlugField(max_length=80)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    published = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="uniq_page_slug_per_org")
        ]

    def __str__(self) -> str:
        return self.title
