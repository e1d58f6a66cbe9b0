"""Reading settings from environment variables; no Django import, so the launcher can use it."""
from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """An environment variable holds a value the platform cannot use."""


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def data_dir() -> Path:
    """Where the embedded defaults (SQLite, Redis socket, generated keys) live."""
    path = Path(os.environ.get("GITOPS_UI_DATA_DIR", BASE_DIR / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def persistent_secret(name: str, filename: str) -> str:
    """The value of env var `name`, else one generated once and kept in the data dir.

    Generated secrets survive restarts (sessions and encrypted fields stay readable) without the
    user having to invent one for a local run; production sets the variable.
    """
    value = os.environ.get(name)
    if value:
        return value
    path = data_dir() / filename
    if not path.exists():
        generate_secret_file(path)
    return path.read_text().strip()


def generate_secret_file(path: Path) -> bool:
    """Write a new random secret to `path` unless it exists; True if this call wrote it.

    Written to a private temporary file, then linked into place: processes starting together
    (web, workers) never read a half-written file, and the first writer wins.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        # What secrets.token_urlsafe(48) returns, without importing it: `secrets` loads OpenSSL's
        # hash library (~4 MiB) into the launcher, which needs nothing else of it.
        out.write(base64.urlsafe_b64encode(os.urandom(48)).rstrip(b"=").decode())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


WEBHOOK_SECRET_FILE = "webhook_secret"


def webhook_secret() -> str:
    """GITOPS_UI_WEBHOOK_SECRET, else the one `make run` generated on first start: webhooks
    are refused unless they send it (GITOPS_UI_WEBHOOK_OPEN=true accepts them without)."""
    return persistent_secret("GITOPS_UI_WEBHOOK_SECRET", WEBHOOK_SECRET_FILE)


def database_from_url(url: str) -> dict:
    """A Django DATABASES entry from postgres://user:pass@host:port/name or sqlite:///path."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path[1:] if path.startswith("//") else path,
            # WAL and immediate transactions: web, workers and reconciler write concurrently.
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE",
                        "timeout": 20},
        }
    if parsed.scheme in ("postgres", "postgresql"):
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ConfigError(f"DATABASE_URL scheme {parsed.scheme!r} is not supported "
                      "(use postgres:// or sqlite:///)")


def redis_url() -> str:
    """REDIS_URL, else the socket of the embedded Redis that `make run` starts in the data dir."""
    return os.environ.get("REDIS_URL") or f"unix://{data_dir() / 'redis.sock'}?db=0"


def redact_url(url: str) -> str:
    """A connection URL safe to print: the password replaced."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url
