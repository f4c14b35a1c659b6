"""Usability leftovers of the audits: what a user meets when an argument, a stream or a resumed
run is not quite what the happy path expects."""

from __future__ import annotations

import pytest

from tests.conftest import resm_main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The smallest ESM-2 resm writes (init-checkpoint --arch tiny), fair-esm format."""
    path = tmp_path_factory.mktemp("tiny") / "esm2_tiny.pt"
    resm_main("init-checkpoint", "--arch", "tiny", "-o", path)
    return path


def test_a_layer_that_is_no_integer_is_named_as_the_other_arguments_are(tiny):
    """`embed_sequences(..., layers=["x"])` said 'layers must be integers', without the
    'layers: ' prefix every other argument error of the API starts with."""
    import resm

    with pytest.raises(TypeError) as e:
        resm.embed_sequences(tiny, {"a": "ACGU"}, layers=["x"], device="cpu")
    assert str(e.value) == "layers: each layer must be an integer, got 'x'"
