"""Dependencies that make route signatures read like sentences."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core import db
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import Clock
from modeldeck.core.config import Settings
from modeldeck.core.errors import Unauthorized

P = ParamSpec("P")
T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="an API token from `modeldeck token create`")


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in the
# thread pool, and each such hop costs more than the work itself.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def get_token_cache(request: Request) -> auth.TokenCache:
    cache: auth.TokenCache = request.app.state.token_cache
    return cache


# One semaphore per (event loop, engine), sized like the engine's connection pool.
_db_slots: WeakKeyDictionary[
    asyncio.AbstractEventLoop, WeakKeyDictionary[Engine, asyncio.Semaphore]
]
_db_slots = WeakKeyDictionary()


def _slots(engine: Engine) -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    per_engine = _db_slots.get(loop)
    if per_engine is None:
        per_engine = _db_slots[loop] = WeakKeyDictionary()
    slots = per_engine.get(engine)
    if slots is None:
        slots = per_engine[engine] = asyncio.Semaphore(db.max_connections(engine))
    return slots


async def read(
    engine: Engine,
    query: Callable[Concatenate[Session, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """`query(session, ...)` in a session of its own, opened, used and closed in one worker
    thread, admitted like `get_session` while the pool has a connection free.

    Read routes are `async def` and call this: one thread hop per request. A plain `def`
    route with `SessionDep` costs three or four (the route, the validation of its answer,
    which FastAPI runs in the pool for a sync route, and on PostgreSQL the session's close),
    plus a generator dependency, and under load every hop waits for the GIL behind the
    others. The answer is validated on the event loop, where it is cheap: it already is an
    instance of the response model. `query` must not write (see db.read_session).
    """

    def run() -> T:
        with db.read_session(engine) as session:
            return query(session, *args, **kwargs)

    async with _slots(engine):
        return await anyio.to_thread.run_sync(run)


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ClockDep = Annotated[Clock, Depends(get_clock)]
TokenCacheDep = Annotated[auth.TokenCache, Depends(get_token_cache)]


async def get_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The token's owner: from the token cache on the event loop, else looked up in the
    database in the thread pool (see auth.TokenCache for how soon a revocation applies).
    The app's state is read directly: each sub-dependency costs FastAPI more than that."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", hint="send 'Authorization: Bearer <token>'")
    state = request.app.state
    token, clock, cache = credentials.credentials, state.clock, state.token_cache
    actor = cache.actor(token, clock=clock)
    if actor is None:
        actor = await read(state.engine, auth.authenticate, token, clock=clock, cache=cache)
    request_id = getattr(request.state, "request_id", None)
    return Actor(name=actor.name, role=actor.role, via="api", request_id=request_id)


CurrentActor = Annotated[Actor, Depends(get_actor)]


async def get_session(
    engine: Annotated[Engine, Depends(get_engine)],
    _: Annotated[Actor, Depends(get_actor)],
) -> AsyncIterator[Session]:
    """A session for one (writing) request, admitted only while the pool has a connection free.

    Sync routes run in a thread pool (40 threads) and need a second thread to serialise their
    answer while still holding their connection. With more requests than pooled connections,
    every thread could end up waiting on the pool while the requests holding connections wait
    for a thread: a deadlock broken only by the pool's 30 s timeout. Waiting here, on the event
    loop, before any thread or connection is taken, cannot deadlock — provided no request
    holding a slot waits for another one. So the session comes after authentication, whose
    database lookup (`read`, on a token-cache miss) takes and gives back a slot of its own:
    requests that all miss the cache at once (start-up, a revocation) never hold a slot each
    while waiting for a second.
    """
    async with _slots(engine):
        session = Session(engine, expire_on_commit=False)
        try:
            yield session
        finally:
            if db.is_sqlite(engine):
                session.close()  # a local file: returning the connection is microseconds
            else:
                # A network round trip (ROLLBACK): in a thread, with its own limiter so that
                # closing never waits for a busy thread pool.
                await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))


SessionDep = Annotated[Session, Depends(get_session)]


def role(needed: Role) -> Callable[[Request, Actor], Coroutine[Any, Any, Actor]]:
    """Dependency: the current actor, refused with 403 below `needed`."""

    async def check(request: Request, actor: CurrentActor) -> Actor:
        # "POST /api/v1/models needs the deployer role; token:ci is viewer". The URL is only
        # built for a refusal: on the hot read paths it would be work for nothing.
        if actor.role is None or not actor.role.allows(needed):
            auth.require(actor, needed, f"{request.method} {request.url.path}")
        return actor

    return check


Viewer = Annotated[Actor, Depends(role(Role.viewer))]
Deployer = Annotated[Actor, Depends(role(Role.deployer))]
Approver = Annotated[Actor, Depends(role(Role.approver))]
Admin = Annotated[Actor, Depends(role(Role.admin))]
