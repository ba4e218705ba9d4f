from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy import select as select_columns
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core import db
from modeldeck.core.errors import BackendUnavailable
from modeldeck.core.registry.models import Model
from tests.utils.servers import free_port


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h/d", "postgresql+psycopg://u:p@h/d"),
        ("postgresql://u@h:5433/d", "postgresql+psycopg://u@h:5433/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///./x.db", "sqlite:///./x.db"),
    ],
)
def test_database_urls_use_psycopg3(url: str, expected: str) -> None:
    assert db.normalise_url(url) == expected


def test_sqlite_file_gets_its_folder_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "modeldeck.db"
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10000
    assert path.parent.is_dir()
    engine.dispose()


def test_default_url_lives_in_dot_modeldeck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = db.make_engine("sqlite:///./.modeldeck/modeldeck.db")
    db.upgrade(engine)
    engine.dispose()
    assert (tmp_path / ".modeldeck" / "modeldeck.db").is_file()


def test_ping_fails_fast_on_a_closed_port() -> None:
    engine = db.make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="database unreachable: OperationalError"):
        db.ping(engine)
    assert time.monotonic() - started < 5
    engine.dispose()


def test_alembic_config_keeps_a_password_with_percent() -> None:
    cfg = db.alembic_config("postgresql+psycopg://u:p%25ss@h/d")
    assert cfg.get_main_option("sqlalchemy.url") == "postgresql+psycopg://u:p%25ss@h/d"


def test_session_scope_rolls_back_on_error(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/s.db")
    db.upgrade(engine)
    with pytest.raises(RuntimeError), db.session_scope(engine) as session:
        session.add(Model(name="half-written"))
        session.flush()
        raise RuntimeError("boom")
    with db.session_scope(engine) as session:
        assert session.exec(select(Model)).all() == []
    engine.dispose()


def test_read_session_sees_committed_rows_and_gives_back_a_plain_connection(
    any_engine: Engine,
) -> None:
    statement = select_columns(Model.name).where(Model.name == bindparam("name"))
    with db.read_session(any_engine) as session:
        raw = session.connection().connection.dbapi_connection
        assert db.run(session, statement, name="fraud").all() == []
        with Session(any_engine) as writer:
            writer.add(Model(name="fraud", team="risk"))
            writer.commit()
        assert db.run(session, statement, name="fraud").scalars().all() == ["fraud"]
    if not db.is_sqlite(any_engine):  # autocommit only while the read had it
        assert raw is not None and raw.autocommit is False


def test_run_flushes_pending_changes_first(any_engine: Engine) -> None:
    statement = select_columns(Model.team).where(Model.name == bindparam("name"))
    with Session(any_engine) as session:
        session.add(Model(name="fraud", team="risk"))
        assert db.run(session, statement, name="fraud").scalar() == "risk"
        session.rollback()
