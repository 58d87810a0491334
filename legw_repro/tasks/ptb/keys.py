"""PTB's own config keys (`task.*`) and what each may hold: PTBTask.config_keys."""

from __future__ import annotations

from legw_repro.config.keys import BOOL, Rule, choice, fraction, integer, positive

#: the rules of the task.* keys only this task reads
KEYS: dict[str, Rule] = {
    "task.bptt": integer(null="the model size's published value"),
    "task.eval_batch_size": integer(),
    "task.max_train_tokens": integer(null="the whole training split"),
    "task.max_eval_tokens": integer(null="the whole split"),
    "task.model.size": choice("tiny", "small", "medium", "large"),
    "task.model.num_layers": integer(),
    "task.model.hidden": integer(null="the model size's value"),
    "task.model.dropout": fraction(null="the model size's value"),
    "task.model.init_scale": positive(null="the model size's value"),
    "task.model.tie_weights": BOOL,
}
