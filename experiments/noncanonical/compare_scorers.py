"""VL1 figures of several non-canonical pair scorers on one structure model's canonical folds.

``--model`` folds PDB VL1 as ``resm fold`` does; each ``--scorer`` file's entry ``non_canonical``
(:mod:`resm.structure.noncanonical`) adds its pairs at its stored threshold and at each of
``--thresholds``. Mean per-sequence F1 (strict / ±1) over all pairs and over the non-canonical
pairs alone. A diagnostic (why two scorers differ), not a way to choose a threshold: the
recipe (``train.py``) chooses it by cross-validation on TR1, and VL1 only reports. Never reads
PDB test sets:

    RESM_DATA=../shared/data python experiments/noncanonical/compare_scorers.py \\
        --scorer resm/models/structure_default.pt --scorer runs/nc33/structure_model.pt --thresholds 0.4 0.45
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train import fold_items, non_canonical_view  # noqa: E402

from resm.backbone.load import safe_load  # noqa: E402
from resm.config import default_data_dir  # noqa: E402
from resm.structure.metrics import evaluate  # noqa: E402
from resm.structure.noncanonical import KEY, NonCanonical  # noqa: E402
from resm.structure.predictor_loading import supervised_predictor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resm/models/structure_default.pt", help="the structure model that folds VL1")
    ap.add_argument("--scorer", action="append", required=True, help="a structure model file holding a scorer")
    ap.add_argument("--thresholds", type=float, nargs="*", default=[])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--bpp-cache", default=None)
    ap.add_argument("--report", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = Path(a.data_dir or default_data_dir())
    vl = fold_items(supervised_predictor(a.model, workers=1, cache=a.bpp_cache), data / "ss/pdb/VL1.tsv")
    refs = [it[3] for it in vl]
    lines = [
        "| scorer | threshold | VL1 all pairs F1 | F1 ±1 | VL1 non-canonical pairs F1 | F1 ±1 |",
        "|---|---|---|---|---|---|",
    ]
    for path in a.scorer:
        nc = NonCanonical.from_payload(safe_load(path)[KEY], path)
        stored = nc.threshold
        for t in [stored] + [x for x in a.thresholds if x != stored]:
            nc.threshold = t
            added = [nc.add(it[0], it[1], it[2]) for it in vl]
            al, non = evaluate(added, refs), evaluate(*non_canonical_view(vl, added))
            lines.append(
                f"| `{path}` | {t:g}{' (stored)' if t == stored else ''} | {al['f1_mean']:.4f} | "
                f"{al['f1_shift_mean']:.4f} | {non['f1_mean']:.4f} | {non['f1_shift_mean']:.4f} |"
            )
    text = (
        f"Command: `RESM_DATA=../shared/data python experiments/noncanonical/compare_scorers.py "
        f"{' '.join(sys.argv[1:])}`  \nStructure model folding VL1: `{a.model}`.\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    if a.report:
        a.report.write_text(text)


if __name__ == "__main__":
    main()
