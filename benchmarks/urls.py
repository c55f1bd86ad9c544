from django.urls import include, path
from rest_framework.routers import DefaultRouter

from benchmarks.benchapp.drf_views import ItemViewSet
from benchmarks.benchapp.resources import access, bench
from benchmarks.benchapp.views import DrfNoop, noop

router = DefaultRouter()
router.register("items", ItemViewSet, basename="drf-items")

urlpatterns = [
    path("drf/", include(router.urls)),
    path("arc/", include(bench.urls)),
    path("access/", include(access.urls)),
    path("noop/", noop),
    path("drf-noop/", DrfNoop.as_view()),
]
