"""Settings read once from the environment (see the README's configuration table)."""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from ugc.platform.numbers import natural

DEFAULT_DATABASE_URL = "sqlite:///var/ugc.sqlite3"
DEFAULT_PORT = 8000
DEFAULT_STOP_GRACE = 30  # seconds (UGC_STOP_GRACE); docker-compose.yml's stop_grace_period leaves room above it

# Secrets copied from an example file rather than generated (docker-compose.yml's comments, docs).
_PLACEHOLDER_SECRET = re.compile(
    r"change.?me|replace.?me|example|placeholder|goes.?here|your.?(secret|key)", re.IGNORECASE
)
MIN_KEY_LENGTH = 32
MIN_KEY_CHARACTERS = 10  # distinct characters: 40 spaces or "aaaa…" are no key

# The longest a time setting may be, in seconds: ten years, as UGC_AUTO_COMPLETE_DAYS's 3650 days. A
# token's expiry or a cut-off `now -` it then stays far inside datetime's years 1 to 9999, where 2**62
# seconds raised OverflowError on every sign-in or keyed request; threading's waits hold up to ~292 years.
MAX_SECONDS = 3650 * 86400
QUEUE_TIMEOUT = 5.0  # seconds (UGC_QUEUE_TIMEOUT)
# Seconds a rotated refresh token is taken for a retry of its refresh (UGC_REFRESH_REUSE_WINDOW): a
# retry comes within seconds, and for this long a thief's replay of a stolen token goes unnoticed too.
REFRESH_REUSE_WINDOW = 30
MAX_REFRESH_REUSE_WINDOW = 300
# Sockets a server process holds open (UGC_WS_MAX): at ~75 KB each, about 750 MB of its memory.
WS_MAX = 10_000
# The kernel (TCP_USER_TIMEOUT) and PostgreSQL (lock_timeout, statement_timeout) take an int of
# milliseconds, 0 meaning no bound at all: the settings given to them run up to ~24.8 days.
MAX_MILLISECONDS_SETTING = (2**31 - 1) // 1000
# The shortest a time setting in fractions of a second may be. Below it nothing it bounds can end in
# time (a round trip to the database, a thread's turn on a busy host): `UGC_READ_YOUR_WRITES_TIMEOUT=
# 0.000001` answered every command 503, `UGC_CLIENT_TIMEOUT=0.001` closed connections before their
# request came. Tests provoke timeouts with 0.05 s.
MIN_SECONDS = 0.01
# Lanes of the argon2id hash (argon2-cffi's default, passed to it by ugc/wiring.py). argon2 wants 8 KiB
# of memory a lane: UGC_ARGON2_MEMORY_KIB below 8 * lanes passed here and failed every hash.
ARGON2_LANES = 4


def _weak_key(key: str) -> bool:
    """Whether a production key is plainly not random: short, of few characters, or a placeholder."""
    return (
        len(key.strip()) < MIN_KEY_LENGTH or len(set(key)) < MIN_KEY_CHARACTERS or bool(_PLACEHOLDER_SECRET.search(key))
    )


def is_postgres(database_url: str) -> bool:
    return database_url.startswith(("postgresql://", "postgres://"))


def sqlite_path(database_url: str) -> Path:
    """`sqlite:///var/ugc.sqlite3` -> `var/ugc.sqlite3`; `sqlite:////abs/x` -> `/abs/x`."""
    return Path(unquote(database_url.removeprefix("sqlite:///")))


def operator_login() -> str:
    """Who runs this process: the login its CLI commands' events name (`operator:<login>`)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a container's bare uid)
        return f"uid-{os.getuid()}"


def public_url_for(host: str, port: int) -> str:
    """The URL a browser on this machine reaches a server bound to `host`:`port` by.

    A wildcard bind is reached on the loopback address; set UGC_PUBLIC_URL for other machines.
    """
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class ConfigError(Exception):
    """The environment asks for something that cannot work (or is unsafe in production)."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    secret_key: str
    env: str
    public_url: str
    smtp_url: str | None
    mail_from: str
    var_dir: Path
    media_dir: Path
    max_upload_bytes: int
    access_token_ttl: int
    refresh_token_ttl: int
    projections: str
    verification_token_ttl: int = 86400
    upload_quota_bytes: int = 1 << 30
    auto_complete_days: int = 3
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    read_your_writes_timeout: float = 2.0
    # Seconds a request waits in line for a blocking thread (ugc/platform/blocking.py) or a read pool's
    # connection before it answers 503 (UGC_QUEUE_TIMEOUT).
    queue_timeout: float = QUEUE_TIMEOUT
    access_log: bool = False
    log_format: str = "text"
    # Proxies whose X-Forwarded-For names the client (uvicorn's --forwarded-allow-ips); "" trusts none.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    projection_max_attempts: int = 5  # failures in a row on one event before it is parked
    ready_max_lag: int = 30  # seconds of projection lag above which /readyz answers 503
    # Seconds after which a claimed Idempotency-Key with no answer and nothing appended is taken over
    # by a retry: the request that claimed it died (a live one appends well within it).
    idempotency_in_flight: int = 30
    # Seconds an idle HTTP keep-alive connection stays open. Longer than what clients and load
    # balancers keep theirs (httpx 5 s, browsers and most balancers up to 60 s): with uvicorn's 5 s,
    # a client reusing a connection as the server closes it gets a broken request.
    keep_alive: int = 75
    # Seconds the server waits for its client: for a request's whole head, or for the next piece of a
    # body it is reading (ugc/platform/client_limits.py); nginx's client_header/body_timeout.
    client_timeout: float = 30.0
    # Seconds a WebSocket's client may take no frame before its socket is closed (1013): it reads nothing.
    ws_send_timeout: float = 30.0
    # When set, GET /metrics answers only `Authorization: Bearer <this>` (Prometheus' `authorization`).
    metrics_token: str = ""
    # Seconds a connection's peer may acknowledge nothing we sent before the kernel drops it.
    peer_timeout: float = 120.0
    # Sockets one user may hold open on one server process; one more is closed 4429 (~75 KB each).
    ws_max_per_user: int = 32
    # Sockets one server process holds open, everyone's together; one more is closed 1013 (try again
    # later: a client reconnects, through the load balancer to a process with room).
    ws_max: int = WS_MAX
    # The HMAC key of the audit checkpoints (README: "Audit: the hash chain"); never in the database.
    audit_key: str = ""
    audit_dir: Path = Path("var/audit")
    # The master key that wraps each person's data key (ugc/platform/personal_data.py); never in the database.
    data_key: str = ""
    audit_checkpoint_interval: int = 3600  # seconds between the projection leader's checkpoints
    # Signing keys being rotated out (UGC_SECRET_KEY_PREVIOUS): what they signed still verifies.
    previous_secret_keys: tuple[str, ...] = ()
    # Audit keys being rotated out (UGC_AUDIT_KEY_PREVIOUS): what they signed still verifies.
    previous_audit_keys: tuple[str, ...] = ()
    # The master key(s) the data keys may be wrapped with before `ugc keys rewrap` (UGC_DATA_KEY_PREVIOUS).
    previous_data_keys: tuple[str, ...] = ()
    # Seconds a stop of `ugc serve` lets the requests under way finish before it cancels them
    # (uvicorn's timeout_graceful_shutdown); an orchestrator's own grace must exceed it.
    stop_grace: int = DEFAULT_STOP_GRACE
    # Seconds after which what a dead process left of an upload is swept (ugc/platform/abandoned_uploads.py).
    abandoned_upload_after: int = 3600
    # Seconds between the projection leader's sweeps of what has outlived its use (ugc/platform/sweeping.py).
    sweep_interval: int = 600
    # Seconds after a refresh during which its presented token, sent again, is a retry answered the
    # same refresh token rather than a replay that ends the session (api/sessions.py); 0: none.
    refresh_reuse_window: int = REFRESH_REUSE_WINDOW

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """The keys a token or a link may be signed with: the current one first."""
        return (self.secret_key, *self.previous_secret_keys)

    @property
    def audit_keys(self) -> tuple[str, ...]:
        """The keys a checkpoint, a journal line or a manifest may be signed with: the current one first."""
        return (self.audit_key, *self.previous_audit_keys)

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        var_dir = Path(env.get("UGC_VAR_DIR", "") or "var")  # empty: the default, not the working directory
        mode = env.get("UGC_ENV", "") or "development"
        if mode not in ("development", "production"):
            raise ConfigError(f"UGC_ENV must be 'development' or 'production', not {mode!r}")
        projections = env.get("UGC_PROJECTIONS", "") or "inline"
        if projections not in ("inline", "external"):
            raise ConfigError(f"UGC_PROJECTIONS must be 'inline' or 'external', not {projections!r}")
        # Checked before a key is made in var_dir: a URL no command can open writes nothing.
        database_url = _database_url(env.get("UGC_DATABASE_URL", "") or _default_database_url(var_dir))
        secret = _key(env, "UGC_SECRET_KEY", var_dir / "secret.key", mode)
        if mode == "production" and not is_postgres(database_url):
            # SQLite serves one machine's processes only, and its files live in a local directory.
            raise ConfigError("UGC_ENV=production needs a PostgreSQL UGC_DATABASE_URL, not SQLite")
        # Whoever may sign tokens must not be able to sign checkpoints too, and a leaked token or
        # checkpoint key must not open everyone's personal data: three keys, three secrets.
        audit_key = _key(env, "UGC_AUDIT_KEY", var_dir / "audit.key", mode, unlike={"UGC_SECRET_KEY": secret})
        data_key = _key(
            env,
            "UGC_DATA_KEY",
            var_dir / "data.key",
            mode,
            unlike={"UGC_SECRET_KEY": secret, "UGC_AUDIT_KEY": audit_key},
        )
        previous_secret_keys = _previous_keys(env, "UGC_SECRET_KEY", secret, mode)
        previous_audit_keys = _previous_keys(env, "UGC_AUDIT_KEY", audit_key, mode)
        previous_data_keys = _previous_keys(env, "UGC_DATA_KEY", data_key, mode)
        if mode == "production":
            _keep_apart(
                {
                    "UGC_SECRET_KEY": (secret, *previous_secret_keys),
                    "UGC_AUDIT_KEY": (audit_key, *previous_audit_keys),
                    "UGC_DATA_KEY": (data_key, *previous_data_keys),
                }
            )
        _check_database_tuning(env)
        log_format = env.get("UGC_LOG_FORMAT", "text") or "text"
        if log_format not in ("text", "json"):
            raise ConfigError(f"UGC_LOG_FORMAT must be 'text' or 'json', not {log_format!r}")
        return cls(
            database_url=database_url,
            redis_url=_redis_url(env.get("UGC_REDIS_URL") or None),
            secret_key=secret,
            previous_secret_keys=previous_secret_keys,
            env=mode,
            public_url=_public_url(env.get("UGC_PUBLIC_URL") or public_url_for("127.0.0.1", DEFAULT_PORT)),
            smtp_url=_smtp_url(env.get("UGC_SMTP_URL") or None),
            mail_from=_mail_from(env.get("UGC_MAIL_FROM", "") or "noreply@ugc.local"),
            var_dir=var_dir,
            media_dir=Path(env.get("UGC_MEDIA_DIR", "") or var_dir / "media"),
            max_upload_bytes=_int(env, "UGC_MAX_UPLOAD_BYTES", 26214400),
            upload_quota_bytes=_int(env, "UGC_UPLOAD_QUOTA_BYTES", 1 << 30),
            access_token_ttl=_int(env, "UGC_ACCESS_TOKEN_TTL", 900, at_most=MAX_SECONDS),
            refresh_token_ttl=_int(env, "UGC_REFRESH_TOKEN_TTL", 1209600, at_most=MAX_SECONDS),
            projections=projections,
            verification_token_ttl=_int(env, "UGC_VERIFICATION_TOKEN_TTL", 86400, at_most=MAX_SECONDS),
            # Bounds where a value past them cannot work: dates end in 9999; argon2 wants 8 KiB a lane.
            auto_complete_days=_int(env, "UGC_AUTO_COMPLETE_DAYS", 3, at_most=3650),
            argon2_time_cost=_int(env, "UGC_ARGON2_TIME_COST", 3, at_most=100),
            argon2_memory_kib=_int(
                env, "UGC_ARGON2_MEMORY_KIB", 65536, at_least=8 * ARGON2_LANES, at_most=4 * 1024 * 1024
            ),
            access_log=_bool(env, "UGC_ACCESS_LOG", False),
            log_format=log_format,
            forwarded_allow_ips=_proxies(env.get("UGC_FORWARDED_ALLOW_IPS", "127.0.0.1,::1").strip()),
            projection_max_attempts=_int(env, "UGC_PROJECTION_MAX_ATTEMPTS", 5),
            ready_max_lag=_int(env, "UGC_READY_MAX_LAG", 30, at_most=MAX_SECONDS),
            idempotency_in_flight=_int(env, "UGC_IDEMPOTENCY_IN_FLIGHT", 30, at_most=MAX_SECONDS),
            keep_alive=_int(env, "UGC_KEEP_ALIVE", 75, at_most=MAX_SECONDS),
            client_timeout=_seconds(env, "UGC_CLIENT_TIMEOUT", 30.0),
            audit_key=audit_key,
            previous_audit_keys=previous_audit_keys,
            data_key=data_key,
            previous_data_keys=previous_data_keys,
            audit_dir=Path(env.get("UGC_AUDIT_DIR", "") or var_dir / "audit"),
            audit_checkpoint_interval=_int(env, "UGC_AUDIT_CHECKPOINT_INTERVAL", 3600, at_most=MAX_SECONDS),
            read_your_writes_timeout=_seconds(env, "UGC_READ_YOUR_WRITES_TIMEOUT", 2.0),
            queue_timeout=queue_timeout(env),
            ws_send_timeout=_seconds(env, "UGC_WS_SEND_TIMEOUT", 30.0),
            ws_max_per_user=_int(env, "UGC_WS_MAX_PER_USER", 32),
            ws_max=_int(env, "UGC_WS_MAX", WS_MAX),
            peer_timeout=_milliseconds_setting(env, "UGC_PEER_TIMEOUT", 120.0),
            metrics_token=_metrics_token(env.get("UGC_METRICS_TOKEN", "")),
            stop_grace=_int(env, "UGC_STOP_GRACE", DEFAULT_STOP_GRACE, at_most=MAX_SECONDS),
            abandoned_upload_after=_int(env, "UGC_ABANDONED_UPLOAD_AFTER", 3600, at_most=MAX_SECONDS),
            sweep_interval=_int(env, "UGC_SWEEP_INTERVAL", 600, at_most=MAX_SECONDS),
            refresh_reuse_window=_int(
                env, "UGC_REFRESH_REUSE_WINDOW", REFRESH_REUSE_WINDOW, at_least=0, at_most=MAX_REFRESH_REUSE_WINDOW
            ),
        )


def _database_url(url: str) -> str:
    """A database `ugc` opens: PostgreSQL, naming its user and database, or an SQLite file's path
    after `sqlite:///`. Any other was taken for a database without tables until a command opened it.

    The read side connects through libpq, which fills in what a URL leaves out (the user from PGUSER
    or the system's, the database from PGDATABASE or the user's name), and the event stores through
    the library's settings, which take `postgres` for both: `postgresql://127.0.0.1/` kept the logs in
    the database `postgres` and the read tables in one named after the system user. So for the host:
    libpq's is a local socket, the library's 127.0.0.1. A port that is no port (`:99999`, `:abc`) was
    taken for a database not reachable yet, and awaited for two minutes."""
    if is_postgres(url):
        parts = _split(url)
        if parts and parts.username and parts.path.strip("/") and _has_host(url, ("postgresql", "postgres")):
            if parts.query or parts.fragment:
                # The event stores are given the host, port, user, password and database alone
                # (ugc/platform/store.py), so an option after `?` held for the read side only:
                # `sslmode=verify-full` for half the connections. libpq's PG* variables reach both.
                raise ConfigError(
                    "UGC_DATABASE_URL takes no query (?...): the event stores would not read it; libpq's environment "
                    f"variables (PGSSLMODE=verify-full, PGSSLROOTCERT=...) reach every connection, not "
                    f"{_without_secret(url)!r}"
                )
            return url
    elif url.startswith("sqlite:///") and url.removeprefix("sqlite:///").strip():
        return url
    raise ConfigError(
        "UGC_DATABASE_URL must be sqlite:///path or postgresql://user:pass@host:5432/db (with its user, host "
        f"and database), not {_without_secret(url)!r}"
    )


def _redis_url(url: str | None) -> str | None:
    """Redis' client fills in what is left out (localhost, database 0, even for `/abc`), and a port
    that is no number failed the server's start with a traceback: a URL of that form is refused."""
    if url is not None and not _redis_form(url):
        raise ConfigError(
            f"UGC_REDIS_URL must be redis://host:port/db (or rediss://, unix:///path), not {_without_secret(url)!r}"
        )
    return url


def _redis_form(url: str) -> bool:
    parts = _split(url)
    if parts is None:
        return False
    if parts.scheme == "unix":
        return bool(parts.path) and not any(ch.isspace() for ch in url)
    database = parts.path.removeprefix("/")
    return _has_host(url, ("redis", "rediss")) and (database == "" or re.fullmatch("[0-9]+", database) is not None)


def _without_secret(url: str) -> str:
    """`url` to show in an error line: a password it holds (`scheme://user:password@host`) starred."""
    user, at, host = url.rpartition("@")
    if not at or ":" not in user.partition("://")[2]:
        return url
    return f"{user.rpartition(':')[0]}:***@{host}"


def _public_url(url: str) -> str:
    """Where browsers and mail links reach the API: an http(s) URL with a host, and a path at most (links
    append theirs, and a query or fragment would swallow it). No `user:pass@`: every mail and page would
    hand the credentials to whoever reads them."""
    if not _has_host(url, ("http", "https")) or any(mark in url for mark in "?#@"):
        raise ConfigError(f"UGC_PUBLIC_URL must be http(s)://host[:port][/path], not {_without_secret(url)!r}")
    return url.rstrip("/")


def _smtp_url(url: str | None) -> str | None:
    """The mail server: a host, perhaps a port and credentials, nothing after them (a path, a query or
    a fragment would be ignored, and so a setting the operator meant, such as a mailbox, silently lost)."""
    if url is not None and (
        not _has_host(url, ("smtp", "smtps")) or urlsplit(url).path not in ("", "/") or any(m in url for m in "?#")
    ):
        raise ConfigError(
            f"UGC_SMTP_URL must be smtp://[user:pass@]host[:port] (or smtps://), not {_without_secret(url)!r}"
        )
    return url


def _split(url: str) -> SplitResult | None:
    """`url`'s parts, or None where the parser refuses it: a bracketed host that is no IPv6 address or
    lacks its `]` raised ValueError, a traceback out of every command."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _has_host(url: str, schemes: tuple[str, ...]) -> bool:
    parts = _split(url)
    if parts is None:
        return False
    try:
        port = parts.port  # ValueError: a port that is no number from 0 to 65535
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname) and port != 0 and not any(ch.isspace() for ch in url)


def _mail_from(sender: str) -> str:
    """The mails' From: an address, with a display name or without (`UGC Market <noreply@host>`)."""
    addresses = getaddresses([sender])
    local, _, domain = addresses[0][1].rpartition("@")
    if len(addresses) != 1 or not local or not domain or any(ch.isspace() for ch in addresses[0][1]):
        raise ConfigError(f"UGC_MAIL_FROM must be an e-mail address such as noreply@example.com, not {sender!r}")
    if not addresses[0][1].isascii():  # SMTP's MAIL FROM carries it as is, and takes ASCII alone
        raise ConfigError(
            f"UGC_MAIL_FROM must be an ASCII address (a domain in its IDNA form, xn--...), not {sender!r}"
        )
    return sender


def _proxies(allowed: str) -> str:
    """uvicorn's --forwarded-allow-ips: an entry that is no address or network would be compared as
    text with the peer's address, and so never match (127.0.0.0/33, a host name)."""
    if allowed == "*":
        return allowed
    for entry in filter(None, (item.strip() for item in allowed.split(","))):
        try:
            ipaddress.ip_network(entry) if "/" in entry else ipaddress.ip_address(entry)
        except ValueError:
            raise ConfigError(
                f"UGC_FORWARDED_ALLOW_IPS: {entry!r} is no IP address or network (CIDR), e.g. 10.0.0.0/8"
            ) from None
    return allowed


def _default_database_url(var_dir: Path) -> str:
    return f"sqlite:///{var_dir / 'ugc.sqlite3'}"


def _int(env: Mapping[str, str], name: str, default: int, *, at_least: int = 1, at_most: int = 2**62) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = natural(raw.strip(), at_most)
    if value is None or value < at_least:
        raise ConfigError(f"{name} must be a whole number from {at_least} to {at_most}, not {raw!r}")
    return value


# A number as an operator writes one: a sign, ASCII digits, a point, an exponent.
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _seconds(
    env: Mapping[str, str], name: str, default: float, *, at_least: float = MIN_SECONDS, at_most: float = MAX_SECONDS
) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if _DECIMAL.fullmatch(raw.strip()) is None:  # float() also reads "1_000", "٣", "inf"
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}")
    value = float(raw)
    if not (at_least <= value <= at_most):
        raise ConfigError(f"{name} must be a positive number of seconds from {at_least} up to {at_most}, not {raw!r}")
    return value


def _milliseconds_setting(env: Mapping[str, str], name: str, default: float) -> float:
    """Seconds handed on in whole milliseconds: past the int's ceiling PostgreSQL refused every
    connection (awaited as a database not reachable); below 1 ms the bound rounded to 0, none (MIN_SECONDS
    keeps them above it)."""
    return _seconds(env, name, default, at_most=MAX_MILLISECONDS_SETTING)


def _metrics_token(token: str) -> str:
    """The token /metrics asks for (none: open). One of spaces alone was taken for none, and left
    /metrics open where the operator meant to close it."""
    if token and not token.strip():
        raise ConfigError("UGC_METRICS_TOKEN must be a token, or empty to leave /metrics open, not blank")
    return _utf8("UGC_METRICS_TOKEN", token.strip())


def _utf8(name: str, value: str) -> str:
    """`value`, which is used as UTF-8 text (a key is encoded to derive or sign with): bytes of the
    environment that are no UTF-8, which Python holds as surrogates, are refused here by name. The data
    key's failed `migrate` with exit status 1 and the codec's words, the others every signature later."""
    try:
        value.encode()
    except UnicodeEncodeError as error:
        byte = ord(value[error.start]) - 0xDC00  # the surrogate that stands for an undecodable byte
        shown = f"0x{byte:02x}" if 0x80 <= byte <= 0xFF else repr(value[error.start])
        raise ConfigError(
            f"{name} must be UTF-8 text: it holds bytes that are no UTF-8 ({shown} at {error.start})"
        ) from None
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _key(env: Mapping[str, str], name: str, file: Path, mode: str, *, unlike: Mapping[str, str] | None = None) -> str:
    """The secret `name`: in production given, strong and none of `unlike`'s; in development, when
    not given, generated once into `file`."""
    value = env.get(name)
    if not value:
        if mode == "production":
            raise ConfigError(f"{name} is required when UGC_ENV=production")
        return _secret_from_file(file, name)
    _utf8(name, value)
    if mode == "production" and _weak_key(value):
        raise ConfigError(f"{name} must be a random string of at least 32 characters in production")
    if mode == "production" and value in (unlike or {}).values():
        raise ConfigError(f"{name} must differ from {' and '.join(unlike or {})}")
    return value


def _previous_keys(env: Mapping[str, str], name: str, current: str, mode: str) -> tuple[str, ...]:
    """`{name}_PREVIOUS`: the keys being rotated out, comma-separated, none of them the current one
    (that would be a rotation forgotten halfway); in production each as strong as a current key."""
    variable = f"{name}_PREVIOUS"
    keys = tuple(filter(None, (key.strip() for key in _utf8(variable, env.get(variable, "")).split(","))))
    if current in keys:
        raise ConfigError(f"{variable} must not hold {name}'s own value: set {name} to the new key")
    if mode == "production" and any(_weak_key(key) for key in keys):
        raise ConfigError(f"{variable} must hold random keys of at least 32 characters each in production")
    return keys


def _keep_apart(families: Mapping[str, tuple[str, ...]]) -> None:
    """No key being rotated out is another variable's key, current or being rotated out: an auditor
    holding the audit keys must not be able to sign tokens with one left in UGC_SECRET_KEY_PREVIOUS.
    (The current keys are told apart where they are read, `_key`.)"""
    for name, (_, *previous) in families.items():
        for other, keys in families.items():
            if other != name and set(previous) & set(keys):
                raise ConfigError(f"{name}_PREVIOUS must not hold a key of {other} or {other}_PREVIOUS")


def _secret_from_file(path: Path, name: str) -> str:
    """Generate a development key once (signing, audit), so what it signed stays valid across restarts.

    Written whole beside it and linked into place: a process starting at the same moment (`--workers`,
    several servers) finds the file complete or not at all, never created and still empty.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
            with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(secrets.token_urlsafe(48))
            try:
                with contextlib.suppress(FileExistsError):  # another process's came first: it is the key
                    os.link(draft, path)
            finally:
                draft.unlink()
        key = path.read_text().strip()
    except OSError as error:  # UGC_VAR_DIR is a file, or not ours to write: one line, not a traceback
        raise ConfigError(f"cannot keep a key in {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:  # a binary key put there by hand: told, and the file left as it is
        raise ConfigError(
            f"{name} is not set and {path} is no key: it holds bytes that are no UTF-8 text "
            f"(0x{error.object[error.start]:02x} at {error.start})"
        ) from None
    if not key:
        raise ConfigError(f"{path} is empty: delete it to have a new key made, or put one in it")
    return key


@dataclass(frozen=True)
class PoolSizes:
    """Connections one process may open to PostgreSQL, per pool (README: "Connection budget").

    Store pools open connections only as needed; `per_worker` and `per_projector` are the most a
    process holds.
    """

    database: int = 4  # UGC_DB_POOL_MAX: the read/write pool of blocking work (commands, runners)
    database_async: int = 4  # UGC_DB_ASYNC_POOL_MAX: the event loop's read pool (lists, waits)
    store: int = 1  # UGC_STORE_POOL_MAX: per context's event store (appends take a table lock anyway)
    # UGC_ORDERS_STORE_POOL_MAX: set to 2 when every follow-up command loaded its order (one query)
    # while the groups' appends went on (36-47 ms a load at 64 lifecycles at once with one
    # connection, 5 ms with two: bench/RESULTS.md). The group's leader loads them now, between its
    # appends, so one may do again: not measured since.
    orders_store: int = 2

    @property
    def per_worker(self) -> int:
        """A `ugc serve` worker: its pools, the five contexts' event stores, its one LISTEN, the
        connection of its own checks (/readyz, /metrics) and its lease keeper's (with leases when it
        runs the projections, without to be a live member otherwise: api/throttle.py)."""
        return self.database + self.database_async + 4 * self.store + self.orders_store + 3

    @property
    def per_projector(self) -> int:
        """A `ugc project` process: its pool, the event stores, the lease keeper's connection, its LISTEN."""
        return self.database + 4 * self.store + self.orders_store + 2


READ_LOCK_TIMEOUT = 5.0  # seconds: the default of UGC_DB_LOCK_TIMEOUT, the event stores' bound


def read_lock_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a statement of the read database's sessions waits for a lock (`UGC_DB_LOCK_TIMEOUT`)."""
    env = os.environ if environ is None else environ
    return _milliseconds_setting(env, "UGC_DB_LOCK_TIMEOUT", READ_LOCK_TIMEOUT)


# Seconds: the default of UGC_DB_READ_TIMEOUT. The costliest page measured on 100,000 services and
# 100,000 orders (bench/read_costs.py) took 0.3 s: a search of two letters, which no index narrows.
READ_STATEMENT_TIMEOUT = 3.0


def read_statement_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds one statement of a list's page read may run (`UGC_DB_READ_TIMEOUT`)."""
    env = os.environ if environ is None else environ
    return _milliseconds_setting(env, "UGC_DB_READ_TIMEOUT", READ_STATEMENT_TIMEOUT)


def queue_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds work waits in line for a blocking thread or a read pool's connection (`UGC_QUEUE_TIMEOUT`)."""
    env = os.environ if environ is None else environ
    return _seconds(env, "UGC_QUEUE_TIMEOUT", QUEUE_TIMEOUT)


def _check_database_tuning(env: Mapping[str, str]) -> None:
    """The settings the database's pools and sessions read where they are made, some on PostgreSQL
    alone: a bad one is refused at start here, by every command on either backend, not when (or
    whether) a pool comes to read it."""
    pool_sizes(env)
    read_lock_timeout(env)
    read_statement_timeout(env)


def pool_sizes(environ: Mapping[str, str] | None = None) -> PoolSizes:
    env = os.environ if environ is None else environ
    defaults = PoolSizes()
    return PoolSizes(
        database=_int(env, "UGC_DB_POOL_MAX", defaults.database),
        database_async=_int(env, "UGC_DB_ASYNC_POOL_MAX", defaults.database_async),
        store=_int(env, "UGC_STORE_POOL_MAX", defaults.store),
        orders_store=_int(env, "UGC_ORDERS_STORE_POOL_MAX", defaults.orders_store),
    )
