"""Training commands check what they can before any work (resm pretrain / finetune / compare).

A data file named as given in a config or an override (not through ``{data_dir}``, which
tests/test_data_dir_missing.py covers) that does not exist was found only once reading
started, after the progress bars were drawn ('data.train=[/nope.fa]'): it is now refused in
one line naming the key and the path, exit 1, no run folder."""

from __future__ import annotations

import pytest

from tests.conftest import refused_before_work, resm_main


@pytest.fixture(autouse=True)
def _a_machine_without_a_gpu(monkeypatch):
    """The memory bounds below are those of a machine without a GPU (training's 16 bytes a
    parameter); where there is one, only the weights are counted, which one test sets."""
    import resm.utils.memory as memory

    monkeypatch.setattr(memory, "_cuda_available", lambda: False)


def test_pretrain_refuses_a_missing_training_file_up_front(tmp_path):
    nope, run = tmp_path / "nope.fa", tmp_path / "run"
    p = resm_main("pretrain", "--config", "cpu_demo", f"data.train=[{nope}]", "model.arch=tiny",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    assert refused_before_work(p, run) == f"resm pretrain: error: data.train[0]: {nope}: no such file"


def test_finetune_refuses_a_missing_validation_file_up_front(tmp_path):
    train, nope, run = tmp_path / "train.dbn", tmp_path / "gone" / "val.dbn", tmp_path / "run"
    train.write_text(">a\nGGGAAACCC\n(((...)))\n")
    p = resm_main("finetune", "--config", "structure", f"data.train={train}", f"data.val={nope}",
                  "data.families=null", "data.family_holdout=0", "data.select_on=val", "model.init=default",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    assert refused_before_work(p, run) == f"resm finetune: error: data.val: {nope}: no such file"


def test_a_link_to_nothing_is_said_as_such(tmp_path):
    link, run = tmp_path / "corpus.fa", tmp_path / "run"
    link.symlink_to(tmp_path / "moved.fa")
    p = resm_main("pretrain", "--config", "cpu_demo", f"data.train=[{link}]", "model.arch=tiny",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    line = refused_before_work(p, run)
    assert line.startswith(f"resm pretrain: error: data.train[0]: {link}: ") and "link" in line, line


# A pair head of width 10**9 (resm finetune --config structure head.width=1000000000) had
# tensors that each fit but together got the process killed by the kernel's OOM killer while
# it was being built: the head's parameters are now counted from its config before it is built
# (PairHeadConfig.n_parameters, StructureHeadConfig.n_parameters), and a head whose training
# needs more than the machine's memory is refused in one line naming the key and the estimate.


def test_a_pair_head_too_big_to_train_is_refused_before_it_is_built(tmp_path, data):
    run = tmp_path / "run"
    p = resm_main("finetune", "--config", "structure", "head.width=1000000000", "model.init=default",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    line = refused_before_work(p, run)
    assert line.startswith("resm finetune: error: head: width 1000000000 gives the pair head about 5.6e+19 "), line
    assert "GiB to train" in line and "GiB (the machine's memory); give a smaller width" in line, line


def test_a_2d_head_too_big_to_train_is_refused(tmp_path, data):
    run = tmp_path / "run"
    p = resm_main("finetune", "--config", "structure_conv", "head.channels=1000000", "model.init=default",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    line = refused_before_work(p, run)
    assert line.startswith("resm finetune: error: head: channels 1000000 gives the 2-D head about "), line


def test_the_counts_are_those_of_the_built_heads(monkeypatch):
    """The estimate is the built head's parameter count, and the bound is the machine's memory
    (here a stated 1 GiB; the cap where it is unknown)."""
    import resm.utils.memory as memory
    from resm.heads.pair_map import StructureHead, StructureHeadConfig
    from resm.heads.pairs import PairHead, PairHeadConfig

    for cfg in (
        PairHeadConfig(),
        PairHeadConfig(
            embed_dim=40,
            priors=2,
            use_attention=True,
            attn_channels=12,
            width=24,
            pair_width=20,
            blocks=3,
            rounds=3,
            kernel=5,
            use_nucleotides=False,
        ),  # fmt: skip
    ):
        assert cfg.n_parameters() == PairHead(cfg).num_parameters()
    for cfg in (
        StructureHeadConfig(),
        StructureHeadConfig(
            embed_dim=40,
            use_attention=True,
            attn_channels=12,
            use_bpp=True,
            use_onehot_pairs=False,
            kernel=5,
            blocks=3,
            proj_dim=8,
            channels=12,
        ),  # fmt: skip
    ):
        assert cfg.n_parameters() == StructureHead(cfg).num_parameters()
    monkeypatch.setattr(memory, "total_memory", lambda: 2**30)
    PairHeadConfig(width=1000).require_trainable()  # about 56M parameters, 0.84 GiB to train
    wide = PairHeadConfig(width=1500)  # a trained head's config is read whatever the machine: not checked
    with pytest.raises(ValueError, match=r"^width 1500 gives the pair head about 1\.26e\+08 parameters.* 1\.0 GiB"):
        wide.require_trainable()
    monkeypatch.setattr(memory, "_cuda_available", lambda: True)  # on a GPU machine: the weights alone here
    wide.require_trainable()  # 0.47 GiB of weights
    with pytest.raises(ValueError, match=r"^width 3000 gives the pair head .* GiB for its weights, more than 1\.0"):
        PairHeadConfig(width=3000).require_trainable()
    monkeypatch.setattr(memory, "_cuda_available", lambda: False)
    monkeypatch.setattr(memory, "total_memory", lambda: None)
    with pytest.raises(ValueError, match=r"the cap where memory is unknown"):
        PairHeadConfig(pair_width=2**20).require_trainable()


# A backbone's size comes from model.arch (resm pretrain and finetune with random weights) or
# resm init-checkpoint --arch: model.arch=esm2_t48_15B_UR50D built 60 GB of weights, each tensor
# fitting, until the kernel's OOM killer ended the process. Its parameters are now counted from
# its config (ESM2Config.n_parameters) and a backbone too big for the machine refused before it
# is built: to train (pretraining trains it all), or to hold its weights (init-checkpoint).


def test_the_backbone_count_is_that_of_the_built_model():
    from resm.backbone.config import ARCHS, ESM2Config
    from resm.backbone.esm2 import ESM2

    for cfg in (ARCHS["tiny"], ESM2Config(3, 48, 6, vocab_size=20)):
        assert cfg.n_parameters == sum(p.numel() for p in ESM2(cfg).parameters())
    assert 1.4e10 < ARCHS["esm2_t48_15B_UR50D"].n_parameters < 1.6e10


def test_a_backbone_too_big_to_train_is_refused_before_it_is_built(tmp_path, data, monkeypatch):
    import resm.utils.memory as memory

    monkeypatch.setattr(memory, "total_memory", lambda: 2**20)  # a 1 MiB machine: small needs 12 MiB to train
    run = tmp_path / "run"
    p = resm_main("pretrain", "--config", "cpu_demo", "model.arch=small", "train.max_steps=1",
                  f"train.out_dir={run}", check=False)  # fmt: skip
    line = refused_before_work(p, run)
    assert line.startswith("resm pretrain: error: model.arch small gives the ESM-2 about 8."), line
    assert "GiB to train (weights, gradients, Adam's moments), more than 0.0 GiB" in line, line
    assert line.endswith("give a smaller model.arch"), line


def test_init_checkpoint_refuses_weights_too_big_for_the_machine(tmp_path, monkeypatch):
    """resm init-checkpoint only writes the weights: 4 bytes a parameter must fit."""
    import resm.utils.memory as memory

    monkeypatch.setattr(memory, "total_memory", lambda: 2**20)  # tiny's 0.4 MiB fit, small's 3.3 do not
    out = tmp_path / "small.pt"
    p = resm_main("init-checkpoint", "--arch", "small", "-o", str(out), check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "--arch small gives the ESM-2 about " in p.stderr and "GiB for its weights" in p.stderr, p.stderr
    assert not list(tmp_path.iterdir())  # nothing written
    assert resm_main("init-checkpoint", "--arch", "tiny", "-o", str(tmp_path / "tiny.pt")).returncode == 0


def test_a_frozen_backbone_from_random_weights_needs_its_weights_only(monkeypatch):
    """resm finetune from model.arch with the backbone frozen (mode frozen, or adapters: a LoRA
    adapter on it) trains the heads only: the backbone's weights must fit (4 bytes a parameter),
    not training's 16, which a backbone that trains (mode full) still needs. A frozen small
    backbone was refused on a machine that holds its weights."""
    import resm.utils.memory as memory
    from resm.mapping import get_scheme
    from resm.tasks.base import ModelConfig, load_model_backbone

    monkeypatch.setattr(memory, "total_memory", lambda: 6 * 2**20)  # small: 3.3 MiB of weights, 13 MiB to train
    for mode in ("frozen", "adapters"):
        model, arch, source = load_model_backbone(ModelConfig(arch="small", mode=mode), get_scheme("kdny"))
        assert (arch, source) == ("small", "random:small") and model.num_layers == 4
    with pytest.raises(ValueError, match=r"^model\.arch small gives the ESM-2 about .* GiB to train \(weights, "):
        load_model_backbone(ModelConfig(arch="small", mode="full"), get_scheme("kdny"))
    monkeypatch.setattr(memory, "total_memory", lambda: 2**20)  # 1 MiB: not even the weights
    with pytest.raises(ValueError, match=r"^model\.arch small gives the ESM-2 about .* GiB for its weights, more"):
        load_model_backbone(ModelConfig(arch="small", mode="frozen"), get_scheme("kdny"))
