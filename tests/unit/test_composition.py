"""The composition root (engine/app.py) builds one object per service and hands each the very
collaborators the others hold: one bus, one conference life cycle, one toll-fraud guard."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from engine.adapters.asterisk import MediaNodes
from engine.app import build_services
from engine.config import Settings
from engine.services.bus import EventBus
from engine.services.container import Services


class IdleAgi:
    """The FastAGI figures of a server that has seen no session."""

    listening = True
    active = 0
    sessions: Counter[str] = Counter()
    ended: Counter[str] = Counter()


def build(tmp_path: Path) -> tuple[Services, EventBus]:
    bus = EventBus()
    settings = Settings(test_mode=True, run_dir=tmp_path)
    return build_services(settings, None, MediaNodes(), IdleAgi(), bus), bus  # type: ignore[arg-type]


def test_every_service_is_built_once_and_shared(tmp_path: Path) -> None:
    services, bus = build(tmp_path)
    values = [getattr(services, f.name) for f in dataclasses.fields(Services)]
    assert all(value is not None for value in values)
    built = [v for v in values if v is not services.settings]
    assert len({id(v) for v in built}) == len(built), "one object per service"
    assert services.bus is bus
    assert services.live.calls is services.lifecycle.calls is services.calls
    assert services.planning.lifecycle is services.live.lifecycle is services.scheduler.lifecycle is services.lifecycle
    assert services.planning.records is services.live.records is services.lifecycle.records
    assert services.planning.checks is services.live.checks
    assert services.quality.planning is services.planning and services.pictures.planning is services.planning
    assert services.keypad.live is services.live
    assert services.keypad.recording is services.recording and services.recording.calls is services.calls
    assert services.operator.conferences is services.live
    assert services.recovery.calls is services.calls
    assert services.operator.accounts is services.accounts
    assert services.accounts.tokens is services.tokens
    assert services.dialout.guard is services.planning.checks.guard is services.guard
    assert services.dialout.plans is services.planning.checks.plans is services.plan_groups.plans is services.plans
    assert services.plan_groups.dialplan is services.dialplan
    assert services.operator.access is services.plan_groups.access
    assert services.selfservice.accounts is services.accounts
    assert services.dialin.guard is services.pin_guard
    assert services.dialin.rooms is services.rooms and services.rooms.series is services.series
    assert services.series.planning is services.planning and services.series.occurrences is services.occurrences
    assert services.series.mail is services.occurrences.mail is services.rooms.mail
    assert services.rooms.lifecycle is services.lifecycle
    assert services.accounts.audit is services.audit and services.guard.audit is services.audit
    assert services.guard.metrics is services.metrics.metrics


def test_the_scheduler_and_the_conference_services_share_one_wake_up(tmp_path: Path) -> None:
    services, _ = build(tmp_path)
    assert not services.planning.records.schedule_changed.is_set()
    services.scheduler.wake()
    assert services.planning.records.schedule_changed.is_set()


async def test_the_start_up_heap_leaves_the_full_collections_while_the_engine_runs(tmp_path: Path) -> None:
    """What start-up built is frozen out of the collector's full passes (each walked the whole
    heap, about 80 ms in the event loop) and given back to it when the engine stops."""
    import gc

    from engine.app import Engine

    engine = Engine(Settings(test_mode=True, run_dir=tmp_path))
    engine._freeze_startup_heap()  # the last step of Engine.start
    try:
        assert gc.get_freeze_count() > 1000
    finally:
        await engine.stop()
    assert gc.get_freeze_count() == 0


def test_the_claims_take_the_pool_given_for_them(tmp_path: Path) -> None:
    settings = Settings(test_mode=True, run_dir=tmp_path)
    shared, claims = object(), object()
    alone = build_services(settings, shared, MediaNodes(), IdleAgi(), EventBus())  # type: ignore[arg-type]
    assert alone.dialout.slots.pool is shared
    split = build_services(settings, shared, MediaNodes(), IdleAgi(), EventBus(),  # type: ignore[arg-type]
                           claims_pool=claims)  # type: ignore[arg-type]
    assert split.dialout.slots.pool is claims and split.dialout.repo.pool is shared


def test_the_call_states_take_the_pool_given_for_them(tmp_path: Path) -> None:
    """The dial-out, the tracker and the participant states write on the calls' pool, one
    repository between them; the rest of the engine keeps the shared pool."""
    settings = Settings(test_mode=True, run_dir=tmp_path)
    shared, calls = object(), object()
    services = build_services(settings, shared, MediaNodes(), IdleAgi(), EventBus(),  # type: ignore[arg-type]
                              calls_pool=calls)  # type: ignore[arg-type]
    assert services.dialout.repo is services.calls.repo is services.calls.states.repo
    assert services.calls.repo.pool is calls
    assert services.live.repo.pool is shared and services.dialout.slots.pool is shared

