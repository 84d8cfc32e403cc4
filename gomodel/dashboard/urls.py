from django.urls import path, re_path

from . import views

app_name = "dashboard"
urlpatterns = [
    path("", views.index, name="index"),
    path("data.json", views.data, name="data"),
    path("statements/", views.statements, name="statements"),
    re_path(r"^statements/(?P<slug>[-a-zA-Z0-9_]{1,64})/(?P<month>\d{4}-\d{2})\.csv$", views.statement_csv,
            name="statement_csv"),
]
