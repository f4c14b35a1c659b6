"""``resm probe`` / ``resm fold``: zero-shot secondary structure, from FASTA to structure files.

The pieces, each usable from Python as well as from the command line:

* :func:`fold_records` folds ``(id, sequence)`` records one at a time and *yields*
  ``(Structure, prob_map)``, so a caller that plots keeps one (L, L) map at a time and a caller
  that only writes structures drops it at once.
* :class:`Predictor` bundles what folding needs (model, scheme, threshold, decoding method and
  the function giving a pair-probability map). Today it is built by :func:`zero_shot_predictor`
  from a fitted probe; a supervised head only needs another constructor giving its own
  ``pair_probs``.
* :class:`ProbeFile` is the JSON sidecar (``PROBE.pt.json``) stored beside the probe weights
  written by :func:`resm.zeroshot.save_probe`: the chosen decoding threshold and method, the
  mapping scheme (name + table hash), the backbone it was fitted on (source path and a
  SHA-256 of its weights) and the training summary. Loading verifies scheme and backbone.
* :func:`plot_structure` draws an arc diagram (plus, optionally, the probability map) to a
  PNG, atomically; matplotlib is an optional dependency.
* Output helpers (:class:`StructureSink`, :func:`staged_dir`) write every result to temporary
  files first and move them into place only when all records are done, so an error never
  leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .decode import METHODS, choose_threshold, decode
from .mapping import MappingError, Scheme, get_scheme, normalise
from .metrics import evaluate
from .structure import Structure, check_pairs, format_structures, pair_list, read_structures
from .utils.io import atomic_path, atomic_write_text

__all__ = [
    "FoldError",
    "MatplotlibMissing",
    "OUTPUT_FORMATS",
    "Predictor",
    "ProbeFile",
    "StructureSink",
    "backbone_sha256",
    "check_output",
    "fit_zero_shot",
    "fold_records",
    "iter_fasta",
    "plot_structure",
    "read_reference",
    "record_file_names",
    "require_matplotlib",
    "safe_filename",
    "select_structures",
    "sidecar_path",
    "staged_dir",
    "validate_fasta",
    "zero_shot_predictor",
]

OUTPUT_FORMATS = ("dbn", "bpseq", "ct")
PROBE_FORMAT = "resm-zero-shot-probe"
PROBE_VERSION = 1


class FoldError(ValueError):
    """A user error of the fold/probe commands (reported in one line by the CLI)."""


class MatplotlibMissing(FoldError, ImportError):
    """Plotting was asked for but matplotlib is not installed."""


# --------------------------------------------------------------------------- checksums
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
    """SHA-256 identifying a backbone: of the file's bytes (fair-esm ``.pt``), or of a
    Hugging Face folder's ``*.safetensors`` files (``*.bin`` if it has none), by name order."""
    p = Path(source)
    if p.is_file():
        return _sha256_files([p])
    if p.is_dir():
        files = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
        if not files:
            raise FoldError(f"{p}: no *.safetensors or *.bin weights to identify the backbone by")
        return _sha256_files(files, named=True)
    raise FoldError(f"{p}: backbone file not found (cannot check the probe against it)")


# --------------------------------------------------------------------------- probe sidecar
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
    stats: Dict[str, object] = field(default_factory=dict)

    # ---- writing
    def write(self, model, path: str | os.PathLike) -> None:
        """Write the regression weights to ``path`` (:func:`resm.zeroshot.save_probe`) and this
        record to ``path.json``. Both go to temporary files first and are renamed only when
        both are complete; the JSON records the SHA-256 of the weights file, so a stale pair
        is detected on load."""
        from .zeroshot import save_probe

        path = Path(path)
        with atomic_path(path) as tmp_pt, atomic_path(sidecar_path(path)) as tmp_js:
            save_probe(model, tmp_pt)
            self.probe_sha256 = _sha256_files([tmp_pt])
            tmp_js.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def to_json(self) -> dict:
        return {"format": PROBE_FORMAT, "version": PROBE_VERSION, **asdict(self)}

    # ---- reading
    @classmethod
    def read(cls, path: str | os.PathLike) -> "ProbeFile":
        """The sidecar of the probe at ``path`` (no weights are loaded, no checks made)."""
        path = Path(path)
        side = sidecar_path(path)
        if not path.is_file():
            raise FoldError(f"{path}: no such probe file")
        if not side.is_file():
            raise FoldError(
                f"{path}: {side.name} is missing beside it (it records the threshold and the "
                "backbone); fit the probe with `resm probe`"
            )
        try:
            data = json.loads(side.read_text())
            if data.pop("format", None) != PROBE_FORMAT:
                raise ValueError("not a resm probe record")
            data.pop("version", None)
            names = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in data.items() if k in names})
        except (ValueError, TypeError) as e:
            raise FoldError(f"{side}: unreadable probe record ({e})") from None

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
        from .zeroshot import load_probe

        self.verify(path, scheme, backbone)
        return load_probe(model, path)


# --------------------------------------------------------------------------- probe fitting
def select_structures(
    path: str | os.PathLike, limit: Optional[int], max_length: Optional[int] = None
) -> Tuple[List[Structure], int]:
    """Up to ``limit`` structures of ``path`` (any format :func:`read_structures` reads) in file
    order, skipping those longer than ``max_length``; returns ``(structures, n_skipped)``.
    Structures must carry their sequence."""
    kept: List[Structure] = []
    skipped = 0
    for rec in read_structures(path):
        if limit is not None and len(kept) >= limit:
            break
        if max_length is not None and len(rec) > max_length:
            skipped += 1
            continue
        if not rec.seq:
            raise FoldError(f"{Path(path).name}: record {rec.name!r} has no sequence")
        kept.append(rec)
    if not kept:
        raise FoldError(f"{Path(path).name}: no structures to use" + (f" ({skipped} longer than {max_length})" if skipped else ""))
    return kept, skipped


def _f1_at(maps: Sequence[np.ndarray], structures: Sequence[Structure], threshold: float, method: str) -> dict:
    preds = [decode(P, s.seq, threshold, method) for P, s in zip(maps, structures)]
    return evaluate(preds, [s.pairs for s in structures])


def fit_zero_shot(
    model,
    scheme: Scheme,
    backbone: str | os.PathLike,
    train: Sequence[Structure],
    val: Optional[Sequence[Structure]] = None,
    method: str = "greedy",
    seed: int = 0,
) -> ProbeFile:
    """Fit the probe on ``train`` (:func:`resm.zeroshot.fit_probe`, written into ``model``),
    choose the decoding threshold on ``val`` (on ``train`` when ``val`` is None; then
    ``stats["threshold_on"] == "train"`` and the F1 is optimistic) and return the record to
    save with :meth:`ProbeFile.write`. The validation maps are held in memory: bound ``val``."""
    from .zeroshot import fit_probe, predict_pair_probs

    if method not in METHODS:
        raise FoldError(f"unknown method {method!r}; expected one of {METHODS}")
    fit = fit_probe(model, scheme, train, seed=seed)
    on = list(val) if val else list(train)
    maps = [predict_pair_probs(model, scheme, s.seq) for s in on]
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
        backbone=str(Path(backbone).resolve()),
        backbone_sha256=backbone_sha256(backbone),
        n_train=int(fit["n_seqs"]),
        stats=stats,
    )


# --------------------------------------------------------------------------- folding
PairProbs = Callable[[str], np.ndarray]
DEFAULT_MODEL_NAME = "structure_default.pt"


def _name_seq(rec) -> Tuple[str, str]:
    """``(name, seq)`` of a tuple, a :class:`Structure` or a FASTA record."""
    if isinstance(rec, tuple):
        return str(rec[0]), str(rec[1])
    return str(getattr(rec, "id", None) or getattr(rec, "name")), str(rec.seq)


def _output_seq(seq: str, name: str) -> str:
    """The sequence written with a structure: upper-case ACGU with N for unknown bases (as
    decoding reads it); left as given when it is not a nucleotide sequence."""
    try:
        return normalise(seq, name)
    except MappingError:
        return seq


def fold_records(
    model,
    scheme: Scheme,
    records: Iterable,
    probe_threshold: float,
    method: str = "greedy",
    noncanonical: bool = False,
    progress: bool = True,
    pair_probs: Optional[PairProbs] = None,
) -> Iterator[Tuple[Structure, np.ndarray]]:
    """Fold ``records`` one at a time, yielding ``(Structure, prob_map)``.

    ``records``: ``(id, sequence)`` tuples, :class:`Structure` or FASTA records. Each map is
    ``pair_probs(seq)`` — by default :func:`resm.zeroshot.predict_pair_probs` with ``model``
    and ``scheme`` — decoded by :func:`resm.decode.decode` at ``probe_threshold``. Only the
    current map is alive unless the caller keeps it. The structure's sequence is normalised
    (upper case, U for T).
    """
    from tqdm.auto import tqdm

    from .zeroshot import predict_pair_probs

    if method not in METHODS:
        raise FoldError(f"unknown method {method!r}; expected one of {METHODS}")
    if pair_probs is None:
        def pair_probs(seq: str) -> np.ndarray:
            return predict_pair_probs(model, scheme, seq)

    total = len(records) if hasattr(records, "__len__") else None
    for rec in tqdm(records, desc="fold", unit="seq", total=total, disable=not progress):
        name, seq = _name_seq(rec)
        P = pair_probs(seq)
        pairs = decode(P, seq, probe_threshold, method, noncanonical)
        yield Structure(name, _output_seq(seq, name), pairs), P


@dataclass
class Predictor:
    """A ready-to-fold model: what :func:`fold_records` needs besides the records.

    ``pair_probs`` (seq -> (L, L) probabilities) is None for the zero-shot probe (the model's
    contact head); a supervised head would supply its own."""

    model: object
    scheme: Scheme
    threshold: float
    method: str = "greedy"
    pair_probs: Optional[PairProbs] = None
    source: str = ""

    def fold(
        self,
        records: Iterable,
        threshold: Optional[float] = None,
        method: Optional[str] = None,
        noncanonical: bool = False,
        progress: bool = True,
    ) -> Iterator[Tuple[Structure, np.ndarray]]:
        """:func:`fold_records` with this predictor's threshold and method unless overridden."""
        return fold_records(
            self.model,
            self.scheme,
            records,
            self.threshold if threshold is None else threshold,
            method or self.method,
            noncanonical,
            progress,
            self.pair_probs,
        )


def zero_shot_predictor(model, scheme: Scheme, backbone: str | os.PathLike, probe_path, probe: Optional[ProbeFile] = None) -> Predictor:
    """Load the probe at ``probe_path`` into ``model`` after checking it belongs to this scheme
    and to the backbone at ``backbone``; threshold and method come from its sidecar."""
    probe = probe or ProbeFile.read(probe_path)
    probe.load_into(model, probe_path, scheme, backbone)
    return Predictor(model, scheme, float(probe.threshold), probe.method, None, f"zero-shot probe {probe_path}")


def supervised_predictor(path: str | os.PathLike, device: str = "cpu", tile: int = 512) -> Predictor:
    """A structure model written by ``resm finetune`` (backbone + 2D head + threshold)."""
    from .finetune import load_structure_model, predict_pairs

    model, meta = load_structure_model(path)
    model = model.to(device).eval()
    scheme = get_scheme(meta["scheme"])
    if meta.get("scheme_hash") and meta["scheme_hash"] != scheme.table_hash:
        raise FoldError(f"{path}: trained with another table of scheme {scheme.name!r}")

    def pair_probs(seq: str) -> np.ndarray:
        return predict_pairs(model, scheme, seq, tile=tile)

    return Predictor(model, scheme, float(meta["threshold"]), "greedy", pair_probs, f"structure model {path}")


def default_model_path() -> Path:
    """The structure model that ships inside the package (used when no --model is given)."""
    return Path(__file__).resolve().parent / "models" / DEFAULT_MODEL_NAME


# --------------------------------------------------------------------------- inputs
def validate_fasta(path: str | os.PathLike, scheme: Scheme, max_length: Optional[int] = None) -> List[Tuple[str, int]]:
    """Check every record of a FASTA file before any work (:func:`resm.embed.map_fasta`: ids
    unique, sequences mappable, none longer than ``max_length``); ``[(id, length)]``."""
    from .embed import map_fasta

    return [(m.id, int(len(m.ids))) for m in map_fasta(path, scheme, max_length)]


def iter_fasta(path: str | os.PathLike) -> Iterator[Tuple[str, str]]:
    """Stream ``(id, sequence)`` of a FASTA file (validate it first with :func:`validate_fasta`)."""
    from .data.fasta import read_fasta

    for rec in read_fasta(path, unique=True):
        yield rec.id, rec.seq


def read_reference(path: str | os.PathLike, wanted: Sequence[Tuple[str, int]]) -> Dict[str, np.ndarray]:
    """Reference partner arrays for the ``(id, length)`` records in ``wanted``, read from any
    structure file; every id must be there with the same length (extra records are ignored)."""
    want = dict(wanted)
    found: Dict[str, np.ndarray] = {}
    for rec in read_structures(path):
        if rec.name in want and rec.name not in found:
            if len(rec) != want[rec.name]:
                raise FoldError(
                    f"{Path(path).name}: record {rec.name!r} has length {len(rec)}, the FASTA's has {want[rec.name]}"
                )
            found[rec.name] = rec.pairs
    missing = [i for i in want if i not in found]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FoldError(
            f"{Path(path).name}: no reference structure for {', '.join(repr(m) for m in missing[:3])}{more}"
        )
    return found


# --------------------------------------------------------------------------- outputs
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")


def safe_filename(name: str) -> str:
    """A file name for a record id: characters other than letters, digits and ``._+=-``
    become ``_``; a leading dot is prefixed with ``_`` (no hidden files, no ``..``)."""
    s = _UNSAFE.sub("_", name) or "_"
    return "_" + s if s.startswith(".") else s


def record_file_names(ids: Sequence[str], ext: str) -> Dict[str, str]:
    """id -> ``<safe id>.<ext>``; refuses two ids that give the same name."""
    out: Dict[str, str] = {}
    seen: Dict[str, str] = {}
    for i in ids:
        fn = f"{safe_filename(i)}.{ext}"
        if fn.lower() in seen:
            raise FoldError(f"records {seen[fn.lower()]!r} and {i!r} would both be written to {fn}")
        seen[fn.lower()] = i
        out[i] = fn
    return out


def check_output(fmt: str, out: Optional[Path], ids: Sequence[str]) -> str:
    """How the structures will be written: ``"stdout"``, ``"file"`` or ``"dir"``.

    dbn and ct hold many records in one text; bpseq holds one. Several records in bpseq or ct
    with ``out`` given go to a directory (one ``<id>.<ext>`` file each); an existing directory
    ``out`` always receives one file per record."""
    if fmt not in OUTPUT_FORMATS:
        raise FoldError(f"unknown format {fmt!r}; expected one of {OUTPUT_FORMATS}")
    if out is None:
        if fmt == "bpseq" and len(ids) > 1:
            raise FoldError(f"bpseq holds one record per file and the FASTA has {len(ids)}: give -o DIR")
        return "stdout"
    if fmt == "dbn":
        if out.is_dir():
            raise FoldError(f"{out} is a directory; dbn output is one file holding every record")
        return "file"
    if out.is_dir() or len(ids) > 1:
        if out.exists() and not out.is_dir():
            raise FoldError(f"{out} is a file; {len(ids)} {fmt} records need a directory (one file each)")
        record_file_names(ids, fmt)
        return "dir"
    return "file"


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final``; on success its files are moved into ``final``
    (created if needed; other files there are left alone), on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        final.mkdir(exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, final / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class StructureSink:
    """Collects folded structures and writes them when :meth:`commit` is called.

    ``mode`` comes from :func:`check_output`. Files (and directory members) are written to
    temporary files as records arrive, so memory stays small, and renamed into place only at
    :meth:`commit`; :meth:`close` without commit removes them. Used as a context manager it
    commits on success and cleans up on error."""

    def __init__(self, fmt: str, out: Optional[Path], mode: str, stream=None):
        self.fmt, self.out, self.mode = fmt, out, mode
        self.stream = stream or sys.stdout
        self.n = 0
        self._stack = contextlib.ExitStack()
        self._text: List[str] = []
        if mode == "file":
            self._tmp = self._stack.enter_context(atomic_path(out))
            self._fh = self._stack.enter_context(open(self._tmp, "w", encoding="utf-8"))
        elif mode == "dir":
            self._dir = self._stack.enter_context(staged_dir(out))
            self._names: Dict[str, str] = {}

    def add(self, rec: Structure) -> None:
        text = format_structures([rec], self.fmt)
        if self.mode == "stdout":
            self._text.append(text)
        elif self.mode == "file":
            self._fh.write(text)
        else:
            fn = f"{safe_filename(rec.name)}.{self.fmt}"
            if fn.lower() in self._names:
                raise FoldError(f"records {self._names[fn.lower()]!r} and {rec.name!r} would both be written to {fn}")
            self._names[fn.lower()] = rec.name
            atomic_write_text(self._dir / fn, text)
        self.n += 1

    def commit(self) -> None:
        """Put everything in place (stdout: print it)."""
        if self.mode == "stdout":
            self.stream.write("".join(self._text))
            self.stream.flush()
        elif self.mode == "file":
            self._fh.flush()
            os.fsync(self._fh.fileno())
        self._stack.close()

    def close(self, exc: Optional[BaseException] = None) -> None:
        """Abandon: remove the temporary files."""
        err = exc or FoldError("output abandoned")
        try:
            self._stack.__exit__(type(err), err, None)
        except BaseException as e:  # the cleanup re-raises the error it was given
            if e is not err:
                raise

    def __enter__(self) -> "StructureSink":
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if et is None:
            self.commit()
        else:
            self.close(ev)
        return False


# --------------------------------------------------------------------------- plotting
def require_matplotlib():
    """matplotlib's ``Figure`` and Agg canvas, or :class:`MatplotlibMissing` with the fix."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MatplotlibMissing("plotting needs matplotlib, which is not installed: pip install matplotlib") from None
    return Figure, FigureCanvasAgg


def _arc_segments(i: np.ndarray, j: np.ndarray, n_points: int = 48) -> np.ndarray:
    """(n_pairs, n_points, 2) half-ellipses from x = i + 1 to x = j + 1 (1-based), height
    (j - i) / 2, above the axis."""
    t = np.linspace(0.0, np.pi, n_points)
    centre = (i + j)[:, None] / 2.0 + 1.0
    radius = (j - i)[:, None] / 2.0
    return np.stack([centre - radius * np.cos(t), radius * np.sin(t)], axis=-1)


def plot_structure(
    path: str | os.PathLike,
    seq: str,
    pairs,
    prob: Optional[np.ndarray] = None,
    title: Optional[str] = None,
    dpi: int = 100,
) -> None:
    """Write a PNG: an arc diagram of ``pairs`` (arcs above the sequence axis) and, if
    ``prob`` (L, L) is given, a second panel with the pair-probability map (predicted pairs
    marked in its lower triangle). Drawn with matplotlib's Agg canvas (no pyplot state) and
    written atomically."""
    Figure, FigureCanvasAgg = require_matplotlib()
    from matplotlib.collections import LineCollection

    pairs = check_pairs(pairs)
    L = len(pairs)
    if seq and len(seq) != L:
        raise ValueError(f"sequence length {len(seq)} != structure length {L}")
    if prob is not None:
        prob = np.asarray(prob, dtype=np.float32)
        if prob.shape != (L, L):
            raise ValueError(f"probability map has shape {prob.shape}, expected {(L, L)}")
    ij = np.asarray(pair_list(pairs), dtype=np.int64).reshape(-1, 2)
    i, j = ij[:, 0], ij[:, 1]

    fig = Figure(figsize=(11, 4) if prob is not None else (8, 3.5), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[1.8, 1]) if prob is not None else fig.add_gridspec(1, 1)
    ax = fig.add_subplot(grid[0, 0])
    if len(i):
        ax.add_collection(LineCollection(_arc_segments(i, j), linewidths=0.8, colors="tab:blue"))
    top = float((j - i).max()) / 2 if len(i) else 1.0
    ax.plot([1, max(L, 1)], [0, 0], color="0.3", linewidth=1.0)
    ax.set_xlim(0.5, L + 0.5)
    ax.set_ylim(-0.02 * top, 1.05 * top)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if seq and L <= 80:
        ax.set_xticks(np.arange(1, L + 1))
        ax.set_xticklabels(list(seq), fontsize=6, family="monospace")
    else:
        ax.set_xlabel("position")
    ax.set_title(f"{title + ': ' if title else ''}{len(i)} pairs, {L} nt", fontsize=10)

    if prob is not None:
        ax2 = fig.add_subplot(grid[0, 1])
        im = ax2.imshow(prob, cmap="viridis", vmin=0.0, vmax=1.0, extent=(0.5, L + 0.5, L + 0.5, 0.5), interpolation="nearest")
        if len(i):
            size = float(np.clip(4000.0 / L, 1.0, 16.0))  # about one cell, readable when L is small
            ax2.scatter(i + 1, j + 1, s=size, c="red", marker="s", linewidths=0)  # lower triangle
        ax2.set_title("pair probability (predicted pairs below the diagonal)", fontsize=8)
        fig.colorbar(im, ax=ax2, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
