"""What the command modules share: the :class:`Command` each one declares, the help formatter,
the argument groups several commands take, and the small helpers of their handlers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config import UNIT_RULE, unit_ok
from ..fasta import TOKS_PER_BATCH_RULE, toks_per_batch_ok
from ..structure.kcal import KCAL_RULE, kcal_ok
from ..utils.device import MAX_THREADS, THREADS_RULE, threads_ok
from ..utils.seeds import SEED_RULE, seed_ok

# options dataclass field -> the command line's name for it (resm.config.options)
CLI_NAMES = {
    "fmt": "format",
    "no_lp": "noLP",
    "trust": "trust_checkpoint",
    "layers": "repr_layers",
    "min_p": "bpp_min",
}


@dataclass(frozen=True)
class Command:
    """One ``resm`` subcommand, as a command module declares it; :mod:`resm.cli` builds the
    parser from the list in :mod:`resm.commands`.

    ``outputs``: ``(option, kind)`` pairs checked before any work (kind ``"file"``, ``"dir"``,
    ``"any"``, or a function of the parsed arguments giving one); ``inputs``: ``(option,
    what)`` pairs, or functions of the parsed arguments giving ``{what: path}`` (files the
    command reads that no option names), no output may replace
    (:func:`resm.utils.paths.declared_inputs`); ``training``:
    the command writes a run folder of its own (no transaction), and an interrupted run is
    resumed by running the same command again; ``examples``: ``(command line, what it does)``
    pairs, the end of its ``--help``."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]
    outputs: tuple = ()
    inputs: tuple = ()
    training: bool = False
    examples: tuple[tuple[str, str], ...] = ()  # (command line, what it does): the end of --help

    def __post_init__(self):
        if self.examples:  # resm.cli builds each parser through add_arguments: the examples go with it
            add = self.add_arguments

            def add_with_examples(sp: argparse.ArgumentParser) -> None:
                add(sp)
                sp.epilog = "examples:\n" + "\n".join(f"  {line}\n      {what}" for line, what in self.examples)

            object.__setattr__(self, "add_arguments", add_with_examples)


def models_read(*options: tuple[str, str]) -> Callable[[argparse.Namespace], dict]:
    """For :attr:`Command.inputs`: the files a command reads through its model options
    (``(dest, what)``) that no option names, so that no output replaces them: the backbone a
    model bundle records (when no ``--backbone`` is given), and the contact regression read
    beside a fair-esm ``.pt``."""

    def files(a: argparse.Namespace) -> dict:
        from ..backbone.load import files_beside
        from ..tasks.base import bundle_backbone, is_bundle

        out: dict = {}
        for dest, what in options:
            path = getattr(a, dest, None)
            if path is None or str(path) == "-":
                continue
            if is_bundle(path) and getattr(a, "backbone", None) is None:
                try:
                    src = bundle_backbone(path)
                except ValueError:  # a bad manifest is said when the model is loaded
                    src = ""
                if src and not src.startswith("random:"):
                    out[f"the backbone of {what}"] = src
                    path, what = src, f"the backbone of {what}"
            for i, f in enumerate(files_beside(path)):
                out[f"the contact regression of {what}" + (f" ({i})" if i else "")] = f
        return out

    return files


def probes_read(*options: tuple[str, str]) -> Callable[[argparse.Namespace], dict]:
    """For :attr:`Command.inputs`: the record read beside each probe the options
    (``(dest, what)``) name, ``PROBE.pt.json`` (its threshold and backbone), so that no output
    replaces it: ``resm fold --probe p.pt -o p.pt.json`` wrote the structures over it."""

    def files(a: argparse.Namespace) -> dict:
        from ..structure.probe import sidecar_path

        given = {what: getattr(a, dest, None) for dest, what in options}
        return {
            f"the record of {what}": sidecar_path(p) for what, p in given.items() if p is not None and str(p) != "-"
        }

    return files


def model_inputs(*more: tuple[str, str]) -> tuple:
    """For :attr:`Command.inputs` of a command taking :func:`model_args`: the model and its
    ``--regression``, then ``more`` (the command's own inputs), then the files read through the
    model (:func:`models_read`)."""
    return (("model", "the model"), ("regression", "--regression"), *more, models_read(("model", "the model")))


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help states its default: ``(default: X)`` is appended unless the help
    already speaks of it, ``(required)`` to a required option, and ``(default: off)`` to a
    switch (a flag that turns something on) whose help says nothing of its default."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:  # the examples keep their lines
        return text if text.startswith("examples:\n") else super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.required:
            return text if "required" in text else text + " (required)"
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreConstAction)) and "default" not in text:
            return text + " (default: off)"
        if (
            action.option_strings
            and action.nargs != 0
            and "default" not in text
            and action.default not in (None, argparse.SUPPRESS)
        ):
            d = action.default
            shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else d
            text += f" (default: {shown})".replace("%", "%%")
        return text


# Every command draws its progress bars, each counting its work against a total, on stderr, whatever
# standard output holds (the structures, the scores) and whether or not stderr is a terminal (a log
# file keeps the drawings, as a terminal does): the value of every command's ``progress`` (resm.cli's
# parser sets it), which the options dataclasses read. The Python API draws none unless asked.
PROGRESS_BARS = True


def scheme_known(v) -> bool:
    """``v`` names a mapping scheme of :func:`resm.mapping.list_schemes` (read when an option
    names one: resm.mapping loads numpy, which ``import resm.cli`` does not)."""
    from ..mapping import list_schemes

    return isinstance(v, str) and v in list_schemes()


def scheme_rule() -> str:
    """The rule of ``--scheme`` and ``--show``, the known schemes listed."""
    from ..mapping import list_schemes

    return f"must name a mapping scheme ({', '.join(list_schemes())})"


# option -> (rule, check): checked after parsing, before any work, for every command that has it;
# a rule is its text, or a function giving it where the text is only known at run time (the schemes)
OPTION_RULES = {
    "threads": (THREADS_RULE, threads_ok),  # tens of thousands crash torch
    "batch_size": ("must be >= 1", lambda v: v >= 1),
    "toks_per_batch": (TOKS_PER_BATCH_RULE, toks_per_batch_ok),  # embed_sequences' own rule (resm.fasta)
    "max_length": ("must be >= 1", lambda v: v >= 1),
    "window": ("must be >= 0 (0: the head's max_length)", lambda v: v >= 0),
    "stride": ("must be >= 0 (0: half the window)", lambda v: v >= 0),
    "max_sites": ("must be >= 1", lambda v: v >= 1),
    "max_train": ("must be >= 1", lambda v: v >= 1),
    "max_val": ("must be >= 1", lambda v: v >= 1),
    "limit": ("must be >= 1 (a number of sequences)", lambda v: v >= 1),
    "tile": ("must be >= 16", lambda v: v >= 16),
    "seed": (SEED_RULE, seed_ok),  # torch overflows past 2**64
    "threshold": (UNIT_RULE, unit_ok),  # nan fails too; the API's Predictor.fold too (resm.config)
    "bpp_min": (UNIT_RULE, unit_ok),  # nan, 2: a --bpp file without a pair; Folded.sparse's min_p too
    "jobs": (THREADS_RULE, threads_ok),  # RNAfold's -j, the same as --threads
    "dpi": ("must be in [10, 2400]", lambda v: 10 <= v <= 2400),
    "shard_size": ("must be >= 1", lambda v: v >= 1),
    "turner_scale": (KCAL_RULE, kcal_ok),  # Decoding's own rule (resm.structure.kcal)
    "scheme": (scheme_rule, scheme_known),  # the installed scheme files decide: a name, not a file
    "show": (scheme_rule, scheme_known),
}


def option_problem(values: Mapping[str, object], name: Callable[[str], str]) -> str | None:
    """The first of ``values`` (option -> value; None: not given) that breaks its rule of
    :data:`OPTION_RULES`, said in one line, ``{name(option)}: {rule}, got {value}``: the command
    line names the option by its flag (:func:`resm.config.flag`, ``--turner-scale``), the Python
    API by its keyword (:func:`resm.config.keyword`, ``turner_scale``), so both say one rule. An
    option is a field of an options dataclass (renamed to its flag's dest by :data:`CLI_NAMES`)
    or that dest; a value the rule cannot compare (an API's ``threads="4"``) breaks it. None
    when every value keeps its rule."""
    for key, v in values.items():
        rule_ok = OPTION_RULES.get(CLI_NAMES.get(key, key))
        if v is None or rule_ok is None:
            continue
        rule, ok = rule_ok
        try:
            good = bool(ok(v))
        except (TypeError, ValueError):
            good = False
        if not good:
            rule = rule() if callable(rule) else rule
            return f"{name(key)}: {rule}, got {v!r}" if isinstance(v, str) else f"{name(key)}: {rule}, got {v}"
    return None


def argument_name(parser: argparse.ArgumentParser, dest: str) -> str:
    """How errors name a command's argument ``dest`` (``parser``: the command's): its flag
    (:func:`resm.config.flag`, ``--out``), or, for a positional, its metavar (``resm embed``'s
    ``OUT``, which was said as ``--out``, a flag embed does not have)."""
    from ..config import flag

    for action in parser._actions:
        if action.dest == dest and not action.option_strings:
            return str(action.metavar or dest.upper())
    return flag(dest)


# --turner-scale's help, shared by resm fold and resm evaluate structure (figures:
# experiments/results/structure_turner_option_cpu.md; speed: fold_speed_turner_cpu.md)
TURNER_HELP = (
    "for structures annotated from 3D coordinates (PDB-derived): fold with ViennaRNA's Turner energies "
    "corrected by the model's pair probabilities (soft constraints -S*log(p/(1-p)), S in kcal/mol; pairs the "
    "model never lists get the file's turner_penalty, 5 kcal/mol unless it stores another), then decode that "
    "ensemble as the model file says. S=0.3 was chosen on PDB TR1: VL1 F1 0.763 against 0.719, but bpRNA VL0 "
    "0.592 against 0.617, hence opt-in. Costs about one RNAfold -p per sequence more (O(L^3) time, O(L^2) "
    "memory; 2.5x plain resm fold at 1,000 nt, 5.9x at 2,000 nt: experiments/results/fold_speed_turner_cpu.md). "
    "S in [0, 1000]. Pair-head models only (default: off, unless the model file stores a scale; the shipped one "
    "does not)"
)


# --------------------------------------------------------------------------- argument groups
class DeprecatedSpelling(argparse.Action):
    """An option's old spelling (:func:`deprecated_spelling`): it sets the new option's value
    and says so on stderr in one line, ``resm CMD: warning: OLD is deprecated; use NEW``."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated_spelling(sp: argparse.ArgumentParser, old: str, new: str, **kwargs) -> None:
    """Option ``old`` kept working as ``new`` (whose dest it sets, its value read as ``new``'s
    ``kwargs`` say), with a one-line deprecation note on stderr and a help line naming ``new``."""
    dest = new.lstrip("-").replace("-", "_")
    sp.add_argument(
        old,
        action=DeprecatedSpelling,
        new=new,
        dest=dest,
        help=f"deprecated spelling of {new} (default: that of {new})",
        **kwargs,
    )


def device_args(sp: argparse.ArgumentParser, threads: bool = True, threads_extra: str = "") -> None:
    """``--device``, ``--nogpu`` and (with ``threads``) ``--threads``; ``threads_extra`` names
    what else the threads run."""
    from ..utils.device import DEVICE_HELP

    sp.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")
    sp.add_argument(
        "--nogpu",
        dest="device",
        action="store_const",
        const="cpu",
        help="run on the CPU (same as --device cpu; esm-extract's spelling)",
    )
    if threads:
        threads_arg(sp, threads_extra)


def threads_arg(sp: argparse.ArgumentParser, extra: str = "") -> None:
    """``--threads N``: torch's CPU threads (and ``extra``, what else they run), 0 every core."""
    sp.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help=f"CPU threads, in [0, {MAX_THREADS}]: torch's{extra} (default 0: every core)",
    )


def model_args(sp: argparse.ArgumentParser) -> None:
    """The backbone a command runs: the positional model, its scheme, regression and device."""
    sp.add_argument(
        "model",
        metavar="MODEL",
        help="fair-esm .pt file, Hugging Face folder, Hugging Face hub id in the local cache "
        "(e.g. facebook/esm2_t6_8M_UR50D), ESM-2 name (e.g. esm2_t6_8M_UR50D), a structure_model.pt (its "
        "backbone), or 'default' (the backbone of the shipped structure model)",
    )
    sp.add_argument("--scheme", default=None, help="mapping scheme (default: the checkpoint's, else kdny)")
    sp.add_argument(
        "--regression",
        default=None,
        metavar="FILE",
        help="contact-regression .pt (default: <stem>-contact-regression.pt beside the model)",
    )
    trust_arg(sp)
    device_args(sp)


def trust_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow unpickling arbitrary objects (only for files you trust; default: refuse anything but weights "
        "and plain data, in one line naming the file)",
    )


def max_length_arg(sp: argparse.ArgumentParser, default: int) -> None:
    """``--max-length``: a longer record is refused (not cut)."""
    sp.add_argument(
        "--max-length",
        type=int,
        default=default,
        help="refuse sequences longer than this, in nt (no silent truncation)",
    )


def shard_size_arg(sp: argparse.ArgumentParser) -> None:
    """``--shard-size``: records per shard of a sharded run (:mod:`resm.utils.shards`)."""
    from ..utils.shards import DEFAULT_SHARD_SIZE

    sp.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        help="records per shard: batches form inside a shard; under torchrun each process takes shards, and a "
        "re-run keeps the finished ones",
    )


def memory_check_arg(sp: argparse.ArgumentParser, verb: str) -> None:
    sp.add_argument(
        "--ignore-memory-check",
        action="store_true",
        help=f"{verb} even when the estimated peak memory exceeds the available memory "
        "(default: refuse before any work)",
    )


# --------------------------------------------------------------------------- handler helpers
def refuse_stdin(path, name: str, what: str) -> None:
    """A one-line error when the input ``path`` (the argument ``name``) is ``-``, for a command
    whose reader takes files alone (``resm fold``'s and ``resm embed``'s read standard input):
    ``-`` was opened as a file named ``-`` ("- line 1: cannot read (No such file or directory)")."""
    if path is not None and str(path) == "-":
        from ..config import UsageError

        raise UsageError(f"{name} -: standard input is not read by this command; give {what} as a file")


def set_threads(a: argparse.Namespace) -> None:
    """``--threads N`` (N > 0): torch's CPU threads; 0 leaves torch's default."""
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)


def torch_dtype(name: str | None):
    """``--dtype``'s name -> the autocast dtype (None: fp32; :func:`resm.embed.autocast_dtype`)."""
    from ..embed import autocast_dtype

    return autocast_dtype(name)


def print_rank0(line: str) -> None:
    """Print once per distributed job."""
    import os

    if int(os.environ.get("RANK", 0)) == 0:
        print(line)


def print_metrics(label: str, m: dict, stream=None) -> None:
    """One line ``label: key value, ...`` on ``stream`` (default: standard output), said as the
    command's summary is (:func:`resm.utils.io.announce`): once the outputs are in place, so a
    commit that fails (a full disk) is the one line on stderr, not the second after the metrics."""
    from ..utils.io import announce

    line = label + ": " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items())
    announce(line, stream)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def report_stream(quiet: bool):
    """Where a command's summary goes: stderr when stdout holds the output, else stdout."""
    return sys.stderr if quiet else sys.stdout
