"""A fused group: N runs of one batch size (policies, seeds) trained as one stacked model.

Each member is a solo run's own Trainer (legw_repro/loop/trainer.py: the same seed, model,
optimizer, LEGW schedule, its own task for its data order, its own record and checkpoints).
Its parameters are then stacked across members into one leaf tensor per name, and each member's
parameter is made a view of its slot, so the member's own torch.optim optimizer updates the stack
in place. A step: one fused forward/backward of the sum of the members' mean losses (so each
member's gradient is its solo gradient), then per member, as the solo step does: clip by its own
norm, optimizer step, schedule step; then each member's own `after_step` (rows, evaluation,
checkpoint, divergence), so its record is the one its solo run writes. A member that diverges
(the solo rule) stops alone: its slot is left out of the loss and never stepped again.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from legw_repro.loop.state import Stop
from legw_repro.loop.trainer import Trainer
from legw_repro.run.status import Refused

if TYPE_CHECKING:
    from tqdm import tqdm


class NotFusable(Refused):
    """Runs that cannot be trained as members of one fused group (one line, the fix in it)."""


class FusedForward(Protocol):
    """The stacked twin of a task's model and loss (legw_repro/tasks/common/fused.py)."""

    def losses(
        self, stacks: dict[str, Tensor], batches: list[Any], carry: Any
    ) -> tuple[Tensor, Any]:
        """Each member's mean loss [N] from the stacked parameters, and the new carry."""
        ...

    def member_carry(self, carry: Any, i: int) -> list[Any] | None:
        """Member i's slot of the group's carry, in its solo run's form (None: a fresh one)."""
        ...

    def stack_carry(self, carries: list[list[Any] | None]) -> Any:
        """The group's carry from its members' solo carries (a resumed group)."""
        ...


#: the loop settings every member must share: they decide when a member reads, evaluates and
#: checkpoints, which a group does for all its members at the same steps
SHARED_LOOP = ("eval_every_epochs", "checkpoint_every_steps", "checkpoint_every_min")


def _check(members: list[Trainer]) -> None:
    """One line when the runs cannot share a stack: another batch size, budget, accumulation,
    loop setting, or (resumed) step."""
    first = members[0]
    for m in members:
        if m.task.batch_size != first.task.batch_size or m.spec.task != first.spec.task:
            raise NotFusable(
                f"a fused group holds one task and one batch size; got {m.spec.task} "
                f"batch_size={m.task.batch_size} beside {first.spec.task} "
                f"batch_size={first.task.batch_size}: group the runs by batch size"
            )
        if m.task.accum_steps != 1 or m.dist.world_size != 1:
            raise NotFusable(
                f"accum_steps={m.task.accum_steps}, world_size={m.dist.world_size}: fused "
                "runs take one process and one micro-batch per step; set accum_steps=1"
            )
        differ = [k for k in SHARED_LOOP if getattr(m.spec.loop, k) != getattr(first.spec.loop, k)]
        if m.total_steps != first.total_steps or differ:
            shared = ", ".join(differ) or "epochs"
            raise NotFusable(
                f"the members of a fused group share {shared}: {m.spec.policy} seed "
                f"{m.spec.seed} differs from {first.spec.policy} seed {first.spec.seed}; train "
                "runs with other budgets or loop settings separately"
            )
    steps = sorted({m.state.step for m in members})
    if len(steps) > 1:
        raise NotFusable(
            f"the runs of this fused group were checkpointed at different steps {steps}: "
            "relaunch with hydra.sweeper.fuse=null, so that each resumes alone"
        )


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Flag:
    """The members' view of the preemption signal: read once per group step, so that every
    member stops (and checkpoints) at the same step even when the signal lands mid-step."""

    def __init__(self, guard: Any) -> None:
        self.guard, self.requested, self.signum = guard, False, None

    def read(self) -> None:
        self.requested = bool(getattr(self.guard, "requested", False))
        self.signum = getattr(self.guard, "signum", None)


class FusedGroup:
    """The members trained together; `train_step` is one optimizer step of every running
    member, `fit` trains them to their ends with their records, `run` steps them bare."""

    def __init__(
        self, members: list[Trainer], forward: FusedForward, stacked: bool | None = None
    ) -> None:
        """`forward`: the twin of the members' model (legw_repro.tasks.common.fused.fused_forward).
        `stacked`: one stacked model (default on a GPU), else each member's own solo step one
        after another in this process (default on a CPU: with no idle device to fill, stacking
        only loses to the library's LSTM, 0.81-0.87 of separate runs' tokens/s measured)."""
        _check(members)
        self.members = members
        self.forward = forward
        self.stacked = members[0].device.type == "cuda" if stacked is None else stacked
        self._pool: ThreadPoolExecutor | None = None  # stepwise members side by side
        self.spe = members[0].spe
        self.step_count = members[0].state.step
        #: per member: the losses `run` read, and why it stopped (None while it trains)
        self.losses: list[list[float]] = [[] for _ in members]
        self.stopped: list[str | None] = [None] * len(members)
        self.params = [dict(m.model.named_parameters()) for m in members]
        self.stacks: dict[str, Tensor] = {}
        with torch.no_grad():
            for name in self.params[0] if self.stacked else ():
                stack = torch.stack([p[name].detach() for p in self.params]).requires_grad_()
                for i, p in enumerate(self.params):
                    p[name].data = stack.data[i]  # the member's optimizer updates the stack
                self.stacks[name] = stack
        self.carry: Any = forward.stack_carry([m.carry for m in members])

    @property
    def running(self) -> list[int]:
        return [i for i, why in enumerate(self.stopped) if why is None]

    def batches(self, epoch: int, start: int) -> Any:
        """Each step's batches, one per member, from each member's own task (its data order)."""
        streams = [m.task.train_batches(epoch, start) for m in self.members]
        for micro in zip(*streams, strict=True):
            yield [mb[0] for mb in micro]

    def train_step(self, batches: list[Any]) -> Tensor:
        """One step of every running member; the members' losses [N] (a stopped one's too)."""
        if not self.stacked:
            return self._stepwise(batches)
        running = self.running
        for stack in self.stacks.values():
            stack.grad = None
        for i in running:
            self.members[i].optimizer.zero_grad(set_to_none=True)
        losses, self.carry = self.forward.losses(self.stacks, batches, self.carry)
        losses[running].sum().backward()
        for i in running:
            m, params = self.members[i], self.params[i]
            for name, stack in self.stacks.items():
                params[name].grad = stack.grad[i]
            if m.spec.optimizer.clip is not None:
                torch.nn.utils.clip_grad_norm_(list(params.values()), m.spec.optimizer.clip)
            m.optimizer.step()
            m.scheduler.step()
        self.step_count += 1
        return losses.detach()

    def _stepwise(self, batches: list[Any]) -> Tensor:
        """Each running member's own solo step (Trainer.eager_step): one after another, or side
        by side in threads where the intra-op threads leave cores idle (each member's ops are
        its own; torch releases the GIL in them), as separate processes would use them."""
        for i, m in enumerate(self.members):
            if self.stopped[i] is None and m.carry is None:  # the epoch's start
                m.carry = m.task.init_carry(m.model)
        running = self.running

        def step(i: int) -> Tensor:
            return self.members[i].eager_step([batches[i]]).detach()

        workers = min(len(running), max(1, _cores() // torch.get_num_threads()))
        if workers > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="fused-member")
            stepped = dict(zip(running, self._pool.map(step, running), strict=True))
        else:
            stepped = {i: step(i) for i in running}
        nan = torch.full((), math.nan, device=self.members[0].device)
        self.step_count += 1
        return torch.stack([stepped.get(i, nan) for i in range(len(self.members))])

    def _steps(self) -> Any:
        """Every step left, as (its batches), the carry reset at each epoch's start."""
        while self.running and self.step_count < self.members[0].total_steps:
            epoch, start = divmod(self.step_count, self.spe)
            if start == 0:  # every epoch starts from a zero hidden state
                self.carry = None
                if not self.stacked:
                    for m in self.members:
                        m.carry = None
            for batches in self.batches(epoch, start):
                yield batches
                done = self.step_count >= self.members[0].total_steps
                if done or not self.running or self.step_count % self.spe == 0:
                    break

    def run(self, steps: int) -> None:
        """Train `steps` more steps with no record (the bench, the tests), reading each step's
        losses: a member that diverged by its solo run's rule stops alone, named at its step."""
        end = self.step_count + steps
        for batches in self._steps():
            running = self.running
            losses = self.train_step(batches).tolist()
            for i in running:
                m = self.members[i]
                self.losses[i].append(losses[i])
                self.stopped[i] = m.diverged(losses[i], self.step_count)
            if self.step_count >= end:
                break

    def fit(self, done: Callable[[int, dict[str, Any]], None]) -> None:
        """Train every member to its end or its stop, each as its Trainer.fit would, writing
        its own record; `done(i, result)` as member i stops or ends (result: Trainer.end's).
        A preemption stops every member at one step, each with its checkpoint."""
        now = time.monotonic()
        bars = [m.begin(True, now) for m in self.members]  # a restored member truncates its rows
        flag = _Flag(self.members[0].preemption)
        for m in self.members:
            m.preemption = flag
        for batches in self._steps():
            running = self.running
            t0 = time.monotonic()
            lrs = [m.optimizer.param_groups[0]["lr"] for m in self.members]
            for i in running:
                if self.members[i]._window_t0 is None:
                    self.members[i]._window_t0 = t0
            losses = self.train_step(batches)
            flag.read()
            now = time.monotonic()
            for i in running:
                result = self._after(i, lrs[i], losses[i], bars[i], now)
                if result is not None:
                    done(i, result)
        for i in self.running:  # only when no step was left: a resumed, finished group
            self.stopped[i] = "completed"
            done(i, self.members[i].end(None, bars[i]))

    def _after(self, i: int, lr: float, loss: Tensor, bar: tqdm, now: float) -> dict | None:
        """Member i's own `after_step`; its result when it stopped or reached its end."""
        m = self.members[i]
        if self.stacked:
            m.carry = self.forward.member_carry(self.carry, i)  # what its checkpoint holds
        stop: Stop | None = m.after_step(lr, loss, bar, now)
        if stop is None and m.state.step < m.total_steps:
            return None
        self.stopped[i] = stop.status if stop else "completed"
        return m.end(stop, bar)
