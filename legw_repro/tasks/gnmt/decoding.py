"""Greedy and batched beam-search decoding for the GNMT-lite model.

Both decode every sentence of a batch at once, one target token per step, carrying the decoder
state. Sentence i stops at EOS or at ``max_lens[i]`` tokens (EOS is then forced), so a
translation never depends on which other sentences share its batch. PAD and BOS are never
produced.

Beam search keeps ``beam`` hypotheses per sentence; a finished hypothesis stays in the beam with
its score and length frozen (its only continuation is a no-op), and candidates are ranked by
GNMT's length-normalised score ``log P(Y) / lp(Y)`` with ``lp(Y) = ((5 + |Y|) / 6) ** alpha``
(Wu et al. 2016, eq. 14; |Y| counts EOS; no coverage penalty). With ``beam = 1`` only one
hypothesis competes with itself at each step, so it is exactly greedy decoding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from legw_repro.tasks.gnmt.model import GNMT, State

__all__ = ["beam_search", "greedy", "length_penalty", "max_lengths"]

NEG_INF = float("-inf")


def length_penalty(length: Tensor, alpha: float) -> Tensor:
    """GNMT's lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha."""
    return ((5.0 + length.to(torch.float32)) / 6.0) ** alpha


def max_lengths(src_len: Tensor, a: float, b: float) -> Tensor:
    """Per-sentence output limit (tokens incl. EOS): ceil(a * source length + b), at least 1."""
    return torch.clamp(torch.ceil(a * src_len.to(torch.float32) + b), min=1).to(torch.int64)


def _restrict(logp: Tensor, step: int, max_lens: Tensor, ids: tuple[int, int, int]) -> Tensor:
    """Ban PAD and BOS; force EOS where token ``step + 1`` reaches the sentence's limit."""
    pad_id, bos_id, eos_id = ids
    logp = logp.clone()
    logp[:, [pad_id, bos_id]] = NEG_INF
    at_limit = (step + 1 >= max_lens).to(logp.device)
    if at_limit.any():
        eos = logp[:, eos_id].clone()
        logp[at_limit] = NEG_INF
        logp[at_limit, eos_id] = eos[at_limit]
    return logp


def _step(model: GNMT, tokens: Tensor, state: State | None, enc: tuple) -> tuple[Tensor, State]:
    logits, state, _ = model.decode(tokens[:, None], state, *enc)
    return torch.log_softmax(logits[:, 0].float(), dim=-1), state


def _strip(seqs: Tensor, eos_id: int) -> list[list[int]]:
    out = []
    for row in seqs.tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


@torch.no_grad()
def greedy(
    model: GNMT, src: Tensor, src_len: Tensor, max_lens: Tensor, ids: tuple[int, int, int]
) -> list[list[int]]:
    """The most likely next token at every step; token ids without BOS/EOS per sentence.
    ``ids`` = (pad, bos, eos)."""
    pad_id, bos_id, eos_id = ids
    enc = model.encode(src, src_len)
    b = src.shape[0]
    tokens = torch.full((b,), bos_id, dtype=torch.int64, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    out, state = [], None
    for t in range(int(max_lens.max())):
        logp, state = _step(model, tokens, state, enc)
        tokens = _restrict(logp, t, max_lens, ids).argmax(dim=-1)
        tokens = tokens.masked_fill(done, pad_id)
        out.append(tokens)
        done |= tokens == eos_id
        if done.all():
            break
    return _strip(torch.stack(out, dim=1).cpu(), eos_id)


def _reorder(state: State, index: Tensor) -> State:
    return [(h.index_select(1, index), c.index_select(1, index)) for h, c in state]


@torch.no_grad()
def beam_search(
    model: GNMT,
    src: Tensor,
    src_len: Tensor,
    max_lens: Tensor,
    ids: tuple[int, int, int],
    beam: int = 5,
    alpha: float = 0.6,
) -> list[list[int]]:
    """The best hypothesis under GNMT's length-normalised score, for every sentence."""
    pad_id, bos_id, eos_id = ids
    b, k, dev = src.shape[0], int(beam), src.device
    memory, keys, mask = model.encode(src, src_len)
    enc = tuple(x.repeat_interleave(k, dim=0) for x in (memory, keys, mask))
    limits = max_lens.repeat_interleave(k)
    score = torch.full((b, k), NEG_INF, device=dev)
    score[:, 0] = 0.0  # one live hypothesis at first, so the beam does not fill with copies
    length = torch.zeros((b, k), dtype=torch.int64, device=dev)
    done = torch.zeros((b, k), dtype=torch.bool, device=dev)
    tokens = torch.full((b * k,), bos_id, dtype=torch.int64, device=dev)
    history = torch.empty((b, k, 0), dtype=torch.int64, device=dev)
    state, base = None, torch.arange(b, device=dev)[:, None] * k
    for t in range(int(max_lens.max())):
        logp, state = _step(model, tokens, state, enc)
        logp = _restrict(logp, t, limits, ids).view(b, k, -1)
        # a finished hypothesis continues only with PAD, at no cost and no length
        frozen = torch.full_like(logp[0, 0], NEG_INF)
        frozen[pad_id] = 0.0
        logp = torch.where(done[..., None], frozen, logp)
        cand = score[..., None] + logp
        cand_len = (length + (~done).long())[..., None].expand_as(cand)
        ranked = (cand / length_penalty(cand_len, alpha)).view(b, -1)
        top = ranked.topk(k, dim=-1).indices  # [b, k], best first
        src_beam, token = top // logp.shape[-1], top % logp.shape[-1]
        score = cand.view(b, -1).gather(1, top)
        length = cand_len.reshape(b, -1).gather(1, top)
        done = done.gather(1, src_beam) | (token == eos_id)
        history = torch.cat(
            [history.gather(1, src_beam[..., None].expand_as(history)), token[..., None]], 2
        )
        state = _reorder(state, (base + src_beam).view(-1))
        tokens = token.view(-1)
        if done.all():
            break
    return _strip(history[:, 0].cpu(), eos_id)
