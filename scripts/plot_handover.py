"""Draw the three warmup-to-decay hand-overs of legw_repro.schedule at k = 1 and k = 64.

The figure of results/schedules/README.md (the hand-over forms): MNIST's recipe (base LR 0.1 at batch 128,
warmup 5/64 epoch, linear decay to 0 over a 10-epoch budget) under sqrt-LEGW. At k = 1 the
warmup is a sliver and the three forms coincide; at k = 64 the warmup is half the budget and
they differ: ``product`` tops out at half its peak, ``absolute`` drops at the warmup's end,
``shifted`` reaches the peak and decays over the remaining epochs. The legend gives each
curve's highest and mean LR (``schedule_summary``).

    python scripts/plot_handover.py            # writes results/schedules/handover.svg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from legw_repro.analysis.figure import save_svg
from legw_repro.schedule import HANDOVERS, ScheduleSpec, learning_rate, schedule_summary

REPO = Path(__file__).resolve().parents[1]
RECIPE = dict(base_lr=0.1, base_batch_size=128, warmup_epochs=5 / 64, epochs=10.0)
DECAY = dict(decay="polynomial", power=1.0, end_factor=0.0)
STYLES = {"product": ("C0", "-"), "absolute": ("C3", "--"), "shifted": ("C2", ":")}


def spec(k: int, handover: str) -> ScheduleSpec:
    return ScheduleSpec.of(**RECIPE, **DECAY, batch_size=128 * k, handover=handover)


def draw(ks: tuple[int, ...] = (1, 64)) -> Figure:
    fig = Figure(figsize=(4.2 * len(ks), 3.4))
    axes = fig.subplots(1, len(ks), sharey=True)
    epochs = np.linspace(0.0, RECIPE["epochs"], 2001)
    for ax, k in zip(np.atleast_1d(axes), ks, strict=True):
        for handover in HANDOVERS:
            s = spec(k, handover)
            info = schedule_summary(s)
            colour, dash = STYLES[handover]
            ax.plot(
                epochs,
                [learning_rate(float(e), s) for e in epochs],
                color=colour,
                linestyle=dash,
                linewidth=1.8,
                label=f"{handover}: max {info['max_lr']:.2f}, mean {info['mean_lr']:.2f}",
            )
        ax.set_title(f"k = {k} (batch {128 * k}), warmup {RECIPE['warmup_epochs'] * k:.3g} epochs")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8, loc="upper right" if k == 1 else "lower center")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("learning rate")
    fig.suptitle("sqrt-LEGW on MNIST's recipe: how the warmup hands over to a linear decay")
    fig.tight_layout()
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "results" / "schedules" / "handover.svg"))
    out = save_svg(draw(), ap.parse_args().out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
