import django.contrib.postgres.fields
import django.contrib.postgres.fields.hstore
import django.contrib.postgres.fields.ranges
import django.db.models.deletion
from django.contrib.postgres.operations import CreateCollation, HStoreExtension
from django.db import migrations, models


class KeptHStoreExtension(HStoreExtension):
    """``CREATE EXTENSION hstore`` (a no-op off PostgreSQL), never dropped when unapplied:
    Django's own asks ``pg_extension`` on any database (an error on SQLite), and a dropped
    and re-created extension has a new type OID, which Django caches per connection."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass


class PostgresCollation(CreateCollation):
    """``CREATE COLLATION`` on PostgreSQL only: Django's skips other databases when
    applied, not when unapplied."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0002_page"),
        ("testapp", "0021_rev_relations"),
    ]

    operations = [
        # a no-op on SQLite; on PostgreSQL the hstore type the table's column needs
        KeptHStoreExtension(),
        # case-insensitive (CICharField's successor): LIKE refuses a nondeterministic one
        PostgresCollation(
            "rev_pgfields_ci", provider="icu", locale="und-u-ks-level2", deterministic=False
        ),
        migrations.CreateModel(
            name="Specimen",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=50)),
                (
                    "label",
                    models.CharField(
                        blank=True, db_collation="rev_pgfields_ci", default="", max_length=50
                    ),
                ),
                (
                    "numbers",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.IntegerField(), blank=True, default=list, size=None
                    ),
                ),
                (
                    "words",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=20),
                        blank=True,
                        default=list,
                        size=None,
                    ),
                ),
                (
                    "grid",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=django.contrib.postgres.fields.ArrayField(
                            base_field=models.IntegerField(), size=None
                        ),
                        blank=True,
                        default=list,
                        size=None,
                    ),
                ),
                (
                    "attrs",
                    django.contrib.postgres.fields.hstore.HStoreField(blank=True, default=dict),
                ),
                (
                    "span",
                    django.contrib.postgres.fields.ranges.IntegerRangeField(blank=True, null=True),
                ),
                (
                    "window",
                    django.contrib.postgres.fields.ranges.DateTimeRangeField(blank=True, null=True),
                ),
                ("data", models.JSONField(blank=True, default=dict)),
                (
                    "organization",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        to="shop.organization",
                    ),
                ),
            ],
            # no table on SQLite, which has no array type (Django skips a model whose
            # required_db_vendor is another database's)
            options={"required_db_vendor": "postgresql"},
        ),
    ]
