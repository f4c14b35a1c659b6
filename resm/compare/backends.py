"""Backbones behind one interface, for ``resm compare``.

A backend turns one RNA sequence of length L into

* per-residue embeddings, a float32 (L, E) CPU tensor (no BOS/EOS rows), and, where it has
  them,
* attention features: the symmetrised, APC-corrected attention maps of every layer and head
  (ESM's contact-head features, ``apc(a + a^T)`` over the residue block of each map), handed to
  a callback one layer at a time as (H, L, L) tensors, so a caller that keeps only a few cells
  (the probe's sampled pairs) or a weighted sum (the probe's map) never holds all
  ``layers x heads`` maps. :meth:`Backend.attention_maps` stacks them into
  (layers * heads, L, L), channel ``layer * heads + head``, as ESM's regression orders them.

Kinds (``BackendSpec.kind``):

* ``resm``: an ESM-2 checkpoint read by :func:`resm.backbone.load.load_backbone` (fair-esm .pt,
  Hugging Face folder or fair-esm model name) under a mapping scheme; with scheme ``nt`` (A, C,
  G, U as the ESM alphabet's own letters) and a checkpoint pretrained from random init with
  ``data.scheme=nt`` this is the in-project nucleotide-model control.
* ``rnafm``: RNA-FM through the ``fm`` package (``pip install rna-fm``) from a LOCAL checkpoint.
  The file is a dict ``{"args": argparse.Namespace(arch="roberta_large", encoder_layers=...,
  encoder_embed_dim=..., encoder_ffn_embed_dim=..., encoder_attention_heads=...,
  max_positions=...), "model": {"encoder.sentence_encoder.<name>" / "encoder.lm_head.<name>":
  tensor}}``. It is read with :func:`resm.backbone.load.safe_load` (``weights_only=True``, only
  ``argparse.Namespace`` allowed) and built by ``fm.pretrained.load_model_and_alphabet_core``,
  which is what ``fm.pretrained.load_model_and_alphabet_local`` does after its own
  ``torch.load``; that call is not used because under torch >= 2.6 it refuses the Namespace
  (``weights_only`` became the default), it defaults to the protein alphabet, and it looks for
  a contact-regression file unless the file name contains "RNA-FM". The alphabet is RNA-FM's
  nucleotide one (theme ``rna``: A C G U, IUPAC codes, BOS ``<cls>`` and EOS): it has no ``T``
  (fm would turn T into ``<unk>``), so sequences are normalised first (upper case, T -> U,
  IUPAC codes -> N, :func:`resm.nucleotides.normalise`). Learnt positions limit RNA-FM to
  ``max_positions - 2`` nucleotides (1022 for the released model).
* ``multimolecule``: other RNA language models (RNA-FM, RiNALMo, ...) through the
  ``multimolecule`` package and transformers' ``AutoModel`` with ``output_attentions``. That
  package is AGPL-licensed and never a dependency of resm: it is imported inside
  :meth:`MultiMoleculeBackend.load` only, and the backend is skipped when it is missing.
* ``viennarna``: RNAfold, the classical reference: no embeddings and no attention; it only
  folds (:meth:`ViennaBackend.fold`, MFE structure) and scores duplexes
  (:meth:`ViennaBackend.duplex_energy`, ``RNA.duplexfold``).
* ``onehot``: one-hot nucleotides (A, C, G, U; unknown bases all zero), 4 dimensions per
  residue, no weights and no attention: the no-pretraining floor every table needs.

A backend whose package or weights are not present raises :class:`BackendUnavailable` from
``load()`` with a one-line reason; the harness records the row as ``skipped: <reason>`` and
never substitutes another model. Everything else (a corrupt checkpoint, a scheme that does not
match the checkpoint) is an error.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..backbone.attention import LinearMap, PairCells, StackedMaps, run_attention, sym_apc
from ..config import PathText

__all__ = [
    "AttentionCallback",
    "BackendUnavailable",
    "BackendSpec",
    "Backend",
    "ResmBackend",
    "RnaFmBackend",
    "MultiMoleculeBackend",
    "ViennaBackend",
    "FolderBackend",
    "OneHotBackend",
    "KINDS",
    "make_backend",
]

AttentionCallback = Callable[[int, torch.Tensor], None]
"""``callback(layer, feats)``: feats is the (H, L, L) fp32 sym+APC map of one layer (0-based)."""


class BackendUnavailable(RuntimeError):
    """The backend's package or weights are not present: it is skipped, with this reason."""


# --------------------------------------------------------------------------- spec
_KIND_KEYS = {
    "resm": ({"checkpoint"}, {"scheme", "layer", "trust_checkpoint"}),
    "rnafm": ({"checkpoint"}, {"layer", "trust_checkpoint"}),
    "multimolecule": ({"model"}, {"layer"}),
    "viennarna": (set(), {"max_bp_span"}),
    "folder": ({"folder"}, set()),
    "onehot": (set(), set()),
}


@dataclass
class BackendSpec:
    """One backend of a compare config (a row of the result tables).

    Attributes:
        name: label in tables and plots; unique within a config.
        kind: ``resm``, ``rnafm``, ``multimolecule``, ``viennarna`` or ``onehot``.
        checkpoint: resm: fair-esm ``.pt``, Hugging Face folder, ESM-2 name, Hugging Face hub id
            in the local cache, ``default`` (the backbone of the shipped structure model), or
            ``random:ARCH`` (an untrained ESM-2 of architecture ARCH, seed 0, e.g. ``random:small``,
            the shipped backbone's; the no-pretraining control); rnafm: local RNA-FM ``.pth``
            (``~`` is expanded). A path that does not exist skips the backend.
        scheme: resm only: mapping scheme (default: the checkpoint's own, else kdny); must
            match the scheme the checkpoint was trained with.
        model: multimolecule only: hub id or local folder, e.g. ``multimolecule/rinalmo``.
        layer: representation layer for the supervised head: 0 = token embeddings, 1..N the
            blocks, negative counts from the end (-1, the default: the last layer, after the
            final LayerNorm where the model has one).
        trust_checkpoint: resm / rnafm: allow unpickling arbitrary objects (trusted files only).
        max_bp_span: viennarna only: RNAfold's maximum base-pair span (None: unlimited).
        folder: folder only: one of :data:`resm.structure.folders.FOLDERS` (``rnafold``,
            ``rnafold-mea``, ``eternafold``, ``linearpartition-v``, ``linearfold-v``): a
            classical structure row; no RRI or MRL model.
    """

    name: str
    kind: str
    checkpoint: PathText | None = None
    scheme: str | None = None
    model: PathText | None = None
    layer: int = -1
    trust_checkpoint: bool = False
    max_bp_span: int | None = None
    folder: str | None = None

    @classmethod
    def from_dict(cls, d: object, where: str = "backend") -> BackendSpec:
        """Validate one ``backends`` entry (the keys its kind takes, then
        :func:`resm.config.from_dict`); every problem is a one-line ConfigError naming the key."""
        from ..config import ConfigError, coerce, from_dict
        from ..fasta import id_problem

        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a mapping like {{name: ..., kind: ...}}, got {d!r}")
        for k in ("name", "kind"):
            if k not in d:
                raise ConfigError(f"{where}: missing key {k!r}")
        # name: false (or '') was "missing key 'name'"; typed as every config key (a number written out)
        name, kind = (coerce(str, d[k], f"{where}.{k}") for k in ("name", "kind"))
        for k, v in (("name", name), ("kind", kind)):
            if not v.strip():
                raise ConfigError(f"{where}.{k}: is empty ({v!r})")
        if (why := id_problem(name)) is not None:  # a tab or a line break would be written into every table
            raise ConfigError(f"{where}: name {name!r} {why}")
        where = f"{where} ({name})"
        if kind not in _KIND_KEYS:
            raise ConfigError(f"{where}: unknown kind {kind!r}; known: {', '.join(_KIND_KEYS)}")
        required, optional = _KIND_KEYS[kind]
        allowed = {"name", "kind"} | required | optional
        for k in d:
            if k not in allowed:
                raise ConfigError(f"{where}: unknown key {k!r} for kind {kind}; known: {', '.join(sorted(allowed))}")
        for k in sorted(required):
            if not d.get(k):
                raise ConfigError(f"{where}: kind {kind} needs key {k!r}")
        spec = from_dict(cls, d, where)
        if spec.folder is not None:
            from ..structure.folders import FOLDERS

            if spec.folder not in FOLDERS:
                raise ConfigError(f"{where}: unknown folder {spec.folder!r}; known: {', '.join(FOLDERS)}")
        if kind == "resm" and str(spec.checkpoint).startswith("random:"):
            from ..backbone.config import ARCHS

            if spec.checkpoint[len("random:") :] not in ARCHS:
                raise ConfigError(
                    f"{where}: checkpoint {spec.checkpoint!r}: unknown architecture; known: {', '.join(ARCHS)}"
                )
        if spec.max_bp_span is not None and spec.max_bp_span < 4:
            raise ConfigError(f"{where}: max_bp_span must be an integer >= 4, got {spec.max_bp_span!r}")
        return spec


def _path(p: str) -> Path:
    return Path(os.path.expanduser(str(p)))


def _resolve_layer(layer: int, num_layers: int, where: str) -> int:
    n = layer if layer >= 0 else num_layers + 1 + layer
    if not 0 <= n <= num_layers:
        raise ValueError(f"{where}: layer {layer} is out of range for a {num_layers}-layer model")
    return n


# --------------------------------------------------------------------------- base class
class Backend:
    """A frozen backbone: per-residue embeddings and (optionally) attention features.

    Subclasses set ``num_layers``, ``num_heads``, ``embed_dim``, ``num_params`` and
    ``max_length`` (longest sequence the model accepts; None: no limit) in :meth:`load`, and
    implement :meth:`run`.
    """

    kind = ""
    has_embeddings = True
    has_attention = True

    def __init__(self, spec: BackendSpec, device: str | torch.device = "cpu"):
        self.spec = spec
        self.name = spec.name
        self.device = torch.device(device)
        self.num_layers = 0
        self.num_heads = 0
        self.embed_dim = 0
        self.num_params = 0
        self.max_length: int | None = None

    def load(self) -> Backend:
        """Load the weights; raise :class:`BackendUnavailable` when they are not present."""
        raise NotImplementedError

    def run(self, seq: str, attention_callback: AttentionCallback | None = None) -> torch.Tensor:
        """One forward pass (no gradients): the (L, E) float32 CPU embeddings of ``seq``; with a
        callback, each layer's (H, L, L) sym+APC attention features are passed to it."""
        raise NotImplementedError

    def embed(self, seq: str) -> torch.Tensor:
        """(L, E) float32 per-residue embeddings (no BOS/EOS rows)."""
        return self.run(seq)

    def _attention(self, seq: str, consume) -> None:
        if not self.has_attention:
            raise ValueError(f"{self.name}: this backend has no attention maps")
        self.run(seq, consume)

    def attention_maps(self, seq: str) -> torch.Tensor:
        """(layers * heads, L, L) float32 sym+APC attention maps, channel ``layer * H + head``
        (:class:`resm.backbone.attention.StackedMaps`)."""
        stack = StackedMaps(cpu=True)
        self._attention(seq, stack)
        return stack.result()

    def pair_features(self, seq: str, index: np.ndarray) -> np.ndarray:
        """float32 (n, layers * heads) attention features at the (i, j) rows of ``index``
        (:class:`resm.backbone.attention.PairCells`): the zero-shot probe's examples."""
        cells = PairCells(index[:, 0], index[:, 1], self.num_layers, self.num_heads, self.device, self.name)
        self._attention(seq, cells)
        return cells.out

    def weighted_attention(self, seq: str, weight: np.ndarray) -> torch.Tensor:
        """(L, L) sum over channels of ``weight[c]`` times map c (:class:`resm.backbone.attention.LinearMap`):
        a probe's logits before its bias, accumulated one layer at a time."""
        acc = LinearMap(weight, self.num_heads, self.device)
        self._attention(seq, acc)
        return acc.result()

    def close(self) -> None:
        """Drop the weights (the harness loads one backend at a time)."""
        for attr in ("model", "tokenizer"):
            if hasattr(self, attr):
                setattr(self, attr, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def describe(self) -> dict[str, object]:
        return {
            "layers": self.num_layers,
            "heads": self.num_heads,
            "embed_dim": self.embed_dim,
            "params_m": self.num_params / 1e6,
        }


# --------------------------------------------------------------------------- resm (ESM-2)
class ResmBackend(Backend):
    """An ESM-2 checkpoint under a nucleotide -> protein-letter scheme (or ``nt``)."""

    kind = "resm"

    def load(self) -> ResmBackend:
        from ..backbone.config import ARCHS
        from ..backbone.load import HUB_ID, CheckpointError
        from ..structure.model import DEFAULT_MODEL, load_with_scheme

        spec = self.spec
        p = _path(spec.checkpoint)
        if str(spec.checkpoint).startswith("random:") and not p.exists():
            from ..backbone.load import Loaded, init_model
            from ..mapping import DEFAULT_SCHEME, get_scheme

            loaded, self.scheme = (
                Loaded(init_model(spec.checkpoint[len("random:") :], seed=0)),
                get_scheme(spec.scheme or DEFAULT_SCHEME),
            )
        elif p.exists() or str(spec.checkpoint) == DEFAULT_MODEL:  # a file or folder, or the shipped model's backbone
            loaded, self.scheme = load_with_scheme(
                p if p.exists() else DEFAULT_MODEL, spec.scheme, None, spec.trust_checkpoint
            )
        elif (str(spec.checkpoint) in ARCHS and str(spec.checkpoint).startswith("esm2_")) or HUB_ID.match(
            str(spec.checkpoint)
        ):
            try:
                loaded, self.scheme = load_with_scheme(str(spec.checkpoint), spec.scheme, None, spec.trust_checkpoint)
            except CheckpointError as e:
                raise BackendUnavailable(f"ESM-2 weights {spec.checkpoint} not available ({e})") from None
        else:
            raise BackendUnavailable(f"checkpoint {p} not found")
        self.model = loaded.model.to(self.device).eval()
        self.num_layers = self.model.num_layers
        self.num_heads = self.model.attention_heads
        self.embed_dim = self.model.embed_dim
        self.num_params = sum(q.numel() for q in self.model.parameters())
        self.layer = _resolve_layer(spec.layer, self.num_layers, self.name)
        return self

    def run(self, seq: str, attention_callback: AttentionCallback | None = None) -> torch.Tensor:
        from ..alphabet import pad_batch

        tokens = pad_batch([self.scheme.encode(seq, self.name)]).to(self.device)
        with torch.no_grad():
            if attention_callback is None:
                out = self.model(tokens, repr_layers=[self.layer], return_logits=False)
            else:
                out = run_attention(
                    self.model, tokens, lambda layer, maps: attention_callback(layer, maps[0]), repr_layers=[self.layer]
                )
        return out["representations"][self.layer][0, 1:-1].float().cpu()


# --------------------------------------------------------------------------- RNA-FM (fm package)
class RnaFmBackend(Backend):
    """RNA-FM (``fm`` package) from a local checkpoint; nucleotide alphabet, T read as U."""

    kind = "rnafm"

    def load(self) -> RnaFmBackend:
        from ..backbone.load import CheckpointError, safe_load

        try:
            import fm
        except ImportError:
            raise BackendUnavailable("the rna-fm package is not installed (pip install 'resm[compare]')") from None
        p = _path(self.spec.checkpoint)
        if not p.is_file():
            raise BackendUnavailable(f"RNA-FM checkpoint {p} not found")
        data = safe_load(p, self.spec.trust_checkpoint)
        if not isinstance(data, dict) or "args" not in data or "model" not in data:
            raise CheckpointError(f"{p}: not an RNA-FM checkpoint (expected a dict with 'args' and 'model')")
        try:
            with warnings.catch_warnings():  # "Regression weights not found": RNA-FM ships none
                warnings.simplefilter("ignore")
                model, alphabet = fm.pretrained.load_model_and_alphabet_core("rna-fm", data, None, theme="rna")
        except (RuntimeError, ValueError, KeyError, AttributeError, TypeError) as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise CheckpointError(f"{p}: not a loadable RNA-FM checkpoint ({first})") from None
        self.model = model.to(self.device).eval()
        self.alphabet = alphabet
        self.converter = alphabet.get_batch_converter()
        self.start = int(alphabet.prepend_bos)
        self.num_layers = int(model.num_layers)
        self.num_heads = int(model.args.attention_heads)
        self.embed_dim = int(model.args.embed_dim)
        self.num_params = sum(q.numel() for q in model.parameters())
        self.max_length = int(model.args.max_positions) - self.start - int(alphabet.append_eos)
        self.layer = _resolve_layer(self.spec.layer, self.num_layers, self.name)
        return self

    def tokens(self, seq: str) -> torch.Tensor:
        """(1, T) token ids of the normalised sequence (T -> U, IUPAC -> N), with BOS/EOS."""
        from ..nucleotides import normalise

        s = normalise(seq, self.name)
        if len(s) > self.max_length:
            raise ValueError(f"{self.name}: {len(s)} nt is longer than the model's {self.max_length}")
        _, _, tokens = self.converter([("seq", s)])
        return tokens

    def run(self, seq: str, attention_callback: AttentionCallback | None = None) -> torch.Tensor:
        tokens = self.tokens(seq).to(self.device)
        a, L = self.start, len(seq)
        with torch.no_grad():
            out = self.model(tokens, repr_layers=[self.layer], need_head_weights=attention_callback is not None)
            if attention_callback is not None:
                att = out["attentions"][0]  # (layers, H, T, T)
                for layer in range(att.shape[0]):
                    attention_callback(layer, sym_apc(att[layer, :, a : a + L, a : a + L]))
        return out["representations"][self.layer][0, a : a + L].float().cpu()


# --------------------------------------------------------------------------- multimolecule
class MultiMoleculeBackend(Backend):
    """An RNA language model from the (optional, AGPL) ``multimolecule`` package."""

    kind = "multimolecule"

    def load(self) -> MultiMoleculeBackend:
        try:
            import multimolecule  # noqa: F401  (registers its models with transformers' Auto classes)
        except ImportError:
            raise BackendUnavailable(
                "the multimolecule package is not installed (optional, AGPL-licensed; pip install multimolecule)"
            ) from None
        from transformers import AutoModel, AutoTokenizer

        name = self.spec.model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name)
            try:
                model = AutoModel.from_pretrained(name, attn_implementation="eager")
            except (TypeError, ValueError):
                model = AutoModel.from_pretrained(name)
        except OSError as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise BackendUnavailable(f"weights of {name} not available ({first})") from None
        self.model = model.to(self.device).eval()
        cfg = model.config
        self.num_layers = int(cfg.num_hidden_layers)
        self.num_heads = int(cfg.num_attention_heads)
        self.embed_dim = int(cfg.hidden_size)
        self.num_params = sum(q.numel() for q in model.parameters())
        self.layer = _resolve_layer(self.spec.layer, self.num_layers, self.name)
        return self

    def run(self, seq: str, attention_callback: AttentionCallback | None = None) -> torch.Tensor:
        from ..nucleotides import normalise

        s = normalise(seq, self.name)
        enc = self.tokenizer(s, return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask")[0].bool()
        pos = torch.nonzero(~special)[:, 0]
        if len(pos) != len(s) or (len(pos) and int(pos[-1] - pos[0]) + 1 != len(pos)):
            raise ValueError(f"{self.name}: the tokenizer does not give one token per nucleotide")
        a, b = int(pos[0]), int(pos[-1]) + 1
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.no_grad():
            out = self.model(**enc, output_attentions=attention_callback is not None, output_hidden_states=True)
        if attention_callback is not None:
            for layer, att in enumerate(out.attentions):
                attention_callback(layer, sym_apc(att[0, :, a:b, a:b]))
        h = out.last_hidden_state if self.layer == self.num_layers else out.hidden_states[self.layer]
        return h[0, a:b].float().cpu()


# --------------------------------------------------------------------------- ViennaRNA
class ViennaBackend(Backend):
    """RNAfold (MFE): the classical reference row; no embeddings, no attention."""

    kind = "viennarna"
    has_embeddings = False
    has_attention = False

    def load(self) -> ViennaBackend:
        try:
            from ..structure import folders  # noqa: F401  (imports RNA)
        except ImportError:
            raise BackendUnavailable("ViennaRNA's Python module RNA is not installed (pip install viennarna)") from None
        return self

    def fold(self, seq: str) -> np.ndarray:
        """MFE partner array of ``seq``."""
        from ..structure.folders import rnafold

        return rnafold(seq, self.spec.max_bp_span)[0]

    def duplex_energy(self, a: str, b: str) -> float:
        """Free energy (kcal/mol) of the best intermolecular duplex of ``a`` and ``b``."""
        from ..structure.folders import rnafold_duplex_energy

        return rnafold_duplex_energy(a, b)

    def run(self, seq: str, attention_callback: AttentionCallback | None = None) -> torch.Tensor:
        raise ValueError(f"{self.name}: ViennaRNA has no embeddings")


class FolderBackend(ViennaBackend):
    """Any classical folder of :data:`resm.structure.folders.FOLDERS` (RNAfold MEA,
    LinearPartition with EternaFold or ViennaRNA parameters, LinearFold): a structure row
    scored like RNAfold's; no duplex score, so no RRI row, and no MRL model."""

    kind = "folder"

    def load(self) -> FolderBackend:
        from ..structure.folders import FOLDERS, FolderUnavailable

        f = FOLDERS[self.spec.folder]
        try:
            f.check()
        except FolderUnavailable as e:
            raise BackendUnavailable(str(e)) from None
        self._fold = f.fold
        self.about = f.about
        return self

    def fold(self, seq: str) -> np.ndarray:
        return self._fold(seq)

    def duplex_energy(self, a: str, b: str) -> float:
        raise ValueError(f"{self.name}: {self.spec.folder} scores no duplexes")


# --------------------------------------------------------------------------- one-hot
class OneHotBackend(Backend):
    """One-hot nucleotides, (L, 4) in the order A C G U (T read as U, unknown bases all
    zero): no weights, no attention maps. The floor a pretrained backbone has to beat."""

    kind = "onehot"
    has_attention = False

    def load(self) -> OneHotBackend:
        self.embed_dim = 4
        return self

    def run(self, seq: str, attention_callback: AttentionCallback | None = None) -> torch.Tensor:
        from ..nucleotides import rna_codes

        if attention_callback is not None:
            raise ValueError(f"{self.name}: one-hot embeddings have no attention maps")
        codes = torch.from_numpy(rna_codes(seq, self.name).astype(np.int64))
        return torch.nn.functional.one_hot(codes, 5)[:, :4].float()


KINDS = {
    "resm": ResmBackend,
    "rnafm": RnaFmBackend,
    "multimolecule": MultiMoleculeBackend,
    "viennarna": ViennaBackend,
    "folder": FolderBackend,
    "onehot": OneHotBackend,
}


def make_backend(spec: BackendSpec, device: str | torch.device = "cpu") -> Backend:
    """The (not yet loaded) backend of ``spec``."""
    return KINDS[spec.kind](spec, device)
