"""Admin for the demo shop, so ``make demo`` users can inspect and edit what the API serves."""

from django.contrib import admin

from .models import Membership, Order, Organization, Product


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "id"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role"]
    list_filter = ["organization", "role"]
    search_fields = ["user__username", "organization__name"]
    autocomplete_fields = ["user", "organization"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "sku",
        "organization",
        "status",
        "price",
        "cost",
        "in_stock",
        "created_at",
    ]
    list_filter = ["organization", "status", "in_stock"]
    search_fields = ["name", "sku"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "reference",
        "organization",
        "product",
        "quantity",
        "customer_email",
        "placed_at",
    ]
    list_filter = ["organization"]
    search_fields = ["reference", "customer_email", "product__name"]
    list_select_related = ["organization", "product"]
    autocomplete_fields = ["product"]
    readonly_fields = ["reference", "placed_at"]
