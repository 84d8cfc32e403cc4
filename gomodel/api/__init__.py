"""The management REST API under /api/v1/ (Django REST framework) and GET /openapi.json.

Credentials: `Authorization: Bearer <GOMODEL_MASTER_KEY>` or `Authorization: Bearer <staff token>`
(gm_staff_…: issued in admin under "Staff API tokens" or by `manage.py create_staff_token`, shown once,
stored hashed, expiring after STAFF_TOKEN_DAYS; `Token <staff token>` works too). No credentials, or
unknown, expired or revoked ones (also a revoked tenant key): 401 with `WWW-Authenticate: Bearer`. A
valid tenant API key (sk_gom_…) or a token of a user who is not staff is recognised and refused: 403, saying why.

    tenants    GET POST /tenants/   GET PUT PATCH /tenants/{id}/   POST /tenants/{id}/deactivate/
               GET POST /tenants/{id}/keys/   GET /tenants/{id}/usage/?start=&end=
    keys       GET POST /keys/ (?tenant=&tenant_slug=&active=)   GET PUT PATCH /keys/{id}/
               POST /keys/{id}/revoke/
    providers  GET POST /providers/   GET PUT PATCH /providers/{id}/   POST /providers/{id}/disable/
               POST /providers/{id}/test/
    prices     GET POST /prices/   GET PUT PATCH /prices/{id}/
    audit      GET /audit/   GET /audit/{id}/

Design: nothing is deleted through the API (DELETE is 405): a tenant is deactivated, a key revoked,
a provider disabled, and usage rows and the audit trail keep pointing at them. A key's plaintext is
in the 201 answer that issued it and nowhere else (not in later answers, logs or audit rows); a
provider's key is write-only and comes back redacted. Every write goes through a domain service of
accounting.<domain>.services (from DRF's perform_create/perform_update), which writes the change and its
AuditEntry in one transaction; saving through the ORM clears the gateway's caches in every process
(gomodel.gateway.invalidation). Staff tokens are held to the user's Django model permissions
(permissions.py). Lists are paginated with `?limit=&offset=` and filtered with django-filter
(filters.py; a bad value is a 400 in DRF's shape). Tenants are named by id or slug.
"""
