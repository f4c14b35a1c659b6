"""The ``resm`` command line. Each subcommand is a thin wrapper around a library function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ._version import __version__


def _user_errors() -> tuple:
    """Errors a user can cause: reported in one line (a traceback only with --debug)."""
    from .backbone.load import CheckpointError
    from .config import ConfigError
    from .fasta import FastaError
    from .mapping import MappingError

    errs = [FastaError, MappingError, CheckpointError, ConfigError, FileNotFoundError, ValueError, KeyError]
    from .utils.io import OutputError

    errs.append(OutputError)
    from .structure.folders import FolderUnavailable
    from .structure.io import StructureError

    errs += [StructureError, FolderUnavailable]
    return tuple(errs)


def _resolve_device(a: argparse.Namespace) -> None:
    """``--device auto`` (the default): the GPU when CUDA is available, else the CPU."""
    if getattr(a, "device", None) is not None:
        from .utils.device import resolve_device

        a.device = resolve_device(a.device)


def _dtype(name: str | None):
    import torch

    return {None: None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


# --------------------------------------------------------------------------- commands
# options dataclass field -> the command line's name for it (resm.config.options)
_CLI_NAMES = {"fmt": "format", "no_lp": "noLP", "trust": "trust_checkpoint", "layers": "repr_layers"}


def cmd_init_checkpoint(a: argparse.Namespace) -> None:
    from .backbone.load import init_model, resm_meta, save_fair_esm, save_hf
    from .mapping import get_scheme

    model = init_model(a.arch, seed=a.seed)
    scheme = get_scheme(a.scheme) if a.scheme else None
    meta = resm_meta(scheme, a.arch, init="random", seed=a.seed)
    if a.format == "hf":
        save_hf(model, a.out, meta)
    else:
        save_fair_esm(model, a.out, meta)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.out}: {a.arch}, {n / 1e6:.1f}M parameters, random init (seed {a.seed})")


def cmd_embed(a: argparse.Namespace) -> None:
    from .config import options
    from .embed import EmbedOptions, embed_file

    if a.threads:
        __import__("torch").set_num_threads(a.threads)
    r = embed_file(a.model, a.fasta, a.out, options(EmbedOptions, {**vars(a), "dtype": _dtype(a.dtype)}, _CLI_NAMES))
    if r["rank"] == 0:
        from .utils.io import is_stream

        reused = f" ({r['skipped']} finished shards reused)" if r["skipped"] else ""
        print(f"wrote {a.out}: {r['n']} sequence{'' if r['n'] == 1 else 's'}, {r['nt']} nt in {r['seconds']:.1f}s{reused}",
              file=sys.stderr if is_stream(a.out) else sys.stdout)


def _print_rank0(line: str) -> None:
    """Print once per distributed job."""
    import os

    if int(os.environ.get("RANK", 0)) == 0:
        print(line)


_RESUME_HINT = {c: "; run the same command again to resume from the run's last checkpoint (train.out_dir/checkpoints)"
                for c in ("pretrain", "finetune")}


def cmd_pretrain(a: argparse.Namespace) -> None:
    from .config import find_config, load_config
    from .tasks import run

    result = run(load_config(find_config(a.config, "pretrain"), a.overrides), default="mlm", known=("mlm",))
    v = result.get("validation") or {}
    line = f"finished at step {result['step']}"
    if "val_loss" in v and v.get("n_masked", 1) == 0:
        line += ": no validation loss (the validation split is empty)"
    elif "val_loss" in v:
        line += f": validation loss {v['val_loss']:.4f} (unigram baseline {v['unigram_baseline']:.4f})"
    _print_rank0(line)


def cmd_export(a: argparse.Namespace) -> None:
    from .export import export_checkpoint

    export_checkpoint(a.checkpoint, a.out, a.hf, a.trust_checkpoint, dtype=a.dtype, any_name=a.any_name)
    from .backbone.load import fair_esm_name_problem

    reg = a.out.with_name(a.out.stem + "-contact-regression.pt")  # written where fair-esm reads the pair
    print(f"wrote {a.out}" + ("" if fair_esm_name_problem(a.out) else f", {reg.name}") + (f" and {a.hf}" if a.hf else ""))


def cmd_probe(a: argparse.Namespace) -> None:
    from .config import options
    from .structure.probe import ProbeOptions, fit_probe_file, sidecar_path

    if a.threads:
        __import__("torch").set_num_threads(a.threads)
    probe, skipped, val = fit_probe_file(a.model, a.train, a.out, options(ProbeOptions, a, _CLI_NAMES))
    s = probe.stats
    skip = f", {skipped} longer than {a.max_length} skipped" if skipped else ""
    print(
        f"fitted on {probe.n_train} structures{skip}: n_pos {s['n_pos']}, n_neg {s['n_neg']}, "
        f"train AUROC {s['train_auroc']:.3f}"
    )
    on = (
        f"{s['n_val']} validation structures"
        if val
        else f"the {s['n_val']} training structures (no --val given, so this F1 is optimistic)"
    )
    print(
        f"threshold {probe.threshold:g} ({probe.method}) chosen on {on}: "
        f"F1 {s['f1_mean']:.3f} strict, {s['f1_shift_mean']:.3f} with +-1 shift (mean)"
    )
    print(f"wrote {a.out} and {sidecar_path(a.out).name}")


def cmd_fold(a: argparse.Namespace) -> None:
    from .config import options
    from .structure.pipeline import FoldOptions, fold_fasta
    from .structure.report import format_summary
    from .structure.rnafold_vocabulary import resolve

    resolve(a)  # RNAfold's spellings, -o's extension
    if a.threads:
        __import__("torch").set_num_threads(a.threads)
    r = fold_fasta(a.fasta, options(FoldOptions, a, _CLI_NAMES))
    if r["rank"] != 0:
        return
    files = [str(p) for p in (a.out, a.bpp, a.report) if p is not None]
    files += [f"{a.split_dir}/ ({r['n']} {a.format} files)"] if a.split_dir is not None else []
    files += [f"{2 * r['n']} {a.plot_format} figures in {a.plot}/"] if a.plot is not None else []
    from .utils.io import is_stream

    quiet = (r["mode"] == "stdout" or (a.reference is not None and a.report is None)  # stdout holds the output
             or any(p is not None and is_stream(p) for p in (a.out, a.bpp, a.report)))
    if "metrics" in r:
        print(format_summary(r["metrics"]), file=sys.stderr if quiet else sys.stdout)
    if files:
        skipped = f" ({r['skipped']} finished shards reused)" if r["skipped"] else ""
        print(f"folded {r['n']} sequence{'' if r['n'] == 1 else 's'}{skipped}: wrote " + ", ".join(files), file=sys.stderr if quiet else sys.stdout)


def cmd_finetune(a: argparse.Namespace) -> None:
    from .config import find_config, load_config
    from .structure.decode import Decoding
    from .tasks import run, tasks_with

    result = run(load_config(find_config(a.config, "finetune"), a.overrides), known=tasks_with("finetune"))
    v = result.get("validation") or {}
    line = f"finished at step {result['step']}"
    if "val_f1_shift" in v and result.get("decoding"):  # the F1 shown is the one of the decoding chosen below
        line += f": validation loss {v['val_loss']:.4f}"
    elif "val_f1_shift" in v:
        line += f": validation F1 {v['val_f1']:.3f} strict, {v['val_f1_shift']:.3f} shift (at 0.5), loss {v['val_loss']:.4f}"
    if result.get("decoding"):
        d, f = result["decoding"], result.get("final") or {}
        line += f"; decoding: {Decoding.from_dict(d).describe()}"
        for s, m in f.items():
            if isinstance(m, dict) and "f1_mean" in m:
                line += f"; {s} F1 {m['f1_mean']:.3f} strict, {m['f1_shift_mean']:.3f} shift"
                line += f", pairs {m['pair_ratio']:.2f} of the reference's" if "pair_ratio" in m else ""
        line += f"; wrote {result['model_file']}"
    elif result.get("threshold") is not None:
        line += f"; threshold {result['threshold']:g}; wrote {result['model_file']}"
    elif result.get("final"):
        shown = {k: v for k, v in result["final"].items() if isinstance(v, float) and not k.startswith("n_")}
        shown = {k[4:] if k.startswith("val_") else k: v for k, v in shown.items()}  # "validation loss", not "validation val_loss"
        line += ": validation " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()) + f"; wrote {result['model_file']}"
    _print_rank0(line)


def _print_metrics(label: str, m: dict) -> None:
    print(label + ": " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items()))


def cmd_interact(a: argparse.Namespace) -> None:
    from .predict import InteractOptions, interact
    from .tasks.rri_sites import ScanOptions

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    scan = ScanOptions(window=a.window, stride=a.stride, max_sites=a.max_sites, progress=a.out is not None)
    opts = InteractOptions(out=a.out, maps=a.maps, sites=a.sites, zero_shot=a.zero_shot, backbone=a.backbone,
                           probe=a.probe, linker=a.linker, scheme_name=a.scheme, batch_size=a.batch_size,
                           device=a.device, trust=a.trust_checkpoint, scan=scan,
                           adapter=a.adapter)
    r = interact(a.pairs, a.model, opts)
    if a.out is None:
        sys.stdout.write(r["text"])
    else:
        extra = (f", pair maps in {a.maps}" if a.maps else "") + (f", sites in {a.sites}" if a.sites else "")
        print(f"wrote {a.out}: {len(r['scores'])} pairs" + extra)
    if "metrics" in r:
        _print_metrics("labels in the file", r["metrics"])


def cmd_predict(a: argparse.Namespace) -> None:
    """``resm predict --task NAME``: the predict function of the task's descriptor
    (:data:`resm.tasks.TASKS`)."""
    from .config import options
    from .predict import PredictOptions
    from .tasks import TASKS, tasks_with
    from .tasks.base import resolve

    if a.task not in tasks_with("predict"):
        known = ", ".join(tasks_with("predict"))
        raise ValueError(f"--task {a.task}: no predict command for this task; choose from {known}")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    r = resolve(TASKS[a.task].predict)(options(PredictOptions, a, _CLI_NAMES))
    if a.out is None:
        sys.stdout.write(r["text"])
    else:
        print(f"wrote {a.out}: {r['n']} {r['what']}")
    for label, m in r.get("metrics", {}).items():
        _print_metrics(label, m)


def cmd_evaluate(a: argparse.Namespace) -> None:
    import shlex

    from .config import default_data_dir
    from .structure.benchmark import evaluate_dataset, evaluate_famfold, format_table, write_table
    from .structure.model import resolve_model

    if a.threads:
        __import__("torch").set_num_threads(a.threads)
    data_dir = a.data_dir or default_data_dir()
    label = a.model
    if resolve_model(a.model) is not a.model:
        a.model = resolve_model(a.model)
        label = "default (resm/models/structure_default.pt, the shipped model)"
    if "archiveii-famfold" in a.dataset and "{fold}" not in str(a.model):
        raise ValueError("archiveii-famfold needs one model per fold: give --model with {fold} in the path")
    if "{fold}" in str(a.model) and set(a.dataset) != {"archiveii-famfold"}:
        raise ValueError("a --model path with {fold} goes with --dataset archiveii-famfold only")
    if "{fold}" not in str(a.model):
        from .structure.benchmark import check_models

        check_models(a.model)  # before any data is read or any folder runs
    results = []
    for d in a.dataset:
        if d == "archiveii-famfold":
            results += evaluate_famfold(str(a.model), data_dir, a.folds, a.limit, a.seed, a.tile,
                                        bpp_cache=a.bpp_cache, folders=a.folders, workers=a.threads)
        else:
            results += evaluate_dataset(a.model, d, data_dir, a.limit, a.seed, a.tile, bpp_cache=a.bpp_cache,
                                        folders=a.folders, workers=a.threads)
    text = format_table(results, "resm " + " ".join(shlex.quote(x) for x in sys.argv[1:]), label,
                        cached_prior=bool(a.bpp_cache))
    print(text)
    if a.out:
        write_table(a.out, text)


def cmd_compare(a: argparse.Namespace) -> None:
    from .compare.config import parse_config
    from .compare.harness import run_compare
    from .compare.report import format_markdown
    from .config import find_config, load_config
    from .utils.io import check_output

    path = find_config(a.config, "compare")
    cfg = parse_config(load_config(path, a.overrides), path.stem)  # checked before any work
    cfg.strict = cfg.strict or a.strict
    check_output(cfg.output_dir(), "dir")
    from .compare.backends import BackendUnavailable

    try:
        result = run_compare(cfg)
    except BackendUnavailable as e:
        raise ValueError(str(e)) from None
    print(format_markdown(cfg, result))
    rows = [r for t in ("rows", "rri_rows", "mrl_rows") for r in result[t]]
    skipped = sorted({r["backend"] for r in rows if str(r.get("status", "")).startswith("skipped")})
    ran = sorted({r["backend"] for r in rows} - set(skipped))
    print(f"compared {len(ran)} backends ({', '.join(ran)}); wrote {len(result['files'])} files to {result['out_dir']}/")
    if skipped:
        print(f"SKIPPED {len(skipped)} backends: {', '.join(skipped)} (reasons in their rows; --strict makes a skip an error)",
              file=sys.stderr)


def cmd_schemes(a: argparse.Namespace) -> None:
    from .mapping import get_scheme, list_schemes

    for name in list_schemes():
        s = get_scheme(name)
        print(f"{name:8s} {s.kind:8s} {s.table_hash[:12]}  {s.description}")
    if a.show:
        print("\n" + get_scheme(a.show).describe())


# --------------------------------------------------------------------------- parser
class HelpFormatter(argparse.HelpFormatter):
    """Every option's help states its default: ``(default: X)`` is appended unless the help
    already speaks of it, ``(required)`` to a required option; flags (no value) need none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.required:
            return text if "required" in text else text + " (required)"
        if (action.option_strings and action.nargs != 0 and "default" not in text
                and action.default not in (None, argparse.SUPPRESS)):
            d = action.default
            shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else d
            text += f" (default: {shown})".replace("%", "%%")
        return text


def build_parser() -> argparse.ArgumentParser:
    from pathlib import Path

    from .utils.device import DEVICE_HELP
    from .utils.shards import DEFAULT_SHARD_SIZE

    p = _Parser(prog="resm", description="resm: protein language models (ESM-2) on RNA. `resm COMMAND --help` "
                "explains each command; `resm fold FILE` folds RNAs with the shipped model.",
                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"resm {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
        sp.set_defaults(func=fn)
        return sp

    def device_args(sp, threads: bool = True):
        sp.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")
        sp.add_argument("--nogpu", dest="device", action="store_const", const="cpu", help="run on the CPU (same as --device cpu; esm-extract's spelling)")
        if threads:
            extra = ", and the processes computing pair priors" if sp.prog.endswith(" fold") else ""
            sp.add_argument("--threads", type=int, default=0, help=f"CPU threads: torch's{extra} (default 0: every core)")

    def model_args(sp):
        sp.add_argument("model", help="fair-esm .pt file, Hugging Face folder, Hugging Face hub id in the local cache (e.g. facebook/esm2_t6_8M_UR50D), ESM-2 name (e.g. esm2_t6_8M_UR50D), or 'default' (the backbone of the shipped structure model)")
        sp.add_argument("--scheme", default=None, help="mapping scheme (default: the checkpoint's, else kdny)")
        sp.add_argument("--regression", default=None, help="contact-regression .pt (default: <stem>-contact-regression.pt beside the model)")
        sp.add_argument("--trust-checkpoint", action="store_true", help="allow unpickling arbitrary objects (only for files you trust)")
        device_args(sp)

    def training_args(sp, where: str):
        sp.add_argument("--config", required=True, type=Path, help=f"YAML config, or the name of a shipped one (see {where}); required")
        sp.add_argument("overrides", nargs="*", metavar="key=value", help="override config entries, e.g. train.max_steps=100")
        # the deepspeed launcher appends --local_rank=N; the rank is read from the environment
        sp.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)

    from .backbone.config import ARCHS

    sp = add("init-checkpoint", cmd_init_checkpoint, "write a randomly initialised ESM-2 checkpoint (fair-esm .pt or HF folder)")
    sp.add_argument("--arch", default="esm2_t6_8M_UR50D", choices=list(ARCHS), help="architecture")
    sp.add_argument("--out", required=True, type=Path, help="file (fair-esm) or folder (hf) to write (required)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    sp.add_argument("--scheme", default=None, help="record a mapping scheme in the checkpoint (default: none, like a protein model)")
    sp.add_argument("--format", choices=["fair-esm", "hf"], default="fair-esm", help="checkpoint format")

    sp = add("embed", cmd_embed, "extract representations of the RNAs in a FASTA file (like esm-extract)")
    model_args(sp)
    sp.add_argument("fasta", type=Path, metavar="INPUT", help="FASTA (.gz too), bare sequences, or .dbn/.ct/.bpseq; - reads standard input")
    sp.add_argument("out", type=Path, help="output file: .safetensors or .npz")
    sp.add_argument("--repr-layers", "--repr_layers", dest="repr_layers", type=int, nargs="+", default=[-1], help="layers to keep; 0 = embeddings, negative counts from the end")
    sp.add_argument("--include", nargs="+", default=["mean"], choices=["mean", "per_tok", "bos", "contacts"], help="what to keep per sequence (esm-extract's names)")
    sp.add_argument("--toks-per-batch", "--toks_per_batch", dest="toks_per_batch", type=int, default=4096, help="token budget of a batch (padded tokens)")
    sp.add_argument("--max-length", type=int, default=10000, help="refuse longer sequences (no silent truncation)")
    sp.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None, help="autocast dtype (default: none, fp32; on a GPU bf16 is faster)")
    sp.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="records per shard: batches form inside a shard; under torchrun each process takes shards and finished ones are resumed")
    sp.add_argument("--ignore-memory-check", action="store_true",
                    help="run even when the estimated peak memory exceeds the available memory (default: refuse before any work)")

    sp = add("pretrain", cmd_pretrain, "continue masked-LM pretraining of ESM-2 on mapped RNA (or train from scratch)")
    training_args(sp, "configs/pretrain/")

    sp = add("export", cmd_export, "consolidate a training checkpoint (torch or ZeRO-sharded) into a fair-esm .pt / HF folder")
    sp.add_argument("checkpoint", type=Path, help="checkpoint folder, or run folder (its newest checkpoint)")
    sp.add_argument("--out", required=True, type=Path, help="fair-esm .pt to write, its name starting with esm2 as fair-esm requires (required); <stem>-contact-regression.pt is written beside it")
    sp.add_argument("--any-name", action="store_true", help="allow an --out name that does not start with esm2 (resm reads it; fair-esm does not; default: refuse)")
    sp.add_argument("--hf", type=Path, default=None, help="also write a Hugging Face folder here, tokenizer included (default: none)")
    sp.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32", help="weights of the .pt: fp16 halves the file, read back as fp32 (default: fp32; the HF folder stays fp32)")
    sp.add_argument("--trust-checkpoint", action="store_true", help="allow unpickling arbitrary objects from the checkpoint's DeepSpeed files (only for run folders you trust; default: refuse)")

    sp = add("probe", cmd_probe, "fit the zero-shot structure probe (logistic regression on attention maps) and choose its threshold")
    model_args(sp)
    sp.add_argument("train", type=Path, help="labelled structures to fit on (dbn, bpseq, ct or pairs; .gz ok)")
    sp.add_argument("--out", required=True, type=Path, help="probe .pt to write (required; PROBE.pt.json is written beside it)")
    sp.add_argument("--val", type=Path, default=None, help="structures to choose the threshold on (default: the training ones)")
    sp.add_argument("--max-train", type=int, default=100, help="use at most this many training structures")
    sp.add_argument("--max-val", type=int, default=100, help="use at most this many validation structures")
    sp.add_argument("--max-length", type=int, default=1000, help="skip longer structures")
    sp.add_argument("--method", choices=["greedy", "matching"], default="greedy", help="decoding the threshold is chosen for")
    sp.add_argument("--seed", type=int, default=0, help="seed of the non-pair sampling")

    sp = add("fold", cmd_fold, "predict the secondary structures of RNAs (FASTA, bare sequences, or .dbn/.ct/.bpseq files)")
    sp.add_argument("fasta", nargs="?", default="-", metavar="INPUT",
                    help="FASTA (.gz too), bare sequences one per line, or a .dbn/.ct/.bpseq file whose sequences are "
                         "folded; - or a pipe: standard input")
    sp.add_argument("--model", default=None, help="structure model from `resm finetune` (default: the one shipped in the package, also named 'default'); with --zero-shot: the backbone (fair-esm .pt, HF folder or ESM-2 name)")
    sp.add_argument("--zero-shot", type=Path, default=None, metavar="PROBE.pt", help="fold with a zero-shot probe from `resm probe` instead of a supervised model (default: no probe)")
    sp.add_argument("--format", choices=["dbn", "bpseq", "ct", "pairs"], default=None, help="structure format (dbn: pseudoknots as [] {} <> Aa...; pairs: a pair list, 'i j' lines, one record per file; default: from -o's extension, .ct .bpseq .dbn .pairs, else dbn)")
    sp.add_argument("--input-format", choices=["fasta", "plain", "dbn", "ct", "bpseq"], default=None,
                    help="input format (default: from the extension, else from the text)")
    sp.add_argument("-o", "--out", type=Path, default=None, help="one output file holding every record (dbn, or ct: records one after the other; bpseq: one record) (default: stdout)")
    sp.add_argument("--split-dir", type=Path, default=None, metavar="DIR", help="write one <id>.<format> file per record into DIR instead of -o (default: off)")
    sp.add_argument("--bpp", type=Path, default=None, metavar="FILE", help="also write base-pair probabilities: '>id' blocks of 'i j p' lines, 1-based, i < j (default: off)")
    sp.add_argument("--bpp-min", type=float, default=1e-3, help="leave out pairs of lower probability in --bpp")
    sp.add_argument("--noLP", "--no-lp", dest="noLP", action="store_true", help="no lone pairs: drop every pair without a stacked neighbour (as RNAfold --noLP)")
    sp.add_argument("--nested", action="store_true", help="no pseudoknots: keep a maximum nested subset of the pairs")
    sp.add_argument("--plot", type=Path, default=None, metavar="DIR", help="write <id>.png (arc diagram + probability map; against the reference with --reference) per record here (default: no plots)")
    from .structure.rnafold_vocabulary import add_arguments as rnafold_spellings

    rnafold_spellings(sp)
    sp.add_argument("--reference", type=Path, default=None, help="known structures with the same ids (dbn, ct, bpseq): score each record, with RNAfold alongside, as a TSV (default: no scoring)")
    sp.add_argument("--report", type=Path, default=None, metavar="TSV", help="with --reference: write the per-record scores here (default: stdout)")
    sp.add_argument("--noncanonical", action="store_true", help="allow pairs other than AU, GC, GU")
    sp.add_argument("--method", choices=["greedy", "matching"], default=None, help="decoding (default: the model's)")
    sp.add_argument("--threshold", type=float, default=None, help="decoding threshold (default: the model's)")
    sp.add_argument("--scheme", default=None, help="mapping scheme (default: the probe's)")
    sp.add_argument("--max-length", type=int, default=10000, help="refuse longer sequences")
    sp.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="records per shard of a sharded run (under torchrun; shards are resumed)")
    sp.add_argument("--ignore-memory-check", action="store_true",
                    help="fold even when the estimated peak memory exceeds the available memory (default: refuse before any work)")
    sp.add_argument("--bpp-cache", type=Path, default=None, metavar="DIR",
                    help="store the model's thermodynamic pair priors here and reuse them when the same sequences "
                         "are folded again, with any options (the priors are most of the time on short RNAs; "
                         "default: compute them every run)")
    sp.add_argument("--trust-checkpoint", action="store_true", help="allow unpickling arbitrary objects (only for files you trust)")
    device_args(sp)

    sp = add("finetune", cmd_finetune, "fine-tune the task a config names (any task of resm.tasks.TASKS that "
             "supports finetune; see configs/finetune/) on an ESM-2 backbone through the shared training loop")
    training_args(sp, "configs/finetune/")

    def scan_args(sp):
        sp.add_argument("--sites", type=Path, default=None, metavar="SITES.tsv", help="also write each pair's sites: window coordinates, probability and the duplex read from the pair map (default: none)")
        sp.add_argument("--window", type=int, default=0, help="partners longer than this (nt) are scanned in windows of this length (default 0: the head's trained max_length)")
        sp.add_argument("--stride", type=int, default=0, help="step between windows (default 0: half the window)")
        sp.add_argument("--max-sites", type=int, default=10, help="sites kept per pair in --sites, strongest first")

    def infer_args(sp):
        sp.add_argument("--backbone", default=None, help="backbone checkpoint (default: the one recorded in the model's manifest; its checksum must match)")
        sp.add_argument("--adapter", type=Path, default=None, metavar="PEFT_DIR", help="a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors, made on the Hugging Face export of the same backbone) in place of the model's adapter (default: the model's own)")
        sp.add_argument("-o", "--out", type=Path, default=None, help="TSV to write (default: stdout)")
        sp.add_argument("--batch-size", type=int, default=64, help="pairs or UTRs per batch")
        device_args(sp)
        sp.add_argument("--trust-checkpoint", action="store_true", help="allow unpickling arbitrary objects (only for files you trust)")

    sp = add("interact", cmd_interact, "score RNA-RNA pairs (a_name, a_seq, b_name, b_seq[, label] table) with an rri model (partners up to 4,000 nt, long ones scanned in windows) or zero-shot")
    sp.add_argument("pairs", type=Path, help="pairs table (TSV or CSV)")
    sp.add_argument("--model", type=Path, default=None, help="rri model folder (out_dir/model of `resm finetune`; default: none, for --zero-shot)")
    sp.add_argument("--maps", type=Path, default=None, metavar="MAPS.npz", help="also write each pair's intermolecular pair-probability map (default: none)")
    sp.add_argument("--zero-shot", action="store_true", help="score from the backbone's contact head (no trained head): needs --backbone")
    sp.add_argument("--probe", type=Path, default=None, help="with --zero-shot: a contact regression from `resm probe` (default: the backbone's own)")
    sp.add_argument("--linker", default="", help="with --zero-shot: nucleotides put between the two sequences (default: none)")
    sp.add_argument("--scheme", default=None, help="with --zero-shot: mapping scheme (default: the checkpoint's)")
    scan_args(sp)
    infer_args(sp)

    sp = add("predict", cmd_predict, "predict with a trained rri or mrl model (pairs table / UTR CSV or FASTA)")
    sp.add_argument("--task", required=True,
                    help="the model's task: one whose descriptor in resm.tasks.TASKS has a predict command "
                         "(rri, mrl; required)")
    sp.add_argument("input", type=Path, help="pairs table (rri), or UTR CSV / FASTA (mrl)")
    sp.add_argument("--model", required=True, type=Path, help="model folder (out_dir/model of `resm finetune`; required)")
    sp.add_argument("--maps", type=Path, default=None, metavar="MAPS.npz", help="rri: also write the pair maps (default: none)")
    sp.add_argument("--variants", action="store_true", help="mrl: the input is the human wild-type/variant file; report the variant-effect correlation")
    scan_args(sp)
    infer_args(sp)

    sp = add("evaluate", cmd_evaluate, "score a structure model against known structures, with RNAfold in the same run")
    sp.add_argument("what", choices=["structure"], help="what to evaluate")
    sp.add_argument("--model", required=True, type=Path, help="structure_model.pt written by resm finetune, or 'default' (the shipped model); for archiveii-famfold a path with {fold} (one model per fold); required")
    sp.add_argument("--dataset", nargs="+", required=True, choices=["ts0", "bprna-new", "archiveii", "archiveii-long", "archiveii-famfold", "vl1", "tr1"], help="benchmark sets (required; vl1/tr1: PDB-derived, scored over canonical pairs and over all pairs)")
    sp.add_argument("--folds", nargs="+", default=None, help="archiveii-famfold: only these folds (default: all 9)")
    sp.add_argument("--limit", type=int, default=None, help="a seeded random subset of this many sequences per set (default: all)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the --limit subset")
    sp.add_argument("--tile", type=int, default=512, help="tile size of the memory-bounded 2D head (default: 512)")
    sp.add_argument("--folders", nargs="*", default=None, metavar="FOLDER",
                    help="classical folders run on the same records (default: those of rnafold, rnafold-mea, eternafold, linearpartition-v, linearfold-v that are installed, each missing one named in a 'skipped folder' line; a folder named here must be installed)")
    sp.add_argument("--data-dir", default=None, help="data folder (default: $RESM_DATA or ../shared/data)")
    sp.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's own choice)")
    sp.add_argument("--bpp-cache", default=None, metavar="DIR",
                    help="reuse the pair priors stored here by training (data.bpp_cache), and store new ones; "
                         "the model's time then leaves out the priors found there (default: compute them)")
    sp.add_argument("--out", type=Path, default=None, help="markdown table to write (default: print only)")

    sp = add("compare", cmd_compare, "compare backbones (mapped ESM-2, nucleotide models, RNA-FM, one-hot, ViennaRNA) on the same structure, RRI and MRL tasks")
    sp.add_argument("--config", required=True, type=Path, help="YAML config, or the name of a shipped one (e.g. cpu_small; see configs/compare/); required")
    sp.add_argument("--strict", action="store_true", help="a backend whose weights or package are missing is an error, and nothing is written (default: a SKIPPED line and row)")
    sp.add_argument("overrides", nargs="*", metavar="key=value", help="override config entries, e.g. train.steps=50")

    sp = add("schemes", cmd_schemes, "list the mapping schemes")
    sp.add_argument("--show", default=None, metavar="SCHEME", help="print one scheme's whole table (default: list them only)")
    return p


# --------------------------------------------------------------------------- checks and errors
class _Parser(argparse.ArgumentParser):
    """argparse, with a command-line error in one line (exit code 2); the usage is in --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text: str) -> str:
    return " ".join(ln.strip() for ln in str(text).splitlines() if ln.strip())


def _device_ok(v: str) -> str | None:
    from .config import ConfigError, check_device

    try:
        check_device(v, "--device")
    except ConfigError as e:
        return str(e).split(": ", 1)[1]
    return None


# option -> (rule, check): checked after parsing, before any work, for every command that has it
_OPTION_RULES = {
    "threads": ("must be >= 0 (0: torch's default)", lambda v: v >= 0),
    "batch_size": ("must be >= 1", lambda v: v >= 1),
    "toks_per_batch": ("must be >= 1", lambda v: v >= 1),
    "max_length": ("must be >= 1", lambda v: v >= 1),
    "window": ("must be >= 0 (0: the head's max_length)", lambda v: v >= 0),
    "stride": ("must be >= 0 (0: half the window)", lambda v: v >= 0),
    "max_sites": ("must be >= 1", lambda v: v >= 1),
    "max_train": ("must be >= 1", lambda v: v >= 1),
    "max_val": ("must be >= 1", lambda v: v >= 1),
    "limit": ("must be >= 1 (a number of sequences)", lambda v: v >= 1),
    "tile": ("must be >= 16", lambda v: v >= 16),
    "seed": ("must be >= 0", lambda v: v >= 0),
    "threshold": ("must be a number in [0, 1]", lambda v: 0 <= v <= 1),  # nan fails too
}

# command -> outputs checked before any work: (option, kind), kind "file", "dir" or "any"
_OUTPUTS = {
    "init-checkpoint": [("out", lambda a: "dir" if a.format == "hf" else "file")],
    "embed": [("out", "file")],
    "export": [("out", "file"), ("hf", "dir")],
    "probe": [("out", "file")],
    "fold": [("out", "file"), ("bpp", "file"), ("report", "file"), ("split_dir", "dir"), ("plot", "dir")],
    "interact": [("out", "file"), ("maps", "file"), ("sites", "file")],
    "predict": [("out", "file"), ("maps", "file"), ("sites", "file")],
    "evaluate": [("out", "file")],
}


# command -> the options that are inputs: no output may replace one (resm.utils.io.declared_inputs)
_INPUTS = {
    "embed": [("model", "the model"), ("regression", "--regression"), ("fasta", "the input")],
    "export": [("checkpoint", "the checkpoint")],
    "probe": [("model", "the model"), ("regression", "--regression"), ("train", "the training structures"),
              ("val", "--val")],
    "fold": [("fasta", "the input"), ("reference", "--reference"), ("model", "--model"), ("zero_shot", "--zero-shot")],
    "interact": [("pairs", "the input"), ("model", "--model"), ("backbone", "--backbone"), ("probe", "--probe")],
    "predict": [("input", "the input"), ("model", "--model"), ("backbone", "--backbone")],
    "evaluate": [("model", "--model")],
}


def _inputs(args: argparse.Namespace) -> dict:
    return {what: getattr(args, dest, None) for dest, what in _INPUTS.get(args.command, [])}


# folder outputs whose files are added to the folder (not replacing it): a folder input may hold
# an input there, which only the files written are checked against (when their names are known)
_MERGED = ("split_dir", "plot")


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Option values and output paths, before any work: a bad one is a one-line error (an
    output that is an input, or two outputs that are one file, included)."""
    from .utils.io import check_distinct_outputs, check_output

    prog = f"resm {args.command}"
    for dest, (rule, ok) in _OPTION_RULES.items():
        v = getattr(args, dest, None)
        if v is not None and not ok(v):
            parser.exit(2, f"{prog}: error: argument --{dest.replace('_', '-')}: {rule}, got {v} (see {prog} --help)\n")
    dev = getattr(args, "device", None)
    if dev is not None and _device_ok(dev):
        parser.exit(2, f"{prog}: error: argument --device: {_device_ok(dev)} (see {prog} --help)\n")
    if dev == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    for dest, kind in _OUTPUTS.get(args.command, []):
        path = getattr(args, dest, None)
        if path is not None:
            check_output(path, kind(args) if callable(kind) else kind, f"--{dest.replace('_', '-')}",
                         replaces=dest not in _MERGED)
    check_distinct_outputs({f"--{dest.replace('_', '-')}": getattr(args, dest, None)
                            for dest, kind in _OUTPUTS.get(args.command, [])})


def _terminate_handler(command: str):
    """The SIGTERM handler of a command: remove every staged output and scratch folder
    (:func:`resm.utils.io.abort_all`), kill the worker processes, say so in one line and exit
    with 143. It does the cleanup itself rather than raise an exception: Python drops an
    exception raised while it runs a fork hook or a finaliser, and the signal would be lost.
    Commits and stagings hold the signal until they are through (``held_signals``). A forked
    child that still has this handler just exits."""
    import multiprocessing
    import os

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
            sys.stderr.write(("\n" if live else "") + f"resm {command}: terminated{_RESUME_HINT.get(command, '')}\n")
            sys.stderr.flush()
        finally:
            os._exit(128 + signum)

    return _term


def _os_error(e: OSError) -> str:
    if e.filename is None and e.strerror is None:  # raised with a message of its own
        return str(e) or type(e).__name__
    where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "") if e.filename else ""
    what = e.strerror or type(e).__name__
    return f"{where}: {what}" if where else what


def main(argv: list[str] | None = None) -> int:
    """Run one command. A bad input is one line on stderr naming the file, record or key, exit
    code 1 (2 for a bad command line), and nothing written: every command but the training
    ones writes its outputs in one :func:`resm.utils.io.transaction`."""
    import contextlib
    import signal
    import threading
    import warnings

    from .utils.io import declared_inputs, transaction
    from .utils.memory import memory_check

    parser = build_parser()
    args = parser.parse_args(argv)
    errors = _user_errors()
    old_term = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        old_term = signal.signal(signal.SIGTERM, _terminate_handler(args.command))
    try:
        with warnings.catch_warnings():
            if not args.debug:  # other packages' warnings would break the one-line error
                warnings.filterwarnings("ignore")
                warnings.filterwarnings("default", module=r"resm(\.|$)")
            with declared_inputs(_inputs(args)), memory_check(not getattr(args, "ignore_memory_check", False)):
                _check_args(parser, args)
                _resolve_device(args)
                training = args.command in ("pretrain", "finetune")
                with contextlib.nullcontext() if training else transaction():
                    args.func(args)
    except errors as e:
        if args.debug:
            raise
        msg = str(e) if not isinstance(e, KeyError) else str(e.args[0])
        if isinstance(e, OSError):
            msg = _os_error(e)
        print(f"resm {args.command}: error: {_one_line(msg)}", file=sys.stderr)
        return 1
    except OSError as e:
        if args.debug:
            raise
        print(f"resm {args.command}: error: {_one_line(_os_error(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"resm {args.command}: interrupted" + _RESUME_HINT.get(args.command, ""), file=sys.stderr)
        return 130
    except Exception as e:  # a case no check foresaw: still one line, the traceback with --debug
        if args.debug:
            raise
        print(f"resm {args.command}: error: {type(e).__name__}: {_one_line(e) or 'no message'} "
              "(unexpected; rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return 0


if __name__ == "__main__":
    sys.exit(main())
