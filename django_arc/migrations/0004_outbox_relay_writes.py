"""Fewer index writes per relayed event.

* ``event_id`` stays unique through a named constraint instead of ``unique=True``, which on
  PostgreSQL also built a ``varchar_pattern_ops`` index that no query uses and that every
  non-HOT update of a row had to maintain.
* On PostgreSQL, ``fillfactor=50`` leaves room on each page for the lease update of every
  claimed row to be a HOT update (no index entries). It applies to pages written from now on;
  ``VACUUM FULL`` (or ``pg_repack``) rewrites existing ones.
"""

from django.db import migrations, models


def _set_fillfactor(percent: int):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = apps.get_model("django_arc", "OutboxEvent")._meta.db_table
        schema_editor.execute(
            f"ALTER TABLE {schema_editor.quote_name(table)} SET (fillfactor = {percent})"
        )

    return apply


class Migration(migrations.Migration):
    dependencies = [("django_arc", "0003_outbox_event_json_encoder")]

    operations = [
        migrations.AlterField(
            model_name="outboxevent",
            name="event_id",
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name="outboxevent",
            constraint=models.UniqueConstraint(
                fields=("event_id",), name="arc_outbox_unique_event_id"
            ),
        ),
        # the model's name for the routers' allow_migrate: one keeping the outbox's table off a
        # database (by model, as Django's docs route) must keep this off it too, or it alters a
        # table that was never created there
        migrations.RunPython(
            _set_fillfactor(50), _set_fillfactor(100), hints={"model_name": "outboxevent"}
        ),
    ]
