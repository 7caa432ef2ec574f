"""Settings from the environment: defaults, parsing, and refusals that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import environment
from tests.conftest import Api, new_client
from tests.servers import run_ugc
from ugc.clock import MovableClock, SystemClock
from ugc.config import ConfigError, Settings, public_url_for
from ugc.platform.database import Database
from ugc.wiring import leader_sweeper, password_hasher

# Keys as `openssl rand -hex 32` makes them (a production key must look random).
SECRET = "9f4c2b7e1a8d3f6c0b5e9a2d7c4f1e8b3a6d0c9f2e5b8a1d4c7f0e3b6a9d2c5f"
AUDIT = "3e7a0d4c8f1b5e9a2c6f0d3b7e1a4c8f2b5d9e0a3c7f1b4e8d2a6c9f0b3e7d1a"
DATA = "5b8e1d4a7c0f3b6e9d2a5c8f1b4e7d0a3c6f9b2e5d8a1c4f7b0e3d6a9c2f5b8e"
OLD = "8c1f4a7d0b3e6c9f2a5d8b1e4c7f0a3d6b9e2c5f8a1d4b7e0c3f6a9d2b5e8c1f"  # a key being rotated out
PRODUCTION_DB = "postgresql://ugc@db/ugc"  # never opened: production asks for PostgreSQL


TEN_YEARS = 3650 * 86400  # the longest a time setting may be (ugc.config.MAX_SECONDS)
TIME_SETTINGS = [
    "UGC_ACCESS_TOKEN_TTL",
    "UGC_REFRESH_TOKEN_TTL",
    "UGC_VERIFICATION_TOKEN_TTL",
    "UGC_IDEMPOTENCY_IN_FLIGHT",
    "UGC_READY_MAX_LAG",
    "UGC_KEEP_ALIVE",
    "UGC_AUDIT_CHECKPOINT_INTERVAL",
    "UGC_STOP_GRACE",
    "UGC_ABANDONED_UPLOAD_AFTER",
    "UGC_SWEEP_INTERVAL",
]


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"UGC_VAR_DIR": str(tmp_path)} | env)


def test_defaults_run_on_sqlite_in_the_var_dir_without_an_access_log(tmp_path: Path) -> None:
    found = settings(tmp_path)
    assert found.database_url == f"sqlite:///{tmp_path / 'ugc.sqlite3'}"
    assert found.access_log is False and found.redis_url is None and found.auto_complete_days == 3


def test_the_refresh_reuse_window_is_30_seconds_unless_set_and_0_turns_it_off(tmp_path: Path) -> None:
    assert settings(tmp_path).refresh_reuse_window == 30
    assert settings(tmp_path, UGC_REFRESH_REUSE_WINDOW="0").refresh_reuse_window == 0
    assert settings(tmp_path, UGC_REFRESH_REUSE_WINDOW=" 300 ").refresh_reuse_window == 300


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("1", True), ("On", True), ("false", False), ("0", False)]
)
def test_the_access_log_is_switched_by_a_boolean(tmp_path: Path, raw: str, expected: bool) -> None:
    assert settings(tmp_path, UGC_ACCESS_LOG=raw).access_log is expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UGC_ACCESS_LOG": "sometimes"}, "UGC_ACCESS_LOG must be true or false"),
        ({"UGC_MAX_UPLOAD_BYTES": "lots"}, "UGC_MAX_UPLOAD_BYTES must be a whole number"),
        ({"UGC_AUTO_COMPLETE_DAYS": "0"}, "UGC_AUTO_COMPLETE_DAYS must be a whole number from 1 to 3650"),
        # Past what can work: a completion date past 9999, a hash's memory below argon2's 8 KiB a lane.
        ({"UGC_AUTO_COMPLETE_DAYS": "999999999"}, "UGC_AUTO_COMPLETE_DAYS must be a whole number from 1 to 3650"),
        # 8 KiB a lane, and the hasher has 4: 8 to 31 passed here, then `ugc serve` died at its first hash.
        ({"UGC_ARGON2_MEMORY_KIB": "4"}, "UGC_ARGON2_MEMORY_KIB must be a whole number from 32 to"),
        ({"UGC_ARGON2_MEMORY_KIB": "31"}, "UGC_ARGON2_MEMORY_KIB must be a whole number from 32 to"),
        ({"UGC_ARGON2_TIME_COST": "9" * 20}, "UGC_ARGON2_TIME_COST must be a whole number from 1 to 100"),
        ({"UGC_KEEP_ALIVE": "-5"}, "UGC_KEEP_ALIVE must be a whole number"),
        ({"UGC_STOP_GRACE": "0"}, "UGC_STOP_GRACE must be a whole number from 1 to 315360000"),
        ({"UGC_STOP_GRACE": "ten"}, "UGC_STOP_GRACE must be a whole number"),
        # A retry comes within seconds; for as long a thief's replay goes unnoticed.
        ({"UGC_REFRESH_REUSE_WINDOW": "301"}, "UGC_REFRESH_REUSE_WINDOW must be a whole number from 0 to 300"),
        ({"UGC_REFRESH_REUSE_WINDOW": "-1"}, "UGC_REFRESH_REUSE_WINDOW must be a whole number from 0 to 300"),
        ({"UGC_REFRESH_REUSE_WINDOW": "1.5"}, "UGC_REFRESH_REUSE_WINDOW must be a whole number from 0 to 300"),
        # ~12,700 years: a token's expiry or a cut-off past year 9999 made every sign-in or keyed request 500.
        *(({name: "400000000000"}, f"{name} must be a whole number from 1 to 315360000") for name in TIME_SETTINGS),
        # TCP_USER_TIMEOUT is an int of milliseconds: past 2**31 - 1 `ugc serve` died at its socket.
        (
            {"UGC_PEER_TIMEOUT": "2147484"},
            "UGC_PEER_TIMEOUT must be a positive number of seconds from 0.01 up to 2147483",
        ),
        (
            {"UGC_CLIENT_TIMEOUT": "1e300"},
            "UGC_CLIENT_TIMEOUT must be a positive number of seconds from 0.01 up to 315360000",
        ),
        ({"UGC_WS_SEND_TIMEOUT": "nan"}, "UGC_WS_SEND_TIMEOUT must be a number of seconds"),
        ({"UGC_QUEUE_TIMEOUT": "0"}, "UGC_QUEUE_TIMEOUT must be a positive number of seconds"),
        ({"UGC_REDIS_URL": "notaurl"}, "UGC_REDIS_URL must be redis://"),
        ({"UGC_ENV": "staging"}, "UGC_ENV must be 'development' or 'production'"),
        ({"UGC_PROJECTIONS": "sideways"}, "UGC_PROJECTIONS must be 'inline' or 'external'"),
        ({"UGC_ENV": "production"}, "UGC_SECRET_KEY is required"),
        ({"UGC_ENV": "production", "UGC_SECRET_KEY": "short"}, "at least 32 characters"),
    ],
)
def test_an_unusable_setting_is_refused_by_name(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, **env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UGC_SECRET_KEY": SECRET}, "needs a PostgreSQL UGC_DATABASE_URL, not SQLite"),
        (
            {"UGC_SECRET_KEY": "change-me-change-me-change-me-change-me", "UGC_DATABASE_URL": PRODUCTION_DB},
            "UGC_SECRET_KEY must be a random string",
        ),
        ({"UGC_SECRET_KEY": " " * 40, "UGC_DATABASE_URL": PRODUCTION_DB}, "UGC_SECRET_KEY must be a random"),
        ({"UGC_SECRET_KEY": "k" * 40, "UGC_DATABASE_URL": PRODUCTION_DB}, "UGC_SECRET_KEY must be a random"),
        (
            {"UGC_SECRET_KEY": "your-secret-key-goes-here-0123456789", "UGC_DATABASE_URL": PRODUCTION_DB},
            "UGC_SECRET_KEY must be a random string",
        ),
        (
            {"UGC_SECRET_KEY": SECRET, "UGC_AUDIT_KEY": SECRET, "UGC_DATABASE_URL": PRODUCTION_DB},
            "UGC_AUDIT_KEY must differ from UGC_SECRET_KEY",
        ),
    ],
)
def test_production_refuses_sqlite_and_placeholder_keys(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, UGC_ENV="production", **env)


def test_production_starts_on_postgresql_with_a_real_key(tmp_path: Path) -> None:
    found = settings(
        tmp_path,
        UGC_ENV="production",
        UGC_SECRET_KEY=SECRET,
        UGC_AUDIT_KEY=AUDIT,
        UGC_DATA_KEY=DATA,
        UGC_DATABASE_URL=PRODUCTION_DB,
    )
    assert found.env == "production" and (found.audit_key, found.data_key) == (AUDIT, DATA)
    assert not (tmp_path / "audit.key").exists()  # a production key never comes from a file
    assert not (tmp_path / "data.key").exists()


@pytest.mark.parametrize(
    ("audit_key", "message"),
    [
        (None, "UGC_AUDIT_KEY is required"),
        ("short", "UGC_AUDIT_KEY must be a random string of at least 32 characters"),
        ("replace-me-replace-me-replace-me-replace-me", "UGC_AUDIT_KEY must be a random string"),
    ],
)
def test_production_needs_a_real_audit_key(tmp_path: Path, audit_key: str | None, message: str) -> None:
    env = {"UGC_ENV": "production", "UGC_SECRET_KEY": SECRET, "UGC_DATABASE_URL": PRODUCTION_DB}
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, **env, **({"UGC_AUDIT_KEY": audit_key} if audit_key else {}))


@pytest.mark.parametrize(
    ("data_key", "message"),
    [
        (None, "UGC_DATA_KEY is required"),
        ("short", "UGC_DATA_KEY must be a random string of at least 32 characters"),
        (SECRET, "UGC_DATA_KEY must differ from UGC_SECRET_KEY and UGC_AUDIT_KEY"),
        (AUDIT, "UGC_DATA_KEY must differ from UGC_SECRET_KEY and UGC_AUDIT_KEY"),
    ],
)
def test_production_needs_a_data_key_of_its_own(tmp_path: Path, data_key: str | None, message: str) -> None:
    env = {"UGC_ENV": "production", "UGC_SECRET_KEY": SECRET, "UGC_AUDIT_KEY": AUDIT}
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, **env, UGC_DATABASE_URL=PRODUCTION_DB, **({"UGC_DATA_KEY": data_key} if data_key else {}))


@pytest.mark.parametrize(
    ("previous", "message"),
    [
        ({"UGC_SECRET_KEY_PREVIOUS": AUDIT}, "UGC_SECRET_KEY_PREVIOUS must not hold a key of UGC_AUDIT_KEY"),
        ({"UGC_AUDIT_KEY_PREVIOUS": f"{OLD}, {DATA}"}, "UGC_AUDIT_KEY_PREVIOUS must not hold a key of UGC_DATA_KEY"),
        (
            {"UGC_SECRET_KEY_PREVIOUS": OLD, "UGC_DATA_KEY_PREVIOUS": OLD},
            "UGC_SECRET_KEY_PREVIOUS must not hold a key of UGC_DATA_KEY or UGC_DATA_KEY_PREVIOUS",
        ),
    ],
)
def test_production_keeps_the_keys_being_rotated_out_apart_from_the_other_variables(
    tmp_path: Path, previous: dict[str, str], message: str
) -> None:
    """Each key signs one kind of thing: the audit key an auditor holds must not sign tokens because
    it was left in UGC_SECRET_KEY_PREVIOUS."""
    env = {"UGC_ENV": "production", "UGC_SECRET_KEY": SECRET, "UGC_AUDIT_KEY": AUDIT, "UGC_DATA_KEY": DATA}
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, **env, UGC_DATABASE_URL=PRODUCTION_DB, **previous)
    rotating = settings(tmp_path, **env, UGC_DATABASE_URL=PRODUCTION_DB, UGC_SECRET_KEY_PREVIOUS=OLD)
    assert rotating.secret_keys == (SECRET, OLD)


def test_previous_secret_keys_verify_beside_the_current_one(tmp_path: Path) -> None:
    found = settings(tmp_path, UGC_SECRET_KEY=SECRET, UGC_SECRET_KEY_PREVIOUS=f" {AUDIT}, {DATA},")
    assert found.previous_secret_keys == (AUDIT, DATA) and found.secret_keys == (SECRET, AUDIT, DATA)
    assert settings(tmp_path, UGC_SECRET_KEY=SECRET).secret_keys == (SECRET,)


def test_previous_audit_keys_verify_beside_the_current_one(tmp_path: Path) -> None:
    found = settings(tmp_path, UGC_AUDIT_KEY=AUDIT, UGC_AUDIT_KEY_PREVIOUS=DATA)
    assert found.audit_keys == (AUDIT, DATA) and found.previous_secret_keys == ()
    with pytest.raises(ConfigError, match="UGC_AUDIT_KEY_PREVIOUS must not hold UGC_AUDIT_KEY's own value"):
        settings(tmp_path, UGC_AUDIT_KEY=AUDIT, UGC_AUDIT_KEY_PREVIOUS=AUDIT)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UGC_SECRET_KEY_PREVIOUS": SECRET}, "UGC_SECRET_KEY_PREVIOUS must not hold UGC_SECRET_KEY's own value"),
        ({"UGC_SECRET_KEY_PREVIOUS": "short", "UGC_ENV": "production"}, "must hold random keys of at least 32"),
    ],
)
def test_a_previous_secret_key_that_cannot_be_one_is_refused(tmp_path: Path, env: dict[str, str], message: str) -> None:
    production = {"UGC_AUDIT_KEY": AUDIT, "UGC_DATA_KEY": DATA, "UGC_DATABASE_URL": PRODUCTION_DB}
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, UGC_SECRET_KEY=SECRET, **production, **env)


def test_a_var_dir_that_cannot_keep_the_keys_is_told_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="cannot keep a key in .*a-file/secret.key"):
        settings(tmp_path / "a-file")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret.key").write_text("\n")
    with pytest.raises(ConfigError, match="secret.key is empty"):
        settings(tmp_path / "var")


@pytest.mark.parametrize("name", ["UGC_SECRET_KEY", "UGC_AUDIT_KEY", "UGC_DATA_KEY"])
def test_a_key_file_that_is_no_text_is_told_in_one_line_by_name(tmp_path: Path, name: str) -> None:
    """A key file holding bytes that are no UTF-8 (a binary key written there by hand, a file mixed
    up with another): `UnicodeDecodeError` came out of every command as a traceback, exit status 1."""
    key_file = tmp_path / f"{name.removeprefix('UGC_').removesuffix('_KEY').lower()}.key"
    key_file.write_bytes(b"\xff\xfe\x00" + bytes(range(128, 160)))
    done = run_ugc({"UGC_VAR_DIR": str(tmp_path)}, "users", "list")
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr.strip().splitlines() == [
        f"ugc: {name} is not set and {key_file} is no key: it holds bytes that are no UTF-8 text (0xff at 0)"
    ]
    assert key_file.read_bytes().startswith(b"\xff\xfe")  # left as it was: it may be the only copy


def test_development_generates_the_audit_key_once_into_var(tmp_path: Path) -> None:
    first = settings(tmp_path)
    assert (tmp_path / "audit.key").read_text() == first.audit_key != first.secret_key
    assert settings(tmp_path).audit_key == first.audit_key
    assert first.audit_dir == tmp_path / "audit" and first.audit_checkpoint_interval == 3600
    assert settings(tmp_path, UGC_AUDIT_DIR="/x/y").audit_dir == Path("/x/y")


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8123, "http://127.0.0.1:8123"),
        ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
        ("::1", 8000, "http://[::1]:8000"),
        ("market.local", 80, "http://market.local:80"),
    ],
)
def test_the_public_url_follows_the_address_served(host: str, port: int, url: str) -> None:
    assert public_url_for(host, port) == url


def test_an_explicit_public_url_wins_and_the_default_is_port_8000(tmp_path: Path) -> None:
    assert settings(tmp_path).public_url == "http://127.0.0.1:8000"
    assert settings(tmp_path, UGC_PUBLIC_URL="https://market.example/").public_url == "https://market.example"


def test_the_log_format_is_text_or_json(tmp_path: Path) -> None:
    assert settings(tmp_path).log_format == "text"
    assert settings(tmp_path, UGC_LOG_FORMAT="json").log_format == "json"
    with pytest.raises(ConfigError, match="UGC_LOG_FORMAT must be 'text' or 'json'"):
        settings(tmp_path, UGC_LOG_FORMAT="xml")


def test_only_local_proxies_are_trusted_for_the_client_address_unless_configured(tmp_path: Path) -> None:
    assert settings(tmp_path).forwarded_allow_ips == "127.0.0.1,::1"
    assert settings(tmp_path, UGC_FORWARDED_ALLOW_IPS="10.0.0.0/8").forwarded_allow_ips == "10.0.0.0/8"
    assert settings(tmp_path, UGC_FORWARDED_ALLOW_IPS="").forwarded_allow_ips == ""


def test_the_upload_quota_is_a_gibibyte_unless_configured(tmp_path: Path) -> None:
    assert settings(tmp_path).upload_quota_bytes == 1 << 30
    assert settings(tmp_path, UGC_UPLOAD_QUOTA_BYTES="5000000").upload_quota_bytes == 5_000_000
    with pytest.raises(ConfigError, match="UGC_UPLOAD_QUOTA_BYTES must be a whole number"):
        settings(tmp_path, UGC_UPLOAD_QUOTA_BYTES="1 GiB")


def test_the_longest_times_accepted_still_sign_in_and_replay_keyed_requests(
    backend: str, database_url: str, var_dir: Path, clock: MovableClock
) -> None:
    ten_years = {name: str(TEN_YEARS) for name in TIME_SETTINGS}
    longest = Settings.from_env(environment(backend, database_url, var_dir) | ten_years)
    with new_client(longest, clock) as client:
        api = Api(client, longest)
        user = api.verified_user()  # a verification token, an access and a refresh token ten years long
        refreshed = client.post("/api/auth/token/refresh/", json={"refresh": user["refresh"]})
        assert refreshed.status_code == 200, refreshed.text
        keyed = user["headers"] | {"Idempotency-Key": "ten-years"}
        first = client.post("/api/v1/notifications/mark-all-read/", headers=keyed)
        again = client.post("/api/v1/notifications/mark-all-read/", headers=keyed)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()


def test_the_least_argon2_memory_accepted_hashes_a_password(tmp_path: Path) -> None:
    hasher = password_hasher(settings(tmp_path, UGC_ARGON2_MEMORY_KIB="32", UGC_ARGON2_TIME_COST="1"))
    assert hasher.verify(hasher.hash("correct-horse-battery"), "correct-horse-battery")


def test_the_leader_sweeps_every_ten_minutes_unless_configured(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ugc.sqlite3'}")
    try:
        assert leader_sweeper(settings(tmp_path), db, SystemClock()).interval == 600
        assert leader_sweeper(settings(tmp_path, UGC_SWEEP_INTERVAL="60"), db, SystemClock()).interval == 60
    finally:
        db.close()
    with pytest.raises(ConfigError, match="UGC_SWEEP_INTERVAL must be a whole number from 1 to"):
        settings(tmp_path, UGC_SWEEP_INTERVAL="0")
