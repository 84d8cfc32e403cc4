from django.db import models
from django.utils import timezone


class Tenant(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class ApiKey(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=32, editable=False, db_index=True)
    active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix} ({self.tenant.slug})"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.active and self.tenant.active and (self.expires_at is None or self.expires_at > now)
