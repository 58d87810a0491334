"""Data helpers shared by the tasks: checked downloads (download.py) and sequence batching
(seq_batches.py)."""
