"""One rule per config key a user can type: its type, its range, what null means, and the fix.

Why a table: the checks used to live in each task's constructor and the model code, so a bad
value was found after the data was loaded (or after an epoch, in validation), or was replaced by
a default without a word (`task.bptt=0`, `task.model.hidden=0`, `task.max_train_tokens=-5`).
Here every key of every shipped config has a rule, checked before anything is built; a test
(`tests/test_validation.py`) fails when a key in configs/ has none. The keys every run has are
here (`COMMON`); a task declares its own `task.*` keys on its class (`Task.config_keys`, e.g.
legw_repro/tasks/ptb/keys.py). Rules that involve two keys (batch vs processes, bf16 vs device)
are in `legw_repro/config/validate.py`, a task's own in `Task.check_config`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from legw_repro.schedule import DECAYS, HANDOVERS, RULES, WARMUPS

#: the optimizers a policy can name; each is a recipe block of the task (`task.sgd`, `task.adam`)
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")


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
    kind: str  # int | number | bool | choice | text | numbers | texts
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
        return what + (f" or null ({self.null})" if self.null else "")

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
        """The one-line refusal for `key=v`, or None when the value is fine."""
        if self.ok(v):
            return None
        if self.kind == "choice":
            msg = f"{key}={show(v)} is not allowed; choose one of {self._options()}"
            return msg + (f" (or null: {self.null})" if self.null else "")
        return f"{key}={show(v)} must be {self.describe()}" + (
            f"; {self.hint}" if self.hint else ""
        )


def integer(lo: int = 1, hi: int | None = None, *, null: str | None = None, hint: str = "") -> Rule:
    return Rule("int", lo=lo, hi=hi, null=null, hint=hint)


def number(
    lo: float | None = 0.0,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    null: str | None = None,
    inf: bool = False,
    hint: str = "",
) -> Rule:
    return Rule("number", lo, hi, lo_open, hi_open, null=null, inf=inf, hint=hint)


def positive(*, null: str | None = None, hint: str = "") -> Rule:
    return number(0.0, lo_open=True, null=null, hint=hint)


def below_a_million(*, hint: str = "") -> Rule:
    """(0, 1e6): a learning rate or a factor on one. `base_lr=1e300` passed a plain positive()
    and crashed at step 2 with an overflow traceback; no recipe comes near 1e6."""
    return number(0.0, 1e6, lo_open=True, hi_open=True, hint=hint)


def fraction(*, null: str | None = None, hint: str = "") -> Rule:
    """[0, 1): dropout, momentum, label smoothing."""
    return number(0.0, 1.0, hi_open=True, null=null, hint=hint)


def choice(*options: str | bool, null: str | None = None) -> Rule:
    return Rule("choice", choices=options, null=null)


BOOL = Rule("bool")
TEXT = Rule("text")


def text(null: str) -> Rule:
    return Rule("text", null=null)


COMMON: dict[str, Rule] = {
    "batch_size": integer(hint="the global batch of one optimizer step"),
    "epochs": positive(),
    "seed": integer(
        0,
        2**32 - 1,
        hint="torch and numpy keep only 32 bits of a seed, so a larger one would train "
        "exactly as a smaller one while the record names another",
    ),  # fmt: skip
    "data_dir": TEXT,
    "device": choice("auto", "cpu", "cuda"),
    "precision": choice("fp32", "bf16"),
    "cuda_graphs": choice("auto", True, False),
    "accum_steps": integer(),
    "resume": BOOL,
    "overwrite": BOOL,
    "progress": BOOL,
    "eval_every_epochs": positive(),
    "checkpoint_every_min": number(hint="0: only at epoch ends"),
    "checkpoint_every_steps": integer(0, null="off", hint="0 also means off"),
    "diverge_factor": number(
        1.0,
        lo_open=True,
        inf=True,
        hint="a run is diverged when its loss exceeds this x its "
        "first loss; a factor <= 1 would stop healthy runs (inf: never)",
    ),  # fmt: skip
    "dist_timeout_s": number(1.0, 86400.0, hint="seconds a DDP collective may wait for a rank"),
    "wandb.mode": choice("auto", "online", "offline", "disabled"),
    "wandb.project": TEXT,
    "wandb.entity": text("your default entity"),
    "wandb.group": text("<task>-<scale>"),
    "wandb.tags": Rule("texts"),
    # W&B refuses these at wandb.init, after the data is loaded (wandb_settings.validate_run_id)
    "wandb.run_id": Rule("text", null="derived from the run directory", forbid=":;,#?/'"),
    "policy.name": TEXT,
    "policy.optimizer": choice(*OPTIMIZERS),
    "policy.rule": choice(*RULES),
    "policy.warmup": choice(*WARMUPS),
    "policy.lr_multiplier": below_a_million(
        hint="the tuned-LR oracle's factor on the recipe's rate"
    ),
    "scale.name": TEXT,
    "scale.reduced": BOOL,
    "task.name": TEXT,
    "task.cls": TEXT,
    "task.base_batch_size": integer(),
    "task.epochs": positive(),
    "task.schedule.warmup_epochs": number(hint="0: no warmup"),
    "task.schedule.handover": choice(*HANDOVERS),
    "task.schedule.decay": choice(*DECAYS),
}
for _opt in OPTIMIZERS:
    COMMON |= {
        f"task.{_opt}.base_lr": below_a_million(),
        f"task.{_opt}.momentum": fraction(),
        f"task.{_opt}.weight_decay": number(),
        f"task.{_opt}.clip": number(null="no clipping", hint="0 also means no clipping"),
        f"task.{_opt}.eps": positive(),
        f"task.{_opt}.betas": Rule("numbers", 0.0, 1.0, hi_open=True, length=2),
    }

#: the decay blocks (`task.schedule.<decay>.*`): the schedule library checks the block in use
#: (`ScheduleSpec.validate`, from `build_spec`); the others are not read
DECAY_BLOCKS = tuple(f"task.schedule.{d}." for d in DECAYS)


def rules_for(task_cls: type) -> dict[str, Rule]:
    """The rules of a run's keys: the common ones and the task class's own (`config_keys`)."""
    return COMMON | dict(getattr(task_cls, "config_keys", {}))
