"""The structure task in ``resm compare`` (its :class:`resm.tasks.base.CompareSpec`): the config
sections ``data``, ``probe``, ``head`` and ``train``, the structure sets (drawn once), the
protocol run for one backend (:func:`run_backend`) and its section of the outputs.

1. **Zero-shot structure probe.** The one probe fit of :mod:`resm.structure.probe`
   (:func:`resm.structure.probe.fit_probe_weights`: StandardScaler + L2 ``LogisticRegression``)
   over the symmetrised + APC attention maps of all layers and heads, read from each backend
   through the attention consumers of :mod:`resm.backbone.attention`, fitted on the training
   structures (all pairs with ``j - i > min_sep`` as positives, ``max_pairs_per_seq`` sampled
   non-pairs); the decoding threshold is chosen on the validation structures
   (:func:`resm.structure.decode.choose_threshold`); F1 on the test structures
   (:func:`resm.structure.metrics.evaluate`, per-sequence mean, strict and ±1 shift). A
   backend without attention maps (one-hot) shows "n/a".
2. **Supervised structure head, backbone frozen.** The same :class:`StructureHeadConfig` and the
   same budget (steps, lr, batch, crop, seed: identical initialisation and identical batches)
   for every backbone: :class:`resm.heads.pair_map.StructureHead` on the backend's per-residue
   embeddings, computed once per sequence (full sequence) and cached in memory; training windows
   of ``crop`` residues are cut from the cache; trained on
   :func:`resm.heads.pair_map.pair_loss` by the one training loop, :class:`resm.train.Trainer`
   (:mod:`resm.compare.training`). Threshold on validation, F1 on test.
3. **Classical folder rows.** RNAfold MFE (or another folder's) F1 on the same test structures.

Outputs: ``results.csv`` (backend x zero-shot F1, supervised F1 strict and ±1, classical fold
F1, embedding seconds over the test set, peak memory of one forward pass), ``per_sequence.csv``
and the plots of :mod:`resm.compare.plots` (``f1_vs_length.png``, ``time_memory_vs_length.png``
and, when the test set is an ArchiveII CSV (family = the name's prefix before ``_``),
``per_family.png``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import ConfigError, PathText
from ..heads.pair_map import StructureHeadConfig
from ..structure.io import Structure
from ..structure.probe import ProbeFitOptions, fit_probe_weights
from ..tasks.structure_task import COMPARE_COLUMNS as COLUMNS
from .backends import Backend, BackendUnavailable, ViennaBackend
from .config import Budget, CompareConfig, head_options, number, positive
from .data import Split, load_split
from .harness import empty_row, nanmax
from .measure import PeakMemory, Timed, embed_all
from .report import NA, budget_text, table
from .training import CachedStructureTask, head_probs, train_cached

__all__ = [
    "DataSection",
    "ProbeSection",
    "TrainSection",
    "COLUMNS",
    "AttentionProbe",
    "fit_attention_probe",
    "run_backend",
    "load_structure_splits",
]

HEAD_FORBIDDEN = {
    "embed_dim": "taken from each backend",
    "use_attention": "the head reads embeddings only (the probe covers attention)",
    "attn_channels": "the head reads embeddings only",
    "use_bpp": "the head reads embeddings only (ViennaRNA is its own row)",
}


@dataclass
class DataSection:
    """The structure sets: the same records for every backend.

    Attributes:
        train: structures to fit the probe and train the head on: any file
            :func:`resm.structure.io.read_structures` reads (dbn, bpseq, ct, pairs; ``.gz`` ok) or
            an ArchiveII CSV (:func:`resm.structure.io.read_archiveii_csv`).
        val: structures to choose the decoding thresholds on.
        test: structures the F1 is reported on (an ArchiveII CSV also gives ``per_family.png``).
        max_train, max_val, max_test: seeded random subsets of this size (null: all).
        max_length: records longer than this are left out of every set (no cropping at test).
        seed: seed of the subsets.
    """

    train: PathText = ""
    val: PathText = ""
    test: PathText = ""
    max_train: int | None = 100
    max_val: int | None = 100
    max_test: int | None = 200
    max_length: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for k in ("train", "val", "test"):
            if not getattr(self, k):
                raise ConfigError(f"data.{k}: give a structure file")
        for k in ("max_train", "max_val", "max_test"):
            positive(f"data.{k}", getattr(self, k), allow_none=True)
        positive("data.max_length", self.max_length)
        positive("data.seed", self.seed, zero=True)


@dataclass
class ProbeSection:
    """The zero-shot attention probe.

    Attributes:
        enabled: run it (backends without attention maps show "n/a").
        max_pairs_per_seq: sampled non-pairs per training structure.
        C: inverse L2 strength of the logistic regression.
        min_sep: pairs need ``j - i > min_sep``.
        method: decoding, ``greedy`` or ``matching``.
        seed: seed of the non-pair sampling.
    """

    enabled: bool = True
    max_pairs_per_seq: int = 1000
    C: float = 1.0
    min_sep: int = 3
    method: str = "greedy"
    seed: int = 0

    def __post_init__(self) -> None:
        positive("probe.max_pairs_per_seq", self.max_pairs_per_seq)
        positive("probe.min_sep", self.min_sep, zero=True)
        if self.method not in ("greedy", "matching"):
            raise ConfigError(f"probe.method must be greedy or matching, got {self.method!r}")
        if not isinstance(self.C, (int, float)) or self.C <= 0:
            raise ConfigError(f"probe.C must be a positive number, got {self.C!r}")


@dataclass
class TrainSection(Budget):
    """The supervised structure head's budget (the fields of :class:`Budget`; ``batch``
    counts training windows, ``seed`` also draws the crops), and:

    Attributes:
        enabled: train the head.
        crop: window length; longer records are cropped at a random start (pairs leaving the
            window are dropped); shorter ones are used whole.
        pos_weight: weight of the paired term of the binary cross-entropy.
        tile: tile of the memory-bounded inference (:meth:`StructureHead.predict_tiled`).
    """

    where: ClassVar[str] = "train"

    enabled: bool = True
    steps: int = 200
    lr: float = 2.0e-3
    batch: int = 4
    crop: int = 160
    pos_weight: float = 10.0
    tile: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        for k in ("crop", "tile"):
            positive(f"train.{k}", getattr(self, k))
        number("train.pos_weight", self.pos_weight)


def parse_head(raw: Any, key: str) -> dict[str, Any]:
    """The ``head`` section: :class:`resm.heads.pair_map.StructureHeadConfig` options except
    embed_dim (taken from each backend) and the attention / bpp inputs."""
    return dict(head_options(key, raw or {}, StructureHeadConfig, HEAD_FORBIDDEN))


def head_config(cfg: CompareConfig, embed_dim: int) -> StructureHeadConfig:
    """The structure head's config for a backend of width ``embed_dim``."""
    return StructureHeadConfig(**{**cfg.head, "embed_dim": int(embed_dim)})


def load_structure_splits(d: DataSection) -> dict[str, Split]:
    """The train / val / test structure sets of ``data``."""
    return {
        "train": load_split(d.train, d.max_train, d.max_length, d.seed, "data.train"),
        "val": load_split(d.val, d.max_val, d.max_length, d.seed, "data.val"),
        "test": load_split(d.test, d.max_test, d.max_length, d.seed, "data.test"),
    }


def load(cfg: CompareConfig, log) -> dict[str, Split]:
    """The structure sets, read and checked before any backend runs."""
    d = cfg.data
    splits = load_structure_splits(d)
    for k, s in splits.items():
        log(
            f"{k}: {len(s.records)} structures from {s.path} ({s.n_long} longer than {d.max_length} nt and "
            f"{s.n_bad} without a valid sequence left out)"
        )
    return splits


# ----------------------------------------------------------------------------- zero-shot probe
@dataclass
class AttentionProbe:
    """Logistic regression over attention features, folded back to raw-feature weights."""

    weight: np.ndarray  # (layers * heads,)
    bias: float
    heads: int
    n_seqs: int
    n_pos: int
    n_neg: int
    train_auroc: float

    def pair_probs(self, backend: Backend, seq: str) -> np.ndarray:
        """(L, L) probabilities, accumulated layer by layer (O(H L^2) memory)."""
        return torch.sigmoid(backend.weighted_attention(seq, self.weight) + self.bias).cpu().numpy()


def fit_attention_probe(
    backend: Backend, recs: Sequence[Structure], cfg: ProbeSection, progress: bool = True
) -> AttentionProbe:
    """Fit the probe on ``recs`` with the one probe fit, :func:`resm.structure.probe.fit_probe_weights`,
    on the backend's attention features (:meth:`resm.compare.backends.Backend.pair_features`)."""
    fit = fit_probe_weights(
        lambda r, index: backend.pair_features(r.seq, index),
        recs,
        ProbeFitOptions(max_pairs_per_seq=cfg.max_pairs_per_seq, C=cfg.C, seed=cfg.seed, min_sep=cfg.min_sep),
        progress=progress,
        desc=f"{backend.name}: probe features",
    )
    return AttentionProbe(
        fit["weight"].astype(np.float32),
        fit["bias"],
        backend.num_heads,
        fit["n_seqs"],
        fit["n_pos"],
        fit["n_neg"],
        fit["train_auroc"],
    )


# ----------------------------------------------------------------------------- scoring
def _choose_and_decode(val_maps, val_recs, test_maps, test_recs, method: str, min_loop: int):
    from ..structure.decode import choose_threshold, decode

    t = float(
        choose_threshold(
            val_maps, [r.seq for r in val_recs], [r.pairs for r in val_recs], method=method, min_loop=min_loop
        )
    )
    preds = [decode(P, r.seq, t, method, min_loop=min_loop) for P, r in zip(test_maps, test_recs)]
    return t, preds


def _score(preds, recs) -> tuple[dict[str, float], list[tuple[float, float]]]:
    from ..structure.metrics import evaluate, f1_score

    m = evaluate(preds, [r.pairs for r in recs])
    per = [(f1_score(p, r.pairs), f1_score(p, r.pairs, shift=True)) for p, r in zip(preds, recs)]
    return m, per


def run_backend(
    backend: Backend, cfg: CompareConfig, splits: dict[str, Split], log
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The whole protocol for one loaded backend (the structure task's compare runner): (table
    row, details, ``{"per_sequence": rows}``)."""
    tr, va, te = (splits[k].records for k in ("train", "val", "test"))
    row = empty_row(backend.spec, "ok", COLUMNS)
    per_seq: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    prog = cfg.progress

    def seq_rows(method: str, scores, timed: Timed | None):
        for k, (r, (f, fs)) in enumerate(zip(te, scores)):
            per_seq.append(
                {
                    "backend": backend.name,
                    "method": method,
                    "name": r.name,
                    "length": len(r),
                    "family": splits["test"].family(r),
                    "f1": f,
                    "f1_shift": fs,
                    "seconds": timed.seconds[k] if timed else None,
                    "peak_mem_mb": timed.peak_mb[k] if timed else None,
                }
            )

    if isinstance(backend, ViennaBackend):
        preds, secs, mems = [], [], []
        for r in tqdm(te, desc=f"{backend.name}: fold", disable=not prog, leave=False):
            with PeakMemory("cpu") as pm:
                t0 = time.perf_counter()
                preds.append(backend.fold(r.seq))
                secs.append(time.perf_counter() - t0)
            mems.append(pm.mb)
        m, per = _score(preds, te)
        what = getattr(backend, "about", "RNAfold MFE")
        row.update(
            status=f"ok ({what})",
            mfe_f1=m["f1_mean"],
            mfe_f1_shift=m["f1_shift_mean"],
            embed_s=float(np.sum(secs)),
            peak_mem_mb=nanmax(mems),
        )
        seq_rows("mfe", per, Timed(secs, mems))
        return row, {"mfe": m}, {"per_sequence": per_seq}

    if backend.max_length is not None:
        longest = max(len(r) for s in splits.values() for r in s.records)
        if longest > backend.max_length:
            raise BackendUnavailable(
                f"sequences up to {longest} nt exceed its limit of {backend.max_length} nt "
                f"(set data.max_length <= {backend.max_length})"
            )
    row.update(params_m=backend.num_params / 1e6)
    details["model"] = backend.describe()

    # embeddings: one timed pass per sequence, cached (the head's input)
    need_embs = cfg.train.enabled
    timed_test: Timed | None = None
    embs: dict[str, list[torch.Tensor]] = {}
    for k in ("test", "val", "train") if need_embs else ("test",):
        e, timed = embed_all(backend, splits[k].records, prog, f"{backend.name}: embed {k}")
        embs[k] = e if need_embs else []
        if k == "test":
            timed_test = timed
    assert timed_test is not None
    row.update(embed_s=float(np.sum(timed_test.seconds)), peak_mem_mb=nanmax(timed_test.peak_mb))

    # 1. zero-shot probe
    if cfg.probe.enabled and backend.has_attention:
        probe = fit_attention_probe(backend, tr, cfg.probe, prog)
        val_maps = [
            probe.pair_probs(backend, r.seq)
            for r in tqdm(va, desc=f"{backend.name}: probe val", disable=not prog, leave=False)
        ]
        test_maps = [
            probe.pair_probs(backend, r.seq)
            for r in tqdm(te, desc=f"{backend.name}: probe test", disable=not prog, leave=False)
        ]
        t, preds = _choose_and_decode(val_maps, va, test_maps, te, cfg.probe.method, cfg.probe.min_sep)
        m, per = _score(preds, te)
        row.update(zeroshot_f1=m["f1_mean"], zeroshot_f1_shift=m["f1_shift_mean"])
        seq_rows("zeroshot", per, timed_test)
        details["zeroshot"] = {
            "threshold": t,
            "train_auroc": probe.train_auroc,
            "n_pos": probe.n_pos,
            "n_neg": probe.n_neg,
            **m,
        }
        log(
            f"{backend.name}: zero-shot F1 {m['f1_mean']:.3f} (±1 {m['f1_shift_mean']:.3f}), threshold {t:g}, "
            f"train AUROC {probe.train_auroc:.3f}"
        )
    elif cfg.probe.enabled:
        row.update(zeroshot_f1=NA, zeroshot_f1_shift=NA)
        details["zeroshot"] = "n/a: the backend has no attention maps"

    # 2. supervised head on frozen, cached embeddings
    if cfg.train.enabled:
        hcfg = head_config(cfg, backend.embed_dim)
        sec = cfg.train
        task = CachedStructureTask(embs["train"], tr, hcfg, sec.batch, sec.crop, sec.pos_weight, sec.seed)
        loss = train_cached(task, sec, backend.device, prog)
        head = task.model
        val_maps = head_probs(head, embs["val"], va, cfg.train.tile, prog, f"{backend.name}: head val")
        test_maps = head_probs(head, embs["test"], te, cfg.train.tile, prog, f"{backend.name}: head test")
        t, preds = _choose_and_decode(val_maps, va, test_maps, te, cfg.probe.method, hcfg.min_loop)
        m, per = _score(preds, te)
        row.update(supervised_f1=m["f1_mean"], supervised_f1_shift=m["f1_shift_mean"])
        seq_rows("supervised", per, timed_test)
        details["supervised"] = {"threshold": t, "final_loss": loss, "head_params": head.num_parameters(), **m}
        log(
            f"{backend.name}: supervised F1 {m['f1_mean']:.3f} (±1 {m['f1_shift_mean']:.3f}), threshold {t:g}, "
            f"final loss {loss:.4f}"
        )
    if not any(r["method"] != "embed" for r in per_seq):
        seq_rows("embed", [(None, None)] * len(te), timed_test)
    return row, details, {"per_sequence": per_seq}


def report(cfg: CompareConfig, result: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The structure section of ``results.md``."""
    s = result["task_data"]["structure"]
    t, p = cfg.train, cfg.probe
    lines = [
        "## Secondary structure",
        "",
        f"Data (records longer than {cfg.data.max_length} nt left out, seeded subsets, seed {cfg.data.seed}):",
        "",
    ]
    for k in ("train", "val", "test"):
        lines.append(f"- {k}: {len(s[k].records)} structures from `{s[k].path}`")
    lines += [
        "",
        f"- zero-shot: logistic regression on sym+APC attention maps of all layers and heads, fitted on the "
        f"train set ({p.max_pairs_per_seq} sampled non-pairs per structure, C = {p.C}), threshold chosen on val, "
        f"{p.method} decoding; n/a: the backend has no attention maps." + ("" if p.enabled else " (disabled)"),
        f"- supervised: StructureHead {json.dumps(cfg.head, sort_keys=True)} on frozen embeddings "
        f"(cached; each backend's `layer`, default the last), {budget_text(t)}, crop {t.crop}, "
        f"pos_weight {t.pos_weight:g}; threshold chosen on val." + ("" if t.enabled else " (disabled)"),
        "- F1: mean over test sequences, strict and with ±1 shift (`resm.structure.metrics`).",
        "- embed s: total seconds of the embedding passes over the test set (ViennaRNA: RNAfold MFE); "
        f"peak MB: largest extra memory of one pass (weights excluded); device {cfg.device}.",
        "",
    ]
    lines += table(rows, COLUMNS)
    plots = [f for f in result.get("plots", []) if f]
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{f}]({f})" for f in plots) + "."]
    return lines


def write(cfg: CompareConfig, result: dict[str, Any], out: Path, log) -> list[str]:
    """The plots (their names are kept in ``result["plots"]`` for the report) and
    ``per_sequence.csv``."""
    from .plots import make_plots
    from .report import write_csv

    view = {**result, "rows": result["task_rows"]["structure"], "splits": result["task_data"]["structure"]}
    result["plots"] = make_plots(cfg, view, out, log)
    keys = ["backend", "method", "name", "length", "family", "f1", "f1_shift", "seconds", "peak_mem_mb"]
    write_csv(out / "per_sequence.csv", result.get("per_sequence", []), keys)
    return ["per_sequence.csv", *result["plots"]]
