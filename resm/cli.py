"""The ``resm`` command line. Each subcommand is a thin wrapper around a library function."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Dict, List, Optional

from . import __version__

def _user_errors() -> tuple:
    """Errors a user can cause: reported in one line (a traceback only with --debug)."""
    from .data.fasta import FastaError
    from .mapping import MappingError
    from .model.load import CheckpointError

    from .train import ConfigError

    errs = [FastaError, MappingError, CheckpointError, ConfigError, FileNotFoundError, ValueError, KeyError]
    try:
        from .structure import StructureError

        errs.append(StructureError)
    except ImportError:
        pass
    return tuple(errs)


def _dtype(name: Optional[str]):
    import torch

    return {None: None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


# --------------------------------------------------------------------------- commands
def cmd_init_checkpoint(a: argparse.Namespace) -> None:
    from .mapping import get_scheme
    from .model.load import init_model, resm_meta, save_fair_esm, save_hf

    model = init_model(a.arch, seed=a.seed)
    scheme = get_scheme(a.scheme) if a.scheme else None
    meta = resm_meta(scheme, a.arch, init="random", seed=a.seed)
    if a.format == "hf":
        save_hf(model, a.out, meta)
    else:
        save_fair_esm(model, a.out, meta)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.out}: {a.arch}, {n / 1e6:.1f}M parameters, random init (seed {a.seed})")


def _load(a: argparse.Namespace, scheme_name: Optional[str]):
    """Load the backbone and choose the scheme: the one asked for, else the checkpoint's own,
    else the default."""
    from .mapping import DEFAULT_SCHEME, get_scheme
    from .model.load import load_backbone

    loaded = load_backbone(a.model, None, getattr(a, "regression", None), a.trust_checkpoint)
    name = scheme_name or loaded.meta.get("scheme") or DEFAULT_SCHEME
    scheme = get_scheme(name)
    scheme.check(loaded.meta, where=str(a.model))
    return loaded, scheme


def cmd_embed(a: argparse.Namespace) -> None:
    import torch

    from .embed import embed_records, map_fasta, write_embeddings

    loaded, scheme = _load(a, a.scheme)
    records = map_fasta(a.fasta, scheme, a.max_length)  # every record checked before any work
    if a.out.suffix not in (".safetensors", ".npz"):
        raise ValueError(f"{a.out}: output must end in .safetensors or .npz")
    model = loaded.model.to(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    arrays = embed_records(
        model, records, a.repr_layers, a.include, a.toks_per_batch, a.device, _dtype(a.dtype)
    )
    index = {
        "ids": [r.id for r in records],
        "lengths": [int(len(r.ids)) for r in records],
        "layers": sorted({int(k.rsplit("/", 1)[1]) for k in arrays if "/contacts" not in k}),
        "include": list(a.include),
        "scheme": scheme.name,
        "scheme_hash": scheme.table_hash,
        "model": str(a.model),
    }
    write_embeddings(a.out, arrays, index)
    nt = sum(index["lengths"])
    print(f"wrote {a.out}: {len(records)} sequences, {nt} nt in {time.perf_counter() - t0:.1f}s")


def cmd_pretrain(a: argparse.Namespace) -> None:
    from .config import load_config
    from .pretrain import run_pretrain

    result = run_pretrain(load_config(a.config, a.overrides))
    v = result.get("validation") or {}
    line = f"finished at step {result['step']}"
    if "val_loss" in v:
        line += f": validation loss {v['val_loss']:.4f} (unigram baseline {v['unigram_baseline']:.4f})"
    if int(__import__("os").environ.get("RANK", 0)) == 0:
        print(line)


def cmd_export(a: argparse.Namespace) -> None:
    from .export import export_checkpoint

    export_checkpoint(a.checkpoint, a.out, a.hf)
    print(f"wrote {a.out}" + (f" and {a.hf}" if a.hf else ""))


def cmd_schemes(a: argparse.Namespace) -> None:
    from .mapping import get_scheme, list_schemes

    for name in list_schemes():
        s = get_scheme(name)
        print(f"{name:8s} {s.kind:8s} {s.table_hash[:12]}  {s.description}")
    if a.show:
        s = get_scheme(a.show)
        print(f"\n{a.show}: {s.to_protein('ACGU')} for ACGU")


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from pathlib import Path

    p = argparse.ArgumentParser(prog="resm", description=__doc__)
    p.add_argument("--version", action="version", version=f"resm {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
        sp.set_defaults(func=fn)
        return sp

    def model_args(sp):
        sp.add_argument("model", help="fair-esm .pt file, Hugging Face folder, or ESM-2 name (e.g. esm2_t6_8M_UR50D)")
        sp.add_argument("--scheme", default=None, help="mapping scheme (default: the checkpoint's, else kdny)")
        sp.add_argument("--regression", default=None, help="contact-regression .pt (default: <stem>-contact-regression.pt beside the model)")
        sp.add_argument("--trust-checkpoint", action="store_true", help="allow unpickling arbitrary objects (only for files you trust)")
        sp.add_argument("--device", default="cpu")
        sp.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")

    from .model.config import ARCHS

    sp = add("init-checkpoint", cmd_init_checkpoint, "write a randomly initialised ESM-2 checkpoint (fair-esm .pt or HF folder)")
    sp.add_argument("--arch", default="esm2_t6_8M_UR50D", choices=list(ARCHS))
    sp.add_argument("--out", required=True, type=Path)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--scheme", default=None, help="record a mapping scheme in the checkpoint (default: none, like a protein model)")
    sp.add_argument("--format", choices=["fair-esm", "hf"], default="fair-esm")

    sp = add("embed", cmd_embed, "extract representations of the RNAs in a FASTA file (like esm-extract)")
    model_args(sp)
    sp.add_argument("fasta", type=Path)
    sp.add_argument("out", type=Path, help="output file: .safetensors or .npz")
    sp.add_argument("--repr-layers", type=int, nargs="+", default=[-1], help="layers to keep; 0 = embeddings, negative counts from the end")
    sp.add_argument("--include", nargs="+", default=["mean"], choices=["mean", "per_tok", "bos", "contacts"])
    sp.add_argument("--toks-per-batch", type=int, default=4096, help="token budget of a batch (padded tokens)")
    sp.add_argument("--max-length", type=int, default=10000, help="refuse longer sequences (no silent truncation)")
    sp.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None, help="autocast dtype (GPU: bf16)")

    sp = add("pretrain", cmd_pretrain, "continue masked-LM pretraining of ESM-2 on mapped RNA (or train from scratch)")
    sp.add_argument("--config", required=True, type=Path, help="YAML config (see configs/pretrain/)")
    sp.add_argument("overrides", nargs="*", metavar="key=value", help="override config entries, e.g. train.max_steps=100")

    sp = add("export", cmd_export, "consolidate a training checkpoint (torch or ZeRO-sharded) into a fair-esm .pt / HF folder")
    sp.add_argument("checkpoint", type=Path, help="checkpoint folder, or run folder (its newest checkpoint)")
    sp.add_argument("--out", required=True, type=Path, help="fair-esm .pt to write")
    sp.add_argument("--hf", type=Path, default=None, help="also write a Hugging Face folder here")

    sp = add("schemes", cmd_schemes, "list the mapping schemes")
    sp.add_argument("--show", default=None, help="show how one scheme maps ACGU")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    errors = _user_errors()
    try:
        args.func(args)
    except errors as e:
        if args.debug:
            raise
        msg = str(e) if not isinstance(e, KeyError) else str(e.args[0])
        print(f"resm {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"resm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
