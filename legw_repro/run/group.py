"""A fused group's life: N runs of one batch size trained as one stacked model in one process
(legw_repro/loop/fused.py), each with the record, checkpoints and statuses of its solo run.

Per member, what `run` (lifecycle.py) does for one run: its directory locked and matched
against its config (start, resume, skip, refuse), its task and Trainer built and restored on a
resume. Only then, when the group is known to fuse (else NotFusable, one line, nothing
written), are the records opened and the group trained; each member's final summary is written
when it stops (a diverged member at its step, the others at the end). A member whose directory
another live process holds is left out and named at the end (RunLocked, after the others
trained); a preemption stops every member at one step with its checkpoint.

The sweeper (hydra_plugins/legw_sweeper, `hydra.sweeper.fuse`) groups a grid's points and hands
each group to one job; the job reads the group file (legw_repro/sweep/fuse.py) and calls this.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from legw_repro.config.fingerprint import config_values, digest
from legw_repro.config.spec import build_spec
from legw_repro.loop import distributed
from legw_repro.run.lifecycle import build, conclude, decide, finish, open_record, writer
from legw_repro.run.preemption import Preempted, PreemptionGuard
from legw_repro.run.runlock import RunLocked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupMember:
    """One run of a fused group: its composed config, run directory and own overrides."""

    cfg: DictConfig
    run_dir: Path
    overrides: tuple[str, ...] = ()


@dataclass
class _Todo:
    member: GroupMember
    action: str
    started_at: str | None
    fingerprint: str


def run_group(members: list[GroupMember], stacked: bool | None = None) -> list[dict[str, Any]]:
    """Train `members` as one fused group; their summaries (a finished one's as it stood).
    `stacked`: FusedGroup's (default: stacked on a GPU, member by member on a CPU).
    Raises NotFusable (before any record is touched), Preempted (every member checkpointed),
    RunLocked (after the others, naming the members another process holds)."""
    if int(os.environ.get("WORLD_SIZE", "1")) != 1:
        from legw_repro.loop.fused import NotFusable

        raise NotFusable("a fused group trains in one process; launch it without torchrun")
    summaries: list[dict[str, Any]] = []
    locked: list[str] = []
    todo: list[_Todo] = []
    with contextlib.ExitStack() as held, PreemptionGuard() as guard:
        if guard.sweep_stopped is not None:  # its sweep was stopped before it began
            raise Preempted(guard.sweep_stopped, None, ", ".join(str(m.run_dir) for m in members))
        for m in members:
            try:
                held.enter_context(writer(m.run_dir, True))
            except RunLocked as e:
                locked.append(str(e))
                continue
            values = config_values(m.cfg)
            decision, previous = decide(m.cfg, m.run_dir, values)
            if decision.action == "skip":
                summaries.append(previous)  # type: ignore[arg-type]
                continue
            started = (previous or {}).get("started_at") if decision.action == "resume" else None
            todo.append(_Todo(m, decision.action, started, digest(values)))
        if todo:
            summaries += _train(todo, guard, stacked)
    if locked:
        raise RunLocked("; ".join(locked))
    return summaries


def _train(todo: list[_Todo], guard: PreemptionGuard, stacked: bool | None) -> list[dict[str, Any]]:
    from legw_repro.loop.fused import FusedGroup
    from legw_repro.tasks.common.fused import fused_forward

    first = todo[0].member.cfg
    dist = distributed.setup(str(first.device), float(first.dist_timeout_s))
    trainers = [
        build(
            t.member.cfg,
            build_spec(t.member.cfg),
            dist,
            t.member.run_dir,
            t.fingerprint,
            t.action,
            fused=True,
            overrides=t.member.overrides,
        )
        for t in todo
    ]
    group = FusedGroup(trainers, fused_forward(trainers[0].model), stacked)  # NotFusable: 1 line
    root = Path(os.path.commonpath([str(t.member.run_dir) for t in todo]))
    fused = {
        "members": len(todo),
        "runs": [str(t.member.run_dir.relative_to(root)) for t in todo],
        "stacked": group.stacked,
    }
    bases = [
        {**open_record(t.member.cfg, tr, t.started_at), "fused": fused}
        for t, tr in zip(todo, trainers, strict=True)
    ]
    for tr in trainers:
        tr.preemption = guard
    summaries: dict[int, dict[str, Any]] = {}

    def done(i: int, result: dict[str, Any]) -> None:
        tr = trainers[i]
        summaries[i] = finish(tr.record, {**bases[i], **tr.summary_fields()}, **result)
        if result["status"] != "preempted":
            conclude(todo[i].member.cfg, summaries[i], tr.record, dist)

    try:
        group.fit(done)
    except Exception as e:
        for i, tr in enumerate(trainers):
            if i not in summaries:
                reason = f"{type(e).__name__}: {e}"
                fields = {**bases[i], **tr.summary_fields()}
                finish(tr.record, fields, "failed", reason, tr.final_metrics("failed"))
        raise
    preempted = [
        str(t.member.run_dir) for i, t in enumerate(todo) if summaries[i]["status"] == "preempted"
    ]
    if preempted:
        raise guard.preempted(group.step_count, ", ".join(preempted))
    return [summaries[i] for i in range(len(todo))]
