#!/usr/bin/env python
"""Trainer overhead benchmark: tokens/s of `legw_repro.train` against a bare PyTorch loop.

Both train the same PTB LSTM LM (same init, data windows, SGD + clip) for the same steps on this
machine; the trainer's figure includes everything it does per step (schedule, metrics row,
progress bar, divergence check, checkpoint bookkeeping), measured from its own metrics.jsonl
timestamps. Runs alternate (bare, trainer, bare, ...) and the median is reported.

    python scripts/bench.py --hidden 128 --batch-size 20 --steps 300 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from legw_repro.data.download import resolve_data_dir  # noqa: E402
from legw_repro.data.ptb import batchify, load_ptb, window  # noqa: E402
from legw_repro.models.lm import SIZES, LSTMLanguageModel  # noqa: E402


def bare_loop(args, corpus) -> float:
    torch.manual_seed(0)
    size = SIZES[args.size]
    bptt = size.bptt
    model = LSTMLanguageModel(len(corpus.vocab), args.hidden or size.hidden, 2, 0.0, 0.1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    src = batchify(corpus.train, args.batch_size)
    h = model.init_hidden(args.batch_size)
    t0 = None
    for i in range(args.warmup_steps + args.steps):
        if i == args.warmup_steps:
            t0 = time.perf_counter()
        x, y = window(src, i, bptt)
        opt.zero_grad(set_to_none=True)
        out, h = model(x, h)
        h = tuple(t.detach() for t in h)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        loss.item()  # the trainer reads the loss every step too; keep the comparison fair
    dt = time.perf_counter() - t0
    return args.steps * args.batch_size * bptt / dt


def trainer_loop(args, corpus) -> float:
    from hydra import compose, initialize_config_dir

    from legw_repro.train import run

    n_rows = len(corpus.train) // args.batch_size
    bptt = SIZES[args.size].bptt
    spe = (n_rows - 1) // bptt
    total = args.warmup_steps + args.steps
    overrides = [
        "task=ptb",
        f"task.model.size={args.size}",
        f"batch_size={args.batch_size}",
        f"epochs={total / spe}",
        "task.schedule.warmup_epochs=0",
        "task.schedule.decay=constant",
        "task.max_eval_tokens=2000",
        f"data_dir={args.data_dir}",
        "wandb.mode=disabled",
        "eval_every_epochs=1000",
    ]
    if args.hidden:
        overrides.append(f"task.model.hidden={args.hidden}")
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
        cfg = compose(config_name="train", overrides=overrides)
    with tempfile.TemporaryDirectory() as d:
        run(cfg, Path(d))
        rows = [json.loads(x) for x in (Path(d) / "metrics.jsonl").read_text().splitlines()]
    t = {r["step"]: r["time"] for r in rows if r["kind"] == "train"}
    dt = t[total] - t[args.warmup_steps]
    return args.steps * args.batch_size * bptt / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="small")
    ap.add_argument("--hidden", type=int, default=0, help="override the size's hidden units")
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    args.data_dir = str(resolve_data_dir(args.data_dir))
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_ptb(args.data_dir)
    bare, trainer = [], []
    for r in range(args.repeats):
        bare.append(bare_loop(args, corpus))
        trainer.append(trainer_loop(args, corpus))
        print(
            f"repeat {r + 1}: bare {bare[-1]:.0f} tok/s, trainer {trainer[-1]:.0f} tok/s",
            flush=True,
        )
    b, t = statistics.median(bare), statistics.median(trainer)
    print(
        f"PTB LM size={args.size} hidden={args.hidden or SIZES[args.size].hidden} "
        f"batch={args.batch_size} steps={args.steps} threads={torch.get_num_threads()}\n"
        f"bare loop: {b:.0f} tokens/s (median of {args.repeats})\n"
        f"trainer:   {t:.0f} tokens/s (median of {args.repeats})\n"
        f"trainer overhead: {100 * (b - t) / b:+.1f}%"
    )


if __name__ == "__main__":
    main()
