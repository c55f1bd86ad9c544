"""Resources for the core tests (public permissions, so access control stays out of the way)."""

from rest_framework import serializers

from django_arc import ArcError, Resource, action, arc, route
from django_arc import permissions as P

from .models import Author, Book, Gauge, Lemma

PUBLIC = {
    "list": P.allow_public(),
    "get": P.allow_public(),
    "create": P.allow_public(),
    "update": P.allow_public(),
    "delete": P.allow_public(),
}


@arc.register
class BookResource(Resource):
    model = Book
    name = "books"
    fields = [
        "id",
        "title",
        "isbn",
        "uid",
        "pages",
        "price",
        "rating",
        "published",
        "is_available",
        "author",
        "created_at",
    ]
    read_only_fields = ["id", "created_at"]
    filter_fields = {
        "title": ["eq", "contains", "icontains", "startswith"],
        "pages": ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"],
        "price": ["gte", "lte"],
        "rating": ["exists", "gte"],
        "published": ["gte", "lte", "eq"],
        "is_available": ["eq"],
        "author": ["eq", "in"],
        "author__name": ["eq", "icontains"],
        "uid": ["eq"],
        "isbn": ["eq", "ne"],
    }
    sort_fields = ["title", "pages", "price", "rating", "published", "author__name", "created_at"]
    search_fields = ["title", "isbn"]
    default_sort = "title"
    permissions = PUBLIC

    def before_create(self, request, data):
        if data.get("title") == "forbidden":
            raise ArcError("TITLE_FORBIDDEN", "That title is not allowed", 422, {"title": "x"})
        if data.get("title") == "shout":
            return {**data, "title": "SHOUT"}
        return None

    def after_create(self, request, instance):
        if instance.title == "boom-after":
            raise ArcError("AFTER_FAILED", "after hook failed", 409)

    def before_update(self, request, instance, data):
        if data.get("title") == "forbidden":
            raise ArcError("TITLE_FORBIDDEN", "That title is not allowed", 422)

    def before_delete(self, request, instance):
        if instance.title == "undeletable":
            raise ArcError("LOCKED", "This book is locked", 423)

    @route("GET", "stats", permissions=P.allow_public())
    def stats(self, request):
        return {"count": Book.objects.count()}

    @route("POST", "webhook", raw=True, permissions=P.allow_public(), status=202)
    def webhook(self, request):
        """Echo what arrived, byte for byte (signature checks need the raw body)."""
        import hashlib

        return {"length": len(request.body), "sha256": hashlib.sha256(request.body).hexdigest()}

    @action
    def shout(self, request, instance, data):
        """No permission of its own and no ``action_permissions``: denied to everyone."""
        instance.title = instance.title.upper()
        instance.save()
        return instance


@arc.register
class IsbnBookResource(Resource):
    """Same model, addressed by a unique non-pk field."""

    model = Book
    name = "isbn-books"
    fields = ["id", "title", "isbn", "author"]
    lookup_field = "isbn"
    update_method = "PATCH"
    permissions = PUBLIC


class AuthorSerializer(serializers.ModelSerializer):
    book_count = serializers.SerializerMethodField()

    class Meta:
        model = Author
        fields = ["id", "name", "book_count"]

    def get_book_count(self, obj) -> int:
        return len(obj.books.all())


@arc.register
class AuthorResource(Resource):
    """A user-supplied serializer with a reverse relation (prefetched to avoid N+1)."""

    model = Author
    name = "authors"
    fields = ["id", "name"]
    serializer_class = AuthorSerializer
    filter_fields = {"name": ["eq", "icontains"]}
    sort_fields = ["name"]
    permissions = {"list": P.allow_public(), "get": P.require_auth()}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("books")


# -- access control -------------------------------------------------------------------------

from django_arc import fields as F  # noqa: E402
from django_arc import presets  # noqa: E402
from shop.models import Product  # noqa: E402

WRITERS = P.any_of(P.require_org_role("admin", "editor"), P.require_service_scope("products:write"))


@arc.register
class TenantProductResource(Resource):
    """SPEC §2's ProductResource, plus a service scope for writes (the access matrix)."""

    model = Product
    name = "t-products"
    fields = [
        "id",
        "name",
        "sku",
        "price",
        "status",
        "cost",
        "secret_notes",
        "organization",
        "created_at",
    ]
    read_only_fields = ["id", "created_at"]
    filter_fields = {
        "status": ["eq", "in"],
        "price": ["gte", "lte"],
        "name": ["contains"],
        "organization": ["eq", "ne", "in"],
        "cost": ["gte"],
        "sku": ["eq"],
    }
    sort_fields = ["price", "created_at", "name", "cost"]
    search_fields = ["name", "sku"]
    default_sort = "-created_at"
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {
        "list": P.require_org_membership(),
        "get": P.require_org_membership(),
        "create": WRITERS,
        "update": WRITERS,
        "delete": P.require_org_role("admin"),
    }
    field_permissions = {
        "cost": F.visible_to("admin"),
        "status": F.writable_by("admin"),
        "secret_notes": F.hidden(),
        "sku": F.redact_for("viewer"),
    }


@arc.register
class StripProductResource(TenantProductResource):
    name = "strip-products"
    on_field_write_denied = "strip"


@arc.register
class PublicCatalogResource(Resource):
    """A shared catalogue: public reads across tenants (allow_public_reads)."""

    model = Product
    name = "catalog"
    fields = ["id", "name", "price", "organization"]
    presets = [presets.MultiTenant(allow_public_reads=True)]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}


@arc.register
class GuardedProductResource(Resource):
    """Public permission but tenancy still applies (no allow_public_reads)."""

    model = Product
    name = "guarded"
    fields = ["id", "name", "organization"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.allow_public(), "get": P.allow_public()}


from rest_framework.permissions import BasePermission  # noqa: E402

from .models import Note  # noqa: E402


class HeaderSaysYes(BasePermission):
    message = "Header X-Yes required"

    def has_permission(self, request, view):
        return request.headers.get("X-Yes") == "1"


def not_on_fridays(request, resource, action, obj=None):
    from django_arc import PermissionResult

    if request.headers.get("X-Day") == "friday":
        return PermissionResult(False, "Closed on Fridays")
    return True


@arc.register
class BranchNoteResource(Resource):
    """Two tenant dimensions: the org and a branch from ``X-Arc-Context-Branch-Id``."""

    model = Note
    name = "branch-notes"
    fields = ["id", "organization", "branch", "owner", "text", "internal"]
    filter_fields = {"text": ["eq"]}
    presets = [
        presets.MultiTenant(
            tenant_fields=[
                {"field": "organization", "type": "org"},
                {"field": "branch", "context_key": "branch_id"},
            ]
        )
    ]
    permissions = {
        "list": P.require_org_membership(),
        "get": P.require_org_membership(),
        "create": P.require_org_membership(),
        "update": P.require_org_membership(),
        "delete": P.deny_all(),
    }
    field_permissions = {"internal": F.read_only()}


@arc.register
class OwnerContextNoteResource(Resource):
    """An integer context dimension (the owner's id, from ``X-Arc-Context-Owner-Id``)."""

    model = Note
    name = "owner-context-notes"
    fields = ["id", "organization", "owner", "branch", "text"]
    presets = [
        presets.MultiTenant(
            tenant_fields=[
                {"field": "organization", "type": "org"},
                {"field": "owner", "context_key": "owner_id"},
            ]
        )
    ]
    permissions = {"list": P.require_org_membership(), "create": P.require_org_membership()}


@arc.register
class OwnedNoteResource(Resource):
    """``require_owner`` filters plus combinators, custom callables and DRF permission classes."""

    model = Note
    name = "owned-notes"
    fields = ["id", "organization", "branch", "owner", "text"]
    read_only_fields = ["owner"]
    permissions = {
        "list": P.all_of(P.require_auth(), P.require_owner("owner")),
        "get": P.any_of(P.require_roles("auditor"), P.require_owner("owner")),
        "update": P.all_of(P.require_owner("owner"), not_on_fridays),
        "create": P.when(lambda request, *a: request.method == "POST", HeaderSaysYes),
        "delete": P.require_roles("auditor"),
    }

    def before_create(self, request, data):
        from shop.models import Organization

        data["organization"] = (
            Organization.objects.order_by("pk").values_list("pk", flat=True).first()
        )
        return data


from shop.models import Order  # noqa: E402


@arc.register
class TenantOrderResource(Resource):
    """Orders reference products: the FK target must be in the caller's tenant too."""

    model = Order
    name = "t-orders"
    fields = ["id", "reference", "product", "quantity", "customer_email", "organization"]
    read_only_fields = ["id", "reference"]
    lookup_field = "reference"
    presets = [presets.MultiTenant()]
    permissions = {"create": P.require_org_membership(), "update": P.require_org_membership()}


from rest_framework.throttling import AnonRateThrottle  # noqa: E402


class TwoPerMinute(AnonRateThrottle):
    rate = "2/min"


@arc.register
class ThrottledAuthorResource(Resource):
    """Per-resource DRF policies: throttling (and no session authentication)."""

    model = Author
    name = "throttled-authors"
    fields = ["id", "name"]
    throttle_classes = [TwoPerMinute]
    authentication_classes = []
    permissions = {"list": P.allow_public(), "get": P.require_auth()}


@arc.register
class PlainAuthorResource(Resource):
    """No hooks, no presets, generated serializer: the cheapest write path."""

    model = Author
    name = "plain-authors"
    fields = ["id", "name"]
    permissions = {"create": P.allow_public()}


@arc.register
class GaugeResource(Resource):
    model = Gauge
    name = "gauges"
    fields = ["id", "reading", "labels"]
    permissions = PUBLIC


class GaugeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Gauge
        fields = ["id", "reading", "labels"]


@arc.register
class CustomGaugeResource(Resource):
    """A user ``ModelSerializer``: the fields it builds from the model are django-arc's."""

    model = Gauge
    name = "custom-gauges"
    fields = ["id", "reading", "labels"]
    serializer_class = GaugeSerializer
    permissions = PUBLIC


# -- the preset contract: the docs' ArchiveOnDelete, under require_owner and under tenancy -----

from shop.presets import ArchiveOnDelete  # noqa: E402


@arc.register
class ArchivedNoteResource(Resource):
    """``require_owner`` lists: the archive route must be exactly as narrow."""

    model = Note
    name = "archived-notes"
    fields = ["id", "organization", "branch", "owner", "text", "internal"]
    read_only_fields = ["owner"]
    filter_fields = {"text": ["eq", "in"]}
    sort_fields = ["text"]
    presets = [ArchiveOnDelete(field="internal", value="archived")]
    permissions = {
        "list": P.require_owner("owner"),
        "get": P.require_owner("owner"),
        "delete": P.require_owner("owner"),
    }


@arc.register
class ArchivedProductResource(Resource):
    """Tenancy: the archive route lists the caller's organization only."""

    model = Product
    name = "archived-products"
    fields = ["id", "name", "sku", "status", "organization"]
    filter_fields = {"name": ["eq"]}
    presets = [presets.MultiTenant(), ArchiveOnDelete(field="status", value="archived")]
    permissions = {
        "list": P.require_org_membership(),
        "get": P.require_org_membership(),
        "delete": P.require_org_role("admin"),
    }


# -- actions and custom routes -----------------------------------------------------------------

from django_arc.actions import INSTANCE  # noqa: E402


class PublishInput(serializers.Serializer):
    note = serializers.CharField(max_length=20)
    price = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0, required=False)


class ArchiveResult(serializers.Serializer):
    archived = serializers.BooleanField()


@arc.register
class ActionProductResource(Resource):
    """Actions on a tenant resource with a field only admins see."""

    model = Product
    name = "action-products"
    fields = ["id", "name", "sku", "price", "status", "cost", "organization"]
    presets = [presets.MultiTenant()]
    permissions = {"list": P.require_org_membership(), "get": P.require_org_membership()}
    field_permissions = {"cost": F.visible_to("admin")}
    action_permissions = P.require_org_role("admin")

    @action(permissions=P.require_org_role("admin", "editor"), input=PublishInput)
    def publish(self, request, instance, data):
        """Put a product on sale, optionally at a new price."""
        instance.status = "active"
        if "price" in data:
            instance.price = data["price"]
        instance.save()
        if data["note"] == "fail":
            raise ArcError("PUBLISH_FAILED", "Cannot publish", 409)
        return instance

    @action(output=ArchiveResult)
    def archive(self, request, instance, data):
        """Admins only (``action_permissions``); returns a plain value."""
        instance.status = "archived"
        instance.save(update_fields=["status"])
        return {"archived": True}

    @route("GET", "stats", permissions=P.require_org_membership())
    def stats(self, request, view):
        """Counts what the caller's list would show: the view's queryset."""
        return {"count": view.get_queryset().count()}

    @route("GET", "card", detail=True, permissions=P.require_org_membership(), response=INSTANCE)
    def card(self, request, instance):
        return instance


# -- SPEC §6 presets: each alone, and all together ---------------------------------------------

from .models import Article  # noqa: E402

ARTICLE_FIELDS = ["id", "organization", "owner", "slug", "title", "views", "secret", "deleted_at"]
OPEN = {
    "list": P.allow_public(),
    "get": P.allow_public(),
    "create": P.require_auth(),
    "update": P.require_auth(),
    "delete": P.require_auth(),
}


@arc.register
class SoftArticleResource(Resource):
    model = Article
    name = "soft-articles"
    fields = ARTICLE_FIELDS
    filter_fields = {"title": ["eq", "contains"]}
    sort_fields = ["title"]
    presets = [presets.SoftDelete()]
    permissions = OPEN

    @action(permissions=P.require_auth())
    def bump(self, request, instance, data):
        instance.views += 1
        instance.save(update_fields=["views"])
        return instance


@arc.register
class SlugArticleResource(Resource):
    model = Article
    name = "slug-articles"
    fields = ARTICLE_FIELDS
    presets = [presets.SlugLookup()]
    permissions = OPEN


@arc.register
class OwnedArticleResource(Resource):
    model = Article
    name = "owned-articles"
    fields = ARTICLE_FIELDS
    presets = [presets.OwnedBy(bypass_roles=("moderator",))]
    permissions = OPEN

    @action(permissions=P.require_auth())
    def bump(self, request, instance, data):
        instance.views += 1
        instance.save(update_fields=["views"])
        return instance


@arc.register
class AuditedArticleResource(Resource):
    model = Article
    name = "audited-articles"
    fields = ARTICLE_FIELDS
    presets = [presets.Audited()]
    permissions = OPEN
    field_permissions = {"secret": F.hidden()}

    @action(permissions=P.require_auth())
    def bump(self, request, instance, data):
        instance.views += 1
        instance.save(update_fields=["views"])
        return instance


ALL_PRESETS_PERMISSIONS = {
    "list": P.require_org_membership(),
    "get": P.require_org_membership(),
    "create": P.require_org_role("admin", "editor"),
    "update": P.require_org_role("admin", "editor"),
    "delete": P.require_org_role("admin", "editor"),
}


@arc.register
class AllPresetsArticleResource(Resource):
    """MultiTenant + SoftDelete + SlugLookup + OwnedBy + Audited, with field permissions."""

    model = Article
    name = "all-articles"
    fields = ARTICLE_FIELDS
    filter_fields = {"title": ["eq", "contains"], "views": ["gte"]}
    sort_fields = ["title", "views"]
    presets = [
        presets.MultiTenant(),
        presets.SoftDelete(),
        presets.SlugLookup(),
        presets.OwnedBy(bypass_roles=("admin",)),
        presets.Audited(),
        presets.Bulk(max_items=50),
    ]
    permissions = ALL_PRESETS_PERMISSIONS
    field_permissions = {"secret": F.hidden(), "views": F.writable_by("admin")}


@arc.register
class ReversedPresetsArticleResource(AllPresetsArticleResource):
    """The same presets listed the other way round: composition must not depend on order."""

    name = "reversed-articles"
    presets = [
        presets.Bulk(max_items=50),
        presets.Audited(),
        presets.OwnedBy(bypass_roles=("admin",)),
        presets.SlugLookup(),
        presets.SoftDelete(),
        presets.MultiTenant(),
    ]


@arc.register
class MineArticleResource(Resource):
    """Reads narrowed by ``require_owner``: every preset route must be as narrow."""

    model = Article
    name = "mine-articles"
    fields = ARTICLE_FIELDS
    presets = [presets.SoftDelete(), presets.SlugLookup(), presets.Bulk()]
    permissions = {
        "list": P.require_owner("owner"),
        "get": P.require_owner("owner"),
        "create": P.require_auth(),
        "update": P.require_owner("owner"),
        "delete": P.require_owner("owner"),
    }

    def before_create(self, request, data):
        data["owner"] = request.user.pk
        return data


@arc.register
class BulkBookResource(Resource):
    """Bulk alone, over rows with a foreign key (preloaded once per batch), hooks and audit."""

    model = Book
    name = "bulk-books"
    fields = ["id", "title", "isbn", "pages", "price", "author"]
    filter_fields = {
        "title": ["eq", "startswith"],
        "pages": ["gte", "lte"],
        "reviews__body": ["icontains"],  # a to-many path: one book, several reviews
    }
    presets = [presets.Bulk(max_items=50), presets.Audited()]
    permissions = {**PUBLIC, "create": P.require_auth()}
    field_permissions = {"price": F.writable_by("pricing")}

    def before_create(self, request, data):
        if data.get("title") == "forbidden":
            raise ArcError("TITLE_FORBIDDEN", "That title is not allowed", 422)
        return None


@arc.register
class StripBulkBookResource(BulkBookResource):
    name = "strip-bulk-books"
    on_field_write_denied = "strip"


# -- a project's own serializer on a MultiTenant resource (issue #18, point 2) -----------------


class PlainProductSerializer(serializers.ModelSerializer):
    """A plain ``ModelSerializer`` as a project writes it, knowing nothing of django-arc: it
    requires the tenant (from the model), ``in_stock`` and ``secret_notes`` (declared), and
    adds ``label``, a field only it declares."""

    in_stock = serializers.BooleanField()
    secret_notes = serializers.CharField()
    label = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "sku",
            "price",
            "status",
            "cost",
            "secret_notes",
            "in_stock",
            "organization",
            "created_at",
            "label",
        ]

    def get_label(self, obj) -> str:
        return f"{obj.name} ({obj.sku})"


@arc.register
class SerializedProductResource(Resource):
    """No ``fields``: they default to the serializer's. The resource's rules apply to it as to
    a generated one: tenant and ``read_only_fields`` read-only, hidden fields gone, field
    permissions on every field it renders, ``label`` included."""

    model = Product
    name = "serialized-products"
    serializer_class = PlainProductSerializer
    read_only_fields = ["in_stock"]
    presets = [presets.MultiTenant(tenant_field="organization")]
    permissions = {
        "list": P.require_org_membership(),
        "get": P.require_org_membership(),
        "create": P.require_org_role("admin", "editor"),
        "update": P.require_org_role("admin", "editor"),
    }
    field_permissions = {
        "cost": F.visible_to("admin"),
        "status": F.writable_by("admin"),
        "secret_notes": F.hidden(),
        "label": F.visible_to("admin", "editor"),
    }


# -- idempotency and the query cache (issue #17) -----------------------------------------------

from . import feature_resources  # noqa: E402, F401  (registers its resources on `arc`)


@arc.register
class LemmaResource(Resource):
    """Fields named beyond ASCII, filtered, sorted and selected by their names."""

    model = Lemma
    name = "lemmas"
    fields = ["id", "größe", "wörter"]
    filter_fields = {"größe": ["eq", "gte", "in"], "wörter": ["eq", "icontains"]}
    sort_fields = ["größe", "wörter"]
    search_fields = ["wörter"]
    permissions = PUBLIC
