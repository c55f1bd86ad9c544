"""Models for the core tests: one FK, every common field type, a unique non-pk lookup."""

import os
import uuid

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import (
    ArrayField,
    DateTimeRangeField,
    HStoreField,
    IntegerRangeField,
)
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    title = models.CharField(max_length=200)
    isbn = models.CharField(max_length=20, unique=True)
    uid = models.UUIDField(default=uuid.uuid4, unique=True)
    pages = models.IntegerField(default=100)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=10)
    rating = models.FloatField(null=True, blank=True)
    published = models.DateField(null=True, blank=True)
    is_available = models.BooleanField(default=True)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="books")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    body = models.TextField()


class Note(models.Model):
    """Owned rows (``require_owner``) in a tenant with a second, context dimension (branch)."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    branch = models.CharField(max_length=20)
    owner = models.ForeignKey("auth.User", on_delete=models.CASCADE, null=True)
    text = models.CharField(max_length=200)
    internal = models.CharField(max_length=50, blank=True, default="")


class Gauge(models.Model):
    """A float and a JSON column: values JSON (and PostgreSQL's jsonb) cannot hold."""

    reading = models.FloatField(default=0)
    labels = models.JSONField(default=dict, blank=True)


class Article(models.Model):
    """Every preset's field on one model: tenant, owner, slug, soft-delete stamp, a hidden
    column and one only some roles see."""

    organization = models.ForeignKey(
        "shop.Organization", on_delete=models.CASCADE, null=True, blank=True
    )
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    slug = models.SlugField(max_length=50)
    title = models.CharField(max_length=200)
    views = models.IntegerField(default=0)
    secret = models.CharField(max_length=50, blank=True, default="")
    deleted_at = models.DateTimeField(null=True, blank=True)
    edited_at = models.DateTimeField(auto_now=True, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="uniq_article_slug")
        ]


class Export(models.Model):
    """A row a client names by a text of any length it chooses (a storage path, a signed
    URL): its lookup is a unique text column, not a bounded one."""

    path = models.TextField(unique=True)
    title = models.CharField(max_length=200, blank=True, default="")


# -- model shapes: primary keys, relations and managers other than an integer ``id`` ----------


class UuidThing(models.Model):
    """A UUID primary key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    rank = models.IntegerField(default=0)


class CodeThing(models.Model):
    """A text primary key not named ``id``, which the client chooses."""

    code = models.CharField(primary_key=True, max_length=100)
    name = models.CharField(max_length=100)
    rank = models.IntegerField(default=0)
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)


class CodeThingProxy(CodeThing):
    """The same table, served by a second resource."""

    class Meta:
        proxy = True


class Edition(models.Model):
    """A primary key not named ``id`` stored under another column name."""

    isbn = models.CharField(primary_key=True, max_length=20, db_column="isbn_code")
    title = models.CharField(max_length=100)


class Rack(models.Model):
    label = models.CharField(max_length=50, unique=True)
    room = models.CharField(max_length=50, default="")


class RackItem(models.Model):
    """Foreign keys to a unique non-pk field (``to_field``) and to a UUID primary key."""

    rack = models.ForeignKey(Rack, on_delete=models.CASCADE, to_field="label")
    thing = models.ForeignKey(UuidThing, on_delete=models.CASCADE, null=True, blank=True)
    name = models.CharField(max_length=100)


class Animal(models.Model):
    name = models.CharField(max_length=100)


class Dog(Animal):
    """Multi-table inheritance: the pk is the parent link ``animal_ptr``."""

    barks = models.BooleanField(default=True)


class TenantOwned(models.Model):
    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)

    class Meta:
        abstract = True


class Ledger(TenantOwned):
    """The tenant field inherited from an abstract base."""

    name = models.CharField(max_length=100)


class AuthorView(models.Model):
    """An unmanaged model over another model's table."""

    name = models.CharField(max_length=100)

    class Meta:
        managed = False
        db_table = "testapp_author"


class VisibleManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(archived=False)


class Memo(models.Model):
    """A default manager that hides rows (archived); the base manager sees them all."""

    text = models.CharField(max_length=100)
    archived = models.BooleanField(default=False)

    objects = VisibleManager()
    all_objects = models.Manager()  # noqa: DJ012 - the base manager, named below

    class Meta:
        base_manager_name = "all_objects"


class SlugLedger(models.Model):
    """A tenant field that is a foreign key to the organization's slug (``to_field``)."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE, to_field="slug")
    name = models.CharField(max_length=100)


class OrgSettings(models.Model):
    """One row per organization: the tenant field is the primary key (a one-to-one link
    that is not a parent link), which MultiTenant sets on create."""

    organization = models.OneToOneField(
        "shop.Organization", on_delete=models.CASCADE, primary_key=True
    )
    theme = models.CharField(max_length=20, default="light")


class RackView(models.Model):
    """An unmanaged model over ``Rack``'s table, which cached answers read (``rack__room``)
    while no cached resource serves it."""

    label = models.CharField(max_length=50, unique=True)
    room = models.CharField(max_length=50, default="")

    class Meta:
        managed = False
        db_table = "testapp_rack"


class CodeChild(CodeThing):
    """Multi-table inheritance under a client-chosen text pk: the child's pk (its parent
    link) is the parent's ``code``."""

    color = models.CharField(max_length=20, default="")


class DogTag(models.Model):
    """A foreign key to a multi-table child: ``dog__name`` joins Dog's table and its
    parent Animal's, which holds ``name``."""

    dog = models.ForeignKey(Dog, on_delete=models.CASCADE)
    label = models.CharField(max_length=50)


class AnimalProxy(Animal):
    """A proxy: its ``_meta.parents`` names Animal (with no parent link), but its rows are
    Animal's own, one table."""

    class Meta:
        proxy = True


class DogProxy(Dog):
    """A proxy of a multi-table child: its rows still span two tables."""

    class Meta:
        proxy = True


class UuidOrg(models.Model):
    """An organization whose primary key is a UUID: one org header, several spellings
    (capitals, no dashes)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)


class UuidOrgNote(models.Model):
    """A row of a UUID-keyed organization (``MultiTenant(tenant_field="organization")``)."""

    organization = models.ForeignKey(UuidOrg, on_delete=models.CASCADE)
    title = models.CharField(max_length=100)


class Sticker(models.Model):
    """A row stuck on any other row (a ``GenericForeignKey``)."""

    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    label = models.CharField(max_length=50)


class Board(models.Model):
    """Rows holding stickers through a ``GenericRelation``."""

    title = models.CharField(max_length=100)
    stickers = GenericRelation(Sticker, related_query_name="board")


class Branch(models.Model):
    """A branch as a row of its own: what :class:`Vendor`'s ``branch`` points at."""

    name = models.CharField(max_length=50)


class Desk(models.Model):
    """A row carrying both of :class:`Booking`'s tenant dimensions under their names."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    branch = models.CharField(max_length=20)
    label = models.CharField(max_length=50)


class Vendor(models.Model):
    """A row whose ``organization`` and ``branch`` share :class:`Booking`'s tenant field names
    but are other things: a relation to another model (``UuidOrg``), a relation where the
    booking's ``branch`` is text. Neither is a tenant dimension of a booking's."""

    organization = models.ForeignKey(UuidOrg, on_delete=models.CASCADE, null=True, blank=True)
    branch = models.ForeignKey(Branch, on_delete=models.CASCADE, null=True, blank=True)
    name = models.CharField(max_length=50)


class Booking(models.Model):
    """Two tenant dimensions (the organization, a ``branch`` context value) and relations to
    a row with the same dimensions (:class:`Desk`) and one with same-named other fields
    (:class:`Vendor`)."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    branch = models.CharField(max_length=20, blank=True)
    desk = models.ForeignKey(Desk, on_delete=models.CASCADE, null=True, blank=True)
    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, null=True, blank=True)


class ClientNote(models.Model):
    """A row owned by a service client (``OwnedBy`` on a foreign key to ``ServiceClient``)."""

    client = models.ForeignKey("django_arc.ServiceClient", on_delete=models.CASCADE)
    title = models.CharField(max_length=50)


class DecimalThing(models.Model):
    """A decimal primary key: the database answers it with its scale (``1.00``)."""

    number = models.DecimalField(primary_key=True, max_digits=6, decimal_places=2)


class RefHolder(models.Model):
    """Relations to rows whose primary key is text or a UUID, one and many (``many=True``)."""

    name = models.CharField(max_length=100)
    code = models.ForeignKey(
        CodeThing, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    thing = models.ForeignKey(
        UuidThing, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    number = models.ForeignKey(
        DecimalThing, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    codes = models.ManyToManyField(CodeThing, blank=True, related_name="+")
    things = models.ManyToManyField(UuidThing, blank=True, related_name="+")
    numbers = models.ManyToManyField(DecimalThing, blank=True, related_name="+")


# -- rev-paging: walking a whole list, page by page ---------------------------------------------


class Species(models.Model):
    """A parent whose ``Meta.ordering`` names a column that ties (``name``)."""

    name = models.CharField(max_length=50)

    class Meta:
        ordering = ["name"]


class Breed(Species):
    """Multi-table inheritance under an ordered parent: the primary key (``species_ptr``) is
    a relation to a model with ``Meta.ordering``."""

    size = models.IntegerField(default=0)


class PagedRow(models.Model):
    """A nullable column of each sortable type (ties and NULLs for the paging walks), an
    integer whose validators rows written past ``full_clean()`` may break, and a nullable
    relation to sort through."""

    label = models.CharField(max_length=20, null=True, blank=True)
    rank = models.IntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(9)]
    )
    amount = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    ratio = models.FloatField(null=True, blank=True)
    day = models.DateField(null=True, blank=True)
    at = models.DateTimeField(null=True, blank=True)
    clock = models.TimeField(null=True, blank=True)
    length = models.DurationField(null=True, blank=True)
    flag = models.BooleanField(null=True, blank=True)
    token = models.UUIDField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )


# -- rev-models: inheritance, many-to-many and odd field types under a tenant -------------------


class TenantShelf(models.Model):
    """A tenant's row that relations (one and many) point at."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    name = models.CharField(max_length=50)


class Catalog(models.Model):
    """A multi-table parent that holds the tenant, owner and soft-delete fields."""

    organization = models.ForeignKey(
        "shop.Organization", on_delete=models.CASCADE, null=True, blank=True
    )
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    title = models.CharField(max_length=100)
    deleted_at = models.DateTimeField(null=True, blank=True)


class Periodical(Catalog):
    """A multi-table child whose tenant is its parent's, with relations to tenant rows."""

    issue = models.IntegerField(default=1)
    shelf = models.ForeignKey(
        TenantShelf, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    shelves = models.ManyToManyField(TenantShelf, blank=True, related_name="periodicals")


class PeriodicalProxy(Periodical):
    class Meta:
        proxy = True


class Oddity(models.Model):
    """Field types whose values JSON does not spell directly, a conditional unique pair and
    a many-to-many through a model of its own."""

    KINDS = [("a", "Kind A"), ("b", "Kind B")]

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    data = models.JSONField(default=dict, blank=True)
    amount = models.DecimalField(max_digits=6, decimal_places=2, default=0)
    span = models.DurationField(null=True, blank=True)
    token = models.UUIDField(default=uuid.uuid4)
    blob = models.BinaryField(null=True, blank=True, editable=True)
    kind = models.CharField(max_length=10, choices=KINDS, default="a")
    code = models.CharField(max_length=20, blank=True, default="")
    serial = models.IntegerField(editable=False, default=0)
    touched = models.DateTimeField(auto_now=True)
    shelves = models.ManyToManyField(TenantShelf, through="Placement", blank=True, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "code"],
                condition=models.Q(kind="a"),
                name="uniq_oddity_code_of_kind_a",
            )
        ]


class Placement(models.Model):
    oddity = models.ForeignKey(Oddity, on_delete=models.CASCADE)
    shelf = models.ForeignKey(TenantShelf, on_delete=models.CASCADE)
    position = models.IntegerField(default=0)


# -- rev-files: file fields on a tenant's resource ---------------------------------------------


def attachment_templates() -> str:
    """The directory an ``Attachment``'s ``template`` is chosen from: a callable, so the
    migration names no absolute path of this checkout."""
    return os.path.join(os.path.dirname(__file__), "files")


class Attachment(models.Model):
    """A tenant's row with files: an upload, one the resource hides, and a path chosen among
    the files of a directory."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    name = models.CharField(max_length=50)
    file = models.FileField(upload_to="attachments/", blank=True)
    secret = models.FileField(upload_to="secrets/", blank=True)
    template = models.FilePathField(path=attachment_templates, blank=True, max_length=200)


class Lemma(models.Model):
    """A row whose field names are not ASCII (Python identifiers may be, and so Django's
    field names and columns): ``größe`` and ``wörter``."""

    größe = models.IntegerField(default=0)
    wörter = models.CharField(max_length=50, blank=True, default="")


class Rf48Scan(models.Model):
    """A second model storing files under the directory ``Attachment.file`` uses
    (rev-fixes48): a storage that overwrites may store an upload of either under a name a
    row of the other holds."""

    file = models.FileField(upload_to="attachments/", blank=True)


class Folder(models.Model):
    """rev-relations: a tree of a tenant's rows (a self-referential foreign key and a
    many-to-many to its own model), with an owner and a soft-delete column."""

    organization = models.ForeignKey(
        "shop.Organization", on_delete=models.CASCADE, null=True, blank=True
    )
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    name = models.CharField(max_length=50)
    deleted_at = models.DateTimeField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    links = models.ManyToManyField("self", blank=True, symmetrical=False, related_name="+")
    peers = models.ManyToManyField("self", blank=True)  # symmetrical, Django's default


class Draft(models.Model):
    """rev-relations: a copy of another draft, whose only self relation has no reverse name
    (``related_name="+"``) and cascades."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    name = models.CharField(max_length=50)
    origin = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )


class Rf51Sheet(models.Model):
    """rev-fixes51: a tenant's row reaching rows of its own model only through another
    model's (a sheet in a slot of another sheet): deleting a sheet cascades into its slots,
    and from them into the sheets they hold."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    name = models.CharField(max_length=50)
    slot = models.ForeignKey(
        "testapp.Rf51Slot", on_delete=models.CASCADE, null=True, blank=True, related_name="held"
    )


class Rf51Slot(models.Model):
    """rev-fixes51: a slot of a sheet (:class:`Rf51Sheet`), deleted with it."""

    sheet = models.ForeignKey(Rf51Sheet, on_delete=models.CASCADE, related_name="slots")


# -- rev-pgfields: PostgreSQL's structured fields --------------------------------------------


class Specimen(models.Model):
    """A tenant's row with ``django.contrib.postgres`` fields and a JSON one. The model
    loads on every backend (its resource's checks and schema need no database); its table
    is made on PostgreSQL only (``required_db_vendor``: SQLite has no array type). Its
    organization is not followed by deletes (``DO_NOTHING``, no constraint): Django's
    collector, deleting an organization on SQLite, queried the table that is not there."""

    organization = models.ForeignKey(
        "shop.Organization", on_delete=models.DO_NOTHING, db_constraint=False
    )
    name = models.CharField(max_length=50)
    #: case-insensitive, as ``CICharField`` was: a nondeterministic ICU collation
    label = models.CharField(max_length=50, blank=True, default="", db_collation="rev_pgfields_ci")
    numbers = ArrayField(models.IntegerField(), default=list, blank=True)
    words = ArrayField(models.CharField(max_length=20), default=list, blank=True)
    grid = ArrayField(ArrayField(models.IntegerField()), default=list, blank=True)
    attrs = HStoreField(default=dict, blank=True)
    span = IntegerRangeField(null=True, blank=True)
    window = DateTimeRangeField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        required_db_vendor = "postgresql"


# -- rev-softdelete: a slug unique among live rows only ---------------------------------------


class RevSdPage(models.Model):
    """A tenant's page whose slug is unique among its live rows only (the usual soft-delete
    constraint): a deleted page's slug may be reused, and restoring it may then clash."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    slug = models.SlugField(max_length=50)
    title = models.CharField(max_length=100, blank=True, default="")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug"],
                condition=models.Q(deleted_at__isnull=True),
                name="uniq_revsd_page_live_slug",
            )
        ]


class RevSdLiveManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class RevSdLivePage(RevSdPage):
    """:class:`RevSdPage` with the usual soft-delete managers: ``objects`` serves live rows
    only, ``all_objects`` every row."""

    objects = RevSdLiveManager()
    all_objects = models.Manager()  # noqa: DJ012 - the manager a SoftDelete resource needs

    class Meta:
        proxy = True


# -- fix-seen10a: a multi-table child with a unique column -------------------------------------


class Fs10aChippedDog(Animal):
    """Multi-table inheritance with a unique column on the child's table: a bulk create
    saves it row by row (its parent's row first), and a clash is the child's ``INSERT``'s,
    after its parent's row was written."""

    chip = models.CharField(max_length=20, unique=True)


# -- rev-numbers: the integer family at its limits, a decimal and a float ---------------------


class RevNumTally(models.Model):
    """One column of each integer width (and a positive 64-bit one), a decimal and a float:
    the values at and past each column's limits, on every backend."""

    small = models.SmallIntegerField(default=0)
    count = models.IntegerField(default=0)
    big = models.BigIntegerField(default=0)
    ubig = models.PositiveBigIntegerField(default=0)
    amount = models.DecimalField(max_digits=6, decimal_places=2, default=0)
    #: more digits than a binary float holds exactly (15 to 17)
    wide = models.DecimalField(max_digits=30, decimal_places=10, default=0)
    ratio = models.FloatField(default=0)


# -- rev-generic: generic relations and model inheritance under tenancy --------------------------


class RgComment(models.Model):
    """A tenant's comment on any row, comments included: a reply is a comment whose target
    is another comment, and deleting a comment deletes its replies (Django's collector
    follows a ``GenericRelation`` as a cascade)."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=50)
    replies = GenericRelation("self")


class RgPlace(models.Model):
    """A multi-table parent holding the tenant field its children inherit, their owner,
    and a place it is near (deleting a place deletes the places near it)."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    name = models.CharField(max_length=50)
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    near = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="nearby"
    )


class RgShop(RgPlace):
    """A multi-table child whose tenant field lives on its parent's table."""

    kind = models.CharField(max_length=20, default="")


# -- fix-generic2: a generic pair completed after validation ----------------------------------


def fg2_place_type() -> int:
    """The content type of a place: :class:`Fg2Note`'s ``content_type`` default."""
    return ContentType.objects.get_for_model(RgPlace).pk


class Fg2Note(models.Model):
    """A tenant's note on a row whose content type the model's default supplies (a place),
    a serializer leaving ``content_type`` out: the client sends only ``object_id``."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    owner = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True)
    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.CASCADE, default=fg2_place_type
    )
    object_id = models.PositiveIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=50)


# -- fix-seen12b: a table both collected and fast-deleted by one cascade ------------------------


class Fs12bNode(models.Model):
    """A tree (its cascade is judged), with notes on its rows and pins of notes to them."""

    name = models.CharField(max_length=50)
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )


class Fs12bNote(models.Model):
    """A note on a node: a multi-table parent, so Django's collector collects its rows."""

    node = models.ForeignKey(Fs12bNode, on_delete=models.CASCADE, related_name="notes")


class Fs12bPin(Fs12bNote):
    """A note pinned to a node: reached through its parent link its rows are fast-deleted,
    through ``pinned_on`` collected (a multi-table child is fast-deleted through its parent
    link only)."""

    pinned_on = models.ForeignKey(Fs12bNode, on_delete=models.CASCADE, related_name="pins")


# -- rev-fixes69: a tenant's rows keyed by text, a generic pair's target ---------------------


class Rf69Shelf(models.Model):
    """A tenant's row whose primary key is text the client chooses: a generic pair naming
    it is judged by a query comparing that text."""

    code = models.CharField(primary_key=True, max_length=50)
    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)


class KeyBadge(models.Model):
    """A tenant's badge pinned to at most one product (a one-to-one that is not the
    primary key): its column set through a bag is read by a relation DRF builds with a
    ``UniqueValidator``."""

    organization = models.ForeignKey("shop.Organization", on_delete=models.CASCADE)
    product = models.OneToOneField(
        "shop.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=50)
