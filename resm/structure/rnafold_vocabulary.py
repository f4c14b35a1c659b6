"""RNAfold's option vocabulary in ``resm fold``, and the figure options.

A user coming from RNAfold types its spellings; each is accepted with resm's meaning or
answered by one line naming resm's equivalent, never by argparse's "unrecognized arguments":

* ``-i FILE``: the input, the same as the positional INPUT;
* ``-j N``: ``--threads N``; ``-j`` alone (RNAfold's every core): ``--threads 0``;
* ``--MEA``: accepted; a structure model decodes by maximum expected accuracy already (its
  gamma chosen on validation), a zero-shot probe by its threshold;
* ``--noPS``: accepted; resm draws nothing unless ``--plot DIR`` is given;
* ``-p``: answered: pair probabilities are ``--bpp FILE`` and their drawing ``--plot DIR``.

The structure format follows ``-o``'s extension (``.ct``, ``.bpseq``, ``.dbn``/``.db``/``.dot``,
``.pairs``, each maybe followed by ``.gz``, which compresses the file;
:func:`resm.structure.io.infer_format`) unless ``--format`` is given; any other name gets dbn.
``--plot-format`` (png, svg, pdf) and ``--dpi`` choose the figures' files
(:mod:`resm.structure.plot`); :data:`PLOT_FORMATS`, :data:`DEFAULT_PLOT_FORMAT` and
:data:`DEFAULT_DPI` are their one home (this module is light: the parser imports it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

PLOT_FORMATS = ("png", "svg", "pdf")  # the figures' file formats (resm.structure.plot.FORMATS)
DEFAULT_PLOT_FORMAT = "png"  # --plot-format, FoldOptions.plot_format and resm.structure.plot's default
DEFAULT_DPI = 100  # --dpi likewise


def add_arguments(sp: argparse.ArgumentParser) -> None:
    """RNAfold's spellings, on the ``fold`` sub-parser, in a group of their own."""
    g = sp.add_argument_group("RNAfold's spellings (each accepted with resm's meaning, or answered in one line)")
    g.add_argument(
        "-i",
        "--infile",
        dest="infile",
        type=Path,
        default=None,
        metavar="FILE",
        help="RNAfold's -i: the input file, the same as INPUT (default: INPUT)",
    )
    g.add_argument(
        "-j",
        "--jobs",
        dest="jobs",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="N",
        help="RNAfold's -j[N]: the same as --threads N, in [0, 1024]; -j alone, as RNAfold's, every core "
        "(default: --threads)",
    )
    g.add_argument(
        "--MEA",
        dest="mea",
        action="store_true",
        help="RNAfold's --MEA: accepted; a structure model decodes by maximum expected accuracy already, "
        "a zero-shot probe by its threshold (default: the model's decoding)",
    )
    g.add_argument(
        "--noPS",
        dest="no_ps",
        action="store_true",
        help="RNAfold's --noPS: accepted; resm draws nothing unless --plot DIR (default: no drawing)",
    )
    g.add_argument(
        "-p",
        "--partfunc",
        dest="partfunc",
        action="store_true",
        help="RNAfold's -p: answered with resm's equivalents, --bpp FILE (pair probabilities) and "
        "--plot DIR (their drawing)",
    )


def add_figure_arguments(sp: argparse.ArgumentParser) -> None:
    """``--plot-format`` and ``--dpi``, shaping the ``--plot`` figures (listed beside it in --help)."""
    sp.add_argument(
        "--plot-format",
        choices=PLOT_FORMATS,
        default=None,
        help=f"file format of the --plot figures (default: {DEFAULT_PLOT_FORMAT})",
    )
    sp.add_argument(
        "--dpi",
        type=int,
        default=None,
        help=f"resolution of --plot figures in dots per inch, in [10, 2400] (default: {DEFAULT_DPI})",
    )


def resolve(a: argparse.Namespace) -> None:
    """Turn RNAfold's spellings into resm's options in ``a``, in place; a spelling resm answers
    rather than accepts is a ValueError of one line naming resm's equivalent."""
    from ..config import UsageError

    if a.partfunc:
        raise UsageError(
            "-p: resm writes base-pair probabilities with --bpp FILE ('>id' blocks of 'i j p' lines) "
            "and draws them with --plot DIR (the probability map beside each structure)"
        )
    if a.jobs is not None:
        if a.threads and a.threads != a.jobs:
            raise UsageError(f"-j {a.jobs} and --threads {a.threads} disagree: give one of them")
        a.threads = a.jobs
    if a.infile is not None:
        if a.fasta not in (None, "-"):
            raise UsageError(f"give the input once: INPUT {a.fasta} or -i {a.infile}")
        a.fasta = str(a.infile)
    if a.format is None:
        from .io import infer_format

        try:  # x.ct.gz is ct (it was dbn text under that name)
            a.format = infer_format(Path(a.out)) if a.out is not None else "dbn"
        except ValueError:  # an extension that names no structure format
            a.format = "dbn"
