"""MNIST's own config keys (`task.*`) and what each may hold: MNISTTask.config_keys."""

from __future__ import annotations

from legw_repro.config.keys import Rule, choice, integer, number

#: the rules of the task.* keys only this task reads
KEYS: dict[str, Rule] = {
    "task.val_size": integer(1, 59_999, hint="images held out of the 60000 training images"),
    "task.split_seed": integer(0, 2**32 - 1),
    "task.eval_batch_size": integer(),
    "task.max_train_items": integer(null="all training images"),
    "task.max_eval_items": integer(null="the whole split"),
    "task.model.input": choice("row", "pixel"),
    "task.model.hidden": integer(),
    "task.model.num_layers": integer(),
    "task.model.forget_bias": number(None),
    "task.model.cpu_chunk": integer(0, null="off", hint="0 also means off"),
}
