"""The LEGW grid sweeper, a Hydra sweeper plugin (`hydra/sweeper=legw`, set by configs/experiment)."""
