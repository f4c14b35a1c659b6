"""``resm compare`` and its backends, offline, with tiny checkpoints made here: a tiny mapped
ESM-2 (kdny), the same architecture under the native-nucleotide scheme (nt), a tiny RNA-FM in
the exact checkpoint format of the ``fm`` package, a missing checkpoint and the (not installed)
multimolecule backend, on synthetic hairpins."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from resm.backbone.attention import sym_apc
from resm.cli import main as cli_main
from resm.compare.backends import BackendSpec, BackendUnavailable, make_backend
from resm.compare.config import parse_config
from resm.config import ConfigError
from resm.structure.io import Structure, write_structures

RC = {"A": "U", "C": "G", "G": "C", "U": "A"}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny resm checkpoints (kdny and nt) and a tiny RNA-FM checkpoint."""
    from resm.backbone.load import init_model, resm_meta, save_fair_esm
    from resm.mapping import get_scheme

    d = tmp_path_factory.mktemp("ckpt")
    out = {}
    for scheme, seed in (("kdny", 1), ("nt", 2)):
        model = init_model("tiny", seed=seed)
        out[scheme] = d / f"tiny_{scheme}.pt"
        save_fair_esm(model, out[scheme], meta=resm_meta(get_scheme(scheme), "tiny", init="random", seed=seed))
    out["rnafm"] = d / "RNA-FM_tiny.pth"
    _tiny_rnafm(out["rnafm"])
    return out


def _tiny_rnafm(path, seed: int = 0, max_positions: int = 64):
    """A 2-layer RNA-FM built with fm's own classes, saved as RNA-FM's released file is: a dict
    with fairseq-style ``args`` (``encoder_*`` names) and ``model`` (``encoder.sentence_encoder.*``
    and ``encoder.lm_head.*`` weights, no contact regression)."""
    fm = pytest.importorskip("fm")  # the optional `compare` extra (installed with `dev`)
    from fm.model.esm1 import BioBertModel

    torch.manual_seed(seed)
    args = argparse.Namespace(
        arch="roberta_large",
        layers=2,
        embed_dim=32,
        ffn_embed_dim=64,
        attention_heads=4,
        max_positions=max_positions,
        emb_layer_norm_before=True,
    )
    model = BioBertModel(args, fm.Alphabet.from_architecture("roberta_large", theme="rna"))
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith("contact_head."):
            continue
        state[("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k] = v.clone()
    file_args = argparse.Namespace(
        arch="roberta_large",
        encoder_layers=2,
        encoder_embed_dim=32,
        encoder_ffn_embed_dim=64,
        encoder_attention_heads=4,
        max_positions=max_positions,
    )
    torch.save({"args": file_args, "model": state}, path)


def rand(rng, n, letters="ACGU"):
    return "".join(rng.choice(list(letters), n))


def hairpins(n: int, seed: int, prefix=lambda i: "hp"):
    """Easy hairpins: a 7-bp G/C-rich stem, a 4-nt loop, flanks of A/C of varying length."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        a, b = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        stem = rand(rng, 7, "GGCCGCU")
        loop = rng.choice(["GAAA", "UUCG", "GCAA", "GAGA"])
        seq = rand(rng, a, "AC") + stem + loop + "".join(RC[c] for c in reversed(stem)) + rand(rng, b, "AC")
        pairs = np.full(len(seq), -1)
        for k in range(7):
            pairs[a + k], pairs[a + 17 - k] = a + 17 - k, a + k
        recs.append(Structure(f"{prefix(i)}_{i}", seq, pairs))
    return recs


def write_archiveii_csv(recs, path):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "sequence", "len", "structure", "base_pairs"])
        for r in recs:
            pl = [[int(i) + 1, int(j) + 1] for i, j in enumerate(r.pairs) if j > i]
            w.writerow([r.name, r.seq, len(r.seq), r.dotbracket, json.dumps(pl)])


# --------------------------------------------------------------------------- backends
def _spec(**kw):
    return BackendSpec.from_dict(kw, "test")


@pytest.mark.parametrize("scheme", ["kdny", "nt"])
def test_resm_backend_shapes_and_features(ckpts, scheme):
    from resm.alphabet import pad_batch
    from resm.backbone.esm2 import ContactHead

    b = make_backend(_spec(name=f"t-{scheme}", kind="resm", checkpoint=str(ckpts[scheme]), scheme=scheme)).load()
    seq = "GGGCAUCGAAAGAUGCCCAU"
    L = len(seq)
    h = b.embed(seq)
    assert h.shape == (L, 64) and h.dtype == torch.float32
    f = b.attention_maps(seq)
    assert f.shape == (2 * 4, L, L)
    # the same features as ContactHead.features on fair-esm-style stacked maps
    tokens = pad_batch([b.scheme.encode(seq)])
    with torch.no_grad():
        out = b.model(tokens, repr_layers=[2], need_head_weights=True, return_logits=False)
    ref = torch.cat([ContactHead.features(out["attentions"][:, k], tokens)[0] for k in range(2)])
    assert torch.allclose(f, ref, atol=1e-5)
    assert torch.allclose(h, out["representations"][2][0, 1:-1], atol=1e-5)
    if scheme == "nt":  # native nucleotide tokens: the ESM alphabet's own A, C, G, U
        assert b.scheme.to_protein("ACGU") == "ACGU"
    assert torch.allclose(b.embed(seq.replace("U", "T").lower()), h)  # T read as U, case folded


def test_resm_backend_scheme_mismatch_is_an_error(ckpts):
    from resm.mapping import MappingError

    with pytest.raises(MappingError, match="kdny"):
        make_backend(_spec(name="x", kind="resm", checkpoint=str(ckpts["kdny"]), scheme="nt")).load()


def test_rnafm_backend(ckpts, tmp_path):
    fm = pytest.importorskip("fm")

    b = make_backend(_spec(name="rna-fm", kind="rnafm", checkpoint=str(ckpts["rnafm"]))).load()
    assert (b.num_layers, b.num_heads, b.embed_dim, b.max_length) == (2, 4, 32, 62)
    seq = "GGGCAUCGAAAGAUGCCCNAU"
    L = len(seq)
    h = b.embed(seq)
    f = b.attention_maps(seq)
    assert h.shape == (L, 32) and f.shape == (2 * 4, L, L)
    assert torch.isfinite(h).all() and torch.isfinite(f).all()
    assert torch.allclose(f, f.transpose(1, 2), atol=1e-5)  # symmetrised

    # the file is what fm's own local loader reads (given the Namespace allow-listed); same outputs
    with torch.serialization.safe_globals([argparse.Namespace]), pytest.warns(UserWarning, match="Regression"):
        ref_model, alphabet = fm.pretrained.load_model_and_alphabet_local(str(ckpts["rnafm"]), theme="rna")
    ref_model.eval()
    _, _, tokens = alphabet.get_batch_converter()([("s", seq)])
    assert tokens.shape[1] == L + 2 and tokens[0, 0] == alphabet.cls_idx and tokens[0, -1] == alphabet.eos_idx
    with torch.no_grad():
        out = ref_model(tokens, repr_layers=[2], need_head_weights=True)
    assert torch.allclose(h, out["representations"][2][0, 1:-1], atol=1e-5)  # no BOS/EOS rows
    ref = torch.cat([sym_apc(out["attentions"][0, k, :, 1:-1, 1:-1]) for k in range(2)])
    assert torch.allclose(f, ref, atol=1e-5)

    # T/U and case: RNA-FM's alphabet has no T (fm alone would read <unk>); the backend reads U
    assert alphabet.get_idx("T") == alphabet.unk_idx
    assert torch.allclose(b.embed(seq.replace("U", "T").lower()), h, atol=1e-6)
    with pytest.raises(ValueError, match="longer than"):
        b.embed("A" * 63)

    # a renamed file (no "RNA-FM" in the name: fm's local loader would look for a regression file)
    other = tmp_path / "my_model.pth"
    other.write_bytes(ckpts["rnafm"].read_bytes())
    b2 = make_backend(_spec(name="x", kind="rnafm", checkpoint=str(other))).load()
    assert torch.allclose(b2.embed(seq), h)


def test_unavailable_backends_are_skipped_with_a_reason(tmp_path):
    with pytest.raises(BackendUnavailable, match="not found"):
        make_backend(_spec(name="a", kind="resm", checkpoint=str(tmp_path / "none.pt"))).load()
    with pytest.raises(BackendUnavailable, match="RNA-FM checkpoint .* not found"):
        make_backend(_spec(name="b", kind="rnafm", checkpoint=str(tmp_path / "none.pth"))).load()
    try:
        import multimolecule  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match="multimolecule package is not installed"):
            make_backend(_spec(name="c", kind="multimolecule", model="multimolecule/rinalmo")).load()


# --------------------------------------------------------------------------- config
GOOD = {
    "data": {"train": "a.dbn", "val": "b.dbn", "test": "c.dbn"},
    "backends": [{"name": "v", "kind": "viennarna"}],
}


@pytest.mark.parametrize(
    "patch, msg",
    [
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"data": {"train": "a", "val": "b", "test": "c", "max_trian": 3}}, "data: unknown key 'max_trian'"),
        ({"backends": [{"name": "x", "kind": "esm3"}]}, "unknown kind 'esm3'"),
        (
            {"backends": [{"name": "x", "kind": "resm", "checkpoint": "m.pt", "model": "y"}]},
            "unknown key 'model' for kind resm",
        ),
        ({"backends": [{"name": "x", "kind": "rnafm"}]}, "needs key 'checkpoint'"),
        ({"backends": [{"name": "x", "kind": "folder", "folder": "mfold"}]}, "unknown folder 'mfold'"),
        ({"backends": [{"name": "x", "kind": "folder"}]}, "needs key 'folder'"),
        ({"backends": [{"name": "v", "kind": "viennarna"}, {"name": "v", "kind": "viennarna"}]}, "used twice"),
        ({"head": {"use_attention": True}}, r"head.use_attention cannot be set"),
        ({"head": {"chanels": 8}}, "head: unknown key 'chanels'"),
        ({"train": {"steps": 0}}, "train.steps must be an integer >= 1"),
        ({"probe": {"method": "best"}}, "probe.method"),
    ],
)
def test_config_errors_name_the_key(patch, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_config({**GOOD, **patch})
    assert parse_config(GOOD).output_dir() == Path("runs/compare/compare")  # never experiments/results/


def test_bad_config_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "backends": [{"name": "x", "kind": "esm3"}]}))
    assert cli_main(["compare", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown kind 'esm3'" in err and err.startswith("resm compare: error:")
    there = tmp_path / "there.dbn"
    there.write_text(">a\nGGGAAACCC\n(((...)))\n")
    data = {"train": str(tmp_path / "nope.dbn"), "val": str(there), "test": str(there)}
    path.write_text(yaml.safe_dump({**GOOD, "data": data}))
    assert cli_main(["compare", "--config", str(path)]) == 1
    assert capsys.readouterr().err == f"resm compare: error: data.train: {tmp_path / 'nope.dbn'}: no such file\n"


# --------------------------------------------------------------------------- end to end
def test_compare_end_to_end(ckpts, tmp_path, capsys, monkeypatch):
    import matplotlib.colors as mcolors

    from resm.compare import plots

    drawn = []  # (figure, backend label, colour) of every line and bar, before the figure is saved
    real_savefig = plots._savefig

    def savefig(fig, path):
        for ax in fig.axes:
            drawn.extend(
                [
                    (path.name, ln.get_label(), mcolors.to_hex(ln.get_color()))
                    for ln in ax.get_lines()
                    if not ln.get_label().startswith("_")
                ]
            )
            drawn.extend(
                [
                    (path.name, c.get_label(), mcolors.to_hex(c.patches[0].get_facecolor()))
                    for c in ax.containers
                    if c.patches
                ]
            )
        real_savefig(fig, path)

    monkeypatch.setattr(plots, "_savefig", savefig)
    fams = ["tRNA", "5s", "srp"]
    write_structures(hairpins(24, 0), tmp_path / "tr.dbn")
    write_structures(hairpins(8, 1), tmp_path / "va.dbn")
    write_archiveii_csv(hairpins(9, 2, prefix=lambda i: fams[i % 3]), tmp_path / "te.csv")
    out = tmp_path / "out"
    keep = os.environ.get("RESM_TEST_KEEP")  # inspect the outputs of this test there
    if keep:
        out = Path(keep)
    cfg = {
        "data": {
            "train": str(tmp_path / "tr.dbn"),
            "val": str(tmp_path / "va.dbn"),
            "test": str(tmp_path / "te.csv"),
            "max_train": 20,
            "max_val": 8,
            "max_test": 9,
            "max_length": 60,
            "seed": 0,
        },
        "backends": [
            {"name": "resm-kdny", "kind": "resm", "checkpoint": str(ckpts["kdny"]), "scheme": "kdny"},
            {"name": "native-nt", "kind": "resm", "checkpoint": str(ckpts["nt"]), "scheme": "nt"},
            {"name": "rna-fm", "kind": "rnafm", "checkpoint": str(ckpts["rnafm"])},
            {"name": "missing", "kind": "resm", "checkpoint": str(tmp_path / "absent.pt")},
            {"name": "rinalmo", "kind": "multimolecule", "model": "multimolecule/rinalmo"},
            {"name": "viennarna", "kind": "viennarna"},
            {"name": "eternafold", "kind": "folder", "folder": "eternafold"},
        ],
        "probe": {"max_pairs_per_seq": 200},
        "head": {"proj_dim": 8, "channels": 8, "blocks": 1, "dilations": [1], "dropout": 0.0},
        "train": {"steps": 60, "lr": 5.0e-3, "crop": 24, "batch": 4, "seed": 0},
        "out_dir": str(out),
        "progress": False,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli_main(["compare", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "SKIPPED backend missing: checkpoint" in printed and "SKIPPED backend rinalmo:" in printed

    with open(out / "results.csv") as fh:
        rows = {r["backend"]: r for r in csv.DictReader(fh)}
    assert list(rows) == ["resm-kdny", "native-nt", "rna-fm", "missing", "rinalmo", "viennarna", "eternafold"]
    assert rows["missing"]["status"].startswith("skipped: checkpoint") and "absent.pt" in rows["missing"]["status"]
    assert rows["rinalmo"]["status"].startswith("skipped: ")
    for name in ("resm-kdny", "native-nt", "rna-fm"):
        r = rows[name]
        assert r["status"] == "ok"
        for k in ("zeroshot_f1", "zeroshot_f1_shift", "supervised_f1", "supervised_f1_shift"):
            assert 0.0 <= float(r[k]) <= 1.0
        assert float(r["embed_s"]) > 0 and float(r["params_m"]) > 0
    assert float(rows["resm-kdny"]["supervised_f1"]) > 0  # the head learns the easy stems
    assert float(rows["viennarna"]["mfe_f1"]) > 0.8
    assert rows["viennarna"]["supervised_f1"] == ""
    assert float(rows["eternafold"]["mfe_f1"]) > 0.8 and "EternaFold parameters" in rows["eternafold"]["status"]

    md = (out / "results.md").read_text()
    for name in rows:
        assert f"| {name} |" in md
    assert "skipped: checkpoint" in md and "| viennarna | viennarna | ok (RNAfold MFE) |" in md
    for png in ("f1_vs_length.png", "time_memory_vs_length.png", "per_family.png"):
        assert (out / png).stat().st_size > 1000
    colours = {}  # one colour per backend across every panel and figure, distinct between backends
    for _fig, label, c in drawn:
        colours.setdefault(label.split(" (")[0], set()).add(c)
    assert {"resm-kdny", "native-nt", "rna-fm", "viennarna"} <= set(colours)
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == len(colours)
    assert {f for f, _, _ in drawn} == {"f1_vs_length.png", "time_memory_vs_length.png", "per_family.png"}
    with open(out / "per_sequence.csv") as fh:
        per = list(csv.DictReader(fh))
    assert {r["family"] for r in per} == set(fams)
    assert {(r["backend"], r["method"]) for r in per} >= {
        ("resm-kdny", "zeroshot"),
        ("resm-kdny", "supervised"),
        ("viennarna", "mfe"),
    }
    # identical budgets: every trained backbone's head saw the same data, splits and steps
    conf = json.loads((out / "config.json").read_text())
    assert conf["train"]["steps"] == 60 and set(conf["details"]) == {
        "resm-kdny",
        "native-nt",
        "rna-fm",
        "viennarna",
        "eternafold",
    }


def test_too_long_for_a_backend_is_a_skip_and_disabled_stages(tmp_path):
    from resm.compare.harness import run_compare

    _tiny_rnafm(tmp_path / "RNA-FM_short.pth", max_positions=16)  # at most 14 nt
    write_structures(hairpins(4, 3), tmp_path / "s.dbn")
    cfg = {
        "data": {"train": str(tmp_path / "s.dbn"), "val": str(tmp_path / "s.dbn"), "test": str(tmp_path / "s.dbn")},
        "backends": [
            {"name": "rna-fm", "kind": "rnafm", "checkpoint": str(tmp_path / "RNA-FM_short.pth")},
            {"name": "viennarna", "kind": "viennarna"},
        ],
        "probe": {"enabled": False},
        "train": {"enabled": False},
        "out_dir": str(tmp_path / "o"),
        "progress": False,
    }
    logged = []
    res = run_compare(cfg, log=logged.append)
    rows = {r["backend"]: r for r in res["rows"]}
    assert (
        rows["rna-fm"]["status"].startswith("skipped: sequences up to") and "limit of 14 nt" in rows["rna-fm"]["status"]
    )
    assert any(line.startswith("SKIPPED backend rna-fm on structure:") for line in logged)
    assert rows["viennarna"]["mfe_f1"] > 0.8
    assert not (tmp_path / "o" / "per_family.png").exists()  # not ArchiveII: no families
    assert (tmp_path / "o" / "f1_vs_length.png").exists()


def test_plots_keep_one_colour_per_backend_when_a_panel_lacks_one(tmp_path, monkeypatch):
    """A backend with no zero-shot series must not shift the colours of the others."""
    import types

    import matplotlib.colors as mcolors

    from resm.compare import plots

    drawn = []
    monkeypatch.setattr(
        plots,
        "_savefig",
        lambda fig, path: drawn.extend(
            (ln.get_label(), mcolors.to_hex(ln.get_color()))
            for ax in fig.axes
            for ln in ax.get_lines()
            if not ln.get_label().startswith("_")
        ),
    )
    names = ["a", "b", "c"]
    recs = [types.SimpleNamespace(name=f"r{k}", length=20 + 10 * k) for k in range(6)]
    test = types.SimpleNamespace(records=[r.name * r.length for r in recs], archiveii=False, family=lambda r: None)
    per = [
        {
            "backend": b,
            "method": m,
            "f1": 0.5,
            "length": r.length,
            "name": r.name,
            "seconds": 0.1,
            "peak_mem_mb": 1.0,
            "family": None,
        }
        for b in names
        for m in ("zeroshot", "supervised")
        for r in recs
        if not (b == "a" and m == "zeroshot")
    ]
    cfg = types.SimpleNamespace(
        name="x",
        device="cpu",
        train=types.SimpleNamespace(enabled=True),
        backends=[types.SimpleNamespace(name=b) for b in names],
    )
    result = {"per_sequence": per, "splits": {"test": test}, "rows": [{"backend": b, "status": "ok"} for b in names]}
    plots.make_plots(cfg, result, tmp_path)
    colours = {}
    for label, c in drawn:
        colours.setdefault(label, set()).add(c)
    assert set(colours) == set(names) and all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == 3
