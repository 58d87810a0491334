"""`python -m legw_repro.noise.cli --run RUN_DIR --out DIR`: the gradient noise scale B_simple
(legw_repro/noise/estimator.py) along a recorded run's trajectory, one value per epoch.

Why a replay: the trainer keeps only last.pt and prev.pt, so a finished run has no per-epoch
weights. Stage `trajectory` re-trains the recorded run from its own config.yaml with the
trainer's own step (same seed, same data order, same schedule; no record written) and keeps the
full state at every epoch end (epoch 0 = initialisation) as CKPT/epoch-NNN.pt, and at
`--early` fractions of the first epoch (CKPT/epoch-000.FFF.pt, where B_noise climbs); the
validation metric of each epoch is set beside the recorded one, so a replay that left the run
shows. Stage
`measure` loads each epoch's weights and measures B_simple at them from `--draws` draws of
`--b-big` training items cut into micro-batches of `--b-small` (the task built with
batch_size=b_big, accum_steps=b_big/b_small). Both stages resume: an epoch checkpoint or
measurement already there (with the same settings) is kept. Results: OUT/trajectory.csv,
OUT/noise.csv (one row per epoch, with its cost in seconds) and OUT/table.md.

`torchrun --nproc_per_node=N -m legw_repro.noise.cli --stage measure ...` (gloo on the CPU)
(--run-dir, not --run: torchrun reads --run as its own --run-path)
splits each draw's micro-batches over N processes and all-reduces the sums; rank 0 writes. The
trajectory stage runs on one process.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from legw_repro.loop.distributed import DistInfo
from legw_repro.noise import estimator as noise
from legw_repro.run.records import CONFIG, METRICS, read_rows
from legw_repro.run.status import one_line

NOISE_FIELDS = (
    "epoch", "step", "b_simple", "ci_low", "ci_high", "se", "g2", "trace_sigma",
    "n_draws", "b_small", "b_big", "level", "seconds",
)  # fmt: skip


class NoiseError(ValueError):
    """A bad argument or a missing input, found before any work: one line, exit 2."""


# -- config and task ---------------------------------------------------------------------------
def load_run_config(run_dir: Path, device: str) -> DictConfig:
    """The recorded run's config (today's defaults under it), on `device`, reading the data from
    $LEGW_DATA_DIR when set (the recorded data_dir may be another machine's path)."""
    from legw_repro.run.records import recorded_config

    if not (run_dir / CONFIG).is_file():
        raise NoiseError(f"--run {run_dir} holds no config.yaml; give a run record directory")
    cfg = recorded_config(run_dir)
    OmegaConf.set_struct(cfg, False)
    cfg.device = device
    if os.environ.get("LEGW_DATA_DIR"):
        cfg.data_dir = os.environ["LEGW_DATA_DIR"]
    return cfg


def build_task(cfg: DictConfig) -> Any:
    """The run's task as one process sees it, also under torchrun: every rank builds the same
    draws and measures its share of them (:func:`ranks`)."""
    from legw_repro.config.spec import resolve_device
    from legw_repro.config.validate import task_class

    device = resolve_device(str(cfg.device))
    task = task_class(cfg)(cfg, DistInfo(rank=0, world_size=1, local_rank=0, device=device))
    task.check_data()
    return task


def draw_config(cfg: DictConfig, b_small: int, b_big: int) -> DictConfig:
    """The run's config with one optimizer step = one draw: b_big items in b_small micro-batches."""
    m = noise.check_batches(b_small, b_big)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    out.batch_size, out.accum_steps = b_big, m
    return out


# -- stage 1: the trajectory -------------------------------------------------------------------
def epoch_path(ckpt_dir: Path, epoch: float) -> Path:
    """epoch-003.pt at an epoch end, epoch-000.125.pt at a fraction of one (early points)."""
    whole = float(epoch).is_integer()
    return ckpt_dir / (f"epoch-{int(epoch):03d}.pt" if whole else f"epoch-{epoch:07.3f}.pt")


def epoch_of(path: Path) -> float:
    return float(path.stem.split("-", 1)[1])


def epoch_key(epoch: float | str) -> float:
    """An epoch as a checkpoint's name gives it (3 decimals): a row's exact step / spe matches
    its file's name by this key."""
    return round(float(epoch), 3)


def early_fractions(n: int) -> list[float]:
    """n points in the first epoch, 1/2^n ... 1/2 of it: B_noise climbs fastest there."""
    return [2.0**-k for k in range(n, 0, -1)]


def recorded_metric(run_dir: Path, metric: str) -> dict[int, float]:
    """The run record's validation metric at each whole epoch (metrics.jsonl eval rows)."""
    out = {}
    for row in read_rows(run_dir / METRICS):
        whole = float(row.get("epoch", 0.5)).is_integer()
        if row.get("kind") == "eval" and row.get("split") == "valid" and whole:
            value = row[metric]  # null: a non-finite value (bare NaN/Infinity in old records)
            out[int(row["epoch"])] = float("nan") if value is None else float(value)
    return out


def _trainer(cfg: DictConfig, out: Path) -> Any:
    from legw_repro.config.spec import build_spec
    from legw_repro.loop.trainer import Trainer
    from legw_repro.run.records import RunRecord

    task = build_task(cfg)
    spec = build_spec(cfg, 1)
    record = RunRecord(out, cfg, enabled=False)
    return Trainer(spec, task, task.dist, record, progress=False)


def _save_state(trainer: Any, path: Path, epoch: int) -> None:
    state = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "epoch": epoch,
        "step": trainer.state.step,
        "rng": torch.get_rng_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(trainer: Any, ckpt_dir: Path, epochs: int) -> int:
    """The last epoch already kept (its state restored), or -1 when none is."""
    done = [e for e in range(epochs + 1) if epoch_path(ckpt_dir, e).is_file()]
    if not done:
        return -1
    state = torch.load(epoch_path(ckpt_dir, done[-1]), map_location="cpu", weights_only=False)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.state.step = int(state["step"])
    torch.set_rng_state(state["rng"])
    return done[-1]


def replay(cfg: DictConfig, run_dir: Path, ckpt_dir: Path, out: Path) -> list[dict[str, Any]]:
    """Re-train the recorded run, keeping every epoch's state; rows for trajectory.csv."""
    trainer = _trainer(cfg, ckpt_dir)
    task, spe = trainer.task, trainer.spe
    epochs = int(round(float(cfg.epochs)))
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    start = _resume(trainer, ckpt_dir, epochs)
    recorded = recorded_metric(run_dir, task.metric)
    rows = _read_csv(out / "trajectory.csv")
    if start < 0:
        _save_state(trainer, epoch_path(ckpt_dir, 0), 0)
        rows, start = [_trajectory_row(trainer, 0, recorded, 0.0)], 0
    for epoch in range(start, epochs):
        t0 = time.monotonic()
        trainer.model.train()
        trainer.carry = task.init_carry(trainer.model)
        for micro in task.train_batches(epoch):
            trainer.train_step(micro)
            trainer.state.step += 1
        seconds = time.monotonic() - t0
        _save_state(trainer, epoch_path(ckpt_dir, epoch + 1), epoch + 1)
        rows = [r for r in rows if float(r["epoch"]) <= epoch]
        rows.append(_trajectory_row(trainer, epoch + 1, recorded, seconds))
        _write_csv(out / "trajectory.csv", rows)
        print(f"trajectory: epoch {epoch + 1}/{epochs} in {seconds:.0f} s", flush=True)
    assert trainer.state.step == epochs * spe
    return rows


def _trajectory_row(
    trainer: Any, epoch: int, recorded: dict[int, float], seconds: float
) -> dict[str, Any]:
    metric = trainer.task.metric
    replayed = trainer.task.evaluate(trainer.model, "valid")[metric]
    return {
        "epoch": epoch,
        "step": trainer.state.step,
        f"valid_{metric}": replayed,
        f"recorded_valid_{metric}": recorded.get(epoch, ""),
        "train_seconds": round(seconds, 1),
    }


def replay_early(cfg: DictConfig, ckpt_dir: Path, fractions: Sequence[float]) -> None:
    """The states at these fractions of the first epoch (rounded to whole steps, at least one),
    replayed from epoch-000.pt (the initialisation) when any is missing: the replay's own
    steps, stopped early."""
    if not fractions:
        return
    trainer = _trainer(cfg, ckpt_dir)
    spe = trainer.spe
    at = {s: s / spe for s in (round(f * spe) for f in fractions) if 1 <= s < spe}
    if all(epoch_path(ckpt_dir, e).is_file() for e in at.values()):
        return
    state = torch.load(epoch_path(ckpt_dir, 0), map_location="cpu", weights_only=False)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.model.train()
    trainer.carry = trainer.task.init_carry(trainer.model)
    for micro in trainer.task.train_batches(0):
        trainer.train_step(micro)
        trainer.state.step += 1
        if trainer.state.step in at:
            _save_state(
                trainer, epoch_path(ckpt_dir, at[trainer.state.step]), at[trainer.state.step]
            )
        if trainer.state.step >= max(at):
            break
    print(f"trajectory: {len(at)} early points in epoch 0 kept", flush=True)


# -- stage 2: the measurement ------------------------------------------------------------------
def measure_epoch(
    task: Any, path: Path, draws: int, seed: int, share: tuple[int, int] = (0, 1)
) -> dict[str, Any]:
    """B_simple at one epoch checkpoint's weights, with its cost; `share` = (rank, world)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = task.build_model().to(task.device)
    model.load_state_dict(state["model"])
    b_big = task.batch_size
    b_small = b_big // task.accum_steps
    t0 = time.monotonic()
    reduce = noise.all_reduce_sum if share[1] > 1 else None
    small, big = noise.measure_task(
        task, model, draws, first_epoch=1_000_000 + seed, reduce=reduce, share=share
    )
    est = noise.estimate(small, big, b_small, b_big, seed=seed)
    row = {"epoch": state["epoch"], "step": int(state["step"]), **est.to_dict()}
    row["seconds"] = round(time.monotonic() - t0, 1)
    return row


def measure_all(
    cfg: DictConfig, ckpt_dir: Path, out: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """One row per epoch checkpoint; rows already in noise.csv with these settings are kept."""
    paths = sorted(ckpt_dir.glob("epoch-*.pt"), key=epoch_of)
    if not paths:
        raise NoiseError(f"no epoch-NNN.pt in {ckpt_dir}; run the trajectory stage first")
    task = build_task(draw_config(cfg, args.b_small, args.b_big))
    share = ranks(args.b_big // args.b_small)
    setting = (args.b_small, args.b_big, args.draws)
    rows = [
        r
        for r in _read_csv(out / "noise.csv")
        if (int(r["b_small"]), int(r["b_big"]), int(r["n_draws"])) == setting
    ]
    done = {epoch_key(r["epoch"]) for r in rows}
    for path in paths:
        epoch = epoch_of(path)
        if epoch_key(epoch) in done:
            continue
        r = measure_epoch(task, path, args.draws, args.seed, share)
        rows = sorted([*rows, r], key=lambda x: float(x["epoch"]))
        if share[0] != 0:
            continue  # rank 0 writes
        _write_csv(out / "noise.csv", rows, NOISE_FIELDS)
        print(
            f"noise: epoch {epoch} B_simple {float(r['b_simple']):.0f} "
            f"[{float(r['ci_low']):.0f}, {float(r['ci_high']):.0f}] in {r['seconds']} s",
            flush=True,
        )
    return rows


def world_size() -> int:
    """Processes of a torchrun launch (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def ranks(micro: int) -> tuple[int, int]:
    """(rank, world) of the measurement; under torchrun a gloo group, each rank a share of
    every draw's `micro` micro-batches (the sums all-reduced, so the draw is one process's)."""
    world = world_size()
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if world > micro:
        raise NoiseError(f"{world} processes for {micro} micro-batches a draw: use at most {micro}")
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), world


# -- files -------------------------------------------------------------------------------------
def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict[str, Any]], fields: Sequence[str] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(fields) or list(rows[0])
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _fmt(x: Any, digits: int = 0) -> str:
    v = float(x)
    return "inf" if v == float("inf") else f"{v:.{digits}f}"


def render_table(noise_rows: list[dict[str, Any]], traj_rows: list[dict[str, Any]]) -> str:
    """The markdown table of B_simple by epoch, with the validation metric beside it."""
    metric = {float(r["epoch"]): r for r in traj_rows}
    key = next((k for k in (traj_rows[0] if traj_rows else {}) if k.startswith("valid_")), None)
    head = "| epoch | step | " + (f"{key} (replay / record) | " if key else "")
    lines = [
        head
        + "B_simple | 90% CI (bootstrap) | delta-method s.e. | \\|G\\|^2 | tr(Sigma) | draws | "
        "seconds |",
        "| ---: " * (head.count("|") - 1 + 7) + "|",
    ]
    for r in noise_rows:
        e = float(r["epoch"])
        cells = [f"{e:.3g}", str(r["step"])]
        if key:
            t = metric.get(e, {})
            rec = t.get(f"recorded_{key}", "")
            rec_s = _fmt(rec, 4) if rec not in ("", None) else "-"
            cells.append(f"{_fmt(t[key], 4)} / {rec_s}" if t else "-")
        cells += [
            _fmt(r["b_simple"]),
            f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]",
            _fmt(r["se"]),
            f"{float(r['g2']):.3g}",
            f"{float(r['trace_sigma']):.3g}",
            str(r["n_draws"]),
            str(r["seconds"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# -- the command -------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m legw_repro.noise.cli", description=__doc__)
    p.add_argument(
        "--task",
        default=None,
        help="default --run results/TASK/cpu/records/sqrt_legw/b<base>-s0, --out results/TASK/noise",
    )
    p.add_argument(
        "--run",
        "--run-dir",
        dest="run",
        type=Path,
        default=None,
        help="the recorded run (config.yaml); --run-dir under torchrun (its --run-path clashes)",
    )
    p.add_argument("--out", type=Path, default=None, help="folder for the csv and table")
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="epoch checkpoints (default: runs/noise/<task>/<run name>)",
    )
    p.add_argument("--stage", choices=("trajectory", "measure", "all"), default="all")
    p.add_argument("--b-small", type=int, default=64, help="micro-batch items")
    p.add_argument("--b-big", type=int, default=1024, help="items of one draw")
    p.add_argument("--draws", type=int, default=100, help="draws per epoch")
    p.add_argument("--seed", type=int, default=0, help="which draws (and bootstrap)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--early",
        type=int,
        default=4,
        help="also measure at 1/2^N ... 1/2 of the first epoch (0: off)",
    )
    p.add_argument("--epochs", type=float, default=None, help="replay only this many epochs")
    args = p.parse_args(argv)  # fmt: skip
    if args.task is not None:
        run, out = task_defaults(args.task)
        args.run, args.out = args.run or run, args.out or out
    if args.run is None or args.out is None:
        raise NoiseError("give --task, or both --run RUN_DIR and --out DIR")
    if args.draws < 2:
        raise NoiseError(f"--draws={args.draws} must be at least 2 (the interval needs spread)")
    noise.check_batches(args.b_small, args.b_big)
    return args


def task_defaults(task: str) -> tuple[Path, Path]:
    """(the task's base run record at seed 0, its study folder): the base batch is the task
    config's base_batch_size."""
    from legw_repro.config.validate import CONFIGS

    path = CONFIGS / "task" / f"{task}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (CONFIGS / "task").glob("*.yaml"))
        raise NoiseError(f"--task {task!r} is unknown; choose one of {names}")
    base = int(OmegaConf.load(path).base_batch_size)
    return Path(f"results/{task}/cpu/records/sqrt_legw/b{base}-s0"), Path(f"results/{task}/noise")


def run(args: argparse.Namespace) -> str:
    """Both stages as asked; returns the table."""
    if world_size() > 1 and args.stage != "measure":
        raise NoiseError(
            f"--stage {args.stage} under torchrun (WORLD_SIZE={world_size()}): only --stage "
            "measure runs on several processes; replay the trajectory on one process first"
        )
    cfg = load_run_config(args.run, args.device)
    if args.epochs is not None:
        cfg.epochs = args.epochs
    ckpt = args.checkpoints or Path("runs/noise") / str(cfg.task.name) / args.run.name
    if args.stage in ("trajectory", "all"):
        replay(cfg, args.run, ckpt, args.out)
        replay_early(cfg, ckpt, early_fractions(args.early))
    if args.stage in ("measure", "all"):
        measure_all(cfg, ckpt, args.out, args)
        if ranks(args.b_big // args.b_small)[0] != 0:
            return ""
    table = render_table(_read_csv(args.out / "noise.csv"), _read_csv(args.out / "trajectory.csv"))
    (args.out / "table.md").write_text(table)
    return table


def leave_group() -> None:
    """Under torchrun, every rank leaves the gloo group together once the measurement is done: a
    rank that exited while rank 0 still wrote the tables could abort (SIGABRT) in the group's
    teardown at interpreter exit."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        print(run(parse_args(argv)), end="")
    except (NoiseError, ValueError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    leave_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
