"""The text of ``results.md`` (:func:`resm.compare.report.format_markdown`): the RNA-RNA
interaction and mean-ribosome-load sections rendered from a fixed result, checked line by line
(no training: the rows and data descriptions are given)."""

from __future__ import annotations

from resm.compare.config import parse_config
from resm.compare.data import TaskData
from resm.compare.report import format_markdown

ABOUT = {"train": "pairs.tsv: 240 (seeded subset) of 300", "val": "40 held out of train", "test": "t.tsv: 100"}
ROWS = {
    "rri": [
        {
            "backend": "oh",
            "kind": "onehot",
            "status": "ok",
            "auroc": 0.91234,
            "auprc": 0.8,
            "val_auroc": float("nan"),
            "embed_s": 1.234,
            "train_s": 12.345,
        },
        {"backend": "v", "kind": "viennarna", "status": "ok (duplexfold|x)", "auroc": 0.7, "auprc": None},
    ],
    "mrl": [
        {
            "backend": "oh",
            "kind": "onehot",
            "status": "ok",
            "r2": 0.5,
            "spearman": 0.61,
            "val_r2": 0.4,
            "embed_s": 0.5,
            "train_s": 3.0,
        },
        {"backend": "v", "kind": "viennarna", "status": "n/a: no MRL model"},
    ],
}

EXPECTED = [
    "# Backbone comparison: compare",
    "",
    (
        "Same data, same frozen-backbone protocol, same heads and budgets for every backend (`resm "
        "compare`); tasks: rri, mrl. A skipped backend lacks its package or weights (or, in one "
        "task's table, cannot take that task's sequences); n/a: the backend cannot do it."
    ),
    "",
    "## RNA-RNA interaction",
    "",
    "Pairs (each partner at most 64 nt; seeded subsets, seed 0):",
    "",
    "- train: pairs.tsv: 240 (seeded subset) of 300",
    "- val: 40 held out of train",
    "- test: t.tsv: 100",
    "",
    (
        '- head: InteractionHead {"blocks": 2, "channels": 8} on frozen per-residue embeddings '
        "(each backend's `layer`, default the last; one pass per distinct sequence, cached), the "
        "two partners embedded apart; 40 AdamW steps through resm's training loop (no weight decay "
        "on norms and biases), lr 0.001 (constant, 5 warm-up steps), weight decay 0.01, batch 32, "
        "gradient clipping 1, seed 0; binary cross-entropy on the interaction label; the head "
        "after the last step is scored."
    ),
    (
        "- AUROC / AUPRC on the test pairs (`resm.tasks.rri.rri_metrics`), val AUROC alongside; "
        "ViennaRNA: -dG of `RNA.duplexfold` as the score, no training."
    ),
    (
        "- embed s: seconds of the embedding passes over the test pairs' distinct sequences "
        "(ViennaRNA: duplexfold over the test pairs); head train s: the head's training steps; "
        "device cpu."
    ),
    "",
    ("| backend | kind | status | test AUROC | test AUPRC | val AUROC | embed s (test) | head train s |"),
    "|---|---|---|---|---|---|---|---|",
    "| oh | onehot | ok | 0.912 | 0.800 | — | 1.23 | 12.3 |",
    "| v | viennarna | ok (duplexfold/x) | 0.700 | — | — | — | — |",
    "",
    "## Mean ribosome load",
    "",
    "5'UTRs (at most 100 nt; seeded subsets, seed 0; target mean 5.432, sd 1.250 on train):",
    "",
    "- train: pairs.tsv: 240 (seeded subset) of 300",
    "- val: 40 held out of train",
    "- test: t.tsv: 100",
    "",
    (
        '- head: ExpressionHead {"hidden": 16} on frozen per-residue embeddings (each backend\'s '
        "`layer`, default the last; one pass per distinct sequence, cached), 300 AdamW steps "
        "through resm's training loop (no weight decay on norms and biases), lr 0.001 (constant), "
        "weight decay 0.01, batch 64, gradient clipping 1, seed 0; mean squared error on the "
        "standardised MRL; the head after the last step is scored."
    ),
    (
        "- R² and Spearman's rho on the test UTRs (`resm.tasks.mrl.mrl_metrics`), val R² "
        "alongside; ViennaRNA has no MRL model (n/a)."
    ),
    (
        "- embed s: seconds of the embedding passes over the test UTRs' distinct sequences; head "
        "train s: the head's training steps; device cpu."
    ),
    "",
    "| backend | kind | status | test R² | test Spearman | val R² | embed s (test) | head train s |",
    "|---|---|---|---|---|---|---|---|",
    "| oh | onehot | ok | 0.500 | 0.610 | 0.400 | 0.50 | 3.0 |",
    "| v | viennarna | n/a: no MRL model | — | — | — | — | — |",
    "",
]


def test_rri_and_mrl_sections_render_exactly():
    cfg = parse_config(
        {
            "tasks": ["rri", "mrl"],
            "rri": {
                "train": "p.tsv",
                "test": "t.tsv",
                "steps": 40,
                "warmup_steps": 5,
                "head": {"channels": 8, "blocks": 2},
            },
            "mrl": {"train": "u.csv", "head": {"hidden": 16}},
            "backends": [{"name": "oh", "kind": "onehot"}],
            "device": "cpu",
        }
    )
    result = {
        "tasks": ["rri", "mrl"],
        "task_rows": ROWS,
        "task_data": {
            "rri": TaskData([], [], [], ABOUT),
            "mrl": TaskData([], [], [], ABOUT, mean=5.4321, std=1.25),
        },
    }
    assert format_markdown(cfg, result).split("\n") == EXPECTED
