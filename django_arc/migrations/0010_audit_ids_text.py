from django.db import migrations, models


class Migration(migrations.Migration):
    """The audit log's user id and object id as text: ``str(user.pk)`` of a user model with
    a long text primary key was past ``varchar(64)``, an object id given to
    ``audit.custom()`` past ``varchar(255)``, and PostgreSQL refused the row (the audited
    write's 500). On PostgreSQL ``varchar`` to ``text`` rewrites neither the table nor its
    indexes."""

    dependencies = [
        ("django_arc", "0009_idempotency_key_constraint"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditlog",
            name="actor_user_id",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="auditlog",
            name="object_id",
            field=models.TextField(blank=True, default=""),
        ),
    ]
