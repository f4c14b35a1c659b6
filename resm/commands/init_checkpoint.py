"""``resm init-checkpoint``: a randomly initialised ESM-2 checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.io import announce
from .common import Command


def add_arguments(sp: argparse.ArgumentParser) -> None:
    from ..backbone.config import ARCHS

    presets = ", ".join(f"{n} ({c.num_layers} layers, {c.embed_dim} dims)" for n, c in ARCHS.items() if "_" not in n)
    sp.add_argument(
        "--arch",
        default="esm2_t6_8M_UR50D",
        choices=list(ARCHS),
        help=f"architecture: a released ESM-2 size (fair-esm's names), or {presets} for tests and trials",
    )
    sp.add_argument(
        "-o",
        "--out",
        required=True,
        type=Path,
        help="file (fair-esm) or folder (hf) to write (required); a fair-esm file named esm2* gets "
        "<stem>-contact-regression.pt beside it, which fair-esm's loader reads with it",
    )
    sp.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    sp.add_argument(
        "--scheme", default=None, help="record a mapping scheme in the checkpoint (default: none, like a protein model)"
    )
    sp.add_argument("--format", choices=["fair-esm", "hf"], default="fair-esm", help="checkpoint format")


def run(a: argparse.Namespace) -> None:
    from ..backbone.config import ARCHS
    from ..backbone.load import fair_esm_name_problem, init_model, regression_path, resm_meta, save_fair_esm, save_hf
    from ..mapping import get_scheme

    ARCHS[a.arch].require_buildable("--arch", a.arch, train=False)  # before weights too big are built
    model = init_model(a.arch, seed=a.seed)
    scheme = get_scheme(a.scheme) if a.scheme else None
    meta = resm_meta(scheme, a.arch, init="random", seed=a.seed)
    # fair-esm reads a file named esm2* only with its contact regression beside it (as resm export writes)
    companion = a.format != "hf" and not fair_esm_name_problem(a.out)
    if a.format == "hf":
        save_hf(model, a.out, meta)
    else:
        save_fair_esm(model, a.out, meta, companion=companion)
    n = sum(p.numel() for p in model.parameters())
    also = f" and {regression_path(a.out).name}" if companion else ""
    announce(f"wrote {a.out}{also}: {a.arch}, {n / 1e6:.1f}M parameters, random init (seed {a.seed})")


INIT_CHECKPOINT = Command(
    "init-checkpoint",
    "write a randomly initialised ESM-2 checkpoint (fair-esm .pt or HF folder)",
    add_arguments,
    run,
    outputs=(("out", lambda a: "dir" if a.format == "hf" else "file"),),
    examples=(
        ("resm init-checkpoint --arch tiny -o esm2_tiny.pt", "a 0.1M-parameter ESM-2 to try the commands on"),
        ("resm init-checkpoint --format hf --scheme kdny -o esm2_t6_hf", "ESM-2 t6 as a Hugging Face folder, for RNA"),
    ),
)
