"""Settings from the environment, with documented defaults.

Every value can be overridden by an environment variable of the same name, so the same code runs
on the embedded defaults (SQLite under ``instance/``, a private Redis) and in production
(PostgreSQL, a shared Redis, a real provider).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The folder of a local install: the SQLite database, media and make run's private Redis.
INSTANCE = Path(os.environ.get("INSTANCE_DIR") or ROOT / "instance").resolve()
# While `make run` serves with its private Redis, it writes that server's URL here, so a `flask`
# command or `worker.py` started in another terminal without REDIS_URL joins the same Redis
# (instead of queueing work where no worker listens). Removed when `make run` stops.
PRIVATE_REDIS_URL_FILE = INSTANCE / "redis.url"


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE / 'igny8.db'}")
    # Plain "postgresql://" would pick psycopg2, which we do not ship; psycopg 3 is pinned.
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


class Config:
    """Defaults for a local install; read once, when the class body runs in ``from_env``."""

    SECRET_KEY: str = "dev-secret-change-me"
    SQLALCHEMY_DATABASE_URI: str = ""
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    MEDIA_ROOT: str = str(INSTANCE / "media")
    # Where images are stored: "local" (the folder MEDIA_ROOT) or "s3" (S3_BUCKET, shared by workers
    # on several machines). Credentials for s3 come from the standard AWS_* variables / boto3 chain.
    MEDIA_STORE: str = "local"
    S3_BUCKET: str | None = None
    S3_ENDPOINT_URL: str | None = None  # for an S3-compatible server (MinIO, Ceph...); unset for AWS
    S3_REGION: str = "us-east-1"
    # The public base URL at which the media store's files can be read without a login (a CDN or a
    # public bucket that holds the same keys), e.g. "https://cdn.example.com/media/". When set, the
    # finished article (GET /api/v1/writer/content/<id>/html) points its images there: this base,
    # then the file's key ("a1/2026/05/slug-1a2b3c4d.webp"). Unset: the app's own /media/ URLs.
    PUBLIC_MEDIA_URL: str | None = None
    OPENAI_BASE_URL: str | None = None
    RUNWARE_BASE_URL: str | None = None
    # Seconds the offline placeholder renderer waits per image so demo progress is visible.
    LOCAL_PROVIDER_LATENCY: float = 1.0
    # Seconds one provider call may take before it counts as a timeout.
    PROVIDER_TIMEOUT: float = 120.0
    # Hosts (``host`` or ``host:port``, comma-separated in the environment) that URLs from outside
    # (a provider's image URL) may reach over plain http or at a private address; empty = none:
    # https to public addresses only. For tests and private deployments (DESIGN.md).
    ALLOWED_HTTP_HOSTS: tuple[str, ...] = ()
    # A download from such a URL larger than this many megabytes is refused while streaming.
    MAX_DOWNLOAD_MB: float = 50.0
    # Seconds one webhook delivery attempt may take (connect, send, the answer's status line).
    WEBHOOK_TIMEOUT: float = 10.0
    # Seconds before each retry of a delivery that got no 2xx (comma-separated in the environment):
    # 6 tries over about 10 minutes by default.
    WEBHOOK_RETRY_INTERVALS: tuple[float, ...] = (30.0, 60.0, 120.0, 180.0, 240.0)
    # RQ worker loops one `worker.py` runs (forked after the app is loaded, sharing its memory
    # copy-on-write): each runs one batch at a time. See bench/capacity.py and docs/production.md.
    WORKER_PROCESSES: int = 1
    # A JSON file of prices over the built-in table (igny8/spend/prices.py; docs/costs.md); unset: none.
    PRICES_FILE: str | None = None
    # Redis keys of a finished task live this long; the database keeps the outcome after.
    PROGRESS_TTL: int = 24 * 3600
    # A running task whose heartbeat is older than this is considered dead (worker killed).
    HEARTBEAT_STALE_SECONDS: int = 30
    RECONCILE_INTERVAL: int = 15
    IMAGES_PER_PAGE: int = 20
    BATCHES_PER_PAGE: int = 25  # rows of the Batches page
    # An open event stream re-checks what authenticated it (API token, login session) this often,
    # and on every keepalive; a revoked token or a logged-out session ends the stream.
    STREAM_AUTH_RECHECK_SECONDS: float = 15.0
    # An open event stream waits this long for Redis to answer again (keepalives meanwhile), then
    # reads on; past it the stream ends and the client's reconnect gets a snapshot.
    STREAM_OUTAGE_SECONDS: float = 30.0
    # Seconds between keepalive comments of a quiet account stream (at most 15, DESIGN.md); a stream
    # whose client left is freed at its next write.
    STREAM_KEEPALIVE_SECONDS: float = 15.0
    # Event streams a web process opens at the same time; more wait their turn, so a burst of
    # openings does not make every other request wait (igny8/streaming/admission.py).
    STREAM_OPENS_AT_ONCE: int = 16
    # Behind a reverse proxy (deploy/nginx/igny8.conf): how many proxies in front of the app set
    # X-Forwarded-For/-Proto/-Host/-Port (0: none, the headers are ignored). Bind gunicorn where only
    # the proxy reaches it, or a client could forge them.
    TRUSTED_PROXY_HOPS: int = 0
    # With the local media store behind nginx: /media/ checks the login and the account, then answers
    # X-Accel-Redirect to this internal location and nginx sends the file ("" = the app sends it).
    MEDIA_ACCEL_PREFIX: str = ""
    # The Bearer token a Prometheus scraper sends to /metrics (operators may also log in); unset: none.
    METRICS_TOKEN: str | None = None
    SESSION_COOKIE_HTTPONLY: bool = True
    SESSION_COOKIE_SAMESITE: str = "Lax"
    SESSION_COOKIE_SECURE: bool = False
    WTF_CSRF_CHECK_DEFAULT: bool = False  # checked in a before_request hook, skipped for Bearer auth
    WTF_CSRF_TIME_LIMIT: int | None = None
    MAX_CONTENT_LENGTH: int = 1024 * 1024
    TESTING: bool = False

    @classmethod
    def from_env(cls) -> dict:
        """Return the configuration as a dict, environment first, class defaults second."""
        config = {k: getattr(cls, k) for k in dir(cls) if k.isupper()}
        config["SQLALCHEMY_DATABASE_URI"] = _database_url()
        if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            # A SQLite file connection cannot go stale: no ping before every checkout (one query
            # fewer for every request and stream open). A server's connections can, so they keep it.
            config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
        if not os.environ.get("REDIS_URL") and PRIVATE_REDIS_URL_FILE.is_file():
            config["REDIS_URL"] = PRIVATE_REDIS_URL_FILE.read_text().strip() or config["REDIS_URL"]
        for name in ("SECRET_KEY", "REDIS_URL", "MEDIA_ROOT", "OPENAI_BASE_URL", "RUNWARE_BASE_URL", "MEDIA_STORE",
                     "S3_BUCKET", "S3_ENDPOINT_URL", "S3_REGION", "MEDIA_ACCEL_PREFIX", "METRICS_TOKEN",
                     "PUBLIC_MEDIA_URL", "PRICES_FILE"):
            if os.environ.get(name):
                config[name] = os.environ[name]
        if os.environ.get("ALLOWED_HTTP_HOSTS"):
            config["ALLOWED_HTTP_HOSTS"] = tuple(h.strip().lower() for h in os.environ["ALLOWED_HTTP_HOSTS"].split(",")
                                                 if h.strip())
        for name in ("LOCAL_PROVIDER_LATENCY", "PROVIDER_TIMEOUT", "MAX_DOWNLOAD_MB", "STREAM_AUTH_RECHECK_SECONDS",
                     "STREAM_OUTAGE_SECONDS", "STREAM_KEEPALIVE_SECONDS", "WEBHOOK_TIMEOUT"):
            if os.environ.get(name):
                config[name] = float(os.environ[name])
        if os.environ.get("WEBHOOK_RETRY_INTERVALS"):
            config["WEBHOOK_RETRY_INTERVALS"] = tuple(float(v) for v in os.environ["WEBHOOK_RETRY_INTERVALS"].split(",")
                                                      if v.strip())
        for name in ("WORKER_PROCESSES", "STREAM_OPENS_AT_ONCE"):
            if os.environ.get(name):
                config[name] = int(os.environ[name])
        if os.environ.get("TRUSTED_PROXY_HOPS"):
            config["TRUSTED_PROXY_HOPS"] = int(os.environ["TRUSTED_PROXY_HOPS"])
        config["SESSION_COOKIE_SECURE"] = _bool("SESSION_COOKIE_SECURE", False)
        config["PROVIDER_LIMITS"] = _provider_limits()
        return config


def _provider_limits() -> dict:
    """``PROVIDER_LIMIT_OPENAI=4/50``: at most 4 calls in flight and 50 a minute, for every worker
    together (the account's plan at the provider); unset providers keep ratelimit.DEFAULT_LIMITS."""
    from .providers import PROVIDERS
    from .providers.ratelimit import Limit

    limits = {}
    for name in PROVIDERS:
        value = os.environ.get(f"PROVIDER_LIMIT_{name.upper()}")
        if not value:
            continue
        concurrent, _, per_minute = value.partition("/")
        try:
            limits[name] = Limit(concurrent=int(concurrent), per_minute=int(per_minute))
        except ValueError:
            raise ValueError(f"PROVIDER_LIMIT_{name.upper()}={value!r}: expected 'calls in flight/calls per "
                             "minute', for example 4/50") from None
        if limits[name].concurrent < 1 or limits[name].per_minute < 1:
            raise ValueError(f"PROVIDER_LIMIT_{name.upper()}={value!r}: both numbers must be at least 1")
    return limits
