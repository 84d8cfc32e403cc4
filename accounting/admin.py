"""Django's admin autodiscovery imports `accounting.admin`: the pages live with their domains; importing
them here registers them."""

from .audit import admin as audit_admin
from .prices import admin as prices_admin
from .tenants import admin as tenants_admin
from .usage import admin as usage_admin

__all__ = ["audit_admin", "prices_admin", "tenants_admin", "usage_admin"]
