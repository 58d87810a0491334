"""GNMT's own config keys (`task.*`) and what each may hold: GNMTTask.config_keys."""

from __future__ import annotations

from legw_repro.config.keys import BOOL, Rule, choice, fraction, integer, number, positive, text

#: the rules of the task.* keys only this task reads
KEYS: dict[str, Rule] = {
    "task.data.source": choice("multi30k", "wmt16"),
    "task.data.wmt16_path": text("<data_dir>/wmt16 if it exists, else downloaded when online"),
    "task.data.src_lang": choice("en", "de"),
    "task.data.tgt_lang": choice("en", "de"),
    "task.data.pool_batches": integer(),
    "task.data.max_train_items": integer(null="all training pairs"),
    "task.data.max_eval_items": integer(null="the whole split"),
    "task.subword.vocab_size": integer(200, hint="sentencepiece needs room for every character"),
    "task.subword.model_type": choice("bpe", "unigram"),
    "task.subword.character_coverage": number(0.0, 1.0, lo_open=True),
    "task.subword.cache_dir": text("$LEGW_CACHE_DIR, else ~/.cache/legw_repro"),
    "task.model.embed": integer(),
    "task.model.hidden": integer(),
    "task.model.encoder_layers": integer(2, hint="a bidirectional layer, then unidirectional ones"),
    "task.model.decoder_layers": integer(2, hint="an attention layer, then one it feeds"),
    "task.model.attention": choice("bahdanau", "luong"),
    "task.model.attention_dim": integer(null="task.model.hidden"),
    "task.model.dropout": fraction(),
    "task.model.share_embeddings": BOOL,
    "task.model.tie_output": BOOL,
    "task.model.init_range": positive(),
    "task.label_smoothing": fraction(),
    "task.max_micro_batch": integer(null="accum_steps decides"),
    "task.decode.valid_beam": integer(hint="1: greedy"),
    "task.decode.beam": integer(),
    "task.decode.alpha": number(),
    "task.decode.max_len_a": number(),
    "task.decode.max_len_b": integer(0),
    "task.decode.eval_batch_size": integer(),
}
