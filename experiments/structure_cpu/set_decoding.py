"""Set keys of a structure model's stored decoding (``resm.structure.decode.Decoding``); weights,
priors, the head's configuration and every other key are not touched.

    python experiments/structure_cpu/set_decoding.py resm/models/structure_default.pt \\
        --set length_shift=0.25 length_ref=150 --out resm/models/structure_default.pt

Used for v3.3 of the shipped model: v3.2 with the length-aware log-odds shift chosen on
validation data only (``experiments/structure_cpu/density_by_length.py``, table
``experiments/results/structure_density_not_shipped/length_shift_cpu.md``, section 8 of that
folder's README). Records of at most ``length_ref`` nt fold exactly as before.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's resm, not an installed one

from resm.backbone.load import safe_load
from resm.structure.decode import Decoding, DecodingError
from resm.structure.model import model_from_payload, save_structure_model


def parse_setting(text: str) -> tuple[str, object]:
    """``key=value`` with a JSON value (``0.25``, ``null``, ``true``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {text!r}: expected key=value")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        raise SystemExit(f"--set {text!r}: the value is not a number, true/false or null") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a structure_model.pt")
    ap.add_argument("--set", nargs="+", required=True, metavar="KEY=VALUE", help="decoding keys to set")
    ap.add_argument("--out", required=True, help="where to write the model")
    a = ap.parse_args()
    payload = safe_load(a.model)  # weights_only, like every model file resm reads
    old = dict(payload.get("decoding") or {})
    new = dict(old)
    for key, value in map(parse_setting, a.set):
        if key not in Decoding.__dataclass_fields__:
            raise SystemExit(f"--set {key}: not a decoding key (those are {', '.join(Decoding.__dataclass_fields__)})")
        new[key] = value
    try:
        payload["decoding"] = Decoding.from_dict(new).to_dict()  # checks every value
    except DecodingError as e:
        raise SystemExit(f"--set: {e}") from None
    model_from_payload(payload)  # still loads
    save_structure_model(payload, a.out)
    print(f"decoding {old} -> {payload['decoding']}; wrote {a.out}")


if __name__ == "__main__":
    main()
