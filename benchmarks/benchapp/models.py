"""The benchmark's model: one table with a FK, shaped like a typical catalogue."""

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
