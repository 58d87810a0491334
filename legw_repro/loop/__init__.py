"""The training loop and its step machinery: Trainer, optimizer, on-device loss log, the
non-finite record, the CUDA-graph step, and DDP helpers. Knows tasks only through
legw_repro.tasks.base.Task."""
