"""Imports flow one way, as the README states it; a module that breaks the rule is named here."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("api", "commands", "projections", "readmodels")
# What each layer may import besides the standard library, third parties, `ugc` and itself.
MAY_IMPORT = {"api": {"commands", "readmodels"}, "commands": set(), "projections": {"readmodels"}, "readmodels": set()}
COMPOSITION_ROOT = {"ugc.wiring", "ugc.cli"}  # and the modules of the `ugc.cli` package


# `ugc` modules that are neither the domain nor the composition root.
CONFIGURATION = {"ugc", "ugc.config"}
DOMAIN_LIBRARY = {"eventsourcing.domain"}
# The library's topic registry: `stored_as` registers our stored topics with it.
DOMAIN_LIBRARY_EXCEPTIONS = {"ugc.events": {"eventsourcing.utils"}}


def in_composition_root(module: str) -> bool:
    return module in COMPOSITION_ROOT or module.startswith("ugc.cli.")


def modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (`from ugc import x` counts as `ugc.x`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module in ("ugc", "ugc.platform"):
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def is_domain(module: str) -> bool:
    return (
        top(module) == "ugc"
        and not module.startswith("ugc.platform")
        and module not in CONFIGURATION
        and not in_composition_root(module)
    )


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = {
        module: sorted(
            name for name in imported(path) if top(name) in LAYERS and top(name) not in {layer, *MAY_IMPORT[layer]}
        )
        for module, path in modules(layer)
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_only_the_composition_root_in_ugc_imports_upward() -> None:
    wrong = {
        module: sorted(name for name in imported(path) if top(name) in LAYERS)
        for module, path in modules("ugc")
        if not in_composition_root(module)
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_domain_modules_import_only_the_domain_library_the_standard_library_and_each_other() -> None:
    wrong = {}
    for module, path in modules("ugc"):
        if not is_domain(module):
            continue
        allowed = DOMAIN_LIBRARY | DOMAIN_LIBRARY_EXCEPTIONS.get(module, set())
        wrong[module] = sorted(
            name
            for name in imported(path)
            if name != "__future__"
            and top(name) not in sys.stdlib_module_names
            and name not in allowed
            and not is_domain(name)
        )
    assert {module: names for module, names in wrong.items() if names} == {}


def test_the_platform_imports_configuration_and_itself_and_only_the_event_store_knows_the_domain() -> None:
    """The event stores import the aggregates so that any process can decode every stored event."""
    wrong = {}
    for module, path in modules("ugc/platform"):
        names = {name for name in imported(path) if top(name) in (*LAYERS, "ugc")}
        allowed = {name for name in names if name.startswith("ugc.platform") or name == "ugc.config"}
        if module == "ugc.platform.store":
            allowed |= {name for name in names if is_domain(name)}
        wrong[module] = sorted(names - allowed)
    assert {module: names for module, names in wrong.items() if names} == {}


def test_the_read_side_never_imports_the_event_store() -> None:
    wrong = {
        module: sorted(name for name in imported(path) if top(name) == "eventsourcing" or name == "ugc.platform.store")
        for module, path in modules("readmodels")
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_the_api_runs_no_sql_of_its_own() -> None:
    calls = [
        f"{module}:{node.lineno}"
        for module, path in modules("api")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "execute"
    ]
    assert calls == []


def test_importing_the_database_adapter_imports_no_event_store_and_no_aggregate() -> None:
    import subprocess

    probe = (
        "import sys, ugc.platform.database; "
        "print(sorted(m for m in sys.modules if m.startswith(('ugc', 'eventsourcing'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    names = ast.literal_eval(loaded.stdout.strip())
    assert "ugc.platform.database" in names
    assert [name for name in names if name.startswith("eventsourcing") or name == "ugc.platform.store"] == []
    assert [name for name in names if name not in ("ugc", "ugc.config") and not name.startswith("ugc.platform")] == []


def imported_by(*names: str) -> list[str]:
    """The top-level packages a fresh process has loaded once it imported `names`."""
    import subprocess

    probe = f"import sys, {', '.join(names)}; print(sorted({{m.partition('.')[0] for m in sys.modules}}))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    found: list[str] = ast.literal_eval(loaded.stdout.strip())
    return found


COMMANDS = [name for name, _ in modules("ugc/cli") if name != "ugc.cli.__main__"]


def test_no_process_imports_redis_unless_it_is_configured() -> None:
    """Importing Redis's client took ~60 ms of CPU at each `ugc` command's start, and most never use Redis:
    only a process with UGC_REDIS_URL imports it (`ugc.wiring.pushes_relayed`)."""
    assert "redis" not in imported_by("api.app", "ugc.wiring", *COMMANDS)


def test_a_command_imports_no_part_of_the_api() -> None:
    """Only a server uses the API (`ugc.wiring` imports it in the functions a server runs): its services,
    its tokens (jwt) and Starlette were ~100 ms of CPU at each command's start."""
    loaded = imported_by("ugc.wiring", *COMMANDS)
    assert "ugc" in loaded
    assert [name for name in loaded if name in ("api", "jwt", "starlette")] == []


def on_sqlite(tmp_path: Path, probe: str) -> str:
    """The last line `probe` (Python code) prints, run in a fresh process on a SQLite database in `tmp_path`."""
    import os
    import subprocess

    env = {key: value for key, value in os.environ.items() if not key.startswith("UGC_")}
    env |= {"UGC_DATABASE_URL": f"sqlite:///{tmp_path / 'ugc.sqlite3'}", "UGC_VAR_DIR": str(tmp_path)}
    ran = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return ran.stdout.strip().splitlines()[-1]


def test_a_process_on_sqlite_imports_no_postgresql_driver(tmp_path: Path) -> None:
    """psycopg (its C extension, libpq) and the library's PostgreSQL module were ~70 ms of CPU at the
    start of every `ugc` command, and a process on SQLite never uses them: only a process that works
    on PostgreSQL imports them (`ugc.platform.postgres_driver`), here neither at import nor at work."""
    probe = (
        "import sys; from ugc.cli import main; codes = [main(['migrate']), main(['users', 'list'])]; "
        "print(codes, sorted(m for m in sys.modules if m.startswith(('psycopg', 'eventsourcing.postgres'))))"
    )
    assert on_sqlite(tmp_path, probe) == "[0, 0] []"
    assert [name for name in imported_by("ugc.wiring", *COMMANDS) if name.startswith("psycopg")] == []


def test_a_server_on_sqlite_imports_no_postgresql_driver(tmp_path: Path) -> None:
    """A server on SQLite imported psycopg for its error handlers' table (api/errors.py), ~70-90 ms of
    CPU at each worker's start: now neither at import nor while it answers."""
    probe = (
        "import sys; from ugc.cli import main; main(['migrate']); "
        "from starlette.testclient import TestClient; from ugc.wiring import asgi_app; "
        "client = TestClient(asgi_app()).__enter__(); "
        "paths = ('/healthz/', '/readyz/', '/api/v1/services/', '/api/v1/orders/', '/api/v1/nowhere/'); "
        "codes = [client.get(path).status_code for path in paths]; client.__exit__(None, None, None); "
        "print(codes, sorted(m for m in sys.modules if m.startswith(('psycopg', 'eventsourcing.postgres'))))"
    )
    assert on_sqlite(tmp_path, probe) == "[200, 200, 200, 401, 404] []"


def test_a_command_looks_its_version_up_only_for_version(tmp_path: Path) -> None:
    """importlib.metadata finding the installed distribution was ~14 ms of CPU at every command's start,
    for `--version` alone (`ugc.cli.ShowVersion`)."""
    probe = "import sys; from ugc.cli import main; print(main(['users', 'list']), 'importlib.metadata' in sys.modules)"
    assert on_sqlite(tmp_path, probe) == "2 False"  # 2: not migrated


def test_the_leaders_sweeper_imports_no_part_of_the_api(tmp_path: Path) -> None:
    """`ugc project` runs the sweeper once it leads: taking how long the API keeps its rows from the API's
    modules imported their errors, Starlette and psycopg, ~65 ms of CPU at each projector's start."""
    probe = (
        "import sys; from ugc.config import Settings; from ugc.clock import SystemClock; "
        "from ugc.platform.database import Database; from ugc.wiring import leader_sweeper; "
        "settings = Settings.from_env(); db = Database(settings.database_url); "
        "leader_sweeper(settings, db, SystemClock()); db.close(); "
        "print(sorted({m.partition('.')[0] for m in sys.modules} & {'api', 'starlette', 'jwt', 'psycopg'}))"
    )
    assert on_sqlite(tmp_path, probe) == "[]"
