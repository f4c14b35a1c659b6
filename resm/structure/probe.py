"""The zero-shot structure probe: ESM's contact head, fitted on RNA structures.

The probe is a logistic regression over the symmetrised, APC-corrected attention maps of every
layer and head (``ContactHead.features``), channel ``layer * heads + head`` as in
``model.contact_head.regression``. One fit serves every backbone:

* :func:`fit_probe_weights` is the fit: for each labelled structure, all pairs with
  ``j - i > min_sep`` are positives and a sample of the other cells negatives
  (:func:`sample_pairs`); their attention features come from a caller's function (for ESM-2
  :func:`resm.backbone.attention.pair_attention_features`, for any backbone of ``resm compare``
  its ``pair_features``); standardised features, an L2 logistic regression, weights folded
  back onto the raw features.
* :func:`fit_probe` fits it on an ESM-2 backbone and writes it into
  ``model.contact_head.regression``, so ``model.predict_contacts`` (the O(L^2) layer-by-layer
  path) gives the probe's probabilities (:func:`predict_pair_probs`); :func:`save_probe` /
  :func:`load_probe` store that regression.
* :class:`ProbeFile` is the JSON sidecar (``PROBE.pt.json``) beside the weights: the decoding
  threshold and method, the mapping scheme (name and table hash), the backbone (path and a
  SHA-256 of its weights) and the fit's summary; :func:`fit_zero_shot` (``resm probe``) fits
  and chooses the threshold on validation structures.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import config
from ..alphabet import pad_batch
from ..backbone.attention import pair_attention_features
from ..backbone.esm2 import ESM2
from ..mapping import MappingError, Scheme, list_schemes
from ..records import validation_is_training
from ..utils.io import atomic_path, check_output, torch_save
from ..utils.jsontext import load_json
from ..utils.paths import file_problem, is_stream, no_such
from .decode import METHODS, choose_threshold, decode, stored_threshold
from .io import FoldError, Structure, read_structures
from .metrics import evaluate

__all__ = [
    "sample_pairs",
    "ProbeFitOptions",
    "fit_probe_weights",
    "fit_probe",
    "predict_pair_probs",
    "save_probe",
    "load_probe",
    "backbone_sha256",
    "sidecar_path",
    "ProbeFile",
    "select_structures",
    "fit_zero_shot",
    "ProbeOptions",
    "fit_probe_file",
]

PROBE_FORMAT = "resm-zero-shot-probe"
PROBE_VERSION = 1

PairFeatures = Callable[[Structure, np.ndarray], np.ndarray]
"""``features(structure, index)``: float32 (n, channels) attention features at the (i, j) rows
of ``index``."""


def sample_pairs(
    pairs: np.ndarray,
    n_neg: int,
    rng: np.random.Generator,
    min_sep: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Positives (all true pairs with ``j - i > min_sep``) and up to ``n_neg`` negatives drawn
    uniformly without replacement from the other cells i < j with ``j - i > min_sep``.

    Returns ``(index, label)``: an (n, 2) int64 array of (i, j) and 0/1 labels. Long sequences
    are sampled by rejection, never by listing all L^2 cells.
    """
    pairs = np.asarray(pairs, dtype=np.int64)
    L = len(pairs)
    pi = np.flatnonzero(pairs > np.arange(L))
    pj = pairs[pi]
    sel = pj - pi > min_sep
    pos = np.stack([pi[sel], pj[sel]], 1)
    pos_keys = set((pos[:, 0] * L + pos[:, 1]).tolist())
    n_cells = max(L - min_sep - 1, 0) * max(L - min_sep, 0) // 2  # cells with j - i > min_sep
    n_free = n_cells - len(pos)
    n_neg = max(min(int(n_neg), n_free), 0)
    if n_neg == 0:
        neg = np.zeros((0, 2), dtype=np.int64)
    elif n_free <= 4 * n_neg:  # dense: list the eligible cells and choose
        a, b = np.triu_indices(L, min_sep + 1)
        keys = a * L + b
        ok = ~np.isin(keys, np.fromiter(pos_keys, dtype=np.int64, count=len(pos_keys)))
        cells = np.stack([a[ok], b[ok]], 1).astype(np.int64)
        neg = cells[rng.choice(len(cells), n_neg, replace=False)]
    else:  # sparse: rejection sampling keeps memory O(n_neg)
        chosen: dict[int, None] = {}
        while len(chosen) < n_neg:
            draw = rng.integers(0, L, size=(2 * (n_neg - len(chosen)) + 16, 2))
            a, b = draw.min(1), draw.max(1)
            for key in (a * L + b)[b - a > min_sep].tolist():
                if key not in pos_keys and key not in chosen:
                    chosen[key] = None
                    if len(chosen) == n_neg:
                        break
        keys = np.fromiter(chosen, dtype=np.int64, count=n_neg)
        neg = np.stack([keys // L, keys % L], 1)
    index = np.concatenate([pos, neg]).astype(np.int64)
    label = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    return index, label


def _tokens(scheme: Scheme, seq: str, record: str = "<sequence>") -> torch.Tensor:
    return pad_batch([scheme.encode(seq, record)])


@dataclass(frozen=True, kw_only=True)
class ProbeFitOptions:
    """The settings of the probe fit (:func:`fit_probe_weights`): ``max_pairs_per_seq``
    sampled non-pairs per structure, pairs with ``j - i > min_sep``, structures longer than
    ``max_len`` skipped, the ``seed`` of the sampling and of the regression, and the
    regression's ``C``, ``class_weight`` and ``max_iter``."""

    max_pairs_per_seq: int = 1000
    C: float = 1.0
    seed: int = 0
    min_sep: int = 3
    max_len: int | None = None
    class_weight: str | dict | None = None
    max_iter: int = 2000


def fit_probe_weights(
    features: PairFeatures,
    structures: Iterable[Structure],
    options: ProbeFitOptions = ProbeFitOptions(),
    progress: bool = False,
    desc: str = "probe features",
) -> dict:
    """Fit the probe's logistic regression on labelled structures; the one probe fit.

    With ``options`` (:class:`ProbeFitOptions`), for each structure (longer than ``max_len``
    skipped): all pairs with ``j - i > min_sep`` are positives and ``max_pairs_per_seq``
    negatives are sampled (:func:`sample_pairs`), and ``features(structure, index)`` gives their
    attention features. Features are standardised, an L2 ``LogisticRegression(C=C)`` is
    fitted, and the scaling is folded back into raw-feature weights (``w = w_std / sd``,
    ``b = b_std - sum(w * mean)``). ``class_weight`` defaults to None: negatives are subsampled
    anyway, so the probabilities are not calibrated to the true pair frequency — pick the
    decoding threshold on validation data (:func:`resm.structure.decode.choose_threshold`).

    Returns ``{"weight" (channels,), "bias", "n_seqs", "n_pos", "n_neg", "train_auroc",
    "classifier"}``; ``classifier`` is the fitted sklearn pipeline (StandardScaler +
    LogisticRegression) on raw features.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from tqdm.auto import tqdm

    o = options
    rng = np.random.default_rng(o.seed)
    feats, labels = [], []
    total = len(structures) if isinstance(structures, Sized) else None
    for rec in tqdm(structures, desc=desc, total=total, unit="seq", disable=not progress, leave=False):
        if not rec.seq:
            raise ValueError(f"{rec.name}: structure has no sequence")
        if o.max_len is not None and len(rec) > o.max_len:
            continue
        index, label = sample_pairs(rec.pairs, o.max_pairs_per_seq, rng, o.min_sep)
        if len(index) == 0:
            continue
        feats.append(features(rec, index))
        labels.append(label)
    if not feats:
        raise ValueError("no usable structures to fit the probe")
    X = np.concatenate(feats).astype(np.float64)
    y = np.concatenate(labels)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(f"need both pairs and non-pairs to fit the probe (n_pos={n_pos}, n={len(y)})")
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=o.C, class_weight=o.class_weight, max_iter=o.max_iter, random_state=o.seed),
    )
    clf.fit(X, y)
    scaler, lr = clf[0], clf[-1]
    w = lr.coef_[0] / scaler.scale_
    b = float(lr.intercept_[0] - np.dot(w, scaler.mean_))
    auroc = float(roc_auc_score(y, clf.decision_function(X)))
    return {
        "weight": w,
        "bias": b,
        "n_seqs": len(feats),
        "n_pos": n_pos,
        "n_neg": int(len(y) - n_pos),
        "train_auroc": auroc,
        "classifier": clf,
    }


def fit_probe(
    model: ESM2,
    scheme: Scheme,
    structures: Iterable[Structure],
    options: ProbeFitOptions = ProbeFitOptions(),
    progress: bool = False,
) -> dict:
    """:func:`fit_probe_weights` (``options``: :class:`ProbeFitOptions`) on an ESM-2 backbone's
    attention features (:func:`resm.backbone.attention.pair_attention_features`), written into
    ``model.contact_head.regression``; ``progress``: a bar on stderr counting the structures.

    Returns ``{"n_seqs", "n_pos", "n_neg", "train_auroc", "classifier"}``.
    """

    def features(rec: Structure, index: np.ndarray) -> np.ndarray:
        return pair_attention_features(model, _tokens(scheme, rec.seq, rec.name), index)

    fit = fit_probe_weights(features, structures, options, progress=progress, desc="probe: attention features")
    reg = model.contact_head.regression
    with torch.no_grad():
        reg.weight.copy_(torch.as_tensor(fit["weight"], dtype=reg.weight.dtype).view_as(reg.weight))
        reg.bias.fill_(fit["bias"])
    return {k: fit[k] for k in ("n_seqs", "n_pos", "n_neg", "train_auroc", "classifier")}


def predict_pair_probs(model: ESM2, scheme: Scheme, seq: str) -> np.ndarray:
    """(L, L) float32 pair probabilities of one sequence from ``model.predict_contacts``."""
    tokens = _tokens(scheme, seq).to(model.device)
    with torch.inference_mode():
        probs = model.predict_contacts(tokens)[0]
    return probs.float().cpu().numpy()


def save_probe(model: ESM2, path: str | os.PathLike) -> None:
    """Write the contact-head regression (weight, bias) with num_layers and heads, as tensors
    only, to a small ``.pt`` file (atomically)."""
    reg = model.contact_head.regression
    data = {
        "weight": reg.weight.detach().float().cpu().clone(),
        "bias": reg.bias.detach().float().cpu().clone(),
        "num_layers": torch.tensor(model.num_layers),
        "heads": torch.tensor(model.attention_heads),
    }
    with atomic_path(path) as tmp:
        torch_save(data, tmp)


def _probe_count(v, path, key: str) -> int:
    """A probe's ``num_layers`` or ``heads``: an integer (Python's, NumPy's or a one-element
    integer tensor, as :func:`save_probe` writes); 4.5 or True is refused, not truncated."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point() and not v.is_complex():
        v = v.item()
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.item()
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer) or v < 1:
        shown = v.tolist() if isinstance(v, torch.Tensor | np.ndarray) else v
        raise ValueError(f"{path}: {key} must be an integer >= 1, got {shown!r}")
    return int(v)


def load_probe(model: ESM2, path: str | os.PathLike) -> ESM2:
    """Load a probe written by :func:`save_probe` into ``model`` (``weights_only=True``).

    Raises ValueError if the file is not a probe or was fitted for another number of
    layers or heads.
    """
    from ..backbone.load import non_finite, safe_load

    data = safe_load(path)
    need = {"weight", "bias", "num_layers", "heads"}
    if not isinstance(data, dict) or not need <= set(data):
        raise ValueError(f"{path}: not a probe file (expected keys {sorted(need)})")
    layers, heads = (_probe_count(data[k], path, k) for k in ("num_layers", "heads"))
    if (layers, heads) != (model.num_layers, model.attention_heads):
        raise ValueError(
            f"{path}: probe is for {layers} layers x {heads} heads, model has "
            f"{model.num_layers} x {model.attention_heads}"
        )
    reg = model.contact_head.regression
    if tuple(data["weight"].shape) != tuple(reg.weight.shape) or data["bias"].numel() != 1:
        raise ValueError(f"{path}: weight shape {tuple(data['weight'].shape)} does not match {tuple(reg.weight.shape)}")
    if (bad := non_finite({k: data[k] for k in ("weight", "bias")})) is not None:
        raise ValueError(f"{path}: the probe's {bad} holds NaN or infinite values")
    with torch.no_grad():
        reg.weight.copy_(data["weight"].to(reg.weight))
        reg.bias.copy_(data["bias"].reshape(reg.bias.shape).to(reg.bias))
    return model


# ----------------------------------------------------------------------------- checksums
def _sha256_files(files: Sequence[Path], named: bool = False) -> str:
    h = hashlib.sha256()
    for f in files:
        if named:  # a folder: file names are part of its identity
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def backbone_sha256(source: str | os.PathLike) -> str:
    """SHA-256 identifying a backbone: of the file's bytes (fair-esm ``.pt``, a structure model,
    ``default``: the shipped one), or of a Hugging Face folder's ``*.safetensors`` files (``*.bin``
    if it has none), by name order; an ESM-2 name or a hub id: of the file or folder it is read
    from (every spec :func:`resm.structure.model.load_backbone` reads: ``resm probe default`` fitted
    its probe, then said 'default: backbone file not found')."""
    from ..backbone.load import model_location
    from .model import resolve_model

    p = model_location(resolve_model(source))
    if p.is_file():
        return _sha256_files([p])
    if p.is_dir():
        files = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
        if not files:
            raise FoldError(f"{p}: no *.safetensors or *.bin weights to identify the backbone by")
        return _sha256_files(files, named=True)
    raise FoldError(f"{p}: {no_such(p, 'backbone file')} (cannot check the probe against it)")


# ----------------------------------------------------------------------------- the sidecar
def sidecar_path(probe: str | os.PathLike) -> Path:
    """``PROBE.pt`` -> ``PROBE.pt.json``."""
    p = Path(probe)
    return p.with_name(p.name + ".json")


@dataclass
class ProbeFile:
    """What a probe's weights do not say: how to decode, and what it belongs to.

    ``stats`` holds the fitting summary (``n_pos``, ``n_neg``, ``train_auroc``,
    ``threshold_on``, ``n_val``, ``f1_mean``, ``f1_shift_mean``, ``seed``, ...)."""

    threshold: float
    method: str
    scheme: str
    scheme_hash: str
    backbone: str
    backbone_sha256: str
    n_train: int
    probe_sha256: str = ""
    stats: dict[str, object] = field(default_factory=dict)

    # ---- writing
    def write(self, model, path: str | os.PathLike) -> None:
        """Write the regression weights to ``path`` (:func:`save_probe`) and this
        record to ``path.json``. Both go to temporary files first and are renamed only when
        both are complete; the JSON records the SHA-256 of the weights file, so a stale pair
        is detected on load."""
        path = Path(path)
        with atomic_path(path) as tmp_pt, atomic_path(sidecar_path(path)) as tmp_js:
            save_probe(model, tmp_pt)
            self.probe_sha256 = _sha256_files([tmp_pt])
            tmp_js.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def to_json(self) -> dict:
        return {"format": PROBE_FORMAT, "version": PROBE_VERSION, **asdict(self)}

    # ---- reading
    @classmethod
    def read(cls, path: str | os.PathLike) -> ProbeFile:
        """The sidecar of the probe at ``path`` (no weights are loaded, no checks made)."""
        path = Path(path)
        side = sidecar_path(path)
        if not path.is_file():  # a folder or a named pipe was 'no such probe file'
            problem = file_problem(path)
            why = f"{problem}, not a probe file" if problem and path.exists() else no_such(path, "probe file")
            raise FoldError(f"{path}: {why}")
        if not side.is_file():
            raise FoldError(
                f"{path}: {side.name} is missing beside it (it records the threshold and the "
                "backbone); fit the probe with `resm probe`"
            )
        try:
            data = load_json(side.read_text(encoding="utf-8-sig"))
            if not isinstance(data, dict) or data.pop("format", None) != PROBE_FORMAT:
                raise ValueError("not a resm probe record")
            version = data.pop("version", None)
            rec = config.options(cls, data)  # keys that are no field passed over
        except (ValueError, TypeError) as e:
            raise FoldError(f"{side}: unreadable probe record ({e})") from None
        problem = config.format_version_problem(version, PROBE_VERSION)
        if problem:
            raise FoldError(f"{side}: {problem}")
        for key in ("scheme_hash", "backbone", "backbone_sha256", "probe_sha256"):  # 0 was "'int' object ..."
            if not isinstance(getattr(rec, key), str):
                raise FoldError(f"{side}: {key} must be a string, got {getattr(rec, key)!r}")
        rec.threshold = stored_threshold(rec.threshold, str(side))  # NaN or 7 decoded no pair and exited 0
        if rec.method not in METHODS:
            raise FoldError(f"{side}: method must be one of {', '.join(METHODS)}, got {rec.method!r}")
        if not isinstance(rec.scheme, str) or rec.scheme not in list_schemes():  # was said naming no file
            raise FoldError(
                f"{side}: records the unknown mapping scheme {rec.scheme!r}; known: {', '.join(list_schemes())}"
            )
        return rec

    def verify(self, path: str | os.PathLike, scheme: Scheme, backbone: str | os.PathLike) -> None:
        """Raise :class:`FoldError` unless the probe at ``path`` was fitted with ``scheme`` on
        the backbone whose weights are at ``backbone`` (and its weights file is the one this
        record was written with)."""
        path = Path(path)
        if self.scheme != scheme.name or (self.scheme_hash and self.scheme_hash != scheme.table_hash):
            raise FoldError(
                f"{path}: probe was fitted with mapping scheme {self.scheme!r} "
                f"(hash {self.scheme_hash[:12]}), not {scheme.name!r} (hash {scheme.table_hash[:12]})"
            )
        sha = backbone_sha256(backbone)
        if sha != self.backbone_sha256:
            raise FoldError(
                f"{path}: probe was fitted on another backbone ({self.backbone}, sha256 "
                f"{self.backbone_sha256[:12]}); {backbone} has sha256 {sha[:12]} - fit a probe "
                "for this backbone with `resm probe`"
            )
        if self.probe_sha256 and _sha256_files([path]) != self.probe_sha256:
            raise FoldError(f"{path}: weights do not match {sidecar_path(path).name} (rewritten separately?)")

    def load_into(self, model, path: str | os.PathLike, scheme: Scheme, backbone: str | os.PathLike):
        """:meth:`verify`, then load the probe weights into ``model``'s contact head."""
        self.verify(path, scheme, backbone)
        return load_probe(model, path)


# ----------------------------------------------------------------------------- resm probe
def _name_and_sequence(rec: Structure) -> tuple[str, str]:
    """What makes a validation structure a training structure (:func:`resm.records.validation_is_training`)."""
    return rec.name, rec.seq


def select_structures(
    path: str | os.PathLike, limit: int | None, max_length: int | None = None
) -> tuple[list[Structure], int]:
    """Up to ``limit`` structures of ``path`` (any format :func:`read_structures` reads) in file
    order, skipping those longer than ``max_length``; returns ``(structures, n_skipped)``.
    Structures must carry their sequence."""
    kept: list[Structure] = []
    skipped = 0
    for rec in read_structures(path):
        if limit is not None and len(kept) >= limit:
            break
        if max_length is not None and len(rec) > max_length:
            skipped += 1
            continue
        if not rec.seq:
            raise FoldError(f"{path}: record {rec.name!r} has no sequence")
        kept.append(rec)
    if not kept:
        raise FoldError(f"{path}: no structures to use" + (f" ({skipped} longer than {max_length})" if skipped else ""))
    if not any((np.asarray(r.pairs) >= 0).any() for r in kept):
        raise FoldError(f"{path}: none of the {len(kept)} structures used holds a base pair; a probe learns from pairs")
    return kept, skipped


def _f1_at(maps: Sequence[np.ndarray], structures: Sequence[Structure], threshold: float, method: str) -> dict:
    preds = [decode(P, s.seq, threshold, method) for P, s in zip(maps, structures)]
    return evaluate(preds, [s.pairs for s in structures])


def fit_zero_shot(
    model,
    scheme: Scheme,
    backbone: str | os.PathLike,
    train: Sequence[Structure],
    val: Sequence[Structure] | None = None,
    method: str = "greedy",
    seed: int = 0,
    progress: bool = False,
) -> ProbeFile:
    """Fit the probe on ``train`` (:func:`fit_probe`, written into ``model``),
    choose the decoding threshold on ``val`` (on ``train`` when ``val`` is None; then
    ``stats["threshold_on"] == "train"`` and the F1 is optimistic) and return the record to
    save with :meth:`ProbeFile.write`. The validation maps are held in memory: bound ``val``.
    ``progress``: bars on stderr counting the structures of each step against their total."""
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise FoldError(f"unknown method {method!r}; expected one of {METHODS}")
    fit = fit_probe(model, scheme, train, ProbeFitOptions(seed=seed), progress=progress)
    on = list(val) if val else list(train)
    bar = tqdm(on, desc="probe: pair maps", total=len(on), unit="seq", disable=not progress, leave=False)
    maps = [predict_pair_probs(model, scheme, s.seq) for s in bar]
    best = choose_threshold(maps, [s.seq for s in on], [s.pairs for s in on], method=method)
    res = _f1_at(maps, on, best, method)
    stats = {
        "n_pos": fit["n_pos"],
        "n_neg": fit["n_neg"],
        "train_auroc": round(fit["train_auroc"], 6),
        "threshold_on": "val" if val else "train",
        "n_val": len(on),
        "f1_mean": round(res["f1_mean"], 6),
        "f1_shift_mean": round(res["f1_shift_mean"], 6),
        "seed": seed,
    }
    return ProbeFile(
        threshold=round(float(best), 6),
        method=method,
        scheme=scheme.name,
        scheme_hash=scheme.table_hash,
        backbone=str(Path(backbone).resolve()) if Path(backbone).exists() else str(backbone),  # default, a name
        backbone_sha256=backbone_sha256(backbone),
        n_train=int(fit["n_seqs"]),
        stats=stats,
    )


@dataclass(frozen=True, kw_only=True)
class ProbeOptions:
    """The options of ``resm probe`` (:func:`fit_probe_file`), keyword-only: ``val`` (the
    structures the threshold is chosen on; None: the training ones), the backbone's ``scheme``,
    ``regression`` and ``trust``, ``device``, at most ``max_train`` / ``max_val`` structures of
    at most ``max_length`` nt, the decoding ``method`` the threshold is chosen for, and the
    ``seed`` of the non-pair sampling; ``progress``: bars on stderr (:func:`fit_zero_shot`)."""

    val: str | os.PathLike | None = None
    scheme: str | None = None
    regression: str | os.PathLike | None = None
    trust: bool = False
    device: str = "cpu"
    max_train: int | None = 100
    max_val: int | None = 100
    max_length: int | None = 1000
    method: str = "greedy"
    seed: int = 0
    progress: bool = True


def fit_probe_file(
    backbone: str | os.PathLike, train: str | os.PathLike, out: str | os.PathLike, opts: ProbeOptions = ProbeOptions()
) -> tuple[ProbeFile, int, bool]:
    """``resm probe``: read the structures first (:func:`select_structures`), load the backbone
    (:func:`resm.structure.model.load_with_scheme`), fit the probe and choose its threshold
    (:func:`fit_zero_shot`) and write it to ``out`` with its sidecar, as ``opts``
    (:class:`ProbeOptions`) says. Returns ``(probe record, training structures skipped as too
    long, whether validation structures were given)``."""
    from .model import load_with_scheme

    o = opts
    if is_stream(out):  # its record would have been written to '-.json' in the working folder
        raise FoldError(f"--out {out}: a probe is two files, PROBE.pt and PROBE.pt.json beside it; give a file path")
    check_output(sidecar_path(out), "file", "--out's record")
    structures, skipped = select_structures(train, o.max_train, o.max_length)
    held_out = select_structures(o.val, o.max_val, o.max_length)[0] if o.val else None
    for line in validation_is_training(  # the training data as --val: finetune's warning, before any work
        o.val, held_out or [], structures, _name_and_sequence, " and the threshold chosen on them", "--val"
    ):
        print(line, file=sys.stderr, flush=True)
    loaded, the_scheme = load_with_scheme(backbone, o.scheme, o.regression, o.trust)
    for path, recs in ((train, structures), (o.val, held_out or [])):  # before any work, naming the file
        for rec in recs:
            try:
                the_scheme.encode(rec.seq, rec.name)
            except MappingError as e:
                raise MappingError(f"{path}: {e}") from None
    model = loaded.model.to(o.device)
    probe = fit_zero_shot(model, the_scheme, loaded.meta["source"], structures, held_out, o.method, o.seed, o.progress)
    probe.write(model, out)
    return probe, skipped, held_out is not None
