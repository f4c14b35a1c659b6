"""The Python API as a first-time user meets it (README's Python API section): a lone
``(id, sequence)`` tuple."""

import pytest

SEQ = "GGGGAAACCCCAUAGCGCGAAAGCGCU"


@pytest.fixture(scope="module")
def predictor():
    import resm

    return resm.load_predictor(device="cpu", threads=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from resm.backbone.load import init_model, save_fair_esm

    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    save_fair_esm(init_model("tiny", seed=0), path)
    return path


# ---------------------------------------------------------------- a lone (id, sequence) tuple
def test_fold_refuses_a_lone_id_sequence_tuple(predictor):
    """``predictor.fold(("x", SEQ))`` was iterated as two bare sequences: the id "x" was folded
    as a one-base sequence ``seq_1`` (an unknown base) beside ``seq_2``, exit code 0. A tuple of
    two texts is ambiguous (one pair, or two sequences), so it is refused saying both ways."""
    with pytest.raises(TypeError) as e:
        list(predictor.fold(("trna", SEQ)))
    said = str(e.value)
    assert said == (
        "records: one tuple of two texts reads as one (id, sequence) pair or as two sequences; "
        "give a list: [(id, sequence)] for one record, [sequence, sequence] for two"
    )
    # the unambiguous forms still fold, and agree
    (one,) = predictor.fold([("trna", SEQ)])
    assert one.name == "trna" and one.dotbracket == predictor.fold_one(SEQ).dotbracket
    assert [f.name for f in predictor.fold((SEQ, SEQ[:20], SEQ[:15]))] == ["seq_1", "seq_2", "seq_3"]
    assert [f.name for f in predictor.fold([SEQ, SEQ[:20]])] == ["seq_1", "seq_2"]
    assert [f.name for f in predictor.fold((("a", SEQ), ("b", SEQ[:20])))] == ["a", "b"]


def test_embed_sequences_refuses_a_lone_id_sequence_tuple(tiny):
    """``embed_sequences(model, ("a", SEQ))`` embedded the id "a" as a sequence named ``seq_1``."""
    import resm

    with pytest.raises(TypeError, match=r"^sequences: one tuple of two texts reads as one \(id, sequence\) pair "):
        resm.embed_sequences(tiny, ("a", SEQ), device="cpu")
    _, index = resm.embed_sequences(tiny, [("a", SEQ)], device="cpu")
    assert index["ids"] == ["a"]
