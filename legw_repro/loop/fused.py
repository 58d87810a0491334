"""A fused group: N runs of one batch size (policies, seeds) trained as one stacked model.

Each member is built exactly as a solo run builds itself (legw_repro/loop/trainer.py: seed, the
task's model, its optimizer, its LEGW schedule, its own task for its data order). Its parameters
are then stacked across members into one leaf tensor per name, and each member's parameter is made
a view of its slot, so the member's own torch.optim optimizer updates the stack in place. A step:
one fused forward/backward of the sum of the members' mean losses (so each member's gradient is
its solo gradient), then per member, as the solo step does: clip by its own norm, optimizer step,
schedule step. A member that diverges (the solo rule, Trainer.diverged) stops alone (its slot is left out of the loss and
never stepped again); the others go on unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor, nn

from legw_repro.config.spec import RunSpec
from legw_repro.loop.optim import build_optimizer
from legw_repro.loop.rng import seed_everything
from legw_repro.loop.trainer import LoopState, Trainer
from legw_repro.run.status import Refused
from legw_repro.schedule import LEGWScheduler

if TYPE_CHECKING:  # the group knows a task by its methods only
    from legw_repro.tasks.base import Task


class NotFusable(Refused):
    """Runs that cannot be trained as members of one fused group (one line, the fix in it)."""


class FusedForward(Protocol):
    """The stacked twin of a task's model and loss (legw_repro/tasks/common/fused.py)."""

    def losses(
        self, stacks: dict[str, Tensor], batches: list[Any], carry: Any
    ) -> tuple[Tensor, Any]:
        """Each member's mean loss [N] from the stacked parameters, and the new carry."""
        ...


@dataclass
class Member:
    """One run of the group: its spec, task (its data order), model, optimizer and schedule."""

    spec: RunSpec
    task: Task
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LEGWScheduler
    losses: list[float] = field(default_factory=list)
    #: the solo loop's divergence state (initial loss, recent losses), read by Trainer.diverged
    state: LoopState = field(default_factory=LoopState)
    #: None while training; the reason once the member stopped alone
    stopped: str | None = None


def build_member(spec: RunSpec, task: Task) -> Member:
    """The member as Trainer.__init__ builds a solo run: the same seed, then the same calls."""
    seed_everything(spec.seed)
    model = task.build_model().to(task.device)
    optimizer = build_optimizer(spec.optimizer, model)
    scheduler = LEGWScheduler(optimizer, task.steps_per_epoch, spec.schedule)
    return Member(spec, task, model, optimizer, scheduler)


def _check(members: list[Member]) -> None:
    """One line when the runs cannot share a stack: another batch size, accumulation, ranks."""
    first = members[0]
    for m in members:
        if m.task.batch_size != first.task.batch_size or m.spec.task != first.spec.task:
            raise NotFusable(
                f"a fused group holds one task and one batch size; got {m.spec.task} "
                f"batch_size={m.task.batch_size} beside {first.spec.task} "
                f"batch_size={first.task.batch_size}: group the runs by batch size"
            )
        if m.task.accum_steps != 1 or m.task.dist.world_size != 1:
            raise NotFusable(
                f"accum_steps={m.task.accum_steps}, world_size={m.task.dist.world_size}: fused "
                "runs take one process and one micro-batch per step; set accum_steps=1"
            )


class FusedGroup:
    """The members trained together; `step` is one optimizer step of every running member."""

    def __init__(self, members: list[Member], forward: FusedForward) -> None:
        """`forward`: the twin of the members' model (legw_repro.tasks.common.fused.fused_forward)."""
        _check(members)
        self.members = members
        self.forward = forward
        self.spe = members[0].task.steps_per_epoch
        self.step_count = 0
        self.carry: Any = None
        names = [name for name, _ in members[0].model.named_parameters()]
        self.params = [dict(m.model.named_parameters()) for m in members]
        self.stacks: dict[str, Tensor] = {}
        with torch.no_grad():
            for name in names:
                stack = torch.stack([p[name].detach() for p in self.params]).requires_grad_()
                for i, p in enumerate(self.params):
                    p[name].data = stack.data[i]  # the member's optimizer updates the stack
                self.stacks[name] = stack

    @property
    def running(self) -> list[int]:
        return [i for i, m in enumerate(self.members) if m.stopped is None]

    def batches(self, epoch: int, start: int) -> Any:
        """Each step's batches, one per member, from each member's own task (its data order)."""
        streams = [m.task.train_batches(epoch, start) for m in self.members]
        for micro in zip(*streams, strict=True):
            yield [mb[0] for mb in micro]

    def train_step(self, batches: list[Any]) -> Tensor:
        """One step of every running member; the members' losses [N] (a stopped one's too)."""
        running = self.running
        for stack in self.stacks.values():
            stack.grad = None
        for i in running:
            self.members[i].optimizer.zero_grad(set_to_none=True)
        losses, self.carry = self.forward.losses(self.stacks, batches, self.carry)
        losses[running].sum().backward()
        for i in running:
            m = self.members[i]
            params = self.params[i]
            for name, stack in self.stacks.items():
                params[name].grad = stack.grad[i]
            if m.spec.optimizer.clip is not None:
                torch.nn.utils.clip_grad_norm_(list(params.values()), m.spec.optimizer.clip)
            m.optimizer.step()
            m.scheduler.step()
        return losses.detach()

    def run(self, steps: int) -> None:
        """Train `steps` more steps (fewer when every member stopped), reading each step's
        losses: a member that diverged by the solo run's rule (a NaN/inf, or diverge_factor)
        stops alone, named at its step."""
        end = self.step_count + steps
        while self.step_count < end and self.running:
            epoch, start = divmod(self.step_count, self.spe)
            if start == 0:
                self.carry = None  # every epoch starts from a zero hidden state
            for batches in self.batches(epoch, start):
                running = self.running
                losses = self.train_step(batches).tolist()
                self.step_count += 1
                for i in running:
                    m = self.members[i]
                    m.losses.append(losses[i])
                    m.state.step = self.step_count
                    # the solo run's own rule: a NaN/inf, or a loss far above its start
                    m.stopped = Trainer.diverged(m, losses[i])  # type: ignore[arg-type]
                if self.step_count >= end or not self.running:
                    break

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Per member state dicts; the parameters are cloned (a view would save the whole
        stack's storage N times over)."""
        return {
            "step": self.step_count,
            "carry": self.carry,
            "members": [
                {
                    "model": {k: v.detach().clone() for k, v in m.model.state_dict().items()},
                    "optimizer": m.optimizer.state_dict(),
                    "scheduler": m.scheduler.state_dict(),
                    "losses": list(m.losses),
                    "stopped": m.stopped,
                    "loop": dict(m.state.__dict__),
                }
                for m in self.members
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The inverse of state_dict on a group built from the same specs: copies land in the
        stack through the members' views."""
        self.step_count, self.carry = state["step"], state["carry"]
        for m, s in zip(self.members, state["members"], strict=True):
            m.model.load_state_dict(s["model"])
            m.optimizer.load_state_dict(s["optimizer"])
            m.scheduler.load_state_dict(s["scheduler"])
            m.losses, m.stopped = list(s["losses"]), s["stopped"]
            m.state = LoopState(**s["loop"])
