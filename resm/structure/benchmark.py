"""``resm evaluate structure``: a structure model against the classical folders, on the same
records, in the same run.

For each record of the chosen set the model predicts a structure through its predictor
(:mod:`resm.structure.predictor`: a pair-head model decoded as stored in its file, a 2-D head
model at its stored threshold), and every classical folder asked for
(:data:`resm.structure.folders.FOLDERS`: RNAfold MFE and MEA, LinearPartition MEA with
EternaFold or ViennaRNA parameters, LinearFold) folds the same sequence. All are scored with
:func:`resm.structure.metrics.evaluate` (per-sequence mean and pooled, strict and ±1 shift, MCC),
with the pair density beside F1: precision, recall and predicted/reference pair count. The PDB
sets (``vl1``, ``tr1``) are scored twice from the same predictions, over their canonical pairs
and over all their pairs (:func:`resm.structure.datasets.reference_views`); with
``non_canonical`` the model adds the pairs of its file's non-canonical scorer
(:mod:`resm.structure.noncanonical`) and the PDB sets are scored over their non-canonical pairs
alone as well (the classical folders predict none: their rows there show it).
Each method's wall time over the set and the peak resident memory of the process are recorded
too. Before any folding, every requested set's records are checked against the available
memory as ``resm fold`` checks its input (:func:`resm.utils.memory.require_fold_memory`).
The table ends, per set, with the model's margin over the best classical folder.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbone.load import CheckpointError, names_backbone
from ..config import UsageError
from ..heads.pair_map import DEFAULT_TILE
from ..utils.io import atomic_write_text
from ..utils.paths import file_problem, no_such
from .datasets import FAMFOLD_SPLIT, load_dataset, read_split, reference_views, restrict, view_class
from .folders import FOLDERS, FolderUnavailable, on_record
from .io import Structure
from .metrics import evaluate
from .model import backbone_given, load_structure_model, resolve_model

__all__ = [
    "DEFAULT_FOLDERS",
    "evaluate_dataset",
    "evaluate_structure",
    "evaluate_famfold",
    "evaluate_sets",
    "format_table",
    "write_table",
]

DEFAULT_FOLDERS = tuple(FOLDERS)
MODEL = "resm"


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def check_folders(names: Sequence[str] | None, log=None) -> list[str]:
    """The folders asked for, each known and installed (else a one-line error naming it or
    its package). Without names: every default folder that is installed, each one that is not
    named in a ``skipped folder`` line on stderr (or through ``log``)."""
    if names is None:
        import sys

        out = []
        for n in DEFAULT_FOLDERS:
            try:
                FOLDERS[n].check()
                out.append(n)
            except FolderUnavailable as e:
                (log or (lambda m: print(m, file=sys.stderr)))(
                    f"skipped folder {n}: {e} (--folders {n} makes it required)"
                )
        return out
    out = []
    for n in names:
        if n not in FOLDERS:
            raise UsageError(f"unknown folder {n!r}; known: {', '.join(FOLDERS)}")
        FOLDERS[n].check()
        out.append(n)
    return out


def check_models(model_path, folds: Sequence[str] = ()) -> None:
    """Each structure model file exists (one per fold where the path holds ``{fold}``),
    checked before any data is read or any folder runs."""
    paths = [str(model_path).replace("{fold}", f) for f in folds] if "{fold}" in str(model_path) else [str(model_path)]
    for p in paths:
        if names_backbone(p):  # a backbone (folder, ESM-2 name or id): said with how to fold with one
            raise CheckpointError(backbone_given(p))
        if not Path(p).is_file():
            what = "structure model (a structure_model.pt from resm finetune, or 'default')"
            raise FileNotFoundError(f"{p}: {file_problem(p) if Path(p).exists() else no_such(p, what)}")


@dataclass(frozen=True)
class EvaluateOptions:
    """How a structure model and the classical folders are run on a benchmark set.

    Attributes:
        limit: score a seeded random subset of this many records (None: every record).
        seed: the subset's seed.
        tile: the backbone's window for long sequences.
        progress: show progress bars.
        bpp_cache: folder of cached pair priors (read, and new ones stored), or None.
        folders: the classical folders run beside the model (None: every available one).
        workers: processes for the pair priors and the folders (0: one per core).
        non_canonical: the model adds the pairs of its file's non-canonical scorer, and the
            PDB sets are scored over their non-canonical pairs too.
        decoding: fields of the model's stored decoding replaced (e.g. ``{"turner_scale": 0.3}``;
            :func:`resm.structure.predictor_loading.override_decoding`).
        device: where the model runs (``cpu``, ``cuda``, ``cuda:N``; ``resm evaluate --device``).
    """

    limit: int | None = None
    seed: int = 0
    tile: int = DEFAULT_TILE
    progress: bool = True
    bpp_cache: object = None
    folders: Sequence[str] | None = None
    workers: int = 0
    non_canonical: bool = False
    decoding: dict | None = None
    device: str = "cpu"


def _model_predictor(
    model, meta, opts: EvaluateOptions, where: str = "structure model"
) -> tuple[Callable[[list[Structure], str, bool], list[np.ndarray]], bool]:
    """``(predict, turner)``: ``predict(records, desc, progress) -> partner arrays`` through the
    model's predictor (the model on ``opts.device``), and whether its decoding is
    Turner-corrected (which the memory check counts:
    :func:`resm.utils.memory.require_fold_memory`). The predictor is
    (:func:`resm.structure.predictor_loading.model_predictor`, decoding as stored in its file, with the
    fields of ``opts.decoding`` replaced: :func:`resm.structure.predictor_loading.override_decoding`);
    ``opts.non_canonical``: with the pairs of the file's non-canonical scorer added (pair sets),
    the scorer checked here, before any work."""
    from .predictor import PairPredictor
    from .predictor_loading import model_predictor, override_decoding

    pred = model_predictor(
        model.to(opts.device),
        meta,
        workers=opts.workers,
        cache=opts.bpp_cache,
        tile=opts.tile,
        source=f"structure model {where}",
    )
    pred = override_decoding(pred, opts.decoding)
    non_canonical = opts.non_canonical
    if non_canonical and isinstance(pred, PairPredictor):
        pred.non_canonical_scorer()

    def predict(recs, desc, progress):
        with torch.inference_mode():
            got = pred.fold([(r.name, r.seq) for r in recs], progress=progress, desc=desc, noncanonical=non_canonical)
            return [s.pairs for s, _ in got]

    return predict, pred.turner_corrected


def _require_memory(recs: Sequence[Structure], opts: EvaluateOptions, turner: bool) -> None:
    """Refuse, before any folding, records whose folding is estimated not to fit in the
    available memory: the check of ``resm fold`` (:func:`resm.utils.memory.require_fold_memory`,
    ``opts.workers`` prior workers; ``--ignore-memory-check`` turns it off). The classical
    folders fold one record at a time in this process, within the model's estimate."""
    from ..utils.memory import require_fold_memory

    require_fold_memory([len(r.seq) for r in recs], opts.workers, turner)


def _predict_all(predict, recs: list[Structure], dataset: str, folders: Sequence[str], progress: bool = True) -> tuple:
    """Every method's partner arrays on ``recs`` and its wall time: ``(preds, seconds)``."""
    preds: dict[str, list] = {}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    preds[MODEL] = predict(recs, f"{dataset}: resm", progress)
    seconds[MODEL] = time.perf_counter() - t0
    for name in folders:
        folder, preds[name] = FOLDERS[name], []
        t0 = time.perf_counter()
        for r in tqdm(recs, desc=f"{dataset}: {name}", disable=not progress):
            with on_record(folder.label, r.name, r.seq):
                preds[name].append(folder.fold(r.seq))
        seconds[name] = time.perf_counter() - t0
    return preds, seconds


def _result(
    label: str, preds: dict[str, list], true: list, seconds: dict[str, float], recs: list | None = None
) -> dict[str, object]:
    """One view's scores; with ``recs``, each prediction is first restricted to the class of
    pairs the view holds (:func:`resm.structure.datasets.restrict`)."""
    which = view_class(label) if recs is not None else None
    if which is not None:
        preds = {k: [restrict(x, r, which) for x, r in zip(p, recs)] for k, p in preds.items()}
    return {
        "dataset": label,
        "n": len(true),
        "methods": {k: evaluate(p, true) for k, p in preds.items()},
        "seconds": dict(seconds),
        "peak_gib": _peak_gib(),
    }


def _score(
    predict,
    recs: list[Structure],
    dataset: str,
    folders: Sequence[str],
    progress: bool = True,
    keep: dict | None = None,
) -> dict[str, object]:
    """Every method on ``recs``: ``{"dataset", "n", "methods": {name: metrics}, "seconds": {name: s}}``."""
    true = [r.pairs for r in recs]
    preds, seconds = _predict_all(predict, recs, dataset, folders, progress)
    if keep is not None:
        keep.setdefault("true", []).extend(true)
        for name, p in preds.items():
            keep.setdefault("pred", {}).setdefault(name, []).extend(p)
            keep.setdefault("seconds", {}).setdefault(name, 0.0)
            keep["seconds"][name] += seconds[name]
    return _result(dataset, preds, true, seconds)


def evaluate_dataset(
    model_path, dataset: str, data_dir, opts: EvaluateOptions | None = None
) -> list[dict[str, object]]:
    """The model at ``model_path`` and the classical folders of ``opts`` on one benchmark set:
    one result per reference view (:func:`resm.structure.datasets.reference_views`; the PDB
    sets give two, canonical pairs and all pairs, from the same predictions, each prediction
    scored on the same class of its pairs; with ``opts.non_canonical`` a third, the
    non-canonical pairs)."""
    if dataset == "archiveii-famfold":
        raise ValueError("archiveii-famfold has one model per fold: use evaluate_famfold")
    return evaluate_sets(model_path, [dataset], data_dir, None, opts)[0]


def _dataset_results(
    predict, dataset: str, recs: list[Structure], folders: Sequence[str], opts: EvaluateOptions
) -> list[dict[str, object]]:
    """One set's results once the model, its records and the folders are ready."""
    preds, seconds = _predict_all(predict, recs, dataset, folders, opts.progress)
    views = reference_views(dataset, recs, opts.non_canonical)
    return [_result(label, preds, true, seconds, recs) for label, true in views.items()]


def evaluate_structure(model_path, dataset: str, data_dir, opts: EvaluateOptions | None = None) -> dict[str, object]:
    """The model at ``model_path`` and the classical folders on one benchmark set with one
    reference view (as :func:`evaluate_dataset`, which gives every view of the PDB sets)."""
    out = evaluate_dataset(model_path, dataset, data_dir, opts)
    if len(out) != 1:
        raise ValueError(f"{dataset} is scored against {len(out)} references: use evaluate_dataset")
    return out[0]


def evaluate_famfold(
    model_path: str, data_dir, folds: list[str] | None = None, opts: EvaluateOptions | None = None
) -> list[dict[str, object]]:
    """Family-wise cross-validation on ArchiveII (<= 512 nt): for each fold, the model trained
    without that family (``model_path`` with ``{fold}`` in it, e.g.
    ``runs/famfold/{fold}/structure_model.pt``) on the held-out family's test partition, with
    the classical folders on the same sequences. One result per fold, then a pooled row ("all
    folds": every test sequence once, each scored by its own fold's model). ``opts`` as
    :func:`evaluate_dataset` (with ``non_canonical`` each fold's file needs a non-canonical
    scorer); ``opts.limit`` records are drawn from each fold's test partition."""
    return evaluate_sets(model_path, ["archiveii-famfold"], data_dir, folds, opts)[0]


def _famfold_tests(data_dir, folds: list[str] | None, opts: EvaluateOptions) -> dict[str, list[Structure]]:
    """Each fold's test records (``opts.limit`` of them, seeded), by fold name; an unknown fold
    is a one-line error naming it."""
    split = read_split(Path(data_dir) / FAMFOLD_SPLIT)
    names = folds or sorted(split)
    unknown = sorted(set(names) - set(split))
    if unknown:
        raise ValueError(f"unknown fold(s) {unknown}; known: {sorted(split)}")
    recs = load_dataset("archiveii-famfold", data_dir)
    tests = {}
    for name in names:
        test = [r for r in recs if r.name in split[name]["test"]]
        if opts.limit is not None and opts.limit < len(test):
            idx = sorted(np.random.default_rng(opts.seed).choice(len(test), opts.limit, replace=False))
            test = [test[i] for i in idx]
        tests[name] = test
    return tests


def _turner_override(opts: EvaluateOptions) -> bool:
    """Whether ``opts.decoding`` makes every model's decoding Turner-corrected."""
    return (opts.decoding or {}).get("turner_scale") is not None


def _famfold_results(
    model_path, tests: dict[str, list[Structure]], folders: Sequence[str], opts: EvaluateOptions
) -> list[dict[str, object]]:
    """archiveii-famfold's results once the folds' records and the folders are ready. A fold's
    model whose stored decoding is Turner-corrected is checked against the memory again, for
    its own records, before it folds any."""
    results: list[dict[str, object]] = []
    pooled: dict = {}
    for name, test in tests.items():
        model, meta = load_structure_model(str(model_path).replace("{fold}", name))
        predict, turner = _model_predictor(model, meta, opts, str(model_path).replace("{fold}", name))
        if turner and not _turner_override(opts):
            _require_memory(test, opts, turner)
        results.append(_score(predict, test, f"archiveii-famfold {name}", folders, opts.progress, keep=pooled))
    results.append(
        _result(
            "archiveii-famfold, all folds", pooled.get("pred", {}), pooled.get("true", []), pooled.get("seconds", {})
        )
    )
    return results


def evaluate_sets(
    model, datasets: Sequence[str], data_dir=None, folds: list[str] | None = None, opts: EvaluateOptions | None = None
) -> tuple[list[dict[str, object]], str]:
    """``resm evaluate structure``: the model and the classical folders on each set of
    ``datasets`` (:func:`evaluate_famfold` for ``archiveii-famfold``, else
    :func:`evaluate_dataset`), the model file checked before any data is read. ``model`` may be
    ``default`` (the shipped model); ``data_dir`` None: :func:`resm.config.default_data_dir`.
    ``opts`` as :func:`evaluate_dataset` (its decoding overrides checked first). Every set's
    records are read, and checked together against the available memory as ``resm fold``
    checks its records, before any is folded. Returns the results and the model's label for
    :func:`format_table`."""
    from ..config import default_data_dir, flag
    from .predictor_loading import check_decoding_overrides

    opts = opts or EvaluateOptions()
    datasets = list(dict.fromkeys(datasets))  # a set named twice is scored once (as --folders a a)
    decoding = check_decoding_overrides(opts.decoding)
    opts = replace(opts, decoding=decoding)
    if opts.bpp_cache is not None:
        from .priors import check_cache_folder

        check_cache_folder(opts.bpp_cache, flag("bpp_cache"))

    data_dir = data_dir or default_data_dir()
    label = model
    if resolve_model(model) is not model:
        model = resolve_model(model)
        label = "default (resm/models/structure_default.pt, the shipped model)"
    if decoding:
        given = ", ".join(f"{flag(k)} {v:g}" for k, v in decoding.items())
        label = f"{label}, its stored decoding with {given}"
    if "archiveii-famfold" in datasets and "{fold}" not in str(model):
        raise UsageError("archiveii-famfold needs one model per fold: give --model with {fold} in the path")
    if "{fold}" in str(model) and set(datasets) != {"archiveii-famfold"}:
        raise UsageError("a --model path with {fold} goes with --dataset archiveii-famfold only")
    if folds and "archiveii-famfold" not in datasets:  # was passed over: every set scored whole
        raise UsageError("--folds picks folds of archiveii-famfold; give --dataset archiveii-famfold")
    per_fold = "{fold}" in str(model)
    predict, turner = None, _turner_override(opts)
    if not per_fold:  # one model for every set, read once, before any data is read or any folder runs
        check_models(model)
        folders = check_folders(opts.folders)
        loaded, meta = load_structure_model(model)
        predict, turner = _model_predictor(loaded, meta, opts, str(model))
    sets = [
        (
            d,
            _famfold_tests(data_dir, folds, opts)
            if d == "archiveii-famfold"
            else load_dataset(d, data_dir, opts.limit, opts.seed),
        )
        for d in datasets
    ]
    if per_fold:  # archiveii-famfold alone: one model per fold, each read when its fold is folded
        check_models(model, list(sets[0][1]))
        folders = check_folders(opts.folders)
    _require_memory([r for _, recs in sets for r in _set_records(recs)], opts, turner)
    results = []
    for d, recs in sets:
        if d == "archiveii-famfold":
            results += _famfold_results(str(model), recs, folders, opts)
        else:
            results += _dataset_results(predict, d, recs, folders, opts)
    return results, label


def _set_records(recs: list[Structure] | dict[str, list[Structure]]) -> list[Structure]:
    """A set's records: a list, or the folds' lists of archiveii-famfold."""
    return [r for test in recs.values() for r in test] if isinstance(recs, dict) else recs


def _label(name: str) -> str:
    return "**resm**" if name == MODEL else name


def format_table(results: list[dict[str, object]], command: str, model_path, cached_prior: bool = False) -> str:
    threads = torch.get_num_threads()
    timing = f"seconds: wall time over the set on this machine ({threads} torch thread{'s' if threads > 1 else ''}; "
    timing += "the folders run on one core each)"
    if cached_prior:
        timing += "; resm's time leaves out its pair priors, read from a cache"
    lines = [
        "# Secondary structure: resm against the classical folders (same records, same run)",
        "",
        f"Command: `{command}`  ",
        f"Model: `{model_path}`. Mean per-sequence F1 (strict / ±1 shift), precision and recall (strict); "
        "pred/ref: predicted pairs over reference pairs, summed over the set (the pair density); "
        f"pooled F1 (strict), mean MCC; {timing}.",
        "",
        "| set | n | method | F1 | F1 ±1 | precision | recall | pred/ref pairs | pooled F1 | MCC | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    margins = []
    for r in results:
        for name, m in r["methods"].items():
            lines.append(
                f"| {r['dataset']} | {r['n']} | {_label(name)} | {m['f1_mean']:.3f} | {m['f1_shift_mean']:.3f} "
                f"| {m['precision_mean']:.3f} | {m['recall_mean']:.3f} | {m['pair_ratio']:.2f} "
                f"| {m['f1_pooled']:.3f} | {m['mcc_mean']:.3f} | {r['seconds'].get(name, float('nan')):.0f} |"
            )
        classical = {k: m for k, m in r["methods"].items() if k != MODEL}
        if classical and MODEL in r["methods"]:
            best = max(classical, key=lambda k: classical[k]["f1_mean"])
            best_s = max(classical, key=lambda k: classical[k]["f1_shift_mean"])
            m = r["methods"][MODEL]
            f1, f1_shift = classical[best]["f1_mean"], classical[best_s]["f1_shift_mean"]
            margins.append(
                f"| {r['dataset']} | {best} {f1:.3f} | {m['f1_mean'] - f1:+.3f} "
                f"| {best_s} {f1_shift:.3f} | {m['f1_shift_mean'] - f1_shift:+.3f} "
                f"| {m['pair_ratio']:.2f} / {classical[best]['pair_ratio']:.2f} |"
            )
    if margins:
        lines += [
            "",
            "resm against the best classical folder of each set (by that metric):",
            "",
            "| set | best classical F1 | resm − best | best classical F1 ±1 | resm − best "
            "| pred/ref pairs: resm / best by F1 |",
            "|---|---|---|---|---|---|",
        ]
        lines += margins
    used = [k for k in FOLDERS if any(k in r["methods"] for r in results)]
    if used:
        lines += [
            "",
            "Classical folders: " + "; ".join(f"{k}: {FOLDERS[k].about} ({FOLDERS[k].package})" for k in used) + ".",
        ]
    lines += ["", f"Peak resident memory of the run: {max(r['peak_gib'] for r in results):.2f} GiB."]
    return "\n".join(lines) + "\n"


def write_table(path, text: str) -> None:
    atomic_write_text(path, text)
