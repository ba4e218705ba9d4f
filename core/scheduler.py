"""The scheduler: checks, outbox delivery, rollouts and other domains' periodic jobs.

APScheduler 3 (BackgroundScheduler) with its job store in modeldeck's own database, so a
restarted or new leader resumes the schedule where it stood. Only one scheduler acts at a
time: on PostgreSQL it holds an advisory lock on a dedicated connection (a second scheduler
waits and takes over when the first dies and its connection drops); on SQLite a file lock
beside the database does the same for one machine.

Every job runs with max_instances=1 and coalesce, so a check that overruns its interval is
never started twice and missed runs collapse into one. A check first records `error` results
marked "did not finish" and replaces them with the real results when it completes, so a crash
mid-check (even a killed process) leaves an error, not a gap.

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
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from modeldeck.core import logs
from modeldeck.core.alerts import service as alerts
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import Conflict
from modeldeck.core.metrics import CHECKS
from modeldeck.core.monitoring import flows
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.notify import service as notify
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment, DeploymentState
from modeldeck.core.scheduler_lock import Leadership, leadership_for

log = logs.get("modeldeck.scheduler")
JOBS_TABLE = "apscheduler_jobs"
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
MARKED_KINDS = (CheckKind.drift, CheckKind.quality, CheckKind.decay)
DID_NOT_FINISH = "the check did not finish (the scheduler stopped or crashed mid-check)"
WAKE_SECONDS = 60.0
HOOK_MODULES = ("modeldeck.core.hardware.jobs",)  # imported at start; they call register_job


class CheckRunner(Protocol):
    def __call__(
        self,
        session: Session,
        *,
        settings: Settings,
        deployment_id: int,
        window_end: datetime | None = None,
        clock: Clock = utcnow,
    ) -> Any: ...


@dataclass(frozen=True)
class JobContext:
    """What a registered job gets: open your own Session(engine) per run."""

    engine: Engine
    settings: Settings
    clock: Clock


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
    runner.execute(kind, arg)


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
        self.aps: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._sync_lock = threading.Lock()
        self._thread: threading.Thread | None = None

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
        lost = False
        try:
            aps.start()
            log.info("scheduler.leading", lock=self.lock.describe())
            self.sync_jobs()
            self.is_leader = True
            while not self._stop.wait(self.poll_seconds):
                if not self.lock.alive():
                    lost = True
                    log.error("scheduler.lost_leadership", lock=self.lock.describe())
                    break
        finally:
            self.is_leader = False
            # Stopping: let running checks finish. Lost the lock: stop at once, another
            # scheduler is taking over and its results must not race ours.
            aps.shutdown(wait=not lost)
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

    def execute(self, kind: str, arg: Any = None) -> Any:
        """Run one job now (APScheduler calls this through run_job; tests and `--once` too)."""
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
        except Exception:
            log.exception("scheduler.job_failed", job=kind, arg=arg)
            return None

    def run_check(self, deployment_id: int) -> list[CheckResult] | None:
        """Run one deployment's checks with a safety net: `error` results are recorded first
        and replaced by the real ones, or kept with the exception when the check fails."""
        with Session(self.engine, expire_on_commit=False) as session:
            deployment = session.get(Deployment, deployment_id)
            if deployment is None or deployment.state != DeploymentState.active:
                log.info("scheduler.check_skipped", deployment_id=deployment_id)
                return None
            model = session.get(Model, deployment.model_id)
            assert model is not None
            window = timedelta(minutes=self.settings.check_config(model.name).window_minutes)
            window_end = self.clock().replace(second=0, microsecond=0)
            markers = _mark_started(session, deployment_id, window_end - window, window_end)
            started = time.perf_counter()
            try:
                results: list[CheckResult] = (
                    self.check_runner(
                        session,
                        settings=self.settings,
                        deployment_id=deployment_id,
                        window_end=window_end,
                        clock=self.clock,
                    )
                    or []
                )
            except Exception as exc:
                session.rollback()
                log.exception("scheduler.check_crashed", deployment_id=deployment_id)
                return self._keep_markers(session, markers, exc, started)
            session.execute(
                delete(CheckResult).where(col(CheckResult.id).in_([m.id for m in markers]))
            )
            session.commit()
            return results

    def _keep_markers(
        self, session: Session, markers: list[CheckResult], exc: Exception, started: float
    ) -> list[CheckResult]:
        elapsed = int((time.perf_counter() - started) * 1000)
        for marker in markers:
            marker.message = f"the checks crashed: {type(exc).__name__}: {exc}"[:1000]
            marker.details = {**marker.details, "error": marker.message}
            marker.duration_ms = elapsed
            session.add(marker)
            CHECKS.labels(str(marker.kind), "error").inc()
        session.commit()
        try:  # a crashed check is itself worth an alert (monitoring of the monitoring): one
            # alert, not one per kind, since a crash stops them all
            alerts.evaluate_check(
                session, settings=self.settings, result=markers[0], clock=self.clock
            )
        except Exception:
            session.rollback()
            log.exception("scheduler.check_error_alert_failed")
        return markers

    def _drain(self, _: Any) -> Any:
        with Session(self.engine, expire_on_commit=False) as session:
            return notify.drain(session, settings=self.settings, clock=self.clock)

    def _advance(self, _: Any) -> Any:
        with Session(self.engine, expire_on_commit=False) as session:
            return rollouts.advance_in_flight(session, settings=self.settings, clock=self.clock)

    def _reconcile(self, _: Any) -> Any:
        with Session(self.engine, expire_on_commit=False) as session:
            return flows.reconcile_and_alert(session, settings=self.settings, clock=self.clock)

    def _wake(self, _: Any) -> int:
        with Session(self.engine, expire_on_commit=False) as session:
            return alerts.wake_snoozed(session, settings=self.settings, clock=self.clock)

    def _registered(self, name: str) -> Any:
        job = _REGISTERED.get(name)
        if job is None:
            log.warning("scheduler.unknown_job", name=name)
            return None
        return job.func(JobContext(engine=self.engine, settings=self.settings, clock=self.clock))

    # --- one pass, for cron and the CLI's --once ------------------------------------------

    def run_once(self) -> dict[str, Any]:
        """Run every job once, in order, as the leader (Conflict if another one leads)."""
        _load_hook_modules()
        if not self.lock.try_acquire():
            raise Conflict("another scheduler is running", hint=self.lock.describe())
        try:
            started = time.perf_counter()
            desired = self.desired_jobs()
            checks = [args[1] for _, (_, args) in sorted(desired.items()) if args[0] == "check"]
            for deployment_id in checks:
                self.run_check(deployment_id)
            for kind in ("advance", "reconcile", "wake"):
                self.execute(kind)
            for name in _REGISTERED:
                self.execute("registered", name)
            report = self.execute("drain")
            return {
                "checks": len(checks),
                "seconds": round(time.perf_counter() - started, 3),
                "drain": report.model_dump() if report is not None else None,
            }
        finally:
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


def _mark_started(
    session: Session, deployment_id: int, start: datetime, end: datetime
) -> list[CheckResult]:
    markers = [
        CheckResult(
            deployment_id=deployment_id,
            kind=kind,
            window_start=start,
            window_end=end,
            status=CheckStatus.error,
            message=DID_NOT_FINISH,
            details={"error": DID_NOT_FINISH, "started_at": utcnow().isoformat()},
        )
        for kind in MARKED_KINDS
    ]
    session.add_all(markers)
    session.commit()
    return markers


def _load_hook_modules() -> None:
    for name in HOOK_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            log.debug("scheduler.no_hook_module", module=name)
