"""Nucleotide -> pseudo-protein mapping.

The scheme tables live in the repository's top-level ``mapping/`` folder (installed as the
package data ``resm._schemes``); this module loads them and turns sequences into token ids of
ESM-2's own 33-token alphabet, so no embedding or LM-head row is new.

All work is vectorised through 256-entry byte lookup tables, so mapping a million
nucleotides takes milliseconds. Sequences are read by the strict normaliser of
:mod:`resm.nucleotides` (where :class:`MappingError` lives too).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from .alphabet import ALPHABET, tok
from .nucleotides import (
    NUCLEOTIDES,
    UNKNOWN_BASE,
    UNKNOWN_LETTER,
    MappingError,
    describe_symbol,
    normalise,
    record_bytes,
    rna_codes,
)

DEFAULT_SCHEME = "kdny"


@dataclass(frozen=True)
class Scheme:
    """A named, declarative nucleotide -> protein-letter scheme."""

    name: str
    kind: str  # "letter", "context" or "identity"
    description: str
    spec: dict = field(repr=False)
    table_hash: str = ""
    # Token ids (ESM alphabet) the scheme emits for the four nucleotides / context letters.
    letter_ids: tuple = ()
    unknown_id: int = 0
    _lut: np.ndarray | None = field(default=None, repr=False, compare=False)
    _fallback: Scheme | None = field(default=None, repr=False, compare=False)

    # ---- encoding -------------------------------------------------------------------
    def encode(self, seq, record: str = "<sequence>") -> np.ndarray:
        """Token ids (int64, one per residue, no BOS/EOS) of the mapped sequence."""
        if self.kind == "identity":
            raw = record_bytes(seq, record)
            ids = self._lut[raw]
            bad = np.flatnonzero(ids < 0)
            if bad.size:
                p = int(bad[0])
                raise MappingError(
                    f"record {record!r}: {describe_symbol(seq, raw, p)} at position {p + 1} is not an amino acid"
                )
            return ids.astype(np.int64)
        return self.encode_codes(rna_codes(seq, record))

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Token ids (int64) of a sequence already read as nucleotide codes 0..4
        (:func:`resm.nucleotides.rna_codes`); not for the identity scheme."""
        if self.kind == "identity":
            raise ValueError(f"scheme {self.name!r} reads protein letters, not nucleotide codes")
        if self.kind == "letter":
            return self._lut[codes].astype(np.int64)
        # context (centred triplet): code = 25*left + 5*centre + right over a 5-letter alphabet
        # in which 4 marks "unknown or beyond the end".
        left = np.empty_like(codes)
        right = np.empty_like(codes)
        left[0], right[-1] = UNKNOWN_BASE, UNKNOWN_BASE
        left[1:], right[:-1] = codes[:-1], codes[1:]
        idx = left.astype(np.int64) * 25 + codes.astype(np.int64) * 5 + right
        return self._lut[idx].astype(np.int64)

    def to_protein(self, seq, record: str = "<sequence>") -> str:
        """The pseudo-protein string that the model sees."""
        return "".join(ALPHABET.all_toks[i] for i in self.encode(seq, record))

    def decode(self, ids) -> str:
        """Invert a single-letter scheme: token ids -> RNA (unknown letter -> N)."""
        if self.kind != "letter":
            raise ValueError(f"scheme {self.name!r} ({self.kind}) has no per-letter inverse")
        inv = {tid: n for n, tid in zip(NUCLEOTIDES, self.letter_ids)}
        inv[self.unknown_id] = UNKNOWN_LETTER
        try:
            return "".join(inv[int(i)] for i in ids)
        except KeyError as e:
            raise ValueError(f"token id {e.args[0]} is not a letter of scheme {self.name!r}") from None

    def to_rna(self, letters: str) -> str:
        """Invert :meth:`to_protein` for a single-letter scheme: protein letters (a model's
        prediction, a fill-mask ``token_str`` or ``sequence``; whitespace ignored) -> RNA, the
        scheme's unknown letter -> N. A letter the scheme never emits is a ValueError naming it."""
        text = "".join(str(letters).split())
        ids = []
        for p, c in enumerate(text):
            i = ALPHABET.tok_to_idx.get(c.upper(), -1)
            if i not in self.letter_ids and i != self.unknown_id:
                want = "".join(sorted(self.letters + ALPHABET.all_toks[self.unknown_id]))
                raise ValueError(f"letter {c!r} at position {p + 1} is not one scheme {self.name!r} emits ({want})")
            ids.append(i)
        return self.decode(ids)

    def rna_replacements(self) -> dict[str, str]:
        """RNA letter -> protein letter, both cases and T as U, for a tokenizer that maps raw
        RNA itself; empty when one pass of replacements could not do it (a context or identity
        scheme, or a letter that is both a source and a target)."""
        if self.kind != "letter":
            return {}
        table = {n: ALPHABET.all_toks[i] for n, i in zip(NUCLEOTIDES, self.letter_ids)}
        table["T"] = table["U"]
        out = {}
        for n, p in table.items():
            for src in (n, n.lower()):
                if src != p:
                    out[src] = p
        return {} if set(out) & set(out.values()) else out

    @property
    def letters(self) -> str:
        return "".join(ALPHABET.all_toks[i] for i in self.letter_ids)

    def describe(self, example: str = "GGACUUCGGUCC") -> str:
        """A readable account of the scheme: its whole table, and for the context scheme how a
        base's letter comes from its centred triplet, with ``example`` worked through."""
        lines = [f"{self.name} ({self.kind}): {self.description}", f"table hash {self.table_hash}", ""]
        unknown = ALPHABET.all_toks[self.unknown_id]
        if self.kind == "letter":
            lines += [f"  {n} -> {ALPHABET.all_toks[i]}" for n, i in zip(NUCLEOTIDES, self.letter_ids)]
            lines += [
                f"  any unknown base (N, IUPAC codes, I, P, X) -> {unknown}",
                "",
                "T is read as U; case does not matter; one token per nucleotide.",
            ]
        elif self.kind == "identity":
            lines += [
                f"  letters kept as they are: {self.spec['letters']}",
                f"  rare letters kept: {self.spec.get('rare', '')}",
                f"  unknown: {unknown}",
            ]
            return "\n".join(lines)
        else:
            fb, stop = self._fallback, self.spec["stop"]
            lines += [
                "The letter of base i is the amino acid that the triplet (i-1, i, i+1) encodes under",
                f"the standard genetic code (stop codons give {stop}); one token per nucleotide, so pair",
                "maps stay aligned. At the two ends, or next to an unknown base, the base takes its",
                f"{fb.name} letter ({', '.join(f'{n}->{fb.letters[k]}' for k, n in enumerate(NUCLEOTIDES))});",
                f"an unknown base is {unknown}.",
                "",
                "Triplet -> letter (the centre base is the one encoded):",
            ]
            order = "UCAG"
            for a in order:
                for c in order:
                    lines.append(
                        "  "
                        + "   ".join(f"{a}{b}{c} {self.spec['codons'][a + b + c].replace('*', stop)}" for b in order)
                    )
        if example:
            seq = normalise(example)
            out = self.to_protein(seq)
            lines += ["", f"Example: {seq} -> {out}"]
            if self.kind == "context":
                for k in range(min(len(seq), 4)):
                    left, right = (seq[k - 1] if k else "-"), (seq[k + 1] if k + 1 < len(seq) else "-")
                    how = f"end: {fb.name} letter" if "-" in left + right else f"triplet {left}{seq[k]}{right}"
                    lines.append(f"  base {k + 1} {seq[k]}: {how} -> {out[k]}")
                lines.append("  ...")
        return "\n".join(lines)

    def metadata(self) -> dict[str, str]:
        return {"scheme": self.name, "scheme_hash": self.table_hash}

    def check(self, meta: dict | None, where: str = "checkpoint") -> None:
        """Raise if `meta` (from a checkpoint) names another scheme or another table."""
        if not meta or "scheme" not in meta or meta["scheme"] == "protein":
            return  # a protein checkpoint (ESM-2's own, or ours): any scheme may be applied
        if meta["scheme"] != self.name:
            raise MappingError(f"{where} was trained with mapping scheme {meta['scheme']!r}, not {self.name!r}")
        if meta.get("scheme_hash") and meta["scheme_hash"] != self.table_hash:
            raise MappingError(
                f"{where}: the table of scheme {self.name!r} differs from the one it was "
                f"trained with (hash {meta['scheme_hash'][:12]} != {self.table_hash[:12]})"
            )


def _hash(spec: dict, fallback: Scheme | None = None) -> str:
    body = {k: v for k, v in spec.items() if k != "description"}
    if fallback is not None:  # a context scheme also depends on its fallback's table
        body["fallback_hash"] = fallback.table_hash
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _letter_lut(spec: dict) -> np.ndarray:
    lut = np.full(5, tok(spec["unknown"]), dtype=np.int64)
    for i, n in enumerate(NUCLEOTIDES):
        lut[i] = tok(spec["table"][n])
    return lut


def _build(spec: dict) -> Scheme:
    kind = spec["kind"]
    name = spec["name"]
    unknown = tok(spec.get("unknown", "X"))
    fallback = None
    if kind == "letter":
        if sorted(spec["table"]) != sorted(NUCLEOTIDES):
            raise ValueError(f"scheme {name!r}: table must map exactly A, C, G, U")
        lut = _letter_lut(spec)
        letter_ids = tuple(int(x) for x in lut[:4])
        if len(set(letter_ids)) != 4:
            raise ValueError(f"scheme {name!r}: letters must be distinct")
    elif kind == "context":
        fallback = get_scheme(spec["fallback"])
        fb = fallback._lut
        lut = np.empty(125, dtype=np.int64)
        stop = tok(spec["stop"])
        for left in range(5):
            for centre in range(5):
                for right in range(5):
                    i = left * 25 + centre * 5 + right
                    if centre == UNKNOWN_BASE:
                        lut[i] = unknown
                    elif left == UNKNOWN_BASE or right == UNKNOWN_BASE:
                        lut[i] = fb[centre]
                    else:
                        codon = NUCLEOTIDES[left] + NUCLEOTIDES[centre] + NUCLEOTIDES[right]
                        aa = spec["codons"][codon]
                        lut[i] = stop if aa == "*" else tok(aa)
        letter_ids = tuple(sorted({int(x) for x in lut} - {unknown}))
    elif kind == "identity":
        lut = np.full(256, -1, dtype=np.int64)
        for c in spec["letters"] + spec.get("rare", ""):
            lut[ord(c)] = lut[ord(c.lower())] = tok(c)
        letter_ids = tuple(tok(c) for c in spec["letters"])
    else:
        raise ValueError(f"scheme {name!r}: unknown kind {kind!r}")
    lut.setflags(write=False)
    return Scheme(
        name=name,
        kind=kind,
        description=spec.get("description", ""),
        spec=spec,
        table_hash=_hash(spec, fallback),
        letter_ids=letter_ids,
        unknown_id=unknown,
        _lut=lut,
        _fallback=fallback,
    )


def _scheme_files() -> dict[str, resources.abc.Traversable]:
    """The scheme files: the package data ``resm._schemes`` of an installed package, else the
    repository's ``mapping/`` folder beside the package (a source checkout on ``PYTHONPATH``)."""
    try:
        root = resources.files("resm._schemes")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[1] / "mapping"
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".yaml")}


def list_schemes() -> list[str]:
    return sorted(_scheme_files())


@functools.cache
def get_scheme(name: str = DEFAULT_SCHEME) -> Scheme:
    files = _scheme_files()
    if name not in files:
        raise MappingError(f"unknown mapping scheme {name!r}; known: {', '.join(sorted(files))}")
    spec = yaml.safe_load(files[name].read_text())
    if spec.get("name") != name:
        raise ValueError(f"scheme file {name}.yaml declares name {spec.get('name')!r}")
    return _build(spec)
