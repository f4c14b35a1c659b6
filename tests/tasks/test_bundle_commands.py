"""One bundle for every command: the folder a joint run writes is read by `resm interact`,
`resm predict --task mrl`, `resm fold` (when it holds a structure head) and resm.load_bundle;
a missing head, another scheme or another backbone is a one-line error naming the bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import resm_cli, resm_main
from tests.tasks.test_rri_mrl import mrl_config, rand, rri_config, rri_pairs, train_cfg, write_pairs


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    for seed, run in ((1, resm_cli), (2, resm_main)):  # the real entry point once, then in process
        run("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", seed, "--out", d / f"tiny{seed}.pt")
    return d / "tiny1.pt", d / "tiny2.pt"


@pytest.fixture(scope="module")
def joint_bundle(ckpts, tmp_path_factory):
    from resm.tasks import run

    tmp = tmp_path_factory.mktemp("joint")
    r = rri_config(tmp, ckpts[0], steps=6)
    m = mrl_config(tmp, ckpts[0], mode="adapters", steps=6)
    cfg = {
        "task": "joint",
        "model": r["model"],
        "tasks": {"rri": {"head": r["head"], "data": r["data"]}, "mrl": {"head": m["head"], "data": m["data"]}},
        "optim": r["optim"],
        "train": train_cfg(tmp / "run", 6),
    }
    return Path(run(cfg)["model_file"])


def _one_line_error(p, *parts):
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for x in parts:
        assert x in lines[0], lines[0]
    return lines[0]


def test_joint_bundle_serves_interact_predict_and_the_api(tmp_path, joint_bundle):
    import resm

    rng = np.random.default_rng(0)
    mir, utr = rand(rng, 21), rand(rng, 700)
    pairs = tmp_path / "p.tsv"
    pairs.write_text(f"a_name\ta_seq\tb_name\tb_seq\nm\t{mir}\tu\t{utr}\n")
    resm_main("interact", pairs, "--model", joint_bundle, "-o", tmp_path / "s.tsv", "--sites", tmp_path / "sites.tsv")
    cli_score = float((tmp_path / "s.tsv").read_text().splitlines()[1].split("\t")[3])
    utrs = tmp_path / "u.fa"
    utrs.write_text(f">short\n{utr[:40]}\n>long\n{utr}\n")
    resm_main("predict", "--task", "mrl", utrs, "--model", joint_bundle, "-o", tmp_path / "m.tsv")
    cli_mrl = [float(r.split("\t")[1]) for r in (tmp_path / "m.tsv").read_text().splitlines()[1:]]

    b = resm.load_bundle(joint_bundle, device="cpu")
    assert b.heads == {"rri": "rri", "mrl": "mrl"}
    (scan,) = b.interact([(mir, utr)])
    assert scan.score == pytest.approx(cli_score, abs=1e-5) and scan.n_windows[1] > 1
    np.testing.assert_allclose(b.predict_mrl({"short": utr[:40], "long": utr}), cli_mrl, rtol=1e-5)
    # one encoder, one adapter: both heads read the same encoder module
    assert b.model.encoder.backbone is not None and set(b.model.heads) == {"rri", "mrl"}

    # fold needs a structure head: the joint rri+mrl bundle has none
    fa = tmp_path / "x.fa"
    fa.write_text(">x\nGGGGAAACCCCAUAGCGCGAAAGCGCU\n")
    p = resm_main("fold", fa, "--model", joint_bundle, "-o", tmp_path / "never.dbn", check=False)
    _one_line_error(p, str(joint_bundle), "no structure head", "resm fold")
    assert not (tmp_path / "never.dbn").exists()
    with pytest.raises(resm.bundle.BundleError) as e:  # the method, not the command ('resm fold')
        b.fold(["GGGGAAACCCC"])
    assert str(e.value) == (
        f"{joint_bundle}: the bundle has no structure head that `Bundle.fold` needs (its heads: mrl (mrl), rri (rri))"
    )
    with pytest.raises(resm.bundle.BundleError, match="longer than the 4000 nt"):
        b.interact([(mir, "A" * 4001)])


def test_bundle_api_names_keywords_and_is_quiet_unless_asked(joint_bundle, capfd):
    """``Bundle.interact(scan=ScanOptions(window=5))`` said '(--window; ...)', a flag the Python
    API has not; ``predict_mrl`` took no ``progress`` (``interact`` and ``embed_sequences`` do);
    the scan's result printed its logit arrays."""
    import resm
    from resm.config import ConfigError
    from resm.tasks.rri_sites import ScanOptions

    b = resm.load_bundle(joint_bundle, device="cpu")
    with pytest.raises(ConfigError) as e:
        b.interact([("ACGUACGUACGU", "ACGUACGUACGU")], scan=ScanOptions(window=5))
    assert "(scan.window;" in str(e.value) and "--" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        b.interact([("ACGUACGUACGU", "ACGUACGUACGU")], scan=ScanOptions(window=10, stride=11))
    assert str(e.value) == "stride must lie in [1, window=10] (scan.stride), got 11"
    capfd.readouterr()
    (scan,) = b.interact([("ACGUACGUACGUAAAC", "GUUUACGUACGUACGU")])
    quiet = b.predict_mrl(["ACGUACGUACGUACGUAAAA"])
    assert capfd.readouterr() == ("", "")  # no bar unless asked, nothing on stdout
    np.testing.assert_array_equal(b.predict_mrl(["ACGUACGUACGUACGUAAAA"], progress=True), quiet)
    out, err = capfd.readouterr()
    assert out == "" and "1/1" in err
    assert "\n" not in repr(scan) and repr(scan).startswith(f"PairScan(score={scan.score:.4g}, sites=")


def test_structure_head_in_a_bundle_folds(tmp_path, ckpts):
    import resm
    from resm.backbone.adapters import AdapterConfig
    from resm.backbone.encoder import BackboneEncoder
    from resm.backbone.load import load_backbone
    from resm.heads.pair_map import StructureHead, StructureHeadConfig, structure_apply
    from resm.heads.rri import InteractionHead, InteractionHeadConfig, rri_apply
    from resm.mapping import get_scheme
    from resm.tasks.base import TaskModel, save_bundle

    scheme = get_scheme("kdny")
    bb = load_backbone(str(ckpts[0]), scheme).model
    enc = BackboneEncoder(bb, "adapters", AdapterConfig(r=2), seed=0)
    torch.manual_seed(0)
    scfg = StructureHeadConfig(embed_dim=bb.embed_dim, proj_dim=8, channels=8, blocks=1, dilations=[1])
    rcfg = InteractionHeadConfig(embed_dim=bb.embed_dim, proj_dim=8, channels=8, max_length=40)
    tm = TaskModel(
        enc,
        {"structure": StructureHead(scfg), "rri": InteractionHead(rcfg)},
        {"structure": structure_apply, "rri": rri_apply},
    )
    strip = lambda c: {k: v for k, v in c.to_dict().items() if k != "embed_dim"}  # noqa: E731
    folder = save_bundle(
        tmp_path / "model",
        tm,
        scheme,
        str(ckpts[0]),
        {
            "structure": {"task": "structure", "config": strip(scfg), "extra": {"threshold": 0.3}},
            "rri": {"task": "rri", "config": strip(rcfg), "extra": {}},
        },
    )
    seq = "GGGGAAACCCCAUAGCGCGAAAGCGCU"
    fa = tmp_path / "x.fa"
    fa.write_text(f">x\n{seq}\n")
    resm_cli("fold", fa, "--model", folder, "-o", tmp_path / "x.dbn")  # the real entry point
    cli = (tmp_path / "x.dbn").read_text().splitlines()
    b = resm.load_bundle(folder, device="cpu")
    ((structure, probs),) = b.fold({"x": seq})
    assert cli[0] == ">x" and cli[1] == seq and cli[2].split()[0] == structure.dotbracket
    assert probs.shape == (len(seq), len(seq)) and np.allclose(probs, probs.T, atol=1e-6)
    # Bundle.fold and Predictor.fold are one: the same type with the same fields, from one path
    # (Bundle.fold was a list of (Structure, dense map) built through fold_one)
    api = resm.load_predictor(folder, device="cpu")
    (mine,) = b.fold([seq])
    (theirs,) = api.fold([seq])
    one = b.fold_one(seq, "seq_1")
    for got in (mine, one):
        assert type(got) is type(theirs) is resm.Folded
        assert (
            (got.name, got.seq, got.dotbracket)
            == (theirs.name, theirs.seq, theirs.dotbracket)
            == ("seq_1", seq, structure.dotbracket)
        )
        np.testing.assert_array_equal(got.pairs, theirs.pairs)
        np.testing.assert_array_equal(got.dense(), theirs.dense())
        np.testing.assert_array_equal(got.dense(), probs)
    i, j, p = one.sparse()
    assert (i < j).all() and np.allclose(p, probs[i, j], atol=1e-6)
    # the probabilities are the head's on the adapter's embeddings, decoded at the stored 0.3
    with torch.no_grad():
        from resm.tasks.base import encode_batch

        batch = encode_batch([seq], scheme)
        ref = torch.sigmoid(b.model(batch, ["structure"])["structure"][0]).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    p = resm_main("predict", "--task", "mrl", fa, "--model", folder, "-o", tmp_path / "never.tsv", check=False)
    _one_line_error(p, str(folder), "no mrl head", "resm predict --task mrl")


def test_bundle_for_another_scheme_or_backbone_is_refused(tmp_path, ckpts, joint_bundle):
    pairs = write_pairs(tmp_path / "p.tsv", rri_pairs(3, 1), labels=False)
    other = tmp_path / "other_scheme"
    shutil.copytree(joint_bundle, other)
    man = json.loads((other / "manifest.json").read_text())
    man["scheme"]["name"] = "kerd"
    (other / "manifest.json").write_text(json.dumps(man))
    for args in (["interact", pairs], ["predict", "--task", "mrl", pairs]):
        p = resm_main(*args, "--model", other, "-o", tmp_path / "never.tsv", check=False)
        _one_line_error(p, str(other))
    fa = tmp_path / "x.fa"
    fa.write_text(">x\nGGGGAAACCCC\n")
    _one_line_error(resm_main("fold", fa, "--model", other, "-o", tmp_path / "n.dbn", check=False), str(other))
    # another backbone (a different checksum) than the one the bundle was trained on
    p = resm_main(
        "interact", pairs, "--model", joint_bundle, "--backbone", ckpts[1], "-o", tmp_path / "never.tsv", check=False
    )
    _one_line_error(p, str(joint_bundle), "backbone")
    import resm

    with pytest.raises(resm.bundle.BundleError, match=str(joint_bundle)):
        resm.load_bundle(joint_bundle, backbone=str(ckpts[1]), device="cpu")
    assert not (tmp_path / "never.tsv").exists()


def test_bundle_without_structure_head_names_the_caller(tmp_path, joint_bundle):
    """``resm.load_predictor(model=BUNDLE)`` on a bundle without a structure head said the
    bundle had no head 'that `resm fold` needs': the API names its own call, while the
    command's line stays as it was."""
    import resm

    heads = "(its heads: mrl (mrl), rri (rri))"
    with pytest.raises(resm.bundle.BundleError) as e:
        resm.load_predictor(joint_bundle, device="cpu")
    assert str(e.value) == f"{joint_bundle}: the bundle has no structure head that `resm.load_predictor` needs {heads}"
    fa = tmp_path / "x.fa"
    fa.write_text(">x\nGGGGAAACCCC\n")
    p = resm_main("fold", fa, "--model", joint_bundle, "-o", tmp_path / "never.dbn", check=False)
    assert p.returncode == 1 and not (tmp_path / "never.dbn").exists()
    assert (
        p.stderr
        == f"resm fold: error: {joint_bundle}: the bundle has no structure head that `resm fold` needs {heads}\n"
    )
