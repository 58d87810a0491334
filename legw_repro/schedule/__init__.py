"""Learning-rate schedules for large-batch training: LEGW and the baselines it is compared with.

LEGW ("linear-epoch gradual warmup", You et al. 2019, "Large-Batch Training for LSTM and
Beyond") scales a tuned small-batch schedule to a k times larger batch by two rules:

* the peak learning rate grows with the square root of k (Sqrt Scaling), and
* the warmup grows linearly with k, *measured in epochs*.

Notation (plain-text maths)::

    k        = batch_size / base_batch_size
    peak     = base_lr * sqrt(k)          rule="sqrt"    (LEGW, Krizhevsky 2014)
             = base_lr * k                rule="linear"  (Goyal et al. 2017)
             = base_lr                    rule="none"
    W        = warmup_epochs * k          warmup="legw"  (warmup length in epochs)
             = warmup_epochs              warmup="fixed"
    w(e)     = min(1, e / W)              (w = 1 when W = 0: no warmup)
    d(x)     = decay factor, d(0) = 1 (see below)

How the warmup hands over to the decay (``handover``), for 0 <= e <= epochs (e > epochs is
clamped to epochs)::

    product   lr(e) = peak * w(e) * d(e)                       (the default)
    absolute  lr(e) = peak * w(e)        for e < W
                    = peak * d(e)        for e >= W            (a jump down if d(W) < 1)
    shifted   lr(e) = peak * w(e)        for e < W
                    = peak * d'(e - W)   for e >= W            (the decay's clock starts at W)

where ``d'`` is ``d`` with the budget-defined decays (polynomial, cosine) run over the
remaining ``epochs - W`` epochs instead of ``epochs``; exponential and multistep keep their
parameters, now counted from the warmup's end.  The three agree when there is no warmup.

Decay factors ``d`` (constant, exponential, polynomial, cosine, multistep; every parameter in
epochs) are in ``legw_repro.schedule.decays``.

Why epochs, not steps, are the unit.  An epoch means the same amount of data at every batch
size, so a decay given in epochs needs no rescaling when the batch grows.  For the warmup it
is what makes LEGW work: with ``steps_per_epoch = N / batch_size``, a LEGW warmup of
``warmup_epochs * k`` epochs is ``warmup_epochs * k * N / (k * base_batch_size)`` =
``warmup_epochs * N / base_batch_size`` optimizer *steps* -- the same number of warmup steps
at every batch size, while the peak it climbs to grows as sqrt(k).

Why three hand-overs.  The paper fixes none of them in a readable source.  ``product``
(our first convention) keeps the decay curve identical at every batch size and continuous,
but when the decay has begun before a long LEGW warmup ends (``d(W) < 1``) the rate never
reaches ``peak``: at 64x with a linear decay over the budget, MNIST's LEGW run tops out at half
its peak.  ``shifted`` is what the lead author's own LEGW code does (ResNet-50 on TPU,
``lars_util.py`` in the fastalgo fork of tensorflow/tpu: polynomial decay over the steps that
remain after the warmup); it always reaches ``peak`` and is continuous.  ``absolute`` is the
BERT/LAMB optimizer code's form: full peak at the warmup's end, then the decay at the absolute
epoch (continuous only where ``d(W) = 1``).  ``schedule_summary`` reports the highest rate
actually reached (``max_lr``) and the mean rate over the run (``mean_lr``) for each.

The public entry points are ``ScheduleSpec`` (every argument as one frozen value),
``learning_rate`` (a pure function of the fractional epoch), ``schedule_summary`` (for
logging), ``validate_schedule`` and ``LEGWScheduler`` (a
``torch.optim.lr_scheduler.LRScheduler`` stepped once per optimizer step); the named policies
(rule, warmup, optimizer) are configs/policy/*.yaml.

One module per idea: ``scaling`` (the two LEGW rules: the peak LR and the warmup length as
functions of k), ``handover`` (warmup into decay), ``decays`` (the decay factors), ``spec``
(``ScheduleSpec`` and the validated, precomputed schedule), ``functions`` (``learning_rate``,
``validate_schedule``, ``schedule_summary``) and ``scheduler`` (``LEGWScheduler``).  Imports
torch and nothing else of legw_repro: copy the folder into your own training loop.
"""

from legw_repro.schedule.decays import DECAYS
from legw_repro.schedule.functions import (
    learning_rate,
    lr_stats,
    schedule_summary,
    validate_schedule,
)
from legw_repro.schedule.handover import HANDOVERS
from legw_repro.schedule.scaling import RULES, WARMUPS
from legw_repro.schedule.scheduler import LEGWScheduler
from legw_repro.schedule.spec import ScheduleSpec

__all__ = [
    "DECAYS",
    "HANDOVERS",
    "RULES",
    "WARMUPS",
    "LEGWScheduler",
    "ScheduleSpec",
    "learning_rate",
    "lr_stats",
    "schedule_summary",
    "validate_schedule",
]
