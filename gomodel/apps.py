from django.apps import AppConfig


class GomodelConfig(AppConfig):
    name = "gomodel"
    verbose_name = "GoModel"

    def ready(self):
        # The gateway listens to the apps below it (keys, tenants, provider configs); they never import it.
        from gomodel.gateway import invalidation

        invalidation.connect()
