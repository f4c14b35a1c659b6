"""Inference with trained sequence-level heads: ``resm interact`` and ``resm predict``.

* :func:`interact`: score RNA–RNA pairs (a pairs table) with an ``rri`` bundle, or with the
  training-free zero-shot score of a backbone; optionally keep the intermolecular pair maps.
* :func:`predict_expression`: MRL of the UTRs in a CSV (``utr`` column) or FASTA file with an
  ``mrl`` bundle; with targets present also R^2 / Spearman, and with ``--variants`` the
  variant-effect correlation of the human wild-type/variant file.

``resm predict --task NAME`` runs the function the task's descriptor names
(:class:`resm.tasks.base.TaskSpec` ``predict``) on a :class:`PredictOptions`: here
:func:`predict_rri` and :func:`predict_mrl`.

Every input record is validated before any model runs (bad rows are one-line errors naming
the line), and outputs are written atomically.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .utils.io import atomic_path, atomic_write_text

__all__ = ["interact", "predict_expression", "PredictOptions", "predict_rri", "predict_mrl"]


@dataclass(frozen=True, kw_only=True)
class PredictOptions:
    """The options of ``resm predict``, keyword-only: the ``input`` file, the trained ``model``
    folder, the TSV ``out`` (None: returned as text only), ``maps`` (rri: the pair maps' .npz),
    ``variants`` (mrl: the wild-type/variant file), the ``backbone`` (None: the one in the
    model's manifest), ``batch_size``, ``device`` and ``trust``."""

    input: Path
    model: Path
    out: Optional[Path] = None
    maps: Optional[Path] = None
    variants: bool = False
    backbone: Optional[str] = None
    batch_size: int = 64
    device: str = "cpu"
    trust: bool = False
    adapter: Optional[Path] = None  # a PEFT LoRA folder in place of the model's adapter

    def inference(self) -> "InferenceOptions":
        return InferenceOptions(self.backbone, self.adapter, self.batch_size, self.device, self.trust)


def predict_rri(o: PredictOptions) -> Dict[str, object]:
    """``resm predict --task rri``: :func:`interact` with a trained model; adds ``n``, ``what``
    and the labelled ``metrics`` the command prints."""
    r = interact(o.input, o.model, o.out, o.maps, options=o.inference())
    shown = {"labels in the file": r["metrics"]} if "metrics" in r else {}
    what = "pairs" + (f", pair maps in {o.maps}" if o.maps else "")
    return {**r, "n": len(r["scores"]), "what": what, "metrics": shown}


def predict_mrl(o: PredictOptions) -> Dict[str, object]:
    """``resm predict --task mrl``: :func:`predict_expression`; adds ``n``, ``what`` and the
    labelled ``metrics`` the command prints."""
    if o.maps:
        raise ValueError("--maps is for --task rri")
    r = predict_expression(o.input, o.model, o.out, o.variants, options=o.inference())
    shown = {"observed MRL in the file": r["metrics"]} if "metrics" in r else {}
    if "variants" in r:
        shown["variant effect (variant - wild type)"] = r["variants"]
    return {**r, "n": len(r["pred"]), "what": "predictions", "metrics": shown}


def _table(header: List[str], rows: List[List[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([f"{x:.6g}" if isinstance(x, float) else x for x in r])
    return buf.getvalue()


@dataclass(frozen=True)
class InferenceOptions:
    """How ``interact``/``predict_expression`` load and run a model.

    * backbone: a checkpoint in place of the one a bundle records (its checksum must match);
      with ``interact``'s ``zero_shot``, the backbone that scores.
    * adapter: a PEFT LoRA folder in place of the bundle's adapter (``resm.backbone.peft_format``).
    * batch_size, device: of the forward passes. trust: allow unpickling arbitrary objects.
    """

    backbone: Optional[str] = None
    adapter: Optional[Path] = None
    batch_size: int = 64
    device: str = "cpu"
    trust: bool = False


def interact(pairs_path: Path, model: Optional[Path] = None, out: Optional[Path] = None, maps: Optional[Path] = None,
             zero_shot: bool = False, probe: Optional[Path] = None, linker: str = "",
             scheme_name: Optional[str] = None, *, options: InferenceOptions = InferenceOptions()) -> Dict[str, object]:
    """Score every pair of ``pairs_path``; returns ``{"scores", "pairs", "metrics"?}``.

    With ``zero_shot`` the score comes from ``backbone`` (and an optional ``resm probe``
    regression file) and needs no trained head; ``maps`` is then the contact block."""
    from .data.rri import read_pairs
    from .tasks.rri import load_rri_model, predict_rri, rri_metrics, zero_shot_scores

    backbone, batch_size, device, trust = options.backbone, options.batch_size, options.device, options.trust
    if zero_shot:
        if not backbone:
            raise ValueError("--zero-shot needs --backbone (the checkpoint whose contact head scores the pairs)")
        from .structure.model import load_with_scheme

        loaded, scheme = load_with_scheme(backbone, scheme_name, trust=trust)
        bb = loaded.model.to(device).eval()
        if probe:
            from .structure.probe import load_probe

            load_probe(bb, probe)
        pairs = read_pairs(pairs_path, require_label=False)
        scores, pair_maps = zero_shot_scores(bb, scheme, pairs, linker, batch_size), []
        if maps:
            raise ValueError("--maps comes with a trained rri model (the zero-shot score has no duplex map)")
    else:
        if model is None:
            raise ValueError("give --model (an rri model folder from `resm finetune`) or --zero-shot")
        tm, head, entry, scheme = load_rri_model(model, backbone=backbone, trust=trust, adapter=options.adapter)
        pairs = read_pairs(pairs_path, require_label=False, max_length=int(entry["config"]["max_length"]))
        for p in pairs:
            scheme.encode(p.a, f"{p.a_name} (line {p.line})")
            scheme.encode(p.b, f"{p.b_name} (line {p.line})")
        tm = tm.to(device)
        scores, pair_maps = predict_rri(tm, scheme, pairs, batch_size, device, head, with_maps=maps is not None)
    result: Dict[str, object] = {"scores": scores, "pairs": pairs}
    if maps is not None and Path(maps).suffix != ".npz":
        raise ValueError(f"{maps}: --maps writes one .npz file (arrays named by pair index)")
    rows = [[i + 1, p.a_name, p.b_name, float(s)] + ([p.label] if p.label is not None else []) for i, (p, s) in enumerate(zip(pairs, scores))]
    labelled = all(p.label is not None for p in pairs)
    header = ["index", "a_name", "b_name", "score"] + (["label"] if labelled else [])
    if labelled:
        result["metrics"] = rri_metrics(np.array([p.label for p in pairs]), scores)
    text = _table(header, rows)
    if maps is not None:
        maps = Path(maps)
        if maps.suffix != ".npz":
            raise ValueError(f"{maps}: --maps writes one .npz file (arrays named by pair index)")
        with atomic_path(maps) as tmp, open(tmp, "wb") as fh:  # a file object: numpy adds no suffix
            np.savez_compressed(fh, **{f"pair{i + 1}": m.astype(np.float16) for i, m in enumerate(pair_maps)})
    if out is not None:
        atomic_write_text(out, text)
    else:
        result["text"] = text
    return result


def _read_utrs(path: Path):
    """(names, seqs, targets or None) from a FASTA or a CSV/TSV with a ``utr`` column."""
    from .data.mrl import TARGET_COLUMNS, MRLError, read_mrl
    from .data.rri import table_rows
    from .nucleotides import normalise

    suffixes = "".join(Path(path).suffixes[-2:]).lower()
    if any(x in suffixes for x in (".fa", ".fasta", ".fna")):
        from .fasta import read_fasta

        recs = list(read_fasta(path, unique=True))
        return [r.id for r in recs], [normalise(r.seq, r.id) for r in recs], None
    rows = table_rows(path, MRLError)
    first = next(rows, None)
    if first is None:
        raise MRLError(f"{Path(path).name}: empty file")
    header = [c.strip() for c in first[1]]
    if any(t in header for t in TARGET_COLUMNS):
        utrs = read_mrl(path)
        return [u.name for u in utrs], [u.seq for u in utrs], np.array([u.mrl for u in utrs])
    if "utr" not in header:
        raise MRLError(f"{Path(path).name} line {first[0]}: no 'utr' column (columns: {header})")
    k = header.index("utr")
    idc = header.index("id") if "id" in header else None
    names, seqs = [], []
    for n, cells in rows:
        if len(cells) != len(header):
            raise MRLError(f"{Path(path).name} line {n}: {len(cells)} columns, the header has {len(header)}")
        name = cells[idc] if idc is not None else f"line{n}"
        try:
            seqs.append(normalise(cells[k].strip(), f"{name} (line {n})"))
        except ValueError as e:
            raise MRLError(f"{Path(path).name} line {n}: {e}") from None
        names.append(name)
    return names, seqs, None


def predict_expression(path: Path, model: Path, out: Optional[Path] = None, variants: bool = False, *,
                       options: InferenceOptions = InferenceOptions(batch_size=256)) -> Dict[str, object]:
    """Predicted MRL of every UTR of ``path``; returns ``{"pred", "names", "metrics"?, "variants"?}``."""
    from .tasks.mrl import load_mrl_model, mrl_metrics, predict_mrl, variant_effect

    batch_size, device = options.batch_size, options.device
    tm, head, entry, scheme = load_mrl_model(model, backbone=options.backbone, trust=options.trust, adapter=options.adapter)
    limit = entry["config"].get("length") or entry["config"].get("max_length")
    if variants:
        from .data.mrl import read_variants

        utrs, vpairs = read_variants(path)
        names, seqs, y = [u.name for u in utrs], [u.seq for u in utrs], np.array([u.mrl for u in utrs])
    else:
        names, seqs, y = _read_utrs(path)
    if not seqs:
        from .data.mrl import MRLError

        raise MRLError(f"{path}: no UTRs to predict (the file holds a header only)")
    for n, s in zip(names, seqs):
        if limit and len(s) > int(limit):
            raise ValueError(f"{Path(path).name}: record {n!r} has {len(s)} nt, longer than the {limit} nt this model supports")
        scheme.encode(s, n)
    extra = entry["extra"]
    pred = predict_mrl(tm.to(device), scheme, seqs, float(extra["mean"]), float(extra["std"]), batch_size, device, head)
    result: Dict[str, object] = {"pred": pred, "names": names}
    if y is not None:
        result["metrics"] = mrl_metrics(y, pred)
    if variants:
        result["variants"] = variant_effect(pred, utrs, vpairs)
    rows = [[n, float(p)] + ([float(t)] if y is not None else []) for n, p, t in zip(names, pred, y if y is not None else pred)]
    text = _table(["name", "predicted_mrl"] + (["observed_mrl"] if y is not None else []), rows)
    if out is not None:
        atomic_write_text(out, text)
    else:
        result["text"] = text
    return result
