"""Settings, read from the environment (12-factor). See .env.example for every variable."""

import importlib.util
import os
import sys
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from gomodel import dotenv, secrets_files

BASE_DIR = Path(__file__).resolve().parent.parent
dotenv.load()  # ./.env (or GOMODEL_ENV_FILE): its variables that the real environment does not set
# var/ holds the SQLite database (sessions, stored prompts, staff tokens), the usage spool and the generated
# secrets: only this user may enter it (0700), and the database file is created 0600.
VAR_DIR = Path(os.environ.get("GOMODEL_VAR_DIR") or BASE_DIR / "var")
secrets_files.private_dir(VAR_DIR)


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
    # SQLite creates its -wal and -shm files with the database file's mode: 0600 for all three.
    secrets_files.private_file(DATABASES["default"]["NAME"])
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
# The provider config /v1/files uploads go to when the form names none (its `provider` field).
FILES_PROVIDER = os.environ.get("FILES_PROVIDER", "openai").strip() or "openai"
# /v1/batches: how often the poller asks providers about unfinished batches, and the batch price as a share of
# the standard one (OpenAI and Anthropic charge half).
BATCH_POLL_INTERVAL = env_float("BATCH_POLL_INTERVAL", 60.0)
BATCH_PRICE_FACTOR = env_float("BATCH_PRICE_FACTOR", 0.5)
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
# The upstream client (gomodel/gateway/upstream_client/): the gateway's own ("loop") or aiohttp's ("aiohttp").
UPSTREAM_CLIENT = os.environ.get("UPSTREAM_CLIENT", "loop").strip().lower()
if UPSTREAM_CLIENT not in ("loop", "aiohttp"):
    raise ImproperlyConfigured(f"UPSTREAM_CLIENT must be 'loop' or 'aiohttp', not {UPSTREAM_CLIENT!r}")
# Seconds the upstream may take none of a request's bytes while the socket's buffer is full (504).
UPSTREAM_WRITE_TIMEOUT = env_float("UPSTREAM_WRITE_TIMEOUT", 30.0)
# Egress proxy for upstream calls (either case, as curl reads them): HTTPS_PROXY for https upstreams (CONNECT),
# HTTP_PROXY for http ones, NO_PROXY the hosts reached directly (comma-separated: names, .suffixes, IPs, CIDRs, *).
HTTPS_PROXY = os.environ.get("https_proxy") or os.environ.get("HTTPS_PROXY", "")
HTTP_PROXY = os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY", "")
NO_PROXY = os.environ.get("no_proxy") or os.environ.get("NO_PROXY", "")
for _name in ("HTTPS_PROXY", "HTTP_PROXY"):
    _proxy = globals()[_name]
    if _proxy and not (_proxy.lower().startswith("http://") or "://" not in _proxy):
        raise ImproperlyConfigured(f"{_name} must be an http:// proxy URL (TLS to the proxy itself is not supported)")
# Private CAs and mutual TLS for upstream calls: a PEM bundle trusted besides the system's and certifi's roots
# (or instead of them, UPSTREAM_CA_BUNDLE_ONLY=true), and a client certificate (PEM; its key in it or apart).
UPSTREAM_CA_BUNDLE = os.environ.get("UPSTREAM_CA_BUNDLE", "")
UPSTREAM_CA_BUNDLE_ONLY = env_bool("UPSTREAM_CA_BUNDLE_ONLY", False)
UPSTREAM_CLIENT_CERT = os.environ.get("UPSTREAM_CLIENT_CERT", "")
UPSTREAM_CLIENT_KEY = os.environ.get("UPSTREAM_CLIENT_KEY", "")
for _name in ("UPSTREAM_CA_BUNDLE", "UPSTREAM_CLIENT_CERT", "UPSTREAM_CLIENT_KEY"):
    if globals()[_name] and not os.path.isfile(globals()[_name]):
        raise ImproperlyConfigured(f"{_name} names no readable file: {globals()[_name]}")
if UPSTREAM_CA_BUNDLE_ONLY and not UPSTREAM_CA_BUNDLE:
    raise ImproperlyConfigured("UPSTREAM_CA_BUNDLE_ONLY needs UPSTREAM_CA_BUNDLE")
if UPSTREAM_CLIENT_KEY and not UPSTREAM_CLIENT_CERT:
    raise ImproperlyConfigured("UPSTREAM_CLIENT_KEY needs UPSTREAM_CLIENT_CERT")
MODEL_REFRESH_INTERVAL = env_float("MODEL_REFRESH_INTERVAL", 300.0)
# How long an authenticated key stays in the in-process cache without a Redis invalidation.
AUTH_CACHE_TTL = env_float("AUTH_CACHE_TTL", 60.0)
USAGE_STREAM = os.environ.get("USAGE_STREAM", "gomodel:usage")
USAGE_SPOOL_PATH = Path(os.environ.get("USAGE_SPOOL_PATH", VAR_DIR / "usage-spool.jsonl"))
# Beyond this the spool drops events (an error log line and gomodel_usage_events_dropped say so).
USAGE_SPOOL_MAX_BYTES = env_int("USAGE_SPOOL_MAX_BYTES", 256 * 1024 * 1024)
# The gateway's usage writer (accounting/usage/writer.py) sends one pipeline per batch: when USAGE_WRITE_BATCH events
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
# Provider-native passthrough (/p/{provider}/…): "*" for every configured provider, or a comma-separated list
# of provider config names; "" turns the routes off.
_passthrough = os.environ.get("PASSTHROUGH_PROVIDERS", "*").strip()
PASSTHROUGH_PROVIDERS = "*" if _passthrough == "*" else frozenset(
    name.strip() for name in _passthrough.split(",") if name.strip())
LIMITS_SLOT_TTL = env_float("LIMITS_SLOT_TTL", 60.0)
LIMITS_PREFIX = os.environ.get("LIMITS_PREFIX", "gomodel:rl")
# Provider and model quotas (gomodel/gateway/quotas.py; set on the provider config): how long a call over one waits
# for room before failing over (or 429), and how many calls of a process may wait per target (beyond: no waiting).
QUOTA_QUEUE_MAX_WAIT = env_float("QUOTA_QUEUE_MAX_WAIT", 2.0)
QUOTA_QUEUE_MAX = env_int("QUOTA_QUEUE_MAX", 100)
# Provider key pools (gomodel/gateway/key_pool.py): how long a key that answered 429 sits out when the answer has
# no Retry-After, the longest any Retry-After is honoured, and the Redis prefix of the shared cool-downs.
KEY_COOLDOWN_DEFAULT = env_float("KEY_COOLDOWN_DEFAULT", 5.0)
KEY_COOLDOWN_MAX = env_float("KEY_COOLDOWN_MAX", 300.0)
KEY_COOLDOWN_PREFIX = os.environ.get("KEY_COOLDOWN_PREFIX", "gomodel:keycool")
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
# The semantic cache (gomodel/gateway/semantic_cache/; a tenant or key with cache_mode "semantic"): the embedding
# model (`provider/model`, called through the gateway's own embeddings route, billed to the tenant as
# `cache.embed`; empty: semantic keys use the exact cache only), the default least cosine similarity of a hit, whether
# the system prompt is embedded with the last user turn (else it must match exactly), the store (`sqlite-vec`: a file
# under GOMODEL_VAR_DIR; `pgvector`: the PostgreSQL database; empty: pgvector on PostgreSQL, sqlite-vec otherwise),
# and how long embedding plus search may take before the call goes on as a miss.
SEMANTIC_CACHE_EMBED_MODEL = os.environ.get("SEMANTIC_CACHE_EMBED_MODEL", "").strip()
SEMANTIC_CACHE_THRESHOLD = env_float("SEMANTIC_CACHE_THRESHOLD", 0.95)
SEMANTIC_CACHE_EMBED_SYSTEM = env_bool("SEMANTIC_CACHE_EMBED_SYSTEM", True)
SEMANTIC_CACHE_STORE = os.environ.get("SEMANTIC_CACHE_STORE", "").strip().lower()
SEMANTIC_CACHE_PATH = Path(os.environ.get("SEMANTIC_CACHE_PATH") or VAR_DIR / "semantic-cache.sqlite3")
SEMANTIC_CACHE_TIMEOUT = env_float("SEMANTIC_CACHE_TIMEOUT", 5.0)
SEMANTIC_CACHE_MAX_CHARS = env_int("SEMANTIC_CACHE_MAX_CHARS", 8000)  # longer text: not looked up semantically

LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()  # text | json (one JSON object a line)
ACCESS_LOG = env_bool("ACCESS_LOG", True)  # one line per /v1 call on stderr (gomodel/gateway/metrics.py)
# Traces (gomodel/gateway/tracing.py): on when an OTLP endpoint is set; the SDK reads the other OTEL_* variables
# (service name, headers, batch sizes) itself. Prompt and completion text go in spans only when asked for.
OTEL_TRACING = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
                    or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()) \
    and not env_bool("OTEL_SDK_DISABLED") and os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip() != "none"
OTEL_GENAI_CAPTURE_CONTENT = env_bool("OTEL_GENAI_CAPTURE_CONTENT")
_log_formatter = "json" if LOG_FORMAT == "json" else "plain"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "gomodel.log_format.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": _log_formatter}},
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
INSTALLED_APPS += ["drf_spectacular", "django_filters"]
# Staff API tokens (gomodel.models.StaffToken, stored hashed) stop working this many days after issue (0: never).
STAFF_TOKEN_DAYS = env_int("STAFF_TOKEN_DAYS", 90)
REST_FRAMEWORK = {
    # GOMODEL_MASTER_KEY or a staff user's API token, both as "Authorization: Bearer …" (or "Token …").
    "DEFAULT_AUTHENTICATION_CLASSES": ["gomodel.api.authentication.ManagementAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["gomodel.api.permissions.IsGatewayAdmin"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["gomodel.api.parsers.GuardedJSONParser"],  # /v1's depth and size guard
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

# Usage accounting (accounting/usage/drain.py): the Celery beat drain of the usage stream, prices, retention.
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

# Budgets (accounting/budgets/, gomodel/gateway/budgets.py).
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
