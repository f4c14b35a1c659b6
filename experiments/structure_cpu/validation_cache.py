"""One model's validation predictions and the classical folders' outputs on the same records,
computed once and kept in ``runs/`` (never committed), for the density diagnosis
(``density_diagnosis.py``) and the mixture of priors (``prior_mixture.py``).

The validation sets are exactly those of ``decoding_density.py`` (the config's ``data.val``,
held-out families and ``data.val_sets``); for every record the cache holds the pair head's
candidates ``(i, j)`` with the head's and the EternaFold prior's probability, the reference
pairs, RNAfold's MFE structure, EternaFold's MEA structure (LinearPartition, beam 100), and
RNAfold's partition-function pair probabilities (``resm.structure.priors.rnafold_bpp``; canonical
pairs with ``j - i > 3`` and p >= 1e-4, as the head's candidates are cut from its prior). VL1's
records also keep every base that sits in more than one pair of the full (all-pair) table.
Stored as a plain ``.npz`` (no pickles): concatenated arrays with per-record offsets.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from resm.nucleotides import PAIR_TYPE, lenient_codes
from resm.structure.folders import fold_with
from resm.structure.pairsets import PairSet, read_pair_table
from resm.structure.priors import rnafold_bpp

MIN_PROB = 1e-4
FIELDS = ("i", "j", "model_p", "prior_p", "ref", "mfe", "eterna", "vi", "vj", "vp", "multi")


def pair_arrays(x) -> tuple[int, np.ndarray, np.ndarray]:
    """Length and the i < j index arrays of a partner array or a PairSet."""
    if isinstance(x, PairSet):
        return x.length, x.ij[:, 0], x.ij[:, 1]
    a = np.asarray(x, dtype=np.int64)
    i = np.flatnonzero(a > np.arange(len(a)))
    return len(a), i, a[i]


def _pack(arrs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    off = np.zeros(len(arrs) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(a) for a in arrs])
    flat = np.concatenate(arrs) if arrs else np.zeros(0)
    return flat, off


def _unpack(flat: np.ndarray, off: np.ndarray) -> list[np.ndarray]:
    return [flat[off[k] : off[k + 1]] for k in range(len(off) - 1)]


def rnafold_candidates(seq: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RNAfold's pair probabilities of ``seq`` as sparse canonical candidates ``(i, j, p)``."""
    P = rnafold_bpp(seq)
    i, j = np.nonzero(np.triu(P, 4) >= MIN_PROB)
    codes = lenient_codes(seq)
    ok = PAIR_TYPE[codes[i], codes[j]] >= 0
    i, j = i[ok], j[ok]
    return i.astype(np.int64), j.astype(np.int64), P[i, j].astype(np.float32)


def build(sets: dict[str, list], path: Path, full_tables: dict[str, str]) -> None:
    """Write the cache of ``sets`` (``validation_predictions``' output) to ``path``;
    ``full_tables``: set name -> its pair table, read for the multiplet bases."""
    full = {}
    for name, table in full_tables.items():
        full[name] = {r.seq: r.pairs for r in read_pair_table(table)}
    out: dict[str, np.ndarray] = {}
    for s, items in sets.items():
        cols: dict[str, list] = {f: [] for f in FIELDS}
        seqs, lengths = [], []
        for seq, i, j, mp, pp, ref in tqdm(items, desc=f"folders on {s}"):
            L, ti, tj = pair_arrays(ref)
            seqs.append(seq)
            lengths.append(L)
            cols["i"].append(np.asarray(i, np.int64))
            cols["j"].append(np.asarray(j, np.int64))
            cols["model_p"].append(np.asarray(mp, np.float32))
            cols["prior_p"].append(np.asarray(pp, np.float32))
            cols["ref"].append(np.stack([ti, tj], 1).astype(np.int64).ravel())
            cols["mfe"].append(fold_with("rnafold", seq).astype(np.int64))
            cols["eterna"].append(fold_with("eternafold", seq).astype(np.int64))
            vi, vj, vp = rnafold_candidates(seq)
            cols["vi"].append(vi)
            cols["vj"].append(vj)
            cols["vp"].append(vp)
            multi = np.zeros(0, np.int64)
            if s in full and seq in full[s]:
                ij = full[s][seq].ij
                multi = np.flatnonzero(np.bincount(ij.ravel(), minlength=L) > 1).astype(np.int64)
            cols["multi"].append(multi)
        out[f"{s}/seq"] = np.array(seqs)
        out[f"{s}/length"] = np.array(lengths, np.int64)
        for f, arrs in cols.items():
            out[f"{s}/{f}"], out[f"{s}/{f}_off"] = _pack(arrs)
    out["sets"] = np.array(list(sets))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(path)


def load(path: Path) -> dict[str, list[dict]]:
    """``{set: [record dict]}``: ``seq``, ``i``, ``j``, ``model_p``, ``prior_p``, ``ref`` (PairSet),
    ``mfe`` and ``eterna`` (partner arrays), ``vi``/``vj``/``vp`` (RNAfold's candidates),
    ``multi`` (multiplet bases, VL1 only)."""
    z = np.load(path, allow_pickle=False)
    out = {}
    for s in z["sets"].tolist():
        cols = {f: _unpack(z[f"{s}/{f}"], z[f"{s}/{f}_off"]) for f in FIELDS}
        recs = []
        for k, (seq, L) in enumerate(zip(z[f"{s}/seq"].tolist(), z[f"{s}/length"].tolist())):
            r = {f: cols[f][k] for f in FIELDS}
            r["seq"] = seq
            r["ref"] = PairSet(r["ref"].reshape(-1, 2), L)
            recs.append(r)
        out[s] = recs
    return out


def cached_sets(model_path: str, config: str, overrides: list[str], cache_dir: str = "runs/mixdiag") -> dict:
    """The cache of ``model_path``'s validation predictions under ``config`` (built when missing)."""
    from decoding_density import StructureTask, load_config, model_from_payload, safe_load

    digest = hashlib.sha1(Path(model_path).read_bytes()).hexdigest()
    key = hashlib.sha1("\n".join([digest, config, *overrides]).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"validation_{key}.npz"
    if not path.exists():
        cfg = load_config(config, overrides)
        task = StructureTask(cfg, train_priors=False)
        model, _ = model_from_payload(safe_load(model_path))
        sets = task.kind.validation_predictions(model, "cpu")
        tables = {n: p for n, p in (cfg["data"].get("val_sets") or {}).items() if str(p).endswith(".tsv")}
        build(sets, path, tables)
    return load(path)
