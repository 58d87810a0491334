"""The one declaration of every config key: its type, its range, what null means, its meaning.

Why one table: the checks used to live in each task's constructor and the model code, so a bad
value was found after the data was loaded (or after an epoch, in validation), or was replaced by
a default without a word (`task.bptt=0`, `task.model.hidden=0`, `task.max_train_tokens=-5`).
Here every key of every shipped config is declared once (`Rule`), and everything else derives
from the declarations: the checks before anything is built (`legw_repro/config/validate.py`),
the fingerprint's exclusions (`fingerprint=False`, legw_repro/config/fingerprint.py), the
fallbacks the run spec reads for keys a config may omit (`default`), and the generated reference
docs/config.md (legw_repro/config/reference.py). The keys every run has are here (`COMMON`); a
task declares its own `task.*` keys on its class (`Task.config_keys`, e.g.
legw_repro/tasks/ptb/keys.py). The default values live in the YAML groups under configs/,
because they vary by task x scale; rules that involve two keys (batch vs processes, bf16 vs
device) are in validate.py, a task's own in `Task.check_config`. tests/test_config_reference.py
fails when a key in configs/ has no declaration or a declaration no key.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import KW_ONLY, dataclass
from typing import Any

from legw_repro.schedule import DECAYS, HANDOVERS, RULES, WARMUPS

#: the optimizers a policy can name; each is a recipe block of the task (`task.sgd`, `task.adam`)
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")


class _InConfigs:
    """The `default` of a key whose default is in configs/ (every shipped key but a few)."""

    def __repr__(self) -> str:
        return "IN_CONFIGS"


IN_CONFIGS: Any = _InConfigs()


def show(value: Any) -> str:
    """A value as the user would type it (null, true, 'text', 3)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _bound(x: float | None) -> str:
    """A range end as typed: an integer in full (a seed's 4294967295, not 4.29497e+09)."""
    if x is None:
        return ""
    return str(x) if _is_int(x) else f"{x:g}"


@dataclass(frozen=True)
class Rule:
    """One key's declaration. `meaning` is required: the reference (docs/config.md) says it."""

    kind: str  # int | number | bool | choice | text | numbers | texts
    _: KW_ONLY
    meaning: str  # one line: what the key decides (never a result)
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    null: str | None = None  # what null means; None: null is refused
    choices: tuple[Any, ...] = ()
    length: int | None = None  # numbers: exact list length
    inf: bool = False  # number: +inf allowed (e.g. "never")
    forbid: str = ""  # text: characters refused, and with them spaces at either end
    hint: str = ""
    #: False: the key cannot change a trained weight or a recorded metric (where the data and the
    #: output live, progress bars, how often checkpoints are written), so the fingerprint skips it
    fingerprint: bool = True
    #: the value where a config omits the key (the code reads it with this); IN_CONFIGS: every
    #: shipped config holds the key, with its default there
    default: Any = IN_CONFIGS
    #: its range depends on other keys (the epoch budget): the schedule library checks it, when
    #: `task.schedule.decay` names its block (`ScheduleSpec.validate`); unused blocks are not read
    by_schedule: bool = False

    def __post_init__(self) -> None:
        if not self.meaning.strip() or "\n" in self.meaning:
            raise ValueError(f"a {self.kind} rule needs its meaning, on one line")

    def describe(self) -> str:
        if self.kind == "choice":
            what = f"one of {self._options()}"
        elif self.kind == "bool":
            what = "true or false"
        elif self.kind == "text":
            what = "a non-empty string"
            if self.forbid:
                what += f" without spaces at its ends or any of {self.forbid}"
        elif self.kind == "texts":
            what = "a list of strings"
        elif self.kind == "numbers":
            n = f"{self.length} " if self.length else ""
            what = f"a list of {n}numbers {self._range()}".rstrip()
        elif self.kind == "int" and self.lo == 1 and self.hi is None:
            what = "a positive integer"
        else:
            what = f"{'an integer' if self.kind == 'int' else 'a number'} {self._range()}".rstrip()
        what += f" or null ({self.null})" if self.null else ""
        if self.by_schedule and self.kind in ("number", "numbers"):
            what += " (its range: the schedule library's, which checks it against the budget)"
        return what

    def _options(self) -> str:
        """The choices as typed: ['bpe', 'unigram'], ['auto', true, false]."""
        return "[" + ", ".join(show(c) for c in self.choices) + "]"

    def _range(self) -> str:
        lo, hi = _bound(self.lo), _bound(self.hi)
        if lo and hi:
            return f"in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        if lo:
            return f"{'>' if self.lo_open else '>='} {lo}"
        if hi:
            return f"{'<' if self.hi_open else '<='} {hi}"
        return ""

    def _in_range(self, v: float) -> bool:
        if math.isnan(v) or (math.isinf(v) and not (self.inf and v > 0)):
            return False
        lo_ok = self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)
        hi_ok = self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)
        return lo_ok and hi_ok

    def ok(self, v: Any) -> bool:
        if v is None:
            return self.null is not None
        if self.kind == "int":
            return _is_int(v) and self._in_range(v)
        if self.kind == "number":
            return _is_num(v) and self._in_range(float(v))
        if self.kind == "bool":
            return isinstance(v, bool)
        if self.kind == "choice":  # by type too: true is not 1, 'true' is not true
            return any(type(v) is type(c) and v == c for c in self.choices)
        if self.kind == "text":
            if not isinstance(v, str) or v == "":
                return False
            return not self.forbid or (v == v.strip() and not set(v) & set(self.forbid))
        if self.kind == "texts":
            return isinstance(v, list) and all(isinstance(x, str) for x in v)
        if self.kind == "numbers":
            good = isinstance(v, list) and all(_is_num(x) and self._in_range(x) for x in v)
            return good and (self.length is None or len(v) == self.length)
        raise AssertionError(self.kind)

    def error(self, key: str, v: Any) -> str | None:
        """The one-line refusal for `key=v`, or None when the value is fine (or, `by_schedule`,
        is the schedule library's to check)."""
        if self.by_schedule or self.ok(v):
            return None
        if self.kind == "choice":
            msg = f"{key}={show(v)} is not allowed; choose one of {self._options()}"
            return msg + (f" (or null: {self.null})" if self.null else "")
        return f"{key}={show(v)} must be {self.describe()}" + (
            f"; {self.hint}" if self.hint else ""
        )


# -- the declaration helpers: a kind and its range; `meaning` and the rest by keyword ----------
def integer(lo: int = 1, hi: int | None = None, **kw: Any) -> Rule:
    return Rule("int", lo=lo, hi=hi, **kw)


def number(lo: float | None = 0.0, hi: float | None = None, **kw: Any) -> Rule:
    return Rule("number", lo=lo, hi=hi, **kw)


def positive(**kw: Any) -> Rule:
    return number(0.0, lo_open=True, **kw)


def below_a_million(**kw: Any) -> Rule:
    """(0, 1e6): a learning rate or a factor on one. `base_lr=1e300` passed a plain positive()
    and crashed at step 2 with an overflow traceback; no recipe comes near 1e6."""
    return number(0.0, 1e6, lo_open=True, hi_open=True, **kw)


def fraction(**kw: Any) -> Rule:
    """[0, 1): dropout, momentum, label smoothing."""
    return number(0.0, 1.0, hi_open=True, **kw)


def choice(*options: str | bool, **kw: Any) -> Rule:
    return Rule("choice", choices=options, **kw)


def boolean(**kw: Any) -> Rule:
    return Rule("bool", **kw)


def text(**kw: Any) -> Rule:
    return Rule("text", **kw)


def texts(**kw: Any) -> Rule:
    return Rule("texts", **kw)


def numbers(lo: float | None = None, hi: float | None = None, **kw: Any) -> Rule:
    return Rule("numbers", lo=lo, hi=hi, **kw)


#: the keys every run has (a task's own `task.*` keys: `Task.config_keys`)
COMMON: dict[str, Rule] = {
    "batch_size": integer(
        meaning="the global batch of one optimizer step (all ranks x accumulation)",
        hint="the global batch of one optimizer step",
    ),
    "epochs": positive(meaning="the epoch budget, the same at every batch size"),
    "seed": integer(
        0,
        2**32 - 1,
        meaning="the run's seed (initialisation, data order, dropout)",
        hint="torch and numpy keep only 32 bits of a seed, so a larger one would train "
        "exactly as a smaller one while the record names another",
    ),  # fmt: skip
    "data_dir": text(
        meaning="the root of the data sets, one folder each (<data_dir>/<data set>/)",
        fingerprint=False,
    ),
    "device": choice(
        "auto",
        "cpu",
        "cuda",
        meaning="where the run trains (auto: CUDA when there is one)",
        fingerprint=False,
    ),
    "precision": choice("fp32", "bf16", meaning="fp32, or bf16 autocast (CUDA only)"),
    "cuda_graphs": choice(
        "auto",
        True,
        False,
        meaning="the training step replayed as one CUDA graph (auto: where it applies, else "
        "eager; the record says why)",
        fingerprint=False,
    ),
    "accum_steps": integer(
        meaning="micro-batches per rank per optimizer step (gradient accumulation)"
    ),
    "resume": boolean(
        meaning="continue from the run directory's checkpoint, skip it if finished (same "
        "config fingerprint only)",
        fingerprint=False,
    ),
    "overwrite": boolean(
        meaning="discard the run directory's record and checkpoints and start over",
        fingerprint=False,
    ),
    "progress": boolean(meaning="a tqdm progress bar on rank 0", fingerprint=False),
    "eval_every_epochs": positive(meaning="validation every this many epochs (and at the end)"),
    "checkpoint_every_min": number(
        meaning="also checkpoint every this many minutes (0: only at epoch ends)",
        hint="0: only at epoch ends",
        fingerprint=False,
    ),
    "checkpoint_every_steps": integer(
        0,
        null="off",
        meaning="also checkpoint every this many optimizer steps (0: off)",
        hint="0 also means off",
        fingerprint=False,
    ),
    "fuse_group": text(
        null="a run of its own",
        meaning="set by the sweeper (hydra.sweeper.fuse): the file naming the runs this job "
        "trains as one fused group (legw_repro/sweep/fuse.py)",
        fingerprint=False,
        default=None,
    ),
    "checkpoint_keep": choice(
        "all",
        "last",
        "none",
        meaning="checkpoints a finished (completed or diverged) run keeps: all (last.pt and "
        "prev.pt), last (last.pt: the final weights), none; a preempted run keeps all",
        fingerprint=False,
    ),
    "diverge_factor": number(
        1.0,
        lo_open=True,
        inf=True,
        meaning="stop as diverged when the mean loss of 20 steps exceeds this x the first loss",
        hint="a run is diverged when its loss exceeds this x its "
        "first loss; a factor <= 1 would stop healthy runs (inf: never)",
    ),  # fmt: skip
    "dist_timeout_s": number(
        1.0,
        86400.0,
        meaning=(
            "DDP: seconds the start waits for every rank to join, and a collective for a "
            "stalled rank, before the job ends"
        ),
        hint="seconds DDP waits for a rank (to join, or in a collective)",
        fingerprint=False,
    ),
    "wandb.mode": choice(
        "auto",
        "online",
        "offline",
        "disabled",
        meaning="a mirror of the run on Weights & Biases: auto (WANDB_MODE if set, else "
        "disabled), online (after `wandb login`), offline, disabled",
        fingerprint=False,
    ),
    "wandb.project": text(meaning="the W&B project", fingerprint=False),
    "wandb.entity": text(
        null="your default entity", meaning="the W&B user or team", fingerprint=False
    ),
    "wandb.group": text(null="<task>-<scale>", meaning="the W&B run group", fingerprint=False),
    "wandb.tags": texts(meaning="the W&B run's tags", fingerprint=False),
    "wandb.run_id": text(
        null="derived from the run directory",
        meaning="the W&B run id, so that a resumed run continues its W&B run",
        fingerprint=False,
        default=None,
        # W&B refuses these at wandb.init, after the data is loaded (validate_run_id)
        forbid=":;,#?/'",
    ),
    "policy.name": text(meaning="the policy's name, in run paths and records"),
    "policy.optimizer": choice(
        *OPTIMIZERS, meaning="the optimizer; its recipe is the task's block of that name"
    ),
    "policy.rule": choice(
        *RULES, meaning="how the peak LR scales with k = batch_size / task.base_batch_size"
    ),
    "policy.warmup": choice(
        *WARMUPS, meaning="how the warmup scales with k (fixed: as many epochs; legw: epochs x k)"
    ),
    "policy.lr_multiplier": below_a_million(
        meaning="a factor on the recipe's base LR (the tuned-LR oracle's policy sets it)",
        hint="the tuned-LR oracle's factor on the recipe's rate",
        default=1.0,
    ),
    "scale.name": text(meaning="the scale's name, in run paths and records"),
    "scale.reduced": boolean(
        meaning="true when this task at this scale departs from the paper's protocol (a "
        "smaller model, a shorter budget or a slice of the data); reports say so"
    ),
    "task.name": text(meaning="the task's name, in run paths and records"),
    "task.cls": text(meaning="the import path of the Task class that implements the task"),
    "task.base_batch_size": integer(
        meaning="the batch the recipe is tuned at: k = batch_size / task.base_batch_size"
    ),
    "task.epochs": positive(meaning="the task's epoch budget at this scale (epochs' default)"),
    "task.schedule.warmup_epochs": number(
        meaning="the warmup in epochs at the base batch (policy.warmup scales it)",
        hint="0: no warmup",
    ),
    "task.schedule.handover": choice(
        *HANDOVERS,
        meaning="how the warmup hands over to the decay (legw_repro/schedule/handover.py)",
        default="product",
    ),
    "task.schedule.decay": choice(
        *DECAYS, meaning="the LR decay; its parameters are the block of that name, in epochs"
    ),
    # the decay blocks: which parameters each decay takes is the schedule library's DECAY_PARAMS
    "task.schedule.exponential.gamma": number(
        None, meaning="the factor on the LR per epoch from start_epoch on", by_schedule=True
    ),
    "task.schedule.exponential.start_epoch": number(
        None, meaning="the epoch the exponential decay starts at", by_schedule=True
    ),
    "task.schedule.exponential.staircase": boolean(
        meaning="true: the factor applies at whole epochs only (a step function)",
        by_schedule=True,
    ),
    "task.schedule.polynomial.power": number(
        None, meaning="the exponent of the polynomial decay (1: linear)", by_schedule=True
    ),
    "task.schedule.polynomial.end_factor": number(
        None, meaning="the final LR as a fraction of the peak", by_schedule=True
    ),
    "task.schedule.cosine.end_factor": number(
        None, meaning="the final LR as a fraction of the peak", by_schedule=True
    ),
    "task.schedule.multistep.milestones": numbers(
        meaning="the epochs at which the LR is multiplied by gamma", by_schedule=True
    ),
    "task.schedule.multistep.gamma": number(
        None, meaning="the factor on the LR at each milestone", by_schedule=True
    ),
    # the optimizer recipes, tuned at the base batch (policy.optimizer picks one)
    "task.sgd.base_lr": below_a_million(
        meaning="SGD's peak LR at the base batch (policy.rule scales it)"
    ),
    "task.sgd.momentum": fraction(meaning="SGD's momentum"),
    "task.sgd.weight_decay": number(meaning="SGD's L2 weight decay"),
    "task.sgd.clip": number(
        null="no clipping",
        meaning="the gradient-norm clip under SGD",
        hint="0 also means no clipping",
    ),
    "task.adam.base_lr": below_a_million(
        meaning="Adam's peak LR at the base batch (policy.rule scales it)"
    ),
    "task.adam.weight_decay": number(meaning="Adam's L2 weight decay", default=0.0),
    "task.adam.clip": number(
        null="no clipping",
        meaning="the gradient-norm clip under Adam",
        hint="0 also means no clipping",
    ),
    "task.adam.eps": positive(meaning="Adam's epsilon", default=1e-8),
    "task.adam.betas": numbers(
        0.0, 1.0, hi_open=True, length=2, meaning="Adam's (beta1, beta2)", default=(0.9, 0.999)
    ),
}


def rules_for(task_cls: type | None) -> dict[str, Rule]:
    """The rules of a run's keys: the common ones and the task class's own (`config_keys`)."""
    return COMMON | dict(getattr(task_cls, "config_keys", {}))


def default(key: str) -> Any:
    """The value the code reads for `key` where a config omits it (its declared `default`)."""
    value = COMMON[key].default
    assert value is not IN_CONFIGS, f"{key} has its default in configs/, not in its declaration"
    return value


def rules_of(container: dict[str, Any]) -> dict[str, Rule]:
    """The rules of a resolved config (a plain dict): its task class's too, when `task.cls`
    imports (a record of a task no longer installed: the common ones)."""
    path = str((container.get("task") or {}).get("cls", ""))
    module, _, name = path.rpartition(".")
    try:
        return rules_for(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError, ValueError):
        return dict(COMMON)
