"""The one config validator, :func:`resm.config.from_dict`: unknown keys, types, coercion."""

from dataclasses import dataclass, field
from typing import Any

import pytest

from resm.config import ConfigError, from_dict, load_config
from resm.train_config import OptimConfig, TrainConfig
from tests.conftest import REPO


@dataclass
class Section:
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    name: str = "x"
    cap: int | None = 3
    sizes: tuple[int, ...] = (1, 2)
    shares: list[float] = field(default_factory=lambda: [0.5, 0.5])
    options: dict[str, Any] = field(default_factory=dict)
    width: int = 0

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")


def test_values_are_coerced_to_the_field_types():
    s = from_dict(
        Section,
        {
            "count": "7",
            "rate": "1e-3",
            "name": 12,
            "cap": None,
            "sizes": [4, "5"],
            "shares": (1, "0.25"),
            "options": {"a": 1},
        },
        "sec",
    )
    assert (s.count, s.rate, s.name, s.cap, s.sizes, s.shares, s.options) == (
        7,
        1e-3,
        "12",
        None,
        (4, 5),
        [1.0, 0.25],
        {"a": 1},
    )
    assert isinstance(s.rate, float) and isinstance(s.shares[0], float)
    assert from_dict(Section, None, "sec") == Section()
    # YAML reads 1e-3 as a string: the optimiser still gets a float
    assert from_dict(OptimConfig, {"lr": "1e-3", "betas": [0.9, 0.99]}, "optim").lr == 1e-3


@pytest.mark.parametrize(
    "d, msg",
    [
        ({"cuont": 2}, "sec: unknown key 'cuont'; known: count, rate"),
        ({"count": "abc"}, "sec.count: expected an integer, got 'abc'"),
        ({"count": 2.5}, "sec.count: expected an integer, got 2.5"),
        ({"count": True}, "sec.count: expected an integer, got True"),
        ({"rate": "fast"}, "sec.rate: expected a number, got 'fast'"),
        ({"flag": "yes"}, "sec.flag: expected true or false, got 'yes'"),
        ({"flag": 1}, "sec.flag: expected true or false, got 1"),
        ({"name": None}, "sec.name: expected a string, got None"),
        ({"cap": "many"}, "sec.cap: expected an integer, got 'many'"),
        ({"sizes": 3}, "sec.sizes: expected a list, got 3"),
        ({"sizes": [1, "x"]}, r"sec.sizes\[1\]: expected an integer, got 'x'"),
        ({"options": [1]}, "sec.options: expected a mapping, got \\[1\\]"),
        ({"count": 0}, "sec: count must be >= 1, got 0"),
        ({"width": 3}, r"sec.width cannot be set here \(taken from the model\)"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(d, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        from_dict(Section, d, "sec", fixed={"width": "taken from the model"})
    assert "\n" not in str(e.value)


def test_fixed_fields_get_their_values_from_the_caller():
    assert from_dict(Section, {"count": 2}, "sec", fixed={"width": "x"}, extra={"width": 9}).width == 9
    with pytest.raises(ConfigError, match="sec: expected a mapping"):
        from_dict(Section, [1, 2], "sec")


def test_command_line_overrides_are_validated_like_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_steps: 5\noptim:\n  lr: 1e-3\n")
    cfg = load_config(path, ["train.max_steps=abc"])
    assert from_dict(OptimConfig, cfg["optim"], "optim").lr == 1e-3
    with pytest.raises(ConfigError, match="train.max_steps: expected an integer, got 'abc'"):
        from_dict(TrainConfig, cfg["train"], "train")
    assert from_dict(TrainConfig, load_config(path, ["train.max_minutes=null"])["train"], "train").max_minutes is None


def test_shipped_configs_are_found_by_name_from_anywhere(tmp_path, monkeypatch):
    from resm.config import ConfigError, find_config
    from resm.train_config import TrainConfig

    monkeypatch.chdir(tmp_path)  # not the repository
    assert find_config("structure", "finetune").read_text() == (REPO / "configs/finetune/structure.yaml").read_text()
    for spec in ("zero2", "zero2.json", "configs/deepspeed/zero2.json", "deepspeed/zero2.json"):
        assert find_config(spec, "deepspeed").name == "zero2.json"
    assert find_config("cpu_small", "compare").name == "cpu_small.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("task: structure\n")
    assert find_config(own, "finetune") == own and find_config("mine.yaml", "finetune").resolve() == own.resolve()
    with pytest.raises(ConfigError, match="nope: no such config file, nor a shipped finetune config .*structure"):
        find_config("nope", "finetune")
    # a DeepSpeed config is resolved (or refused) when the train section is read, before any build
    t = from_dict(TrainConfig, {"engine": "deepspeed", "deepspeed_config": "zero2"}, "train")
    assert t.deepspeed_config.endswith("zero2.json")
    with pytest.raises(ConfigError, match="train.deepspeed_config: zero9: no such config file"):
        from_dict(TrainConfig, {"engine": "deepspeed", "deepspeed_config": "zero9"}, "train")


@pytest.mark.parametrize(
    "section, cls, key, value, message",
    [
        ("optim", "OptimConfig", "lr", "inf", "optim.lr: expected a finite number, got 'inf'"),
        ("optim", "OptimConfig", "lr", "nan", "optim.lr: expected a finite number, got 'nan'"),
        ("optim", "OptimConfig", "lr", float("nan"), "optim.lr: expected a finite number, got nan"),
        ("optim", "OptimConfig", "lr", "0", "optim.lr must be > 0, got 0.0"),
        ("train", "TrainConfig", "max_minutes", "inf", "train.max_minutes: expected a finite number, got 'inf'"),
    ],
)
def test_training_numbers_name_the_key_and_finiteness(section, cls, key, value, message):
    import resm.train_config as train_config

    with pytest.raises(ConfigError) as e:
        from_dict(getattr(train_config, cls), {key: value}, section)
    assert str(e.value) == message
