"""Set a pair-head structure model's ``head.embed_window`` (how its backbone reads sequences
longer than the window); weights, priors and decoding are not touched.

    python experiments/structure_cpu/set_embed_window.py resm/models/structure_default.pt \
        --window 512 --out resm/models/structure_default.pt

Used for v3.2 of the shipped model (v3.1 with windows of 512 nt; the evidence is
``experiments/results/length_proxy_cpu.md``). Records of at most ``--window`` nt fold exactly
as before.
"""

from __future__ import annotations

import argparse

from resm.backbone.load import safe_load
from resm.heads.pairs import PairHeadConfig
from resm.structure.model import model_from_payload, save_structure_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a structure_model.pt with the pair head")
    ap.add_argument("--window", type=int, required=True, help="nucleotides per window; 0: whole sequences")
    ap.add_argument("--out", required=True, help="where to write the model")
    a = ap.parse_args()
    payload = safe_load(a.model)  # weights_only, like every model file resm reads
    if payload.get("head_kind") != "pairs":
        raise SystemExit(f"{a.model}: not a pair-head structure model")
    cfg = PairHeadConfig.from_dict(dict(payload["head_config"], embed_window=a.window))  # checks the value
    old = payload["head_config"].get("embed_window", 0)
    payload["head_config"] = cfg.to_dict()
    model_from_payload(payload)  # still loads
    save_structure_model(payload, a.out)
    print(f"embed_window {old} -> {a.window}; wrote {a.out}")


if __name__ == "__main__":
    main()
