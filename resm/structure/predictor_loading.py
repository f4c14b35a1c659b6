"""Building a predictor (:mod:`resm.structure.predictor`) from files and options: a
``structure_model.pt`` (:func:`supervised_predictor`, :func:`model_predictor`), the structure
head of a trained bundle (:func:`bundle_predictor`) or a backbone with a zero-shot probe
(:func:`zero_shot_predictor`), each decoding as its file says, or with the stored decoding's
fields replaced (:func:`override_decoding`, checked by :func:`check_decoding_overrides`).

:func:`load_predictor` builds one from a :class:`PredictorOptions`, the one place where the name
``default`` (the shipped model, :func:`resm.structure.model.resolve_model`), the probe and the
prior cache are resolved; ``resm fold`` (:class:`resm.structure.pipeline.FoldOptions` extends
the options) and :func:`resm.load_predictor` both go through it, handing in how a bundle is
opened (:data:`BundleOpener`, :func:`resm.tasks.base.open_bundle`: the tasks stand above this
package).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import flag
from ..mapping import Scheme, get_scheme
from ..utils.paths import no_such
from .io import FoldError, FoldUsageError
from .predictor import PREDICTORS, MapPredictor, Namer, PairPredictor, PathLike, Predictor
from .probe import ProbeFile

__all__ = [
    "BundleOpener",
    "PredictorOptions",
    "fold_flag",
    "load_predictor",
    "check_decoding_overrides",
    "override_decoding",
    "zero_shot_predictor",
    "supervised_predictor",
    "model_predictor",
    "bundle_predictor",
]

# opens a bundle folder: ``(model, head entries, scheme)``, as :func:`resm.tasks.base.open_bundle`
# does; the library cannot import the tasks above it, so the commands and the API hand it in
BundleOpener = Callable[[PathLike], tuple]


def fold_flag(key: str) -> str:
    """How ``resm fold`` names option ``key`` in its errors: :func:`resm.config.flag`, but the
    probe file (``zero_shot``, the Python API's keyword) is ``--probe``, as in ``resm interact``
    (``--zero-shot PROBE.pt`` is its deprecated spelling)."""
    return "--probe" if key == "zero_shot" else flag(key)


@dataclass(frozen=True, kw_only=True)
class PredictorOptions:
    """What :func:`load_predictor` needs: ``model`` (a ``structure_model.pt``; None or
    ``"default"``: the shipped one; with ``zero_shot``, a probe from ``resm probe``: the
    backbone the probe was fitted on), ``scheme`` (zero-shot only; default: the probe's),
    ``trust`` (unpickle a backbone's arbitrary objects), ``device``, ``threads`` (processes
    computing a pair-head model's priors; 0: one per core), ``bpp_cache`` (a folder of
    stored priors, read and filled) and ``turner_scale`` (a pair-head model only: its stored
    decoding with the Turner-corrected step at this scale, :class:`resm.structure.decode.Decoding`;
    None: the decoding as stored)."""

    model: PathLike | None = None
    zero_shot: PathLike | None = None
    scheme: str | None = None
    trust: bool = False
    device: str = "cpu"
    threads: int = 0
    bpp_cache: PathLike | None = None
    turner_scale: float | None = None

    def decoding_overrides(self) -> dict[str, object]:
        """The fields of the model's stored decoding these options replace (:func:`override_decoding`).
        ``turner_penalty`` has no option: S=0.3 was chosen with the default 5 kcal/mol, and a
        model file may store another, which ``turner_scale`` keeps."""
        return {"turner_scale": self.turner_scale}

    def check(self, name: Namer = fold_flag) -> None:
        """The options' own consistency, before anything is read: a one-line FoldError naming
        each option as ``name`` does (the command line's flag; the API's keyword)."""
        from ..utils.device import THREADS_RULE, threads_ok

        if not threads_ok(self.threads):
            raise FoldError(f"threads {THREADS_RULE}, got {self.threads!r}")
        cache, zero_shot, turner = name("bpp_cache"), name("zero_shot"), name("turner_scale")
        if self.bpp_cache is not None:
            if self.zero_shot is not None:
                raise FoldUsageError(
                    f"{cache} stores a structure model's pair priors; a zero-shot probe ({zero_shot}) reads none"
                )
            from .priors import check_cache_folder

            check_cache_folder(self.bpp_cache, cache)
        if self.zero_shot is not None and self.model is None:
            raise FoldUsageError(f"{zero_shot} needs {name('model')}, the backbone the probe was fitted on")
        if self.scheme is not None and self.zero_shot is None:  # was passed over in silence
            raise FoldUsageError(f"{name('scheme')} comes with {zero_shot}; a structure model reads its own scheme")
        if self.turner_scale is not None:
            if self.zero_shot is not None:
                raise FoldUsageError(
                    f"{turner} sets a pair-head model's decoding; a zero-shot probe ({zero_shot}) has none"
                )
            check_decoding_overrides(self.decoding_overrides(), name)

    def model_file(self) -> Path:
        """The structure model's file (``default`` resolved); a FoldError when it is missing,
        a CheckpointError with how to fold with one when it names an ESM-2 backbone
        (:func:`resm.structure.model.backbone_given`)."""
        from ..backbone.load import CheckpointError, names_backbone
        from .model import backbone_given, resolve_model

        path = Path(resolve_model(self.model))
        if names_backbone(path):  # an ESM-2 name, or a Hugging Face folder or id
            raise CheckpointError(backbone_given(path))
        if not path.exists():
            raise FoldError(f"{path}: {no_such(path, 'structure model (train one with `resm finetune`)')}")
        return path


def load_predictor(
    opts: PredictorOptions,
    probe: ProbeFile | None = None,
    *,
    open_bundle: BundleOpener | None = None,
    name: Namer = fold_flag,
    caller: str | None = None,
) -> Predictor:
    """The predictor ``opts`` name (checked by :meth:`PredictorOptions.check`): the structure
    model's (:func:`supervised_predictor`; a bundle's structure head, opened by ``open_bundle``),
    or the backbone's with its zero-shot probe (``probe``: the probe file already read, if it is).
    Errors name the options as ``name`` does (:func:`resm.config.flag`; the API: its keywords),
    and the call that needs a bundle's structure head as ``caller`` (None: the command,
    ``resm fold``; the API: ``resm.load_predictor``)."""
    opts.check(name)
    if opts.zero_shot is None:
        pred = supervised_predictor(
            opts.model_file(),
            opts.device,
            workers=opts.threads,
            cache=opts.bpp_cache,
            open_bundle=open_bundle,
            caller=caller,
        )
        return override_decoding(pred, opts.decoding_overrides(), name)
    from .model import load_with_scheme

    probe = probe or ProbeFile.read(opts.zero_shot)
    loaded, the_scheme = load_with_scheme(opts.model, opts.scheme or probe.scheme, trust=opts.trust)
    return zero_shot_predictor(loaded.model.to(opts.device), the_scheme, loaded.meta["source"], opts.zero_shot, probe)


def check_decoding_overrides(overrides: dict | None, name: Namer = flag) -> dict[str, object]:
    """The overrides of a stored decoding that are set (None values dropped), each checked
    against :class:`resm.structure.decode.Decoding`'s rules: a one-line FoldError naming the
    option as ``name`` does (``turner_scale`` -> ``--turner-scale``; the API: ``turner_scale``)
    and the rule it breaks, or that it is no setting of a decoding."""
    from dataclasses import fields

    from .decode import Decoding, DecodingError

    known = [f.name for f in fields(Decoding)]
    got = {k: v for k, v in (overrides or {}).items() if v is not None}
    for k, v in got.items():
        option = name(k)
        if k not in known:
            raise FoldError(f"{option}: not a setting of a model's decoding (those are {', '.join(known)})")
        try:
            Decoding(**{k: v})
        except DecodingError as e:
            raise FoldError(f"{option} {v}: {e.rule}") from None
    return got


def override_decoding(pred: Predictor, overrides: dict | None, name: Namer = flag) -> Predictor:
    """``pred`` with the set ``overrides`` (fields of :class:`resm.structure.decode.Decoding`, e.g.
    ``{"turner_scale": 0.3}``; None values: as stored) replacing those of its stored decoding; a
    one-line FoldError when a value is bad or when the predictor decodes a dense map (a 2-D head or
    probe), which has no such decoding (the option named as ``name`` does: :func:`check_decoding_overrides`)."""
    from dataclasses import replace

    got = check_decoding_overrides(overrides, name)
    if not got:
        return pred
    if not isinstance(pred, PairPredictor):
        raise FoldError(
            f"{name(next(iter(got)))}: {pred.source or 'this model'} decodes a dense pair map at a "
            "threshold; the option sets a pair-head model's decoding"
        )
    pred.decoding = replace(pred.decoding, **got)
    return pred


def zero_shot_predictor(
    model, scheme: Scheme, backbone: PathLike, probe_path, probe: ProbeFile | None = None
) -> MapPredictor:
    """Load the probe at ``probe_path`` into ``model`` after checking it belongs to this scheme
    and to the backbone at ``backbone``; threshold and method come from its sidecar."""
    probe = probe or ProbeFile.read(probe_path)
    probe.load_into(model, probe_path, scheme, backbone)
    return MapPredictor(model, scheme, float(probe.threshold), probe.method, None, f"zero-shot probe {probe_path}")


def supervised_predictor(
    path: PathLike,
    device: str = "cpu",
    tile: int = 512,
    workers: int = 0,
    cache: PathLike | None = None,
    *,
    open_bundle: BundleOpener | None = None,
    caller: str | None = None,
) -> Predictor:
    """A structure model written by ``resm finetune``, loaded once; its file names the mapping
    scheme (name and table hash, checked here). A pair-head model folds in batches with
    ``workers`` processes for its priors (0: one per CPU core); a 2-D head model decodes its
    map at the stored threshold. ``cache``: a folder where the thermodynamic priors are stored
    and found again (:func:`resm.structure.priors.cached_prior`; the same folder serves
    ``resm evaluate --bpp-cache`` and training's ``data.bpp_cache``). A bundle folder
    (``out_dir/model`` of ``resm finetune``) gives its structure head, opened by
    ``open_bundle`` (:data:`BundleOpener`); without one a bundle is a one-line BundleError, and
    so is a bundle without a structure head, naming ``caller``, the API call that needs it
    (None: the command, :data:`resm.backbone.adapters.COMMANDS`; :func:`resm.backbone.adapters.head_for`)."""
    from ..backbone.adapters import COMMANDS, BundleError, head_for, is_bundle
    from ..backbone.load import CheckpointError, names_backbone
    from .model import backbone_given, load_structure_model

    if is_bundle(path):  # a trained bundle (out_dir/model of `resm finetune`): its structure head
        if open_bundle is None:
            raise BundleError(f"{path}: a model bundle, and no bundle reader was handed to the structure predictor")
        tm, entries, scheme = open_bundle(path)
        name = head_for(path, entries, "structure", COMMANDS if caller is None else {"structure": caller})
        return bundle_predictor(path, tm.to(device).eval(), entries, scheme, name, tile, workers, cache)
    if names_backbone(path):  # was 'is a folder, not a checkpoint file'
        raise CheckpointError(backbone_given(path))
    model, meta = load_structure_model(path)
    return model_predictor(
        model.to(device).eval(),
        meta,
        workers=workers,
        cache=cache,
        tile=tile,
        source=f"structure model {path}",
        where=str(path),
    )


def model_predictor(
    model,
    meta: dict,
    *,
    workers: int = 0,
    cache: PathLike | None = None,
    tile: int = 512,
    source: str = "",
    where: str = "structure model",
) -> Predictor:
    """The predictor of a loaded structure model and its file's ``meta`` (the scheme checked
    against it, errors naming ``where``), decoding as the file says."""
    scheme = get_scheme(meta["scheme"])
    scheme.check(meta, where=where)
    return PREDICTORS[model.kind].for_model(model, meta, scheme, workers=workers, cache=cache, tile=tile, source=source)


def bundle_predictor(
    folder, model, entries: dict, scheme: Scheme, head: str, tile: int = 512, workers: int = 0, cache=None
) -> Predictor:
    """The structure head ``head`` of a loaded bundle (:func:`resm.tasks.base.load_bundle`: one
    encoder with its adapter, several heads) as a predictor: the encoder's embeddings go
    through the head (:class:`resm.structure.model.HeadOfBundle`), decoded as the settings
    stored with the head say (the predictor of its kind, :data:`resm.structure.predictor.PREDICTORS`)."""
    from ..backbone.adapters import BundleError
    from .model import HeadOfBundle

    net = HeadOfBundle(model, head)
    if getattr(net.head.cfg, "use_attention", False):
        raise BundleError(
            f"{folder}: structure head {head!r} reads attention maps, which a bundle's encoder "
            "does not pass on; fold with a structure_model.pt instead"
        )
    settings = entries[head].get("extra", {})
    return PREDICTORS[net.kind].for_model(
        net, settings, scheme, workers=workers, cache=cache, tile=tile, source=f"bundle {folder} (head {head})"
    )
