"""The benchmark harness behind `scripts/bench.py` (`make bench`): the suite's trainer against a
bare PyTorch loop on the same model, data and optimizer, alternated in short blocks in one
process so that their ratio survives a noisy machine.

Modules: `stats` (blocks -> ratios and spreads, pure), `bare` (the bare loop), `alternate`
(driving the real trainer and the bare loop in turns), `flops` (FLOPs per item, measured peak),
`report` (CSV rows and the printed table).
"""
