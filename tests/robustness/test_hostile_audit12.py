"""Training, resume and comparison paths against hostile input (twelfth audit): run folders
whose trainer state holds values of the wrong kind, and resumes that cannot honour the config,
held to :func:`tests.robustness.cases.check_one_line` (one line naming the file and the key,
exit 1, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.robustness.cases import CKPT, PRETRAIN_COPY, Case, check_one_line, then

STATE = f"{CKPT}/trainer_rank0.json"


def state_edit(change):
    """Change the copied checkpoint's trainer state with ``change(state)``."""

    def setup(p: dict) -> None:
        path = Path(p["t"]) / STATE
        state = json.loads(path.read_text())
        change(state)
        path.write_text(json.dumps(state))

    return setup


def put(**values):
    return state_edit(lambda s: s.update(values))


RESUME = ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=4", "train.resume_changed=true"]

STATE_CASES = [
    # a step the folder is not named after: a negative one wrote step_-0000002 folders and
    # failed, a huge one finished at once with exit 0, a fraction was cut to 2 without a word
    ("step-negative", put(step=-5), "'step' is -5"),
    ("step-huge", put(step=10**30), "'step' is 1000000000000000000000000000000"),
    ("step-a-fraction", put(step=2.5), "'step' is 2.5"),
    ("step-a-word", put(step="abc"), "'step' is \"abc\""),
    ("step-of-another-folder", put(step=3), "'step' is 3"),
    ("tokens-seen-a-list", put(tokens_seen=[1]), "'tokens_seen' is [1]"),
    ("world-size-text", put(world_size="1"), "'world_size' is \"1\""),
    ("fingerprint-a-list", put(fingerprint=[1]), "'fingerprint' is [1]"),
    ("settings-a-word", put(settings="x"), "'settings' is \"x\""),
    ("data-null", put(data=None), "'data' is null"),
    ("data-epoch-a-word", state_edit(lambda s: s["data"].update(epoch="x")), "'data.epoch' is \"x\""),
    ("data-batches-negative", state_edit(lambda s: s["data"].update(batches=-3)), "'data.batches' is -3"),
    ("rng-a-number", put(rng=5), "'rng'"),
    ("rng-torch-cut-short", state_edit(lambda s: s["rng"].update(torch="AAAA")), "'rng'"),
    ("rng-torch-not-base64", state_edit(lambda s: s["rng"].update(torch="!!!")), "'rng'"),
    ("rng-python-cut-short", state_edit(lambda s: s["rng"].update(python=[3, [1, 2], None])), "'rng'"),
    ("rng-numpy-a-word", state_edit(lambda s: s["rng"].update(numpy="x")), "'rng'"),
    ("mask-rng-cut-short", put(mask_rng="AAAA"), "'mask_rng'"),
    ("elapsed-a-word", put(elapsed_s="x"), "'elapsed_s' is \"x\""),
    ("elapsed-infinite", put(elapsed_s=1e999), "'elapsed_s' is Infinity"),
]

STATE_AND_STEP_CASES = [
    Case(f"pretrain/resume-state-{name}", RESUME, 1, [STATE, said], then(PRETRAIN_COPY, spoil))
    for name, spoil, said in STATE_CASES
] + [
    # train.resume_changed accepted a max_steps below the checkpoint's step: the run "finished"
    # at step 2 with max_steps 1, rewrote model.pt and warned of a learning rate never used
    Case(
        "pretrain/resume-max-steps-below-the-checkpoint",
        ["pretrain", "--config", "{t}/cfg.yaml", "train.max_steps=1", "train.resume_changed=true"],
        1,
        ["train.max_steps 1", "step 2", "step_00000002"],
        PRETRAIN_COPY,
    ),
]


@pytest.mark.parametrize("case", STATE_AND_STEP_CASES, ids=[c.id for c in STATE_AND_STEP_CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


ENGINE = f"{CKPT}/engine.pt"


def engine_edit(change):
    """Change the copied checkpoint's engine state (weights, optimiser, schedule) with ``change``."""

    def setup(p: dict) -> None:
        import torch

        path = Path(p["t"]) / ENGINE
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)

    return setup


def _optimiser_state_of_another_shape(state: dict) -> None:
    import torch

    for s in state["optimizer"]["state"].values():
        s["exp_avg"] = torch.zeros(3)


def _nan_weights(state: dict) -> None:
    for v in state["model"].values():
        if v.is_floating_point():
            v.fill_(float("nan"))


ENGINE_CASES = [
    # torch's own errors, said as unexpected or naming no file
    ("optimizer-empty", lambda s: s.update(optimizer={}), "not an optimiser state"),
    ("optimizer-without-groups", lambda s: s["optimizer"].update(param_groups=[]), "holds 0 parameters"),
    ("scheduler-a-word", lambda s: s.update(scheduler="x"), "not all mappings"),
    ("scheduler-empty", lambda s: s.update(scheduler={}), "does not fit"),
    ("weight-missing", lambda s: s["model"].pop("embed_tokens.weight"), "embed_tokens.weight"),
    # failed only at the first step, after the run folder's log and config had been rewritten
    ("optimizer-state-of-another-shape", _optimiser_state_of_another_shape, "exp_avg"),
    # resumed, trained on NaN and ended with exit 0
    ("weights-nan", _nan_weights, "NaN or infinite"),
]

ENGINE_STATE_CASES = [
    Case(f"pretrain/resume-engine-{name}", RESUME, 1, [ENGINE, said], then(PRETRAIN_COPY, engine_edit(change)))
    for name, change, said in ENGINE_CASES
]


@pytest.mark.parametrize("case", ENGINE_STATE_CASES, ids=[c.id for c in ENGINE_STATE_CASES])
def test_an_engine_state_that_does_not_fit_is_one_line(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_a_run_that_diverged_writes_no_final_model(ws, tmp_path, capfd):
    """A learning rate of 1e30 turns every weight to NaN; the run ended with exit 0 and wrote
    model.pt (which resm export then refused). Now: exit 1, one line naming the weight and the
    log, no model.pt; the checkpoints stay, as after any stopped run."""
    import yaml

    from resm.cli import main

    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    cfg["train"]["out_dir"] = str(tmp_path / "run")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    capfd.readouterr()
    code = main(["pretrain", "--config", str(tmp_path / "cfg.yaml"), "optim.lr=1e30", "optim.warmup_steps=0"])
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1, err
    assert "training diverged: weight" in lines[0] and "log.jsonl" in lines[0], err
    assert not (tmp_path / "run" / "model.pt").exists()


def _compare_device(value):
    def setup(p: dict) -> None:
        import yaml

        cfg = yaml.safe_load(Path(p["compare_cfg"]).read_text())
        cfg.update(out_dir=str(Path(p["t"]) / "out"), device=value)
        (Path(p["t"]) / "c.yaml").write_text(yaml.safe_dump(cfg))

    return setup


COMPARE_DEVICE_CASES = [
    # passed the config's check, then failed in torch, said as unexpected
    Case(
        "compare/device-cudafoo",
        ["compare", "--config", "{t}/c.yaml"],
        1,
        ["device: unknown device", "cudafoo"],
        _compare_device("cudafoo"),
    ),
    Case(
        "compare/device-cuda-abc",
        ["compare", "--config", "{t}/c.yaml"],
        1,
        ["device: unknown device", "cuda:abc"],
        _compare_device("cuda:abc"),
    ),
    # taken for auto, and the comparison ran (exit 0)
    Case("compare/device-false", ["compare", "--config", "{t}/c.yaml"], 1, ["device", "False"], _compare_device(False)),
    Case("compare/device-empty", ["compare", "--config", "{t}/c.yaml"], 1, ["device", "''"], _compare_device("")),
]


@pytest.mark.parametrize("case", COMPARE_DEVICE_CASES, ids=[c.id for c in COMPARE_DEVICE_CASES])
def test_a_compare_device_is_held_to_the_rule_of_train_device(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_a_compare_device_cuda_without_cuda_is_refused(ws, tmp_path, capfd, monkeypatch):
    """As train.device and --device: asking for CUDA where there is none is said up front (the
    comparison ran on, its config.json recording cuda)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    case = Case(
        "compare/device-cuda", ["compare", "--config", "{t}/c.yaml"], 1, ["device", "CUDA"], _compare_device("cuda")
    )
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def _hf_copy(change_config=None, change_header=None):
    """The workspace's HF folder copied to {t}/hf, its config.json or its safetensors header
    changed (the tensors' bytes stay)."""

    def setup(p: dict) -> None:
        import shutil
        import struct

        hf = Path(p["t"]) / "hf"
        shutil.copytree(p["hf"], hf)
        if change_config:
            cfg = json.loads((hf / "config.json").read_text())
            change_config(cfg)
            (hf / "config.json").write_text(json.dumps(cfg))
        if change_header:
            path = hf / "model.safetensors"
            data = path.read_bytes()
            n = struct.unpack("<Q", data[:8])[0]
            header = json.loads(data[8 : 8 + n])
            change_header(header)
            text = json.dumps(header).encode()
            path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n :])

    return setup


EMBED_HF = ["embed", "{t}/hf", "{fa}", "{t}/o.npz", "--threads", "1"]
WORD = "esm.embeddings.word_embeddings.weight"

HF_CASES = [
    # an F32 weight said to be I32 (same size) was read as integers and embedded with exit 0
    Case(
        "embed/hf-weight-dtype-said-int32",
        EMBED_HF,
        1,
        ["{t}/hf", "embed_tokens.weight holds int32 values"],
        _hf_copy(change_header=lambda h: h[WORD].update(dtype="I32")),
    ),
    # resm's ESM-2 runs GELU and ESM-2's token ids whatever the file says: a model the file
    # does not describe, with exit 0
    Case(
        "embed/hf-config-hidden-act-relu",
        EMBED_HF,
        1,
        ["{t}/hf/config.json", "hidden_act 'relu'"],
        _hf_copy(lambda c: c.update(hidden_act="relu")),
    ),
    Case(
        "embed/hf-config-mask-token-99",
        EMBED_HF,
        1,
        ["{t}/hf/config.json", "mask_token_id 99"],
        _hf_copy(lambda c: c.update(mask_token_id=99)),
    ),
    Case(
        "embed/hf-config-pad-token-0",
        EMBED_HF,
        1,
        ["{t}/hf/config.json", "pad_token_id 0"],
        _hf_copy(lambda c: c.update(pad_token_id=0)),
    ),
]


@pytest.mark.parametrize("case", HF_CASES, ids=[c.id for c in HF_CASES])
def test_an_hf_folder_resm_would_run_otherwise_than_it_says_is_refused(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_a_grad_accum_past_what_torch_divides_by_is_refused(ws, tmp_path, capfd, monkeypatch):
    """train.grad_accum 10**30 passed the config's check and was an OverflowError at the first
    step, said as unexpected."""
    case = Case(
        "pretrain/grad-accum-huge",
        ["pretrain", "--config", "{t}/cfg.yaml", f"train.grad_accum={10**30}"],
        1,
        ["train.grad_accum must be in [1, 2**31 - 1]"],
        PRETRAIN_COPY,
    )
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def _structure_head(**head):
    def setup(p: dict) -> None:
        import yaml

        cfg = yaml.safe_load(Path(p["structure_cfg"]).read_text())
        cfg["train"]["out_dir"] = str(Path(p["t"]) / "run")
        cfg["head"].update(head)
        (Path(p["t"]) / "c.yaml").write_text(yaml.safe_dump(cfg))

    return setup


def test_a_head_size_past_what_torch_takes_is_refused(ws, tmp_path, capfd, monkeypatch):
    """head.proj_dim 10**19 was torch's TypeError ('Overflow when unpacking long long'), said
    as unexpected: a head's sizes are held to [1, 2**31 - 1]."""
    case = Case(
        "finetune/structure-proj-dim-huge",
        ["finetune", "--config", "{t}/c.yaml"],
        1,
        ["head: proj_dim must be <= 2**31 - 1"],
        _structure_head(proj_dim=10**19),
    )
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)


def test_a_model_that_cannot_be_allocated_is_said_as_such(tmp_path):
    """Building the task (its model and head) failing to allocate a tensor was torch's
    RuntimeError, said as unexpected (a head 10**9 wide asked for 30 GiB at once): now a
    ConfigError saying how much one tensor needs, and no run folder. A real failure of
    torch's allocator: 2**50 bytes is past any address space."""
    import torch

    from resm.config import ConfigError
    from resm.train import run_task

    def make_task(cfg):
        return torch.empty(2**50, dtype=torch.uint8)

    cfg = {"train": {"out_dir": str(tmp_path / "run"), "device": "cpu"}}
    with pytest.raises(ConfigError, match=r"do not fit in memory \(one of its tensors needs 1048576\.0 GiB\)"):
        run_task(make_task, cfg, set())
    assert not (tmp_path / "run").exists()
