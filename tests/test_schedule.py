"""Tests for legw_repro.schedule: the LEGW maths, the decays, the PyTorch scheduler, errors."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from legw_repro.schedule import (
    DECAYS,
    HANDOVERS,
    LEGWScheduler,
    ScheduleSpec,
    learning_rate,
    schedule_summary,
    validate_schedule,
)

REPO = Path(__file__).resolve().parents[1]

BASE = dict(base_lr=0.5, base_batch_size=20, batch_size=20, warmup_epochs=1.0, epochs=40)

# One valid parameter set per decay, reused wherever a test loops over decays.
DECAY_PARAMS: dict[str, dict] = {
    "constant": {},
    "exponential": {"gamma": 0.8, "start_epoch": 0.5},
    "polynomial": {"power": 2.0, "end_factor": 0.1},
    "cosine": {"end_factor": 0.05},
    "multistep": {"milestones": [10, 20, 30], "gamma": 0.5},
}
CONTINUOUS_DECAYS = ["constant", "exponential", "polynomial", "cosine"]
RULE_SCALE = {"sqrt": math.sqrt, "linear": lambda k: k, "none": lambda k: 1.0}


def kw(**over):
    return {**BASE, **over}


# --------------------------------------------------------------------------- the LEGW maths


@pytest.mark.parametrize("decay", DECAYS)
def test_k1_same_curve_for_every_rule_and_warmup(decay):
    epochs = [0, 0.25, 0.5, 1, 1.5, 7.3, 10, 25, 39.9, 40]
    curves = {
        (r, w): [
            learning_rate(e, **kw(rule=r, warmup=w, decay=decay, **DECAY_PARAMS[decay]))
            for e in epochs
        ]
        for r in ("sqrt", "linear", "none")
        for w in ("legw", "fixed")
    }
    first = next(iter(curves.values()))
    assert all(c == pytest.approx(first, rel=1e-15, abs=0) for c in curves.values())


@pytest.mark.parametrize("rule", ["sqrt", "linear", "none"])
@pytest.mark.parametrize("k", [1, 2, 8, 32])
def test_peak_scales_with_rule(rule, k):
    args = kw(batch_size=20 * k, warmup_epochs=0.5, epochs=100, rule=rule)
    expected = 0.5 * RULE_SCALE[rule](k)
    assert schedule_summary(**args)["peak_lr"] == pytest.approx(expected)
    assert schedule_summary(**args)["k"] == k
    # constant decay: the plateau after the warmup is the peak
    assert learning_rate(0.5 * k, **args) == pytest.approx(expected)
    assert learning_rate(100, **args) == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 2, 4, 16, 64])
def test_legw_warmup_ends_at_k_times_warmup_epochs(k):
    args = kw(batch_size=20 * k, warmup_epochs=0.25, epochs=20)
    peak = 0.5 * math.sqrt(k)
    W = 0.25 * k
    assert schedule_summary(**args)["warmup_epochs"] == pytest.approx(W)
    assert learning_rate(0, **args) == 0.0
    assert learning_rate(W / 2, **args) == pytest.approx(peak / 2)
    assert learning_rate(W * 0.999, **args) < peak
    assert learning_rate(W, **args) == pytest.approx(peak)
    # fixed warmup ignores k
    fixed = kw(batch_size=20 * k, warmup_epochs=0.25, epochs=20, warmup="fixed")
    assert schedule_summary(**fixed)["warmup_epochs"] == 0.25
    assert learning_rate(0.25, **fixed) == pytest.approx(peak)


def _warmup_steps(k: int, warmup: str) -> int:
    n_samples, base_batch = 20 * 2**8, 20
    spe = n_samples // (base_batch * k)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    args = kw(batch_size=base_batch * k, warmup_epochs=0.5, epochs=40, warmup=warmup)
    sched = LEGWScheduler(opt, spe, **args)
    peak = schedule_summary(**args)["peak_lr"]
    count = 0
    while opt.param_groups[0]["lr"] < peak * (1 - 1e-12):
        count += 1
        opt.step()
        sched.step()
    return count


def test_legw_warmup_steps_same_at_every_batch_size():
    steps = {k: _warmup_steps(k, "legw") for k in (1, 2, 4, 8, 32)}
    assert set(steps.values()) == {128}  # 0.5 epoch * 256 steps per base-batch epoch
    fixed = {k: _warmup_steps(k, "fixed") for k in (1, 4, 32)}
    assert fixed == {1: 128, 4: 32, 32: 4}  # a fixed warmup in epochs shrinks in steps


@pytest.mark.parametrize("decay", CONTINUOUS_DECAYS)
@pytest.mark.parametrize("k", [1, 8])
def test_continuous_where_warmup_hands_over(decay, k):
    args = kw(batch_size=20 * k, warmup_epochs=1.0, decay=decay, **DECAY_PARAMS[decay])
    W = 1.0 * k
    peak = schedule_summary(**args)["peak_lr"]
    eps = 1e-7
    left, mid, right = (learning_rate(W + d, **args) for d in (-eps, 0.0, eps))
    assert left == pytest.approx(mid, rel=1e-5)
    assert right == pytest.approx(mid, rel=1e-5)
    assert mid <= peak


@pytest.mark.parametrize("decay", DECAYS)
def test_decay_is_the_same_at_every_batch_size_after_warmup(decay):
    """Product form: after both warmups, lr / peak is the same function of the epoch."""
    small = kw(decay=decay, **DECAY_PARAMS[decay])
    large = kw(batch_size=20 * 16, decay=decay, **DECAY_PARAMS[decay])
    p_small, p_large = (schedule_summary(**a)["peak_lr"] for a in (small, large))
    for e in [16, 17.5, 20, 29.99, 30, 35, 40]:
        assert learning_rate(e, **large) / p_large == pytest.approx(
            learning_rate(e, **small) / p_small, rel=1e-12
        )


def test_decay_before_warmup_end_caps_the_max_at_peak_times_d_of_W():
    args = kw(batch_size=20 * 8, warmup_epochs=1.0, decay="exponential", gamma=0.9)
    peak, W = 0.5 * math.sqrt(8), 8.0
    grid = [i / 100 for i in range(0, 4001)]
    top = max(learning_rate(e, **args) for e in grid)
    assert top == pytest.approx(peak * 0.9**W)
    assert learning_rate(W, **args) == pytest.approx(peak * 0.9**W)


def test_zero_warmup_starts_at_peak():
    for w in ("legw", "fixed"):
        args = kw(batch_size=80, warmup_epochs=0, warmup=w)
        assert schedule_summary(**args)["warmup_epochs"] == 0
        assert learning_rate(0, **args) == pytest.approx(1.0)  # 0.5 * sqrt(4)


# --------------------------------------------------------------------------- decay values


def test_zaremba_ptb_staircase():
    """lr 1, then halved every epoch, first halving at epoch 5 (Zaremba's Lua, max_epoch=4)."""
    args = dict(
        base_lr=1.0, base_batch_size=20, batch_size=20, warmup_epochs=0, epochs=13,
        decay="exponential", gamma=0.5, start_epoch=4, staircase=True,
    )  # fmt: skip
    expected = [1, 1, 1, 1, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125,
                0.00390625, 0.001953125]  # fmt: skip
    assert [learning_rate(e, **args) for e in range(14)] == expected
    assert learning_rate(5.99, **args) == 0.5  # staircase: flat within an epoch


def test_exponential_continuous_values():
    args = kw(warmup_epochs=0, epochs=10, decay="exponential", gamma=0.25, start_epoch=2)
    assert learning_rate(1.9, **args) == pytest.approx(0.5)
    assert learning_rate(2, **args) == pytest.approx(0.5)
    assert learning_rate(2.5, **args) == pytest.approx(0.25)  # 0.5 * 0.25**0.5
    assert learning_rate(4, **args) == pytest.approx(0.5 / 16)
    no_start = kw(warmup_epochs=0, epochs=10, decay="exponential", gamma=0.5)
    assert learning_rate(3, **no_start) == pytest.approx(0.0625)


def test_polynomial_values():
    args = kw(warmup_epochs=0, epochs=10, decay="polynomial", power=2.0, end_factor=0.1)
    assert learning_rate(0, **args) == pytest.approx(0.5)
    assert learning_rate(5, **args) == pytest.approx(0.5 * 0.325)  # 0.1 + 0.9 * 0.5**2
    assert learning_rate(10, **args) == pytest.approx(0.05)
    linear = kw(warmup_epochs=0, epochs=10, decay="polynomial")  # defaults: power 1, end 0
    assert learning_rate(2.5, **linear) == pytest.approx(0.375)
    assert learning_rate(10, **linear) == 0.0


def test_cosine_values():
    args = kw(warmup_epochs=0, epochs=10, decay="cosine")
    assert learning_rate(0, **args) == pytest.approx(0.5)
    assert learning_rate(2.5, **args) == pytest.approx(0.5 * 0.8535533905932737)
    assert learning_rate(5, **args) == pytest.approx(0.25)
    assert learning_rate(10, **args) == pytest.approx(0.0, abs=1e-15)
    floor = kw(warmup_epochs=0, epochs=10, decay="cosine", end_factor=0.2)
    assert learning_rate(5, **floor) == pytest.approx(0.5 * 0.6)
    assert learning_rate(10, **floor) == pytest.approx(0.1)


def test_multistep_values():
    args = kw(warmup_epochs=0, epochs=10, decay="multistep", milestones=[3, 6])
    values = [learning_rate(e, **args) for e in (0, 2.999, 3, 5.5, 6, 10)]
    assert values == pytest.approx([0.5, 0.5, 0.05, 0.05, 0.005, 0.005])
    half = kw(warmup_epochs=0, epochs=10, decay="multistep", milestones=(4,), gamma=0.5)
    assert learning_rate(4, **half) == pytest.approx(0.25)


def test_constant_and_warmup_values():
    args = kw(batch_size=80, warmup_epochs=0.5, epochs=10)  # k=4: W=2, peak=1
    assert [learning_rate(e, **args) for e in (0, 0.5, 1, 2, 5, 10)] == pytest.approx(
        [0, 0.25, 0.5, 1, 1, 1]
    )


@pytest.mark.parametrize("decay", DECAYS)
def test_epoch_past_end_is_clamped(decay):
    args = kw(decay=decay, **DECAY_PARAMS[decay])
    assert learning_rate(40 + 1e-9, **args) == learning_rate(40, **args)
    assert learning_rate(1000, **args) == learning_rate(40, **args)


def test_negative_or_nan_epoch_raises():
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="epoch"):
            learning_rate(bad, **BASE)


# --------------------------------------------------------------------------- the scheduler


def _opt(kind: str, params, lr: float = 0.5):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    return torch.optim.Adam(params, lr=lr)


@pytest.mark.parametrize("decay", DECAYS)
def test_scheduler_matches_learning_rate(decay):
    params = {**DECAY_PARAMS[decay], **({"milestones": [3, 7]} if decay == "multistep" else {})}
    args = kw(batch_size=40, warmup_epochs=0.7, epochs=12, decay=decay, **params)
    spe = 7
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched = LEGWScheduler(opt, spe, **args)
    got, want = [], []
    for step in range(12 * spe + 3):  # a few steps past the end: clamped, no crash
        got.append(opt.param_groups[0]["lr"])
        assert sched.get_last_lr() == [got[-1]]
        want.append(learning_rate(step / spe, **args))
        opt.step()
        sched.step()
    assert got == want
    assert got[0] == 0.0  # warmup: step 0 has lr 0 (first update is a no-op)


def test_scheduler_keeps_param_group_ratios():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.5)
    args = kw(batch_size=80, warmup_epochs=0.5, epochs=6, decay="cosine")
    sched = LEGWScheduler(opt, 5, **args)
    for step in range(30):
        lr = learning_rate(step / 5, **args)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr)
        assert opt.param_groups[1]["lr"] == pytest.approx(lr * 0.1)
        opt.step()
        sched.step()


def _train(opt_kind, n_steps, *, resume_at=None, via_bytes=False):
    """Train a tiny model n_steps; optionally checkpoint at resume_at and rebuild everything."""
    args = kw(batch_size=60, warmup_epochs=0.5, epochs=5, decay="exponential", gamma=0.7)
    spe = 6

    def build():
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 1)
        opt = _opt(opt_kind, model.parameters())
        return model, opt, LEGWScheduler(opt, spe, **args)

    model, opt, sched = build()
    g = torch.Generator().manual_seed(2)
    data = [
        (torch.randn(4, 3, generator=g), torch.randn(4, 1, generator=g)) for _ in range(n_steps)
    ]
    lrs = []
    for step, (x, y) in enumerate(data):
        if step == resume_at:
            ckpt = {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
            }
            if via_bytes:
                buf = io.BytesIO()
                torch.save(ckpt, buf)
                buf.seek(0)
                ckpt = torch.load(buf, weights_only=True)
            model, opt, sched = build()  # fresh objects: lr back at step 0's value
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["opt"])
            sched.load_state_dict(ckpt["sched"])
        lrs.append(opt.param_groups[0]["lr"])
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return lrs, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
@pytest.mark.parametrize("via_bytes", [False, True])
def test_resume_from_state_dict_equals_uninterrupted(opt_kind, via_bytes):
    lrs, params = _train(opt_kind, 40)
    lrs2, params2 = _train(opt_kind, 40, resume_at=17, via_bytes=via_bytes)
    assert lrs2 == lrs
    assert all(torch.equal(p, q) for p, q in zip(params, params2, strict=True))


def test_resume_scheduler_alone_into_fresh_optimizer():
    """Without loading optimizer state, load_state_dict still puts the right lr back."""
    args = kw(batch_size=40, warmup_epochs=1, epochs=4, decay="cosine")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([{"params": [p]}, {"params": [torch.zeros(1)], "lr": 1.0}], lr=0.5)
    sched = LEGWScheduler(opt, 3, **args)
    for _ in range(5):
        opt.step()
        sched.step()
    state = sched.state_dict()
    ref = []
    for _ in range(6):
        ref.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()

    opt2 = torch.optim.Adam([{"params": [p]}, {"params": [torch.zeros(1)], "lr": 1.0}], lr=0.5)
    sched2 = LEGWScheduler(opt2, 3, **args)
    sched2.load_state_dict(state)
    got = []
    for _ in range(6):
        got.append([g["lr"] for g in opt2.param_groups])
        assert sched2.get_last_lr() == got[-1]
        opt2.step()
        sched2.step()
    assert got == ref


def test_loaded_schedule_arguments_win_over_the_constructors():
    args = kw(batch_size=40, warmup_epochs=1, epochs=4, decay="multistep", milestones=[2, 3])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched = LEGWScheduler(opt, 3, **args)
    for _ in range(4):
        opt.step()
        sched.step()
    opt2 = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched2 = LEGWScheduler(opt2, 5, **kw(decay="cosine"))
    sched2.load_state_dict(sched.state_dict())
    for step in range(4, 14):
        assert opt2.param_groups[0]["lr"] == learning_rate(step / 3, **args)
        opt2.step()
        sched2.step()


def test_scheduler_state_dict_is_plain_data():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched = LEGWScheduler(opt, 4, **kw(decay="multistep", milestones=(5, 9)))
    state = sched.state_dict()
    assert "_schedule" not in state
    assert state["schedule_kwargs"]["milestones"] == [5, 9]
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    torch.load(buf, weights_only=True)


# --------------------------------------------------------------------------- errors

BAD_INPUTS = [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -32}, "batch_size"),
    ({"base_batch_size": 0}, "base_batch_size"),
    ({"base_lr": -0.1}, "base_lr"),
    ({"base_lr": float("nan")}, "base_lr"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": -3}, "epochs"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
    ({"warmup_epochs": "1"}, "warmup_epochs"),
    ({"batch_size": 20 * 70, "epochs": 25}, r"warmup_epochs \* k = 70\.0 epochs exceeds"),
    ({"warmup_epochs": 50, "warmup": "fixed"}, "warmup_epochs = 50 epochs exceeds"),
    ({"rule": "cube"}, "rule"),
    ({"warmup": "gradual"}, "warmup"),
    ({"decay": "step"}, "decay"),
    ({"decay": "constant", "gamma": 0.5}, "gamma"),
    ({"decay": "cosine", "power": 2}, "power"),
    ({"decay": "exponential"}, "gamma"),
    ({"decay": "exponential", "gamma": 0}, "gamma"),
    ({"decay": "exponential", "gamma": -0.5}, "gamma"),
    ({"decay": "exponential", "gamma": 1.5}, "gamma"),
    ({"decay": "exponential", "gamma": 0.5, "start_epoch": -1}, "start_epoch"),
    ({"decay": "exponential", "gamma": 0.5, "start_epoch": 4000}, "start_epoch"),
    ({"decay": "exponential", "gamma": 0.5, "staircase": 1}, "staircase"),
    ({"decay": "polynomial", "power": 0}, "power"),
    ({"decay": "polynomial", "end_factor": 1.5}, "end_factor"),
    ({"decay": "cosine", "end_factor": -0.1}, "end_factor"),
    ({"decay": "multistep"}, "milestones"),
    ({"decay": "multistep", "milestones": []}, "milestones"),
    ({"decay": "multistep", "milestones": [20, 10]}, "milestones"),
    ({"decay": "multistep", "milestones": [0, 10]}, "milestones"),
    ({"decay": "multistep", "milestones": [10, 400]}, "milestones"),
    ({"decay": "multistep", "milestones": 10}, "milestones"),
    ({"decay": "multistep", "milestones": [10], "gamma": 0}, "gamma"),
]


@pytest.mark.parametrize(("over", "pattern"), BAD_INPUTS)
def test_bad_input_raises_naming_the_argument(over, pattern):
    args = kw(**over)
    # exercise the cache with a valid neighbour first: the bad one must still raise
    learning_rate(1.0, **BASE)
    for call in (
        lambda: validate_schedule(**args),
        lambda: learning_rate(1.0, **args),
        lambda: schedule_summary(**args),
        lambda: LEGWScheduler(torch.optim.SGD([torch.zeros(1)], lr=0.5), 10, **args),
    ):
        with pytest.raises(ValueError, match=pattern):
            call()


def test_warmup_too_long_message_says_how_to_fix():
    with pytest.raises(ValueError) as err:
        validate_schedule(**kw(batch_size=20 * 70, epochs=25))
    msg = str(err.value)
    assert "warmup_epochs * k = 70.0 epochs exceeds epochs=25" in msg
    assert "warmup='fixed'" in msg and "reduce warmup_epochs" in msg


def test_unknown_decay_params_are_named_with_allowed_ones():
    with pytest.raises(ValueError, match=r"\['gama'\].*allowed: \['gamma', 'milestones'\]"):
        validate_schedule(**kw(decay="multistep", milestones=[5], gama=0.5))


def test_cache_does_not_conflate_bool_and_number():
    ok = kw(decay="exponential", gamma=0.5, staircase=True)
    learning_rate(3.0, **ok)
    with pytest.raises(ValueError, match="staircase"):
        learning_rate(3.0, **{**ok, "staircase": 1})
    with pytest.raises(ValueError, match="batch_size"):
        learning_rate(3.0, **kw(batch_size=True, base_batch_size=1))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_scheduler_rejects_bad_steps_per_epoch(bad):
    with pytest.raises(ValueError, match="steps_per_epoch"):
        LEGWScheduler(torch.optim.SGD([torch.zeros(1)], lr=0.5), bad, **BASE)


def test_boundaries_are_valid():
    validate_schedule(**kw(batch_size=20 * 40, warmup_epochs=1, epochs=40))  # W == epochs
    validate_schedule(**kw(base_lr=0))
    validate_schedule(**kw(batch_size=5))  # k < 1 is allowed (smaller than the base batch)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    LEGWScheduler(opt, 3, **kw(base_lr=0))
    assert opt.param_groups[0]["lr"] == 0.0


# --------------------------------------------------------------------------- properties


@st.composite
def schedules(draw):
    decay = draw(st.sampled_from(DECAYS))
    epochs = draw(st.floats(1, 200))
    k = draw(st.sampled_from([0.5, 1, 2, 4, 16, 64]))
    warmup = draw(st.sampled_from(["legw", "fixed"]))
    w0 = draw(st.floats(0, epochs / (k if warmup == "legw" else 1)))
    params: dict = {}
    if decay == "exponential":
        params = dict(
            gamma=draw(st.floats(0.01, 1)),
            start_epoch=draw(st.floats(0, epochs)),
            staircase=draw(st.booleans()),
        )
    elif decay == "polynomial":
        params = dict(power=draw(st.floats(0.1, 5)), end_factor=draw(st.floats(0, 1)))
    elif decay == "cosine":
        params = dict(end_factor=draw(st.floats(0, 1)))
    elif decay == "multistep":
        ms = draw(st.lists(st.floats(1e-3, epochs), min_size=1, max_size=4))
        params = dict(milestones=sorted(ms), gamma=draw(st.floats(0.01, 1)))
    return dict(
        base_lr=draw(st.floats(0, 10)),
        base_batch_size=32,
        batch_size=32 * k,
        warmup_epochs=w0,
        epochs=epochs,
        rule=draw(st.sampled_from(["sqrt", "linear", "none"])),
        warmup=warmup,
        decay=decay,
        **params,
    )


@settings(max_examples=150, deadline=None)
@given(args=schedules(), frac=st.floats(0, 1.5))
def test_property_lr_between_zero_and_peak(args, frac):
    peak = schedule_summary(**args)["peak_lr"]
    lr = learning_rate(frac * args["epochs"], **args)
    assert 0.0 <= lr <= peak * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(
    args=schedules(),
    fracs=st.lists(st.floats(0, 1), min_size=2, max_size=10),
)
def test_property_warmup_non_decreasing_for_constant_decay(args, fracs):
    keep = ("base_lr", "base_batch_size", "batch_size", "warmup_epochs", "epochs", "rule", "warmup")
    args = {**{n: args[n] for n in keep}, "decay": "constant"}
    W = schedule_summary(**args)["warmup_epochs"]
    es = sorted(f * W for f in fracs)
    lrs = [learning_rate(e, **args) for e in es]
    assert all(a <= b for a, b in zip(lrs, lrs[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(k=st.sampled_from([1, 2, 4, 8, 16, 32]), w0=st.floats(0.01, 1), frac=st.floats(0, 1))
def test_property_legw_warmup_fraction_depends_on_steps_only(k, w0, frac):
    """At the same optimizer step inside the warmup, lr / peak is the same for every k."""
    n_steps_base_epoch = 1024
    step = frac * w0 * n_steps_base_epoch  # a step inside the base warmup
    small = kw(warmup_epochs=w0, epochs=40 * 32)
    large = kw(warmup_epochs=w0, epochs=40 * 32, batch_size=20 * k)
    e_small, e_large = step / n_steps_base_epoch, step / (n_steps_base_epoch / k)
    r_small = learning_rate(e_small, **small) / schedule_summary(**small)["peak_lr"]
    r_large = learning_rate(e_large, **large) / schedule_summary(**large)["peak_lr"]
    assert r_large == pytest.approx(r_small, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- docs


def test_readme_example_runs(capsys):
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Using LEGW in your own training loop")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out
    assert "'peak_lr': 0.1" in out and "'warmup_epochs': 2.0" in out


# --------------------------------------------------------------------------- hand-over forms

# MNIST-like: linear decay over a 10-epoch budget, LEGW warmup of 5 epochs at k=64 (peak 0.8).
MNIST64 = dict(
    base_lr=0.1,
    base_batch_size=128,
    batch_size=128 * 64,
    warmup_epochs=5 / 64,
    epochs=10,
    decay="polynomial",
    power=1.0,
    end_factor=0.0,
)


@pytest.mark.parametrize(
    ("handover", "epoch", "expected"),
    [
        # product: 0.8 * (e / 5) * (1 - e / 10)
        ("product", 2.5, 0.8 * 0.5 * 0.75),
        ("product", 5.0, 0.8 * 1.0 * 0.5),
        ("product", 7.5, 0.8 * 0.25),
        # absolute: 0.8 * e / 5 before W, then 0.8 * (1 - e / 10)
        ("absolute", 2.5, 0.8 * 0.5),
        ("absolute", 5.0, 0.8 * 0.5),
        ("absolute", 7.5, 0.8 * 0.25),
        # shifted: 0.8 * e / 5 before W, then 0.8 * (1 - (e - 5) / (10 - 5))
        ("shifted", 2.5, 0.8 * 0.5),
        ("shifted", 5.0, 0.8),
        ("shifted", 7.5, 0.8 * 0.5),
        ("shifted", 10.0, 0.0),
    ],
)
def test_handover_values_polynomial(handover, epoch, expected):
    assert learning_rate(epoch, **MNIST64, handover=handover) == pytest.approx(expected)


# Hand-computed values for every decay at W = 2 (k = 2, warmup_epochs = 1), epochs = 40.
HAND = dict(base_lr=0.5, base_batch_size=20, batch_size=40, warmup_epochs=1.0, epochs=40)
PEAK2 = 0.5 * math.sqrt(2)


def _d_exp(x):  # gamma 0.8, start 0.5
    return 1.0 if x < 0.5 else 0.8 ** (x - 0.5)


def _d_poly(x, horizon):  # power 2, end 0.1
    return 0.1 + 0.9 * (1 - x / horizon) ** 2


def _d_cos(x, horizon):  # end 0.05
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * x / horizon))


def _d_multi(x):  # milestones 10, 20, 30; gamma 0.5
    return 0.5 ** sum(m <= x for m in (10, 20, 30))


HAND_DECAY = {
    "constant": (lambda x: 1.0, lambda x: 1.0),
    "exponential": (_d_exp, _d_exp),
    "polynomial": (lambda x: _d_poly(x, 40), lambda x: _d_poly(x, 38)),
    "cosine": (lambda x: _d_cos(x, 40), lambda x: _d_cos(x, 38)),
    "multistep": (_d_multi, _d_multi),
}


@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("epoch", [0.0, 0.5, 1.0, 1.9, 2.0, 2.7, 11.0, 25.0, 39.0, 40.0])
def test_handover_values_every_decay(decay, epoch):
    d_abs, d_shift = HAND_DECAY[decay]
    w = min(1.0, epoch / 2.0)
    args = {**HAND, "decay": decay, **DECAY_PARAMS[decay]}
    expected = {
        "product": PEAK2 * w * d_abs(epoch),
        "absolute": PEAK2 * (w if epoch < 2 else d_abs(epoch)),
        "shifted": PEAK2 * (w if epoch < 2 else d_shift(epoch - 2)),
    }
    for handover, value in expected.items():
        got = learning_rate(epoch, **args, handover=handover)
        assert got == pytest.approx(value, rel=1e-12, abs=1e-15), handover


@pytest.mark.parametrize("decay", DECAYS)
def test_handovers_agree_without_warmup(decay):
    args = {**HAND, "warmup_epochs": 0.0, "decay": decay, **DECAY_PARAMS[decay]}
    for e in (0.0, 3.3, 17.0, 40.0):
        values = {h: learning_rate(e, **args, handover=h) for h in HANDOVERS}
        assert len(set(values.values())) == 1, values


@pytest.mark.parametrize("decay", CONTINUOUS_DECAYS)
@pytest.mark.parametrize("handover", ["product", "shifted"])
def test_handover_continuous_at_warmup_end(decay, handover):
    args = {**HAND, "decay": decay, **DECAY_PARAMS[decay], "handover": handover}
    eps = 1e-9
    before, after = learning_rate(2.0 - eps, **args), learning_rate(2.0 + eps, **args)
    assert before == pytest.approx(after, rel=1e-6, abs=1e-9)
    if handover == "shifted":  # the full peak is reached where the warmup ends
        assert learning_rate(2.0, **args) == pytest.approx(PEAK2)


def test_absolute_jumps_down_by_the_decay_at_warmup_end():
    args = {**MNIST64, "handover": "absolute"}
    eps = 1e-9
    assert learning_rate(5.0 - eps, **args) == pytest.approx(0.8)
    assert learning_rate(5.0, **args) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("handover", "max_lr", "mean_lr"),
    [
        # integrals of the curves above over [0, 10], divided by 10
        ("product", 0.4, 0.8 * (5 / 2 - 125 / 150 + 5 - 75 / 20) / 10),
        ("absolute", 0.8, 0.8 * (2.5 + 1.25) / 10),
        ("shifted", 0.8, 0.8 * (2.5 + 2.5) / 10),
    ],
)
def test_summary_reports_highest_and_mean_lr(handover, max_lr, mean_lr):
    info = schedule_summary(**MNIST64, handover=handover)
    assert info["peak_lr"] == pytest.approx(0.8)
    assert info["handover"] == handover
    assert info["max_lr"] == pytest.approx(max_lr, rel=1e-3)
    assert info["mean_lr"] == pytest.approx(mean_lr, rel=1e-3)
    # per optimizer step (step s trains at lr(s / spe)): close to the continuous value
    steps = schedule_summary(**MNIST64, handover=handover, steps_per_epoch=7)
    assert steps["mean_lr"] == pytest.approx(mean_lr, rel=0.05)
    lrs = [learning_rate(s / 7, **MNIST64, handover=handover) for s in range(70)]
    assert steps["mean_lr"] == pytest.approx(sum(lrs) / 70, rel=1e-12)
    assert steps["max_lr"] == max(lrs)


def test_shifted_warmup_filling_the_budget_never_decays():
    args = {**MNIST64, "warmup_epochs": 10 / 64, "handover": "shifted"}
    assert learning_rate(10.0, **args) == pytest.approx(0.8)


@pytest.mark.parametrize("handover", HANDOVERS)
def test_scheduler_resumes_exactly_under_every_handover(handover):
    args = {**MNIST64, "handover": handover}

    def make():
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        return opt, LEGWScheduler(opt, 7, **args)

    opt, sched = make()
    full = []
    for _ in range(70):
        full.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    opt, sched = make()
    for _ in range(30):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    opt2, sched2 = make()
    buf.seek(0)
    sched2.load_state_dict(torch.load(buf, weights_only=True))
    rest = []
    for _ in range(40):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest == full[30:]
    assert sched2.schedule_kwargs["handover"] == handover


def test_old_checkpoint_without_handover_resumes_as_product():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = LEGWScheduler(opt, 7, **MNIST64)
    state = sched.state_dict()
    del state["schedule_kwargs"]["handover"]
    sched2 = LEGWScheduler(opt, 7, **{**MNIST64, "handover": "shifted"})
    sched2.load_state_dict(state)
    assert sched2.spec.handover == "product"


def test_spec_is_the_one_signature():
    spec = ScheduleSpec.of(**MNIST64, handover="shifted")
    assert learning_rate(7.5, spec) == learning_rate(7.5, **MNIST64, handover="shifted")
    assert ScheduleSpec.of(**spec.kwargs()) == spec
    assert hash(spec) == hash(ScheduleSpec.of(**spec.kwargs()))
    with pytest.raises(ValueError, match=r"missing schedule argument\(s\) \['epochs'\]"):
        ScheduleSpec.of(base_lr=1, base_batch_size=1, batch_size=1, warmup_epochs=0)
    with pytest.raises(ValueError, match=r"handover='shift' is not one of"):
        validate_schedule(**MNIST64, handover="shift")
    with pytest.raises(TypeError, match="not both"):
        learning_rate(1.0, spec, base_lr=2.0)
