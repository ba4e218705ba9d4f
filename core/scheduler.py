"""The scheduler: checks, outbox delivery, rollouts and other domains' periodic jobs.

APScheduler 3 (BackgroundScheduler) with its job store in modeldeck's own database, so a
restarted or new leader resumes the schedule where it stood. Only one scheduler acts at a
time: on PostgreSQL it holds an advisory lock on a dedicated connection (a second scheduler
waits and takes over when the first dies and its connection drops); on SQLite a file lock
beside the database does the same for one machine.

Every job runs with max_instances=1 and coalesce, so a check that overruns its interval is
never started twice and missed runs collapse into one. A check first records `error` results
marked "did not finish"; each real result replaces the marker of its kind in the transaction
that stores it, so a crash mid-check (even a killed process) leaves an error, not a gap, and a
window never holds both. A leader that loses its lock stops committing at once (its jobs'
sessions are fenced, see scheduler_lock) and waits for its running jobs before it tries to
lead again.

Other domains add periodic jobs with `register_job` (see docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core import logs
from modeldeck.core.alerts import service as alerts
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import Conflict
from modeldeck.core.monitoring import flows
from modeldeck.core.monitoring.models import CheckResult
from modeldeck.core.notify import service as notify
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment, DeploymentState
from modeldeck.core.scheduler_checks import DID_NOT_FINISH as DID_NOT_FINISH
from modeldeck.core.scheduler_checks import MARKED_KINDS as MARKED_KINDS
from modeldeck.core.scheduler_checks import CheckRunner, run_guarded
from modeldeck.core.scheduler_lock import (
    Leadership,
    LostLeadership,
    fenced_session,
    leadership_for,
)

log = logs.get("modeldeck.scheduler")
JOBS_TABLE = "apscheduler_jobs"
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
WAKE_SECONDS = 60.0
HOOK_MODULES = ("modeldeck.core.hardware.jobs", "modeldeck.core.monitoring.jobs")  # register_job


@dataclass(frozen=True)
class JobContext:
    """What a registered job gets: open a session per run with `ctx.session()` (its commits
    are refused once this scheduler no longer leads) or `Session(ctx.engine)`."""

    engine: Engine
    settings: Settings
    clock: Clock
    open_session: Callable[[], Session] | None = None

    def session(self) -> Session:
        if self.open_session is not None:
            return self.open_session()
        return Session(self.engine, expire_on_commit=False)


@dataclass(frozen=True)
class RegisteredJob:
    name: str
    func: Callable[[JobContext], Any]
    seconds: float


_REGISTERED: dict[str, RegisteredJob] = {}
_ACTIVE: Scheduler | None = None  # the leading scheduler of this process (jobs find it here)


def register_job(name: str, func: Callable[[JobContext], Any], *, seconds: float) -> None:
    """Run `func(JobContext)` every `seconds` on the leading scheduler (e.g. the hardware
    scrape). Call it at import of a module listed in HOOK_MODULES; re-registering a name
    replaces it."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", name):
        raise ValueError(f"job name {name!r}: use 1-63 lowercase letters, digits, . _ -")
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    _REGISTERED[name] = RegisteredJob(name, func, float(seconds))


def unregister_job(name: str) -> None:
    _REGISTERED.pop(name, None)


def registered_jobs() -> dict[str, RegisteredJob]:
    return dict(_REGISTERED)


def run_job(kind: str, arg: Any = None) -> None:
    """The one callable every stored job points to (APScheduler stores a textual reference,
    not an object); it hands the work to this process's leading scheduler."""
    runner = _ACTIVE
    if runner is None:
        log.warning("scheduler.job_without_leader", job=kind, arg=arg)
        return
    runner.execute(kind, arg, fenced=True)


class _JobStore(SQLAlchemyJobStore):
    def shutdown(self) -> None:
        pass  # the engine is modeldeck's, shared with the jobs: do not dispose of it


class Scheduler:
    """One scheduler process. `run()` blocks: wait to lead, schedule, stop on `stop()`."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        clock: Clock = utcnow,
        check_runner: CheckRunner | None = None,
        lock: Leadership | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.check_runner: CheckRunner = check_runner or flows.check_and_alert
        self.lock = lock or leadership_for(engine)
        self.poll_seconds = poll_seconds or settings.scheduler.leader_poll_seconds
        self.is_leader = False
        self.tries = 0  # leadership attempts, for operators' logs and tests
        self.losses = 0  # times the lock was lost while leading
        self.aps: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._sync_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._terms = 0  # leadership terms started
        self._term: int | None = None  # the current one; jobs of an ended term may not commit
        self._job = threading.local()  # the term the job on this thread runs under

    # --- leadership ------------------------------------------------------------------------

    def run(self) -> None:
        """Wait for leadership, then schedule until stopped or the lock is lost (then wait
        again: another scheduler may have taken over)."""
        _load_hook_modules()
        waiting_logged = False
        while not self._stop.is_set():
            self.tries += 1
            if not self.lock.try_acquire():
                if not waiting_logged:
                    log.info("scheduler.waiting", lock=self.lock.describe())
                    waiting_logged = True
                self._stop.wait(self.poll_seconds)
                continue
            waiting_logged = False
            try:
                self._lead()
            finally:
                self.lock.release()

    def _lead(self) -> None:
        global _ACTIVE
        aps = BackgroundScheduler(
            jobstores={"default": _JobStore(engine=self.engine, tablename=JOBS_TABLE)},
            executors={"default": ThreadPoolExecutor(self.settings.scheduler.workers)},
            job_defaults=JOB_DEFAULTS,
            timezone=UTC,
        )
        self.aps, _ACTIVE = aps, self
        self._terms += 1
        self._term = self._terms
        lost = False
        try:
            aps.start()
            log.info("scheduler.leading", lock=self.lock.describe(), term=self._term)
            self.sync_jobs()
            self.is_leader = True
            while not self._stop.wait(self.poll_seconds):
                if not self.lock.alive():
                    lost = True
                    self.losses += 1
                    log.error("scheduler.lost_leadership", lock=self.lock.describe())
                    break
        finally:
            self.is_leader = False
            # Lost the lock: end the term first, so no job of it commits anything from here
            # on (a successor may be running the same checks). Stopping: running jobs still
            # lead and may finish. Either way wait for them, so this process never leads
            # again while jobs of an earlier term are still about.
            if lost:
                self._term = None
            aps.shutdown(wait=True)
            self._term = None
            if _ACTIVE is self:
                _ACTIVE = None
            self.aps = None

    def start(self) -> threading.Thread:
        """Run in a background thread (tests, `modeldeck up`)."""
        self._thread = threading.Thread(target=self.run, name="modeldeck-scheduler", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the schedule ----------------------------------------------------------------------

    def desired_jobs(self) -> dict[str, tuple[float, tuple[Any, ...]]]:
        """Job id → (interval seconds, run_job args) for everything that should be scheduled."""
        cfg = self.settings.scheduler
        jobs: dict[str, tuple[float, tuple[Any, ...]]] = {
            "outbox-drain": (cfg.drain_seconds, ("drain", None)),
            "rollouts-advance": (cfg.rollouts_seconds, ("advance", None)),
            "rollouts-reconcile": (cfg.reconcile_seconds, ("reconcile", None)),
            "alerts-wake": (WAKE_SECONDS, ("wake", None)),
            "scheduler-sync": (cfg.sync_seconds, ("sync", None)),
        }
        for job in _REGISTERED.values():
            jobs[f"job:{job.name}"] = (job.seconds, ("registered", job.name))
        with Session(self.engine) as session:
            rows = session.exec(
                select(Deployment.id, Model.name)
                .join(Model)
                .join(Environment)
                .where(Deployment.state == DeploymentState.active, Environment.active == True)  # noqa: E712
            ).all()
        for deployment_id, model in rows:
            minutes = self.settings.check_config(model).interval_minutes
            jobs[f"check:{deployment_id}"] = (minutes * 60.0, ("check", deployment_id))
        return jobs

    def sync_jobs(self) -> dict[str, int]:
        """Make the stored schedule match the desired one; jobs that already exist keep their
        next run time, so a restart does not re-run every check at once."""
        with self._sync_lock:  # the start-up sync and the periodic one must not interleave
            return self._sync_jobs()

    def _sync_jobs(self) -> dict[str, int]:
        aps = self.aps
        if aps is None:
            return {}
        desired = self.desired_jobs()
        existing = {job.id: job for job in aps.get_jobs()}
        counts = {"added": 0, "removed": 0, "changed": 0}
        for job_id in existing.keys() - desired.keys():
            aps.remove_job(job_id)
            counts["removed"] += 1
        now = datetime.now(UTC)
        for job_id, (seconds, args) in desired.items():
            job = existing.get(job_id)
            if job is None:
                aps.add_job(
                    run_job,
                    "interval",
                    seconds=seconds,
                    args=args,
                    id=job_id,
                    name=job_id,
                    next_run_time=now + _offset(job_id, seconds),
                )
                counts["added"] += 1
                continue
            if job.trigger.interval.total_seconds() != seconds:
                aps.reschedule_job(job_id, trigger="interval", seconds=seconds)
                counts["changed"] += 1
            if tuple(job.args) != args:
                aps.modify_job(job_id, args=args)
                counts["changed"] += 1
        if any(counts.values()):
            log.info("scheduler.synced", **counts, jobs=len(desired))
        return counts

    # --- the jobs --------------------------------------------------------------------------

    def execute(self, kind: str, arg: Any = None, *, fenced: bool = False) -> Any:
        """Run one job now (APScheduler calls this through run_job; tests and `--once` too).

        `fenced`: run under the current leadership term (none: skip the job); its sessions'
        commits are refused once the term ends or the lock is gone."""
        term = self._term
        if fenced and term is None:
            log.warning("scheduler.job_after_leadership", job=kind, arg=arg)
            return None
        self._job.term = term if fenced else None
        jobs: dict[str, Callable[[Any], Any]] = {
            "check": self.run_check,
            "drain": self._drain,
            "advance": self._advance,
            "reconcile": self._reconcile,
            "wake": self._wake,
            "sync": lambda _: self.sync_jobs(),
            "registered": self._registered,
        }
        try:
            return jobs[kind](arg)
        except LostLeadership as exc:
            log.warning("scheduler.job_refused", job=kind, arg=arg, reason=str(exc))
            return None
        except Exception:
            log.exception("scheduler.job_failed", job=kind, arg=arg)
            return None
        finally:
            self._job.term = None

    def _session(self) -> Session:
        """A session for a job: fenced when the job runs under a leadership term."""
        term = getattr(self._job, "term", None)
        if term is None:
            return Session(self.engine, expire_on_commit=False)
        return fenced_session(self.engine, self.lock, lambda: self._term == term)

    def run_check(self, deployment_id: int) -> list[CheckResult] | None:
        """Run one deployment's checks behind crash markers (see scheduler_checks)."""
        with self._session() as session:
            return run_guarded(
                session,
                settings=self.settings,
                runner=self.check_runner,
                deployment_id=deployment_id,
                clock=self.clock,
            )

    def _drain(self, _: Any) -> Any:
        with Session(self.engine, expire_on_commit=False) as session:
            return notify.drain(session, settings=self.settings, clock=self.clock)

    def _advance(self, _: Any) -> Any:
        with self._session() as session:
            return rollouts.advance_in_flight(session, settings=self.settings, clock=self.clock)

    def _reconcile(self, _: Any) -> Any:
        with self._session() as session:
            return flows.reconcile_and_alert(session, settings=self.settings, clock=self.clock)

    def _wake(self, _: Any) -> int:
        with self._session() as session:
            return alerts.wake_snoozed(session, settings=self.settings, clock=self.clock)

    def _registered(self, name: str) -> Any:
        job = _REGISTERED.get(name)
        if job is None:
            log.warning("scheduler.unknown_job", name=name)
            return None
        term = getattr(self._job, "term", None)
        opener = (
            (lambda: fenced_session(self.engine, self.lock, lambda: self._term == term))
            if term is not None
            else None
        )
        ctx = JobContext(self.engine, self.settings, self.clock, open_session=opener)
        return job.func(ctx)

    # --- one pass, for cron and the CLI's --once ------------------------------------------

    def run_once(self) -> dict[str, Any]:
        """Run every job once, in order, as the leader (Conflict if another one leads)."""
        _load_hook_modules()
        if not self.lock.try_acquire():
            raise Conflict("another scheduler is running", hint=self.lock.describe())
        self._terms += 1
        self._term = self._terms
        try:
            started = time.perf_counter()
            desired = self.desired_jobs()
            checks = [args[1] for _, (_, args) in sorted(desired.items()) if args[0] == "check"]
            for deployment_id in checks:
                self.execute("check", deployment_id, fenced=True)
            for kind in ("advance", "reconcile", "wake"):
                self.execute(kind, fenced=True)
            for name in _REGISTERED:
                self.execute("registered", name, fenced=True)
            report = self.execute("drain", fenced=True)
            return {
                "checks": len(checks),
                "seconds": round(time.perf_counter() - started, 3),
                "drain": report.model_dump() if report is not None else None,
            }
        finally:
            self._term = None
            self.lock.release()


def _offset(job_id: str, seconds: float) -> timedelta:
    """Spread check jobs over their interval (500 checks must not all start at :00); the
    service jobs start at once, except the re-sync which has just been done."""
    if job_id == "scheduler-sync":
        return timedelta(seconds=seconds)
    if not job_id.startswith("check:"):
        return timedelta(0)
    digest = int(hashlib.blake2b(job_id.encode(), digest_size=4).hexdigest(), 16)
    return timedelta(seconds=digest % max(1, int(seconds)))


def _load_hook_modules() -> None:
    for name in HOOK_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            log.debug("scheduler.no_hook_module", module=name)
