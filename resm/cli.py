"""The ``resm`` command line: the top-level parser built from the commands of
:mod:`resm.commands` (one module per command, each a thin wrapper around library functions),
the checks every command shares before any work, and errors in one line with their exit codes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._version import __version__
from .commands import BY_NAME, COMMANDS
from .commands.common import OPTION_RULES, PROGRESS_BARS, HelpFormatter, argument_name, option_problem
from .utils.paths import OutputError, check_distinct_outputs, declared_inputs


def _user_errors() -> tuple:
    """Errors a user can cause: reported in one line (a traceback only with --debug)."""
    from .backbone.load import CheckpointError
    from .config import ConfigError
    from .fasta import FastaError
    from .mapping import MappingError
    from .structure.folders import FolderUnavailable
    from .structure.io import StructureError

    errs = (FastaError, MappingError, CheckpointError, ConfigError, FileNotFoundError, ValueError, KeyError)
    return (*errs, OutputError, StructureError, FolderUnavailable)


def _resolve_device(a: argparse.Namespace) -> None:
    """``--device auto`` (the default): the GPU when CUDA is available (this process's own under
    a launcher, made its current device), else the CPU."""
    if getattr(a, "device", None) is not None:
        from .utils.device import use_device

        a.device = use_device(a.device)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: one subparser per command of :data:`resm.commands.COMMANDS`."""
    p = _Parser(
        prog="resm",
        description="resm: protein language models (ESM-2) on RNA. `resm COMMAND --help` "
        "explains each command; `resm fold FILE` folds RNAs with the shipped model.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"resm {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p.commands = sub.choices  # name -> its parser
    for cmd in COMMANDS:
        sp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, formatter_class=HelpFormatter)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
        sp.set_defaults(func=cmd.run, progress=PROGRESS_BARS)
        cmd.add_arguments(sp)
    return p


# --------------------------------------------------------------------------- checks and errors
class _Parser(argparse.ArgumentParser):
    """argparse, with a command-line error in one line (exit code 2); the usage is in --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")

    def _get_value(self, action, arg_string):  # '' was Path('') (.), said as '.: is a folder'
        ruled = action.dest in OPTION_RULES or action.nargs in (argparse.PARSER, argparse.REMAINDER)
        if arg_string == "" and not ruled and action.default != "":  # one empty by default (--linker) may be
            raise argparse.ArgumentError(action, "is empty ('' names no file, folder or value)")
        self.__dict__.setdefault("typed", {})[action.dest] = arg_string  # Path() drops an ending '/': kept
        return super()._get_value(action, arg_string)

    def parse_args(self, args=None, namespace=None):  # an unknown option: its command's error, not resm's
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            said_by = getattr(self, "commands", {}).get(getattr(parsed, "command", None), self)
            said_by.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def _one_line(text: str) -> str:
    return " ".join(ln.strip() for ln in str(text).splitlines() if ln.strip())


def _device_ok(v: str) -> str | None:
    from .config import ConfigError, check_device

    try:
        check_device(v, "--device")
    except ConfigError as e:
        return str(e).split(": ", 1)[1]
    return None


def _resume_hint(command: str) -> str:
    """What an interrupted command says after "interrupted"/"terminated": of a training run,
    its checkpoint or that none was kept (:func:`resm.train.interrupted_note`); shards kept."""
    from .utils.shards import interrupted_note

    train = sys.modules.get("resm.train")  # imported by the run, if it started
    run = train.interrupted_note() if BY_NAME[command].training and train is not None else ""
    return run + interrupted_note()


def _inputs(args: argparse.Namespace) -> dict:
    out: dict = {}
    for item in BY_NAME[args.command].inputs:  # (option, what), or a function of the arguments giving {what: path}
        out.update(item(args) if callable(item) else {item[1]: getattr(args, item[0], None)})
    return out


# folder outputs whose files are added to the folder (not replacing it; the prior cache too): a folder
# input may hold an input there, which only the files written are checked against (when their names are known)
_MERGED = ("split_dir", "plot", "bpp_cache")


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Option values and output paths, before any work: a bad one is a one-line error (an
    output that is an input, or two outputs that are one file, included)."""
    from .config import flag
    from .utils.io import check_output

    prog = f"resm {args.command}"
    problem = option_problem({dest: getattr(args, dest, None) for dest in OPTION_RULES}, flag)
    if problem:
        parser.exit(2, f"{prog}: error: argument {problem} (see {prog} --help)\n")
    dev = getattr(args, "device", None)
    if dev is not None and _device_ok(dev):
        parser.exit(2, f"{prog}: error: argument --device: {_device_ok(dev)} (see {prog} --help)\n")
    if dev == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    outputs = {
        argument_name(parser.commands[args.command], dest): (dest, kind) for dest, kind in BY_NAME[args.command].outputs
    }
    typed = getattr(parser.commands[args.command], "typed", {})  # the paths as given ('out/' names a folder)
    for name, (dest, kind) in outputs.items():
        path = getattr(args, dest, None)
        if path is not None:
            path = typed[dest] if dest in typed and Path(typed[dest]) == Path(path) else path
            check_output(path, kind(args) if callable(kind) else kind, name, replaces=dest not in _MERGED)
    check_distinct_outputs({name: getattr(args, dest, None) for name, (dest, _) in outputs.items()})


def _terminate_handler(command: str):
    """The SIGTERM and SIGHUP (its terminal closed) handler of a command: remove every staged output and what a
    training run with no checkpoint yet wrote (:func:`resm.utils.io.abort_all`), kill the worker processes, say so in
    one line and exit with 128 + the signal (143, 129). It does the cleanup itself rather than raise an exception:
    Python drops an exception raised while it runs a fork hook or a finaliser, and the signal would be lost. Commits
    and stagings hold the signal until they are through (``held_signals``). A forked child with this handler exits."""
    import multiprocessing
    import os
    import signal

    pid = os.getpid()

    def _term(signum, frame):
        if os.getpid() != pid:
            os._exit(128 + signum)
        from .utils.io import abort_all, defer_signal

        if defer_signal(signum):  # a commit or a staging is under way: raised again at its end
            return

        try:
            abort_all()
            for child in multiprocessing.active_children():
                child.kill()
            bars = getattr(sys.modules.get("tqdm"), "tqdm", None)
            live = bool(getattr(bars, "_instances", None))  # a progress bar is mid-line
            said = "terminated" if signum == signal.SIGTERM else "hung up"
            sys.stderr.write(("\n" if live else "") + f"resm {command}: {said}{_resume_hint(command)}\n")
            sys.stderr.flush()
        finally:
            os._exit(128 + signum)

    return _term


def main(argv: list[str] | None = None) -> int:
    """Run one command. A bad input is one line on stderr naming the file, record or key, exit
    code 1 (2 for a bad command line), and nothing written: every command but the training
    ones writes its outputs in one :func:`resm.utils.io.transaction`. Standard output writes
    whole, names itself in its errors and is flushed before the end; its reader gone (``|
    head``) is quiet with 141 (:func:`resm.utils.stdout.guarded`)."""
    from .utils.stdout import guarded

    words = sys.argv[1:] if argv is None else argv
    return guarded(lambda: _run(argv), "resm" + "".join(f" {w}" for w in words[:1] if w in BY_NAME))


def _run(argv: list[str] | None) -> int:
    import contextlib
    import signal
    import threading
    import warnings

    from .config import UsageError
    from .utils.io import interrupted, transaction
    from .utils.memory import memory_check
    from .utils.stdout import failed, say_error

    parser = build_parser()
    args = parser.parse_args(argv)
    errors = _user_errors()
    old = {}  # SIGTERM, and SIGHUP (the terminal closed), clean up; not where ignored (nohup) or handled
    for sig in (signal.SIGTERM, signal.SIGHUP) if threading.current_thread() is threading.main_thread() else ():
        if signal.getsignal(sig) == signal.SIG_DFL:
            old[sig] = signal.signal(sig, _terminate_handler(args.command))
    try:
        with warnings.catch_warnings():
            if not args.debug:  # other packages' warnings would break the one-line error
                warnings.filterwarnings("ignore")
                warnings.filterwarnings("default", module=r"resm(\.|$)")
            with declared_inputs(_inputs(args)), memory_check(not getattr(args, "ignore_memory_check", False)):
                _check_args(parser, args)
                _resolve_device(args)
                training = BY_NAME[args.command].training
                with contextlib.nullcontext() if training else transaction():
                    args.func(args)
    except (KeyboardInterrupt, Exception) as e:
        if interrupted(e):  # Ctrl-C, also when a library raised its own error because of it
            say_error(f"resm {args.command}: interrupted" + _resume_hint(args.command))
            return 130
        if args.debug:
            raise
        if isinstance(e, OSError):  # FileNotFoundError among them
            return failed(f"resm {args.command}", e)
        if isinstance(e, errors):
            msg = str(e) if not isinstance(e, KeyError) else str(e.args[0])
            usage = isinstance(e, UsageError)  # exit code 2, as argparse's errors
            say_error(f"resm {args.command}: error: {_one_line(msg)}" + usage * f" (see resm {args.command} --help)")
            return 2 if usage else 1
        say_error(  # a case no check foresaw: still one line, the traceback with --debug
            f"resm {args.command}: error: {type(e).__name__}: {_one_line(e) or 'no message'} "
            "(unexpected; rerun with --debug for the traceback)"
        )
        return 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
