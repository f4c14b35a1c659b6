"""``resm fold``: secondary structures of RNAs with the shipped model, a fine-tuned one or a
zero-shot probe (:func:`resm.structure.pipeline.fold_fasta`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.io import announce
from .common import (
    CLI_NAMES,
    TURNER_HELP,
    Command,
    deprecated_spelling,
    device_args,
    max_length_arg,
    memory_check_arg,
    models_read,
    plural,
    probes_read,
    report_stream,
    set_threads,
    shard_size_arg,
    trust_arg,
)

# the names of resm.structure.folders.FOLDERS (not imported here: building the parser stays light)
COMPARE_FOLDERS = ("rnafold", "rnafold-mea", "eternafold", "linearpartition-v", "linearfold-v")


def add_arguments(sp: argparse.ArgumentParser) -> None:
    from ..structure.inputs import INPUT_FORMATS
    from ..structure.io import FORMATS
    from ..structure.rnafold_vocabulary import add_arguments as rnafold_spellings
    from ..structure.rnafold_vocabulary import add_figure_arguments

    sp.add_argument(
        "fasta",
        nargs="?",
        default="-",
        metavar="INPUT",
        help="FASTA (.gz too), bare sequences one per line, or a .dbn/.ct/.bpseq/.pairs file or .tsv pair table "
        "whose sequences are folded; - or a pipe: standard input",
    )
    sp.add_argument(
        "--model",
        default=None,
        help="structure model from `resm finetune`, a structure_model.pt or a model folder with a structure head "
        "(default: the one shipped in the package, also named 'default'); with --probe: the backbone the "
        "probe was fitted on (any MODEL of resm probe)",
    )
    sp.add_argument(
        "--probe",
        type=Path,
        default=None,
        metavar="PROBE.pt",
        help="fold with a zero-shot probe from `resm probe` on --model's backbone instead of a supervised model "
        "(as resm interact --zero-shot --probe; default: no probe)",
    )
    deprecated_spelling(sp, "--zero-shot", "--probe", type=Path, metavar="PROBE.pt")
    sp.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="structure format (dbn: pseudoknots as [] {} <> Aa...; pairs: a pair list, 'i j' lines, one record "
        "per file; default: from -o's extension, .ct .bpseq .dbn .pairs, else dbn)",
    )
    sp.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default=None,
        help="input format (default: from the extension, else from the text)",
    )
    sp.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="one output file holding every record (dbn, or ct: records one after the other; bpseq and pairs: "
        "one record; several: --split-dir) "
        "(default: stdout)",
    )
    sp.add_argument(
        "--split-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="write one <id>.<format> file per record into DIR instead of -o (default: off)",
    )
    sp.add_argument(
        "--bpp",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write base-pair probabilities: '>id' blocks of 'i j p' lines, 1-based, i < j (default: off)",
    )
    sp.add_argument(
        "--bpp-min",
        type=float,
        default=None,
        metavar="P",
        help="leave out pairs of lower probability in --bpp; in [0, 1] (default: 0.001)",
    )
    sp.add_argument(
        "--noLP",
        "--no-lp",
        dest="noLP",
        action="store_true",
        help="no lone pairs: drop every pair without a stacked neighbour (as RNAfold --noLP)",
    )
    sp.add_argument("--nested", action="store_true", help="no pseudoknots: keep a maximum nested subset of the pairs")
    sp.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="write two figures per record here: <id>.<fmt> (arc diagram + probability map; against the "
        "reference with --reference) and <id>_ss.<fmt> (2-D drawing) (default: no plots)",
    )
    add_figure_arguments(sp)
    rnafold_spellings(sp)
    g = sp.add_argument_group("scores and comparison (on each structure line, where RNAfold prints the energy)")
    g.add_argument(
        "--no-score",
        dest="score",
        action="store_false",
        help="leave out each structure's score (default: [eF1=...], the F1 the structure is expected to "
        "score if the true pairs follow the model's pair probabilities; dbn on the structure line, bpseq and "
        "pairs as a #Scores: comment, ct none)",
    )
    g.add_argument(
        "--mfe",
        action="store_true",
        help="add RNAfold's minimum free energy of each sequence (kcal/mol, ViennaRNA's Turner 2004 parameters) "
        "to the score: [eF1=0.944 MFE=-22.40]; not with ct (default: off)",
    )
    g.add_argument(
        "--compare",
        choices=COMPARE_FOLDERS,
        default=None,
        metavar="FOLDER",
        help="also fold each RNA with a classical folder (rnafold: ViennaRNA's MFE; also "
        + ", ".join(COMPARE_FOLDERS[1:])
        + ") and show its structure on a labelled line after resm's ('<structure> [RNAfold MFE=-22.40]'; "
        "bpseq and pairs: an #Alternative: comment; not in ct) and in the --plot figures (default: off)",
    )
    sp.add_argument(
        "--reference",
        type=Path,
        default=None,
        metavar="FILE",
        help="known structures with the same ids (dbn, ct, bpseq, pairs, or a .tsv pair table; a pair list or "
        "table may give a base several pairs, all scored): score each record, with RNAfold alongside, as a TSV "
        "(default: no scoring)",
    )
    sp.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="TSV",
        help="with --reference: write the per-record scores here (default: stdout)",
    )
    sp.add_argument(
        "--reference-format",
        choices=(*FORMATS, "tsv"),
        default=None,
        help="format of --reference, e.g. dbn for RNAfold's own output saved under any name; tsv: a pair table "
        "(id, sequence, pairs columns, as ss/pdb/VL1.tsv) (default: from its extension)",
    )
    sp.add_argument(
        "--non-canonical",
        "--noncanonical",
        dest="noncanonical",
        action="store_true",
        help="add the non-canonical pairs and base triples scored by the model file's non-canonical scorer "
        "(written only with --format pairs: dbn, ct and bpseq hold one partner per base); with a 2-D head "
        "or probe: let the greedy decoding keep pairs other than AU, GC, GU (default: off)",
    )
    sp.add_argument("--turner-scale", type=float, default=None, metavar="S", help=TURNER_HELP)
    sp.add_argument(
        "--method",
        choices=["greedy", "matching"],
        default=None,
        help="how a 2-D head's or probe's pair-probability map is decoded: greedy (most probable pairs first) or "
        "matching (maximum-weight matching); a pair-head model, the shipped one included, decodes by its stored "
        "MEA and refuses it (default: the model's)",
    )
    sp.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="P",
        help="2-D heads and probes: the pair probability in [0, 1] a pair must exceed to be predicted; a pair-head "
        "model refuses it (default: the model's or probe's stored threshold)",
    )
    sp.add_argument(
        "--scheme", default=None, help="with --probe: mapping scheme (default: the probe's; a model has its own)"
    )
    max_length_arg(sp, 10000)
    shard_size_arg(sp)
    memory_check_arg(sp, "fold")
    sp.add_argument(
        "--bpp-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="store the model's thermodynamic pair priors here and reuse them when the same sequences "
        "are folded again, with any options (on short RNAs the priors are about half the time; "
        "default: compute them every run)",
    )
    trust_arg(sp)
    device_args(sp, threads_extra=", and the processes computing pair priors")


def open_bundle(folder):
    """``--model DIR``, a bundle: :func:`resm.tasks.base.open_bundle`, imported only when a
    bundle is folded (a plain fold does not pay for importing every task)."""
    from ..tasks.base import open_bundle

    return open_bundle(folder)


def run(a: argparse.Namespace) -> None:
    from ..config import options
    from ..structure.pipeline import FoldOptions, fold_fasta
    from ..structure.report import format_summary
    from ..structure.rnafold_vocabulary import resolve
    from ..utils.paths import is_stream

    resolve(a)  # RNAfold's spellings, -o's extension
    set_threads(a)
    opts = options(FoldOptions, a, {**CLI_NAMES, "zero_shot": "probe"})
    r = fold_fasta(a.fasta, opts, open_bundle=open_bundle)
    if r["rank"] != 0:
        return
    files = [("standard output" if str(p) == "-" else str(p)) for p in (a.out, a.bpp, a.report) if p is not None]
    files += [f"{a.split_dir}/ ({r['n']} {a.format} files)"] if a.split_dir is not None else []
    per_record = 3 if a.compare is not None else 2  # arcs, the 2-D drawing, and the compared structure's
    files += [f"{per_record * r['n']} {opts.plot_style()[0]} figures in {a.plot}/"] if a.plot is not None else []
    quiet = (
        r["mode"] == "stdout"
        or (a.reference is not None and a.report is None)  # stdout holds the output
        or any(p is not None and is_stream(p) for p in (a.out, a.bpp, a.report))
    )
    if "metrics" in r:  # once the outputs are in place: a failed commit (a full disk) is the one line
        announce(format_summary(r["metrics"]), report_stream(quiet))
    if files:
        skipped = f" ({r['skipped']} finished shards reused)" if r["skipped"] else ""
        announce(f"folded {plural(r['n'], 'sequence')}{skipped}: wrote " + ", ".join(files), report_stream(quiet))


FOLD = Command(
    "fold",
    "predict the secondary structures of RNAs (FASTA, bare sequences, or .dbn/.ct/.bpseq/.pairs files)",
    add_arguments,
    run,
    outputs=(
        ("out", "file"),
        ("bpp", "file"),
        ("report", "file"),
        ("split_dir", "dir"),
        ("plot", "dir"),
        ("bpp_cache", "dir"),
    ),
    inputs=(
        ("fasta", "the input"),
        ("reference", "--reference"),
        ("model", "--model"),
        ("probe", "--probe"),
        models_read(("model", "--model")),
        probes_read(("probe", "--probe")),
    ),
    examples=(
        (
            "resm fold rnas.fasta -o rnas.dbn",
            "the shipped model: dot-bracket, each structure's expected F1 as [eF1=...]",
        ),
        ("cat rnas.fasta | resm fold > rnas.dbn", "from a pipe, to standard output, like RNAfold"),
        (
            "resm fold rnas.fasta -o rnas.ct --bpp rnas.bpp --plot plots/",
            "ct (from -o's extension), pair probabilities, figures",
        ),
        (
            "resm fold known.dbn --reference known.dbn --report scores.tsv",
            "per-record F1 against known structures, RNAfold's too",
        ),
        ("resm fold rnas.fasta --model esm2.pt --probe probe.pt", "a zero-shot probe of resm probe on its backbone"),
    ),
)
