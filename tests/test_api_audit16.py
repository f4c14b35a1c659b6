"""The Python API as a first-time user meets it (README's Python API section): a lone
``(id, sequence)`` tuple, embeddings files whose arrays disagree with their index, structures
written from the API and read back, and the README naming every public name."""

import re

import numpy as np
import pytest

from tests.conftest import REPO

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


# ---------------------------------------------------------------- write_embeddings
@pytest.fixture(scope="module")
def embedded(tiny):
    import resm

    seqs = {"a": SEQ, "b/x": SEQ[:10]}
    return resm.embed_sequences(
        tiny, seqs, layers=[0, -1], include=["mean", "per_tok", "bos", "contacts"], device="cpu"
    )


def _spoiled(arrays):
    """Arrays that disagree with the index of ``embedded``, and the words naming the fault."""
    return {
        "no-arrays": ({}, "record 'a' of the index's ids has no arrays"),
        "stray": ({**arrays, "c/mean/2": arrays["a/mean/2"]}, "array 'c/mean/2' is of a record the index's ids"),
        "dropped": (
            {k: v for k, v in arrays.items() if k != "a/bos/2"},
            "array 'a/bos/2' is missing (index: layers [0, 2], include ['mean', 'per_tok', 'bos', 'contacts'])",
        ),
        "other-layer": (
            {**arrays, "a/mean/1": arrays["a/mean/2"]},
            "array 'a/mean/1' is not one its layers and include ask for",
        ),
        "per-tok-swapped": (
            {**arrays, "a/per_tok/2": arrays["b/x/per_tok/2"]},
            "array 'a/per_tok/2' has shape (10, 64), not (27, E) (index: 27 nt)",
        ),
        "contacts-swapped": (
            {**arrays, "b/x/contacts": arrays["a/contacts"]},
            "array 'b/x/contacts' has shape (27, 27), not (10, 10)",
        ),
        "mean-not-a-vector": (
            {**arrays, "a/mean/0": arrays["a/per_tok/0"]},
            "array 'a/mean/0' has shape (27, 64), not (E,)",
        ),
    }


@pytest.mark.parametrize(
    "fault",
    ["no-arrays", "stray", "dropped", "other-layer", "per-tok-swapped", "contacts-swapped", "mean-not-a-vector"],
)
@pytest.mark.parametrize("name", ["e.npz", "e.safetensors"])
def test_write_embeddings_refuses_arrays_the_index_does_not_describe(embedded, fault, name, tmp_path):
    """``write_embeddings`` wrote whatever arrays it was given beside the index: an index listing
    record 'a' over no arrays, a ``per_tok`` array of another record's length, were written and
    read back without a word (the file's index then lies about its arrays). They are one line
    naming the file and the array, and nothing is written."""
    import resm

    arrays, index = embedded
    bad, said = _spoiled(arrays)[fault]
    with pytest.raises(ValueError) as e:
        resm.write_embeddings(tmp_path / name, bad, index)
    assert str(e.value).startswith(f"{tmp_path / name}: {said}") and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_write_embeddings_writes_float32_as_the_layout_says(embedded, tmp_path):
    """The layout is float32 (README, :mod:`resm.embed`) and ``read_embeddings`` says it gives
    float32 arrays; float64 arrays were written, and read back, as float64."""
    import resm

    arrays, index = embedded
    wide = {k: v.astype(np.float64) for k, v in arrays.items()}
    for name in ("e.npz", "e.safetensors"):
        resm.write_embeddings(tmp_path / name, wide, index)
        back, back_index = resm.read_embeddings(tmp_path / name)
        assert back_index == index and sorted(back) == sorted(arrays)
        assert {v.dtype for v in back.values()} == {np.dtype(np.float32)}
        for k in arrays:
            np.testing.assert_array_equal(back[k], arrays[k])


# ---------------------------------------------------------------- structures out of the API
@pytest.mark.parametrize("fmt", ["dbn", "bpseq", "ct", "pairs"])
def test_api_structures_round_trip_and_match_resm_fold(predictor, fmt, tmp_path):
    """What the README says of the API's structures: written by ``write_structures`` in every
    format of ``resm fold`` and read back equal, and the same structure ``resm fold`` writes
    for the same input (lower case DNA included: upper-case RNA in both)."""
    from resm.structure.io import read_structures, write_structures
    from tests.conftest import resm_cli

    records = {"low_dna": SEQ.lower().replace("u", "t")}
    (folded,) = predictor.fold(records)
    write_structures(folded.structure, tmp_path / f"x.{fmt}")
    (back,) = read_structures(tmp_path / f"x.{fmt}")
    assert back == folded.structure if fmt != "ct" else np.array_equal(back.pairs, folded.pairs)
    fa = tmp_path / "x.fa"
    fa.write_text(f">low_dna\n{records['low_dna']}\n")
    resm_cli("fold", fa, "-o", tmp_path / f"cli.{fmt}", "--nogpu", "--threads", "1")
    (cli,) = read_structures(tmp_path / f"cli.{fmt}")
    assert np.array_equal(cli.pairs, folded.pairs) and cli.seq == folded.seq == SEQ


# ---------------------------------------------------------------- the README's list
def test_readme_names_every_public_name():
    """The README's Python API section names every name of ``resm.__all__`` as ``resm.NAME``
    (``load_backbone``, ``Predictor`` and ``Bundle`` were exported, with docstrings, and named
    nowhere in it); that every name it shows exists is tests/test_readme.py's."""
    import resm

    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    public = set(resm.__all__) - {"__version__"}
    named = set(re.findall(r"`resm\.([A-Za-z_]\w*)", section))
    assert public - named == set(), f"public names the README's Python API section does not name: {public - named}"


# ---------------------------------------------------------------- devices resm does not run on
@pytest.mark.parametrize("device", ["meta", "mps", "xpu"])
def test_a_device_other_than_the_cpu_or_cuda_is_refused_before_work(device, tiny, tmp_path):
    """``device="meta"`` was taken: a predictor on the meta device, whose first fold failed with
    torch's 'Tensor.item() cannot be called on meta tensors' after the priors were computed (and
    ``resm fold --device meta`` said it as unexpected, exit 1); ``mps`` and ``xpu`` failed where
    the model was moved ('PyTorch is not linked with support for mps devices'). Every entry
    refuses them as it refuses ``gpu``: one line naming the keyword or the flag, nothing written."""
    import torch

    import resm
    from resm.config import ConfigError
    from tests.conftest import resm_cli

    said = f"device: unknown device '{device}' (auto, cpu, cuda or cuda:N)"
    calls = [
        lambda: resm.load_predictor(device=device),
        lambda: resm.load_predictor(device=torch.device(device)),
        lambda: resm.load_backbone(tiny, device=device),
        lambda: resm.embed_sequences(tiny, [SEQ], device=device),
    ]
    for call in calls:
        with pytest.raises(ConfigError) as e:
            call()
        assert str(e.value) == said
    fa = tmp_path / "x.fa"
    fa.write_text(f">a\n{SEQ}\n")
    p = resm_cli("fold", fa, "-o", tmp_path / "x.dbn", "--device", device, check=False)
    assert p.returncode == 2 and p.stderr == (
        f"resm fold: error: argument --device: unknown device '{device}' (auto, cpu, cuda or cuda:N) "
        "(see resm fold --help)\n"
    )
    assert sorted(q.name for q in tmp_path.iterdir()) == ["x.fa"]


# ---------------------------------------------------------------- fold_one's name
@pytest.mark.parametrize(
    "name, error, said",
    [
        ("", "FoldError", "name: '' is empty"),
        ("a\nb", "FoldError", "name: 'a\\nb' holds the control character U+000A"),
        (None, "TypeError", "name: the id must be a str, got NoneType"),
        (1.5, "TypeError", "name: the id must be a str, got float"),
    ],
    ids=["empty", "newline", "none", "float"],
)
def test_fold_one_names_its_name_keyword(predictor, name, error, said):
    """``fold_one(seq, name="")`` said 'record 1 has an empty id' and ``name=None`` 'record None:
    the id must be a str': records of a call that holds none. The keyword is named, with its value."""
    with pytest.raises(Exception) as e:
        predictor.fold_one(SEQ, name=name)
    assert type(e.value).__name__ == error and str(e.value) == said
    assert predictor.fold_one(SEQ, name=7).name == "7"  # a row number, as fold's ids
