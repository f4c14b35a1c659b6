"""One structure model file holding the pair heads of several trainings over their shared
backbone (:func:`resm.structure.ensemble.ensemble_payload`): the predictor averages the heads' pair
probabilities candidate by candidate before decoding (:class:`resm.heads.pairs.PairHeadEnsemble`),
and the decoding stored in the file is the ensemble's own, chosen on validation by the procedure
``resm finetune`` ends with (as ``rechoose_decoding.py`` does), never one member's.

    python experiments/structure_cpu/ensemble_heads.py resm/models/structure_default.pt \\
        runs/ft_seed1/structure_model.pt --config configs/finetune/structure.yaml \\
        --out runs/ensemble_seed01.pt model.init=null model.arch=small

The files must hold pair heads of one configuration over the same backbone, priors and scheme
(independent trainings of one recipe from one backbone); anything else is a one-line error
naming the file, and nothing is written. The config names the validation sets and the prior
cache, as for ``rechoose_decoding.py`` (they must be those the members were trained with, so
that the held-out families stay held out). Validation data only.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from resm.backbone.load import CheckpointError, safe_load
from resm.structure.decode import Decoding
from resm.structure.ensemble import ensemble_payload
from resm.structure.model import model_from_payload, save_structure_model


def build(paths: list[str]) -> dict:
    """The ensemble's payload (no decoding yet); a one-line SystemExit naming a bad file."""
    try:
        return ensemble_payload([(p, safe_load(p)) for p in paths])
    except CheckpointError as e:
        raise SystemExit(str(e)) from None


def choose(payload: dict, config: str, overrides: list[str]) -> dict[str, dict]:
    """Fill ``payload``'s decoding and validation metrics, chosen on the config's validation
    sets for the ensemble itself; returns each set's metrics."""
    from resm.config import load_config
    from resm.tasks.structure_task import StructureTask

    task = StructureTask(load_config(config, overrides), train_priors=False)
    model, _ = model_from_payload(payload)
    task.kind.choose(model, "cpu", payload)
    return {s: m for s, m in payload["val_metrics"].items() if isinstance(m, dict) and "f1_mean" in m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("args", nargs="+", help="structure_model.pt files with pair heads, then key=value config overrides")
    ap.add_argument("--config", required=True, help="the finetune config the heads were trained with")
    ap.add_argument("--out", required=True, help="the ensemble's structure_model.pt")
    a = ap.parse_intermixed_args()
    a.models = [x for x in a.args if "=" not in x]
    a.overrides = [x for x in a.args if "=" in x]
    payload = build(a.models)
    metrics = choose(payload, a.config, a.overrides)
    payload["head_ensemble"]["command"] = "python " + " ".join(shlex.quote(x) for x in sys.argv)
    save_structure_model(payload, a.out)
    decoding = Decoding.from_dict(payload["decoding"]).describe()
    print(f"{len(a.models)} files, {payload['head_ensemble']['members']} heads; {decoding}")
    for s, m in metrics.items():
        print(f"{s}: F1 {m['f1_mean']:.3f} / {m['f1_shift_mean']:.3f}, pairs {m['pair_ratio']:.2f} of the reference's")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
