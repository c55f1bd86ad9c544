"""``benchmarks/chaos.py``'s URLs: the benchmarks' own, plus ``/chaos/slow-items/``, whose
create writes its row, then sleeps inside the write's transaction, so a worker can be killed
with a keyed write in flight."""

import os
import time
from pathlib import Path

from django.urls import include, path

from benchmarks.benchapp.drf_views import FIELDS
from benchmarks.benchapp.models import Item
from benchmarks.urls import urlpatterns as bench_urlpatterns
from django_arc import Resource, ResourceSite
from django_arc import permissions as P

chaos = ResourceSite(name="chaos")


@chaos.register
class SlowItemResource(Resource):
    model = Item
    name = "slow-items"
    fields = FIELDS
    read_only_fields = ["id", "created_at"]
    permissions = {key: P.allow_public() for key in ("list", "get", "create", "update", "delete")}
    cache = False

    def after_create(self, request, instance):
        """With ``X-Chaos-Marker``: write this worker's pid to ``$ARC_CHAOS_PIDS/<marker>``
        (where the driver finds the worker to kill), then sleep ``X-Chaos-Sleep`` seconds."""
        marker = request.headers.get("X-Chaos-Marker", "")
        if marker.isalnum():
            (Path(os.environ["ARC_CHAOS_PIDS"]) / marker).write_text(str(os.getpid()))
            time.sleep(float(request.headers.get("X-Chaos-Sleep", "3")))


urlpatterns = [path("chaos/", include(chaos.urls)), *bench_urlpatterns]
