"""Summarise a training run's log.jsonl: a markdown table of the validation curve and a PNG.

python experiments/report_run.py runs/cpu_demo --out experiments/pretrain_cpu_demo
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    rows = [json.loads(x) for x in (a.run / "log.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "validation"]
    a.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(a.run / "log.jsonl", a.out / "log.jsonl")
    shutil.copy(a.run / "config.json", a.out / "config.json")

    def tokens_at_step(step: int) -> int:  # tokens seen by the last logged step <= step
        return max((r["tokens_seen"] for r in train if r["step"] <= step), default=0)

    lines = ["| step | tokens seen | train loss | validation loss | unigram baseline |", "|---|---|---|---|---|"]
    by_step = {r["step"]: r for r in train}
    for v in val:
        t = by_step.get(v["step"]) or min(train, key=lambda r: abs(r["step"] - v["step"]))
        lines.append(
            f"| {v['step']} | {tokens_at_step(v['step']):,} | {t['loss']:.3f} "
            f"| {v['val_loss']:.3f} | {v['unigram_baseline']:.3f} |"
        )
    last = train[-1]
    summary = (
        f"{last['step']} steps, {last['tokens_seen']:,} tokens, {last['elapsed_s'] / 60:.1f} min wall, "
        f"final throughput {last['tokens_per_s']:.0f} tokens/s"
    )
    (a.out / "curve.md").write_text("\n".join([summary, "", *lines]) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(
            [r["tokens_seen"] / 1e6 for r in train],
            [r["loss"] for r in train],
            label="train (masked tokens)",
            alpha=0.6,
        )
        ax.plot(
            [tokens_at_step(v["step"]) / 1e6 for v in val],
            [v["val_loss"] for v in val],
            "o-",
            label="validation (held-out families)",
        )
        ax.axhline(val[-1]["unigram_baseline"], color="grey", ls="--", label="unigram baseline")
        ax.set_xlabel("tokens seen (millions)")
        ax.set_ylabel("MLM loss (nats)")
        ax.set_ylim(min(r["loss"] for r in train) - 0.03, val[-1]["unigram_baseline"] + 0.12)
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.out / "curve.png", dpi=100)
    except ImportError:
        pass
    print((a.out / "curve.md").read_text())


if __name__ == "__main__":
    main()
