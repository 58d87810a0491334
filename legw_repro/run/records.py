"""The run record: the files every run leaves behind (see docs/run-record.md, contract v2).

Only rank 0 writes. Every file that is replaced (summary.json, checkpoints) is written to a
temporary file and renamed, so a crash never leaves a half-written one; metrics.jsonl is
append-only and, on resume, cut back to the checkpoint's step so no row is duplicated.
The same rows go to Weights & Biases when it is enabled; nothing here needs a network.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, overload

from omegaconf import DictConfig, OmegaConf

from legw_repro.loop.diskfull import writing
from legw_repro.run.filemode import chmod_like_new_file
from legw_repro.run.status import Refused, first_line

#: 2: summary.json holds the run spec ("spec") and the flat "clip" and "model"; a train row
#: holds "epoch_start" (where its step began) beside "epoch" (where it ended)
RECORD_VERSION = 2


#: the files of a run record (docs/run-record.md): the one place their names are spelled
CONFIG, METRICS, SUMMARY = "config.yaml", "metrics.jsonl", "summary.json"
#: Hydra's files of the attempt that last ran (config, hydra, overrides), written by the run
HYDRA_DIR = ".hydra"


class RecordError(Refused):
    """A run directory that cannot be used as asked (another configuration, a finished result,
    a lost metrics file). One line that names the ways forward."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def atomic_write_text(path: Path, text: str) -> None:
    """`path` replaced whole or not at all; a full disk raises DiskFull naming it."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            chmod_like_new_file(fd)
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def finite_or_null(value: Any) -> Any:
    """`value` with every non-finite float (inf, -inf, nan) replaced by None, in nested dicts and
    lists too. json.dumps writes those floats as bare Infinity/NaN, which is not JSON: jq read a
    diverged run's Infinity as 1.797e308 and strict parsers refuse the line."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def json_row(row: dict[str, Any]) -> str:
    """One metrics.jsonl line: strict JSON, a non-finite number written as null
    (docs/run-record.md)."""
    return json.dumps(finite_or_null(row), allow_nan=False)


@overload
def read_summary(run_dir: Path, *, strict: Literal[True]) -> dict[str, Any]: ...


@overload
def read_summary(run_dir: Path, *, strict: bool = False) -> dict[str, Any] | None: ...


def read_summary(run_dir: Path, *, strict: bool = False) -> dict[str, Any] | None:
    """The run's summary.json as a dict. Lenient (a run starting, a sweep asking which runs are
    over): None when there is none or it is cut short, as for a run never started. `strict`
    (the analysis): one that cannot be read, or that is not a run record (`{}`, a file cut
    short), is a RecordError naming it: skipped, the report said "Runs: 3 (3 completed)" and
    showed the point as if it had never been run."""
    p = Path(run_dir) / SUMMARY
    if not strict:
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None
    fix = "restore it (git checkout, a backup), or remove that run directory and train it again"
    try:
        summary = json.loads(p.read_text())
    except (json.JSONDecodeError, OSError, UnicodeDecodeError) as e:
        raise RecordError(f"{p} cannot be read ({first_line(e)}): {fix}") from None
    if not isinstance(summary, dict) or "status" not in summary:
        raise RecordError(f"{p} is not a run record (no status): {fix}")
    return summary


def resolve_wandb_mode(mode: str) -> str:
    """auto: WANDB_MODE if set, else disabled. W&B runs only when asked for (wandb.mode=online
    or offline, or WANDB_MODE): unasked, it printed dozens of `wandb:` lines a run and wrote an
    offline copy of every run, even for a user without an account (an API key in the
    environment may be another project's, so it does not count as asking)."""
    if mode != "auto":
        return mode
    return os.environ.get("WANDB_MODE") or "disabled"


class RunRecord:
    def __init__(
        self,
        run_dir: Path,
        cfg: DictConfig,
        *,
        enabled: bool = True,
        overrides: Sequence[str] | None = None,
    ) -> None:
        """`overrides`: the run's own command-line overrides for .hydra/overrides.yaml (a fused
        group's member: not its job's); None: Hydra's."""
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.overrides = overrides
        self.enabled = enabled
        self._metrics = None
        self._wandb = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    # -- files ------------------------------------------------------------------------------
    def write_config(self) -> None:
        if self.enabled:
            atomic_write_text(self.run_dir / CONFIG, OmegaConf.to_yaml(self.cfg, resolve=True))
            self._write_hydra_files()

    def _write_hydra_files(self) -> None:
        """`.hydra/` (config.yaml, hydra.yaml, overrides.yaml), as Hydra writes them, but only
        by an attempt that runs. Why: Hydra wrote them before the run was checked, so a refused
        relaunch (locked: 73, another config: 2) left overrides.yaml naming settings that never
        ran; configs/train.yaml sets hydra.output_subdir: null and this writes them instead."""
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():  # run() called from Python, not the command line
            return
        hydra_cfg = HydraConfig.instance().cfg
        out = self.run_dir / HYDRA_DIR
        out.mkdir(exist_ok=True)
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(self.cfg))
        atomic_write_text(out / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
        overrides = hydra_cfg.hydra.overrides.task if self.overrides is None else self.overrides
        atomic_write_text(out / "overrides.yaml", OmegaConf.to_yaml(list(overrides)))

    def check_metrics(self, step: int) -> None:
        """Before resuming at `step`: metrics.jsonl must hold a training row for every step up to
        it. A deleted or cut file is refused (RecordError) rather than continued: the record
        would silently lack those rows, and no rebuilt row could say what the loss was."""
        path = self.run_dir / METRICS
        if not self.enabled or step < 1:
            return
        fix = "restore the file from a backup, or start over with overwrite=true"
        if not path.is_file():
            raise RecordError(f"{path} is missing, but the checkpoint is at step {step}; {fix}")
        seen = set()
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and row.get("kind") == "train":
                seen.add(row.get("step"))
        missing = [s for s in range(1, step + 1) if s not in seen]
        if missing:
            raise RecordError(
                f"{path} lacks the training rows of {len(missing)} of the {step} steps before the "
                f"checkpoint (first: step {missing[0]}); {fix}"
            )

    def open_metrics(self, truncate_after_step: int | None = None) -> None:
        """Open metrics.jsonl for appending; on resume drop rows past the checkpoint's step
        (and a half-written last line from a kill)."""
        if not self.enabled:
            return
        path = self.run_dir / METRICS
        if truncate_after_step is None:
            path.unlink(missing_ok=True)
        elif path.exists():
            kept = []
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if row.get("step", 0) <= truncate_after_step:
                    kept.append(line)
            atomic_write_text(path, "".join(k + "\n" for k in kept))
        self._metrics = path.open("a", buffering=1 << 16)

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with writing(self.run_dir / METRICS):
            self._metrics.write(json_row(row) + "\n")
        if self._wandb is not None:
            prefix = "train" if row.get("kind") == "train" else row.get("split", "eval")
            self._wandb.log(
                {f"{prefix}/{k}": v for k, v in row.items() if k not in ("kind", "split", "step")},
                step=row["step"],
            )

    def flush(self) -> None:
        if self._metrics is not None:
            with writing(self.run_dir / METRICS):
                self._metrics.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.flush()
        atomic_write_text(
            self.run_dir / SUMMARY,
            json.dumps({"record_version": RECORD_VERSION, **summary}, indent=2) + "\n",
        )
        if self._wandb is not None and summary.get("status") != "running":
            self._wandb.summary.update(
                {k: v for k, v in summary.items() if not isinstance(v, dict)}
                | {f"final/{k}": v for k, v in (summary.get("final") or {}).items()}
            )

    # -- Weights & Biases -------------------------------------------------------------------
    def start_wandb(self, tags: dict[str, Any]) -> None:
        """Mirror this run to W&B: grouped by sweep, tagged with task/policy/batch/k/seed."""
        if not self.enabled:
            return
        wcfg = self.cfg.wandb
        mode = resolve_wandb_mode(str(wcfg.mode))
        if mode == "disabled":
            return
        import wandb  # imported lazily: it is slow to import and optional at run time

        self._wandb = wandb.init(
            project=wcfg.project,
            entity=wcfg.entity,
            group=wcfg.group or f"{tags['task']}-{tags['scale']}",
            name=f"{tags['task']}-{tags['policy']}-b{tags['batch_size']}-s{tags['seed']}",
            tags=[f"{k}={v}" for k, v in tags.items()] + list(wcfg.tags or []),
            config=OmegaConf.to_container(self.cfg, resolve=True),
            dir=str(self.run_dir),
            mode=mode,
            # a stable id per run directory, so a resumed run continues the same W&B run
            id=str(
                wcfg.get("run_id")
                or hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:16]
            ),
            resume="allow",
            reinit="finish_previous",
        )

    def close(self) -> None:
        if self._metrics is not None:
            metrics, self._metrics = self._metrics, None
            with writing(self.run_dir / METRICS):
                metrics.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def recorded_config(run_dir: Path) -> DictConfig:
    """A record's config.yaml on top of today's composed defaults: a key added to configs/ since
    the run was recorded (a new trainer option) did not exist then, so its default is what the
    run did; every key the run recorded keeps the run's value."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from legw_repro.config.config_dir import CONFIGS

    old = OmegaConf.load(Path(run_dir) / CONFIG)
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        base = compose("train", overrides=[f"task={old.task.name}"])
    OmegaConf.set_struct(base, False)
    return OmegaConf.merge(base, old)  # type: ignore[return-value]


def _recover_row(line: str) -> dict[str, Any] | None:
    """A killed writer can leave half a row with the next (resumed) row glued to it:
    return the last complete JSON object that ends the line, if any."""
    decoder = json.JSONDecoder()
    start = line.find("{", 1)
    while start != -1:
        try:
            obj, end = decoder.raw_decode(line, start)
        except json.JSONDecodeError:
            pass
        else:
            if end == len(line) and isinstance(obj, dict):
                return obj
        start = line.find("{", start + 1)
    return None


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file in file order ([] when it is missing). A truncated
    last line (a killed run) is dropped silently; a malformed line elsewhere is replaced by the
    complete row glued to its end (a resume after a kill), else dropped with a warning."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").split("\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    rows = []
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = _recover_row(line)
            if obj is None and i != last:
                warnings.warn(f"{path}:{i + 1}: malformed line dropped", stacklevel=2)
        if isinstance(obj, dict):
            rows.append(obj)
    return rows
