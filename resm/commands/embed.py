"""``resm embed``: representations of the RNAs in a FASTA file (like esm-extract)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.io import announce
from .common import (
    CLI_NAMES,
    Command,
    max_length_arg,
    memory_check_arg,
    model_args,
    model_inputs,
    plural,
    report_stream,
    set_threads,
    shard_size_arg,
    torch_dtype,
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    from ..embed import INCLUDE_CHOICES

    model_args(sp)
    sp.add_argument(
        "fasta",
        type=Path,
        metavar="INPUT",
        help="FASTA (.gz too), bare sequences one per line, or a .dbn/.ct/.bpseq/.pairs file whose sequences are "
        "embedded; - or a pipe: standard input",
    )
    sp.add_argument("out", type=Path, metavar="OUT", help="output file: .safetensors or .npz")
    sp.add_argument(
        "--repr-layers",
        "--repr_layers",
        dest="repr_layers",
        type=int,
        nargs="+",
        default=[-1],
        help="layers to keep; 0 = embeddings, negative counts from the end",
    )
    sp.add_argument(
        "--include",
        nargs="+",
        default=["mean"],
        choices=INCLUDE_CHOICES,
        help="what to keep per sequence (esm-extract's names)",
    )
    sp.add_argument(
        "--toks-per-batch",
        "--toks_per_batch",
        dest="toks_per_batch",
        type=int,
        default=4096,
        help="token budget of a batch (padded tokens)",
    )
    max_length_arg(sp, 10000)
    sp.add_argument(
        "--dtype",
        choices=["fp32", "bf16", "fp16"],
        default=None,
        help="the forward pass's autocast dtype (default: fp32, no autocast; on a GPU bf16 is faster)",
    )
    shard_size_arg(sp)
    memory_check_arg(sp, "run")


def run(a: argparse.Namespace) -> None:
    from ..config import options
    from ..embed import EmbedOptions, embed_file
    from ..utils.paths import is_stream

    set_threads(a)
    r = embed_file(
        a.model, a.fasta, a.out, options(EmbedOptions, {**vars(a), "dtype": torch_dtype(a.dtype)}, CLI_NAMES)
    )
    if r["rank"] == 0:
        reused = f" ({r['skipped']} finished shards reused)" if r["skipped"] else ""
        announce(
            f"wrote {a.out}: {plural(r['n'], 'sequence')}, {r['nt']} nt in {r['seconds']:.1f}s{reused}",
            report_stream(is_stream(a.out)),
        )


EMBED = Command(
    "embed",
    "extract representations of the RNAs in a FASTA file (like esm-extract)",
    add_arguments,
    run,
    outputs=(("out", "file"),),
    inputs=model_inputs(("fasta", "the input")),
    examples=(
        (
            "resm embed esm2_t33_650M_UR50D.pt rnas.fasta emb.safetensors --include mean per_tok",
            "last layer's mean and per-nt states; Python: resm.read_embeddings(path)",
        ),
        (
            "resm embed default rnas.fasta emb.npz --repr-layers 0 -1 --include mean contacts",
            "the shipped model's backbone; embedding and last layers; contact maps",
        ),
    ),
)
