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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .config import UsageError
from .utils.io import atomic_path, atomic_write_text

__all__ = [
    "interact",
    "InteractOptions",
    "interact_options",
    "InferenceOptions",
    "predict_expression",
    "PredictOptions",
    "predict_rri",
    "predict_mrl",
]


@dataclass(frozen=True, kw_only=True)
class PredictOptions:
    """The options of ``resm predict``, keyword-only: the ``input`` file, the trained ``model``
    folder, the TSV ``out`` (None: returned as text only), ``maps`` (rri: the pair maps' .npz),
    ``variants`` (mrl: the wild-type/variant file), the ``backbone`` (None: the one in the
    model's manifest), ``batch_size``, ``device``, ``trust``, and for rri the long-partner scan
    (``sites``: the sites' TSV, ``window``, ``stride``, ``max_sites``) and ``adapter`` (a PEFT
    LoRA folder in place of the model's adapter); ``progress``: a bar on stderr counting the
    pairs or UTRs against their total (the command line's rule:
    :data:`resm.commands.common.PROGRESS_BARS`)."""

    input: Path
    model: Path
    out: Path | None = None
    maps: Path | None = None
    variants: bool = False
    backbone: str | None = None
    batch_size: int = 64
    device: str = "cpu"
    trust: bool = False
    sites: Path | None = None
    window: int = 0
    stride: int = 0
    max_sites: int = 10
    adapter: Path | None = None  # a PEFT LoRA folder in place of the model's adapter
    progress: bool = False

    def inference(self) -> InferenceOptions:
        return InferenceOptions(
            backbone=self.backbone,
            adapter=self.adapter,
            batch_size=self.batch_size,
            device=self.device,
            trust=self.trust,
            progress=self.progress,
        )


def predict_rri(o: PredictOptions) -> dict[str, object]:
    """``resm predict --task rri``: :func:`interact` with a trained model (partners to 4,000 nt,
    scanned in windows); adds ``n``, ``what`` and the labelled ``metrics`` the command prints."""
    if o.variants:
        raise UsageError("--variants is for --task mrl (the wild-type/variant UTR file)")
    r = interact(o.input, o.model, interact_options(o))
    shown = {"labels in the file": r["metrics"]} if "metrics" in r else {}
    what = "pairs" + (f", pair maps in {o.maps}" if o.maps else "") + (f", sites in {o.sites}" if o.sites else "")
    return {**r, "n": len(r["scores"]), "what": what, "metrics": shown}


def predict_mrl(o: PredictOptions) -> dict[str, object]:
    """``resm predict --task mrl``: :func:`predict_expression`; adds ``n``, ``what`` and the
    labelled ``metrics`` the command prints."""
    from .tasks.mrl import ENCODER_WINDOW

    if o.maps or o.sites:
        raise UsageError("--maps and --sites are for --task rri")
    if o.window or o.stride:
        raise UsageError(
            "--window and --stride are for --task rri (the expression head reads a UTR whole; one over "
            f"{ENCODER_WINDOW} nt reaches the backbone in overlapping windows, the last ending at its 3' end)"
        )
    r = predict_expression(o.input, o.model, o.out, o.variants, options=o.inference())
    shown = {"observed MRL in the file": r["metrics"]} if "metrics" in r else {}
    if "variants" in r:
        shown["variant effect (variant - wild type)"] = r["variants"]
    return {**r, "n": len(r["pred"]), "what": "predictions", "metrics": shown}


def _table(header: list[str], rows: list[list[object]]) -> str:
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
    * progress: a bar on stderr counting the UTRs against their total.
    """

    backbone: str | None = None
    adapter: Path | None = None
    batch_size: int = 64
    device: str = "cpu"
    trust: bool = False
    progress: bool = False


@dataclass
class InteractOptions:
    """Options of :func:`interact` (``resm interact``).

    Attributes:
        out: TSV of pair scores to write (None: returned as ``text``).
        maps: ``.npz`` of each pair's intermolecular pair-probability map (stitched from the
            windows for long partners).
        sites: TSV of each pair's sites (window coordinates, 1-based and inclusive, in the
            partners; probability; ViennaRNA's duplex of the two windows; the head's pair chain).
        zero_shot: score from ``backbone``'s contact head instead of a trained head.
        backbone: backbone checkpoint (zero-shot; else overrides the bundle's, checksum checked).
        probe: zero-shot contact regression from ``resm probe``.
        linker: zero-shot: nucleotides put between the partners.
        scheme_name: zero-shot mapping scheme.
        batch_size: pairs (short partners) or window pairs (long ones) per batch.
        device: torch device.
        trust: allow unpickling arbitrary objects.
        scan: window, stride and sites per pair for partners longer than the window
            (:class:`resm.tasks.rri_sites.ScanOptions`).
        adapter: a PEFT LoRA folder in place of the bundle's adapter.
    """

    out: Path | None = None
    maps: Path | None = None
    sites: Path | None = None
    zero_shot: bool = False
    backbone: str | None = None
    probe: Path | None = None
    linker: str = ""
    scheme_name: str | None = None
    batch_size: int = 64
    device: str = "cpu"
    trust: bool = False
    scan: object | None = None
    adapter: Path | None = None


def interact_options(values, renamed: dict[str, str] | None = None) -> InteractOptions:
    """The :class:`InteractOptions` of ``resm interact`` (the parsed command line, its names for
    the fields given by ``renamed``: :func:`resm.config.options`) or of ``resm predict --task
    rri`` (a :class:`PredictOptions`): the fields of the same name, and the long-partner scan
    from ``window``, ``stride`` and ``max_sites``, with a progress bar on stderr where ``values``
    ask for one (``progress``; the command line's rule: :data:`resm.commands.common.PROGRESS_BARS`)."""
    from .config import options
    from .tasks.rri_sites import ScanOptions

    v = vars(values)
    progress = bool(v.get("progress", False))
    scan = ScanOptions(window=v["window"], stride=v["stride"], max_sites=v["max_sites"], progress=progress)
    return options(InteractOptions, {**v, "scan": scan}, renamed)


ZERO_SHOT_MAX = 1024  # the zero-shot score attends over a + linker + b in one pass


def _sites_rows(pairs, scans) -> list[list[object]]:
    rows = []
    for k, (p, r) in enumerate(zip(pairs, scans, strict=True), 1):
        for rank, s in enumerate(r.sites, 1):
            rows.append(
                [
                    k,
                    p.a_name,
                    p.b_name,
                    rank,
                    s.a_start,
                    s.a_end,
                    s.b_start,
                    s.b_end,
                    float(s.prob),
                    s.duplex_a[0] or "",
                    s.duplex_a[1] or "",
                    s.duplex_b[0] or "",
                    s.duplex_b[1] or "",
                    s.duplex or "-",
                    f"{s.duplex_energy:.2f}" if s.duplex else "",
                    ";".join(f"{i}-{j}" for i, j in s.head_pairs) or "-",
                ]
            )
    return rows


SITES_HEADER = [
    "index",
    "a_name",
    "b_name",
    "rank",
    "a_start",
    "a_end",
    "b_start",
    "b_end",
    "probability",
    "duplex_a_start",
    "duplex_a_end",
    "duplex_b_start",
    "duplex_b_end",
    "duplex",
    "duplex_energy",
    "head_pairs",
]


def interact(
    pairs_path: Path, model: Path | None = None, options: InteractOptions | None = None, **kwargs
) -> dict[str, object]:
    """Score every pair of ``pairs_path``; returns ``{"scores", "pairs", "scans"?, "metrics"?}``.

    ``options`` (or its fields as keywords) is :class:`InteractOptions`. With a trained model,
    partners of any length up to :data:`resm.tasks.rri_sites.MAX_PARTNER` nt are scanned in
    windows of the head's trained length (:mod:`resm.tasks.rri_sites`): the score is the best
    window pair's probability, and ``scans`` holds each pair's sites. With ``zero_shot`` the
    score comes from ``backbone`` (and an optional ``resm probe`` regression file) and needs no
    trained head; ``maps`` is then refused."""
    from .config import first_given
    from .data.rri import read_pairs
    from .tasks.rri import load_rri_model, rri_metrics, zero_shot_scores
    from .tasks.rri_sites import MAX_PARTNER, ScanOptions, scan_pairs

    o = options or InteractOptions(**kwargs)
    for path, what in ((o.maps, "--maps writes one .npz file (arrays named by pair index)"),):
        if path is not None and Path(path).suffix != ".npz":
            raise UsageError(f"{path}: {what}")
    scans = None
    if o.zero_shot:
        if not o.backbone:
            raise UsageError("--zero-shot needs --backbone (the checkpoint whose contact head scores the pairs)")
        if (what := first_given({"--model": model, "--adapter": o.adapter})) is not None:  # was passed over
            raise UsageError(f"{what} and --zero-shot: the zero-shot score reads the backbone's contact head alone")
        if o.maps or o.sites:
            raise UsageError("--maps and --sites come with a trained rri model (the zero-shot score has no duplex map)")
        if o.scan is not None and (o.scan.window or o.scan.stride):
            raise UsageError("--window and --stride scan a trained rri model (the zero-shot score reads a pair whole)")
        from .nucleotides import normalise
        from .structure.model import load_with_scheme

        linker = normalise(o.linker, "--linker") if o.linker else ""  # checked before any pair is read
        pairs = read_pairs(pairs_path, require_label=False)
        for p in pairs:
            n = len(p.a) + len(linker) + len(p.b)
            if n > ZERO_SHOT_MAX:
                raise ValueError(
                    f"{pairs_path} line {p.line}: pair {p.name!r} joins to {n} nt, longer "
                    f"than the {ZERO_SHOT_MAX} nt the zero-shot score reads in one pass (a trained model "
                    "scans any length)"
                )
        loaded, scheme = load_with_scheme(o.backbone, o.scheme_name, trust=o.trust)
        bb = loaded.model.to(o.device).eval()
        if o.probe:
            from .structure.probe import load_probe

            load_probe(bb, o.probe)
        else:
            from .embed import require_contact_regression

            require_contact_regression(loaded.meta, str(o.backbone), "zero-shot scores", ", or give --probe PROBE.pt")
        progress = o.scan is not None and o.scan.progress  # as the trained path's
        scores, pair_maps = zero_shot_scores(bb, scheme, pairs, linker, o.batch_size, progress), []
    else:
        if model is None:
            raise UsageError("give --model (an rri model folder from `resm finetune`) or --zero-shot")
        given = {"--probe": o.probe, "--linker": o.linker or None, "--scheme": o.scheme_name}
        if (what := first_given(given)) is not None:
            raise UsageError(f"{what} comes with --zero-shot; a trained rri model reads its own scheme and no probe")
        pairs = read_pairs(pairs_path, require_label=False, max_length=MAX_PARTNER)
        tm, head, entry, scheme = load_rri_model(model, backbone=o.backbone, trust=o.trust, adapter=o.adapter)
        for p in pairs:
            scheme.encode(p.a, f"{p.a_name} (line {p.line})")
            scheme.encode(p.b, f"{p.b_name} (line {p.line})")
        # the caller's scan options are not changed: maps and batch size come from this call
        scan = replace(o.scan or ScanOptions(), with_maps=o.maps is not None, batch_size=o.batch_size)
        scans = scan_pairs(tm.to(o.device), head, scheme, pairs, int(entry["config"]["max_length"]), scan, o.device)
        scores = np.array([r.score for r in scans], np.float32)
        pair_maps = [r.map for r in scans]
    result: dict[str, object] = {"scores": scores, "pairs": pairs}
    if scans is not None:
        result["scans"] = scans
    rows = [
        [i + 1, p.a_name, p.b_name, float(s)] + ([p.label] if p.label is not None else [])
        for i, (p, s) in enumerate(zip(pairs, scores))
    ]
    labelled = all(p.label is not None for p in pairs)
    header = ["index", "a_name", "b_name", "score"] + (["label"] if labelled else [])
    if labelled:
        result["metrics"] = rri_metrics(np.array([p.label for p in pairs]), scores)
    text = _table(header, rows)
    if o.maps is not None:
        with atomic_path(o.maps) as tmp, open(tmp, "wb") as fh:  # a file object: numpy adds no suffix
            np.savez_compressed(fh, **{f"pair{i + 1}": m.astype(np.float16) for i, m in enumerate(pair_maps)})
    if o.sites is not None:
        atomic_write_text(o.sites, _table(SITES_HEADER, _sites_rows(pairs, scans)))
    if o.out is not None:
        atomic_write_text(o.out, text)
    else:
        result["text"] = text
    return result


def predict_expression(
    path: Path,
    model: Path,
    out: Path | None = None,
    variants: bool = False,
    *,
    options: InferenceOptions = InferenceOptions(batch_size=256),
) -> dict[str, object]:
    """Predicted MRL of every UTR of ``path``; returns ``{"pred", "names", "metrics"?, "variants"?}``."""
    from .tasks.mrl import MAX_UTR, load_mrl_model, mrl_metrics, mrl_scale, predict_mrl, variant_effect

    batch_size, device = options.batch_size, options.device
    tm, head, entry, scheme = load_mrl_model(
        model, backbone=options.backbone, trust=options.trust, adapter=options.adapter
    )
    # the Optimus baseline reads a fixed width; the pooled expression head any length to MAX_UTR
    limit = entry["config"].get("length") if entry["config"].get("kind") == "optimus" else MAX_UTR
    if variants:
        from .data.mrl import read_variants

        utrs, vpairs = read_variants(path)
        names, seqs, y = [u.name for u in utrs], [u.seq for u in utrs], np.array([u.mrl for u in utrs])
    else:
        from .data.mrl import read_utrs

        names, seqs, y = read_utrs(path)
    if not seqs:
        from .data.mrl import MRLError

        raise MRLError(f"{path}: no UTRs to predict (the file holds a header only)")
    for n, s in zip(names, seqs):
        if limit and len(s) > int(limit):
            what = "the Optimus baseline reads" if limit != MAX_UTR else "supported"
            raise ValueError(f"{path}: record {n!r} has {len(s)} nt, longer than the {limit} nt {what}")
        scheme.encode(s, n)
    mean, std = mrl_scale(entry, model)
    pred = predict_mrl(tm.to(device), scheme, seqs, mean, std, batch_size, device, head, progress=options.progress)
    result: dict[str, object] = {"pred": pred, "names": names}
    if y is not None:
        result["metrics"] = mrl_metrics(y, pred)
    if variants:
        result["variants"] = variant_effect(pred, utrs, vpairs)
    rows = [
        [n, float(p)] + ([float(t)] if y is not None else [])
        for n, p, t in zip(names, pred, y if y is not None else pred)
    ]
    text = _table(["name", "predicted_mrl"] + (["observed_mrl"] if y is not None else []), rows)
    if out is not None:
        atomic_write_text(out, text)
    else:
        result["text"] = text
    return result
