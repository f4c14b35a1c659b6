"""resm: protein language models (ESM-2) put to work on RNA.

Fold an RNA with the model shipped in the package (or ``load_predictor("structure_model.pt")``,
or a backbone with a zero-shot probe: ``load_predictor("esm2.pt", zero_shot="probe.pt")``):

>>> import resm
>>> predictor = resm.load_predictor()
>>> folded = predictor.fold_one("GGGGAAACCCCAUAGCGCGAAAGCGCU")
>>> len(folded.dotbracket), folded.dense().shape
(27, (27, 27))

Embed sequences with any backbone (a fair-esm ``.pt``, a Hugging Face folder or cached hub id,
an ESM-2 name, or ``"default"``, the backbone of the shipped model):

>>> arrays, index = resm.embed_sequences("default", {"a": "GGGGAAACCCC", "b": "ACGUACGUAAAC"},
...                                      include=["mean", "per_tok"])
>>> layer = index["layers"][-1]
>>> arrays[f"a/per_tok/{layer}"].shape[0], arrays[f"b/mean/{layer}"].ndim, index["ids"]
(11, 1, ['a', 'b'])

Write and read an embeddings file (the file ``resm embed`` writes; layout in :mod:`resm.embed`):

>>> resm.write_embeddings("emb.safetensors", arrays, index)
>>> arrays, index = resm.read_embeddings("emb.safetensors")
>>> index["ids"], index["lengths"], arrays[f"a/per_tok/{layer}"].shape[0]
(['a', 'b'], [11, 12], 11)

Load a trained bundle (``out_dir/model`` of ``resm finetune``) and use every head it holds:
``bundle = resm.load_bundle("runs/joint/model")``, then ``bundle.interact([(mirna, utr)])``
(partners to 4,000 nt, scanned in windows), ``bundle.predict_mrl([utr])`` and, with a
structure head, ``bundle.fold_one(seq)`` and ``bundle.fold(records)``, as a predictor's.

Nothing heavy is imported by ``import resm``: the names above load their modules on first use.
"""

from ._version import __version__

__all__ = [
    "__version__",
    "load_predictor",
    "load_bundle",
    "Bundle",
    "load_backbone",
    "embed_sequences",
    "read_embeddings",
    "write_embeddings",
    "Structure",
    "Predictor",
    "Folded",
]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name.isidentifier() and not name.startswith("_"):  # a submodule: resm.mapping.get_scheme(...)
        import importlib
        import importlib.util

        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'resm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _API)
