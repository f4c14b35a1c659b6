"""The ecosystem's conventions: esm-extract's option spellings, Hugging Face hub ids from the
local cache, tokenizer files in exported folders, --device auto, help texts that state their
defaults, the shipped model by name, and `resm schemes --show`."""

import argparse
import re

import numpy as np
import pytest

from resm.backbone.load import init_model, load_backbone, save_hf
from resm.cli import HelpFormatter, build_parser
from resm.embed import read_embeddings
from tests.conftest import ENV, resm_cli, resm_main


def subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_states_its_default():
    """Each option's help, as printed, names its default (or says it is required), switches
    too: --trust-checkpoint, --noLP, --nested and --variants said nothing of theirs."""
    parser = build_parser()
    missing = []
    for name, sp in [("resm", parser), *subparsers(parser)]:
        assert sp.formatter_class is HelpFormatter
        fmt = sp._get_formatter()
        for a in sp._actions:
            if not a.option_strings or a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
                continue
            if isinstance(a, argparse._VersionAction):
                continue
            if ("required" if a.required else "default") not in fmt._get_help_string(a):
                missing.append(f"{name} {a.option_strings[0]}")
    assert not missing, f"options whose help gives no default: {missing}"
    text = " ".join(dict(subparsers(parser))["embed"].format_help().split())
    assert "(default: -1)" in text and "(default: mean)" in text and "(default: 4096)" in text
    assert "only for files you trust; default: refuse" in text
    fold = " ".join(dict(subparsers(parser))["fold"].format_help().split())
    assert "neighbour (as RNAfold --noLP) (default: off)" in fold


def test_device_defaults_to_auto_everywhere():
    from resm.utils.device import resolve_device

    parser = build_parser()
    with_device = [n for n, sp in subparsers(parser) if any("--device" in a.option_strings for a in sp._actions)]
    assert {"embed", "probe", "fold", "interact", "predict"} <= set(with_device)
    for n in with_device:
        sp = dict(subparsers(parser))[n]
        assert next(a for a in sp._actions if "--device" in a.option_strings).default == "auto"
    import torch

    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_esm_extract_spellings(tmp_path):
    ck = tmp_path / "tiny.pt"
    from resm.backbone.load import save_fair_esm

    save_fair_esm(init_model("tiny", seed=0), ck)
    (tmp_path / "x.fa").write_text(">a\nGGGAAACCC\n>b\nACGUACGU\n")
    parse = build_parser().parse_args
    a = parse(
        [
            "embed",
            str(ck),
            "x.fa",
            "o.pt",
            "--repr_layers",
            "0",
            "2",
            "--toks_per_batch",
            "99",
            "--nogpu",
            "--include",
            "mean",
            "per_tok",
            "bos",
            "contacts",
        ]
    )
    assert a.repr_layers == [0, 2] and a.toks_per_batch == 99 and a.device == "cpu"
    assert a.include == ["mean", "per_tok", "bos", "contacts"]
    resm_cli(
        "embed",
        ck,
        tmp_path / "x.fa",
        tmp_path / "e.npz",
        "--repr_layers",
        "0",
        "-1",
        "--toks_per_batch",
        "30",
        "--nogpu",
        "--include",
        "mean",
        "contacts",
    )
    arrays, index = read_embeddings(tmp_path / "e.npz")
    assert index["layers"] == [0, 2] and arrays["a/contacts"].shape == (9, 9)


def _fake_hf_cache(root, repo_id: str, model) -> None:
    """The layout huggingface_hub writes: models--owner--name/{refs/main, snapshots/<rev>/}."""
    folder = root / "hub" / ("models--" + repo_id.replace("/", "--"))
    save_hf(model, folder / "snapshots" / "0123abcd")
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")


def test_hugging_face_hub_ids_from_the_local_cache(tmp_path):
    model = init_model("tiny", seed=4)
    _fake_hf_cache(tmp_path / "hf", "facebook/esm2_t6_8M_UR50D", model)
    (tmp_path / "x.fa").write_text(">a\nGGGAAACCC\n")
    env = {**ENV, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    resm_cli("embed", "facebook/esm2_t6_8M_UR50D", tmp_path / "x.fa", tmp_path / "e.npz", "--nogpu", env=env)
    arrays, index = read_embeddings(tmp_path / "e.npz")
    assert index["model"] == "facebook/esm2_t6_8M_UR50D" and arrays["a/mean/2"].shape == (64,)
    p = resm_cli(
        "embed", "facebook/esm2_t12_35M_UR50D", tmp_path / "x.fa", tmp_path / "f.npz", "--nogpu", env=env, check=False
    )
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1
    assert "facebook/esm2_t12_35M_UR50D: not in the local Hugging Face cache" in err[0]
    assert "hf download facebook/esm2_t12_35M_UR50D" in err[0]
    assert not (tmp_path / "f.npz").exists()


def test_hf_folders_carry_a_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    from resm.alphabet import pad_batch
    from resm.mapping import get_scheme

    save_hf(init_model("tiny", seed=0), tmp_path / "hf")
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    scheme = get_scheme("kdny")
    rna = "GGGAAACCCUN"
    assert tok(scheme.to_protein(rna))["input_ids"] == pad_batch([scheme.encode(rna)])[0].tolist()
    assert tok.mask_token == "<mask>" and tok.pad_token_id == 1 and len(tok) == 33
    # the model and its tokenizer load together in transformers and agree with resm
    import torch

    hf = transformers.EsmForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    ids = tok([scheme.to_protein(rna)], return_tensors="pt")["input_ids"]
    ours = load_backbone(tmp_path / "hf").model
    with torch.no_grad():
        np.testing.assert_allclose(hf(ids).logits.numpy(), ours(ids)["logits"].numpy(), atol=1e-4)


def test_default_names_the_shipped_model(tmp_path):
    from resm.structure.model import load_backbone as load_any_backbone
    from resm.structure.model import shipped_model_path

    loaded = load_any_backbone("default")
    assert loaded.meta["scheme"] == "kdny" and loaded.meta["source"] == "default"
    a = build_parser().parse_args(["evaluate", "structure", "--model", "default", "--dataset", "ts0"])
    assert str(a.model) == "default" and shipped_model_path().exists()
    from resm.compare.backends import BackendSpec, make_backend

    b = make_backend(BackendSpec(name="shipped", kind="resm", checkpoint="default"), "cpu").load()
    assert b.num_layers == loaded.model.num_layers and b.scheme.name == "kdny"


def test_schemes_show_prints_the_tables():
    p = resm_cli("schemes", "--show", "codon3")
    out = p.stdout
    assert "centred triplet" in out and "AUG M" in out and "UAA Z" in out and out.count(" -> ") >= 4
    assert "Example: GGACUUCGGUCC -> " in out and "triplet GGA -> G" in out
    out = resm_main("schemes", "--show", "kdny").stdout  # in process: the first call ran the real one
    assert "A -> K" in out and "U -> D" in out and "C -> N" in out and "G -> Y" in out
    # the table alone, as asked: the list of every scheme is `resm schemes` without --show
    assert out.startswith("kdny (letter): ") and "kerd" not in out and "codon3" not in out
    listed = resm_main("schemes").stdout.splitlines()
    assert [line.split()[0] for line in listed] == ["scheme", "codon3", "kdny", "kerd", "nt", "protein"]


def test_threads_help_speaks_of_its_own_command():
    helps = {
        name: next(a.help for a in sp._actions if "--threads" in a.option_strings)
        for name, sp in subparsers(build_parser())
        if any("--threads" in a.option_strings for a in sp._actions)
    }
    assert "pair priors" in helps["fold"] and "fold" not in helps["embed"] and "pair priors" not in helps["embed"]


def test_the_top_level_help_lists_every_command_with_one_line():
    from resm.commands import COMMANDS

    text = " ".join(build_parser().format_help().split())
    for cmd in COMMANDS:
        assert cmd.help and "\n" not in cmd.help and len(cmd.help) <= 140, cmd.name
        assert f"{cmd.name} {' '.join(cmd.help.split())}" in text, cmd.name


def test_options_in_nucleotides_say_so():
    """A length, window, stride or tile is in nt, and its help says so."""
    missing = [
        f"{name} {a.option_strings[0]}"
        for name, sp in subparsers(build_parser())
        for a in sp._actions
        if a.dest in ("max_length", "window", "stride", "tile") and not re.search(r"\bnt\b", a.help)
    ]
    assert not missing, f"options in nucleotides whose help does not say nt: {missing}"


def test_an_options_range_is_in_its_help():
    """An option whose value is checked against a closed range (``OPTION_RULES``: ``in [0, 1]``)
    says that range in its help, so that --help tells what the check will refuse: fold's
    --threshold said only 'decoding threshold', --threads nothing of its limit."""
    from resm.commands.common import OPTION_RULES

    rules = {d: rule for d, (rule, _) in OPTION_RULES.items() if isinstance(rule, str)}  # not the names listed
    ranges = {d: m.group(0) for d, rule in rules.items() if (m := re.search(r"\[[^]]+\]", rule))}
    # a lower bound other than 0 or 1 (a count starts at 1), e.g. evaluate's --tile >= 16, which said none
    ranges |= {d: m.group(0) for d, rule in rules.items() if (m := re.search(r">= ([2-9]|\d\d+)", rule))}
    assert {"threshold", "threads", "tile"} <= set(ranges)
    missing = [
        f"{name} {a.option_strings[0]}: {ranges[a.dest]}"
        for name, sp in subparsers(build_parser())
        for a in sp._actions
        if a.dest in ranges and a.option_strings and ranges[a.dest] not in a.help
    ]
    assert not missing


def test_every_out_answers_to_o():
    """One spelling for the file a command writes: fold, interact and predict took -o as well as
    --out, while probe, export, init-checkpoint and evaluate refused it ('unrecognized
    arguments: -o')."""
    outs = {
        name: a.option_strings
        for name, sp in subparsers(build_parser())
        for a in sp._actions
        if "--out" in a.option_strings
    }
    assert {"fold", "probe", "export", "init-checkpoint", "evaluate", "interact", "predict"} <= set(outs)
    assert all(strings == ["-o", "--out"] for strings in outs.values()), outs
    a = build_parser().parse_args(["evaluate", "structure", "--model", "default", "--dataset", "ts0", "-o", "t.md"])
    assert str(a.out) == "t.md"


def test_an_option_is_spelled_alike_in_every_command():
    """An option string one command accepts means one option with the same spellings in every
    command that has it: resm fold took --noncanonical for --non-canonical, resm evaluate
    refused it."""
    spellings: dict[str, dict[str, tuple]] = {}
    for name, sp in subparsers(build_parser()):
        for a in sp._actions:
            for s in a.option_strings:
                spellings.setdefault(s, {})[name] = tuple(a.option_strings)
    differ = {s: m for s, m in spellings.items() if len(set(m.values())) > 1}
    assert not differ, differ


def test_embed_include_choices_have_one_home():
    """``resm embed --include`` takes the library's choices (:data:`resm.embed.INCLUDE_CHOICES`),
    not a list of its own that could drift from what ``embed_sequences(include=)`` takes."""
    from resm.cli import build_parser
    from resm.embed import INCLUDE_CHOICES

    embed = build_parser().commands["embed"]
    (include,) = [a for a in embed._actions if "--include" in a.option_strings]
    assert include.choices is INCLUDE_CHOICES
