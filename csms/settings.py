"""One settings file, read from the environment.

With nothing set it runs embedded: SQLite, the in-memory channel layer, Celery tasks run eagerly.
DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis, the production path. Secrets may come
from a file (`SECRET_KEY_FILE=/run/secrets/...`) so they stay out of the process environment.
"""

import os
import secrets
from contextlib import suppress
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """A variable's value, or the content of the file named by NAME_FILE."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: str) -> bool:
    return env(name, default).lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    return int(env(name, str(default)))


def envfloat(name: str, default: float) -> float:
    return float(env(name, str(default)))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", "false")
# Several test runs (developers working side by side, CI) may share one PostgreSQL and one
# Redis: a run id keeps their test databases, channel-layer groups and cache keys apart.
RUN_ID = env("CSMS_RUN_ID")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
# Addresses of reverse proxies (TLS terminators) whose X-Forwarded-For we believe. Never trust
# such headers from the open port: an attacker would pick their own address for the rate limit.
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "accounts",
    "stations",
    "billing",
    "csms.gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "csms.urls"
ASGI_APPLICATION = "csms.asgi.application"
WSGI_APPLICATION = None

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

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The gateway writes from many sockets at once: wait for the lock instead of failing, and
    # take it at BEGIN so two writers never deadlock on an upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        # Readers never wait for the writer; a commit costs no fsync of the whole file.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not the in-memory default: shared-cache memory databases fail concurrent writers
    # from several threads ("table is locked") instead of letting them wait.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"test-db{RUN_ID}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}{RUN_ID}"}
    # psycopg prepares a statement once it ran five times on a connection: the gateway's
    # set-based writes (stations/persistence.py) then skip PostgreSQL's parsing and planning,
    # the larger part of its work per batch. Only those raw statements: Django binds its own
    # queries on the client, which are never prepared. Off for a pooler in transaction mode that
    # cannot keep prepared statements (PgBouncer before 1.21, or without max_prepared_statements).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        5 if envbool("DB_PREPARED_STATEMENTS", "true") else None)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# SQLite: the embedded demo on one's own machine, not the production path.
EMBEDDED = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


def embedded_secret_key(path: Path) -> str:
    """The embedded demo's own random key, made at its first start and kept beside its
    database (sessions survive a restart). Never a key in the source: anyone could forge
    sessions and signed links with a published one."""
    if not path.exists():
        draft = path.with_name(f"{path.name}.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(50))
        draft.chmod(0o600)
        with suppress(FileExistsError):  # another process made it first: theirs counts
            os.link(draft, path)
        draft.unlink()
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not EMBEDDED and not DEBUG:
        # Said alone, without a traceback: it is the operator's configuration, not a bug.
        raise SystemExit(
            "SECRET_KEY is not set. The production path (DATABASE_URL, DEBUG off) needs a "
            "secret key of its own, the same in every process: set SECRET_KEY, or "
            "SECRET_KEY_FILE=/path/to/a/file holding it (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))' makes one).")
    SECRET_KEY = embedded_secret_key(BASE_DIR / ".secret-key")

REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels-redis that keeps sockets open while Redis restarts and waits for a free
            # pooled connection instead of failing a burst of connects (csms/layers.py).
            "BACKEND": "csms.layers.ResilientRedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                # The default of 100 silently drops group messages in bursts.
                "capacity": envint("CHANNEL_LAYER_CAPACITY", 5000),
                "expiry": 60,
                # Sockets re-join their groups before this (csms/gateway/liveness.py).
                "group_expiry": 86400,
                "prefix": f"asgi{RUN_ID}",
                "max_connections": envint("REDIS_MAX_CONNECTIONS", 200),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": RUN_ID,
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
# Runs sharing one Redis (CSMS_RUN_ID) must not take each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = f"celery{RUN_ID}"
CELERY_BEAT_SCHEDULE = {
    "expire-stale-calls": {"task": "stations.tasks.expire_stale_calls", "schedule": 60.0},
    # Local lists left out of step (an update's answer lost) are sent again.
    "resync-local-lists": {"task": "stations.tasks.resync_local_lists", "schedule": 300.0},
    # Stations whose server process died, transactions left open (csms/gateway/liveness.py).
    "sweep-liveness": {"task": "stations.tasks.sweep_liveness", "schedule": 60.0},
    "prune-message-log": {"task": "stations.tasks.prune_message_log", "schedule": 3600.0},
    # Idle fees of cars still plugged in after their session; sessions left unpriced.
    "billing-settle-costs": {"task": "billing.tasks.settle_costs", "schedule": 60.0},
    # Last month's invoices as drafts, early on the 1st (periods in each issuer's time zone).
    "billing-monthly-invoices": {"task": "billing.tasks.monthly_invoices",
                                 "schedule": crontab(minute=30, hour=3, day_of_month=1)},
}

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "stations.passwords.ChargerPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# The ASGI app serves /static/ itself unless a proxy in front does it (then: SERVE_STATIC=false
# and `manage.py collectstatic`).
SERVE_STATIC = envbool("SERVE_STATIC", "true")

# Generated files (billing exports); served only through views that check who asks.
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "media")))

# People's logins, throttled per account and address (accounts/people.py).
AUTHENTICATION_BACKENDS = ["accounts.people.ThrottledModelBackend"]
LOGIN_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_WINDOW = envint("LOGIN_FAILURE_WINDOW", 900)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Production hardening; all on once DEBUG is off and TLS is terminated in front of us.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "false")
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", "false")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Load balancers and Prometheus probe each process on plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health", r"^metrics$"]
# Who may read /metrics (after TRUSTED_PROXIES' X-Forwarded-For is applied).
METRICS_ALLOWED = envlist("METRICS_ALLOWED", "127.0.0.1,::1")
# And, when set, only with `Authorization: Bearer <METRICS_TOKEN>` (Prometheus'
# authorization.credentials): behind a proxy on the same machine every request comes from
# 127.0.0.1 unless TRUSTED_PROXIES names it.
METRICS_TOKEN = env("METRICS_TOKEN")
# The API's schema and its docs (/api/schema/, /api/docs/, /api/redoc/): for anyone, or for
# signed-in people only. Public by default only with DEBUG on: in production the schema maps
# every endpoint for an attacker.
API_DOCS_PUBLIC = envbool("API_DOCS_PUBLIC", "true" if DEBUG else "false")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CSMS API",
    "DESCRIPTION": "Stations, ID tokens, transactions and commands of the charging network.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Names for choice sets whose field names repeat across apps (status, state).
    "ENUM_NAME_OVERRIDES": {
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
        "ExportStatusEnum": "billing.models.ExportJob.Status",
        "SessionCostStateEnum": "billing.models.SessionCost.State",
        "OrganizationKindEnum": "accounts.models.Organization.Kind",
    },
}

# The OCPP gateway.
OCPP = {
    # Unknown station ids: refused at the handshake, or created as pending approval (onboarding).
    "ONBOARDING": envbool("OCPP_ONBOARDING", "false"),
    "HEARTBEAT_INTERVAL": envint("OCPP_HEARTBEAT_INTERVAL", 300),
    # How long a person's command waits for the charger's answer before it ends as timed out.
    "CALL_TIMEOUT": envint("OCPP_CALL_TIMEOUT", 30),
    # Frames above this size are answered with an error instead of being parsed.
    "MAX_FRAME_BYTES": envint("OCPP_MAX_FRAME_BYTES", 131072),
    # Failed charger logins per address and station id (unknown ids: per address) before
    # that station is refused from that address for the window; its logins that worked before
    # still do (csms/gateway/auth.py).
    "AUTH_FAILURE_LIMIT": envint("OCPP_AUTH_FAILURE_LIMIT", 10),
    "AUTH_FAILURE_WINDOW": envint("OCPP_AUTH_FAILURE_WINDOW", 300),
    # With onboarding on: new pending stations one address may create per window.
    "ONBOARDING_LIMIT": envint("OCPP_ONBOARDING_LIMIT", 5),
    "ONBOARDING_WINDOW": envint("OCPP_ONBOARDING_WINDOW", 3600),
    # Check our own replies against the version's schema (cheap with cached validators).
    "VALIDATE_REPLIES": envbool("OCPP_VALIDATE_REPLIES", "true"),
    # Liveness (csms/gateway/liveness.py): how often each process refreshes the presence of
    # its chargers and sweeps; a charger silent for longer than the limit is closed.
    "PRESENCE_INTERVAL": envfloat("OCPP_PRESENCE_INTERVAL", 30),
    "SILENCE_LIMIT": envfloat("OCPP_SILENCE_LIMIT",
                              2 * envint("OCPP_HEARTBEAT_INTERVAL", 300)),
    # Transactions left open (stations/services/transactions.py, transactions_close_abandoned):
    # after a reboot that did not end them, and after a long silence of their station.
    "REBOOT_GRACE": envint("OCPP_REBOOT_GRACE", 900),
    "TRANSACTION_SILENCE": envint("OCPP_TRANSACTION_SILENCE", 86400),
    # How long a session that ended with messages missing waits for its station's queue.
    "MESSAGES_WAIT": envint("OCPP_MESSAGES_WAIT", 600),
    # Charger messages stored together in one database transaction, at most (group commit:
    # csms/gateway/writer.py). A batch holds what arrived while the last one was stored.
    "BATCH_LIMIT": envint("OCPP_BATCH_LIMIT", 200),
    # Seconds between two sends of a process's dashboard events (csms/gateway/writer.py): the
    # events of all batches stored meanwhile travel as one channel-layer message.
    "EVENTS_INTERVAL": envfloat("OCPP_EVENTS_INTERVAL", 0.1),
    # ORM threads per process (csms/gateway/orm.py): with more than one, a batch of charger
    # messages, a command's outcome and a connect are stored side by side. 1 by default: the
    # writer's group commit already stores many messages per round trip (docs/operations.md).
    "DB_THREADS": envint("OCPP_DB_THREADS", 1),
    # Days the message log keeps frames (0 keeps them forever).
    "MESSAGE_LOG_DAYS": envint("OCPP_MESSAGE_LOG_DAYS", 90),
    # How far a charger's event timestamps may be from the server's clock (csms/gateway/frames.py
    # event_time): days back (messages queued offline), seconds ahead (drift, a charger writing
    # local time as UTC). Further off, the message is refused as no real clock's reading.
    "CLOCK_PAST_DAYS": envint("OCPP_CLOCK_PAST_DAYS", 3650),
    "CLOCK_AHEAD": envint("OCPP_CLOCK_AHEAD", 86400),
}

BILLING = {
    # Seconds between two running-cost updates sent to a charger during a session.
    "COST_UPDATE_INTERVAL": envint("BILLING_COST_UPDATE_INTERVAL", 60),
}

# Garbage collector thresholds of server processes (csms/asgi.py): Python's default 700 young
# objects per collection costs throughput with thousands of sockets. A young collection stops
# the process for as long as it takes to scan its young objects, so a higher threshold trades
# fewer pauses for longer ones; 10,000 keeps each short for about the same total. The older
# generations keep their pace: one every 2.5 million allocations, then a full one after a
# hundred of those.
GC_THRESHOLD = [int(n) for n in envlist("GC_THRESHOLD", "10000,250,100")]
# Seconds a thread may hold the GIL while another waits for it (sys.setswitchinterval) in
# server processes (csms/asgi.py). Python's 5 ms is what the ORM thread may wait for the busy
# event loop after each of its round trips; a shorter interval lets it go on sooner (make bench
# compares the two).
GIL_SWITCH_INTERVAL = envfloat("GIL_SWITCH_INTERVAL", 0.001)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every line carries the station it is about (csms/logs.py); LOG_FORMAT=json for shippers.
    "filters": {"station": {"()": "csms.logs.StationFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(station)s] %(message)s"},
        "json": {"()": "csms.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["station"],
                             "formatter": env("LOG_FORMAT", "plain")}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}
