"""Settings for every way the product runs, read from environment variables.

Two shapes (SPEC 2):
- embedded (no REDIS_URL): SQLite under var/, in-memory channel layer, local-memory cache,
  the monitoring loop on an in-process timer, secrets generated into var/ on first start;
- full stack (REDIS_URL set): MariaDB/MySQL from DATABASE_URL, Redis for channels, cache,
  rate limits, locks and the Celery broker.
"""

from __future__ import annotations

import json
import os
from datetime import time
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from trading_site.envconfig import (
    env_bool,
    env_int,
    env_is_set,
    env_list,
    load_or_create_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Off unless asked for (DJANGO_DEBUG=1), the embedded default included: a debug page shows
# the URL list, local variables and settings to whoever triggers it.
DEBUG = env_bool("DJANGO_DEBUG", False)
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
EMBEDDED = not REDIS_URL

# Secrets: generated into var/ for the embedded default; production must bring its own.
_secrets_may_be_generated = EMBEDDED or DEBUG
SECRET_KEY = os.environ.get("SECRET_KEY") or (
    load_or_create_secret(VAR_DIR / "secret_key", kind="django")
    if _secrets_may_be_generated
    else None
)
_fernet_env = os.environ.get("FERNET_KEYS", "").strip()
FERNET_KEYS = (
    [k.strip() for k in _fernet_env.split(",") if k.strip()]
    if _fernet_env
    else (
        [load_or_create_secret(VAR_DIR / "fernet_key", kind="fernet")]
        if _secrets_may_be_generated
        else []
    )
)
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DJANGO_DEBUG=0 in full-stack mode (REDIS_URL is set)."
    )
if not FERNET_KEYS:
    raise ImproperlyConfigured(
        "FERNET_KEYS must be set (comma-separated, newest first) when DJANGO_DEBUG=0 in "
        "full-stack mode; generate one with: python -c 'from cryptography.fernet import "
        "Fernet; print(Fernet.generate_key().decode())'"
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
# Whether the operator named the hosts (trading_site.core.exposure warns at start when a server
# binds beyond loopback with only the default list).
ALLOWED_HOSTS_CONFIGURED = env_is_set("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    # django.contrib.admin, its site requiring two-factor login of staff (accounts.admin_site)
    "accounts.apps.TwoFactorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files, not a CDN
    "channels",
    # trading_site.core: template filters, the trading window; trading_site: the web server
    # commands (serve_web, start_embedded).
    "trading_site.core",
    "accounts",
    "orders",
    "pnl",
    "monitoring",
    "trading_site",
]

MIDDLEWARE = [
    "trading_site.core.request_context.RequestIdMiddleware",
    "trading_site.core.access_log.AccessLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "trading_site.core.security_headers.SecurityHeadersMiddleware",
    "trading_site.core.api.ratelimit.RateLimitHeadersMiddleware",
    "trading_site.core.metrics.MetricsMiddleware",
]

ROOT_URLCONF = "trading_site.urls"
CSRF_FAILURE_VIEW = "trading_site.core.error_views.csrf_failure"
WSGI_APPLICATION = "trading_site.wsgi.application"
ASGI_APPLICATION = "trading_site.asgi.application"

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

# Database. Under ASGI, persistent connections leak one per thread: keep CONN_MAX_AGE=0
# unless the process is a WSGI server (gunicorn sets DB_CONN_MAX_AGE itself).
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))
if _db["ENGINE"] == "django.db.backends.mysql":
    _db.setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            # READ COMMITTED: counters and idempotency checks see each other's commits.
            "isolation_level": "read committed",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        }
    )
    _db["TEST"] = {
        "NAME": os.environ.get("TEST_DATABASE_NAME", "test_trading"),
        "CHARSET": "utf8mb4",
        "COLLATION": "utf8mb4_unicode_ci",
    }
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
DATABASES = {"default": _db}
# A read replica for reporting queries (trading_site.core.db_router); tests mirror the primary.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "").strip()
if DATABASE_REPLICA_URL:
    _replica = dj_database_url.parse(
        DATABASE_REPLICA_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0)
    )
    _replica["OPTIONS"] = dict(_db.get("OPTIONS", {}))
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = _replica
DATABASE_ROUTERS = ["trading_site.core.db_router.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-in"
TIME_ZONE = "Asia/Kolkata"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns per process without it
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Cache (auth-token cache, rate limits, locks, presence).
CACHES: dict[str, dict[str, Any]]
CHANNEL_LAYERS: dict[str, dict[str, Any]]
if EMBEDDED:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "trading-desk",
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # A Redis that stops answering (not one that refuses) fails a call within
                # these seconds instead of holding the request, the lease or the cycle: the
                # callers already fall back on a refused Redis (leases in-process, the PnL
                # fingerprint recomputed, rate limits on each process's own buckets, tokens
                # checked in the database).
                "SOCKET_CONNECT_TIMEOUT": env_int("REDIS_CONNECT_TIMEOUT", 2),
                "SOCKET_TIMEOUT": env_int("REDIS_SOCKET_TIMEOUT", 5),
            },
            "KEY_PREFIX": "td",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer fans a group message out once per web process instead of
            # once per connection: bench/ws.py, 10,000 connections, delivered all of them
            # where the core layer (CHANNEL_LAYER_BACKEND=channels_redis.core.
            # RedisChannelLayer) dropped about half past its per-channel capacity.
            "BACKEND": os.environ.get(
                "CHANNEL_LAYER_BACKEND", "channels_redis.pubsub.RedisPubSubChannelLayer"
            ),
            "CONFIG": {
                # redis-py's async pool refuses (not waits) past max_connections (default
                # 100): a burst of WebSocket connects would crash consumers with 1011.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": env_int("CHANNEL_LAYER_MAX_CONNECTIONS", 1000),
                    }
                ],
                "capacity": 1000,
                "expiry": 30,
                # Distinct per deployment sharing one Redis (pub/sub ignores the database).
                "prefix": os.environ.get("CHANNEL_LAYER_PREFIX", "td-channels"),
            },
        }
    }

SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG and not EMBEDDED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# REST API conventions (trading_site/api): one error envelope, one rate limiter, one paginator.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.auth.BearerTokenAuthentication",
        "accounts.auth.CsrfSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        # A read-only API key cannot write; a bound key is refused (accounts.permissions).
        "accounts.permissions.ApiKeyScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["trading_site.core.api.ratelimit.UserRateLimit"],
    "DEFAULT_PAGINATION_CLASS": "trading_site.core.api.pagination.LimitOffsetTotalPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "trading_site.core.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["trading_site.core.api.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["trading_site.core.api.parsers.SafeJSONParser"],
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading desk API",
    "DESCRIPTION": "Orders, PnL and monitoring for XTS broker accounts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    # No validator badge: Swagger UI would fetch it from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["trading_site.core.api.schema.drop_trailing_slash_aliases"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # Every operation's error answers (the envelope) and the list bounds.
        "trading_site.core.api.schema_errors.document_errors",
    ],
}

# Outside JSON (trading_site.core.safe_json): deeper nesting is a 400, before the parser recurses.
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 32)
# The largest request body (bytes): more is a 413. A batch of 500 orders is about 150 KB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# Auth tokens (accounts.services): lifetime and cache time-to-live.
AUTH_TOKEN_TTL_SECONDS = env_int("AUTH_TOKEN_TTL_SECONDS", 12 * 3600)
AUTH_TOKEN_CACHE_SECONDS = env_int("AUTH_TOKEN_CACHE_SECONDS", 300)

# Two-factor login (accounts.two_factor): the issuer name authenticator apps show.
TWO_FACTOR_ISSUER = os.environ.get("TWO_FACTOR_ISSUER", "Trading desk")
# How long a password-checked web login waits for its two-factor code.
TWO_FACTOR_LOGIN_TIMEOUT_SECONDS = env_int("TWO_FACTOR_LOGIN_TIMEOUT_SECONDS", 300)

# Alert webhooks (orders.alerts): how long received alerts are kept.
ALERT_RETENTION_DAYS = env_int("ALERT_RETENTION_DAYS", 90)
# The OpenAlgo-compatible API (orders.openalgo): the same write request (key, account,
# strategy and every field) within this many seconds places once and answers the first
# answer again (0: off); a copy arriving while the first is still being handled waits up to
# OPENALGO_IDEMPOTENCY_WAIT_SECONDS for its answer.
OPENALGO_IDEMPOTENCY_SECONDS = env_int("OPENALGO_IDEMPOTENCY_SECONDS", 10)
OPENALGO_IDEMPOTENCY_WAIT_SECONDS = env_int("OPENALGO_IDEMPOTENCY_WAIT_SECONDS", 10)

# Rate limits per endpoint group: "capacity/refill-per-second". Login has its own.
RATE_LIMITS = {
    "default": os.environ.get("RATE_LIMIT_DEFAULT", "120/2"),
    "read": os.environ.get("RATE_LIMIT_READ", "300/5"),
    "orders": os.environ.get("RATE_LIMIT_ORDERS", "60/1"),
    "login_user": os.environ.get("RATE_LIMIT_LOGIN_USER", "5/0.05"),
    "login_ip": os.environ.get("RATE_LIMIT_LOGIN_IP", "20/0.2"),
    # Alert webhooks (orders.alerts): per webhook, and per address for wrong secrets.
    "webhook": os.environ.get("RATE_LIMIT_WEBHOOK", "30/0.5"),
    "webhook_bad_secret": os.environ.get("RATE_LIMIT_WEBHOOK_BAD_SECRET", "10/0.1"),
}
RATE_LIMIT_ENABLED = env_bool("RATE_LIMIT_ENABLED", True)
# After a failed call to Redis by the rate limiter, the token cache or the metrics (one
# breaker, trading_site.core.redis_breaker), how long each process keeps them off Redis (its
# own buckets, the database, samples dropped) before it asks again (0: on the next call): a
# Redis that hangs then costs one REDIS_SOCKET_TIMEOUT per period, not several per request.
RATE_LIMIT_STORE_RETRY_SECONDS = float(os.environ.get("RATE_LIMIT_STORE_RETRY_SECONDS", "5"))

# Brokers (orders.brokers).
XTS_BASE_URLS = {
    "IIFL": os.environ.get("XTS_BASE_URL_IIFL", "https://ttblaze.iifl.com"),
    "WISDOM_CAPITAL": os.environ.get(
        "XTS_BASE_URL_WISDOM_CAPITAL", "https://trade.wisdomcapital.in"
    ),
    "NIRMAL_BANG": os.environ.get("XTS_BASE_URL_NIRMAL_BANG", "https://xts.nirmalbang.com"),
}
# Where a live account's base_url may point (orders.brokers.host_policy): these hosts
# ("host" or "host:port"; by default the brokers' own), over https in the full stack; a
# loopback or private address only when BROKER_ALLOW_PRIVATE_HOSTS (the XTS simulator, the
# embedded demo, the tests).
BROKER_ALLOWED_HOSTS = env_list("BROKER_ALLOWED_HOSTS", list(XTS_BASE_URLS.values()))
BROKER_ALLOW_PRIVATE_HOSTS = env_bool("BROKER_ALLOW_PRIVATE_HOSTS", EMBEDDED)
BROKER_REQUIRE_HTTPS = env_bool("BROKER_REQUIRE_HTTPS", not EMBEDDED)
XTS_SOURCE = os.environ.get("XTS_SOURCE", "WEBAPI")
BROKER_TIMEOUT_SECONDS = float(os.environ.get("BROKER_TIMEOUT_SECONDS", "5"))
# The biggest broker answer read (an order row is about 1.5 KB: a dealer's book of 10,000
# orders is 15 MB); a bigger one is refused as unavailable rather than read into memory.
BROKER_MAX_ANSWER_BYTES = env_int("BROKER_MAX_ANSWER_BYTES", 64 * 1024 * 1024)
BROKER_ORDERS_PER_SECOND = env_int("BROKER_ORDERS_PER_SECOND", 10)
PAPER_SEED = env_int("PAPER_SEED", 0)
FAIR_PRICE_FEED_TOKEN = os.environ.get("FAIR_PRICE_FEED_TOKEN", "")
# GET /metrics answers this bearer token (Prometheus `authorization`) or a staff session.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
PRICE_FEED_ENABLED = env_bool("PRICE_FEED_ENABLED", EMBEDDED)
PRICE_FEED_INTERVAL_SECONDS = float(os.environ.get("PRICE_FEED_INTERVAL_SECONDS", "3"))
# Paper exchange (orders.brokers.paper): slippage of market orders in basis points, the most
# quantity one order fills per price tick (0 = no cap), the share of orders rejected at random
# (deterministic per PAPER_SEED and order id), starting cash of a new book, margin per rupee.
PAPER_SLIPPAGE_BPS = os.environ.get("PAPER_SLIPPAGE_BPS", "0")
PAPER_FILL_CAP = env_int("PAPER_FILL_CAP", 0)
PAPER_REJECT_RATE = os.environ.get("PAPER_REJECT_RATE", "0")
PAPER_STARTING_CASH = os.environ.get("PAPER_STARTING_CASH", "1000000")
PAPER_MARGIN_RATE = os.environ.get("PAPER_MARGIN_RATE", "0.2")
PAPER_SESSION_TTL_SECONDS = env_int("PAPER_SESSION_TTL_SECONDS", 24 * 3600)
# The intraday MTM curve keeps one point per account and minute for this many days.
MTM_SAMPLE_RETENTION_DAYS = env_int("MTM_SAMPLE_RETENTION_DAYS", 30)
# Estimated charges (pnl.charges): overrides of the statutory rates as JSON fractions, e.g.
# {"EQUITY_INTRADAY": {"stt_sell": "0.00025"}, "gst": "0.18"}; empty: the rates in the module.
CHARGE_RATES = json.loads(os.environ.get("CHARGE_RATES", "") or "{}")
# Broker sessions (orders.brokers.sessions): log in again this long before expiry. An XTS
# session is trusted until its JWT's exp (24 h); XTS_SESSION_TTL_SECONDS only for a token
# that is not a JWT.
BROKER_SESSION_REFRESH_MARGIN_SECONDS = env_int("BROKER_SESSION_REFRESH_MARGIN_SECONDS", 300)
XTS_SESSION_TTL_SECONDS = env_int("XTS_SESSION_TTL_SECONDS", 8 * 3600)
# Reads retry on "unavailable" this many times, backing off from this many seconds; order
# POSTs never retry. The outbound order limit waits at most this long for a token.
BROKER_READ_RETRIES = env_int("BROKER_READ_RETRIES", 2)
BROKER_RETRY_BACKOFF_SECONDS = float(os.environ.get("BROKER_RETRY_BACKOFF_SECONDS", "0.2"))
BROKER_RATE_LIMIT_MAX_WAIT_SECONDS = float(
    os.environ.get("BROKER_RATE_LIMIT_MAX_WAIT_SECONDS", "2")
)
# While Redis is down, the per-account outbound limit falls back to a bucket per process at
# BROKER_ORDERS_PER_SECOND / this: set it to the number of processes that send orders
# (web workers + Celery worker processes) so their sum stays within the broker's limit.
BROKER_RATE_LIMIT_PROCESSES = env_int("BROKER_RATE_LIMIT_PROCESSES", 4)
XTS_API_ORDER_SOURCE = os.environ.get("XTS_API_ORDER_SOURCE", "TradingDesk")
XTS_POSITIONS_MODE = os.environ.get("XTS_POSITIONS_MODE", "NetWise")
# Read a dealer login's order book, trade book and positions from the dealer routes
# (/interactive/orders/dealerorderbook, .../dealertradebook, /interactive/portfolio/
# dealerpositions) instead of the common routes with clientID.
XTS_DEALER_BOOK_ROUTES = env_bool("XTS_DEALER_BOOK_ROUTES", False)
# XTS simulator logins: "appKey:secretKey:userID:investor|dealer[:clientCode]" comma-separated.
XTS_SIMULATOR_USERS = os.environ.get(
    "XTS_SIMULATOR_USERS", "sim-app-key:sim-secret-key:SIM001:investor"
)
# The simulator's JWTs live exp - iat = 24 h, as at XTS.
XTS_SIMULATOR_TOKEN_TTL_SECONDS = env_int("XTS_SIMULATOR_TOKEN_TTL_SECONDS", 24 * 3600)
# Amounts in the simulator's rows carry thousands separators ("2,853.50"), as real rows do.
XTS_SIMULATOR_THOUSANDS_SEPARATORS = env_bool("XTS_SIMULATOR_THOUSANDS_SEPARATORS", True)
# Answer e-apirl-0004 past this many requests per second per login (0: no limit).
XTS_SIMULATOR_RATE_LIMIT_PER_SECOND = env_int("XTS_SIMULATOR_RATE_LIMIT_PER_SECOND", 0)
# The simulator's event stream looks for changed orders of its watched books this often.
XTS_SIMULATOR_STREAM_POLL_SECONDS = float(
    os.environ.get("XTS_SIMULATOR_STREAM_POLL_SECONDS", "0.2")
)

# Broker event streams (orders.brokers.streams; issue 12). They call BROKER_EVENT_HANDLER and
# BROKER_RESYNC_HANDLER (below), resolved when a stream runner starts, which fails loudly
# when they do not import (never drops events silently).
# Run the streams inside the server's event loop (the embedded default); the full stack runs
# `manage.py run_broker_streams` processes instead.
BROKER_STREAMS_IN_PROCESS = env_bool("BROKER_STREAMS_IN_PROCESS", EMBEDDED)
# How many streams (XTS sessions and paper event partitions) one process runs at most.
BROKER_STREAMS_CAPACITY = env_int("BROKER_STREAMS_CAPACITY", 500)
# Leases (full stack): the TTL of a stream's lease in Redis; its owner renews it every
# BROKER_STREAMS_SCAN_SECONDS and closes the stream when it could not for TTL - 1 s, so a
# dead process's streams move to another within about TTL + one scan.
BROKER_STREAM_LEASE_SECONDS = float(os.environ.get("BROKER_STREAM_LEASE_SECONDS", "5"))
BROKER_STREAMS_SCAN_SECONDS = float(os.environ.get("BROKER_STREAMS_SCAN_SECONDS", "1"))
# Reconnect backoff: full jitter within min(cap, base * 2^attempt).
BROKER_STREAM_BACKOFF_BASE_SECONDS = float(
    os.environ.get("BROKER_STREAM_BACKOFF_BASE_SECONDS", "0.5")
)
BROKER_STREAM_BACKOFF_CAP_SECONDS = float(os.environ.get("BROKER_STREAM_BACKOFF_CAP_SECONDS", "30"))
# Stream health (dashboard, settings, /readyz) lives this long unless its owner refreshes it.
BROKER_STREAM_HEALTH_TTL_SECONDS = env_int("BROKER_STREAM_HEALTH_TTL_SECONDS", 15)
# Threads running the (synchronous) handler: one account at a time each, in order.
BROKER_EVENT_HANDLER_THREADS = env_int("BROKER_EVENT_HANDLER_THREADS", 4)
# An event whose account stays busy (a cycle holds its exclusion) is tried again after 0.5, 1,
# 2, ... s, this many times, before it is left to the next cycle (logged, counted).
BROKER_EVENT_BUSY_RETRIES = env_int("BROKER_EVENT_BUSY_RETRIES", 6)
# The paper exchange's events after each commit: "redis" (a Redis Stream per partition, read
# by run_broker_streams), "memory" (this process's event loop: the embedded default), "off".
PAPER_EVENTS_TRANSPORT = os.environ.get("PAPER_EVENTS_TRANSPORT", "memory" if EMBEDDED else "redis")
PAPER_EVENT_PARTITIONS = env_int("PAPER_EVENT_PARTITIONS", 4)
# The most events kept per partition while no stream process reads them (oldest dropped).
PAPER_EVENT_BACKLOG = env_int("PAPER_EVENT_BACKLOG", 10000)

# Monitoring loop (monitoring/) and the trading window (Asia/Kolkata).
MONITOR_INTERVAL_SECONDS = env_int("MONITOR_INTERVAL_SECONDS", 60)
MONITOR_OPEN_ORDER_USERS = env_bool("MONITOR_OPEN_ORDER_USERS", True)
MONITOR_IN_PROCESS = env_bool("MONITOR_IN_PROCESS", EMBEDDED)
# Users per cycle task: the dispatcher queues one task per this many users, which run one
# after another (a task's own queueing and bookkeeping cost, shared by the batch).
MONITOR_USERS_PER_TASK = max(1, env_int("MONITOR_USERS_PER_TASK", 10))
# The user's cycle lease (monitoring.services): renewed every third of this while a cycle
# runs, so it only bounds how long a killed worker blocks the user's next cycle.
# Default: half the interval, between 2 and 30 s.
MONITOR_LOCK_TTL_SECONDS = float(os.environ.get("MONITOR_LOCK_TTL_SECONDS", "0")) or None
# An account's exclusion (orders.services.exclusion): the cycle, broker events, modify,
# cancel, the kill switch and protection take it. TTL: how long a dead holder blocks (a live
# one renews it); WAIT: how long a change waits for the holder before answering "busy".
ACCOUNT_LOCK_TTL_SECONDS = float(os.environ.get("ACCOUNT_LOCK_TTL_SECONDS", "15"))
ACCOUNT_LOCK_WAIT_SECONDS = float(os.environ.get("ACCOUNT_LOCK_WAIT_SECONDS", "10"))
# What the broker event streams call (dotted paths): one event, and a REST sync of one
# account after a (re)connect. monitoring.events: the handler needs PnL (pnl sits above
# orders in the layers), so it lives at the top of the apps.
BROKER_EVENT_HANDLER = os.environ.get(
    "BROKER_EVENT_HANDLER", "monitoring.events.handle_broker_event"
)
BROKER_RESYNC_HANDLER = os.environ.get("BROKER_RESYNC_HANDLER", "monitoring.events.resync_account")
# Who writes the audit rows of accounts' own changes (strategies, the entry-regenerate
# permission): the audit trail is orders', a layer above accounts (accounts.audit).
USER_AUDIT_RECORDER = "orders.services.audit.record_user_event"
TRADING_WINDOW_ALWAYS_OPEN = env_bool("TRADING_WINDOW_ALWAYS_OPEN", EMBEDDED)
TRADING_WINDOW_OPEN = time.fromisoformat(os.environ.get("TRADING_WINDOW_OPEN", "09:26"))
TRADING_WINDOW_CLOSE = time.fromisoformat(os.environ.get("TRADING_WINDOW_CLOSE", "15:30"))
TRADING_WEEKDAYS = [int(d) for d in env_list("TRADING_WEEKDAYS", ["0", "1", "2", "3", "4"])]
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 4096)
# Open WebSockets re-check their token or session this often (monitoring.ws_revalidation):
# a revoked or expired token, a logout or a password change closes them with 4401.
WS_AUTH_RECHECK_SECONDS = float(os.environ.get("WS_AUTH_RECHECK_SECONDS", "5"))
PRESENCE_TTL_SECONDS = env_int("PRESENCE_TTL_SECONDS", 90)
# A user's open WebSockets, across every web process (monitoring.presence); past it a new one
# is closed with 4429. A crashed process's slots free themselves within PRESENCE_TTL_SECONDS.
WS_MAX_CONNECTIONS_PER_USER = env_int("WS_MAX_CONNECTIONS_PER_USER", 20)
# Frames a WebSocket may send (a token bucket per connection: this many at once, refilled at
# this rate); faster closes it with 1008 (monitoring.consumers; pings: trading_site.server).
WS_INBOUND_BURST = env_int("WS_INBOUND_BURST", 40)
WS_INBOUND_MESSAGES_PER_SECOND = float(os.environ.get("WS_INBOUND_MESSAGES_PER_SECOND", "20"))
if min(WS_MAX_CONNECTIONS_PER_USER, WS_INBOUND_BURST) < 1 or not (
    0 < WS_INBOUND_MESSAGES_PER_SECOND < float("inf")
):
    raise ImproperlyConfigured(
        "WS_MAX_CONNECTIONS_PER_USER and WS_INBOUND_BURST must be at least 1, "
        "WS_INBOUND_MESSAGES_PER_SECOND a number above 0"
    )
# Most concurrent channel-layer group operations per web process (monitoring.consumers).
WS_LAYER_CONCURRENCY = env_int("WS_LAYER_CONCURRENCY", 200)
# Performance work only (trading_site.server): cProfile the web process's event loop into this
# file between SIGUSR1 and SIGUSR2. Unset: no profiling.
WEB_PROFILE_FILE = os.environ.get("WEB_PROFILE_FILE", "")

# Celery (full stack): Redis broker; one beat; tasks acknowledged late so a killed worker's
# task is redelivered (the cycle lock and MonitoringRun uniqueness make that safe).
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Celery's Django fixup closes the DB connection around every task unless this is set; the
# worker keeps it instead (trading_site.celery: CONN_MAX_AGE, health checks, errors).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
# A Celery worker keeps its database connection this long between tasks, a stream process
# between broker events (trading_site.core.db_router.keep_connections).
WORKER_DB_CONN_MAX_AGE = env_int("WORKER_DB_CONN_MAX_AGE", 600)
# A Celery worker (the monitoring loop) can run this much nicer than the web server and the
# stream processes, so broker events get the CPU first (trading_site.core.cpu_priority). Off
# by default: with MariaDB on the same cores it slowed the steady cycle by a third or more.
WORKER_NICENESS = env_int("WORKER_NICENESS", 0)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = EMBEDDED
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
# The one beat schedule is trading_site.celery's (it reads MONITOR_INTERVAL_SECONDS).
# A scheduled order whose time passed less than this long ago (e.g. the system was down) is
# still placed; older than that, the day is recorded as MISSED (orders.scheduled.services).
SCHEDULED_ORDER_GRACE_MINUTES = env_int("SCHEDULED_ORDER_GRACE_MINUTES", 5)

# Orders (orders/services): a leg left PENDING_SUBMIT by a crash or broker timeout that the
# broker's order book still does not show after this long is marked REJECTED (never re-sent).
ORDER_PENDING_GRACE_SECONDS = env_int("ORDER_PENDING_GRACE_SECONDS", 120)
# The monitoring cycle lowers a bracket's recorded broker shortfall only from a positions read
# begun more than this long after the position's desk legs last changed: a broker applies a
# fill to its positions after its order book and events show it (orders.domain.exit_sizing).
POSITIONS_LAG_MARGIN_SECONDS = float(os.environ.get("POSITIONS_LAG_MARGIN_SECONDS", "5"))

DEMO_USERNAME = os.environ.get("DEMO_USERNAME", "demo")
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "demo-trader-1")

# Logging: JSON lines with the request id, secrets redacted, rotated files under var/log/.
LOG_DIR = VAR_DIR / "log"
LOG_DIR.mkdir(parents=True, exist_ok=True)
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "trading_site.core.logging.RequestIdFilter"},
        "redact": {"()": "trading_site.core.logging.RedactSecretsFilter"},
        "client_error": {"()": "trading_site.core.log_filters.ClientErrorAsWarning"},
        "drop_client_errors": {"()": "trading_site.core.access_log.DropClientErrors"},
        "redact_path_secrets": {"()": "trading_site.core.access_log.RedactPathSecrets"},
    },
    "formatters": {"json": {"()": "trading_site.core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        },
        "file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(LOG_DIR / "trading.log"),
            "maxBytes": 10 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "json",
            "filters": ["request_id", "redact"],
            "delay": True,
        },
    },
    "root": {"handlers": ["console", "file"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # A body over DATA_UPLOAD_MAX_MEMORY_SIZE (answered 413): a warning, no traceback.
        "django.security.RequestDataTooBig": {"filters": ["client_error"]},
        # One line per request (trading_site.core.access_log): no second one for a 4xx.
        # ... and a 5xx's line names the path without a webhook's secret.
        "django.request": {"filters": ["drop_client_errors", "redact_path_secrets"]},
        "django.server": {"level": "WARNING"},
    },
}
