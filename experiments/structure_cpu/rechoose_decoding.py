"""Choose a trained pair-head model's decoding again, by the procedure `resm finetune` ends
with, on the same validation records; the weights are not touched.

    python experiments/structure_cpu/rechoose_decoding.py runs/structure_v3.pt \
        --config configs/finetune/structure.yaml --out resm/models/structure_default.pt \
        model.init=runs/cpu_demo_backbone.pt

The config gives the validation sets (``data.val``, ``data.family_holdout``, ``data.max_val``,
``data.seed``, ``data.select_on``) and the prior cache; they must be the ones the model was
trained with, so that the held-out families stay held out. Used for v3.1 of the shipped model
(v3's weights, decoding chosen once the per-sequence gamma existed).
"""

from __future__ import annotations

import argparse

from resm.config import load_config
from resm.backbone.load import safe_load
from resm.structure.model import model_from_payload, save_structure_model
from resm.tasks.structure_task import StructureTask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a structure_model.pt with the pair head")
    ap.add_argument("--config", required=True, help="the finetune config the model was trained with")
    ap.add_argument("--out", required=True, help="where to write the model with its new decoding")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = ap.parse_intermixed_args()
    task = StructureTask(load_config(a.config, a.overrides))
    payload = safe_load(a.model)  # weights_only, like every model file resm reads
    model, _ = model_from_payload(payload)
    old = dict(payload.get("decoding") or {})
    task.choose_decoding(model, "cpu", payload)  # fills payload["decoding"] and ["val_metrics"]
    save_structure_model(payload, a.out)
    m = payload["val_metrics"]
    print(f"decoding {old} -> {payload['decoding']}; "
          + "; ".join(f"{s} F1 {m[s]['f1_mean']:.3f} / {m[s]['f1_shift_mean']:.3f} (n {m[s]['n']})"
                      for s in ("val", "family") if s in m) + f"; wrote {a.out}")


if __name__ == "__main__":
    main()
