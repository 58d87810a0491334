"""An LSTM image classifier for MNIST: the image is read as a sequence, the last hidden state
of the top layer -> linear -> 10 class logits.

Two ways of reading the image (``input``):

* ``row``   (default; the LEGW paper's MNIST model, after the TensorFlow RNN tutorial): 28 steps,
  one image row of 28 pixels per step;
* ``pixel`` (pixel-by-pixel MNIST, Le et al. 2015): 784 steps of one pixel each. Much slower
  (28x the sequential steps) and harder; for GPU experiments.

Inputs are float images ``[B, 28, 28]`` already scaled and normalised by the task. ``nn.LSTM``
(batch_first) is used as is, so CUDA runs get the fused cuDNN kernel. Weights use PyTorch's
default LSTM initialisation; ``forget_bias`` is added to the forget-gate bias (TensorFlow's
BasicLSTMCell, which the paper's tutorial model used, adds 1.0).

CPU speed: oneDNN's LSTM backward becomes memory-bound beyond a few hundred rows (measured on 2
Xeon cores, one thread: ~7k images/s at batch 128 but ~3.5k at 8192). On the CPU the batch is
therefore run through the LSTM in chunks of ``cpu_chunk`` rows (0: off). Rows are independent,
so this is the same function and the same gradient (up to float summation order); on CUDA the
whole batch goes to cuDNN in one call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INPUTS = ("row", "pixel")


class MNISTLSTM(nn.Module):
    def __init__(
        self,
        input: str = "row",
        hidden: int = 128,
        num_layers: int = 1,
        num_classes: int = 10,
        forget_bias: float = 0.0,
        image_size: int = 28,
        cpu_chunk: int = 0,
    ) -> None:
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"task.model.input={input!r} is unknown; choose one of {list(INPUTS)}")
        self.input = input
        self.image_size = image_size
        self.step_size = image_size if input == "row" else 1
        self.hidden = hidden
        self.num_layers = num_layers
        self.cpu_chunk = int(cpu_chunk)
        self.lstm = nn.LSTM(self.step_size, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)
        if forget_bias:
            with torch.no_grad():
                for layer in range(num_layers):
                    # gate order in nn.LSTM biases: input, forget, cell, output
                    getattr(self.lstm, f"bias_hh_l{layer}")[hidden : 2 * hidden] += forget_bias

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[B, 28, 28]`` float images -> ``[B, num_classes]`` logits."""
        seq = x.reshape(x.shape[0], -1, self.step_size)  # [B, T, step_size]
        chunk = self.cpu_chunk
        if seq.device.type == "cpu" and 0 < chunk < seq.shape[0]:
            last = torch.cat([self.lstm(part)[1][0][-1] for part in seq.split(chunk)])
        else:
            last = self.lstm(seq)[1][0][-1]
        return self.head(last)
