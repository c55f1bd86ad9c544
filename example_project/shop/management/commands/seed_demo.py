"""``manage.py seed_demo``: the demo data ``make demo`` serves.

Idempotent on purpose: ``make demo`` runs it on every start, so a second run must neither
fail on unique constraints nor duplicate rows nor change data a user edited through the API
beyond restoring the demo accounts' passwords. Data is generated from a fixed seed so the
README's examples (SKUs, counts) stay true on every machine.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from django_arc.querycache import invalidate
from shop.models import Membership, Order, Organization, Page, Product

PASSWORD = "demo12345"
ORGANIZATIONS = [("acme", "Acme Corp"), ("globex", "Globex Corporation")]
ROLES = ["admin", "editor", "viewer"]
PRODUCTS_PER_ORG = 50
ORDERS_PER_ORG = 100
#: (slug, title, published) of every organization's content pages, written by its editor
PAGES = [
    ("about", "About us", True),
    ("shipping", "Shipping and delivery", True),
    ("returns", "Returns policy", False),
]
STATUSES = ["active", "active", "active", "draft", "archived"]
ADJECTIVES = [
    "Rocket",
    "Turbo",
    "Quantum",
    "Silent",
    "Giant",
    "Tiny",
    "Magnetic",
    "Solar",
    "Portable",
    "Deluxe",
]
NOUNS = [
    "Skates",
    "Anvil",
    "Widget",
    "Gadget",
    "Lamp",
    "Kettle",
    "Drone",
    "Backpack",
    "Umbrella",
    "Toaster",
]
SERVICE_SCOPES = ["products:read", "orders:read"]
#: Namespace for order references, so the same order keeps the same UUID on every machine.
ORDER_NAMESPACE = uuid.UUID("6f1c7a2e-8a57-4d3c-9a8e-2f7c1d0b5e11")


class Command(BaseCommand):
    help = "Create (or complete) the demo organizations, users, products and orders."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--quiet", action="store_true", help="Print nothing on success.")
        parser.add_argument(
            "--rotate-keys",
            action="store_true",
            help="Give the demo service clients new keys and print them (the "
            "old keys stop working).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            summary = seed()
            # bulk_create sends no signals: tell the query cache the catalogue changed
            invalidate(Product, Order)
        keys = create_service_clients(rotate=options["rotate_keys"])
        if options["quiet"]:
            return
        out = self.stdout
        out.write(self.style.SUCCESS("Demo data ready:"))
        for slug, counts in summary.items():
            out.write(
                f"  {slug:7} id={counts['id']}  products={counts['products']}  "
                f"orders={counts['orders']}  pages={counts['pages']}"
            )
        out.write(
            f"  users (password {PASSWORD!r}): root (superuser), "
            + ", ".join(f"{slug}-{role}" for slug, _ in ORGANIZATIONS for role in ROLES)
        )
        for slug, (client_id, key) in keys.items():
            if key is None:
                out.write(
                    f"  service client {client_id} ({slug}) already exists; its key was "
                    "printed when it was created (seed_demo --rotate-keys issues new ones)"
                )
            else:
                out.write(
                    self.style.WARNING(
                        f"  service key for {client_id} ({slug}), shown only once: {key}"
                    )
                )


def seed() -> dict[str, dict[str, int]]:
    """Create whatever part of the demo data is missing; return per-org counts."""
    user_model = get_user_model()
    root, created = user_model.objects.get_or_create(
        username="root", defaults={"email": "root@example.com"}
    )
    root.is_staff = root.is_superuser = True
    _ensure_password(root, created)

    rng = random.Random(2024)
    summary: dict[str, dict[str, int]] = {}
    for slug, name in ORGANIZATIONS:
        org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
        for role in ROLES:
            user, created = user_model.objects.get_or_create(
                username=f"{slug}-{role}", defaults={"email": f"{role}@{slug}.example"}
            )
            _ensure_password(user, created)
            Membership.objects.get_or_create(user=user, organization=org, role=role)
        _seed_products(org, rng)
        _seed_orders(org, rng)
        _seed_pages(org, user_model.objects.get(username=f"{slug}-editor"))
        summary[slug] = {
            "id": org.pk,
            "products": org.products.count(),
            "orders": org.orders.count(),
            "pages": org.pages.count(),
        }
    return summary


def _ensure_password(user: Any, created: bool) -> None:
    if created or not user.check_password(PASSWORD):
        user.set_password(PASSWORD)
    user.save()


def _seed_products(org: Organization, rng: random.Random) -> None:
    existing = set(Product.objects.filter(organization=org).values_list("sku", flat=True))
    now = timezone.now()
    new = []
    for i in range(1, PRODUCTS_PER_ORG + 1):
        # Draw the random values even for existing rows so later rows do not change.
        price = Decimal(rng.randrange(199, 49999)) / 100
        status = rng.choice(STATUSES)
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i}"
        sku = f"{org.slug.upper()}-{i:04d}"
        if sku in existing:
            continue
        new.append(
            Product(
                organization=org,
                sku=sku,
                name=name,
                price=price,
                status=status,
                cost=(price * Decimal("0.6")).quantize(Decimal("0.01")),
                secret_notes=f"supplier contract #{1000 + i}",
                in_stock=i % 7 != 0,
            )
        )
    created = Product.objects.bulk_create(new)
    # auto_now_add stamps every row with "now"; spread them over the last 50 days so that
    # sorting by created_at shows something (update() bypasses auto_now_add).
    for product in created:
        index = int(product.sku.rsplit("-", 1)[1])
        Product.objects.filter(pk=product.pk).update(
            created_at=now - timedelta(days=PRODUCTS_PER_ORG - index)
        )


def _seed_orders(org: Organization, rng: random.Random) -> None:
    products = list(Product.objects.filter(organization=org).order_by("sku"))
    if not products:
        return
    references = [uuid.uuid5(ORDER_NAMESPACE, f"{org.slug}-{i}") for i in range(ORDERS_PER_ORG)]
    existing = set(
        Order.objects.filter(reference__in=references).values_list("reference", flat=True)
    )
    now = timezone.now()
    new, ages = [], {}
    for i, reference in enumerate(references):
        product = products[rng.randrange(len(products))]
        quantity = rng.randint(1, 10)
        if reference in existing:
            continue
        new.append(
            Order(
                organization=org,
                reference=reference,
                product=product,
                quantity=quantity,
                customer_email=f"customer{i}@{org.slug}.example",
            )
        )
        ages[reference] = timedelta(hours=ORDERS_PER_ORG - i)
    Order.objects.bulk_create(new)
    for reference, age in ages.items():
        Order.objects.filter(reference=reference).update(placed_at=now - age)


def _seed_pages(org: Organization, author: Any) -> None:
    """Fixed content (no random draws: the products and orders of the next organization
    must not change)."""
    for slug, title, published in PAGES:
        Page.objects.get_or_create(
            organization=org,
            slug=slug,
            defaults={
                "title": title,
                "body": f"{title} at {org.name}.",
                "published": published,
                "author": author,
            },
        )


def create_service_clients(rotate: bool = False) -> dict[str, tuple[str, str | None]]:
    """One read-only service client per organization (``<org>-sync``).

    Returns ``{org slug: (client name, raw key or None)}``. The database keeps only a hash,
    so the raw key exists only when a client is created or its key rotated; an existing
    client yields ``None`` and keeps working with the key printed earlier.
    """
    from django_arc.clients import ServiceClient

    keys: dict[str, tuple[str, str | None]] = {}
    for slug, _ in ORGANIZATIONS:
        org = Organization.objects.get(slug=slug)
        name = f"{slug}-sync"
        client = ServiceClient.objects.filter(name=name, organization_id=str(org.pk)).first()
        if client is None:
            client, raw_key = ServiceClient.objects.create_with_key(
                name=name, organization_id=org.pk, scopes=SERVICE_SCOPES
            )
        elif rotate:
            raw_key = client.set_new_key()
            client.active = True
            client.save(update_fields=["key_prefix", "key_hash", "active"])
        else:
            raw_key = None
        keys[slug] = (client.name, raw_key)
    return keys
