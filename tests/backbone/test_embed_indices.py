"""`resm embed` correct to the last index: per_tok has exactly one row per nucleotide (BOS and
EOS dropped), ``bos`` is BOS's state, ``mean`` averages exactly the nucleotides' states (not BOS,
EOS or padding) and ``contacts`` is L x L: each record's arrays, embedded among records of other
lengths (padding; the batches sorted by length; several records of one length), equal the
record run alone, to 1e-5. The file's index maps each id to its own arrays and length, in input
order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resm.alphabet import BOS, EOS, pad_batch
from resm.embed import Mapped, embed_records, read_embeddings
from resm.fasta import token_batches
from resm.mapping import get_scheme
from tests.conftest import random_backbone, resm_main

SCHEME = get_scheme("kdny")
ATOL = 1e-5
LENGTHS = [7, 3, 12, 7, 1, 12, 5, 7]  # unsorted, lengths repeated, one single nucleotide


def records(seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [(f"r{k}_{n}", "".join(rng.choice(list("ACGU"), n))) for k, n in enumerate(LENGTHS)]


@torch.no_grad()
def alone(model, seq: str, layers) -> dict:
    """One record run by itself: its token row is BOS, its nucleotides, EOS (no padding)."""
    toks = pad_batch([SCHEME.encode(seq)])
    assert toks[0, 0] == BOS and toks[0, -1] == EOS and toks.shape[1] == len(seq) + 2
    r = model(toks, repr_layers=layers, return_contacts=True, return_logits=False)
    return {"reps": {k: v[0] for k, v in r["representations"].items()}, "contacts": r["contacts"][0]}


def check_record(arrays: dict, rid: str, seq: str, ref: dict, layers) -> None:
    n = len(seq)
    for layer in layers:
        h = ref["reps"][layer]
        per_tok = arrays[f"{rid}/per_tok/{layer}"]
        assert per_tok.shape == (n, h.shape[-1])
        np.testing.assert_allclose(per_tok, h[1 : n + 1].numpy(), rtol=0, atol=ATOL)
        np.testing.assert_allclose(arrays[f"{rid}/bos/{layer}"], h[0].numpy(), rtol=0, atol=ATOL)
        np.testing.assert_allclose(arrays[f"{rid}/mean/{layer}"], h[1 : n + 1].mean(0).numpy(), rtol=0, atol=ATOL)
    assert arrays[f"{rid}/contacts"].shape == (n, n)
    np.testing.assert_allclose(arrays[f"{rid}/contacts"], ref["contacts"].numpy(), rtol=0, atol=ATOL)


@pytest.mark.parametrize("toks_per_batch", [1, 30, 4096])
def test_batched_records_equal_each_record_alone(toks_per_batch):
    """One record per batch (1), a few sorted by length per batch (30) and all in one padded
    batch (4096): every array of every record equals the record run alone."""
    model = random_backbone(8)
    recs = records()
    layers = [0, 1, 2]
    if toks_per_batch == 30:  # the sorted batching does mix lengths here (padding inside batches)
        batches = token_batches(LENGTHS, 30)
        assert any(len({LENGTHS[i] for i in b}) > 1 for b in batches) and len(batches) > 1
    mapped = [Mapped(rid, SCHEME.encode(seq)) for rid, seq in recs]
    arrays = embed_records(
        model, mapped, layers, ("mean", "per_tok", "bos", "contacts"), toks_per_batch, progress=False
    )
    assert len(arrays) == len(recs) * (3 * len(layers) + 1)
    for rid, seq in recs:
        check_record(arrays, rid, seq, alone(model, seq, layers), layers)


@pytest.mark.parametrize("shards", [[], ["--shard-size", 3]])
def test_embed_file_index_maps_each_id_to_its_arrays(tmp_path, shards):
    """`resm embed` (in process) on a FASTA of records of repeated and mixed lengths, whole and
    in shards of 3 records merged: the index lists the ids in input order with their lengths,
    and each id's arrays are its own."""
    from resm.structure.model import load_with_scheme

    ckpt = tmp_path / "tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "--scheme", "kdny", "--seed", "2", "--out", ckpt)
    recs = records(1)
    fa = tmp_path / "in.fa"
    fa.write_text("".join(f">{rid}\n{seq}\n" for rid, seq in recs))
    out = tmp_path / "emb.npz"
    resm_main(
        "embed", ckpt, fa, out, "--repr-layers", "0", "-1", "--include", "mean", "per_tok", "bos", "contacts",
        "--toks-per-batch", 30, *shards,
    )  # fmt: skip
    arrays, index = read_embeddings(out)
    assert index["ids"] == [rid for rid, _ in recs]
    assert index["lengths"] == LENGTHS
    loaded, _ = load_with_scheme(str(ckpt), "kdny")
    model = loaded.model.eval()
    layers = index["layers"]
    assert layers == [0, model.num_layers]
    for rid, seq in recs:
        check_record(arrays, rid, seq, alone(model, seq, layers), layers)
