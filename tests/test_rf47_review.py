"""rev-fixes47: review of the merges of rev-fixes42, rev-fixes44 and rev-fixes45."""

import pytest
from django.test import override_settings

from django_arc.presets.bulk import _present
from tests.testapp.models import Article


class Rf47LaggingReplica:
    """Reads of ``Article`` go to a replica (an alias no connection answers here: a replica
    behind the primary would answer a row just deleted as still there); writes to default."""

    def db_for_read(self, model, **hints):
        return "rf47-replica" if model is Article else None

    def db_for_write(self, model, **hints):
        return None


@pytest.mark.django_db
def test_rf47_bulk_present_reads_where_the_write_writes():
    kept = Article.objects.create(title="kept", slug="kept")
    gone = Article.objects.create(title="gone", slug="gone")
    gone_pk = gone.pk
    gone.delete()
    gone.pk = gone_pk
    with override_settings(DATABASE_ROUTERS=[Rf47LaggingReplica()]):
        assert _present(Article, [kept, gone]) == {kept.pk}
