"""Corpus BLEU with sacreBLEU: detokenized hypotheses against the raw references, sacreBLEU's
default settings (13a tokenization, mixed case, exponential smoothing), so the number and its
signature mean the same as in any paper that reports sacreBLEU."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["corpus_bleu"]


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """(BLEU in [0, 100], sacreBLEU signature) of aligned hypothesis and reference lines."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses for {len(references)} references: they must align"
        )
    bleu = BLEU()
    score = bleu.corpus_score(list(hypotheses), [list(references)]).score
    return float(score), str(bleu.get_signature())
