"""GNMT's own config keys (`task.*`): their declarations (legw_repro/config/keys.py's Rule),
GNMTTask.config_keys."""

from __future__ import annotations

from legw_repro.config.keys import (
    Rule,
    boolean,
    choice,
    fraction,
    integer,
    number,
    positive,
    text,
)
from legw_repro.tasks.gnmt.model import ATTENTIONS

#: the declarations of the task.* keys only this task reads
KEYS: dict[str, Rule] = {
    "task.data.source": choice(
        "multi30k",
        "wmt16",
        meaning="the corpus: Multi30k task 1 (<data_dir>/multi30k/raw/) or WMT16 de-en "
        "(Hugging Face datasets, for GPUs; docs/tasks.md)",
    ),
    "task.data.wmt16_path": text(
        null="<data_dir>/wmt16 if it exists, else downloaded when online",
        meaning="source=wmt16: a save_to_disk copy of the data set",
        fingerprint=False,
    ),
    "task.data.src_lang": choice("en", "de", meaning="the language translated from"),
    "task.data.tgt_lang": choice("en", "de", meaning="the language translated into"),
    "task.data.pool_batches": integer(
        meaning="length bucketing: pools of this many global batches are sorted by length"
    ),
    "task.data.max_train_items": integer(
        null="all training pairs", meaning="smoke runs: the first N training pairs only"
    ),
    "task.data.max_eval_items": integer(
        null="the whole split", meaning="smoke runs: the first N validation / test pairs only"
    ),
    "task.subword.vocab_size": integer(
        200,
        64_000,
        meaning="the joint sentencepiece vocabulary, learned on the training split only",
        hint="sentencepiece needs room for every character",
    ),
    "task.subword.model_type": choice("bpe", "unigram", meaning="the sentencepiece model"),
    "task.subword.character_coverage": number(
        0.9, 1.0, meaning="the share of characters the sentencepiece model covers"
    ),
    "task.subword.cache_dir": text(
        null="$LEGW_CACHE_DIR, else ~/.cache/legw_repro",
        meaning="where the learned subword model is cached",
        fingerprint=False,
    ),
    "task.model.embed": integer(meaning="embedding size"),
    "task.model.hidden": integer(meaning="LSTM units per layer"),
    "task.model.encoder_layers": integer(
        2,
        meaning="encoder layers: a bidirectional one, then unidirectional ones (residual from "
        "layer 3 up)",
        hint="a bidirectional layer, then unidirectional ones",
    ),
    "task.model.decoder_layers": integer(
        2,
        meaning="decoder layers: the first computes the attention query (residual from layer 3 up)",
        hint="an attention layer, then one it feeds",
    ),
    "task.model.attention": choice(
        *ATTENTIONS,
        meaning="the attention: Luong's multiplicative form or GNMT's normalized Bahdanau form",
    ),
    "task.model.attention_dim": integer(
        null="task.model.hidden", meaning="the attention's inner size"
    ),
    "task.model.dropout": fraction(meaning="dropout probability in the model (model.py: where)"),
    "task.model.share_embeddings": boolean(
        meaning="one embedding for source and target (the joint vocabulary)"
    ),
    "task.model.tie_output": boolean(
        meaning="the output projection is the target embedding (needs embed == hidden)"
    ),
    "task.model.init_range": positive(
        meaning="weights are initialised uniform(-init_range, init_range)"
    ),
    "task.label_smoothing": fraction(meaning="label smoothing of the training loss"),
    "task.max_micro_batch": integer(
        null="accum_steps decides",
        meaning="a cap on sentences per forward/backward: more micro-batches, the same maths",
    ),
    "task.decode.valid_beam": integer(
        meaning="beam width on the validation split every epoch (1: greedy)", hint="1: greedy"
    ),
    "task.decode.beam": integer(meaning="beam width on the test sets"),
    "task.decode.alpha": number(
        meaning="GNMT's length normalisation exponent: ((5 + |Y|) / 6) ** alpha"
    ),
    "task.decode.max_len_a": number(
        meaning="output limit per sentence: max_len_a x source length + max_len_b subwords"
    ),
    "task.decode.max_len_b": integer(
        0, meaning="output limit per sentence: max_len_a x source length + max_len_b subwords"
    ),
    "task.decode.eval_batch_size": integer(meaning="sentences per batch in decoding"),
}
