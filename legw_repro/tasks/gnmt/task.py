"""GNMT-lite: Multi30k (or, with ``task.data.source=wmt16``, WMT16) translation, en->de by
default, with a scaled-down GNMT, metric: detokenized sacreBLEU (higher is better).

Data and batches: :mod:`legw_repro.tasks.gnmt.multi30k` (files, joint sentencepiece model),
:mod:`legw_repro.tasks.gnmt.wmt16` (the same splits and subword model from Hugging Face ``datasets``) and
:mod:`legw_repro.tasks.common.seq_batches` (sentence-count batches, length bucketing seeded by
(seed, epoch), the global-token-mean loss that makes any DDP / accumulation split exact).
Model and decoding: :mod:`legw_repro.tasks.gnmt.model`, :mod:`legw_repro.tasks.gnmt.decoding`.

Evaluation: the loss is the token-mean NLL under teacher forcing (no label smoothing); BLEU is
computed on decoded, detokenized output against the raw references -- greedy on the
validation split every epoch (``decode.valid_beam: 1``: beam search costs ~beam x on a CPU),
beam search with GNMT's length normalisation on ``test`` (test_2016_flickr; newstest2016) at the
end. After training, :meth:`write_outputs` decodes the source's test sets (``TEST_SETS``:
test_2016_flickr and test_2017_flickr; newstest2016) with the beam and writes the translations
to ``translations/<set>.<tgt_lang>.txt`` (one detokenized line per source sentence, in order)
and their BLEU and the sacreBLEU signature to summary.json.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from legw_repro.config.keys import show
from legw_repro.config.validate import ConfigError
from legw_repro.loop.distributed import DistInfo
from legw_repro.run.records import atomic_write_text
from legw_repro.tasks.base import Task
from legw_repro.tasks.common.seq_batches import (
    SeqBatch,
    bucketed_batches,
    make_batch,
    micro_batch_count,
    split_global,
)
from legw_repro.tasks.gnmt import multi30k as m30k
from legw_repro.tasks.gnmt import wmt16
from legw_repro.tasks.gnmt.bleu import corpus_bleu
from legw_repro.tasks.gnmt.decoding import beam_search, greedy, max_lengths
from legw_repro.tasks.gnmt.keys import KEYS
from legw_repro.tasks.gnmt.model import GNMT

#: per data source (``task.data.source``): the test sets decoded after training (task split ->
#: official name); ``test`` is the one every run evaluates
TEST_SETS = {"multi30k": m30k.TEST_SETS, "wmt16": wmt16.TEST_SETS}
SOURCES = tuple(TEST_SETS)
IDS = (m30k.PAD_ID, m30k.BOS_ID, m30k.EOS_ID)


class GNMTTask(Task):
    metric = "bleu"
    higher_is_better = True
    item_unit = "tokens"
    config_keys = KEYS

    @classmethod
    def check_config(cls, flat: Mapping[str, Any]) -> None:
        """Languages, tied embeddings and output lengths: combinations no single rule sees."""
        g = {k.removeprefix("task."): v for k, v in flat.items() if k.startswith("task.")}
        if g.get("data.src_lang") == g.get("data.tgt_lang"):
            raise ConfigError(
                f"task.data.src_lang=task.data.tgt_lang={show(g.get('data.src_lang'))}: translate "
                "between two languages (src_lang=en tgt_lang=de or the reverse)"
            )
        if g.get("model.tie_output") and g.get("model.embed") != g.get("model.hidden"):
            raise ConfigError(
                f"task.model.tie_output=true needs task.model.embed == task.model.hidden (got "
                f"{g.get('model.embed')} and {g.get('model.hidden')}); set them equal or "
                "task.model.tie_output=false"
            )
        if g.get("decode.max_len_a") == 0 and g.get("decode.max_len_b") == 0:
            raise ConfigError(
                "task.decode.max_len_a=0 and task.decode.max_len_b=0 allow no output token; "
                "set max_len_b >= 1 (e.g. 10)"
            )

    def __init__(self, cfg: DictConfig, dist: DistInfo) -> None:
        super().__init__(cfg, dist)
        t = cfg.task
        self.source = str(t.data.source)  # each key checked by its declaration (keys.py)
        self.seed = int(cfg.seed)
        self.subword = m30k.SubwordSettings(
            vocab_size=int(t.subword.vocab_size),
            model_type=str(t.subword.model_type),
            character_coverage=float(t.subword.character_coverage),
        )
        self.label_smoothing = float(t.label_smoothing)
        self.eval_batch_size = int(t.decode.eval_batch_size)
        self._hyps: dict[str, list[str]] = {}

    # -- data -------------------------------------------------------------------------------
    @functools.cached_property
    def texts(self) -> dict[str, m30k.ParallelText]:
        d = self.cfg.task.data
        langs = (str(d.src_lang), str(d.tgt_lang))
        if self.source == "wmt16":
            return wmt16.load_wmt16(self.cfg.data_dir, *langs, d.get("wmt16_path"))
        return m30k.load_multi30k(self.cfg.data_dir, *langs)

    @functools.cached_property
    def sp(self):
        """The joint sentencepiece model (built on first use, then cached on disk)."""
        cache = self.cfg.task.subword.cache_dir
        if self.source == "wmt16":
            path = self.cfg.task.data.get("wmt16_path")
            return wmt16.load_wmt16_subword_model(self.cfg.data_dir, self.subword, cache, path)
        return m30k.load_subword_model(self.cfg.data_dir, self.subword, cache)

    @property
    def test_sets(self) -> dict[str, str]:
        """The source's test sets: task split -> official name (translations/<name>.<lang>.txt)."""
        return TEST_SETS[self.source]

    def check_data(self) -> None:
        _ = self.texts, self.sp

    def pairs(self, split: str) -> m30k.ParallelText:
        """A split's raw sentences, cut to ``max_train_items`` / ``max_eval_items`` if set."""
        d = self.cfg.task.data
        limit = d.max_train_items if split == "train" else d.max_eval_items
        p = self.texts[split]
        return m30k.ParallelText(p.src[: int(limit)], p.tgt[: int(limit)]) if limit else p

    @functools.cache  # noqa: B019 - one task per process; the cache lives as long as it does
    def encoded(self, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Subword ids (no specials) of a split's source and target sentences."""
        p = self.pairs(split)
        enc = [self.sp.encode(list(side)) for side in (p.src, p.tgt)]
        return tuple([np.asarray(s, dtype=np.int64) for s in side] for side in enc)  # type: ignore[return-value]

    @functools.cached_property
    def _train_lens(self) -> tuple[np.ndarray, np.ndarray]:
        src, tgt = self.encoded("train")
        return np.array([len(s) for s in src]), np.array([len(t) for t in tgt])

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.pairs("train"))
        if n < self.batch_size:
            raise ValueError(
                f"batch_size={self.batch_size} exceeds the {n} training sentence pairs; use a "
                "smaller batch_size (or a larger task.data.max_train_items)"
            )
        return n // self.batch_size

    @property
    def items_per_step(self) -> int:
        """Target tokens (incl. EOS) of an average global batch, for the throughput figure."""
        return round(self.batch_size * (float(self._train_lens[1].mean()) + 1))

    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[list[Any]]:
        src_lens, tgt_lens = self._train_lens
        src, tgt = self.encoded("train")
        order = bucketed_batches(
            src_lens, tgt_lens, self.batch_size, self.seed, epoch,
            int(self.cfg.task.data.pool_batches),
        )  # fmt: skip
        n_micro = self.micro_per_rank
        parts = self.dist.world_size * n_micro
        for idx in order[start_step : self.steps_per_epoch]:
            norm = float(tgt_lens[idx].sum() + len(idx)) / parts  # target tokens incl. EOS
            micro = split_global(idx, self.dist.rank, self.dist.world_size, n_micro)
            yield [
                make_batch([src[i] for i in m], [tgt[i] for i in m], norm, **self._ids).to(
                    self.device
                )
                for m in micro
            ]

    @property
    def micro_per_rank(self) -> int:
        """Micro-batches per rank and step: ``accum_steps``, or more when
        ``task.max_micro_batch`` caps their size (the trainer averages however many come)."""
        share = self.batch_size // self.dist.world_size
        return micro_batch_count(share, self.accum_steps, self.cfg.task.get("max_micro_batch"))

    def init_carry(self, model: nn.Module) -> list[Any]:
        return [None] * self.micro_per_rank

    @property
    def _ids(self) -> dict[str, int]:
        return {"pad_id": m30k.PAD_ID, "bos_id": m30k.BOS_ID, "eos_id": m30k.EOS_ID}

    # -- model and loss ---------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        m = self.cfg.task.model
        return GNMT(
            int(self.sp.get_piece_size()),
            embed=int(m.embed),
            hidden=int(m.hidden),
            encoder_layers=int(m.encoder_layers),
            decoder_layers=int(m.decoder_layers),
            attention=str(m.attention),
            attention_dim=m.attention_dim and int(m.attention_dim),
            dropout=float(m.dropout),
            share_embeddings=bool(m.share_embeddings),
            tie_output=bool(m.tie_output),
            init_range=float(m.init_range),
            pad_id=m30k.PAD_ID,
        )

    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[torch.Tensor, Any]:
        """Label-smoothed token-loss sum / ``batch.norm``: the global batch's token mean once
        the trainer averages micro-batches and ranks (see seq_batches)."""
        logits = model(batch.src, batch.src_len, batch.tgt_in)
        total = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            batch.tgt_out.reshape(-1),
            ignore_index=m30k.PAD_ID,
            reduction="sum",
            label_smoothing=self.label_smoothing,
        )
        return total / batch.norm, None

    # -- evaluation -------------------------------------------------------------------------
    def _eval_batches(self, split: str) -> Iterator[tuple[np.ndarray, SeqBatch]]:
        """(positions, batch) chunks of a split, sorted by source length (little padding)."""
        src, tgt = self.encoded(split)
        order = np.argsort([len(s) for s in src], kind="stable")
        for start in range(0, len(order), self.eval_batch_size):
            pos = order[start : start + self.eval_batch_size]
            batch = make_batch([src[i] for i in pos], [tgt[i] for i in pos], 1.0, **self._ids)
            yield pos, batch.to(self.device)

    @torch.no_grad()
    def translate(self, model: nn.Module, split: str, beam: int) -> list[str]:
        """Detokenized translations of a split's source sentences, in order."""
        d = self.cfg.task.decode
        was_training = model.training
        model.eval()
        out: list[str] = [""] * len(self.pairs(split))
        for pos, b in self._eval_batches(split):
            limits = max_lengths(b.src_len, float(d.max_len_a), float(d.max_len_b))
            if beam == 1:
                ids = greedy(model, b.src, b.src_len, limits, IDS)
            else:
                ids = beam_search(model, b.src, b.src_len, limits, IDS, beam, float(d.alpha))
            for i, seq in zip(pos, ids, strict=True):
                out[i] = self.sp.decode(seq)
        model.train(was_training)
        return out

    @torch.no_grad()
    def nll(self, model: nn.Module, split: str) -> float:
        """Token-mean negative log-likelihood under teacher forcing (no label smoothing)."""
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        for _, b in self._eval_batches(split):
            logits = model(b.src, b.src_len, b.tgt_in).float()
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                b.tgt_out.reshape(-1),
                ignore_index=m30k.PAD_ID,
                reduction="sum",
            ).item()
            count += int((b.tgt_out != m30k.PAD_ID).sum())
        model.train(was_training)
        return total / count

    def _beam(self, split: str) -> int:
        d = self.cfg.task.decode
        return int(d.valid_beam) if split == "valid" else int(d.beam)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        hyps = self.translate(model, split, self._beam(split))
        self._hyps = {split: hyps}  # write_outputs reuses the final test decoding
        bleu, _ = corpus_bleu(hyps, self.pairs(split).tgt)
        return {"loss": self.nll(model, split), "bleu": bleu}

    def write_outputs(self, model: nn.Module, run_dir: Path) -> dict[str, Any]:
        """Decode the test sets with the beam, write the translations, return their BLEU."""
        tgt_lang = str(self.cfg.task.data.tgt_lang)
        sets, signature = {}, None
        for split, name in self.test_sets.items():
            hyps = self._hyps.get(split) or self.translate(model, split, self._beam(split))
            rel = f"translations/{name}.{tgt_lang}.txt"
            atomic_write_text(Path(run_dir) / rel, "".join(h + "\n" for h in hyps))
            bleu, signature = corpus_bleu(hyps, self.pairs(split).tgt)
            sets[name] = {"bleu": bleu, "sentences": len(hyps), "translations": rel}
        d = self.cfg.task.decode
        return {
            "bleu_signature": signature,
            "test_sets": sets,
            "decoding": {
                "valid": "greedy" if int(d.valid_beam) == 1 else f"beam {d.valid_beam}",
                "test": f"beam {d.beam}, GNMT length penalty alpha {d.alpha}",
            },
        }
