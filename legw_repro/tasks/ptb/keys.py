"""PTB's own config keys (`task.*`): their declarations (legw_repro/config/keys.py's Rule),
PTBTask.config_keys."""

from __future__ import annotations

from legw_repro.config.keys import Rule, boolean, choice, fraction, integer, positive
from legw_repro.tasks.ptb.model import SIZES

#: the declarations of the task.* keys only this task reads
KEYS: dict[str, Rule] = {
    "task.bptt": integer(
        null="the model size's published value",
        meaning="the BPTT window: tokens per training sequence (small 20, medium/large 35)",
    ),
    "task.eval_batch_size": integer(meaning="columns of the evaluation streams"),
    "task.max_train_tokens": integer(
        null="the whole training split", meaning="smoke runs: the first N training tokens only"
    ),
    "task.max_eval_tokens": integer(
        null="the whole split", meaning="smoke runs: the first N validation / test tokens only"
    ),
    "task.model.size": choice(
        *SIZES,
        meaning="the model's size preset (Zaremba's small / medium / large: 200 / 650 / 1500 "
        "units; tiny for smoke runs); hidden, dropout, init_scale and bptt default to it",
    ),
    "task.model.num_layers": integer(meaning="stacked LSTM layers"),
    "task.model.hidden": integer(
        null="the model size's value", meaning="LSTM units per layer (and the embedding size)"
    ),
    "task.model.dropout": fraction(
        null="the model size's value", meaning="dropout probability between layers"
    ),
    "task.model.init_scale": positive(
        null="the model size's value",
        meaning="weights are initialised uniform(-init_scale, init_scale)",
    ),
    "task.model.tie_weights": boolean(
        meaning="the output projection shares the input embedding's weights"
    ),
}
