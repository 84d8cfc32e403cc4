from django.apps import AppConfig


class AccountingConfig(AppConfig):
    name = "accounting"
    verbose_name = "Accounting"

    def ready(self):
        from django.db.models.signals import post_save

        from .budgets import services as budgets
        from .models import ApiKey, Tenant

        # A budget set or changed gets its spend so far from the database at once, not at the next
        # reconciliation (a tenant that already spent this month is not let through meanwhile).
        post_save.connect(budgets.on_budget_saved, sender=Tenant, dispatch_uid="budget-saved-tenant")
        post_save.connect(budgets.on_budget_saved, sender=ApiKey, dispatch_uid="budget-saved-key")
