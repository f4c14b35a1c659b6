"""Loading and saving ESM-2 weights: fair-esm ``.pt`` files, fair-esm model names, Hugging Face
``EsmForMaskedLM`` folders and hub ids found in the local Hugging Face cache. (The backbone of
a structure model, and ``default``, the shipped one's, are read by
:func:`resm.structure.model.load_backbone`, which builds on this module.)

Checkpoints are unpickled with ``weights_only=True``. fair-esm's released ESM-2 files keep their
config as an ``argparse.Namespace``, which is the one global allow-listed here; anything else
is refused with a message naming it, unless the caller passes ``trust=True`` explicitly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..mapping import Scheme
from ..utils.io import atomic_dir, atomic_path, torch_save
from ..utils.jsontext import load_json
from ..utils.paths import broken_link, file_problem, no_such
from .config import ARCHS, ESM2Config, positive_int
from .convert import (
    add_fair_prefixes,
    config_from_hf,
    fair_to_hf,
    hf_config,
    hf_keys,
    hf_to_fair,
    hf_tokenizer_files,
    normalise_hf_names,
    strip_fair_prefixes,
)
from .esm2 import ESM2

FAIR_ESM_URL = "https://dl.fbaipublicfiles.com/fair-esm"
SAFE_GLOBALS = [argparse.Namespace]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class CheckpointError(RuntimeError):
    """An unreadable, unsafe or mismatched checkpoint."""


@dataclass
class Loaded:
    model: ESM2
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def cfg(self) -> ESM2Config:
        return self.model.cfg


def _first_sentence(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0] or type(e).__name__
    return text.split(". ")[0].rstrip(".")[:200]


def load_failure(path: Path, e: BaseException) -> str:
    """Why a file did not load, in words: from its first bytes where torch's words say little."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return _first_sentence(e)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK"):  # a torch zip file: torch's first sentence is meaningful
        return _first_sentence(e)
    if head[:1] == b"\x80":
        return f"damaged or truncated pickle: {_first_sentence(e)}"
    return "it is not a torch file (no zip or pickle header)"


TRUST_HINT = (
    "if you trust this file, pass --trust-checkpoint (in a config: trust_checkpoint: true; "
    "in the Python API: trust=True)"
)


def warn_unpickling(path, named: str) -> None:
    """The stderr line said whenever a file is unpickled in full because it is trusted."""
    print(
        f"resm: warning: {path}: unpickled in full because it is trusted (--trust-checkpoint, a config's "
        f"trust_checkpoint, the Python API's trust=True); "
        f"it names {named}, and unpickling runs whatever code the file holds",
        file=sys.stderr,
        flush=True,
    )


def safe_load(
    path: str | os.PathLike,
    trust: bool = False,
    allow: Sequence[object] = (),
    map_location="cpu",
    hint: str = TRUST_HINT,
) -> object:
    """``torch.load`` with ``weights_only=True``: only tensors, plain containers and the
    globals allow-listed here (``argparse.Namespace``, plus ``allow``) are rebuilt, so loading
    runs no code from the file. A file that names anything else is a :class:`CheckpointError`
    naming the global (and ``hint``, how to trust it), unless ``trust`` (then it is unpickled in
    full); any file that is not a
    readable checkpoint (text, truncated, a folder) is a one-line :class:`CheckpointError`
    naming it."""
    path = Path(path)
    if (problem := file_problem(path)) is not None:  # a folder; a named pipe: torch.load waited for ever
        raise CheckpointError(f"{path}: {problem}, not a checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols are not the user's concern
            with torch.serialization.safe_globals([*SAFE_GLOBALS, *allow]):
                return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        named = re.search(r"GLOBAL ([\w.]+\w)", str(e))
        if named is None:
            raise CheckpointError(f"{path}: not a readable torch checkpoint (corrupt or not a .pt file)") from None
        if trust:
            warn_unpickling(path, named.group(1))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.load(path, map_location=map_location, weights_only=False)
        raise CheckpointError(
            f"{path}: refusing to unpickle it: it names {named.group(1)}, which is not allowed in a "
            f"checkpoint (loading it could run code)" + (f"; {hint}" if hint else "")
        ) from None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {no_such(path, 'file')}") from None
    except PermissionError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    except Exception as e:  # torch raises many kinds of error for a file that is no checkpoint
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({load_failure(path, e)})") from None


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Building something from a loaded file: a missing entry or a value of the wrong type or
    shape is a one-line :class:`CheckpointError` naming the file, not a ``KeyError``."""
    try:
        yield
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        detail = f"no entry {e.args[0]!r}" if isinstance(e, KeyError) else _first_sentence(e)
        raise CheckpointError(f"{path}: not a usable {what} ({detail})") from None


def _cfg_get(cfg, name, default=None):
    if isinstance(cfg, dict):
        return cfg.get(name, default)
    return getattr(cfg, name, default)


def _config_from_fair(data: dict, where: str) -> ESM2Config:
    try:
        cfg = data["cfg"]["model"]
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{where}: not an ESM-2 checkpoint (no cfg.model; {e})") from None
    try:
        return ESM2Config(
            num_layers=positive_int(_cfg_get(cfg, "encoder_layers"), "encoder_layers"),
            embed_dim=positive_int(_cfg_get(cfg, "encoder_embed_dim"), "encoder_embed_dim"),
            attention_heads=positive_int(_cfg_get(cfg, "encoder_attention_heads"), "encoder_attention_heads"),
            token_dropout=bool(_cfg_get(cfg, "token_dropout", True)),
        )
    except ValueError as e:  # a wrong type or range would crash building the model
        raise CheckpointError(f"{where}: not an ESM-2 checkpoint (cfg.model: {e})") from None


def _resm_meta(meta, where: str) -> dict:
    """A checkpoint's ``resm`` entry (or a Hugging Face folder's resm.json): a mapping, whose
    ``scheme``, when given, names a mapping scheme; a CheckpointError naming ``where`` else."""
    from ..mapping import list_schemes

    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: its resm metadata is {type(meta).__name__}, not a mapping")
    scheme = meta.get("scheme")
    if scheme is not None and scheme not in list_schemes():
        raise CheckpointError(
            f"{where}: records the unknown mapping scheme {scheme!r}; known: {', '.join(list_schemes())}"
        )
    return dict(meta)


def non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The first floating-point tensor of ``state`` holding a NaN or an infinity, or None:
    weights like that give NaN outputs, a wrong result that must not look like one."""
    for k, v in state.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            return k
    return None


_FAIR_LAYER = re.compile(r"^layers\.(\d+)\.")
_HF_LAYER = re.compile(r"^esm\.encoder\.layer\.(\d+)\.")


def check_architecture(cfg: ESM2Config, state: dict, where: str, hf: bool = False) -> None:
    """Before the model is built: the architecture a file records agrees with the weights it
    holds (their layers, and the token embedding's shape), so that a config saying 10**12 layers
    or an embedding 10**9 wide is one line naming the file, not a model built until memory runs
    out. ``hf``: the weights are named as a Hugging Face ``EsmForMaskedLM``'s."""
    pattern, embed = (
        (_HF_LAYER, "esm.embeddings.word_embeddings.weight") if hf else (_FAIR_LAYER, "embed_tokens.weight")
    )
    layers = {int(m.group(1)) for k in state if (m := pattern.match(str(k)))}
    if len(layers) != cfg.num_layers:
        raise CheckpointError(
            f"{where}: its config says num_layers {cfg.num_layers}, its weights hold {len(layers)} layers"
        )
    shape = tuple(getattr(state.get(embed), "shape", ()))
    if shape and shape != (cfg.vocab_size, cfg.embed_dim):
        raise CheckpointError(
            f"{where}: its config says vocab_size {cfg.vocab_size} and embed_dim {cfg.embed_dim}, "
            f"its {embed} has shape {shape}"
        )


def load_state(model: ESM2, state: dict[str, torch.Tensor], where: str) -> bool:
    """Load weights strictly except for rotary buffers (recomputed) and the contact regression
    (optional); weights that are not finite are refused. Returns whether the contact regression
    was present."""
    expected = set(model.state_dict())
    got = set(state)
    unexpected = sorted(got - expected)
    if unexpected:
        raise CheckpointError(f"{where}: unexpected weights {unexpected[:5]} (not an ESM-2 model?)")
    optional = {k for k in expected if k.endswith("rot_emb.inv_freq") or k.startswith("contact_head.")}
    missing = sorted((expected - got) - optional)
    if missing:
        raise CheckpointError(f"{where}: missing weights {missing[:5]}")
    own = model.state_dict()
    for k, v in state.items():
        want = own[k].shape
        if tuple(v.shape) != tuple(want):
            raise CheckpointError(f"{where}: {k} has shape {tuple(v.shape)}, expected {tuple(want)}")
        # integers or booleans copied into a floating-point weight are their numbers, not the
        # bytes' floats: a safetensors header saying I32 for an F32 weight loaded garbage
        if own[k].is_floating_point() and not v.is_floating_point():
            raise CheckpointError(
                f"{where}: {k} holds {str(v.dtype).removeprefix('torch.')} values, not floating-point weights"
            )
    if (bad := non_finite(state)) is not None:
        raise CheckpointError(f"{where}: weight {bad} holds NaN or infinite values")
    model.load_state_dict(state, strict=False)
    return "contact_head.regression.weight" in got


def regression_path(path: Path) -> Path:
    return path.with_name(path.stem + "-contact-regression.pt")


def files_beside(model: str | os.PathLike) -> list[Path]:
    """The files reading the checkpoint ``model`` opens besides it: a fair-esm ``.pt``'s
    contact regression (``<stem>-contact-regression.pt``) when one is there."""
    p = Path(model)
    reg = regression_path(p)
    return [reg] if p.suffix == ".pt" and p.is_file() and reg.is_file() else []


def load_fair_esm(
    path: str | os.PathLike, regression: str | os.PathLike | None = None, trust: bool = False, data=None
) -> Loaded:
    """A fair-esm ESM-2 ``.pt`` under any file name (``data``: its content, when already read).
    The contact regression is taken from ``regression`` or, like fair-esm, from
    ``<stem>-contact-regression.pt`` beside it."""
    path = Path(path)
    data = safe_load(path, trust) if data is None else data
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise CheckpointError(f"{path}: not a fair-esm checkpoint (no 'model' entry)")
    cfg = _config_from_fair(data, str(path))
    state = strip_fair_prefixes(dict(data["model"]))
    reg_path = Path(regression) if regression else regression_path(path)
    if regression or reg_path.exists():
        reg = safe_load(reg_path, trust)
        if not isinstance(reg, dict) or "model" not in reg:
            raise CheckpointError(f"{reg_path}: not a contact-regression file")
        state.update(strip_fair_prefixes(dict(reg["model"])))
    check_architecture(cfg, state, str(path))
    model = ESM2(cfg)
    has_reg = load_state(model, state, str(path))
    meta = _resm_meta(data.get("resm"), str(path))
    meta.update(source=str(path), format="fair-esm", contact_regression=has_reg)
    return Loaded(model.eval(), meta)


def load_hf(folder: str | os.PathLike, trust: bool = False) -> Loaded:
    """A Hugging Face ``EsmForMaskedLM`` folder (config.json + safetensors or bin)."""
    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not cfg_file.exists():
        raise CheckpointError(f"{folder}: no config.json (not a Hugging Face model folder)")
    try:
        hf_cfg = load_json(cfg_file.read_text(encoding="utf-8-sig"))
        cfg = config_from_hf(hf_cfg)
        if hf_cfg.get("intermediate_size", cfg.ffn_dim) != cfg.ffn_dim:
            raise ValueError("intermediate_size must be 4 x hidden_size for ESM-2")
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{cfg_file}: {e}") from None
    st, binf = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.exists():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if (problem := file_problem(st)) is not None:
            raise CheckpointError(f"{st}: {problem}, not a safetensors file")
        try:
            raw = load_file(str(st))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{st}: unreadable safetensors file ({e})") from None
    elif binf.exists():
        raw = safe_load(binf, trust)
    else:
        raise CheckpointError(f"{folder}: neither model.safetensors nor pytorch_model.bin")
    raw = normalise_hf_names(raw)
    check_architecture(cfg, raw, str(folder), hf=True)
    state = hf_to_fair(raw, cfg.num_layers)
    unknown = sorted(set(raw) - hf_keys(cfg.num_layers))
    if unknown:
        raise CheckpointError(f"{folder}: unexpected weights {unknown[:5]} (not EsmForMaskedLM?)")
    meta = {}
    resm_file = folder / "resm.json"
    if resm_file.exists():
        try:
            meta = _resm_meta(load_json(resm_file.read_text(encoding="utf-8-sig")), str(resm_file))
        except ValueError as e:  # not JSON, or not UTF-8
            raise CheckpointError(f"{resm_file}: not valid JSON ({e})") from None
    model = ESM2(cfg)
    has_reg = load_state(model, state, str(folder))
    meta.update(source=str(folder), format="huggingface", contact_regression=has_reg)
    return Loaded(model.eval(), meta)


def _hf_cache_root() -> Path:
    """The Hugging Face hub cache, as ``huggingface_hub`` finds it: ``$HF_HUB_CACHE`` or
    ``$HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hf_cached_folder(repo_id: str) -> Path:
    """The local snapshot of a Hugging Face hub model (``owner/name``), never downloading:
    through ``huggingface_hub`` (``local_files_only``) when it is installed, else read from
    the cache's own layout (``models--owner--name/refs/main`` -> ``snapshots/<revision>``)."""
    root = _hf_cache_root()
    missing = CheckpointError(
        f"{repo_id}: not in the local Hugging Face cache ({root}); fetch it first "
        f"(hf download {repo_id}) or give a local model folder"
    )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        snapshot_download = None
    if snapshot_download is not None:
        try:
            return Path(snapshot_download(repo_id, cache_dir=str(root), local_files_only=True))
        except Exception:  # LocalEntryNotFoundError and its kin: not cached
            raise missing from None
    folder = root / ("models--" + repo_id.replace("/", "--"))
    ref = folder / "refs" / "main"
    snap = folder / "snapshots" / (ref.read_text().strip() if ref.exists() else "")
    if ref.exists() and snap.is_dir():
        return snap
    raise missing


def _hub_file(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"


def esm2_name(spec: str) -> bool:
    """Whether ``spec`` is the name of a released ESM-2 (fair-esm's, ``esm2_t6_8M_UR50D``)."""
    return spec in ARCHS and spec.startswith("esm2_")


def names_backbone(spec: str | os.PathLike) -> bool:
    """Whether ``spec``, given where another kind of model goes, is an ESM-2 backbone that is no
    file: a Hugging Face model folder or, where no file of that name is there, an ESM-2 name
    (``esm2_t6_8M_UR50D``) or a Hugging Face id of one (``facebook/esm2_t6_8M_UR50D``)."""
    p, s = Path(spec), str(spec)
    if p.exists() or os.path.islink(p):
        return is_hf_folder(p)
    return esm2_name(s) or (HUB_ID.match(s) is not None and esm2_name(s.split("/")[1]))


def model_location(spec: str | os.PathLike) -> Path:
    """The file or folder :func:`load_backbone` reads ``spec`` from: the path itself, an ESM-2
    name's file in torch's hub cache, a hub id's cached snapshot (never downloading); else
    ``spec`` as a path (which is not there)."""
    p = Path(spec)
    if p.exists():
        return p
    if esm2_name(str(spec)):
        return _hub_file(str(spec))
    return hf_cached_folder(str(spec)) if HUB_ID.match(str(spec)) else p


def load_pretrained(name: str, trust: bool = False) -> Loaded:
    """A released ESM-2 by fair-esm name; downloaded once into torch's hub cache (the same
    place fair-esm uses), then loaded safely."""
    model_file = _hub_file(name)
    reg_file = model_file.with_name(f"{name}-contact-regression.pt")
    for url, dest in (
        (f"{FAIR_ESM_URL}/models/{name}.pt", model_file),
        (f"{FAIR_ESM_URL}/regression/{name}-contact-regression.pt", reg_file),
    ):
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                torch.hub.download_url_to_file(url, str(dest), progress=True)
            except Exception as e:  # network errors come in many types
                raise CheckpointError(
                    f"cannot download {name} ({type(e).__name__}: {e}); give a local checkpoint path instead"
                ) from None
    return load_fair_esm(model_file, reg_file, trust)


def load_backbone(
    spec: str | os.PathLike,
    scheme: Scheme | None = None,
    regression: str | os.PathLike | None = None,
    trust: bool = False,
) -> Loaded:
    """Load ESM-2 weights from a fair-esm ``.pt`` path, a Hugging Face folder or a fair-esm
    model name, and check that ``scheme`` is the one the checkpoint was trained with."""
    p = Path(spec)
    if p.is_dir():
        loaded = load_hf(p, trust)
    elif p.is_file():
        loaded = load_fair_esm(p, regression, trust)
    elif esm2_name(str(spec)):
        loaded = load_pretrained(str(spec), trust)
    elif HUB_ID.match(str(spec)):
        loaded = load_hf(hf_cached_folder(str(spec)), trust)
        loaded.meta["source"] = str(spec)
    elif (why := broken_link(p)) is not None:
        raise CheckpointError(f"{spec}: {why}")
    else:
        raise CheckpointError(
            f"{spec}: no such checkpoint file, model folder, ESM-2 model name or cached Hugging Face id"
        )
    if scheme is not None:
        scheme.check(loaded.meta, where=str(spec))
    return loaded


def load_with_scheme(
    spec: str | os.PathLike,
    scheme_name: str | None = None,
    regression: str | os.PathLike | None = None,
    trust: bool = False,
) -> tuple[Loaded, Scheme]:
    """:func:`load_backbone`, with the scheme chosen: the one named, else the checkpoint's own,
    else the default; it must be the scheme the checkpoint was trained with."""
    loaded = load_backbone(spec, None, regression, trust)
    return loaded, choose_scheme(loaded, scheme_name, spec)


def choose_scheme(loaded: Loaded, scheme_name: str | None, spec) -> Scheme:
    """The scheme named, else the checkpoint's own, else the default; it must be the scheme the
    checkpoint was trained with."""
    from ..mapping import DEFAULT_SCHEME, get_scheme

    scheme = get_scheme(scheme_name or loaded.meta.get("scheme") or DEFAULT_SCHEME)
    scheme.check(loaded.meta, where=str(spec))
    return scheme


# ---------------------------------------------------------------------------------------
def _fair_namespace(cfg: ESM2Config, arch: str) -> argparse.Namespace:
    return argparse.Namespace(
        _name="ESM2",
        arch=arch,
        encoder_layers=cfg.num_layers,
        encoder_embed_dim=cfg.embed_dim,
        encoder_ffn_embed_dim=cfg.ffn_dim,
        encoder_attention_heads=cfg.attention_heads,
        token_dropout=cfg.token_dropout,
        max_positions=1024,
    )


def resm_meta(scheme: Scheme | None, arch: str | None = None, **extra) -> dict:
    from .._version import __version__

    meta = {"resm_version": __version__}
    if arch:
        meta["arch"] = arch
    if scheme is not None:
        meta.update(scheme.metadata())
    meta.update(extra)
    return meta


def fair_esm_name_problem(path: str | os.PathLike) -> str | None:
    """Why fair-esm's ``load_model_and_alphabet_local`` would not read ``path`` as ESM-2 (it
    takes the ESM-2 path only for a file name starting with ``esm2``), or None."""
    path = Path(path)
    if path.stem.startswith("esm2"):
        return None
    return (
        f"{path}: fair-esm reads a file as ESM-2 only when its name starts with 'esm2' "
        f"(name it {path.with_name('esm2_' + path.name).name}, or give --any-name: resm itself reads any name)"
    )


def save_fair_esm(
    model: ESM2,
    path: str | os.PathLike,
    meta: dict | None = None,
    regression: bool = True,
    dtype: torch.dtype | None = None,
    companion: bool = False,
) -> None:
    """Write ``model`` as a fair-esm ESM-2 ``.pt`` (loadable by ``esm.pretrained``) atomically.
    resm's own metadata (mapping scheme, hash) rides along under the key ``resm``. ``dtype``
    (e.g. ``torch.float16``: half the file) casts the weights; the rotary frequencies stay fp32,
    and loaders read the file back into fp32 parameters. With ``companion``, the contact
    regression is also written beside it as ``<stem>-contact-regression.pt``, where fair-esm's
    ``load_model_and_alphabet_local`` requires it (the main file keeps its own copy, so resm
    needs only that one)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v if k.endswith("inv_freq") or not v.is_floating_point() else v.to(dtype) for k, v in state.items()}
    if not regression:
        state = {k: v for k, v in state.items() if not k.startswith("contact_head.")}
    arch = (meta or {}).get("arch", "esm2")
    data = {
        "model": add_fair_prefixes(state),
        "cfg": {"model": _fair_namespace(model.cfg, str(arch))},
        "resm": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch_save(data, tmp)
    if companion:
        reg = {k: v for k, v in state.items() if k.startswith("contact_head.")}
        with atomic_path(regression_path(Path(path))) as tmp:
            torch_save({"model": reg}, tmp)


def _replacements(meta: dict | None) -> dict[str, str]:
    """The RNA -> protein letters the folder's tokenizer applies (its scheme's, when single-letter)."""
    from ..mapping import MappingError, get_scheme

    name = (meta or {}).get("scheme")
    try:
        return get_scheme(name).rna_replacements() if name else {}
    except MappingError:
        return {}


def is_hf_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a Hugging Face model (its config.json): an existing folder is
    replaced by :func:`save_hf` only then."""
    return (Path(folder) / "config.json").is_file()


def save_hf(model: ESM2, folder: str | os.PathLike, meta: dict | None = None) -> None:
    """Write ``model`` as a Hugging Face ``EsmForMaskedLM`` folder (config.json +
    model.safetensors and the tokenizer files, :func:`hf_tokenizer_files`), plus resm.json with
    the mapping metadata; atomically."""
    from safetensors.torch import save_file

    state = fair_to_hf(model.state_dict(), model.cfg.num_layers)
    state.pop("lm_head.decoder.weight")  # tied to the word embeddings, as HF saves it
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    with atomic_dir(folder, replaces=is_hf_folder) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config(model.cfg), indent=2) + "\n")
        (tmp / "resm.json").write_text(json.dumps(dict(meta or {}), indent=2) + "\n")
        for name, text in hf_tokenizer_files(_replacements(meta)).items():
            (tmp / name).write_text(text)


def init_model(arch: str | ESM2Config, seed: int = 0) -> ESM2:
    """A randomly initialised ESM-2 (BERT-style N(0, 0.02) init, zero biases, unit norms)."""
    cfg = ARCHS[arch] if isinstance(arch, str) else arch
    gen = torch.Generator().manual_seed(seed)
    model = ESM2(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            elif "layer_norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        model.embed_tokens.weight[model.embed_tokens.padding_idx].zero_()
    return model.eval()
