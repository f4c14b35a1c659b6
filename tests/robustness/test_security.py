"""Files resm reads never run code. A pickle whose ``__reduce__`` creates a marker file is
planted in every kind of file resm reads; each command refuses it in one line naming the file,
with exit code 1, and the marker never appears. A positive control shows the payload is live:
unpickled in full (``--trust-checkpoint``), it does create the marker."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from resm.cli import main as cli_main

MARKER_NAME = "PWNED"


class Payload:
    """Unpickling this runs ``exec`` and creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def plant(path: Path, marker: Path, wrap=lambda p: {"model": p}) -> Path:
    """A torch file (zip format) whose unpickling creates ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(wrap(Payload(marker)), path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(argv, capfd):
    capfd.readouterr()
    try:
        code = cli_main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capfd.readouterr().err


# each: (id, build(ws, t, marker) -> (argv, the file to be named))
def _checkpoint(ws, t, m):
    evil = plant(t / "evil.pt", m)
    return ["embed", evil, ws["fa"], t / "e.npz"], evil


def _regression(ws, t, m):
    evil = plant(t / "reg.pt", m)
    return ["embed", ws["tiny"], ws["fa"], t / "e.npz", "--regression", evil], evil


def _regression_beside(ws, t, m):
    shutil.copy2(ws["tiny"], t / "m.pt")
    evil = plant(t / "m-contact-regression.pt", m)
    return ["embed", t / "m.pt", ws["fa"], t / "e.npz"], evil


def _hf_bin(ws, t, m):
    d = t / "hf"
    d.mkdir()
    shutil.copy2(ws["hf"] / "config.json", d / "config.json")
    evil = plant(d / "pytorch_model.bin", m, wrap=lambda p: {"esm.embeddings.word_embeddings.weight": p})
    return ["embed", d, ws["fa"], t / "e.npz"], evil


def _run_copy(ws, t):
    shutil.copytree(ws["run"], t / "run")
    return t / "run" / "checkpoints" / "step_00000002"


def _trainer_state_export(ws, t, m):
    ck = _run_copy(ws, t)
    (ck / "trainer_rank0.json").unlink()  # an old-format (pickled) trainer state instead
    evil = plant(ck / "trainer_rank0.pt", m, wrap=lambda p: {"step": 2, "rng": p})
    return ["export", t / "run", "--out", t / "esm2_m.pt"], evil


def _trainer_state_resume(ws, t, m):
    argv, evil = _trainer_state_export(ws, t, m)
    return _pretrain_here(ws, t), evil


def _pretrain_here(ws, t):
    import yaml

    cfg = yaml.safe_load(Path(ws["pretrain_cfg"]).read_text())
    cfg["train"]["out_dir"] = str(t / "run")
    (t / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return ["pretrain", "--config", t / "cfg.yaml"]


def _engine_export(ws, t, m):
    ck = _run_copy(ws, t)
    evil = plant(ck / "engine.pt", m)
    return ["export", t / "run", "--out", t / "esm2_m.pt"], evil


def _engine_resume(ws, t, m):
    _, evil = _engine_export(ws, t, m)
    return _pretrain_here(ws, t), evil


def _zero_shards(ws, t, m):
    ck = _run_copy(ws, t)
    (ck / "engine.pt").unlink()
    plant(ck / "ds" / "mp_rank_00_model_states.pt", m)
    evil = plant(ck / "ds" / "zero_pp_rank_0_mp_rank_00_optim_states.pt", m)
    return ["export", t / "run", "--out", t / "esm2_m.pt"], evil.parent


def _probe(ws, t, m):
    evil = plant(t / "probe.pt", m, wrap=lambda p: {"weight": p})
    return ["interact", ws["pairs"], "--zero-shot", "--backbone", ws["tiny"], "--probe", evil], evil


def _probe_fold(ws, t, m):
    evil = plant(t / "probe.pt", m, wrap=lambda p: {"weight": p})
    side = json.loads(Path(str(ws["probe"]) + ".json").read_text())
    side["probe_sha256"] = _sha(evil)  # a consistent pair: the weights file is what is refused
    (t / "probe.pt.json").write_text(json.dumps(side))
    return ["fold", ws["fa"], "--model", ws["tiny"], "--probe", evil], evil


def _bundle_copy(ws, t, which="rri_model"):
    """A copy of a bundle elsewhere; its manifest's backbone (recorded relative to the bundle)
    is pointed at the original's."""
    d = t / "model"
    shutil.copytree(ws[which], d)
    m = json.loads((d / "manifest.json").read_text())
    src = m["backbone"]["source"]
    if src and not Path(src).is_absolute():
        m["backbone"]["source"] = str((Path(ws[which]) / src).resolve())
        (d / "manifest.json").write_text(json.dumps(m))
    return d


def _manifest_edit(d: Path, fn) -> None:
    m = json.loads((d / "manifest.json").read_text())
    fn(m)
    (d / "manifest.json").write_text(json.dumps(m))


def _head_file(ws, t, m):
    d = _bundle_copy(ws, t)
    evil = plant(d / "head-rri.safetensors", m)
    _manifest_edit(d, lambda man: man["heads"]["rri"].update(sha256=_sha(evil)))
    return ["interact", ws["pairs"], "--model", d], evil


def _adapter_file(ws, t, m):
    d = _bundle_copy(ws, t)
    evil = plant(d / "adapter-shared.safetensors", m)
    _manifest_edit(
        d, lambda man: man["adapters"].update(shared={"file": evil.name, "sha256": _sha(evil), "config": {"r": 4}})
    )
    return ["interact", ws["pairs"], "--model", d], evil


def _bundle_backbone(ws, t, m):
    d = _bundle_copy(ws, t)
    evil = plant(d / "backbone.pt", m)
    _manifest_edit(d, lambda man: man["backbone"].update(source="backbone.pt"))
    return ["interact", ws["pairs"], "--model", d], evil


def _onehot_bundle(ws, t, m):
    d = t / "model"
    d.mkdir()
    evil = plant(d / "onehot-rri.pt", m, wrap=lambda p: {"format": "resm-onehot-task", "state": p})
    return ["interact", ws["pairs"], "--model", d], evil


def _optimus(ws, t, m):
    d = t / "model"
    d.mkdir()
    evil = plant(d / "optimus-mrl.pt", m, wrap=lambda p: {"format": "resm-optimus", "state": p})
    return ["predict", "--task", "mrl", ws["utrs"], "--model", d], evil


def _structure_model(ws, t, m):
    evil = plant(t / "structure_model.pt", m, wrap=lambda p: {"format": "resm-structure", "head": p})
    return ["fold", ws["fa"], "--model", evil], evil


def _structure_model_evaluate(ws, t, m):
    evil = plant(t / "structure_model.pt", m, wrap=lambda p: {"format": "resm-structure", "head": p})
    return ["evaluate", "structure", "--model", evil, "--dataset", "ts0", "--data-dir", t], evil


def _config_init(ws, t, m):
    evil = plant(t / "init.pt", m)
    argv = _pretrain_here(ws, t) + ["model.arch=null", f"model.init={evil}", f"train.out_dir={t / 'new'}"]
    return argv, evil


def _compare_backend(ws, t, m):
    evil = plant(t / "backbone.pt", m)
    return [
        "compare",
        "--config",
        ws["compare_cfg"],
        f"out_dir={t / 'cmp'}",
        f"backends=[{{name: m, kind: resm, checkpoint: {evil}}}]",
    ], evil


def _compare_rnafm(ws, t, m):
    pytest.importorskip("fm")
    evil = plant(t / "RNA-FM_evil.pth", m, wrap=lambda p: {"args": p, "model": {}})
    return [
        "compare",
        "--config",
        ws["compare_cfg"],
        f"out_dir={t / 'cmp'}",
        f"backends=[{{name: fm, kind: rnafm, checkpoint: {evil}}}]",
    ], evil


KINDS = {
    "fair-esm checkpoint": _checkpoint,
    "contact regression (--regression)": _regression,
    "contact regression (beside the checkpoint)": _regression_beside,
    "HF folder pytorch_model.bin": _hf_bin,
    "trainer state (old .pt) on export": _trainer_state_export,
    "trainer state (old .pt) on resume": _trainer_state_resume,
    "engine.pt on export": _engine_export,
    "engine.pt on resume": _engine_resume,
    "ZeRO shards on export": _zero_shards,
    "probe (interact --probe)": _probe,
    "probe (fold --probe)": _probe_fold,
    "bundle head file": _head_file,
    "bundle adapter file": _adapter_file,
    "bundle backbone.pt": _bundle_backbone,
    "one-hot bundle": _onehot_bundle,
    "Optimus bundle": _optimus,
    "structure model (fold)": _structure_model,
    "structure model (evaluate)": _structure_model_evaluate,
    "config model.init": _config_init,
    "compare resm backend": _compare_backend,
    "compare RNA-FM backend": _compare_rnafm,
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_planted_pickle_never_runs(kind, ws, tmp_path, capfd):
    marker = tmp_path / MARKER_NAME
    argv, named = KINDS[kind](ws, tmp_path, marker)
    code, err = _run(argv, capfd)
    assert not marker.exists(), f"{kind}: the planted code ran"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert str(named) in lines[0] or named.name in lines[0], (named, lines[0])
    assert "weights_only=False" not in err


def test_the_payload_is_live(tmp_path):
    """The control: unpickled in full (what --trust-checkpoint allows), the payload runs."""
    from resm.backbone.load import CheckpointError, safe_load

    marker = tmp_path / MARKER_NAME
    evil = plant(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match=r"evil.pt: refusing to unpickle it: it names exec, which is not allowed"):
        safe_load(evil)
    assert not marker.exists()
    safe_load(evil, trust=True)
    assert marker.exists()


def test_trusting_a_zero_folder_is_explicit(ws, tmp_path, capfd):
    """ZeRO shards go through DeepSpeed's loader, which unpickles: refused by default (above),
    unpickled in full only with --trust-checkpoint."""
    marker = tmp_path / MARKER_NAME
    argv, _ = _zero_shards(ws, tmp_path, marker)
    code, err = _run(argv + ["--trust-checkpoint"], capfd)
    assert marker.exists() and code == 1  # it ran (the files hold no real shards, so export still fails)


def test_deepspeed_loads_are_weights_only(tmp_path):
    """What DeepSpeed's resume reads goes through the same guard."""
    from resm.backbone.load import CheckpointError
    from resm.train_state import guarded_torch_load

    marker = tmp_path / MARKER_NAME
    evil = plant(tmp_path / "zero_pp_rank_0_mp_rank_00_optim_states.pt", marker)
    ok = tmp_path / "ok.pt"
    torch.save({"w": torch.ones(2)}, ok)
    with guarded_torch_load():
        with pytest.raises(CheckpointError, match="zero_pp_rank_0.*names exec.*train.trust_checkpoint"):
            torch.load(evil, weights_only=False)  # what DeepSpeed asks for
        assert torch.equal(torch.load(ok, weights_only=False)["w"], torch.ones(2))
    assert not marker.exists()


def test_arrays_read_back_never_unpickle(tmp_path):
    """numpy files resm reads (the RNAfold prior cache, embeddings) are read without pickle."""
    from resm.embed import read_embeddings
    from resm.heads.pair_map import StructureHeadConfig
    from resm.structure.priors import PriorConfig, cached_dense_prior, cached_prior

    marker = tmp_path / MARKER_NAME
    arr = np.empty(1, dtype=object)
    arr[0] = Payload(marker)
    seq = "GGGAAACCC"
    cfg = StructureHeadConfig()
    cached_dense_prior(tmp_path / "cache", seq, cfg)  # writes the cache file
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    np.savez(cache_file, bpp=arr, seq_sha256=arr)  # replaced by pickled object arrays
    prior = cached_dense_prior(tmp_path / "cache", seq, cfg)  # not unpickled: computed again
    assert prior.shape == (len(seq), len(seq))
    sparse = cached_prior(tmp_path / "sparse", seq, PriorConfig())  # the pair head's prior cache
    (cache_file,) = (tmp_path / "sparse").glob("*.npz")
    np.savez(cache_file, i=arr, j=arr, p=arr, length=arr)
    again = cached_prior(tmp_path / "sparse", seq, PriorConfig())  # not unpickled: computed again
    assert np.array_equal(again.i, sparse.i) and np.allclose(again.p, sparse.p)
    np.savez(tmp_path / "emb.npz", __index__=arr, x=arr)
    with pytest.raises(ValueError, match=r"emb.npz: not a readable embeddings file \(it holds pickled Python objects"):
        read_embeddings(tmp_path / "emb.npz")
    assert not marker.exists()
