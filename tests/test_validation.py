"""Every bad input is refused before training, in one line naming the key, the value and the fix.

The table calls `build_spec` (what `train.run` calls first) directly: one composition per case, no
process, no data. A few cases that need the data go through `train.run` and must leave no
metrics behind; a few go through the real command line for the exit status (2) and the absence
of a traceback. The hypothesis test throws arbitrary values at every key and accepts only "valid"
or a one-line ConfigError. The coverage tests keep the rule table in step with configs/.
"""

from __future__ import annotations

import copy
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from legw_repro.config.fingerprint import flatten
from legw_repro.config.keys import rules_for
from legw_repro.config.spec import RunSpec, build_spec
from legw_repro.config.validate import CONFIGS, ConfigError, resolved, task_class
from legw_repro.run.lifecycle import run
from tests.helpers import make_cfg, run_cli
from tests.test_train import SMALL

M, G = "task=mnist", "task=gnmt"

# (overrides, text the one-line error must contain)
CASES: list[tuple[str, str]] = [
    # the list
    ("task.max_train_tokens=-5", "task.max_train_tokens=-5 must be a positive integer or null"),
    ("policy=adam policy.optimizer=sgd", "policy.optimizer='sgd' contradicts policy=adam"),
    ("task.sgd.clip=-1", "task.sgd.clip=-1 must be a number >= 0"),
    ("task.bptt=0", "task.bptt=0 must be a positive integer"),
    ("task.model.hidden=0", "task.model.hidden=0"),
    ("checkpoint_every_steps=-1", "checkpoint_every_steps=-1"),
    ("checkpoint_every_min=-1", "checkpoint_every_min=-1"),
    ("diverge_factor=0", "diverge_factor=0 must be a number > 1"),
    ("precision=bf16 device=cpu", "precision='bf16'"),
    ("task.eval_batch_size=0", "task.eval_batch_size=0"),
    ("task.model.size=huge", "task.model.size='huge' is not allowed"),
    ("task.model.dropout=2", "task.model.dropout=2 must be a number in [0, 1)"),
    ("task.model.num_layers=0", "task.model.num_layers=0"),
    ("+batchsize=20", "batchsize=20 is not a config key; did you mean batch_size?"),
    # every other top-level key
    ("+task.model.hiden=64", "did you mean task.model.hidden?"),
    ("+task.schedule.polynomial.powr=2", "did you mean task.schedule.polynomial.power?"),
    ("batch_size=0", "batch_size=0 must be a positive integer"),
    ("batch_size=abc", "batch_size='abc'"),
    ("batch_size=8.5", "batch_size=8.5"),
    ("accum_steps=0", "accum_steps=0"),
    ("batch_size=8 accum_steps=3", "choose a multiple of 3"),
    ("epochs=0", "epochs=0 must be a number > 0"),
    ("epochs=-1", "epochs=-1"),
    ("epochs=nan", "epochs=nan"),
    ("seed=-1", "seed=-1"),
    ("seed=1.5", "seed=1.5"),
    # passed, then crashed at step 2 with an overflow traceback
    ("task.sgd.base_lr=1e300", "task.sgd.base_lr=1e+300 must be a number in (0, 1e+06)"),
    ("+policy.lr_multiplier=1e6", "policy.lr_multiplier=1000000.0 must be a number in (0, 1e+06)"),
    # seed=2**40 trained bit-identically to seed=0 (torch and numpy keep 32 bits)
    ("seed=1099511627776", "seed=1099511627776 must be an integer in [0, 4294967295]"),
    ("seed=4294967296", "seed=4294967296 must be an integer in [0, 4294967295]"),
    # W&B refused it at wandb.init, after the data was loaded
    ("+wandb.run_id=a/b", "wandb.run_id='a/b' must be a non-empty string without spaces at its"),
    ("device=tpu", "device='tpu' is not allowed"),
    ("precision=fp16", "precision='fp16' is not allowed"),
    ("resume=maybe", "resume='maybe' must be true or false"),
    ("overwrite=2", "overwrite=2 must be true or false"),
    ("progress=yes", "progress='yes'"),
    ("eval_every_epochs=0", "eval_every_epochs=0"),
    ("wandb.mode=sometimes", "wandb.mode='sometimes'"),
    ("wandb.tags=[1,2]", "wandb.tags=[1, 2] must be a list of strings"),
    ("dist_timeout_s=0", "dist_timeout_s=0"),
    ("epochs=${nope}", "epochs cannot be resolved"),
    ("scale.reduced=sometimes", "scale.reduced='sometimes'"),
    # policies and recipes
    ("policy=sqrt_legw policy.rule=linear", "policy.rule='linear' contradicts policy=sqrt_legw"),
    ("policy=linear policy.warmup=legw", "policy.warmup='legw' contradicts policy=linear"),
    ("policy.optimizer=rmsprop", "policy.optimizer='rmsprop' is not allowed"),
    ("+policy.lr_multiplier=0", "policy.lr_multiplier=0"),
    ("task.sgd.base_lr=0", "task.sgd.base_lr=0 must be a number in (0, 1e+06)"),
    ("task.sgd.base_lr=-1", "task.sgd.base_lr=-1"),
    ("task.sgd.momentum=1.5", "task.sgd.momentum=1.5 must be a number in [0, 1)"),
    ("task.sgd.weight_decay=-1", "task.sgd.weight_decay=-1"),
    ("policy=adam task.adam.clip=-0.5", "task.adam.clip=-0.5"),
    ("policy=adam +task.adam.betas=[0.9]", "task.adam.betas=[0.9] must be a list of 2 numbers"),
    ("policy=adam +task.adam.eps=0", "task.adam.eps=0"),
    ("task.schedule.warmup_epochs=-1", "task.schedule.warmup_epochs=-1"),
    ("task.schedule.handover=diagonal", "task.schedule.handover='diagonal'"),
    ("task.schedule.decay=linear", "task.schedule.decay='linear' is not allowed"),
    ("task.schedule.decay=exponential task.schedule.exponential.gamma=-1", "gamma"),
    ("batch_size=20 task.base_batch_size=0", "task.base_batch_size=0"),
    ("task.cls=nowhere.Task", "task.cls='nowhere.Task' cannot be imported"),
    # PTB's own keys
    ("task.bptt=-3", "task.bptt=-3"),
    ("task.max_train_tokens=0", "task.max_train_tokens=0"),
    ("task.max_eval_tokens=-1", "task.max_eval_tokens=-1"),
    ("task.model.init_scale=0", "task.model.init_scale=0"),
    ("task.model.tie_weights=maybe", "task.model.tie_weights='maybe'"),
    # MNIST's
    (f"{M} task.eval_batch_size=0", "task.eval_batch_size=0"),
    (f"{M} task.model.num_layers=0", "task.model.num_layers=0"),
    (f"{M} task.val_size=0", "task.val_size=0 must be an integer in [1, 59999]"),
    (f"{M} task.val_size=60000", "task.val_size=60000"),
    (f"{M} task.model.input=column", "task.model.input='column' is not allowed"),
    (f"{M} task.max_train_items=-1", "task.max_train_items=-1"),
    (f"{M} task.model.cpu_chunk=-1", "task.model.cpu_chunk=-1"),
    (f"{M} task.model.hidden=null", "task.model.hidden=null must be a positive integer"),
    # GNMT's
    (f"{G} task.model.embed=100", "task.model.tie_output=true needs task.model.embed =="),
    (f"{G} task.data.tgt_lang=en", "task.data.src_lang=task.data.tgt_lang='en'"),
    (f"{G} task.data.src_lang=fr", "task.data.src_lang='fr' is not allowed"),
    (f"{G} task.model.encoder_layers=1", "task.model.encoder_layers=1 must be an integer >= 2"),
    (f"{G} task.model.attention=dot", "task.model.attention='dot'"),
    (f"{G} task.label_smoothing=1", "task.label_smoothing=1"),
    (f"{G} task.decode.beam=0", "task.decode.beam=0"),
    (f"{G} task.subword.vocab_size=10", "task.subword.vocab_size=10"),
    (f"{G} task.data.source=bogus", "task.data.source='bogus' is not allowed; choose one of"),
    (f"{G} task.data.wmt16_path=''", "task.data.wmt16_path='' must be a non-empty string"),
    (f"{G} task.decode.max_len_a=0 task.decode.max_len_b=0", "allow no output token"),
    (f"{G} task.model.dropout=-0.1", "task.model.dropout=-0.1"),
]


@pytest.mark.parametrize(("overrides", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line(overrides, needle):
    with pytest.raises(ConfigError) as e:
        build_spec(make_cfg(*overrides.split()))
    msg = str(e.value)
    assert needle in msg, msg
    assert "\n" not in msg


def test_every_case_names_a_distinct_fault():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("task", ["ptb", "mnist", "gnmt"])
@pytest.mark.parametrize("scale", ["smoke", "cpu", "paper"])
def test_every_key_in_configs_has_a_rule(task, scale):
    """A key added to configs/ without a rule would go unchecked: name it here."""
    cfg = make_cfg(f"task={task}", f"scale={scale}")
    rules = rules_for(task_class(cfg))
    keys = flatten(resolved(cfg))
    missing = [k for k in keys if k not in rules]
    assert not missing, f"declare each in config/keys.py or the task's keys.py: {missing}"
    assert build_spec(cfg).task == task  # and every shipped value passes its rule


def test_rule_choices_follow_the_code():
    from legw_repro.tasks.gnmt.keys import KEYS as GNMT
    from legw_repro.tasks.gnmt.model import ATTENTIONS
    from legw_repro.tasks.gnmt.multi30k import LANGS
    from legw_repro.tasks.gnmt.task import SOURCES
    from legw_repro.tasks.mnist.keys import KEYS as MNIST
    from legw_repro.tasks.mnist.model import INPUTS
    from legw_repro.tasks.ptb.keys import KEYS as PTB
    from legw_repro.tasks.ptb.model import SIZES

    assert set(PTB["task.model.size"].choices) == set(SIZES)
    assert set(MNIST["task.model.input"].choices) == set(INPUTS)
    assert set(GNMT["task.model.attention"].choices) == set(ATTENTIONS)
    assert set(GNMT["task.data.src_lang"].choices) == set(LANGS)
    assert set(GNMT["task.data.source"].choices) == set(SOURCES)
    for t, keys in (("ptb", PTB), ("mnist", MNIST), ("gnmt", GNMT)):
        assert task_class(make_cfg(f"task={t}")).config_keys is keys


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["policy=linear", "batch_size=100000"], "batch_size=100000"),
        (["task.eval_batch_size=3000"], "task.eval_batch_size=3000 leaves no evaluation window"),
        # trained one step and recorded "completed"
        (
            ["epochs=1e-9", "task.schedule.warmup_epochs=0"],
            "epochs=1e-09 gives 2.4e-08 optimizer steps at 24 steps per epoch; an epoch budget must "
            "give at least one step: epochs >= 0.0417",
        ),
    ],
)
def test_limits_that_need_the_data_are_refused_before_training(
    tmp_path, shared_data_dir, overrides, needle
):
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}", *overrides)
    with pytest.raises(ConfigError) as e:
        run(cfg, tmp_path / "run")
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "summary.json").exists()


def test_unwritable_run_dir_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"hydra.run.dir=.*a-file/run is not writable"):
        run(make_cfg(*SMALL), blocker / "run")


# -- a config group's option: checked before Hydra, with the closest one ----------------------
GROUP_CASES = [
    (["policy=sqrt-legw"], "policy=sqrt-legw is not an option of policy; did you mean sqrt_legw?"),
    (["-m", "policy=sqrt-legw,linear"], "policy=sqrt-legw is not an option of policy; did you"),
    (["-m", "policy=choice(linear,sqrtlegw)"], "policy=sqrtlegw is not an option"),
    (["task=PTB"], "task=PTB is not an option of task; did you mean ptb?"),
    (["scale=smol"], "scale=smol is not an option of scale; did you mean smoke?"),
    (["task_scale=ptb_smok"], "task_scale=ptb_smok is not an option of task_scale; did you"),
    (["+experiment=ptb_smok"], "+experiment=ptb_smok is not an option of experiment; did you me"),
    (["+experiment=mnist_cpu/lng"], "did you mean mnist_cpu/long?"),
    (["experiment=ptb_smoke"], "experiment=ptb_smoke: experiment is not in the defaults list"),
    (["hydra/launcher=slurm"], "hydra/launcher=slurm is not an option of hydra/launcher; did"),
    (["hydra/launchr=joblib"], "hydra/launchr is not a config group; did you mean hydra/launcher?"),
]


@pytest.mark.parametrize(("args", "needle"), GROUP_CASES, ids=[" ".join(c[0]) for c in GROUP_CASES])
def test_a_wrong_group_option_is_refused_in_one_line(args, needle, capsys):
    from legw_repro.config.cli import check_overrides

    with pytest.raises(SystemExit) as e:
        check_overrides([*SMALL, *args])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


# -- overrides Hydra answers in many lines (exit 1): one line, exit 2, before Hydra ------------
SYNTAX_CASES = [
    (["wandb.run_id=abc"], "wandb.run_id is optional and in no config file, so it is added with a "
     "+: +wandb.run_id=abc"),
    (["hydra.run.dir=/tmp/rün"], "hydra.run.dir=/tmp/rün: Hydra reads non-ASCII characters in a "
     "value only inside quotes; quote the value, as one shell word: \"hydra.run.dir='/tmp/rün'\""),
    (["-m", "hydra.sweep.dir=runs/日本"], "quote the value, as one shell word: "
     "\"hydra.sweep.dir='runs/日本'\""),
    (["wandb.tags=[a"], "wandb.tags=[a is not a valid override (no viable alternative at input "
     "'[a'); fix its brackets"),
]  # fmt: skip


@pytest.mark.parametrize("args", [c[0] for c in SYNTAX_CASES], ids=[c[0][-1] for c in SYNTAX_CASES])
def test_an_override_hydra_cannot_take_is_refused_in_one_line(args, capsys):
    from legw_repro.config.cli import check_overrides

    needle = dict((tuple(a), n) for a, n in SYNTAX_CASES)[tuple(args)]
    with pytest.raises(SystemExit) as e:
        check_overrides([*SMALL, *args])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_the_fixes_those_lines_give_are_accepted():
    from legw_repro.config.cli import check_overrides

    check_overrides(["+wandb.run_id=abc", "hydra.run.dir='/tmp/rün'", "wandb.tags=[a]"])
    check_overrides(["-cd", "/tmp/a=b", "--config-name", "train", "+experiment=ptb_smoke"])
    cfg = make_cfg("+wandb.run_id=abc", "hydra.run.dir='/tmp/rün'")
    assert cfg.wandb.run_id == "abc"


def _options(group: str) -> list[str]:
    folder = CONFIGS / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


@pytest.mark.parametrize("group", ["task", "policy", "scale", "task_scale", "experiment"])
def test_every_shipped_option_is_accepted(group):
    from legw_repro.config.cli import check_overrides

    prefix = "+" if group == "experiment" else ""
    for option in _options(group):
        check_overrides([f"{prefix}{group}={option}"])
    check_overrides(["-m", f"{group}={','.join(_options(group))}", "+experiment=ptb_smoke"])
    check_overrides(
        [f"hydra/launcher={','.join(_options('hydra/launcher'))}", "hydra/launcher=basic"]
    )
    check_overrides([f"{group}=glob(*)", f"~{group}", f"{group}=null", "+experiment=ptb_smoke"])


# -- arbitrary values at every key: valid, or a one-line ConfigError, never anything else --------
@functools.cache
def _base(task: str):
    cfg = make_cfg(f"task={task}", "scale=smoke")
    return cfg, sorted(flatten(resolved(cfg)))


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, 1, 2, -1, 2**70]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text("abcxyz_.-/ ", max_size=8),
    st.sampled_from(["${nope}", "???", "cpu", "cuda", "sgd", "adam", "fp32", "bf16", "small"]),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3))


@st.composite
def _overrides(draw):
    task = draw(st.sampled_from(["ptb", "mnist", "gnmt"]))
    keys = _base(task)[1]
    names = st.one_of(st.sampled_from(keys), st.sampled_from(["batchsize", "task.foo", "lr"]))
    pairs = draw(st.lists(st.tuples(names, _values), min_size=1, max_size=3))
    return task, pairs


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_overrides())
def test_any_override_is_valid_or_refused_in_one_line(case):
    task, pairs = case
    cfg = copy.deepcopy(_base(task)[0])
    for key, value in pairs:
        OmegaConf.update(cfg, key, value, force_add=True)
    try:
        spec = build_spec(cfg)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(spec, RunSpec)


# -- the real command line: exit status 2, one line, no traceback ------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["task.max_train_tokens=-5"], "error: task.max_train_tokens=-5 must be"),
        (["+batchsize=20"], "did you mean batch_size?"),
        (["batchsize=20"], "did you mean batch_size?"),
        (["precision=bf16", "device=cpu"], "error: precision='bf16'"),
        (["policy=sqrt-legw"], "error: policy=sqrt-legw is not an option of policy; did you mean"),
        (["-m", "policy=sqrt-legw,linear"], "did you mean sqrt_legw?"),
        (["+experiment=ptb_smok"], "did you mean ptb_smoke?"),
        (["seed=1099511627776"], "error: seed=1099511627776 must be an integer in [0, 4294967295]"),
        (["wandb.run_id=abc"], "error: wandb.run_id=abc: wandb.run_id is optional"),
        (["hydra.run.dir=/tmp/rün"], "quote the value, as one shell word"),
    ],
)
def test_cli_refuses_with_exit_2_and_no_traceback(tmp_path, args, needle):
    res = run_cli(*SMALL, *args, f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert [line for line in res.stderr.splitlines() if line.startswith("error:")] == [
        res.stderr.strip().splitlines()[-1]
    ]


@pytest.mark.slow
def test_cli_unwritable_run_dir_and_full_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = run_cli(*SMALL, f"hydra.run.dir={blocker / 'run'}", timeout=120)
    assert res.returncode == 2 and "is not writable" in res.stderr
    assert "Traceback" not in res.stderr
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    res = run_cli(*SMALL, "task.bptt=0", f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert res.returncode != 0 and "Traceback" in res.stderr and "task.bptt=0" in res.stderr
