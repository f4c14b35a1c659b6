"""Choose a trained pair-head model's decoding again, by the procedure `resm finetune` ends
with, on the same validation records; the weights are not touched.

    python experiments/structure_cpu/rechoose_decoding.py runs/structure_v3.pt \
        --config configs/finetune/structure.yaml --out resm/models/structure_default.pt \
        model.init=runs/cpu_demo_backbone.pt

The config gives the validation sets (``data.val``, ``data.family_holdout``, ``data.max_val``,
``data.seed``, ``data.val_sets``, ``data.select_on``) and the prior cache; they must be the ones
the model was trained with, so that the held-out families stay held out. Only the validation
records' priors are computed (not the training set's). The backbone of the task is not used
(the model file holds its own), so ``model.init=null model.arch=small`` serves when the
training backbone is not at hand. Every validation set is scored with the model's old decoding
and with the new one (F1, precision, recall, predicted/reference pair ratio); ``--report``
writes that table as markdown. Used for v3.1 of the shipped model (v3's weights, decoding
chosen once the per-sequence gamma existed).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from resm.backbone.load import safe_load
from resm.config import load_config
from resm.structure.decode import Decoding
from resm.structure.model import model_from_payload, save_structure_model
from resm.tasks.structure_task import StructureTask
from resm.utils.io import atomic_write_text


def table(before: dict, after: dict, old: Decoding, new: Decoding, selected, command: str) -> str:
    lines = [
        "# Decoding chosen again on the validation sets",
        "",
        f"Command: `{command}`  ",
        f"Chosen on the mean F1 of: {', '.join(selected)}.  ",
        f"Before: {old.describe()}.  ",
        f"After: {new.describe()}.",
        "",
        "| set | n | F1 before | F1 after | F1 ±1 before | F1 ±1 after | precision before / after "
        "| recall before / after | pred/ref pairs before | pred/ref pairs after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in before:
        b, a = before[s], after[s]
        lines.append(
            f"| {s} | {b['n']} | {b['f1_mean']:.3f} | {a['f1_mean']:.3f} | {b['f1_shift_mean']:.3f} "
            f"| {a['f1_shift_mean']:.3f} | {b['precision_mean']:.3f} / {a['precision_mean']:.3f} "
            f"| {b['recall_mean']:.3f} / {a['recall_mean']:.3f} "
            f"| {b['pair_ratio']:.2f} | {a['pair_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a structure_model.pt with the pair head")
    ap.add_argument("--config", required=True, help="the finetune config the model was trained with")
    ap.add_argument("--out", default=None, help="where to write the model with its new decoding (default: nowhere)")
    ap.add_argument("--report", default=None, help="markdown table of every validation set before and after")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = ap.parse_intermixed_args()
    task = StructureTask(load_config(a.config, a.overrides), train_priors=False)
    payload = safe_load(a.model)  # weights_only, like every model file resm reads
    model, _ = model_from_payload(payload)
    old = Decoding.from_dict(payload.get("decoding") or {})
    sets = task.kind.validation_predictions(model, "cpu")
    before = {s: task.kind.decoding_metrics(model, items, old) for s, items in sets.items()}
    task.kind.choose(model, "cpu", payload, sets=sets)  # fills payload["decoding"] and ["val_metrics"]
    new = Decoding.from_dict(payload["decoding"])
    after = {s: payload["val_metrics"][s] for s in sets}
    command = "python " + " ".join(shlex.quote(x) for x in sys.argv)
    text = table(before, after, old, new, payload["val_metrics"]["selected_on"], command)
    print(text)
    if a.report:
        atomic_write_text(a.report, text)
    if a.out:
        save_structure_model(payload, a.out)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
