"""Sweeps: an experiment expanded into points (grid.py), the plan of what to train and what is
finished or a k=1 alias (plan.py, sweep_io.py), its price (cost.py, calibrate.py,
plan_report.py), and the tuned-LR oracle's choice (oracle.py)."""
