"""Django settings, all from environment variables with defaults that are safe for a local run.

| Variable | Default | Meaning |
|---|---|---|
| DATABASE_URL | sqlite:///<data dir>/db.sqlite3 | postgres://user:pass@host:port/db for PostgreSQL |
| REDIS_URL | the embedded Redis socket in the data dir | redis://host:port/0 for an external Redis |
| GITOPS_UI_SECRET_KEY | generated once into the data dir | Django's secret key |
| GITOPS_UI_ENCRYPTION_KEY | generated once into the data dir | key that encrypts stored credentials |
| GITOPS_UI_DEBUG | false | Django debug pages (never in production) |
| GITOPS_UI_ALLOWED_HOSTS | localhost,127.0.0.1,[::1] | comma-separated host names |
| GITOPS_UI_CSRF_TRUSTED_ORIGINS | (none) | comma-separated origins behind a proxy |
| GITOPS_UI_DATA_DIR | ./var | where the embedded defaults live |
| GITOPS_UI_LOG_LEVEL | INFO | log level of the platform's own loggers |
| GITOPS_UI_REFRESH_INTERVAL | 180 | seconds between refreshes of an application (plus jitter) |
| GITOPS_UI_POLL_INTERVAL | 5 | seconds between two `git ls-remote` of each repository, so a commit goes live without a webhook (0: off) |
| GITOPS_UI_WEBHOOK_SECRET | generated once into the data dir (`make run` prints it) | token git webhooks must send (X-Gitlab-Token or ?token=) |
| GITOPS_UI_PUBLIC_URL | (none) | the address GitLab reaches GitOps UI at, e.g. https://gitops.example.com; linking a repository to GitLab registers `<it>/api/webhook/git` |
| GITOPS_UI_WEBHOOK_OPEN | false | accept webhooks that send no token (anyone may then trigger refreshes) |
| GITOPS_UI_SYNC_HEALTH_TIMEOUT | 300 | seconds a sync waits for one wave to become healthy |
| GITOPS_UI_RETRY_BACKOFF | 5 | seconds before the first automated retry of a failed revision |
| GITOPS_UI_IMAGE_GUARD | true | before a sync, look up each image the manifests reference on a known registry; a missing one is a MissingImage condition and automated syncs wait |
| GITOPS_UI_TOOLS_BIN | (PATH) | folder holding the kustomize and helm binaries |
| GITOPS_UI_HELM_REGISTRY_CONFIG | (none) | OCI registry credentials for Helm chart dependencies, Docker's config.json (`{"auths": {"host:port": {"username", "password"}}}`) |
| GITOPS_UI_HELM_PLAIN_HTTP | (none) | comma-separated OCI registries (host:port) Helm reaches over plain HTTP |
| GITOPS_UI_WEB_THREADS | 4 | threads of the web process that run views (gitops_ui/asgi.py); each keeps one database connection |
| GITOPS_UI_MAX_BODY_BYTES | 1048576 | largest request body accepted; /api/ answers 413 above it |
| GITOPS_UI_TOKEN_DAYS | 30 | days an API token is valid |
| GITOPS_UI_LOGIN_FAILURE_LIMIT | 5 | failed sign-ins (login form, admin, `POST /api/auth/token`) of one username from one address before it is locked out |
| GITOPS_UI_LOGIN_LOCKOUT_MINUTES | 15 | how long such a lockout lasts |
| GITOPS_UI_TLS | false | the site is served over HTTPS: session and CSRF cookies are sent only over HTTPS |
| GITOPS_UI_PROXY_SSL_HEADER | (none) | header a TLS-terminating proxy sets, as `X-Forwarded-Proto` (its value must be `https`); set only if the proxy always sets or strips it |
| GITOPS_UI_NOTIFY_ATTEMPTS | 5 | attempts to deliver one notification to a project's webhook before it counts as failed |
| GITOPS_UI_NOTIFY_BACKOFF | 10 | seconds before the second attempt; each next one waits 3 times longer |
| GITOPS_UI_AUDIT_RETENTION_DAYS | 90 | days audit log entries are kept; older ones are pruned hourly by the reconciler (0: kept forever) |
| GITOPS_UI_BUILDS_DIR | <data dir>/builds | the build worker's buildah storage (images, layers) and temporary files |
| GITOPS_UI_MAX_CONCURRENT_BUILDS | 2 | builds running at once; more wait, queued |
| GITOPS_UI_BUILD_TIMEOUT | 1800 | seconds one buildah step (build, push), or a kaniko Job (its activeDeadlineSeconds), may take before the build fails |
| GITOPS_UI_TRUSTED_PROXIES | (none) | comma-separated proxy addresses or networks whose X-Forwarded-For is believed (audit log, login lockouts); otherwise the peer's address counts |
"""
from gitops_ui.env import (BASE_DIR, data_dir, database_from_url, env_bool, env_list,
                           persistent_secret, redis_url, webhook_secret)
import os
from datetime import timedelta

DATA_DIR = data_dir()
SECRET_KEY = persistent_secret("GITOPS_UI_SECRET_KEY", "secret_key")
ENCRYPTION_KEY = persistent_secret("GITOPS_UI_ENCRYPTION_KEY", "encryption_key")
DEBUG = env_bool("GITOPS_UI_DEBUG", False)
ALLOWED_HOSTS = env_list("GITOPS_UI_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("GITOPS_UI_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "rules.apps.AutodiscoverRulesConfig",  # imports each app's rules.py (permissions)
    "channels",
    "django_rq",
    "axes",  # login rate limiting (AXES_* below)
    "drf_spectacular",  # OpenAPI schema at /api/schema/, docs at /api/docs/
    "drf_spectacular_sidecar",  # the docs page's JS and CSS, served by us, not from a CDN
    "django_filters",  # list filters of the pages and the API (apps/applications/filtersets.py)
    "django_htmx",  # request.htmx: pages answer htmx requests with fragments
    "apps.accounts",
    "apps.core",
    "apps.clusters",
    "apps.repositories",
    "apps.applications",
    "apps.audit",
    "apps.notifications",
    "apps.registries",
    "apps.builds",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "apps.core.middleware.BodySizeLimit",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.audit.context.RequestContextMiddleware",  # who and from where, for the audit log
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.core.middleware.RefusalAs403",  # a view's Forbidden → 403 naming what was refused
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # a locked-out sign-in answers 429 (apps/accounts/lockout.py)
]

ROOT_URLCONF = "gitops_ui.urls"
WSGI_APPLICATION = "gitops_ui.wsgi.application"
ASGI_APPLICATION = "gitops_ui.asgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = {"default": database_from_url(
    os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
# Passwords through Django; every permission through the rules of apps/*/rules.py (apps/core/access.py).
# django-axes first: a locked-out username+address is refused before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend",
                           "rules.permissions.ObjectPermissionBackend",
                           "apps.core.access.AuthenticationBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve from the finders as well, so `make run` needs no collectstatic step to show the admin.
WHITENOISE_USE_FINDERS = True

REDIS_URL = redis_url()
# "sync" (someone waits: pushes, clicks, operations) and "background" (refreshes nobody waits
# for) are run by the engine worker, in that order; "builds" by its own forking worker.
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600}
             for name in ("default", "builds", "sync", "background")}
CHANNEL_LAYERS = {"default": {
    "BACKEND": "channels_redis.core.RedisChannelLayer",
    "CONFIG": {"hosts": [REDIS_URL]},
}}
# A signed-in page view reads its session from Redis, not the database (apps/core/sessions.py).
SESSION_ENGINE = "apps.core.sessions"

REST_FRAMEWORK = {
    # Token first: an unauthenticated request gets 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.core.api.permissions.ActionPermission"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.schema.AutoSchema",  # notes each permission
}

SPECTACULAR_SETTINGS = {
    "TITLE": "GitOps UI API",
    "DESCRIPTION": ("Applications, projects, clusters, repositories, operations and the audit "
                    "log. Authenticate with `Authorization: Token <token>` (POST /api/auth/token) "
                    "or a browser session. Each operation says which permission it needs."),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["apps.core.api.schema.drop_unslashed_duplicates"],
    "ENUM_NAME_OVERRIDES": {"NotificationEvent": "apps.notifications.models.Event"},
}

# Login rate limiting (django-axes): per username and client address, counted in the database.
AXES_FAILURE_LIMIT = int(os.environ.get("GITOPS_UI_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("GITOPS_UI_LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.audit.context.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.lockout.lockout_response"
AXES_VERBOSE = False  # the audit log records each failed sign-in
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in the audit log; no second, unbounded table


# API tokens are stored hashed (knox); they expire unless renewed by creating a new one.
REST_KNOX = {"TOKEN_TTL": timedelta(days=float(os.environ.get("GITOPS_UI_TOKEN_DAYS", "30"))),
             "AUTH_HEADER_PREFIX": "Token"}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
# GITOPS_UI_SECURE_COOKIES is the earlier name of GITOPS_UI_TLS.
GITOPS_UI_TLS = env_bool("GITOPS_UI_TLS", env_bool("GITOPS_UI_SECURE_COOKIES", False))
SESSION_COOKIE_SECURE = GITOPS_UI_TLS
if os.environ.get("GITOPS_UI_PROXY_SSL_HEADER"):
    # Only when configured: otherwise any client could claim HTTPS by sending the header.
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + os.environ["GITOPS_UI_PROXY_SSL_HEADER"].strip().upper().replace("-", "_"),
        "https")
GITOPS_UI_TRUSTED_PROXIES = env_list("GITOPS_UI_TRUSTED_PROXIES", "")
GITOPS_UI_NOTIFY_ATTEMPTS = int(os.environ.get("GITOPS_UI_NOTIFY_ATTEMPTS", "5"))
GITOPS_UI_NOTIFY_BACKOFF = float(os.environ.get("GITOPS_UI_NOTIFY_BACKOFF", "10"))
GITOPS_UI_AUDIT_RETENTION_DAYS = int(os.environ.get("GITOPS_UI_AUDIT_RETENTION_DAYS", "90"))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "apps": {"level": os.environ.get("GITOPS_UI_LOG_LEVEL", "INFO")},
        "gitops_ui": {"level": os.environ.get("GITOPS_UI_LOG_LEVEL", "INFO")},
    },
}

# Seconds between worker heartbeats enqueued by the reconciler.
GITOPS_UI_HEARTBEAT_INTERVAL = float(os.environ.get("GITOPS_UI_HEARTBEAT_INTERVAL", "60"))

# Applications: see the table at the top.
GITOPS_UI_REFRESH_INTERVAL = float(os.environ.get("GITOPS_UI_REFRESH_INTERVAL", "180"))
GITOPS_UI_POLL_INTERVAL = float(os.environ.get("GITOPS_UI_POLL_INTERVAL", "5"))
GITOPS_UI_WEBHOOK_SECRET = webhook_secret()
GITOPS_UI_WEBHOOK_OPEN = env_bool("GITOPS_UI_WEBHOOK_OPEN", False)
GITOPS_UI_PUBLIC_URL = os.environ.get("GITOPS_UI_PUBLIC_URL", "").strip().rstrip("/")
GITOPS_UI_SYNC_HEALTH_TIMEOUT = float(os.environ.get("GITOPS_UI_SYNC_HEALTH_TIMEOUT", "300"))
GITOPS_UI_RETRY_BACKOFF = float(os.environ.get("GITOPS_UI_RETRY_BACKOFF", "5"))
GITOPS_UI_IMAGE_GUARD = env_bool("GITOPS_UI_IMAGE_GUARD", True)
GITOPS_UI_OPERATION_HEARTBEAT = float(os.environ.get("GITOPS_UI_OPERATION_HEARTBEAT", "2"))
GITOPS_UI_OPERATION_TIMEOUT = int(os.environ.get("GITOPS_UI_OPERATION_TIMEOUT", "3600"))
GITOPS_UI_MAX_BODY_BYTES = int(os.environ.get("GITOPS_UI_MAX_BODY_BYTES", str(1024 * 1024)))
GITOPS_UI_WEB_THREADS = int(os.environ.get("GITOPS_UI_WEB_THREADS", "4"))
# Django's own limit on parsed bodies follows, so a body without Content-Length is held to it too.
DATA_UPLOAD_MAX_MEMORY_SIZE = GITOPS_UI_MAX_BODY_BYTES
# Builds: see the table at the top.
GITOPS_UI_BUILDS_DIR = os.environ.get("GITOPS_UI_BUILDS_DIR") or str(DATA_DIR / "builds")
GITOPS_UI_MAX_CONCURRENT_BUILDS = int(os.environ.get("GITOPS_UI_MAX_CONCURRENT_BUILDS", "2"))
GITOPS_UI_BUILD_TIMEOUT = float(os.environ.get("GITOPS_UI_BUILD_TIMEOUT", "1800"))
