from __future__ import annotations

from sqlmodel import Session

from modeldeck.core.clock import FixedClock
from modeldeck.core.clusters import simulated
from modeldeck.core.clusters.backend import Phase, Release, Running, Target
from modeldeck.core.clusters.simulated import SimulatedBackend
from modeldeck.core.config import ClusterConfig

TARGET = Target(cluster="sim", namespace="ml", name="fraud", model="fraud", environment="staging")


def _release(version: str, deployment_id: int) -> Release:
    return Release(
        model="fraud",
        version=version,
        image=f"img:{version}",
        artifact_uri="",
        deployment_id=deployment_id,
    )


def test_a_rollout_takes_rollout_seconds_and_the_old_version_serves_meanwhile(
    session: Session, clock: FixedClock
) -> None:
    backend = SimulatedBackend(
        ClusterConfig(name="sim", rollout_seconds=30), session=session, clock=clock
    )
    assert backend.running(TARGET) is None
    assert backend.apply(TARGET, _release("1", 1)) is None
    clock.advance(seconds=30)
    assert backend.rollout_status(TARGET, _release("1", 1)).phase == Phase.available
    assert backend.apply(TARGET, _release("2", 2)) == Running(
        version="1", image="img:1", deployment_id=1
    )
    clock.advance(seconds=10)
    assert backend.rollout_status(TARGET, _release("2", 2)).phase == Phase.progressing
    assert backend.running(TARGET) == Running(version="1", image="img:1", deployment_id=1)
    clock.advance(seconds=20)
    assert backend.running(TARGET) == Running(version="2", image="img:2", deployment_id=2)


def test_failures_are_reproducible_per_rollout(session: Session, clock: FixedClock) -> None:
    half = SimulatedBackend(
        ClusterConfig(name="sim", failure_rate=0.5), session=session, clock=clock
    )
    outcomes = []
    for deployment_id in range(1, 41):
        half.apply(TARGET, _release("x", deployment_id))
        outcomes.append(half.rollout_status(TARGET, _release("x", deployment_id)).phase)
    assert 5 < outcomes.count(Phase.failed) < 35  # about half, from a seeded random
    again = []
    for deployment_id in range(1, 41):
        half.apply(TARGET, _release("x", deployment_id))
        again.append(half.rollout_status(TARGET, _release("x", deployment_id)).phase)
    assert again == outcomes
    never = SimulatedBackend(
        ClusterConfig(name="sim", failure_rate=0.0), session=session, clock=clock
    )
    never.apply(TARGET, _release("y", 99))
    assert never.rollout_status(TARGET, _release("y", 99)).phase == Phase.available


def test_hand_changes(session: Session, clock: FixedClock) -> None:
    backend = SimulatedBackend(ClusterConfig(name="sim"), session=session, clock=clock)
    backend.apply(TARGET, _release("1", 1))
    session.commit()
    simulated.edit_by_hand(
        session, cluster="sim", namespace="ml", name="fraud", image="img:patched", clock=clock
    )
    assert backend.running(TARGET) == Running(version="1", image="img:patched")
    simulated.delete_by_hand(session, cluster="sim", namespace="ml", name="fraud")
    assert backend.running(TARGET) is None
