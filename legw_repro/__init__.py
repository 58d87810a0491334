"""legw-repro: reproduction suite for LEGW (linear-epoch gradual warmup).

You et al., "Large-Batch Training for LSTM and Beyond", SC'19.
"""

__version__ = "0.1.0"
