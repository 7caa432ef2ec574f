"""Settings from the environment: defaults, parsing, and refusals that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ugc.config import ConfigError, Settings, public_url_for


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"UGC_VAR_DIR": str(tmp_path)} | env)


def test_defaults_run_on_sqlite_in_the_var_dir_without_an_access_log(tmp_path: Path) -> None:
    found = settings(tmp_path)
    assert found.database_url == f"sqlite:///{tmp_path / 'ugc.sqlite3'}"
    assert found.access_log is False and found.redis_url is None and found.auto_complete_days == 3


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
        ({"UGC_AUTO_COMPLETE_DAYS": "0"}, "UGC_AUTO_COMPLETE_DAYS must be positive"),
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
        ({"UGC_SECRET_KEY": "k" * 40}, "needs a PostgreSQL UGC_DATABASE_URL, not SQLite"),
        (
            {"UGC_SECRET_KEY": "change-me-change-me-change-me-change-me", "UGC_DATABASE_URL": "postgresql://db/ugc"},
            "looks like a placeholder",
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
        UGC_SECRET_KEY="k" * 40,
        UGC_AUDIT_KEY="a" * 40,
        UGC_DATABASE_URL="postgresql://db/ugc",
    )
    assert found.env == "production" and found.audit_key == "a" * 40
    assert not (tmp_path / "audit.key").exists()  # a production key never comes from a file


@pytest.mark.parametrize(
    ("audit_key", "message"),
    [
        (None, "UGC_AUDIT_KEY is required"),
        ("short", "UGC_AUDIT_KEY must be a random string of at least 32 characters"),
        ("replace-me-replace-me-replace-me-replace-me", "UGC_AUDIT_KEY must be a random string"),
    ],
)
def test_production_needs_a_real_audit_key(tmp_path: Path, audit_key: str | None, message: str) -> None:
    env = {"UGC_ENV": "production", "UGC_SECRET_KEY": "k" * 40, "UGC_DATABASE_URL": "postgresql://db/ugc"}
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, **env, **({"UGC_AUDIT_KEY": audit_key} if audit_key else {}))


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
