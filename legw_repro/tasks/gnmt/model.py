"""GNMT-lite: the shape of Google's NMT (Wu et al. 2016) in its "v2" form (the MLPerf reference),
scaled down by config.

Encoder: layer 1 is a bidirectional LSTM (run on packed sequences, so the backward direction
starts at each sentence's real last token), then unidirectional layers; residual connections
from the 3rd layer up. Decoder: the first LSTM layer reads the target embeddings; its output is
the attention query, and the attention context is concatenated to the input of every later
layer (GNMT v2: no input feeding, so every layer is a whole-sequence ``nn.LSTM`` -- cuDNN on
CUDA); residual connections from the 3rd layer up; a linear projection to the vocabulary,
optionally tied to the target embedding. Dropout on every layer's input.

Attention: Luong's multiplicative ("general") score q . W k, or GNMT's normalized Bahdanau
(additive, ``g * v / |v|`` scoring vector with a bias; used at the paper scale for fidelity).
Why Luong by default: at GNMT's small uniform init, tanh(W_q q + W_k k + b) is nearly linear,
so the additive score is nearly v . W_k k -- independent of the query -- until the weights grow;
on a sequence-reversal check (64 units, Adam 3e-3, 400 steps) Luong reverses 95% of sequences
exactly and normalized Bahdanau none. A CPU budget of a few thousand steps cannot wait for
that; Luong is also ~20% cheaper per step at 128 units. Padded source positions get a score of -inf, so their
attention weight is exactly 0. Unidirectional layers run on the padded batch: an LSTM is causal,
so padding after a sentence never changes its real positions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["ATTENTIONS", "GNMT", "State"]

ATTENTIONS = ("bahdanau", "luong")
State = list[tuple[Tensor, Tensor]]  # (h, c) of every decoder layer, each [1, b, hidden]


class NormalizedBahdanau(nn.Module):
    """score(q, k) = g * (v / |v|) . tanh(W_q q + W_k k + b) (GNMT's normalized attention)."""

    def __init__(self, query_dim: int, key_dim: int, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, dim, bias=False)
        self.key = nn.Linear(key_dim, dim, bias=False)
        self.v = nn.Parameter(torch.empty(dim))
        self.g = nn.Parameter(torch.empty(()))
        self.b = nn.Parameter(torch.empty(dim))

    def reset_special(self) -> None:
        nn.init.constant_(self.g, 1.0 / math.sqrt(self.v.numel()))
        nn.init.zeros_(self.b)

    def keys(self, memory: Tensor) -> Tensor:
        return self.key(memory)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """[b, Tq, Tk] from query [b, Tq, dq] and projected keys [b, Tk, dim]."""
        q = self.query(query)
        v = self.g * self.v / self.v.norm()
        return torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1) + self.b) @ v


class Luong(nn.Module):
    """score(q, k) = q . (W k) (Luong et al.'s "general" attention)."""

    def __init__(self, query_dim: int, key_dim: int, dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(key_dim, query_dim, bias=False)

    def reset_special(self) -> None:
        pass

    def keys(self, memory: Tensor) -> Tensor:
        return self.key(memory)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return query @ keys.transpose(1, 2)


def attend(scores: Tensor, mask: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
    """Context [b, Tq, d] and weights [b, Tq, Tk]; ``mask`` [b, Tk] is True on real tokens, and
    padded positions get weight exactly 0."""
    weights = torch.softmax(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), dim=-1)
    return weights @ memory, weights


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


class GNMT(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        *,
        embed: int = 256,
        hidden: int = 256,
        encoder_layers: int = 3,
        decoder_layers: int = 3,
        attention: str = "bahdanau",
        attention_dim: int | None = None,
        dropout: float = 0.2,
        share_embeddings: bool = True,
        tie_output: bool = True,
        init_range: float = 0.1,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        _check(
            attention in ATTENTIONS,
            f"task.model.attention={attention!r} is unknown; choose one of {list(ATTENTIONS)}",
        )
        _check(
            encoder_layers >= 2 and decoder_layers >= 2,
            f"task.model.encoder_layers={encoder_layers}, decoder_layers={decoder_layers}: GNMT "
            "needs at least 2 of each (a bidirectional layer then unidirectional ones; an "
            "attention layer then one it feeds)",
        )
        _check(
            not tie_output or embed == hidden,
            f"task.model.tie_output=true needs embed == hidden (got {embed} and {hidden}); "
            "set them equal or tie_output=false",
        )
        self.pad_id, self.hidden, self.init_range = pad_id, hidden, init_range
        self.src_embed = nn.Embedding(vocab_size, embed, padding_idx=pad_id)
        self.tgt_embed = (
            self.src_embed
            if share_embeddings
            else nn.Embedding(vocab_size, embed, padding_idx=pad_id)
        )
        self.drop = nn.Dropout(dropout)
        self.enc_bi = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.enc = nn.ModuleList(
            nn.LSTM(2 * hidden if i == 0 else hidden, hidden, batch_first=True)
            for i in range(encoder_layers - 1)
        )
        self.dec_att = nn.LSTM(embed, hidden, batch_first=True)
        cls = NormalizedBahdanau if attention == "bahdanau" else Luong
        self.attention = cls(hidden, hidden, attention_dim or hidden)
        self.dec = nn.ModuleList(
            nn.LSTM(2 * hidden, hidden, batch_first=True) for _ in range(decoder_layers - 1)
        )
        self.out = nn.Linear(hidden, vocab_size)
        if tie_output:
            self.out.weight = self.tgt_embed.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-init_range, init_range) everywhere (GNMT / MLPerf), the pad embedding 0."""
        for p in self.parameters():
            nn.init.uniform_(p, -self.init_range, self.init_range)
        self.attention.reset_special()
        with torch.no_grad():
            self.src_embed.weight[self.pad_id].zero_()
            self.tgt_embed.weight[self.pad_id].zero_()

    # -- encoder ----------------------------------------------------------------------------
    def encode(self, src: Tensor, src_len: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(memory [b, S, hidden], attention keys, mask [b, S] True on real tokens)."""
        x = self.drop(self.src_embed(src))
        packed = pack_padded_sequence(x, src_len.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.enc_bi(packed)
        out, _ = pad_packed_sequence(y, batch_first=True, total_length=src.shape[1])
        for i, lstm in enumerate(self.enc):
            y, _ = lstm(self.drop(out))
            out = y + out if i >= 1 else y  # enc[i] is layer i + 2: residual from layer 3
        mask = torch.arange(src.shape[1], device=src.device) < src_len.to(src.device)[:, None]
        return out, self.attention.keys(out), mask

    # -- decoder ----------------------------------------------------------------------------
    def decode(
        self, tgt_in: Tensor, state: State | None, memory: Tensor, keys: Tensor, mask: Tensor
    ) -> tuple[Tensor, State, Tensor]:
        """Logits [b, T, V], the new state, and attention weights [b, T, S] for target inputs
        ``tgt_in`` [b, T] (teacher forcing, or T = 1 per step when decoding)."""
        states = state or [None] * (1 + len(self.dec))
        h, s0 = self.dec_att(self.drop(self.tgt_embed(tgt_in)), states[0])
        context, weights = attend(self.attention.scores(h, keys), mask, memory)
        new_state = [s0]
        for i, lstm in enumerate(self.dec):
            y, s = lstm(self.drop(torch.cat([h, context], dim=-1)), states[i + 1])
            h = y + h if i >= 1 else y  # dec[i] is layer i + 2: residual from layer 3
            new_state.append(s)
        return self.out(self.drop(h)), new_state, weights

    def forward(self, src: Tensor, src_len: Tensor, tgt_in: Tensor) -> Tensor:
        memory, keys, mask = self.encode(src, src_len)
        logits, _, _ = self.decode(tgt_in, None, memory, keys, mask)
        return logits
