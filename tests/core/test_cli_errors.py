"""The CLI on a bad configuration or a database it cannot use: one line on stderr, exit code
1 (2 for a bad argument), never a traceback, nothing changed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from modeldeck.core import __version__
from tests.core.test_cli import Cli, register
from tests.core.test_cli_process import run
from tests.utils import db as testdb
from tests.utils.rows import snapshot
from tests.utils.servers import free_port

SUPPORTED = "use sqlite:///path/to/file.db or postgresql://user@host/database (psycopg 3)"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, f"sqlite:///{tmp_path}/md.db")


def one_error_line(result: object, expected: str) -> None:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert stderr.splitlines() == [f"error: {expected}"], stderr
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


# --- database_url and log_level are checked with the rest of the configuration --------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("notaurl", "not a database URL"),
        ("mysql://u@h/d", "unsupported database 'mysql'"),
        ("oracle://x", "unsupported database 'oracle'"),
        ("postgresql+asyncpg://md:s3cret@db/md", "unsupported database 'postgresql+asyncpg'"),
    ],
)
def test_bad_database_url_is_one_line_naming_the_variable(cli: Cli, url: str, problem: str) -> None:
    result = cli("models", "list", env={"MODELDECK_DATABASE_URL": url})
    assert result.exit_code == 1
    one_error_line(
        result, f"environment variable MODELDECK_DATABASE_URL: database_url: {problem}; {SUPPORTED}"
    )
    assert "s3cret" not in result.output


def test_bad_log_level_stops_the_api_before_it_starts(cli: Cli) -> None:
    cli.config.write_text("log_level: LOUD\n")
    result = cli("api", "--port", str(free_port()))
    assert result.exit_code == 1
    one_error_line(
        result,
        f"{cli.config}: log_level: 'LOUD' is not a log level; "
        "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    )


# --- a database that is not modeldeck's -------------------------------------------------------


@pytest.mark.parametrize("command", [["models", "list"], ["db", "upgrade"], ["status"], ["api"]])
def test_a_file_that_is_not_a_database_is_refused_untouched(
    cli: Cli, tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "md.db"
    path.write_bytes(b"just some notes, not a database\n" * 10)
    before = path.read_bytes()
    args = [*command, "--port", str(free_port())] if command == ["api"] else command
    result = cli(*args)
    assert result.exit_code == 1
    one_error_line(result, f"database_url: {path} is not a modeldeck database (not an SQLite file)")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["md.db", "modeldeck.yaml"]


def test_another_applications_sqlite_file_is_refused_untouched(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "md.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    for command in (["db", "upgrade"], ["models", "list"]):
        result = cli(*command)
        assert result.exit_code == 1
        one_error_line(
            result,
            f"database_url: {path} is not a modeldeck database "
            "(it has tables but no modeldeck schema)",
        )
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert tables == ["notes"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """A migrated database with one model, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        cli = Cli(tmp_path, f"sqlite:///{tmp_path}/md.db")
        yield cli
        return
    testdb.require_postgres()
    url, schema = testdb.postgres_schema_url()
    yield Cli(tmp_path, url)
    testdb.drop_schema(schema)


def test_a_database_from_a_newer_modeldeck_is_refused_untouched(migrated: Cli) -> None:
    assert migrated.json("db", "upgrade")["after"]
    assert register(migrated).exit_code == 0
    engine = migrated.engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    before = snapshot(engine)
    for command in (["db", "upgrade"], ["models", "list"], ["api", "--port", str(free_port())]):
        result = migrated(*command)
        assert result.exit_code == 1, command
        one_error_line(
            result,
            f"the database is at revision 9999, unknown to this modeldeck {__version__} "
            "— upgrade modeldeck",
        )
    assert snapshot(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999"
    engine.dispose()


def test_db_upgrade_to_an_unknown_revision_is_a_usage_error(cli: Cli) -> None:
    result = cli("db", "upgrade", "nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot upgrade to revision 'nope': ")
    with sqlite3.connect(cli.folder / "md.db") as conn:  # not even alembic's own table
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


# --- ports ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["api"], ["bot", "--http"]])
@pytest.mark.parametrize("port", ["0", "70000"])
def test_port_out_of_range_is_a_usage_error(tmp_path: Path, command: list[str], port: str) -> None:
    # A real process: were the port accepted, the server would start (and not return).
    result = run(tmp_path, *command, "--port", port, timeout=60)
    assert result.returncode == 2
    bound = "greater than or equal to 1" if port == "0" else "less than or equal to 65535"
    assert f"Invalid value for '--port': Input should be {bound}" in result.stderr
