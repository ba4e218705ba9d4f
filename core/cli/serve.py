"""Processes and administration: `api`, `db upgrade`, `token create`, `demo`."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from modeldeck.core import db
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Role
from modeldeck.core.cli import context, output
from modeldeck.core.errors import ModeldeckError

db_app = typer.Typer(help="Create or migrate the database schema.", no_args_is_help=True)
token_app = typer.Typer(
    help="API tokens for the REST API and remote clients.", no_args_is_help=True
)


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[
        str, typer.Argument(help="Alembic revision to reach (default: the newest).")
    ] = "head",
) -> None:
    """Create or migrate the database schema; run it after every upgrade of modeldeck.

    A local SQLite file is kept up to date by every command; PostgreSQL needs this once.

    Example: MODELDECK_DATABASE_URL=postgresql://modeldeck@db/modeldeck modeldeck db upgrade
    """
    cli = context.get(ctx)
    engine = db.make_engine(cli.settings.database_url)
    before = db.current_revision(engine)
    db.upgrade(engine, revision)
    after = db.current_revision(engine)
    if cli.json_output:
        output.emit_json({"before": before, "after": after})
    else:
        output.success(f"database at revision {after} (was {before or 'empty'})")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who or what uses the token, e.g. ci-pipeline.")],
    role: Annotated[Role, typer.Option(help="viewer < deployer < approver < admin")] = Role.viewer,
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, help="Days until it expires (default: never).")
    ] = None,
) -> None:
    """Create an API token for the REST API. It is shown once; only its hash is stored.

    Example: modeldeck token create ci-pipeline --role deployer --expires-in-days 90
    """
    cli = context.get(ctx)
    with cli.session() as session:
        created = auth.create_token(
            session, name=name, role=role, actor=cli.actor, expires_in_days=expires_in_days
        )
    if cli.json_output:
        output.emit_json(created)
        return
    output.success(
        f"token {created.name!r} ({created.role}) created; copy it now, it is not shown again:"
    )
    print(created.token)


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """List API tokens (never their values).

    Example: modeldeck token list
    """
    cli = context.get(ctx)
    with cli.session() as session:
        tokens = auth.list_tokens(session)
    if cli.json_output:
        output.emit_json(tokens)
        return
    output.table(
        "API tokens",
        ["id", "name", "role", "prefix", "created", "expires", "revoked"],
        [
            (
                t.id,
                t.name,
                t.role,
                t.prefix + "…",
                output.ago(t.created_at),
                t.expires_at,
                t.revoked_at,
            )
            for t in tokens
        ],
    )


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(help="The id from `modeldeck token list`.")],
) -> None:
    """Revoke an API token: running API servers refuse it within 5 seconds (the time each
    trusts a token it has checked).

    Example: modeldeck token revoke 3
    """
    cli = context.get(ctx)
    with cli.session() as session:
        auth.revoke_token(session, token_id=token_id, actor=cli.actor)
    output.success(f"token {token_id} revoked")


def ensure_port_free(host: str, port: int, *, what: str = "", option: str = "--port") -> None:
    """Bind `host:port` as uvicorn will, and let go: a port in use is one clear line here
    instead of uvicorn's log record and exit code 3 after the app has started up. `what` names
    the part (`up` checks several), `option` the flag that moves it."""
    part = f" ({what})" if what else ""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ModeldeckError(
                    f"port {port}{part} on {host} is already in use; stop the other server "
                    f"or choose another port with {option}"
                ) from None
            raise ModeldeckError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def api(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default api.host).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default api.port, 8000).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Worker processes (uvicorn); one per CPU core is a good start."
        ),
    ] = 1,
) -> None:
    """Serve the REST API; OpenAPI docs at /docs, health at /healthz and /readyz.

    Example: modeldeck api --host 0.0.0.0 --port 8000 --workers 2
    """
    import uvicorn

    from modeldeck.core import logs
    from modeldeck.core.api.app import create_app
    from modeldeck.core.config import CONFIG_ENV
    from modeldeck.core.heap import freeze_startup_heap

    cli = context.get(ctx)
    settings = cli.settings
    logs.configure(settings.log_format, settings.log_level)
    bind: dict[str, Any] = {"host": host or settings.api.host, "port": port or settings.api.port}
    ensure_port_free(bind["host"], bind["port"])  # before anything is changed
    engine = cli.engine  # migrates a local SQLite file, syncs environments: once, up front
    common: dict[str, Any] = {
        "log_level": settings.log_level.lower(),
        "access_log": False,
        "log_config": None,
    }  # our handler renders uvicorn's lines too
    if workers == 1:
        app = create_app(settings, engine=engine)
        freeze_startup_heap()
        uvicorn.run(app, **bind, **common)
        return
    engine.dispose()
    if cli.config_path:  # the workers read the same file
        os.environ[CONFIG_ENV] = str(Path(cli.config_path).resolve())
    uvicorn.run(
        "modeldeck.core.api.app:app_from_environment",
        factory=True,
        workers=workers,
        **bind,
        **common,
    )


def demo(
    ctx: typer.Context,
    reset: Annotated[
        bool, typer.Option("--reset", help="Delete the demo world and rebuild.")
    ] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="API port (0 = pick a free one).")
    ] = 8000,
    seed_only: Annotated[
        bool, typer.Option("--seed-only", help="Build the world, start nothing.")
    ] = False,
) -> None:
    """Build a realistic demo world in ./.modeldeck and serve it (Ctrl-C stops it).

    Example: modeldeck demo --reset     (then, in another shell: modeldeck status)
    """
    from modeldeck.core import demo as demo_world

    demo_world.run(
        reset=reset, port=port, seed_only=seed_only, json_output=context.get(ctx).json_output
    )


def register_commands(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("api")(api)
    app.add_typer(db_app, name="db")
    app.add_typer(token_app, name="token")
