"""MNIST's own config keys (`task.*`): their declarations (legw_repro/config/keys.py's Rule),
MNISTTask.config_keys."""

from __future__ import annotations

from legw_repro.config.keys import Rule, choice, integer, number
from legw_repro.tasks.mnist.model import INPUTS

#: the declarations of the task.* keys only this task reads
KEYS: dict[str, Rule] = {
    "task.val_size": integer(
        1,
        59_999,
        meaning="images held out of the 60000 training images for validation",
        hint="images held out of the 60000 training images",
    ),
    "task.split_seed": integer(
        0, 2**32 - 1, meaning="the seed of the validation hold-out (not the run's seed)"
    ),
    "task.eval_batch_size": integer(meaning="images per forward pass in evaluation"),
    "task.max_train_items": integer(
        null="all training images", meaning="smoke runs: the first N training images only"
    ),
    "task.max_eval_items": integer(
        null="the whole split", meaning="smoke runs: the first N validation / test images only"
    ),
    "task.model.input": choice(
        *INPUTS,
        meaning="what one LSTM step reads: a 28-pixel row (28 steps) or one pixel (784 steps)",
    ),
    "task.model.hidden": integer(meaning="LSTM units per layer"),
    "task.model.num_layers": integer(meaning="stacked LSTM layers"),
    "task.model.forget_bias": number(
        None, meaning="added to the forget-gate bias at initialisation (TensorFlow's 1.0)"
    ),
    "task.model.cpu_chunk": integer(
        0,
        null="off",
        meaning="on the CPU, the LSTM runs over chunks of this many rows (0: off): the same "
        "maths, faster at large batches",
        hint="0 also means off",
        fingerprint=False,
    ),
}
