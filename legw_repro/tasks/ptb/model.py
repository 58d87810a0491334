"""The Zaremba et al. (2014) word-level LSTM language model.

"Recurrent Neural Network Regularization", arXiv:1409.2329: embedding -> 2-layer LSTM -> linear
decoder, dropout on the non-recurrent connections only (before the LSTM, between layers, and before
the decoder), parameters initialised uniformly in [-init_scale, init_scale]. nn.LSTM is used as is,
so CUDA runs get the fused cuDNN kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LMSize:
    hidden: int
    dropout: float
    init_scale: float
    bptt: int


# The three published configurations (Zaremba et al. 2014, Section 4.1). bptt is the
# paper's number of unrolled steps: 20 for small, 35 for medium and large.
SIZES: dict[str, LMSize] = {
    "tiny": LMSize(hidden=32, dropout=0.0, init_scale=0.1, bptt=20),  # tests and smoke runs only
    "small": LMSize(hidden=200, dropout=0.0, init_scale=0.1, bptt=20),
    "medium": LMSize(hidden=650, dropout=0.5, init_scale=0.05, bptt=35),
    "large": LMSize(hidden=1500, dropout=0.65, init_scale=0.04, bptt=35),
}

Hidden = tuple[Tensor, Tensor]


class LSTMLanguageModel(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        hidden: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        init_scale: float = 0.1,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden = hidden
        self.num_layers = num_layers
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.drop = nn.Dropout(dropout)
        # nn.LSTM applies dropout between layers, i.e. on the non-recurrent connections only.
        self.lstm = nn.LSTM(hidden, hidden, num_layers=num_layers, dropout=dropout)
        self.decoder = nn.Linear(hidden, vocab_size)
        for p in self.parameters():
            nn.init.uniform_(p, -init_scale, init_scale)
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    def init_hidden(self, batch_size: int, device: torch.device | str = "cpu") -> Hidden:
        shape = (self.num_layers, batch_size, self.hidden)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def forward(self, x: Tensor, hidden: Hidden) -> tuple[Tensor, Hidden]:
        """x: [T, B] token ids -> logits [T, B, V] and the new hidden state."""
        emb = self.drop(self.embedding(x))
        out, hidden = self.lstm(emb, hidden)
        return self.decoder(self.drop(out)), hidden
