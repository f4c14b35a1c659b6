"""``resm compare``: every backbone on the same tasks, splits, budgets and metrics (the run).

The question it answers: does a protein language model read through a nucleotide -> protein
letter mapping do as well as a model trained on nucleotides? Backends
(:mod:`resm.compare.backends`: mapped ESM-2, the native-nucleotide ESM-2 control, RNA-FM, other RNA LMs
through the optional multimolecule package, ViennaRNA as the classical reference and one-hot
nucleotides as the no-pretraining floor) all go through one frozen-backbone protocol, for each
task named in the config's ``tasks`` list (``structure``, ``rri``, ``mrl``; default
``[structure]``).

**structure** (sections ``data``, ``probe``, ``head``, ``train``):

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
3. **ViennaRNA row.** RNAfold MFE F1 on the same test structures.

**rri**, RNA-RNA interaction (section ``rri``, :class:`RRISection`): pairs read by
:func:`resm.data.rri.read_pairs`; train / validation are :func:`resm.data.rri.split_pairs` of the
training file (the split of ``resm finetune`` with ``configs/finetune/rri.yaml``) or a separate
validation file; the test file stands apart (``DeepMirTar_IndTest.tsv``, as
``experiments/rri_mrl_cpu``). Metrics on test: AUROC and AUPRC
(:func:`resm.tasks.rri.rri_metrics`); validation AUROC alongside. ViennaRNA's row scores each
pair by ``-dG`` of ``RNA.duplexfold`` (no training).

**mrl**, mean ribosome load (section ``mrl``, :class:`MRLSection`): UTRs read by
:func:`resm.data.mrl.read_mrl`, split train / validation / test by
:func:`resm.data.mrl.split_utrs` (the split of ``configs/finetune/mrl.yaml``), or tested on a
separate file. Metrics on test: R^2 and Spearman's rho (:func:`resm.tasks.mrl.mrl_metrics`);
validation R^2 alongside. ViennaRNA has no MRL model: "n/a".

Both sequence-level tasks train the task's own head (:class:`resm.heads.rri.InteractionHead`,
:class:`resm.heads.mrl.ExpressionHead`, created right after ``torch.manual_seed(seed)``) on
frozen embeddings: every distinct sequence is embedded once (``backend.embed``, per-residue
(L, E)) and cached in memory, and a :class:`resm.compare.training.CachedEncoder` hands a batch's
cached rows, padded, with their mask, to a :class:`resm.tasks.base.TaskModel`, so the heads'
``rri_apply`` / ``mrl_apply``, the tasks' ``predict_rri`` / ``predict_mrl`` and batch layouts
(``collate_pairs``, ``encode_batch``) are used unchanged. Batches come from
:class:`resm.tasks.base.ItemStream` (seeded: the same batches in the same order for every
backend); the heads are trained by :class:`resm.train.Trainer` on the tasks' losses (binary
cross-entropy on the interaction logit; mean squared error on the MRL standardised with the
training mean and standard deviation). There is no model selection: the head after the last
step is scored.

Training budget (every head): AdamW through the loop, so no weight decay on norms and biases
(the loop's parameter groups; tables made before the harness moved onto the loop decayed every
parameter, so their numbers may differ slightly), constant learning rate after an optional
linear warm-up (``warmup_steps``, default 0), gradient clipping, no validation during training;
the loop's run folder is temporary. Caps are seeded subsets
(:func:`resm.tasks.base.subset`), drawn once, so every backend sees the same examples.

Outputs under ``out_dir`` (default ``runs/compare/<config name>/``), all written
atomically: ``results.md`` (one section and table per task); one CSV per task:
``results.csv`` (structure: backend x zero-shot F1, supervised F1 strict and ±1, RNAfold MFE
F1, embedding seconds over the test set, peak memory of one forward pass),
``results_rri.csv`` (test AUROC, AUPRC, validation AUROC, embedding seconds over the test
pairs' distinct sequences, head training seconds) and ``results_mrl.csv`` (test R^2,
Spearman, validation R^2, the same seconds), each written when its task ran; for structure
also ``per_sequence.csv`` and the plots ``f1_vs_length.png``, ``time_memory_vs_length.png``
and, when the test set is an ArchiveII CSV (family = the name's prefix before ``_``),
``per_family.png``; and ``config.json``. A backend whose package or weights are missing is a
``skipped: <reason>`` row in every task's table; one whose length limit a task's sequences
exceed is skipped in that task's table only. "n/a" marks what a backend cannot do.
(written by :mod:`resm.compare.report` and :mod:`resm.compare.plots`).

Timing and memory: :mod:`resm.compare.measure`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..heads.mrl import ExpressionHead
from ..heads.rri import InteractionHead
from ..structure.io import Structure
from ..structure.probe import fit_probe_weights
from ..tasks.base import TaskModel
from .backends import Backend, BackendSpec, BackendUnavailable, FolderBackend, ViennaBackend, make_backend
from .config import CompareConfig, ProbeSection, TaskSection, parse_config
from .data import Split, TaskData, load_mrl, load_rri, load_structure_splits
from .measure import PeakMemory, Timed, embed_all, embed_unique
from .report import COLUMNS, MRL_COLUMNS, NA, RRI_COLUMNS, TASK_COLUMNS, write_outputs
from .training import CachedEncoder, CachedHeadTask, CachedStructureTask, head_probs, train_cached

__all__ = ["AttentionProbe", "fit_attention_probe", "run_backend", "run_rri", "run_mrl", "run_compare"]


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
        cfg.max_pairs_per_seq,
        cfg.C,
        cfg.seed,
        cfg.min_sep,
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


def _on(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


# ----------------------------------------------------------------------------- the run
def _empty_row(spec: BackendSpec, status: str, columns: Sequence[tuple[str, str]] = COLUMNS) -> dict[str, Any]:
    row = {k: None for k, _ in columns}
    row.update(backend=spec.name, kind=spec.kind, status=status)
    return row


def _check_length(backend: Backend, seqs: Sequence[str]) -> None:
    if backend.max_length is not None and seqs:
        longest = max(len(s) for s in seqs)
        if longest > backend.max_length:
            raise BackendUnavailable(f"sequences up to {longest} nt exceed its limit of {backend.max_length} nt")


def _free(backend: Backend | None) -> None:
    if backend is not None:
        backend.close()
    gc.collect()


def run_backend(
    backend: Backend, cfg: CompareConfig, splits: dict[str, Split], log
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The whole protocol for one loaded backend: (table row, per-sequence rows, details)."""
    tr, va, te = (splits[k].records for k in ("train", "val", "test"))
    row = _empty_row(backend.spec, "ok")
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
            peak_mem_mb=_nanmax(mems),
        )
        seq_rows("mfe", per, Timed(secs, mems))
        return row, per_seq, {"mfe": m}

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
    row.update(embed_s=float(np.sum(timed_test.seconds)), peak_mem_mb=_nanmax(timed_test.peak_mb))

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
        hcfg = cfg.head_config(backend.embed_dim)
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
    return row, per_seq, details


def _nanmax(v: Sequence[float]) -> float | None:
    a = np.asarray([x for x in v if x is not None], dtype=float)
    return None if a.size == 0 or np.all(np.isnan(a)) else float(np.nanmax(a))


def _sequence_task_model(backend: Backend, data: TaskData, sec: TaskSection, head_cls, apply, progress: bool):
    """What the ``rri`` and ``mrl`` runs share before training: every distinct sequence embedded
    once (test first, so its time is measured apart), the head built from the task's seed (the
    same initial weights for every backend) and a :class:`TaskModel` over the cached embeddings.
    Returns ``(model, head, cache, seconds per set)``."""
    name = sec.task
    _check_length(backend, [s for part in ("train", "val", "test") for s in data.sequences(part)])
    cache, secs = embed_unique(
        backend,
        [data.sequences("test"), data.sequences("val"), data.sequences("train")],
        progress,
        f"{backend.name}: embed {name}",
    )
    torch.manual_seed(sec.seed)
    head = head_cls(sec.head_config(backend.embed_dim))
    model = TaskModel(CachedEncoder(cache, backend.embed_dim), {name: head}, {name: apply}).to(backend.device)
    return model, head, cache, secs


def _task_details(m, mv, loss: float, head, cache, secs, train_s: float) -> dict[str, Any]:
    return {
        "test": m,
        "val": mv,
        "final_loss": loss,
        "head_params": sum(q.numel() for q in head.parameters()),
        "distinct_sequences": len(cache),
        "embed_s_all": float(sum(secs)),
        "train_s": train_s,
    }


def _scheme():
    """The scheme ``encode_batch`` builds tokens with: the cached encoder never reads them."""
    from ..mapping import DEFAULT_SCHEME, get_scheme

    return get_scheme(DEFAULT_SCHEME)


def run_rri(backend: Backend, cfg: CompareConfig, data: TaskData, log) -> tuple[dict[str, Any], dict[str, Any]]:
    """RNA-RNA interaction for one loaded backend: (table row, details)."""
    from ..heads.rri import rri_apply
    from ..tasks.rri import collate_pairs, predict_rri, rri_metrics

    sec, prog = cfg.rri, cfg.progress
    row = _empty_row(backend.spec, "ok", RRI_COLUMNS)
    y_val = np.array([p.label for p in data.val])
    y_test = np.array([p.label for p in data.test])

    def metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float] | None:
        return rri_metrics(y, score) if len(y) else None

    if isinstance(backend, FolderBackend):
        row.update(status=f"{NA}: scores no duplexes")
        return row, {}
    if isinstance(backend, ViennaBackend):
        t0 = time.perf_counter()
        s_test = -np.array(
            [
                backend.duplex_energy(p.a, p.b)
                for p in tqdm(data.test, desc=f"{backend.name}: duplexfold", disable=not prog, leave=False)
            ]
        )
        secs = time.perf_counter() - t0
        s_val = -np.array([backend.duplex_energy(p.a, p.b) for p in data.val])
        m, mv = metrics(y_test, s_test), metrics(y_val, s_val)
        row.update(
            status="ok (duplexfold -dG, no training)",
            auroc=m["auroc"],
            auprc=m["auprc"],
            val_auroc=mv["auroc"] if mv else None,
            embed_s=secs,
        )
        log(f"{backend.name}: RRI duplexfold -dG test AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}")
        return row, {"test": m, "val": mv, "score": "-dG of RNA.duplexfold"}
    if not backend.has_embeddings:
        row.update(status=f"{NA}: no embeddings")
        return row, {}
    model, head, cache, secs = _sequence_task_model(backend, data, sec, InteractionHead, rri_apply, prog)
    scheme = _scheme()
    t0 = time.perf_counter()
    task = CachedHeadTask(
        model,
        "rri",
        data.train,
        lambda items: _on(collate_pairs(items, scheme), backend.device),
        lambda out, b: F.binary_cross_entropy_with_logits(out["logit"].float(), b["label"]),
        sec.batch,
        sec.seed,
    )
    loss = train_cached(task, sec, backend.device, prog)
    train_s = time.perf_counter() - t0
    p_test = predict_rri(model, scheme, data.test, sec.batch, backend.device, "rri")[0]
    m = metrics(y_test, p_test)
    mv = metrics(y_val, predict_rri(model, scheme, data.val, sec.batch, backend.device, "rri")[0]) if data.val else None
    row.update(
        auroc=m["auroc"], auprc=m["auprc"], val_auroc=mv["auroc"] if mv else None, embed_s=secs[0], train_s=train_s
    )
    log(
        f"{backend.name}: RRI test AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}"
        + (f", val AUROC {mv['auroc']:.3f}" if mv else "")
        + f", final loss {loss:.4f}, head {train_s:.0f} s"
    )
    return row, _task_details(m, mv, loss, head, cache, secs, train_s)


def run_mrl(backend: Backend, cfg: CompareConfig, data: TaskData, log) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mean ribosome load for one loaded backend: (table row, details)."""
    from ..heads.mrl import mrl_apply
    from ..tasks.base import encode_batch
    from ..tasks.mrl import mrl_metrics, predict_mrl

    sec, prog = cfg.mrl, cfg.progress
    row = _empty_row(backend.spec, "ok", MRL_COLUMNS)
    if not backend.has_embeddings:
        row.update(status=f"{NA}: no MRL model" if isinstance(backend, ViennaBackend) else f"{NA}: no embeddings")
        return row, {}
    model, head, cache, secs = _sequence_task_model(backend, data, sec, ExpressionHead, mrl_apply, prog)
    scheme = _scheme()
    mean, std = data.mean, data.std

    def collate(items):
        b = encode_batch([u.seq for u in items], scheme, [f"{u.name} (line {u.line})" for u in items])
        b["y"] = torch.tensor([(u.mrl - mean) / std for u in items], dtype=torch.float32)
        return _on(b, backend.device)

    t0 = time.perf_counter()
    task = CachedHeadTask(
        model, "mrl", data.train, collate, lambda out, b: F.mse_loss(out.float(), b["y"]), sec.batch, sec.seed
    )
    loss = train_cached(task, sec, backend.device, prog)
    train_s = time.perf_counter() - t0

    def metrics(utrs) -> dict[str, float] | None:
        if not utrs:
            return None
        pred = predict_mrl(model, scheme, [u.seq for u in utrs], mean, std, sec.batch, backend.device, "mrl")
        return mrl_metrics(np.array([u.mrl for u in utrs]), pred)

    m, mv = metrics(data.test), metrics(data.val)
    row.update(r2=m["r2"], spearman=m["spearman"], val_r2=mv["r2"] if mv else None, embed_s=secs[0], train_s=train_s)
    log(
        f"{backend.name}: MRL test R² {m['r2']:.3f}, Spearman {m['spearman']:.3f}"
        + (f", val R² {mv['r2']:.3f}" if mv else "")
        + f", final loss {loss:.4f}, head {train_s:.0f} s"
    )
    return row, {**_task_details(m, mv, loss, head, cache, secs, train_s), "target_mean": mean, "target_std": std}


def run_compare(cfg: CompareConfig | dict[str, Any], name: str = "compare", log=print) -> dict[str, Any]:
    """Run every task of ``cfg`` for every backend and write the tables and plots; returns
    ``{"rows" (structure), "rri_rows", "mrl_rows", "per_sequence", "details", "splits",
    "task_data", "tasks", "out_dir", "files"}``."""
    from ..tasks import TASKS
    from ..tasks.base import resolve

    if not isinstance(cfg, CompareConfig):
        cfg = parse_config(cfg, name)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # every data set is read (and checked) before any backend runs
    splits: dict[str, Split] = {}
    if "structure" in cfg.tasks:
        d = cfg.data
        splits = load_structure_splits(d)
        for k, s in splits.items():
            log(
                f"{k}: {len(s.records)} structures from {s.path} ({s.n_long} longer than {d.max_length} nt and "
                f"{s.n_bad} without a valid sequence left out)"
            )
    task_data: dict[str, TaskData] = {}
    for task, loader, sec in (("rri", load_rri, cfg.rri), ("mrl", load_mrl, cfg.mrl)):
        if task in cfg.tasks:
            task_data[task] = loader(sec)
            for k, text in task_data[task].about.items():
                log(f"{task} {k}: {text}")
    out_dir = cfg.output_dir()
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in cfg.tasks}
    per_seq: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    for spec in cfg.backends:
        backend = None
        t0 = time.perf_counter()
        try:
            backend = make_backend(spec, cfg.device).load()
        except BackendUnavailable as e:
            if cfg.strict:
                raise BackendUnavailable(
                    f"backend {spec.name} cannot be loaded: {e} (--strict; nothing written)"
                ) from None
            log(f"SKIPPED backend {spec.name}: {e}; its rows say so (--strict makes this an error)")
            for t in cfg.tasks:
                rows[t].append(_empty_row(spec, f"skipped: {e}", TASK_COLUMNS[t]))
            _free(backend)
            continue
        det: dict[str, Any] = {}
        for t in cfg.tasks:
            runner = resolve(TASKS[t].compare)  # the task descriptor's compare runner
            try:
                if t == "structure":
                    row, seqs, det[t] = runner(backend, cfg, splits, log)
                    per_seq.extend(seqs)
                else:
                    row, det[t] = runner(backend, cfg, task_data[t], log)
            except BackendUnavailable as e:
                if cfg.strict:
                    raise BackendUnavailable(
                        f"backend {spec.name} cannot run {t}: {e} (--strict; nothing written)"
                    ) from None
                log(f"SKIPPED backend {spec.name} on {t}: {e}")
                row, det[t] = _empty_row(spec, f"skipped: {e}", TASK_COLUMNS[t]), {"skipped": str(e)}
            rows[t].append(row)
        _free(backend)
        det["seconds_total"] = time.perf_counter() - t0
        details[spec.name] = det
    ran = [r for t in cfg.tasks for r in rows[t] if not str(r.get("status", "")).startswith("skipped")]
    if not ran:
        raise BackendUnavailable("nothing compared: every backend was skipped (see the SKIPPED lines); nothing written")
    result = {
        "rows": rows.get("structure", []),
        "rri_rows": rows.get("rri", []),
        "mrl_rows": rows.get("mrl", []),
        "per_sequence": per_seq,
        "details": details,
        "splits": splits,
        "task_data": task_data,
        "tasks": list(cfg.tasks),
        "out_dir": out_dir,
    }
    result["files"] = write_outputs(cfg, result, log)
    return result
