"""The head registry's builder for saved weights."""

import subprocess
import sys

import pytest

from resm.heads import HEADS, build_for_weights


def test_a_head_is_built_for_its_weights_without_torch_dynamo():
    # the shape sketch on torch's meta device skips the weights' initial fills: an
    # nn.Embedding's normal_ on a meta tensor would import torch._dynamo (seconds of every
    # `resm fold`'s start-up)
    code = (
        "import sys\n"
        "from resm.heads import HEADS, build_for_weights\n"
        "head, _ = build_for_weights(HEADS['pairs'], {}, 16, {})\n"
        "assert head.type_embed.weight.device.type == 'cpu' and head.type_embed.weight.abs().sum() > 0\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_config_whose_sizes_the_weights_do_not_hold_is_refused_before_allocation():
    head, _ = build_for_weights(HEADS["pairs"], {"pair_width": 8}, 16, {})
    state = head.state_dict()
    state["type_embed.weight"] = state["type_embed.weight"][:, :4]
    with pytest.raises(ValueError, match=r"its config gives type_embed.weight the shape \(6, 8\)"):
        build_for_weights(HEADS["pairs"], {"pair_width": 8}, 16, state)
