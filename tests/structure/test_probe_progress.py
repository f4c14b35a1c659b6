"""``resm probe``'s long work (the attention features of every training structure, then a
pair map per validation structure) shows progress bars counting structures against their
total, on stderr, as resm fold's and resm embed's do."""

import re

from resm.backbone.load import init_model, save_fair_esm
from tests.conftest import resm_main

REF = """>s1
GGGGAAACCCCAUAGCGCGAAAGCGCU
((((...))))...((((...))))..
>s2
ACGGCAUUCGUGCCGUAAAGGGCUAAAGCCCA
.(((((....))))).....((((...)))).
>s3
GCGCUUCGGCGCAAAGGAUCCGAAAGGAUCC
((((....))))...((((.......)))).
"""


def test_resm_probe_counts_its_structures_against_their_total(tmp_path):
    save_fair_esm(init_model("tiny", seed=0), tmp_path / "tiny.pt")
    (tmp_path / "train.dbn").write_text(REF)
    (tmp_path / "val.dbn").write_text("\n".join(REF.splitlines()[:6]) + "\n")
    r = resm_main(
        "probe", tmp_path / "tiny.pt", tmp_path / "train.dbn", "--val", tmp_path / "val.dbn", "--out", tmp_path / "p.pt"
    )
    assert re.search(r"probe: attention features: +0%\|[^|]*\| 0/3 ", r.stderr), r.stderr
    assert re.search(r"probe: pair maps: +0%\|[^|]*\| 0/2 ", r.stderr), r.stderr
    assert "threshold" in r.stdout and "probe:" not in r.stdout  # the summary stays on stdout, the bars off it
