"""Settings, read from the environment (12-factor). See .env.example for every variable."""

import importlib.util
import os
import sys
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from gomodel import secrets_files

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("GOMODEL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


DEBUG = env_bool("DJANGO_DEBUG", False)
# No DJANGO_SECRET_KEY: a random one created once under var/ (0600) and reused. The old public default
# is refused outside DEBUG: anyone could forge sessions with it.
PUBLIC_DEFAULT_SECRET_KEY = "dev-insecure-change-me-gomodel"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets_files.secret_key(VAR_DIR)
if SECRET_KEY == PUBLIC_DEFAULT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is the public default; set a random one (or unset it: a random key is then "
        "created under GOMODEL_VAR_DIR).")
# Local names only unless set: a Host header naming anything else is refused (DEBUG: any host).
ALLOWED_HOSTS = [h.strip() for h in os.environ.get(
    "DJANGO_ALLOWED_HOSTS", "*" if DEBUG else "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
# Served over HTTPS (directly or behind a TLS-terminating proxy)? GOMODEL_HTTPS=1 turns on secure cookies,
# the redirect to https and HSTS for the admin, dashboard and management API; each can be set on its own.
# /v1 and /health never pass through these (gomodel/asgi.py).
GOMODEL_HTTPS = env_bool("GOMODEL_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", GOMODEL_HTTPS)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", GOMODEL_HTTPS)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", GOMODEL_HTTPS)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if GOMODEL_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", GOMODEL_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (and strips it from clients).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO") else None

INSTALLED_APPS = [
    "django.contrib.admin.apps.SimpleAdminConfig",  # admin.autodiscover() runs in gomodel/urls.py
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "gomodel",
    "providers",
    "accounting",
]
# `manage.py runserver` serves ASGI (the dashboard's websockets) through daphne, which must come first.
# Only then: daphne's app imports Twisted (~20 MB) into every process that sets Django up.
if sys.argv[1:2] == ["runserver"] and importlib.util.find_spec("daphne"):
    INSTALLED_APPS.insert(0, "daphne")

# Only the Django half (admin, dashboard) goes through these; /v1 is served by gomodel.gateway
# without any middleware (see gomodel/asgi.py).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gomodel.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
ASGI_APPLICATION = "gomodel.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'gomodel.sqlite3'}",
        # 0 by default: under ASGI Django runs each admin/API request's sync code in a thread of its own,
        # so a persistent connection would outlive its thread (Django's docs advise 0 for ASGI).
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the gateway read while the usage worker writes.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;"
    )
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

PORT = env_int("PORT", 8080)
GOMODEL_MASTER_KEY = os.environ.get("GOMODEL_MASTER_KEY", "")
# Fernet keys for provider keys at rest, newest first: the first encrypts, all decrypt (MultiFernet), and
# `manage.py rotate_provider_keys` re-encrypts every stored key with the first. Separate from SECRET_KEY.
# GOMODEL_ENCRYPTION_KEY (one key) is still read; else a key is created once in var/encryption_keys.
GOMODEL_ENCRYPTION_KEYS = secrets_files.parse_keys(
    os.environ.get("GOMODEL_ENCRYPTION_KEYS") or os.environ.get("GOMODEL_ENCRYPTION_KEY", "")
) or secrets_files.encryption_keys(VAR_DIR)
for _key in GOMODEL_ENCRYPTION_KEYS:
    try:
        Fernet(_key.encode())
    except ValueError:
        raise ImproperlyConfigured("GOMODEL_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                                   "(32 url-safe base64-encoded bytes).") from None
BODY_SIZE_LIMIT = env_int("BODY_SIZE_LIMIT", 10 * 1024 * 1024)
# The same for everything Django serves (admin, dashboard, management API): 413 as the body streams in.
DJANGO_BODY_SIZE_LIMIT = env_int("DJANGO_BODY_SIZE_LIMIT", 2_621_440)  # 2.5 MiB, Django's own form-data default
# A /v1 JSON body nested deeper, or holding more values and containers, is a 400 before it is parsed.
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 64)
JSON_MAX_ITEMS = env_int("JSON_MAX_ITEMS", 100_000)
# Upstream timeouts (seconds): connecting, and the whole wait for a response / next stream bytes.
UPSTREAM_CONNECT_TIMEOUT = env_float("UPSTREAM_CONNECT_TIMEOUT", 10.0)
UPSTREAM_TIMEOUT = env_float("UPSTREAM_TIMEOUT", 600.0)
# What an upstream may cost at most (504/502 past it; see the README's error table).
UPSTREAM_DEADLINE = env_float("UPSTREAM_DEADLINE", 1800.0)  # one call in all, a stream's last byte included
UPSTREAM_POOL_TIMEOUT = env_float("UPSTREAM_POOL_TIMEOUT", 10.0)  # waiting for a free connection
UPSTREAM_MAX_CONNECTIONS = env_int("UPSTREAM_MAX_CONNECTIONS", 1000)  # per gateway process
UPSTREAM_MAX_BODY_BYTES = env_int("UPSTREAM_MAX_BODY_BYTES", 64 * 1024 * 1024)  # a non-streaming answer
UPSTREAM_MAX_SSE_EVENT_BYTES = env_int("UPSTREAM_MAX_SSE_EVENT_BYTES", 8 * 1024 * 1024)  # one stream line or event
MODEL_REFRESH_INTERVAL = env_float("MODEL_REFRESH_INTERVAL", 300.0)
# How long an authenticated key stays in the in-process cache without a Redis invalidation.
AUTH_CACHE_TTL = env_float("AUTH_CACHE_TTL", 60.0)
USAGE_STREAM = os.environ.get("USAGE_STREAM", "gomodel:usage")
USAGE_SPOOL_PATH = Path(os.environ.get("USAGE_SPOOL_PATH", VAR_DIR / "usage-spool.jsonl"))
# Beyond this the spool drops events (an error log line and gomodel_usage_events_dropped say so).
USAGE_SPOOL_MAX_BYTES = env_int("USAGE_SPOOL_MAX_BYTES", 256 * 1024 * 1024)
# The gateway's usage writer (accounting/usage.py) sends one pipeline per batch: when USAGE_WRITE_BATCH events
# wait, or USAGE_WRITE_INTERVAL seconds after the first of them. Past USAGE_WRITE_QUEUE_MAX waiting events (Redis
# slow) requests wait for room before they finish. (USAGE_FLUSH_INTERVAL and USAGE_BATCH_SIZE are the drain's.)
USAGE_WRITE_INTERVAL = env_float("USAGE_WRITE_INTERVAL", 0.002)
USAGE_WRITE_BATCH = env_int("USAGE_WRITE_BATCH", 256)
USAGE_WRITE_QUEUE_MAX = env_int("USAGE_WRITE_QUEUE_MAX", 10_000)
INVALIDATION_CHANNEL = os.environ.get("INVALIDATION_CHANNEL", "gomodel:invalidate")
# Rate limits (gomodel/gateway/limits.py): what to do when Redis does not answer within LIMITS_REDIS_TIMEOUT
# seconds ("open": serve and log, "closed": 503), the tokens a request without max_tokens reserves, how long a
# concurrency slot outlives a dead process, and the Redis key prefix of the counters.
LIMITS_FAIL_MODE = os.environ.get("LIMITS_FAIL_MODE", "open").strip().lower()
if LIMITS_FAIL_MODE not in ("open", "closed"):
    raise ValueError(f"LIMITS_FAIL_MODE must be 'open' or 'closed', not {LIMITS_FAIL_MODE!r}")
LIMITS_REDIS_TIMEOUT = env_float("LIMITS_REDIS_TIMEOUT", 0.5)
LIMITS_DEFAULT_MAX_TOKENS = env_int("LIMITS_DEFAULT_MAX_TOKENS", 1024)
LIMITS_SLOT_TTL = env_float("LIMITS_SLOT_TTL", 60.0)
LIMITS_PREFIX = os.environ.get("LIMITS_PREFIX", "gomodel:rl")
# The response cache (gomodel/gateway/response_cache.py; on per tenant or key, off by default): its Redis (default
# REDIS_URL; another URL can name another DB), key prefix, default TTL and largest entry (a tenant or key may set its
# own), and how long a lookup may take before it counts as a miss.
RESPONSE_CACHE_REDIS_URL = os.environ.get("RESPONSE_CACHE_REDIS_URL", "").strip() or REDIS_URL
RESPONSE_CACHE_PREFIX = os.environ.get("RESPONSE_CACHE_PREFIX", "gomodel:cache")
RESPONSE_CACHE_TTL = env_int("RESPONSE_CACHE_TTL", 3600)
RESPONSE_CACHE_MAX_ENTRY_BYTES = env_int("RESPONSE_CACHE_MAX_ENTRY_BYTES", 1024 * 1024)
RESPONSE_CACHE_TIMEOUT = env_float("RESPONSE_CACHE_TIMEOUT", 0.5)
# Provider prompt-cache planning (gomodel/gateway/prompt_cache.py): Anthropic cache_control breakpoints, OpenAI
# prompt_cache_key, when the client set none and the stable prefix is long enough. On by default.
PROMPT_CACHE_PLANNING = env_bool("PROMPT_CACHE_PLANNING", True)
# Coalescing across replicas: the lease a leading call holds (renewed every third of it while it runs).
RESPONSE_CACHE_LEASE_SECONDS = env_float("RESPONSE_CACHE_LEASE_SECONDS", 10.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}},
}

# Routing resilience (non-streaming retries, failover, virtual models).
RETRY_MAX = env_int("RETRY_MAX", 2)
RETRY_BASE_DELAY = env_float("RETRY_BASE_DELAY", 0.25)
RETRY_MAX_WAIT = env_float("RETRY_MAX_WAIT", 10.0)  # a longer Retry-After is returned to the client instead
FAILOVER_RULES_JSON = os.environ.get("FAILOVER_RULES_JSON", "")
# VIRTUAL_MODELS (providers/env_sync.py, at sync) and ANTHROPIC_DEFAULT_MAX_TOKENS (the Anthropic adapter, per
# request) are read from the environment where they are used; see .env.example.

# Management API (/api/v1/, Django REST framework) and the OpenAPI document (/openapi.json).
INSTALLED_APPS += ["rest_framework.authtoken", "drf_spectacular", "django_filters"]
REST_FRAMEWORK = {
    # GOMODEL_MASTER_KEY or a staff user's DRF token, both as "Authorization: Bearer …" (or "Token …").
    "DEFAULT_AUTHENTICATION_CLASSES": ["gomodel.api.authentication.ManagementAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["gomodel.api.permissions.IsGatewayAdmin"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "gomodel.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "gomodel.api.openapi.ManagementAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "GoModel API",
    "DESCRIPTION": "OpenAI-compatible gateway (/v1) and its management API (/api/v1).",
    "VERSION": "1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"ProviderTypeEnum": "providers.catalogue.PROVIDER_CHOICES",
                            "BudgetPeriodEnum": "accounting.models.BudgetPeriod"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gomodel.api.openapi_v1.add_gateway_paths",
    ],
}

# Usage accounting (accounting/drain.py): the Celery beat drain of the usage stream, prices, retention.
USAGE_CONSUMER_GROUP = os.environ.get("USAGE_CONSUMER_GROUP", "gomodel-usage")
USAGE_FLUSH_INTERVAL = env_float("USAGE_FLUSH_INTERVAL", 5.0)  # seconds between two drains
USAGE_BATCH_SIZE = env_int("USAGE_BATCH_SIZE", 1000)  # stream entries per DB transaction
USAGE_CLAIM_IDLE_MS = env_int("USAGE_CLAIM_IDLE_MS", 60_000)  # pending this long on a dead worker → reclaimed
USAGE_DRAIN_LOCK_TTL = env_float("USAGE_DRAIN_LOCK_TTL", 60.0)  # the one-drain-at-a-time lock, refreshed per batch
USAGE_DRAIN_MAX_SECONDS = env_float("USAGE_DRAIN_MAX_SECONDS", 30.0)  # one drain run stops after this long
USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 90)  # raw UsageEvent rows; roll-ups are kept
# Stored /v1/responses answers (store=true, the default) are deleted this many days after they were made.
RESPONSES_RETENTION_DAYS = env_int("RESPONSES_RETENTION_DAYS", 30)
USAGE_API_SCAN_LIMIT = env_int("USAGE_API_SCAN_LIMIT", 20_000)  # /v1/usage reads at most this many undrained events

# Budgets (accounting/budgets.py, gomodel/gateway/budgets.py).
BUDGET_SOFT_LIMIT_PERCENT = env_int("BUDGET_SOFT_LIMIT_PERCENT", 80)  # webhook once per period from this share
BUDGET_WEBHOOK_URL = os.environ.get("BUDGET_WEBHOOK_URL", "")  # empty: no webhook (the admin still marks it)
BUDGET_WEBHOOK_SECRET = os.environ.get("BUDGET_WEBHOOK_SECRET", "")  # HMAC-SHA256 key of X-GoModel-Signature
BUDGET_RECONCILE_INTERVAL = env_float("BUDGET_RECONCILE_INTERVAL", 60.0)  # seconds between spend reconciliations
# GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>" (or the master key) unless METRICS_PUBLIC=1.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)
# Admin and usage dashboard (gomodel/dashboard/): the app (its static files), static files served by the
# ASGI app itself (`make run` runs no collectstatic: WhiteNoise serves from the apps' static folders),
# and how many raw events one dashboard view reads at most for its latency percentiles.
INSTALLED_APPS += ["gomodel.dashboard"]
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "gomodel.dashboard.staticfiles.StaticFilesMiddleware")  # WhiteNoise, ASGI-friendly
WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic
WHITENOISE_AUTOREFRESH = DEBUG
DASHBOARD_SCAN_LIMIT = env_int("DASHBOARD_SCAN_LIMIT", 50_000)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise also serves a collectstatic there, if one was run

# The placeholders of .env.production.example are public: refuse them as real secrets (outside DEBUG).
if not DEBUG:
    for _name, _value in [("DJANGO_SECRET_KEY", SECRET_KEY), ("GOMODEL_MASTER_KEY", GOMODEL_MASTER_KEY),
                          ("METRICS_TOKEN", METRICS_TOKEN), *[("GOMODEL_ENCRYPTION_KEYS", k) for k in
                                                             GOMODEL_ENCRYPTION_KEYS]]:
        if _value.upper().replace("-", "").startswith("CHANGEME"):
            raise ImproperlyConfigured(f"{_name} is still the placeholder of .env.production.example; set a "
                                       "random value.")
