"""Every command against bad input, table-driven and in process (``resm.cli.main``).

For each case: the exit code (1 for a bad input, 2 for a bad command line), exactly one line
on stderr that starts ``resm ...: error:`` and names the file, record or key, no traceback,
and nothing written: the listing of the workspace and of the case's own folder (sizes and
times included) is the same before and after. See :mod:`tests.robustness.conftest` for the
workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.robustness.cases import (
    Case,
    check_one_line,
    copy,
    mkdir,
    then,
    write,
)

FA_BAD = ">ok\nACGU\n>bad one\nACGUJ\n"

CASES = [
    # ------------------------------------------------------------------ init-checkpoint
    Case("init/out-readonly-sys", ["init-checkpoint", "--arch", "tiny", "--out", "/sys/x.pt"], 1, ["/sys/x.pt"]),
    Case("init/out-readonly-proc", ["init-checkpoint", "--arch", "tiny", "--out", "/proc/x.pt"], 1, ["/proc/x.pt"]),
    Case("init/out-is-folder", ["init-checkpoint", "--arch", "tiny", "--out", "{dir}"], 1, ["a_folder", "is a folder"]),
    Case(
        "init/hf-onto-a-file",
        ["init-checkpoint", "--arch", "tiny", "--format", "hf", "--out", "{t}/x.pt"],
        1,
        ["x.pt", "is a file"],
        write("x.pt", "precious\n"),
    ),
    Case(
        "init/hf-onto-a-folder-of-other-files",
        ["init-checkpoint", "--arch", "tiny", "--format", "hf", "--out", "{t}/d"],
        1,
        ["d: is a folder that holds other files"],
        mkdir("d", with_file=True),
    ),
    Case(
        "init/hf-readonly", ["init-checkpoint", "--arch", "tiny", "--format", "hf", "--out", "/sys/hf"], 1, ["/sys/hf"]
    ),
    Case("init/out-under-a-file", ["init-checkpoint", "--arch", "tiny", "--out", "{fa}/x.pt"], 1, ["x.fa"]),
    Case("init/arch-bogus", ["init-checkpoint", "--arch", "bogus", "--out", "{t}/x.pt"], 2, ["--arch", "bogus"]),
    Case(
        "init/seed-negative", ["init-checkpoint", "--arch", "tiny", "--seed", "-1", "--out", "{t}/x.pt"], 2, ["--seed"]
    ),
    Case(
        "init/scheme-bogus",
        ["init-checkpoint", "--arch", "tiny", "--scheme", "bogus", "--out", "{t}/x.pt"],
        2,
        ["--scheme", "bogus", "kdny"],
    ),
    # ------------------------------------------------------------------ embed
    Case("embed/checkpoint-is-text", ["embed", "{text}", "{fa}", "{t}/e.npz"], 1, ["text.pt", "not a readable"]),
    Case("embed/checkpoint-empty", ["embed", "{empty}", "{fa}", "{t}/e.npz"], 1, ["empty.pt"]),
    Case("embed/checkpoint-truncated", ["embed", "{truncated}", "{fa}", "{t}/e.npz"], 1, ["truncated.pt"]),
    Case("embed/checkpoint-missing", ["embed", "{t}/none.pt", "{fa}", "{t}/e.npz"], 1, ["none.pt"]),
    Case("embed/hf-folder-without-config", ["embed", "{dir}", "{fa}", "{t}/e.npz"], 1, ["a_folder", "config.json"]),
    Case("embed/fasta-missing", ["embed", "{tiny}", "{t}/none.fa", "{t}/e.npz"], 1, ["none.fa"]),
    Case("embed/fasta-is-a-folder", ["embed", "{tiny}", "{dir}", "{t}/e.npz"], 1, ["a_folder"]),
    Case(
        "embed/fasta-bad-symbol",
        ["embed", "{tiny}", "{t}/bad.fa", "{t}/e.npz"],
        1,
        ["bad"],
        write("bad.fa", FA_BAD),
    ),
    Case(
        "embed/fasta-duplicate-id",
        ["embed", "{tiny}", "{t}/d.fa", "{t}/e.npz"],
        1,
        ["d.fa", "duplicate id 'a'"],
        write("d.fa", ">a\nACGU\n>a\nGGCC\n"),
    ),
    Case(
        "embed/fasta-no-header",
        ["embed", "{tiny}", "{t}/n.fa", "{t}/e.npz"],
        1,
        ["n.fa line 1"],
        write("n.fa", "ACGU\n>a\nGGCC\n"),
    ),
    Case(
        "embed/fasta-binary",
        ["embed", "{tiny}", "{t}/b.fa", "{t}/e.npz"],
        1,
        ["b.fa"],
        write("b.fa", bytes(range(256))),
    ),
    Case("embed/fasta-empty", ["embed", "{tiny}", "{t}/e.fa", "{t}/e.npz"], 1, ["e.fa"], write("e.fa", "")),
    Case(
        "embed/fasta-bad-gzip",
        ["embed", "{tiny}", "{t}/x.fa.gz", "{t}/e.npz"],
        1,
        ["x.fa.gz"],
        write("x.fa.gz", b"\x1f\x8b\x08\x00broken"),
    ),
    Case("embed/dtype-bogus", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--dtype", "fp8"], 2, ["--dtype"]),
    Case("embed/out-readonly", ["embed", "{tiny}", "{fa}", "/sys/e.npz"], 1, ["/sys/e.npz"]),
    Case("embed/out-is-folder", ["embed", "{tiny}", "{fa}", "{t}/e.npz"], 1, ["e.npz", "is a folder"], mkdir("e.npz")),
    Case("embed/out-suffix", ["embed", "{tiny}", "{fa}", "{t}/e.txt"], 2, ["e.txt", ".safetensors or .npz"]),
    Case(
        "embed/toks-per-batch-0",
        ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--toks-per-batch", "0"],
        2,
        ["--toks-per-batch"],
    ),
    Case("embed/max-length-0", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--max-length", "0"], 2, ["--max-length"]),
    Case("embed/device-bogus", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--device", "bogus"], 2, ["--device", "bogus"]),
    Case("embed/threads-negative", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--threads", "-3"], 2, ["--threads"]),
    Case("embed/threads-not-a-number", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--threads", "x"], 2, ["--threads"]),
    Case("embed/layer-out-of-range", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--repr-layers", "99"], 1, ["99"]),
    Case("embed/scheme-bogus", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--scheme", "bogus"], 2, ["--scheme", "bogus"]),
    Case("embed/scheme-mismatch", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--scheme", "nt"], 1, ["tiny.pt", "scheme"]),
    Case("embed/too-long", ["embed", "{tiny}", "{fa}", "{t}/e.npz", "--max-length", "5"], 1, ["r1"]),
    # ------------------------------------------------------------------ probe
    Case("probe/out-readonly", ["probe", "{tiny}", "{dbn}", "--out", "/sys/p.pt"], 1, ["/sys/p.pt"]),
    Case("probe/out-is-folder", ["probe", "{tiny}", "{dbn}", "--out", "{dir}"], 1, ["a_folder", "is a folder"]),
    Case("probe/structures-missing", ["probe", "{tiny}", "{t}/none.dbn", "--out", "{t}/p.pt"], 1, ["none.dbn"]),
    Case(
        "probe/structures-malformed",
        ["probe", "{tiny}", "{t}/b.dbn", "--out", "{t}/p.pt"],
        1,
        ["b.dbn"],
        write("b.dbn", ">a\nACGUACGU\n((((....\n"),
    ),
    Case(
        "probe/max-train-0", ["probe", "{tiny}", "{dbn}", "--out", "{t}/p.pt", "--max-train", "0"], 2, ["--max-train"]
    ),
    Case("probe/checkpoint-is-text", ["probe", "{text}", "{dbn}", "--out", "{t}/p.pt"], 1, ["text.pt"]),
    # ------------------------------------------------------------------ fold
    Case("fold/out-readonly-sys", ["fold", "{fa}", "-o", "/sys/x.dbn"], 1, ["/sys/x.dbn"]),
    Case("fold/out-readonly-proc", ["fold", "{fa}", "-o", "/proc/x.dbn"], 1, ["/proc/x.dbn"]),
    Case("fold/out-is-folder", ["fold", "{fa}", "-o", "{dir}"], 1, ["a_folder"]),
    Case(
        "fold/plot-is-a-file",
        ["fold", "{fa}", "--plot", "{t}/p.png"],
        1,
        ["p.png", "is a file"],
        write("p.png", "x"),
    ),
    Case(
        "fold/plot-is-a-file-with-out",
        ["fold", "{fa}", "-o", "{t}/s.dbn", "--plot", "{dbn}"],
        1,
        ["hp.dbn", "is a file"],
    ),
    Case(
        "fold/plot-is-the-input",
        ["fold", "{fa}", "-o", "{t}/s.dbn", "--plot", "{fa}"],
        1,
        ["--plot {fa}: is the input"],
    ),
    Case("fold/plot-readonly", ["fold", "{fa}", "-o", "{t}/s.dbn", "--plot", "/sys/plots"], 1, ["/sys/plots"]),
    Case(
        "fold/bpseq-records-onto-one-file",
        ["fold", "{fa}", "--format", "bpseq", "-o", "{t}/o.bpseq"],
        1,
        ["o.bpseq", "--split-dir"],
    ),
    Case("fold/threshold-nan", ["fold", "{fa}", "--threshold", "nan"], 2, ["--threshold", "nan"]),
    Case("fold/threshold-above-1", ["fold", "{fa}", "--threshold", "1.5"], 2, ["--threshold"]),
    Case("fold/threads-negative", ["fold", "{fa}", "--threads", "-3"], 2, ["--threads", "-3"]),
    Case("fold/device-bogus", ["fold", "{fa}", "--device", "bogus"], 2, ["--device", "bogus"]),
    Case("fold/max-length-0", ["fold", "{fa}", "--max-length", "0"], 2, ["--max-length"]),
    Case("fold/model-is-text", ["fold", "{fa}", "--model", "{text}"], 1, ["text.pt"]),
    Case("fold/model-is-a-backbone", ["fold", "{fa}", "--model", "{tiny}"], 1, ["tiny.pt", "structure model"]),
    Case("fold/model-missing", ["fold", "{fa}", "--model", "{t}/none.pt"], 1, ["none.pt"]),
    Case("fold/fasta-missing", ["fold", "{t}/none.fa"], 1, ["none.fa"]),
    Case("fold/fasta-bad-symbol", ["fold", "{t}/bad.fa", "-o", "{t}/s.dbn"], 1, ["bad"], write("bad.fa", FA_BAD)),
    Case(
        "fold/fasta-no-sequence",
        ["fold", "{t}/n.fa", "-o", "{t}/s.dbn"],
        1,
        ["n.fa line 1", "'a'"],
        write("n.fa", ">a\n>b\nACGU\n"),
    ),
    Case("fold/probe-missing", ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/none.pt"], 1, ["none.pt"]),
    Case(
        "fold/probe-sidecar-garbage",
        ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/probe.pt"],
        1,
        ["probe.pt.json"],
        then(copy("probe", "probe.pt"), write("probe.pt.json", "{")),
    ),
    Case(
        "fold/reference-lacks-records",
        ["fold", "{fa}", "--reference", "{dbn}", "-o", "{t}/s.dbn"],
        1,
        ["hp.dbn", "no reference structure"],
    ),
    Case(
        "fold/bpp-cache-is-a-file",
        ["fold", "{fa}", "-o", "{t}/s.dbn", "--bpp-cache", "{fa}"],
        1,
        ["--bpp-cache", "x.fa: is the input"],
    ),
    Case(
        "fold/bpp-cache-with-zero-shot",
        ["fold", "{fa}", "--model", "{tiny}", "--probe", "{t}/none.pt", "--bpp-cache", "{t}/c"],
        2,
        ["--bpp-cache", "--probe"],
    ),
    Case(
        "fold/reference-other-sequence",
        ["fold", "{t}/a.fa", "--reference", "{t}/r.dbn", "-o", "{t}/s.dbn"],
        1,
        ["r.dbn", "'a'", "position 12 (A against C)"],
        then(write("a.fa", ">a\nGGGGAAAACCCC\n"), write("r.dbn", ">a\nggggaaaaccca\n((((....))))\n")),
    ),
    # ------------------------------------------------------------------ finetune
    Case("finetune/config-is-a-folder", ["finetune", "--config", "{dir}"], 1, ["a_folder"]),
    Case(
        "finetune/max-steps-negative",
        ["finetune", "--config", "{rri_cfg}", "train.max_steps=-5", "train.out_dir={t}/new"],
        1,
        ["train.max_steps"],
    ),
    Case(
        "finetune/lr-fast",
        ["finetune", "--config", "{rri_cfg}", "optim.lr=fast", "train.out_dir={t}/new"],
        1,
        ["optim.lr"],
    ),
    Case(
        "finetune/unknown-task",
        ["finetune", "--config", "{rri_cfg}", "task=folding", "train.out_dir={t}/new"],
        1,
        ["folding"],
    ),
    Case(
        "finetune/batch-size-0",
        ["finetune", "--config", "{rri_cfg}", "data.batch_size=0", "train.out_dir={t}/new"],
        1,
        ["batch_size"],
    ),
    Case(
        "finetune/pairs-missing",
        ["finetune", "--config", "{rri_cfg}", "data.train={t}/none.tsv", "train.out_dir={t}/new"],
        1,
        ["none.tsv"],
    ),
    Case(
        "finetune/out-dir-is-a-file", ["finetune", "--config", "{rri_cfg}", "train.out_dir={fa}"], 1, ["train.out_dir"]
    ),
    Case(
        "finetune/resume-changed",
        ["finetune", "--config", "{t}/s.yaml", "optim.lr=0.5"],
        1,
        ["optim.lr 0.01 → 0.5"],
        then(copy("structure_cfg", "s.yaml"), lambda p: _retarget_structure(p)),
    ),
    # ------------------------------------------------------------------ interact / predict
    Case(
        "interact/out-readonly",
        ["interact", "{pairs}", "--model", "{rri_model}", "-o", "/sys/s.tsv"],
        1,
        ["/sys/s.tsv"],
    ),
    Case(
        "interact/maps-readonly-scores-untouched",
        ["interact", "{pairs}", "--model", "{rri_model}", "-o", "{t}/s.tsv", "--maps", "/sys/m.npz"],
        1,
        ["/sys/m.npz"],
    ),
    Case(
        "interact/out-is-folder-maps-untouched",
        ["interact", "{pairs}", "--model", "{rri_model}", "-o", "{dir}", "--maps", "{t}/m.npz"],
        1,
        ["a_folder"],
    ),
    Case(
        "interact/maps-suffix",
        ["interact", "{pairs}", "--model", "{rri_model}", "--maps", "{t}/m.txt"],
        2,
        ["m.txt", ".npz"],
    ),
    Case(
        "interact/batch-size-0",
        ["interact", "{pairs}", "--model", "{rri_model}", "--batch-size", "0"],
        2,
        ["--batch-size"],
    ),
    Case("interact/pairs-missing", ["interact", "{t}/none.tsv", "--model", "{rri_model}"], 1, ["none.tsv"]),
    Case(
        "interact/pairs-header-only",
        ["interact", "{t}/h.tsv", "--model", "{rri_model}"],
        1,
        ["h.tsv", "no pairs"],
        write("h.tsv", "a_name\ta_seq\tb_name\tb_seq\tlabel\n"),
    ),
    Case(
        "interact/pairs-bad-label",
        ["interact", "{t}/h.tsv", "--model", "{rri_model}"],
        1,
        ["h.tsv line 2", "label"],
        write("h.tsv", "a_name\ta_seq\tb_name\tb_seq\tlabel\nm\tACGU\tt\tACGU\t7\n"),
    ),
    Case(
        "interact/pairs-binary",
        ["interact", "{t}/b.tsv", "--model", "{rri_model}"],
        1,
        ["b.tsv"],
        write("b.tsv", bytes(range(1, 256)) * 4),
    ),
    Case(
        "interact/pairs-bad-gzip",
        ["interact", "{t}/p.tsv.gz", "--model", "{rri_model}"],
        1,
        ["p.tsv.gz"],
        write("p.tsv.gz", b"\x1f\x8b\x08\x00broken"),
    ),
    Case("interact/model-missing", ["interact", "{pairs}", "--model", "{t}/none"], 1, ["none"]),
    Case("interact/model-is-mrl", ["interact", "{pairs}", "--model", "{mrl_model}"], 1, ["no rri head"]),
    # a mode not chosen, or an option its mode needs left out: a usage error (exit code 2)
    Case("interact/zero-shot-no-backbone", ["interact", "{pairs}", "--zero-shot"], 2, ["--backbone", "--help"]),
    Case("interact/neither-model-nor-zero-shot", ["interact", "{pairs}"], 2, ["give --model", "--zero-shot"]),
    Case(
        "interact/zero-shot-probe-is-text",
        ["interact", "{pairs}", "--zero-shot", "--backbone", "{tiny}", "--probe", "{text}"],
        1,
        ["text.pt"],
    ),
    Case(
        "interact/head-file-changed",
        ["interact", "{pairs}", "--model", "{t}/m", "--backbone", "{tiny}"],
        1,
        ["head-rri.safetensors", "sha256"],
        then(copy("rri_model", "m"), write("m/head-rri.safetensors", "tampered")),
    ),
    Case(
        "predict/mrl-header-only",
        ["predict", "--task", "mrl", "{t}/h.csv", "--model", "{mrl_model}"],
        1,
        ["h.csv", "header only"],
        write("h.csv", "id,utr\n"),
    ),
    Case(
        "predict/mrl-out-readonly",
        ["predict", "--task", "mrl", "{utrs}", "--model", "{mrl_model}", "-o", "/sys/p.tsv"],
        1,
        ["/sys/p.tsv"],
    ),
    Case(
        "predict/mrl-maps",
        ["predict", "--task", "mrl", "{utrs}", "--model", "{mrl_model}", "--maps", "{t}/m.npz"],
        2,
        ["--maps"],
    ),
    Case(
        "predict/mrl-batch-size-0",
        ["predict", "--task", "mrl", "{utrs}", "--model", "{mrl_model}", "--batch-size", "0"],
        2,
        ["--batch-size"],
    ),
    Case(
        "predict/mrl-bad-utr",
        ["predict", "--task", "mrl", "{t}/b.csv", "--model", "{mrl_model}"],
        1,
        ["b.csv line 3"],
        write("b.csv", "id,utr\nu1,ACGU\nu2,ACXZ!\n"),
    ),
    Case(
        "predict/mrl-no-utr-column",
        ["predict", "--task", "mrl", "{t}/b.csv", "--model", "{mrl_model}"],
        1,
        ["b.csv", "utr"],
        write("b.csv", "id,seq\nu1,ACGU\n"),
    ),
    Case(
        "predict/mrl-fasta-duplicate-ids",
        ["predict", "--task", "mrl", "{t}/u.fa", "--model", "{mrl_model}"],
        1,
        ["u.fa", "duplicate id 'u'"],
        write("u.fa", ">u\nACGU\n>u\nACGG\n"),
    ),
    Case(
        "predict/rri-with-mrl-model",
        ["predict", "--task", "rri", "{pairs}", "--model", "{mrl_model}"],
        1,
        ["no rri head"],
    ),
    Case(
        "predict/task-bogus",
        ["predict", "--task", "bogus", "{utrs}", "--model", "{mrl_model}"],
        2,
        ["argument --task: invalid choice: 'bogus' (choose from 'rri', 'mrl')"],
    ),
    # ------------------------------------------------------------------ evaluate
    Case(
        "evaluate/limit-0",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "ts0", "--limit", "0"],
        2,
        ["--limit"],
    ),
    Case(
        "evaluate/limit-negative",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "ts0", "--limit", "-1"],
        2,
        ["--limit", "-1"],
    ),
    Case(
        "evaluate/out-readonly",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "ts0", "--out", "/sys/t.md"],
        1,
        ["/sys/t.md"],
    ),
    Case(
        "evaluate/out-is-folder",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "ts0", "--out", "{dir}"],
        1,
        ["a_folder"],
    ),
    Case(
        "evaluate/dataset-bogus",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "bogus"],
        2,
        ["--dataset"],
    ),
    Case(
        "evaluate/tile-0",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "ts0", "--tile", "0"],
        2,
        ["--tile"],
    ),
    Case(
        "evaluate/data-missing",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "ts0", "--data-dir", "{t}/none"],
        1,
        ["none", "data set not found"],
    ),
    Case(
        "evaluate/model-missing",
        ["evaluate", "structure", "--model", "{t}/none.pt", "--dataset", "ts0", "--data-dir", "{t}"],
        1,
        ["none.pt"],
    ),
    Case(
        "evaluate/famfold-without-fold",
        ["evaluate", "structure", "--model", "{structure_model}", "--dataset", "archiveii-famfold"],
        2,
        ["{fold}"],
    ),
    # ------------------------------------------------------------------ compare
    Case("compare/out-dir-readonly", ["compare", "--config", "{compare_cfg}", "out_dir=/sys/cmp"], 1, ["/sys/cmp"]),
    Case(
        "compare/out-dir-is-a-file", ["compare", "--config", "{compare_cfg}", "out_dir={fa}"], 1, ["x.fa", "is a file"]
    ),
    Case("compare/config-is-a-folder", ["compare", "--config", "{dir}"], 1, ["a_folder"]),
    Case("compare/steps-abc", ["compare", "--config", "{compare_cfg}", "train.steps=abc"], 1, ["train.steps", "abc"]),
    Case(
        "compare/backend-checkpoint-is-text",
        [
            "compare",
            "--config",
            "{compare_cfg}",
            "backends=[{{name: m, kind: resm, checkpoint: {text}}}]",
            "out_dir={t}/cmp",
        ],
        1,
        ["text.pt"],
    ),
    # ------------------------------------------------------------------ the rest
    Case("schemes/show-bogus", ["schemes", "--show", "bogus"], 2, ["--show", "bogus", "kdny"]),
    Case("cli/command-bogus", ["bogus"], 2, ["bogus"]),
    Case("cli/positional-missing", ["embed", "{tiny}"], 2, ["INPUT, OUT"]),
]


def _retarget_structure(p: dict) -> None:
    """A copy of the structure config that writes to a copy of its run folder."""
    import yaml

    path = Path(p["t"]) / "s.yaml"
    cfg = yaml.safe_load(path.read_text())
    src = Path(cfg["train"]["out_dir"])
    shutil.copytree(src, Path(p["t"]) / "srun")
    cfg["train"]["out_dir"] = str(Path(p["t"]) / "srun")
    path.write_text(yaml.safe_dump(cfg))


def test_the_table_covers_every_command():
    from resm.cli import build_parser
    from tests.robustness.test_cli_cases_training import TRAINING_CASES
    from tests.robustness.test_outputs_and_names import OUTPUT_CASES
    from tests.robustness.test_shards_caches_api import API_CASES, CACHE_CASES, SHARD_CASES

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    table = CASES + TRAINING_CASES
    covered = {c.argv[0] for c in table}
    assert commands <= covered, commands - covered
    assert len(table) >= 80
    # the whole table-driven suite: bad commands, outputs and names, shards, caches, the API
    assert len(table) + len(OUTPUT_CASES) + len(SHARD_CASES) + len(CACHE_CASES) + len(API_CASES) >= 250


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case: Case, ws, tmp_path, capfd, monkeypatch):
    check_one_line(case, ws, tmp_path, capfd, monkeypatch)
