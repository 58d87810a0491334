"""Fused runs (legw_repro/loop/fused.py, legw_repro/tasks/common/fused.py): the stacked LSTM equals nn.LSTM per member, and every member of
a fused group equals its solo run (the project's own Trainer step) at every step, on MNIST and
PTB; a diverging member stops alone (records, resume: tests/test_fused_runs.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from legw_repro.bench.fused import main
from legw_repro.config.spec import build_spec
from legw_repro.loop.distributed import DistInfo
from legw_repro.loop.fused import FusedGroup, NotFusable
from legw_repro.loop.trainer import Trainer
from legw_repro.tasks.common.fused import fused_forward
from legw_repro.tasks.common.stacked_lstm import stacked_lstm
from legw_repro.tasks.mnist.task import MNISTTask
from legw_repro.tasks.ptb.task import PTBTask
from tests.helpers import make_cfg

#: fp32 tolerance of a member against its solo run (batched matmuls sum in another order)
ATOL = 2e-5

MNIST = [
    "task=mnist",
    "scale=smoke",
    "task.max_train_items=256",
    "task.max_eval_items=100",
    "batch_size=32",
    "epochs=1",
]
PTB = [
    "task=ptb",
    "scale=smoke",
    "task.max_train_tokens=3000",
    "task.max_eval_tokens=500",
    "batch_size=8",
    "epochs=2",
]
KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
#: (policy, seed) of the members: two seeds of one policy and another policy
GRID = [("sqrt_legw", 0), ("sqrt_legw", 1), ("linear", 0)]


def _setup(base: list[str], data_dir, policy: str, seed: int, *extra: str):
    cfg = make_cfg(*base, f"data_dir={data_dir}", f"policy={policy}", f"seed={seed}", *extra)
    cls = MNISTTask if cfg.task.name == "mnist" else PTBTask
    return build_spec(cfg), cls(cfg, DistInfo())


def _solo(base, data_dir, policy, seed, steps, *extra):
    """The solo run's per-step losses and final parameters, stepped by Trainer.eager_step."""
    spec, task = _setup(base, data_dir, policy, seed, *extra)
    trainer = Trainer(spec, task, DistInfo(), record=None, progress=False)
    losses: list[float] = []
    while len(losses) < steps:
        epoch, start = divmod(len(losses), task.steps_per_epoch)
        if start == 0:
            trainer.carry = task.init_carry(trainer.model)
        for micro in task.train_batches(epoch, start):
            losses.append(trainer.eager_step(micro).item())
            if trainer.diverged(losses[-1], len(losses)):  # the solo run stops here
                return losses, {}
            if len(losses) >= steps:
                break
    return losses, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _member(spec, task) -> Trainer:
    return Trainer(spec, task, DistInfo(), record=None, progress=False)


def _group(base, data_dir, grid, *extra) -> FusedGroup:
    members = [_member(*_setup(base, data_dir, p, s, *extra)) for p, s in grid]
    return FusedGroup(members, fused_forward(members[0].model), stacked=True)  # the GPU's path


def _assert_equal_to_solo(group, base, data_dir, grid, steps, *extra):
    for i, (policy, seed) in enumerate(grid):
        member, got = group.members[i], group.losses[i]
        losses, params = _solo(base, data_dir, policy, seed, steps, *extra)
        assert len(got) == len(losses) == steps
        assert torch.allclose(torch.tensor(got), torch.tensor(losses), atol=ATOL, rtol=0)
        for name, value in member.model.state_dict().items():
            assert torch.allclose(value, params[name], atol=ATOL, rtol=0), (policy, seed, name)


@pytest.mark.parametrize("layers", [1, 2])
def test_stacked_lstm_equals_nn_lstm_per_member(layers):
    torch.manual_seed(0)
    n, t, b, i, h = 3, 5, 4, 6, 8
    lstms = [nn.LSTM(i, h, num_layers=layers) for _ in range(n)]
    x = torch.randn(n, t, b, i)
    h0, c0 = torch.randn(n, layers, b, h), torch.randn(n, layers, b, h)
    stacks = [
        tuple(
            torch.stack([getattr(m, f"{kind}_l{k}").detach() for m in lstms]).requires_grad_()
            for kind in KINDS
        )
        for k in range(layers)
    ]
    out, hn, cn = stacked_lstm(x, h0, c0, stacks)
    (out.square().sum() + hn.sum() + cn.sum()).backward()
    for j, m in enumerate(lstms):
        ref, (rh, rc) = m(x[j], (h0[j], c0[j]))
        (ref.square().sum() + rh.sum() + rc.sum()).backward()
        assert torch.allclose(out[j], ref, atol=1e-6)
        assert torch.allclose(hn[j], rh, atol=1e-6) and torch.allclose(cn[j], rc, atol=1e-6)
        for k in range(layers):
            for s, kind in zip(stacks[k], KINDS, strict=True):
                assert torch.allclose(s.grad[j], getattr(m, f"{kind}_l{k}").grad, atol=1e-5)


def test_mnist_members_equal_their_solo_runs(shared_data_dir):
    group = _group(MNIST, shared_data_dir, GRID)
    group.run(6)
    _assert_equal_to_solo(group, MNIST, shared_data_dir, GRID, 6)


@pytest.mark.slow
def test_ptb_members_equal_their_solo_runs_across_an_epoch(shared_data_dir):
    group = _group(PTB, shared_data_dir, GRID)
    steps = group.spe + 3  # the hidden state is carried, then reset at the epoch's end
    group.run(steps)
    _assert_equal_to_solo(group, PTB, shared_data_dir, GRID, steps)


@pytest.mark.slow
def test_a_diverging_member_stops_alone(shared_data_dir):
    blowup = ("task.sgd.base_lr=9e5", "task.sgd.clip=0", "epochs=3")  # 24 steps
    members = [_member(*_setup(MNIST, shared_data_dir, p, s, "epochs=3")) for p, s in GRID[:2]]
    members.append(_member(*_setup(MNIST, shared_data_dir, "linear", 0, *blowup)))
    group = FusedGroup(members, fused_forward(members[0].model), stacked=True)
    group.run(24)  # the divergence rule looks at 20 steps
    why, bad = group.stopped[2], group.losses[2]
    assert why and "at step" in why and len(bad) < 24
    solo_losses, _ = _solo(MNIST, shared_data_dir, "linear", 0, 24, *blowup)
    assert len(bad) == len(solo_losses)  # it stopped at the step its solo run did
    group.members, group.losses = group.members[:2], group.losses[:2]
    _assert_equal_to_solo(group, MNIST, shared_data_dir, GRID[:2], 24, "epochs=3")


def test_dropout_is_refused_in_one_line(shared_data_dir):
    with pytest.raises(NotFusable, match="dropout=0.5"):
        _group(PTB, shared_data_dir, GRID[:1], "task.model.dropout=0.5")


@pytest.mark.slow
def test_bench_prints_separate_and_fused_rates(shared_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("LEGW_DATA_DIR", str(shared_data_dir))
    main(["--members", "1,2", "--steps", "1", "--warmup", "1", "--scale", "smoke"])
    rows = capsys.readouterr().out.strip().splitlines()[-2:]
    assert [r.split()[0] for r in rows] == ["1", "2"]
    assert all(float(x) > 0 for r in rows for x in r.split()[1:])


def test_the_output_layer_batched_equals_member_by_member():
    # a GPU computes all members' logits in one batched matmul, a CPU member by member: the
    # same losses and gradients (the GPU's branch, run here on the CPU)
    from legw_repro.tasks.common.fused import _head_means

    torch.manual_seed(0)
    n, m, h, v = 3, 7, 5, 11
    x = torch.randn(n, m, h)
    y = torch.randint(0, v, (n, m))
    out = {}
    for batched in (True, False):
        stacks = {
            "dec.weight": torch.randn(n, v, h, generator=torch.Generator().manual_seed(1)),
            "dec.bias": torch.randn(n, v, generator=torch.Generator().manual_seed(2)),
        }
        for t in stacks.values():
            t.requires_grad_()
        losses = _head_means(stacks, "dec", x, y, batched)
        losses.sum().backward()
        out[batched] = (losses.detach(), *(t.grad for t in stacks.values()))
    for a, b in zip(out[True], out[False], strict=True):
        assert torch.allclose(a, b, atol=1e-6)
