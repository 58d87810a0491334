"""One run's life around the loop: its directory and lock, start/resume/skip/refuse, the run
record (config.yaml, metrics.jsonl, summary.json), checkpoints, preemption, and the launch
environment of a multi-task job."""
