"""The training loop, readable top to bottom.

One code path for a CPU laptop, one GPU, and torchrun DDP over many GPUs and nodes. What it does
every optimizer step: the task's micro-batches for this rank -> forward/backward (DDP averages
gradients across ranks on the last micro-batch) -> clip -> optimizer step -> LEGW schedule step
-> one metrics row. At every epoch end: evaluate on the validation split and checkpoint; also
checkpoint every `checkpoint_every_min` minutes. A NaN/inf loss (named at its own step), or a
loss far above where it started, stops the run with status "diverged" instead of crashing a
sweep. No step waits for the device: losses stay there and are read every `sync_every` steps
(legw_repro/loop/losslog.py; every step on a CPU, where a read costs nothing). A preemption signal
(legw_repro/run/preemption.py) stops the run at the next read with a checkpoint and status
"preempted". Checkpoints are written and read by legw_repro/loop/checkpoint.py (last.pt, with prev.pt
to fall back on). `cuda_graphs` (default `auto`: on CUDA for fixed-shape tasks in one process)
replays the step as one CUDA graph (legw_repro/loop/cudagraph.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from legw_repro.config.spec import RunSpec
from legw_repro.loop import checkpoint, distributed
from legw_repro.loop.checkpoint import CheckpointMismatch
from legw_repro.loop.cudagraph import CaptureFailed, GraphedStep
from legw_repro.loop.diskfull import writing
from legw_repro.loop.distributed import DistInfo
from legw_repro.loop.losslog import LossLog, sync_every
from legw_repro.loop.nonfinite import NonFinite
from legw_repro.loop.optim import build_optimizer
from legw_repro.loop.rng import rng_state, seed_everything, set_rng_state
from legw_repro.loop.state import LoopState, Stop, compact, to_device
from legw_repro.schedule import LEGWScheduler, schedule_summary

if TYPE_CHECKING:  # the loop knows a record and a task by their methods only
    from legw_repro.run.records import RunRecord
    from legw_repro.tasks.base import Task

log = logging.getLogger(__name__)


#: seconds between heartbeats (summary.json "heartbeat_at") while steps run; checkpoints and
#: evaluations also beat
HEARTBEAT_S = 60.0


class Trainer:
    """One run of `spec` on `task`. `progress`: the tqdm bar. Set by the caller when wanted:
    `heartbeat` (called with no argument, at most every HEARTBEAT_S and at checkpoints and
    evaluations) and `preemption` (anything with a `requested` flag and a `signum`)."""

    def __init__(
        self,
        spec: RunSpec,
        task: Task,
        dist: DistInfo,
        record: RunRecord,
        *,
        progress: bool = True,
        cuda_graphs: bool | str = False,
        fingerprint: str | None = None,
    ) -> None:
        self.spec = spec
        #: the run's fingerprint (config/fingerprint.py): written into every checkpoint, and a
        #: checkpoint holding another one is refused on resume (another seed's last.pt copied in)
        self.fingerprint = fingerprint
        self.task = task
        self.dist = dist
        self.record = record
        self.device = dist.device
        self.progress = progress

        seed_everything(spec.seed)
        self.model = task.build_model().to(self.device)
        self.net: nn.Module = (
            DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if dist.distributed
            else self.model
        )
        self.optimizer = build_optimizer(spec.optimizer, self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]  # clipped each step
        self.spe = task.steps_per_epoch
        self.scheduler = LEGWScheduler(self.optimizer, self.spe, spec.schedule)
        self.total_steps = max(1, round(float(spec.epochs) * self.spe))
        self.state = LoopState()
        self.carry: list[Any] | None = None
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if spec.precision == "bf16" and self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        self._last_ckpt = self._t_start = self._last_beat = time.monotonic()
        #: steps between reads of the losses (losslog.py): the step itself never waits for the
        #: device; a NaN is still named at its own step, and found at most this many steps later
        self.sync_every = sync_every(self.device)
        self.losses = LossLog(self.device)
        self._rows: list[dict[str, Any]] = []  # training rows waiting for their loss
        self._postfix_at = 0  # the step of the progress bar's last loss figure
        self.nonfinite: NonFinite | None = None
        self.heartbeat: Any = None
        self.preemption: Any = None
        self.resumed_from: str | None = None  # the checkpoint file restored, if any
        self._window_t0: float | None = None  # start of the steps not yet read (train_time)
        #: the step as a CUDA graph, or None (eager) with the reason in `graphs_off`
        self.graphed, self.graphs_off = GraphedStep.choose(self, cuda_graphs)

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.record.run_dir / "checkpoints"

    def save_checkpoint(self) -> None:
        """Collective: every rank contributes its carry and RNG; rank 0 writes one file."""
        per_rank = distributed.all_gather_object(
            {"carry": to_device(self.carry, torch.device("cpu")), "rng": rng_state()},
            self.dist.world_size,
        )
        if not self.dist.is_main or not self.record.enabled:
            return
        self.record.flush()  # rows up to this step reach the disk before the checkpoint does
        state = {
            "model": compact(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loop": self.state.__dict__,
            "per_rank": per_rank,
            "world_size": self.dist.world_size,
            "fingerprint": self.fingerprint,
        }
        with writing(self.checkpoint_dir / checkpoint.LAST):  # a full disk: one line, not torch's
            checkpoint.save(state, self.checkpoint_dir)
        self._beat(force=True)

    def restore(self) -> int | None:
        """Before training: continue from the newest checkpoint that loads (last.pt, else
        prev.pt); the step it holds, or None when there is none. Refuses (CheckpointError,
        RecordError) when no checkpoint loads or metrics.jsonl lost rows before it."""
        path = checkpoint.load(self.checkpoint_dir, self._apply)
        if path is None:
            return None
        self.resumed_from = path.name
        self.record.check_metrics(self.state.step)
        return self.state.step

    def _apply(self, ckpt: dict[str, Any]) -> None:
        checkpoint.check_owner(ckpt, self.fingerprint, self.checkpoint_dir)
        if ckpt["world_size"] != self.dist.world_size:
            raise CheckpointMismatch(
                f"the checkpoint in {self.checkpoint_dir} was written with world_size="
                f"{ckpt['world_size']} but this run has {self.dist.world_size}; resume with the "
                "same number of processes"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = LoopState(**ckpt["loop"])
        mine = ckpt["per_rank"][self.dist.rank]
        self.carry = to_device(mine["carry"], self.device)
        set_rng_state(mine["rng"])
        return True

    # -- the loop ---------------------------------------------------------------------------
    def train_step(self, micro_batches: list[Any]) -> torch.Tensor:
        """One optimizer step; this rank's mean loss over its micro-batches, left on the device
        (no host sync here: clipping and the optimizer stay on the device too; the ranks' losses
        are averaged when they are read, see LossLog)."""
        if self.graphed is not None:
            try:
                return self.graphed.step(micro_batches)
            except CaptureFailed as err:  # nothing ran: the step is taken eagerly instead
                self.graphed, self.graphs_off = None, str(err)
                log.warning("%s; training on eagerly", err)
        return self.eager_step(micro_batches)

    def eager_step(self, micro_batches: list[Any]) -> torch.Tensor:
        """`train_step` run op by op (also the CUDA graph's warm-up steps)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum: torch.Tensor | None = None
        n = len(micro_batches)
        for i, mb in enumerate(micro_batches):
            # DDP all-reduces gradients only on the last micro-batch
            sync = self.dist.distributed and i < n - 1
            with self.net.no_sync() if sync else contextlib.nullcontext(), self.autocast:
                loss, self.carry[i] = self.task.loss(self.net, mb, self.carry[i])
            (loss / n if n > 1 else loss).backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        if self.spec.optimizer.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.spec.optimizer.clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss_sum / n if n > 1 else loss_sum

    def evaluate(self, split: str) -> dict[str, float]:
        with self.autocast:
            result = self.task.evaluate(self.model, split)
        metric = self.task.metric
        st = self.state
        self.record.log(
            {
                "kind": "eval",
                "step": st.step,
                "epoch": st.step / self.spe,
                "split": split,
                "time": round(st.wall_time, 3),
                **result,
            }
        )
        if split == "valid":
            st.last_eval = result
            better = (lambda a, b: a > b) if self.task.higher_is_better else (lambda a, b: a < b)
            if st.best_metric is None or better(result[metric], st.best_metric):
                st.best_metric = result[metric]
        return result

    def diverged(self, loss: float, step: int | None = None) -> str | None:
        """The reason when a finite loss has grown far above its start (diverge_factor); `step`:
        the step of `loss` (default: the current one)."""
        st = self.state
        step = st.step if step is None else step
        if not math.isfinite(loss):
            return f"loss is {loss} at step {step}"
        if st.initial_loss is None:
            st.initial_loss = loss
        st.recent = (st.recent + [loss])[-20:]
        mean = sum(st.recent) / len(st.recent)
        limit = self.spec.loop.diverge_factor * st.initial_loss
        if len(st.recent) == 20 and mean > limit:
            return (
                f"mean loss of the last 20 steps {mean:.3g} exceeds diverge_factor x initial loss "
                f"= {limit:.3g} at step {step}"
            )
        return None

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to the end (or a stop). `resume`: continue from the checkpoint `restore()`
        loaded (the caller restores first, before it touches the record)."""
        # a diverging run fills the LSTM with denormal floats, which run ~5x slower on a CPU;
        # flushing them is process-wide state, so it is undone when training ends
        flush = self.device.type == "cpu" and torch.set_flush_denormal(True)
        try:
            return self._fit(resume)
        finally:
            if flush:
                torch.set_flush_denormal(False)

    def _fit(self, resume: bool) -> dict[str, Any]:
        bar = self.begin(resume)
        st, spe = self.state, self.spe
        stop: Stop | None = None
        while st.step < self.total_steps and stop is None:
            if st.step % spe == 0 or self.carry is None:
                self.carry = self.task.init_carry(self.model)
            for micro in self.task.train_batches(st.step // spe, st.step % spe):
                stop = self._step(micro, bar)
                if stop is not None or st.step >= self.total_steps:
                    break
        return self.end(stop, bar)

    def begin(self, resume: bool, now: float | None = None) -> tqdm:
        """Before this attempt's first step: the metrics file (on a resume, rows after the
        checkpoint dropped), the progress bar, the clocks. `now`: the checkpoint clock's start
        (a fused group gives its members one, so they checkpoint at the same steps)."""
        st = self.state
        self.record.open_metrics(
            truncate_after_step=st.step if resume and self.resumed_from is not None else None
        )
        bar = tqdm(
            total=self.total_steps,
            initial=st.step,
            disable=not (self.dist.is_main and self.progress),
            desc=f"{self.spec.task} {self.spec.policy} b={self.spec.batch_size}",
            unit="step",
            mininterval=2.0,
            dynamic_ncols=True,
        )
        self._last_ckpt = time.monotonic() if now is None else now
        self._t_start = time.monotonic() - st.wall_time
        self.model.train()
        return bar

    def end(self, stop: Stop | None, bar: tqdm) -> dict[str, Any]:
        """After the last step (or a stop): the final metrics and the task's outputs."""
        bar.close()
        self.state.wall_time = time.monotonic() - self._t_start
        status, reason = ("completed", None) if stop is None else (stop.status, stop.reason)
        final = self.final_metrics(status)
        outputs: dict[str, Any] = {}
        if status == "completed" and self.dist.is_main and self.record.enabled:
            with self.autocast:  # the task's extra files (e.g. translations) and summary fields
                outputs = self.task.write_outputs(self.model, self.record.run_dir)
        return {"status": status, "reason": reason, "final": final, **outputs}

    def _step(self, micro: list[Any], bar: tqdm) -> Stop | None:
        """One optimizer step and what follows it (`after_step`)."""
        if self._window_t0 is None:
            self._window_t0 = time.monotonic()
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this step trains with
        return self.after_step(lr, self.train_step(micro), bar)

    def after_step(
        self, lr: float, loss: torch.Tensor, bar: tqdm, now: float | None = None
    ) -> Stop | None:
        """What follows a step trained at `lr` with `loss` (row, eval, checkpoint); a Stop when
        the run diverged or was preempted, else None. The loss stays on the device until the
        next read (`_read`); a step that is not a read step never waits for the device. `now`:
        the checkpoint clock's reading (one for every member of a fused group)."""
        st, loop = self.state, self.spec.loop
        self.losses.push(loss)
        st.step += 1
        st.wall_time = time.monotonic() - self._t_start
        self._rows.append(self._train_row(lr, None))
        bar.update(1)
        done = st.step >= self.total_steps
        evaluate = st.step % max(1, round(loop.eval_every_epochs * self.spe)) == 0 or done
        due = stop = False
        if evaluate or self._read_due(done):
            diverged = self._read(bar)
            if diverged is not None:
                return diverged
            if evaluate:
                self.evaluate("valid")
                self.model.train()
                self._beat(force=True)
            # a collective: every rank reads at the same steps, so they all agree here
            due, stop = self._checkpoint_due(done, time.monotonic() if now is None else now)
        if due or stop:
            self.save_checkpoint()
            self._last_ckpt = time.monotonic() if now is None else now
        self._beat()
        if stop and not done:
            return Stop("preempted", self._preempted_reason())
        return None

    def _read_due(self, done: bool) -> bool:
        """Read the losses every `sync_every` steps, at the end, and where a checkpoint is due
        on every rank alike (epoch ends, every `checkpoint_every_steps`): its rows come first."""
        step, every = self.state.step, self.spec.loop.checkpoint_every_steps
        if self.dist.world_size == 1 and bool(getattr(self.preemption, "requested", False)):
            return True  # one process: a signal stops at the very next step (ranks must agree)
        return done or any(step % n == 0 for n in (self.sync_every, self.spe, every) if n)

    def _read(self, bar: tqdm) -> Stop | None:
        """The pending steps' losses to the host (one sync): their rows are written, then checked
        in step order -- a NaN/inf at its own step, the divergence rule -- the first one found
        stops the run (status "diverged"), naming its step."""
        rows, self._rows = self._rows, []
        losses = self.losses.read(self.dist)  # waits for the device: the window's steps are done
        if self._window_t0 is not None:
            self.state.train_time += time.monotonic() - self._window_t0
            self._window_t0 = None
        for row, loss in zip(rows, losses, strict=True):
            row["loss"] = loss
            self.record.log(row)
        self._show(bar, rows[-1])
        bad = self.losses.first_nonfinite(losses, rows[0]["step"])
        for row, loss in zip(rows, losses, strict=True):
            if bad is not None and row["step"] == bad.step:
                self.nonfinite = bad
                return Stop("diverged", bad.reason())
            why = self.diverged(loss, row["step"])
            if why:
                return Stop("diverged", why)
        return None

    def _show(self, bar: tqdm, row: dict[str, Any]) -> None:
        """The progress bar's loss, LR and rate, refreshed at most every 10 steps."""
        st = self.state
        if st.step - self._postfix_at < 10 and st.step < self.total_steps:
            return
        self._postfix_at = st.step
        rate = st.step * self.task.items_per_step / max(st.train_time, 1e-9)
        unit = f"{self.task.item_unit}/s"
        bar.set_postfix(
            loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.3g}", **{unit: f"{rate:.0f}"}, refresh=False
        )

    def _preempted_reason(self) -> str:
        signum = getattr(self.preemption, "signum", None)
        name = signal.Signals(signum).name if signum else "a stop request"
        return (
            f"{name} received; stopped after step {self.state.step} with a checkpoint: resume "
            "with resume=true"
        )

    def _beat(self, force: bool = False) -> None:
        """Refresh summary.json's heartbeat (rank 0's record; cheap to skip)."""
        if self.heartbeat is None or not self.record.enabled:
            return
        if force or time.monotonic() - self._last_beat >= HEARTBEAT_S:
            self._last_beat = time.monotonic()
            self.heartbeat()

    def _train_row(self, lr: float, loss: float | None) -> dict[str, Any]:
        """Record v2: `lr` applied over the whole step, from `epoch_start` to `epoch`."""
        step = self.state.step
        return {
            "kind": "train",
            "step": step,
            "epoch": step / self.spe,
            "epoch_start": (step - 1) / self.spe,
            "lr": lr,
            "loss": loss,
            "time": round(self.state.wall_time, 3),
        }

    def _checkpoint_due(self, done: bool, now: float) -> tuple[bool, bool]:
        """(checkpoint due, stop requested). A checkpoint is due at every epoch end, at the end,
        and every N steps or minutes; a stop when a preemption signal arrived. One collective:
        all ranks must agree, so a rank whose clock says "due" (or that got the signal) makes
        every rank checkpoint (and stop) at the same step."""
        st, loop = self.state, self.spec.loop
        every_steps = loop.checkpoint_every_steps
        due = (
            done
            or st.step % self.spe == 0
            or bool(every_steps and st.step % every_steps == 0)
            or 0 < loop.checkpoint_every_min * 60 < now - self._last_ckpt
        )
        stop = bool(getattr(self.preemption, "requested", False))
        flags = distributed.any_rank_flags((due, stop), self.dist)
        return flags[0], flags[1]

    def final_metrics(self, status: str) -> dict[str, float]:
        metric, st = self.task.metric, self.state
        final: dict[str, float] = {}
        if status == "completed":
            final[f"valid_{metric}"] = st.last_eval.get(metric, float("nan"))
            test = self.evaluate("test")
            final[f"test_{metric}"] = test[metric]
            final["test_loss"] = test["loss"]
        elif st.last_eval:
            final[f"valid_{metric}"] = st.last_eval[metric]
        if st.best_metric is not None:
            final[f"best_valid_{metric}"] = st.best_metric
        if st.recent:
            final["train_loss"] = st.recent[-1]
        return final

    def summary_fields(self) -> dict[str, Any]:
        if not hasattr(self, "_sched_info"):  # exact per-step values; computed once
            self._sched_info = schedule_summary(self.spec.schedule, steps_per_epoch=self.spe)
        info = self._sched_info
        return {
            "peak_lr": info["peak_lr"],
            "warmup_epochs": info["warmup_epochs"],
            "handover": info["handover"],
            "max_lr": info["max_lr"],
            "mean_lr": info["mean_lr"],
            "k": info["k"],
            "steps_per_epoch": self.spe,
            "total_steps": self.total_steps,
            "steps_done": self.state.step,
            "epochs_done": self.state.step / self.spe,
            "wall_time_s": round(self.state.wall_time, 3),
            "train_time_s": round(self.state.train_time, 3),
            "throughput": round(
                self.state.step * self.task.items_per_step / max(self.state.train_time, 1e-9), 1
            ),
            "throughput_unit": f"{self.task.item_unit}/s",
            "cuda_graphs": self.graphed is not None,
            **({"cuda_graphs_off": self.graphs_off} if self.graphs_off else {}),
            **self._nonfinite_fields(),
        }

    def _nonfinite_fields(self) -> dict[str, Any]:
        """After a NaN/inf loss: the step it appeared at and the last finite loss before it."""
        bad = self.nonfinite
        if bad is None:
            return {}
        return {"nonfinite_step": bad.step, "last_finite_loss": bad.last_finite_loss}
