"""The training step as one CUDA graph: captured once, replayed every step (`cuda_graphs`).

Why: at small batches a GPU step is bound by the host launching a few hundred small kernels
(forward, backward, clip, optimizer), not by the maths; replaying a captured graph launches them
all with one call. It applies where every step has the same shapes -- PTB (fixed BPTT windows)
and MNIST (fixed batches, the last partial one dropped) -- in one process (no DDP), with one
micro-batch per step. GNMT's batches change shape every step and stay eager. `cuda_graphs=auto` (the default) graphs
every run where it applies and trains the others eagerly, with the reason in the record
(`cuda_graphs_off`); `true` insists (refused before training where it cannot apply); `false`
never graphs. A capture that fails at run time (an operation the capture forbids) leaves nothing
changed, so the run goes on eagerly with one warning line and the reason in the record.

How (PyTorch's whole-network capture): the first `warmup` steps run eagerly on a side stream
(cuBLAS/cuDNN workspaces, the optimizer's state, autograd's set-up); the next step is captured
into static buffers -- the batch, the carried LSTM state, the loss -- and from then on every step
copies its batch into those buffers and replays. The optimizer reads its learning rate from a
device tensor, refreshed from the scheduler's float before each replay, so the LEGW schedule,
the checkpoints and the metrics rows keep their plain floats. The carry is copied in when the
trainer replaced it (epoch start, resume) and written back by the graph itself. The optimizer
must be fused (legw_repro/loop/optim.py does that on CUDA): its foreach path reads a tensor
learning rate on the host, which a capture forbids.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from legw_repro.run.status import first_line


def unsupported(
    task: str, fixed_shapes: bool, device: str, world_size: int, accum_steps: int
) -> str | None:
    """Why `cuda_graphs=true` cannot apply to this run (one line naming the fix), else None.
    `fixed_shapes`: the task's `Task.fixed_shapes` (every batch the same shapes)."""
    if device != "cuda":
        return f"cuda_graphs=true needs device=cuda (this run is on {device}); leave it false"
    if not fixed_shapes:
        return (
            f"cuda_graphs=true needs fixed-shape batches (Task.fixed_shapes); task={task} has not"
        )
    if world_size != 1 or accum_steps != 1:
        return "cuda_graphs=true runs one process with accum_steps=1; leave it false for DDP or accumulation"
    return None


class CaptureFailed(RuntimeError):
    """The capture failed; nothing of the step ran, so the caller can take it eagerly."""


def _clone(obj: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    return tuple(_clone(o) for o in obj)


def _record(obj: Any, stream: torch.cuda.Stream) -> None:
    """Tell the allocator that `stream` uses these tensors (so it does not reuse them early)."""
    if isinstance(obj, torch.Tensor):
        obj.record_stream(stream)
    elif obj is not None:
        for o in obj:
            _record(o, stream)


def _copy_into(dst: Any, src: Any) -> None:
    if isinstance(dst, torch.Tensor):
        dst.copy_(src)
    elif dst is not None:
        for d, s in zip(dst, src, strict=True):
            _copy_into(d, s)


class GraphedStep:
    """Replaces `trainer.train_step`'s body once built; `trainer` is the Trainer (its model, net,
    optimizer, scheduler, task, carry and `eager_step`)."""

    @classmethod
    def choose(cls, trainer: Any, setting: bool | str) -> tuple[GraphedStep | None, str | None]:
        """`cuda_graphs` (true | false | "auto") for `trainer`'s run -> (the graphed step, None),
        or (None, why the step stays eager). `true` where it cannot apply: ValueError (one line)."""
        if setting is False:
            return None, "cuda_graphs=false"
        spec = trainer.spec
        why = unsupported(
            spec.task,
            trainer.task.fixed_shapes,
            trainer.device.type,
            spec.world_size,
            spec.accum_steps,
        )
        if why and setting is True:
            raise ValueError(why)
        if why:
            return None, why.replace("cuda_graphs=true needs", "needs").split("; ")[0]
        return cls(trainer), None

    def __init__(self, trainer: Any, warmup: int = 3) -> None:
        self.trainer = trainer
        self.warmup = warmup
        self.eager_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side = torch.cuda.Stream()
        dtype = torch.bfloat16 if trainer.spec.precision == "bf16" else None
        self.autocast = (
            torch.autocast("cuda", dtype=dtype, cache_enabled=False)  # the cache breaks capture
            if dtype
            else contextlib.nullcontext()
        )

    def step(self, micro: list[Any]) -> torch.Tensor:
        t = self.trainer
        if self.graph is None and self.eager_steps < self.warmup:
            self.eager_steps += 1
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                loss = t.eager_step(micro)
            main = torch.cuda.current_stream()
            main.wait_stream(self.side)
            _record((loss, t.carry[0]), main)  # made on the side stream, read on the main one
            return loss
        if self.graph is None:
            self._capture(micro)
        _copy_into(self.batch, micro[0])
        if t.carry[0] is not self.carry:
            _copy_into(self.carry, t.carry[0])
        for lr, group in zip(self.lrs, t.optimizer.param_groups, strict=True):
            lr.fill_(group["lr"])
        self.graph.replay()
        t.carry[0] = self.carry
        t.scheduler.step()
        return self.loss

    def _capture(self, micro: list[Any]) -> None:
        """Record one step on static buffers (nothing runs: the caller replays it)."""
        t = self.trainer
        opt, groups = t.optimizer, t.optimizer.param_groups
        self.batch, self.carry = _clone(micro[0]), _clone(t.carry[0])
        self.lrs = [torch.tensor(float(g["lr"]), device=t.device) for g in groups]
        floats = [(g["lr"], g.get("capturable")) for g in groups]
        for g, lr in zip(groups, self.lrs, strict=True):
            g["lr"] = lr
            if "capturable" in g:
                g["capturable"] = True  # Adam's capture check; fused kernels take the tensor lr
        torch.cuda.synchronize()
        opt.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        try:
            self._record_step(t)
        except RuntimeError as err:
            self.graph = None
            opt.zero_grad(set_to_none=True)
            why = first_line(err)
            raise CaptureFailed(f"cuda_graphs: the step could not be captured ({why})") from err
        finally:
            for g, (lr, capturable) in zip(groups, floats, strict=True):
                g["lr"] = lr
                if capturable is not None:
                    g["capturable"] = capturable

    def _record_step(self, t: Any) -> None:
        """The step's forward, backward, clip and optimizer step, recorded into `self.graph`."""
        opt = t.optimizer
        with torch.cuda.graph(self.graph):
            with self.autocast:
                loss, new_carry = t.task.loss(t.net, self.batch, self.carry)
            loss.backward()
            if t.spec.optimizer.clip is not None:
                torch.nn.utils.clip_grad_norm_(t.params, t.spec.optimizer.clip)
            opt.step()
            if new_carry is not None:
                _copy_into(self.carry, new_carry)
            self.loss = loss.detach()
