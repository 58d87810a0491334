#!/usr/bin/env python
"""Over- or under-fitting? The token-mean NLL of a GNMT-lite run's last checkpoint on its
training and validation splits, in eval mode (no dropout, no label smoothing).

    python scripts/gnmt_fit.py runs/gnmt-tune/cpu-base256-adam-0.004-e20

The training loss in metrics.jsonl cannot answer this: it carries dropout and label smoothing,
and each step sees one length bucket. Here both splits go through the same function as the
per-epoch validation loss (`GNMTTask.nll`), so the validation figure equals the run's last
one. A low training NLL beside a high validation one says regularize; both high says the
model needs capacity or steps. The whole training split costs a forward pass (~2-3 minutes at
256 units on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from legw_repro.config.validate import task_class  # noqa: E402
from legw_repro.loop import checkpoint, distributed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument(
        "--splits", default="train,valid", help="comma-separated (default: %(default)s)"
    )
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    args = ap.parse_args()
    cfg_path = args.run_dir / "config.yaml"
    if not cfg_path.is_file():
        sys.exit(f"{cfg_path} does not exist: give the directory of a GNMT-lite run")
    torch.set_num_threads(args.threads)
    cfg = OmegaConf.load(cfg_path)
    if cfg.task.name != "gnmt":
        sys.exit(f"{args.run_dir} is a {cfg.task.name!r} run; this script reads GNMT-lite runs")
    cfg.device = "cpu"
    task = task_class(cfg)(cfg, distributed.setup("cpu"))
    model = task.build_model()
    used = checkpoint.load(
        args.run_dir / "checkpoints", lambda ck: model.load_state_dict(ck["model"])
    )
    if used is None:
        sys.exit(f"{args.run_dir}/checkpoints has no checkpoint to read")
    out = {"run_dir": str(args.run_dir), "checkpoint": used.name}
    for split in args.splits.split(","):
        out[f"{split}_nll"] = round(task.nll(model, split), 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
