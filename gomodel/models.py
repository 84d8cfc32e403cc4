# The audit trail moved to accounting (the domain services that write it live there); re-exported for
# older imports.
from accounting.models import AuditEntry  # noqa: F401
