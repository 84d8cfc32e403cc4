from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "gomodel.dashboard"
    label = "dashboard"
    verbose_name = "Usage dashboard"
