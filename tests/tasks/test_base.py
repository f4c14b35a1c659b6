"""The one ``model`` section (resm.tasks.base.ModelConfig) and the task registry, against every
config that ships in configs/."""

from pathlib import Path

import pytest

from resm.config import ConfigError, from_dict, load_config
from resm.heads.mrl import ExpressionHeadConfig, OptimusConfig
from resm.heads.pair_map import StructureHeadConfig
from resm.heads.rri import InteractionHeadConfig
from resm.tasks import FINETUNE_TASKS, TASKS
from resm.tasks.base import ModelConfig
from resm.tasks.mrl import MRLDataConfig
from resm.tasks.rri import RRIDataConfig
from resm.tasks.structure_task import StructureDataConfig
from resm.train_config import OptimConfig, TrainConfig
from tests.conftest import REPO


def test_the_registry_holds_every_task():
    from resm.heads import HEADS

    assert set(TASKS) == {"mlm", "structure", "rri", "mrl", "joint"}
    assert set(FINETUNE_TASKS) == set(TASKS) - {"mlm"}
    for name, spec in TASKS.items():
        assert spec.cls.name == name and spec.cls.output and "model" in spec.cls.sections
        assert spec.head is None or spec.head in HEADS
        assert spec.config is None or (REPO / "configs" / "finetune" / f"{spec.config}.yaml").is_file()
    assert TASKS["structure"].head == "pairs"  # the shipped head


@pytest.mark.parametrize(
    "task, section, msg",
    [
        (
            "structure",
            {"arch": "tiny", "save_hf": True},
            r"model.save_hf cannot be set here \(not used by task structure\)",
        ),
        ("structure", {"arch": "tiny", "encoder": "onehot"}, "model.encoder cannot be set here"),
        ("rri", {"arch": "tiny", "save_hf": True}, "model.save_hf cannot be set here"),
        ("mlm", {"arch": "tiny", "mode": "frozen"}, "model.mode: task mlm trains the whole backbone"),
        ("mlm", {"arch": "tiny", "scheme": "kdny"}, r"model.scheme cannot be set here \(not used by task mlm\)"),
        ("mlm", {"arch": "tiny", "adapter": {"r": 4}}, "model.adapter cannot be set here"),
        ("mlm", {"arch": "tiny", "init_sed": 1}, "model: unknown key 'init_sed'"),
        ("structure", {"arch": "tiny", "init_seed": "x"}, "model.init_seed: expected an integer, got 'x'"),
        ("structure", {"init": "a.pt", "arch": "tiny"}, "give exactly one of init"),
        ("rri", {"arch": "tiny", "mode": "frozen", "adapter": {"r": 4}}, "only used with model.mode adapters"),
    ],
)
def test_a_task_refuses_model_keys_it_does_not_use(task, section, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        ModelConfig.for_task(section, task)
    assert "\n" not in str(e.value)


def test_each_task_reads_its_own_keys():
    mlm = ModelConfig.for_task({"arch": "tiny", "mode": "full", "save_hf": True}, "mlm")
    assert mlm.mode == "full" and mlm.save_hf and set(mlm.settings("mlm")) == set(TASKS["mlm"].model_keys)
    st = ModelConfig.for_task({"init": "m.pt", "mode": "adapters"}, "structure")
    assert st.adapter == {} and set(st.settings("structure")) == {
        "init",
        "arch",
        "init_seed",
        "mode",
        "adapter",
        "scheme",
        "trust_checkpoint",
    }
    oh = ModelConfig.for_task({"encoder": "onehot", "onehot": {"channels": 8}}, "rri")
    assert oh.encoder == "onehot" and oh.onehot == {"channels": 8}
    assert ModelConfig.for_task({"arch": "tiny"}, "mrl", encoder="onehot").encoder == "onehot"


def _sections(cfg):
    """Validate every section of a shipped training config that can be checked without its data."""
    task = cfg.get("task", "mlm")
    ModelConfig.for_task(cfg.get("model"), task)
    from_dict(OptimConfig, cfg.get("optim"), "optim")
    from_dict(TrainConfig, cfg.get("train"), "train")
    heads = {"structure": StructureHeadConfig, "rri": InteractionHeadConfig, "mrl": ExpressionHeadConfig}
    data = {"structure": StructureDataConfig, "rri": RRIDataConfig, "mrl": MRLDataConfig}
    if task == "mlm":
        from resm.data.masking import MaskingConfig
        from resm.data.pretrain import PretrainDataConfig
        from resm.tasks.mlm import ValidationConfig

        from_dict(PretrainDataConfig, cfg["data"], "data")
        from_dict(MaskingConfig, cfg.get("masking"), "masking")
        from_dict(ValidationConfig, cfg.get("validation"), "validation")
    elif task == "joint":
        from resm.tasks.joint import JointEntry

        for name, sub in cfg["tasks"].items():
            entry = from_dict(JointEntry, sub, f"tasks.{name}")
            from_dict(data[name], entry.data, "data")
            _head(name, entry.head, heads)
    else:
        from_dict(data[task], cfg["data"], "data")
        _head(task, cfg.get("head"), heads)


def _head(task, section, heads):
    head = dict(section or {})
    kind = head.pop("kind", None)
    if kind == "optimus":
        from_dict(OptimusConfig, head, "head")
    elif task == "structure" and kind in ("pairs", None):  # pairs: the default
        from resm.heads.pairs import PairHeadConfig

        from_dict(
            PairHeadConfig,
            head,
            "head",
            fixed={"embed_dim": "x", "attn_channels": "x"},
            extra={"embed_dim": 8, "attn_channels": 4},
        )  # both filled in from the backbone
    else:
        from_dict(heads[task], head, "head", fixed={"embed_dim": "x"}, extra={"embed_dim": 8})


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_still_validates(path: Path):
    cfg = load_config(path)
    if path.parent.name == "compare":
        from resm.compare.config import parse_config

        parse_config(cfg, path.stem)
    else:
        _sections(cfg)


def test_bundle_records_the_backbone_relative_to_itself(tmp_path, monkeypatch):
    """A backbone given relative to the training folder is found again from anywhere."""
    from resm.tasks.base import manifest_source, resolve_source

    (tmp_path / "work" / "runs" / "x" / "model").mkdir(parents=True)
    (tmp_path / "work" / "ckpt").mkdir()
    (tmp_path / "work" / "ckpt" / "bb.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "work")
    bundle = "runs/x/model"
    recorded = manifest_source("ckpt/bb.pt", bundle)
    assert recorded == "../../../ckpt/bb.pt"
    monkeypatch.chdir(tmp_path)  # another working directory
    src = resolve_source(recorded, tmp_path / "work" / bundle)
    assert Path(src).resolve() == (tmp_path / "work" / "ckpt" / "bb.pt").resolve()
    for name in ("esm2_t6_8M_UR50D", "default", "facebook/esm2_t6_8M_UR50D", "random:tiny", ""):
        assert manifest_source(name, bundle) == name and resolve_source(name, tmp_path) == name
    assert resolve_source("work/ckpt/bb.pt", tmp_path / "elsewhere") == "work/ckpt/bb.pt"  # older manifests


def test_model_messages_suggest_the_fix(tmp_path):
    """The README's `--config cpu_demo model.init=X.pt` (the config also names an arch) and a
    fine-tune config whose default init has not been made yet: each error names the fix."""
    from resm.mapping import get_scheme
    from resm.tasks.base import load_model_backbone

    with pytest.raises(ConfigError, match=r"not both: add model.arch=null to start from model.init=x.pt"):
        ModelConfig.for_task({"init": "x.pt", "arch": "small"}, "mlm")
    with pytest.raises(ConfigError, match="e.g. model.init=default"):
        ModelConfig.for_task({}, "structure")
    cfg = ModelConfig.for_task({"init": "runs/cpu_demo/model.pt"}, "structure")
    with pytest.raises(
        ConfigError,
        match=r"runs/cpu_demo/model.pt: no such checkpoint; make it first \(resm pretrain "
        r"--config cpu_demo.*model.init=default",
    ):
        load_model_backbone(cfg, get_scheme())
    assert load_model_backbone(ModelConfig.for_task({"init": "default"}, "structure"), get_scheme())[2] == "default"
