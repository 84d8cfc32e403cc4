from django.apps import AppConfig


class GomodelConfig(AppConfig):
    name = "gomodel"
    verbose_name = "GoModel"
