"""GNMT-lite: padding is invisible (loss, gradients, attention), beam 1 is greedy, GNMT's length
normalisation, sacreBLEU agrees with its command line, and the task end to end through the
unchanged trainer: the CLI run record with translations, exact resume, DDP and accumulation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from legw_repro.run.lifecycle import run
from legw_repro.tasks.common.seq_batches import make_batch
from legw_repro.tasks.gnmt.bleu import corpus_bleu
from legw_repro.tasks.gnmt.decoding import beam_search, greedy, length_penalty, max_lengths
from legw_repro.tasks.gnmt.model import GNMT
from tests.faults import fault_cli
from tests.helpers import REPO, checkpoint_params, make_cfg, read_rows, run_cli, summary

IDS = (0, 2, 3)  # pad, bos, eos
DATA = REPO / "tests" / "data" / "gnmt"


def _model(attention: str = "bahdanau", **kw) -> GNMT:
    torch.manual_seed(0)
    args = dict(embed=16, hidden=16, encoder_layers=3, decoder_layers=3, dropout=0.0)
    return GNMT(50, attention=attention, **{**args, "init_range": 0.3, **kw}).eval()


def _pairs(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    src = [rng.integers(4, 50, rng.integers(1, 9)) for _ in range(n)]
    tgt = [rng.integers(4, 50, rng.integers(1, 9)) for _ in range(n)]
    return src, tgt


def _token_loss(model: GNMT, batch) -> torch.Tensor:
    logits = model(batch.src, batch.src_len, batch.tgt_in)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        batch.tgt_out.reshape(-1),
        ignore_index=0,
        reduction="sum",
        label_smoothing=0.1,
    )


def _grads(model: GNMT) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_padding_changes_neither_loss_nor_gradients(attention):
    src, tgt = _pairs(5)
    model = _model(attention)
    batch = make_batch(src, tgt, 1.0, pad_id=0, bos_id=2, eos_id=3)
    assert (batch.src == 0).any() and (batch.tgt_out == 0).any()  # really padded
    model.zero_grad()
    padded = _token_loss(model, batch)
    padded.backward()
    g_padded = _grads(model)
    model.zero_grad()
    alone = sum(
        _token_loss(model, make_batch([s], [t], 1.0, pad_id=0, bos_id=2, eos_id=3))
        for s, t in zip(src, tgt, strict=True)
    )
    alone.backward()
    assert padded.item() == pytest.approx(alone.item(), rel=1e-6)
    for a, b in zip(g_padded, _grads(model), strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def test_attention_never_looks_at_padding():
    src, tgt = _pairs(6, seed=1)
    model = _model()
    b = make_batch(src, tgt, 1.0, pad_id=0, bos_id=2, eos_id=3)
    memory, keys, mask = model.encode(b.src, b.src_len)
    logits, _, weights = model.decode(b.tgt_in, None, memory, keys, mask)
    assert (~mask).any()
    assert torch.all(weights.masked_select(~mask[:, None, :].expand_as(weights)) == 0.0)
    assert torch.allclose(weights.sum(-1), torch.ones(()))
    # whatever sits in the padded positions of the source, the real outputs do not move
    noisy = b.src.masked_fill(~mask, 7)
    other = model(noisy, b.src_len, b.tgt_in)
    assert torch.allclose(logits, other, atol=1e-6)


def test_beam_of_one_is_greedy():
    src, tgt = _pairs(12, seed=2)
    model = _model(init_range=1.0)  # a peaked random model: non-trivial outputs
    b = make_batch(src, tgt, 1.0, pad_id=0, bos_id=2, eos_id=3)
    limits = max_lengths(b.src_len, 1.5, 3)
    g = greedy(model, b.src, b.src_len, limits, IDS)
    assert g == beam_search(model, b.src, b.src_len, limits, IDS, beam=1, alpha=0.6)
    assert any(len(s) > 1 for s in g)
    assert all(len(s) < lim for s, lim in zip(g, limits.tolist(), strict=True))
    assert all(0 not in s and 2 not in s and 3 not in s for s in g)  # no pad/bos/eos inside


def _normalized_score(model: GNMT, src: torch.Tensor, hyp: list[int], alpha: float) -> float:
    """GNMT's log P(hyp + EOS | src) / lp, by teacher forcing."""
    b = make_batch(
        [src.numpy()], [np.array(hyp, dtype=np.int64)], 1.0, pad_id=0, bos_id=2, eos_id=3
    )
    logp = torch.log_softmax(model(b.src, b.src_len, b.tgt_in), -1)
    total = logp[0].gather(1, b.tgt_out[0][:, None]).sum()
    return (total / length_penalty(torch.tensor(len(hyp) + 1), alpha)).item()


def test_beam_search_finds_a_better_normalized_score_than_greedy():
    src, tgt = _pairs(8, seed=3)
    model = _model(init_range=1.0)
    b = make_batch(src, tgt, 1.0, pad_id=0, bos_id=2, eos_id=3)
    limits = max_lengths(b.src_len, 1.5, 3)
    g = greedy(model, b.src, b.src_len, limits, IDS)
    beam = beam_search(model, b.src, b.src_len, limits, IDS, beam=6, alpha=0.6)
    assert beam != g  # the test would be empty otherwise
    for i in range(len(src)):
        ids = b.src[i, : b.src_len[i] - 1]  # without the EOS make_batch adds again
        s_beam = _normalized_score(model, ids, beam[i], 0.6)
        s_greedy = _normalized_score(model, ids, g[i], 0.6)
        assert s_beam >= s_greedy - 1e-5


def test_gnmt_length_penalty_and_limits():
    assert length_penalty(torch.tensor(1), 0.6).item() == pytest.approx(1.0)
    assert length_penalty(torch.tensor(10), 0.6).item() == pytest.approx((15 / 6) ** 0.6)
    assert length_penalty(torch.tensor(10), 0.0).item() == 1.0
    assert max_lengths(torch.tensor([1, 4, 10]), 1.5, 2).tolist() == [4, 8, 17]


def test_bad_model_settings_name_the_key():
    with pytest.raises(ValueError, match="task.model.attention='dot'"):
        GNMT(50, attention="dot")
    with pytest.raises(ValueError, match="encoder_layers=1"):
        GNMT(50, encoder_layers=1)
    with pytest.raises(ValueError, match="tie_output"):
        GNMT(50, embed=8, hidden=16, tie_output=True)


# -- sacreBLEU ------------------------------------------------------------------------------------


def test_bleu_of_the_reference_is_100_and_matches_the_cli():
    ref = (DATA / "ref.de.txt").read_text().splitlines()
    hyp = (DATA / "hyp.de.txt").read_text().splitlines()
    assert corpus_bleu(ref, ref)[0] == pytest.approx(100.0)
    score, signature = corpus_bleu(hyp, ref)
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "sacrebleu",
            str(DATA / "ref.de.txt"),
            "-i",
            str(DATA / "hyp.de.txt"),
        ]
        + ["-m", "bleu", "-w", "6", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = json.loads(cli.stdout)
    assert 10 < score < 90 and round(score, 6) == pytest.approx(printed["score"], abs=1e-6)
    assert signature == printed["signature"] and "tok:13a" in signature
    with pytest.raises(ValueError, match="align"):
        corpus_bleu(hyp[:-1], ref)


# -- the task through the trainer -----------------------------------------------------------------

# a tiny GNMT on 256 training pairs: a few seconds per run
SMALL = [
    "task=gnmt",
    "scale=smoke",
    "task.data.max_train_items=256",
    "task.data.max_eval_items=16",
    "batch_size=32",
    "epochs=1",
    "wandb.mode=disabled",
    "progress=false",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spm")


@pytest.mark.slow
def test_accumulation_equals_full_batch(tmp_path, shared_data_dir, cache_dir):
    common = [*SMALL, f"data_dir={shared_data_dir}", f"task.subword.cache_dir={cache_dir}"]
    a = run(make_cfg(*common), tmp_path / "full")
    b = run(make_cfg(*common, "accum_steps=4"), tmp_path / "acc")
    c = run(make_cfg(*common, "task.max_micro_batch=12"), tmp_path / "cap")  # 4 x 8 sentences
    assert a["status"] == b["status"] == c["status"] == "completed"
    pa = checkpoint_params(tmp_path / "full")
    la = [r["loss"] for r in read_rows(tmp_path / "full", "train")]
    for other in ("acc", "cap"):
        pb = checkpoint_params(tmp_path / other)
        assert max((pa[k] - pb[k]).abs().max().item() for k in pa) < 1e-5
        lb = [r["loss"] for r in read_rows(tmp_path / other, "train")]
        assert la == pytest.approx(lb, rel=1e-5)


def test_micro_batches_tile_the_global_batch(shared_data_dir, cache_dir):
    from legw_repro.loop.distributed import DistInfo
    from legw_repro.tasks.gnmt.task import GNMTTask

    common = [*SMALL, f"data_dir={shared_data_dir}", f"task.subword.cache_dir={cache_dir}"]
    whole = GNMTTask(make_cfg(*common), DistInfo())
    split = [
        GNMTTask(make_cfg(*common, "task.max_micro_batch=5"), DistInfo(rank=r, world_size=2))
        for r in range(2)
    ]
    assert whole.micro_per_rank == 1 and split[0].micro_per_rank == 4  # 16 per rank -> 4 x 4
    assert len(split[0].init_carry(None)) == 4
    steps = zip(whole.train_batches(0), *(t.train_batches(0) for t in split), strict=True)
    for (full,), r0, r1 in steps:
        parts = [*r0, *r1]
        assert [len(p.src) for p in parts] == [4] * 8
        assert sum(int((p.tgt_out != 0).sum()) for p in parts) == int((full.tgt_out != 0).sum())
        assert all(p.norm == pytest.approx(full.norm / 8) for p in parts)
        ids = [tuple(row[row != 0].tolist()) for p in parts for row in p.src]
        assert sorted(ids) == sorted(tuple(row[row != 0].tolist()) for row in full.src)


# one reference CLI run serves the run-record, resume and DDP tests
CLI = [*SMALL, "epochs=2", "checkpoint_every_steps=3"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, shared_data_dir, cache_dir) -> tuple[Path, list[str]]:
    common = [*CLI, f"data_dir={shared_data_dir}", f"task.subword.cache_dir={cache_dir}"]
    rd = tmp_path_factory.mktemp("gnmt") / "ref"
    res = run_cli(*common, f"hydra.run.dir={rd}")
    assert res.returncode == 0, res.stderr[-3000:]
    return rd, common


@pytest.mark.slow
def test_cli_smoke_run_record_with_translations(reference_run):
    rd, _ = reference_run
    s = summary(rd)
    assert s["status"] == "completed" and s["task"] == "gnmt" and s["metric"] == "bleu"
    assert s["higher_is_better"] is True and s["throughput_unit"] == "tokens/s"
    assert s["steps_per_epoch"] == 256 // 32 and s["total_steps"] == 16
    assert {"valid_bleu", "test_bleu", "best_valid_bleu", "test_loss"} <= set(s["final"])
    assert s["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    sets = s["test_sets"]
    assert set(sets) == {"test_2016_flickr", "test_2017_flickr"}
    assert sets["test_2016_flickr"]["bleu"] == s["final"]["test_bleu"]
    for name, info in sets.items():
        lines = (rd / info["translations"]).read_text().split("\n")
        assert info["translations"] == f"translations/{name}.de.txt"
        assert len(lines) == 16 + 1 and lines[-1] == "" and info["sentences"] == 16
        assert 0.0 <= info["bleu"] <= 100.0
    cfg = yaml.safe_load((rd / "config.yaml").read_text())
    assert cfg["task"]["name"] == "gnmt" and cfg["batch_size"] == 32
    evals = read_rows(rd, "eval")
    assert [r["split"] for r in evals] == ["valid", "valid", "test"]
    assert all(r["loss"] > 0 and 0.0 <= r["bleu"] <= 100.0 for r in evals)
    assert len(read_rows(rd, "train")) == 16


@pytest.mark.slow
def test_fit_script_reads_the_last_checkpoint_on_both_splits(reference_run):
    rd, _ = reference_run
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gnmt_fit.py"), str(rd), "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    last_valid = [r for r in read_rows(rd, "eval") if r["split"] == "valid"][-1]
    # the same function as the run's own validation loss, on the final weights
    assert out["valid_nll"] == pytest.approx(last_valid["loss"], abs=1e-3)
    assert 0.0 < out["train_nll"] < 20.0


@pytest.mark.slow
def test_killed_and_resumed_equals_uninterrupted(tmp_path, reference_run):
    ref, common = reference_run
    crashed = tmp_path / "crashed"
    # killed (SIGKILL) in step 11: the last checkpoint is step 9 (every 3), two steps are redone
    res = fault_cli(*common, f"hydra.run.dir={crashed}", step=11, action="SIGKILL")
    assert res.returncode == -signal.SIGKILL and summary(crashed)["status"] == "running"
    res = run_cli(*common, f"hydra.run.dir={crashed}", "resume=true")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = summary(ref), summary(crashed)
    assert b["status"] == "completed" and a["final"] == b["final"]
    assert a["test_sets"] == b["test_sets"]
    pa, pb = checkpoint_params(ref), checkpoint_params(crashed)
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) == 0.0
    assert [r["step"] for r in read_rows(crashed, "train")] == list(range(1, 17))
    for name in a["test_sets"]:
        path = f"translations/{name}.de.txt"
        assert (ref / path).read_text() == (crashed / path).read_text()


@pytest.mark.slow
def test_ddp_two_processes_equal_one(tmp_path, reference_run):
    one, common = reference_run
    two = tmp_path / "two"
    res = run_cli(*common, f"hydra.run.dir={two}", torchrun=2)
    assert res.returncode == 0, res.stderr[-3000:]
    assert summary(two)["world_size"] == 2
    pa, pb = checkpoint_params(one), checkpoint_params(two)
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) < 1e-5
    l1 = [r["loss"] for r in read_rows(one, "train")]
    l2 = [r["loss"] for r in read_rows(two, "train")]
    assert l1 == pytest.approx(l2, rel=1e-5)
    assert (two / "translations" / "test_2016_flickr.de.txt").is_file()


def test_configs_compose_and_the_paper_scale_is_gnmt_v2():
    # (every point of the gnmt sweeps is validated in test_configs.py)
    for scale in ("smoke", "cpu", "paper"):
        cfg = make_cfg("task=gnmt", f"scale={scale}")
        assert cfg.task.cls == "legw_repro.tasks.gnmt.GNMTTask" and cfg.scale.name == scale
    cfg = make_cfg("task=gnmt", "scale=paper").task
    m = cfg.model
    assert (m.encoder_layers, m.decoder_layers, m.hidden) == (4, 4, 1024)
    with torch.device("meta"):  # the shapes fit together, without allocating 1024-unit layers
        model = GNMT(int(cfg.subword.vocab_size), **{k: m[k] for k in m})
    assert model.enc_bi.bidirectional and len(model.enc) == 3 and len(model.dec) == 3
    assert sum(p.numel() for p in model.parameters()) > 100e6
    assert "gnmt" not in (REPO / "legw_repro" / "loop" / "trainer.py").read_text().lower()
