from django.contrib import admin
from django.urls import include, path

from django_arc import arc

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(arc.urls)),
]
