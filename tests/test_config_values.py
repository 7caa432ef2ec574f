"""Settings whose values must have a form to work: a URL, an address, a network, a bound. Each bad
one is refused at start, by name, instead of a server that starts and fails later (mail deferred
for ever, a proxy never trusted, a socket option refused), and an empty one is the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import run_ugc
from ugc.config import ConfigError, Settings


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"UGC_VAR_DIR": str(tmp_path)} | env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("UGC_PUBLIC_URL", "ftp://market.example", "UGC_PUBLIC_URL must be http(s)://host"),
        ("UGC_PUBLIC_URL", "not a url", "UGC_PUBLIC_URL must be http(s)://host"),
        ("UGC_PUBLIC_URL", "https://", "UGC_PUBLIC_URL must be http(s)://host"),
        ("UGC_PUBLIC_URL", "http://market.example:99999", "UGC_PUBLIC_URL must be http(s)://host"),
        # Links are the URL and a path: `https://market.example/?ref=mail/verify-email?token=...` leads nowhere.
        ("UGC_PUBLIC_URL", "https://market.example/?ref=mail", "UGC_PUBLIC_URL must be http(s)://host"),
        ("UGC_PUBLIC_URL", "https://market.example/#top", "UGC_PUBLIC_URL must be http(s)://host"),
        # Every mail's link and every page would carry the credentials to whoever reads them.
        ("UGC_PUBLIC_URL", "https://admin:secret@market.example", "UGC_PUBLIC_URL must be http(s)://host"),
        ("UGC_SMTP_URL", "http://mail:25", "UGC_SMTP_URL must be smtp://"),
        ("UGC_SMTP_URL", "garbage", "UGC_SMTP_URL must be smtp://"),
        ("UGC_SMTP_URL", "smtp://mail:notaport", "UGC_SMTP_URL must be smtp://"),
        # Nothing after the server is read: a mailbox or option written there was silently dropped.
        ("UGC_SMTP_URL", "smtp://mail:25/inbox", "UGC_SMTP_URL must be smtp://"),
        ("UGC_SMTP_URL", "smtps://user:secret@mail?auth=plain", "UGC_SMTP_URL must be smtp://"),
        ("UGC_MAIL_FROM", "noreply", "UGC_MAIL_FROM must be an e-mail address"),
        ("UGC_MAIL_FROM", "a@example.com, b@example.com", "UGC_MAIL_FROM must be an e-mail address"),
        # SMTP's MAIL FROM carries it as is: every mail failed, and was parked.
        ("UGC_MAIL_FROM", "robot@маркет.рф", "UGC_MAIL_FROM must be an ASCII address"),
        ("UGC_MAIL_FROM", "UGC Маркет <робот@market.example>", "UGC_MAIL_FROM must be an ASCII address"),
        ("UGC_FORWARDED_ALLOW_IPS", "127.0.0.0/33", "UGC_FORWARDED_ALLOW_IPS: '127.0.0.0/33' is no IP address"),
        ("UGC_FORWARDED_ALLOW_IPS", "10.0.0.1, proxy.local", "UGC_FORWARDED_ALLOW_IPS: 'proxy.local' is no IP"),
        ("UGC_DATABASE_URL", "mysql://db/ugc", "UGC_DATABASE_URL must be sqlite:///path or postgresql://"),
        ("UGC_DATABASE_URL", "sqlite://var/ugc.sqlite3", "UGC_DATABASE_URL must be sqlite:///path or postgresql://"),
        ("UGC_DATABASE_URL", "/srv/ugc.sqlite3", "UGC_DATABASE_URL must be sqlite:///path or postgresql://"),
        ("UGC_DATABASE_URL", "sqlite:///", "UGC_DATABASE_URL must be sqlite:///path or postgresql://"),
        # libpq and the event stores would each fill in what is left out, each its own way.
        ("UGC_DATABASE_URL", "postgresql://127.0.0.1:5432", "UGC_DATABASE_URL must be sqlite:///path or postgresql://"),
        ("UGC_DATABASE_URL", "postgresql://ugc@db/", "UGC_DATABASE_URL must be sqlite:///path or postgresql://"),
        ("UGC_DATABASE_URL", "postgres://db/ugc", "UGC_DATABASE_URL must be sqlite:///path or postgresql://"),
        # A port that is none was awaited as a database not reachable yet (2 minutes), or failed later.
        ("UGC_DATABASE_URL", "postgresql://ugc@db:99999/ugc", "UGC_DATABASE_URL must be sqlite:///path or postgresql"),
        ("UGC_DATABASE_URL", "postgresql://ugc@db:abc/ugc", "UGC_DATABASE_URL must be sqlite:///path or postgresql"),
        ("UGC_DATABASE_URL", "postgresql://ugc@/ugc", "UGC_DATABASE_URL must be sqlite:///path or postgresql://"),
        # Redis' client takes localhost and database 0 for what is missing or no number.
        ("UGC_REDIS_URL", "redis://", "UGC_REDIS_URL must be redis://host:port/db"),
        ("UGC_REDIS_URL", "redis://cache:abc/0", "UGC_REDIS_URL must be redis://host:port/db"),
        ("UGC_REDIS_URL", "redis://cache:6379/abc", "UGC_REDIS_URL must be redis://host:port/db"),
        ("UGC_REDIS_URL", "unix://", "UGC_REDIS_URL must be redis://host:port/db"),
        # Read where the pools are made, some on PostgreSQL alone: silently unused on SQLite.
        ("UGC_DB_LOCK_TIMEOUT", "abc", "UGC_DB_LOCK_TIMEOUT must be a number of seconds"),
        ("UGC_DB_READ_TIMEOUT", "-1", "UGC_DB_READ_TIMEOUT must be a positive number of seconds"),
        ("UGC_DB_POOL_MAX", "0", "UGC_DB_POOL_MAX must be a whole number"),
        ("UGC_STORE_POOL_MAX", "abc", "UGC_STORE_POOL_MAX must be a whole number"),
        # Handed on in an int of milliseconds: PostgreSQL refused every connection past its ceiling,
        # and below 1 ms the bound rounded to 0, which is none at all.
        (
            "UGC_DB_LOCK_TIMEOUT",
            "2147484",
            "UGC_DB_LOCK_TIMEOUT must be a positive number of seconds from 0.01 up to 2147483",
        ),
        ("UGC_DB_READ_TIMEOUT", "0.0001", "UGC_DB_READ_TIMEOUT must be a positive number of seconds from 0.01 up to"),
        ("UGC_PEER_TIMEOUT", "0.0004", "UGC_PEER_TIMEOUT must be a positive number of seconds from 0.01 up to"),
        # Shorter than anything they bound can take: every command 503, every request 408, every
        # list read cancelled, every socket closed. They were taken.
        (
            "UGC_READ_YOUR_WRITES_TIMEOUT",
            "0.000001",
            "UGC_READ_YOUR_WRITES_TIMEOUT must be a positive number of seconds from 0.01 up to 315360000",
        ),
        ("UGC_QUEUE_TIMEOUT", "1e-9", "UGC_QUEUE_TIMEOUT must be a positive number of seconds from 0.01 up to"),
        ("UGC_CLIENT_TIMEOUT", "0.001", "UGC_CLIENT_TIMEOUT must be a positive number of seconds from 0.01 up to"),
        ("UGC_WS_SEND_TIMEOUT", "0.005", "UGC_WS_SEND_TIMEOUT must be a positive number of seconds from 0.01 up to"),
        ("UGC_DB_READ_TIMEOUT", "0.001", "UGC_DB_READ_TIMEOUT must be a positive number of seconds from 0.01 up to"),
        ("UGC_DB_LOCK_TIMEOUT", "0.001", "UGC_DB_LOCK_TIMEOUT must be a positive number of seconds from 0.01 up to"),
        ("UGC_PEER_TIMEOUT", "0.001", "UGC_PEER_TIMEOUT must be a positive number of seconds from 0.01 up to"),
        # Bytes that are no UTF-8 (os.environ holds them as surrogates): every key is used as UTF-8
        # text, so the data key failed `migrate` with exit status 1 and the codec's words, the others later.
        ("UGC_DATA_KEY", "data-key-\udcff-0123456789", "UGC_DATA_KEY must be UTF-8 text"),
        ("UGC_SECRET_KEY", "\udcc3secret-key-0123456789", "UGC_SECRET_KEY must be UTF-8 text"),
        ("UGC_AUDIT_KEY", "audit-key-\udcff", "UGC_AUDIT_KEY must be UTF-8 text"),
        ("UGC_DATA_KEY_PREVIOUS", "old-key-\udcff", "UGC_DATA_KEY_PREVIOUS must be UTF-8 text"),
        ("UGC_METRICS_TOKEN", "token-\udcff", "UGC_METRICS_TOKEN must be UTF-8 text"),
        # Python's float() reads digit groups and other scripts' digits: no operator means them.
        ("UGC_READ_YOUR_WRITES_TIMEOUT", "1_000", "UGC_READ_YOUR_WRITES_TIMEOUT must be a number of seconds"),
        ("UGC_WS_SEND_TIMEOUT", "٣", "UGC_WS_SEND_TIMEOUT must be a number of seconds"),
        ("UGC_CLIENT_TIMEOUT", "inf", "UGC_CLIENT_TIMEOUT must be a number of seconds"),
        # Taken for no token: /metrics left open where the operator meant to close it.
        ("UGC_METRICS_TOKEN", "   ", "UGC_METRICS_TOKEN must be a token, or empty"),
    ],
)
def test_a_value_of_no_usable_form_is_refused_by_name(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, **{name: value})
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("UGC_SMTP_URL", "smtp://robot:s3cret@mail:notaport", "smtp://robot:***@mail:notaport"),
        ("UGC_PUBLIC_URL", "https://admin:s3cret@market.example", "https://admin:***@market.example"),
        ("UGC_REDIS_URL", "http://:s3cret@cache:6379/0", "http://:***@cache:6379/0"),
        ("UGC_DATABASE_URL", "mysql://ugc:s3cret@db/ugc", "mysql://ugc:***@db/ugc"),
    ],
)
def test_a_refused_url_is_shown_without_its_password(tmp_path: Path, name: str, value: str, shown: str) -> None:
    """The error line goes to a terminal, a log, a CI page: the password in the URL stays out of it."""
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, **{name: value})
    assert "s3cret" not in str(refused.value) and repr(shown) in str(refused.value)


def test_usable_values_are_kept(tmp_path: Path) -> None:
    found = settings(
        tmp_path,
        UGC_PUBLIC_URL="https://market.example:8443/ugc/",
        UGC_SMTP_URL="smtps://robot:s3cret@[::1]:465",
        UGC_MAIL_FROM="UGC Market <noreply@market.example>",
        UGC_FORWARDED_ALLOW_IPS="10.0.0.0/8, 192.168.1.7,::1, fd00::/8",
        UGC_PEER_TIMEOUT="2147483",
        UGC_REDIS_URL="rediss://:s3cret@cache:6380/14",
    )
    assert found.public_url == "https://market.example:8443/ugc"
    assert found.smtp_url == "smtps://robot:s3cret@[::1]:465"
    assert found.mail_from == "UGC Market <noreply@market.example>"
    assert found.forwarded_allow_ips == "10.0.0.0/8, 192.168.1.7,::1, fd00::/8"
    assert found.peer_timeout == 2147483
    assert found.redis_url == "rediss://:s3cret@cache:6380/14"
    assert settings(tmp_path, UGC_REDIS_URL="unix:///run/redis.sock").redis_url == "unix:///run/redis.sock"
    assert settings(tmp_path, UGC_REDIS_URL="redis://cache").redis_url == "redis://cache"
    assert settings(tmp_path, UGC_FORWARDED_ALLOW_IPS="*").forwarded_allow_ips == "*"  # anyone
    assert settings(tmp_path, UGC_FORWARDED_ALLOW_IPS="").forwarded_allow_ips == ""  # no one


def test_an_empty_value_is_the_default_not_the_working_directory(tmp_path: Path) -> None:
    keys = {
        "UGC_SECRET_KEY": "s" * 40,
        "UGC_AUDIT_KEY": "a" * 40,
        "UGC_DATA_KEY": "d" * 40,
    }  # none made in ./var for the test
    found = Settings.from_env(
        keys | {"UGC_VAR_DIR": "", "UGC_MEDIA_DIR": "", "UGC_MAIL_FROM": "", "UGC_ENV": "", "UGC_PROJECTIONS": ""}
    )
    assert (found.var_dir, found.media_dir, found.mail_from) == (Path("var"), Path("var/media"), "noreply@ugc.local")
    assert (found.env, found.projections) == ("development", "inline")  # were refused: "not ''"
    assert settings(tmp_path, UGC_MEDIA_DIR="").media_dir == tmp_path / "media"


def test_the_cli_says_it_in_one_line_and_exits_2(tmp_path: Path) -> None:
    done = run_ugc({"UGC_VAR_DIR": str(tmp_path), "UGC_SMTP_URL": "http://mail:25"}, "migrate")
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.strip().splitlines() == [
        "ugc: UGC_SMTP_URL must be smtp://[user:pass@]host[:port] (or smtps://), not 'http://mail:25'"
    ]


def test_a_bad_database_setting_stops_the_cli_on_sqlite_too(tmp_path: Path) -> None:
    """UGC_DB_LOCK_TIMEOUT is read only by PostgreSQL's sessions: on SQLite `ugc serve` started with
    any value, and UGC_DB_POOL_MAX's was told as `serve failed`, exit status 1."""
    for name in ("UGC_DB_LOCK_TIMEOUT", "UGC_DB_POOL_MAX"):
        done = run_ugc({"UGC_VAR_DIR": str(tmp_path), name: "abc"}, "migrate")
        assert done.returncode == 2 and done.stdout == "", done
        assert [line.split(" must ")[0] for line in done.stderr.strip().splitlines()] == [f"ugc: {name}"]


def test_a_database_url_of_no_known_kind_is_refused_at_start_not_called_unmigrated(tmp_path: Path) -> None:
    """`mysql://…` or a bare path is no database `ugc` can open: every command said so only as it came
    to it, `users list` as "no UGC Market tables … ugc migrate", which then failed with exit status 1;
    and nothing is written for it, not even the keys of UGC_VAR_DIR."""
    env = {"UGC_VAR_DIR": str(tmp_path / "var"), "UGC_DATABASE_URL": "mysql://db/ugc"}
    for command in (["users", "list"], ["migrate"]):
        done = run_ugc(env, *command)
        assert done.returncode == 2 and done.stdout == "", done
        assert done.stderr.strip().splitlines() == [
            "ugc: UGC_DATABASE_URL must be sqlite:///path or postgresql://user:pass@host:5432/db (with its user, "
            "host and database), not 'mysql://db/ugc'"
        ]
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UGC_DATABASE_URL", "postgresql://ugc@[::1/ugc"),
        ("UGC_DATABASE_URL", "postgresql://ugc@[db]:5432/ugc"),
        ("UGC_REDIS_URL", "redis://[::1:6379/0"),
        ("UGC_REDIS_URL", "redis://[cache]:6379/0"),
    ],
)
def test_a_url_whose_bracketed_host_cannot_be_read_is_refused_by_name(tmp_path: Path, name: str, value: str) -> None:
    """An IPv6 host missing its `]`, or a name in brackets: the URL parser's ValueError came out of
    every command as a traceback, exit status 1, where any other URL of no usable form is one line."""
    env = {"UGC_VAR_DIR": str(tmp_path / "var"), name: value}
    done = run_ugc(env, "users", "list")
    assert done.returncode == 2 and done.stdout == "", done
    assert [line.split(" must be ")[0] for line in done.stderr.strip().splitlines()] == [f"ugc: {name}"], done.stderr
    assert repr(value) in done.stderr


@pytest.mark.parametrize(
    "query",
    [
        "sslmode=verify-full",
        "connect_timeout=abc",
        "options=-c%20statement_timeout%3Dx",
        "bogus=1",
        "application_name=%FF",
    ],
)
def test_a_database_url_with_a_query_is_refused_at_start(tmp_path: Path, query: str) -> None:
    """The read side's libpq took what follows `?`, the event stores' settings (ugc/platform/store.py)
    nothing of it: `sslmode=verify-full` held for half the connections, and one libpq or the server
    refuses was told late, by the command that met it (exit status 1, `couldn't get a connection after
    5.00 sec` for a timeout that is no number), or awaited for two minutes as a database away."""
    url = f"postgresql://ugc@127.0.0.1:1/ugc?{query}"
    done = run_ugc({"UGC_VAR_DIR": str(tmp_path / "var"), "UGC_DATABASE_URL": url}, "users", "list", timeout=30)
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr.strip().splitlines() == [
        "ugc: UGC_DATABASE_URL takes no query (?...): the event stores would not read it; libpq's environment "
        f"variables (PGSSLMODE=verify-full, PGSSLROOTCERT=...) reach every connection, not {url!r}"
    ]
    assert not (tmp_path / "var").exists()
