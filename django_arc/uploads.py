"""Files a write stored in storage whose row it did not keep are removed again.

A ``FileField`` stores its upload when the row is saved (``FileField.pre_save``), before the
``INSERT`` or ``UPDATE``, and storage is no part of the database's transaction: a write
refused after its save (an ``after_create`` hook raising ``ArcError``, a unique clash
answered 409, a preset's audit row failing) rolled the row back and left the file in
storage, one orphan per refused request, which no row names and nothing ever removes.

:func:`undo_files_with` wraps every write's transaction (``write_transaction()``): the
files saved inside it are noted (a ``pre_save`` receiver, connected at start-up for the
models that have a file field, :func:`watch_file_fields`), and when the outermost write
ends, each one that no kept row names is deleted from its storage. A row names a file
when it is saved (``post_save``) holding its name: the row that stored it, the same row
saved again after a caught refusal, or another row given that name. It is kept when that
save's ``on_commit`` callback ran (autocommit, or a transaction that committed) or is
still waiting for a transaction that is not marked for rollback (an outer one, which
commits later); a row whose save raised, or whose callback was discarded with a
rolled-back savepoint or transaction, is not. Judging at the outermost write's end, not
when a nested one raises, is what lets the project's code catch a refusal and save a row
naming the file: removed at once, the row committed naming a file no longer stored. A
write that succeeds inside a transaction rolled back later (``ATOMIC_REQUESTS`` failing
after the view) is not seen: its file stays (documented). A keyed request's writes commit
or roll back with its answer, so its claim is their outermost scope
(``IdempotentExecution``): a 5xx rolling them back after they ended removes their files too.
"""

from __future__ import annotations

import logging
import pathlib
import posixpath
from contextlib import nullcontext
from contextvars import ContextVar
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.storage import Storage
from django.db import DatabaseError, models, router, transaction
from django.db.models.signals import post_save, pre_save
from django.db.transaction import TransactionManagementError

from .logs import log_text
from .signals import arc_receiver

logger = logging.getLogger("django_arc.uploads")

#: the uploads saved in the write running now (``None``: no write is watched)
_writing: ContextVar[list[_Upload] | None] = ContextVar("arc_uploads", default=None)

#: the file fields of each watched model (set by :func:`watch_file_fields`)
_file_fields: dict[type, tuple[models.FileField, ...]] = {}


class _Upload:
    """A file a save stores (its ``FieldFile``), the databases whose rows were saved naming
    it since (``aliases``: each save registered :meth:`keep` on its ``on_commit``), and
    whether one of those rows committed (``kept``)."""

    __slots__ = ("file", "aliases", "rows", "kept")

    def __init__(self, file: Any) -> None:
        self.file = file
        self.aliases: set[str] = set()
        #: ``(alias, model, field name)`` of the save that stored it and of each row saved
        #: naming it since: asked before removal
        self.rows: set[tuple[str, type, str]] = set()
        self.kept = False

    def keep(self) -> None:
        self.kept = True


def watch_file_fields() -> None:
    """Note the uploads of every installed model with a file field (``FileField``,
    ``ImageField``): called once the apps are ready. Models without one get no receiver,
    so their saves cost nothing more."""
    for model in apps.get_models():
        fields = tuple(f for f in model._meta.concrete_fields if isinstance(f, models.FileField))
        if fields and model not in _file_fields:
            _file_fields[model] = fields
            uid = f"django_arc.uploads:{model._meta.label}"
            pre_save.connect(_before_save, sender=model, weak=False, dispatch_uid=uid)
            post_save.connect(_after_save, sender=model, weak=False, dispatch_uid=uid)


class undo_files_with:  # noqa: N801 - a context manager, named as it reads in a with
    """``write``, a write's transaction, as a context manager that deletes from storage the
    files saved inside it that no kept row names. Nested writes share one list of uploads,
    judged only when the outermost ends, whether it raised or not: a nested write's refusal
    may be caught and a row then saved naming its file (the same instance saved again, a
    new row given its name), which keeps it; one that nobody saves again goes then. Without
    a model with a file field it is ``write`` itself."""

    __slots__ = ("write", "uploads", "token")

    def __new__(cls, write: Any) -> Any:
        if not _file_fields:
            return write
        return super().__new__(cls)

    def __init__(self, write: Any) -> None:
        self.write = write

    def __enter__(self) -> Any:
        # ``None``: nested in another write, which judges the files when it ends
        self.uploads = [] if _writing.get() is None else None
        self.token = _writing.set(self.uploads) if self.uploads is not None else None
        try:
            return self.write.__enter__()
        except BaseException:
            self._end()
            raise

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> Any:
        try:
            return self.write.__exit__(exc_type, exc, traceback)
        finally:
            self._end()

    def _end(self) -> None:
        if self.token is None:
            return
        _writing.reset(self.token)
        uploads, self.uploads = self.uploads, None
        _remove_unkept(uploads)


def _written(sender: type, update_fields: Any) -> list[models.FileField]:
    """The file fields of ``sender`` a save writes: all, or those its ``update_fields``
    name (a field it leaves out is neither stored nor written)."""
    fields = _file_fields.get(sender, ())
    return [f for f in fields if update_fields is None or f.name in update_fields]


@arc_receiver
def _before_save(sender: type, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    uploads = _writing.get()
    if uploads is None or raw:
        return
    for field in _written(sender, kwargs.get("update_fields")):
        file = getattr(instance, field.attname)
        if file and not file._committed and all(u.file is not file for u in uploads):
            _unheld_name(sender, field, instance, file, kwargs.get("using") or "default")
            upload = _Upload(file)  # stored by this save
            upload.rows.add((kwargs.get("using") or "default", sender, field.name))
            uploads.append(upload)


#: the attributes by which a storage says it writes over a name taken rather than choose
#: another: django-storages' S3 and Google Cloud (``file_overwrite``), its Azure
#: (``overwrite_files``), Django's ``FileSystemStorage(allow_overwrite=True)`` (5.1+)
_OVERWRITE_FLAGS = ("file_overwrite", "overwrite_files", "_allow_overwrite")


#: the 400 of an upload whose name a row holds, on a storage that overwrites, when no other
#: name for it fits the field
_NO_NAME_FITS = (
    "A file of this name is already stored, and no other name for it fits in "
    "%(max_length)s characters."
)


def _overwrites(storage: Any) -> bool:
    return any(getattr(storage, flag, False) is True for flag in _OVERWRITE_FLAGS)


def _unheld_name(
    model: type, field: models.FileField, instance: Any, file: Any, alias: str
) -> None:
    """Give ``file``, an upload about to be stored (the ``pre_save`` signal comes before
    the field's ``pre_save``, which stores it), another name when its storage writes over a
    name taken and a row of ``model`` already names the one it would get, or a file is
    stored under it (a row of another model may name it). Stored there, the
    upload replaced that row's file's bytes at once, before the write was judged: a
    refused write (its row rolled back) left the other row naming the refused upload's
    bytes, and an accepted one replaced a file another row still shows. A storage that
    renames (Django's default) picks a free name itself; one that overwrites costs one
    query per upload. The name is Django's alternative (``name_<random>.ext``), kept within
    the field's ``max_length``; when none fits there, the write is refused (a Django
    ``ValidationError`` naming the field, the API's 400)."""
    storage = field.storage
    if not _overwrites(storage):
        return
    held = model._base_manager.using(alias)
    name = field.generate_filename(instance, file.name)
    # a file stored there already: another model's row may name it (two models given one
    # ``upload_to``), which this model's table cannot tell
    if not _stored(storage, name, unknown=True) and not held.filter(**{field.name: name}).exists():
        return
    directory, base = posixpath.split(str(file.name).replace("\\", "/"))
    ext = "".join(pathlib.PurePosixPath(base).suffixes)
    root = base.removesuffix(ext) if ext else base

    def under(candidate: str) -> str:
        # the upload's own name keeps its directory (a hook's ``sub/report.pdf``): the
        # alternative is measured and asked about as it will be stored
        return posixpath.join(directory, candidate) if directory else candidate

    for _ in range(100):
        # the base class's alternative: an overwriting storage's own may be the name itself
        candidate = Storage.get_alternative_name(storage, root, ext)
        over = len(field.generate_filename(instance, under(candidate))) - (
            field.max_length or 10**9
        )
        if over > 0:
            if len(root) <= over:
                # no shorter name holds it: stored as named, it replaced the file of the
                # row holding the name (an overwriting storage's own alternative is the
                # name itself), so the upload is refused, before anything is stored
                raise DjangoValidationError(
                    {field.name: [_NO_NAME_FITS % {"max_length": field.max_length}]},
                    code="max_length",
                )
            candidate = Storage.get_alternative_name(storage, root[:-over], ext)
        full = field.generate_filename(instance, under(candidate))
        if full == name:
            # an ``upload_to`` callable naming the file by its row alone gives every
            # alternative this name: none can be found (asked 100 times, 200 round trips)
            return
        if (
            not _stored(storage, full, unknown=False)
            and not held.filter(**{field.name: full}).exists()
        ):
            file.name = under(candidate)
            return


def _stored(storage: Any, name: str, *, unknown: bool) -> bool:
    """Whether ``storage`` holds a file under ``name``; ``unknown`` when it cannot say: its
    ``exists`` raising (an S3 key allowed to put objects but not to read them answers a
    ``HeadObject`` with 403) made every upload on such a storage a 500, where the storage
    stores it without looking. The upload's own name counts as taken then (another name
    overwrites nothing); a random alternative as free (a clash needs the same 7 random
    characters)."""
    try:
        return bool(storage.exists(name))
    except Exception:  # noqa: BLE001 - a storage's client error: the upload goes on
        logger.warning(
            "could not ask the storage whether %s is taken", log_text(name), exc_info=True
        )
        return unknown


@arc_receiver
def _after_save(sender: type, instance: Any, **kwargs: Any) -> None:
    """A row saved naming a file stored in this write keeps it if the row is kept: any row
    (the one that stored it, or another given its name), saved as many times as it is."""
    uploads = _writing.get()
    if not uploads:
        return
    using = kwargs.get("using") or "default"
    for field in _written(sender, kwargs.get("update_fields")):
        # read without the descriptor: a deferred field was not written (and is not read)
        value = instance.__dict__.get(field.attname)
        named = value if isinstance(value, str) else getattr(value, "name", None)
        if not named:
            continue
        for upload in uploads:
            if upload.file._committed and upload.file.name == named:
                upload.aliases.add(using)
                upload.rows.add((using, sender, field.name))
                try:
                    transaction.on_commit(upload.keep, using=using)
                except TransactionManagementError:
                    # manual transaction management (autocommit off, no atomic block): who
                    # commits is the project's to say, so the file is kept
                    upload.keep()


def _kept(upload: _Upload) -> bool:
    """Whether a row that names ``upload`` stands or will: the commit callback of one of
    its saves ran, or still waits for a transaction that is not marked for rollback. A
    callback of a savepoint or transaction rolled back is dropped from ``run_on_commit``
    (Django 4.2+ keeps ``(savepoint ids, callback, robust)`` there)."""
    if upload.kept:
        return True
    for alias in upload.aliases:
        connection = transaction.get_connection(alias)
        if not connection.needs_rollback and any(
            entry[1] == upload.keep for entry in connection.run_on_commit
        ):
            return True
    return _still_named(upload)


def _still_named(upload: _Upload) -> bool:
    """Whether a row holds ``upload``'s name in a table now, although no commit callback of
    the saves naming it ran or waits: a callback the project registered earlier on the same
    commit raised (Django then runs none of the callbacks after it), so the commit was
    missed while the row stands; or a storage that overwrites (S3's default) stored a
    refused upload under the name a row committed before holds, whose file it would
    remove. That row may be any model's whose file field stores in the same storage (two
    models given one ``upload_to``), not only the model that stored the upload: each such
    field is asked (:func:`_naming_fields`), one query each, only of a connection able to
    answer (none waiting for a rollback); a refused write's file, whose row rolled back, is
    found in no row and goes."""
    for alias, model, name in _naming_fields(upload):
        connection = transaction.get_connection(alias)
        if connection.needs_rollback:
            continue
        # in a savepoint within a transaction: a table this database lacks (a model
        # routed elsewhere, unmanaged) must not abort the transaction still open
        inner = transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext()
        try:
            with inner:
                named = model._base_manager.using(alias).filter(**{name: upload.file.name})
                if named.exists():
                    return True
        except (DatabaseError, TransactionManagementError):
            continue
    return False


def _naming_fields(upload: _Upload) -> list[tuple[str, type, str]]:
    """``(alias, model, field name)`` of each column that may hold ``upload``'s name: those
    of the saves that stored or named it (on the database they wrote), then every watched
    file field storing in the same storage, on its model's ``db_for_write`` (where a row
    just committed is read). One entry per table and column: a proxy's or a child's
    inherited field is its concrete model's."""
    storage = upload.file.storage
    wanted = [(alias, model._meta.concrete_model, name) for alias, model, name in upload.rows]
    for fields in _file_fields.values():
        for field in fields:
            if _same_storage(field.storage, storage):
                owner = field.model._meta.concrete_model
                wanted.append((router.db_for_write(owner), owner, field.name))
    return list(dict.fromkeys(wanted))


def _same_storage(one: Any, other: Any) -> bool:
    """Whether two storages store in one place: the same object (``default_storage``), or
    built alike (a class and arguments ``deconstruct()`` gives)."""
    if one is other:
        return True
    try:
        return bool(one.deconstruct() == other.deconstruct())
    except Exception:  # noqa: BLE001 - a storage that cannot say is asked about: kept is safe
        return True


def _remove_unkept(uploads: list[_Upload]) -> None:
    for upload in uploads:
        file = upload.file
        if not file._committed or not file.name or _kept(upload):
            continue
        try:
            file.storage.delete(file.name)
        except Exception:  # noqa: BLE001 - the write's own error is the answer
            logger.warning(
                "could not remove %s, stored by a write and named by no row it kept",
                log_text(file.name),
                exc_info=True,
            )
