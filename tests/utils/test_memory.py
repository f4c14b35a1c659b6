"""The memory check before ``resm embed`` on a GPU, checked on CPU with the GPU's free memory
faked (this suite runs without a GPU)."""

import pytest
import torch

from resm.backbone.config import ESM2Config
from resm.backbone.esm2 import ESM2
from resm.embed import _require_memory
from resm.utils.memory import GIB, MemoryCheckError


@pytest.fixture
def net():
    return ESM2(ESM2Config(num_layers=1, embed_dim=16, attention_heads=2))


def test_embedding_on_a_gpu_is_held_against_the_gpus_free_memory(net, monkeypatch):
    """The weights and activations of ``resm embed --device cuda`` are in the GPU's memory:
    a job the machine's RAM could hold is refused when the GPU cannot (it used to run into a
    CUDA out-of-memory error), and a job the GPU holds is not refused for a small RAM."""
    free = {"gpu": 0}
    seen = []

    def mem_get_info(device=None):
        seen.append(torch.device(device))
        return free["gpu"], 80 * GIB

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setenv("RESM_AVAILABLE_MEMORY", str(64 * GIB))  # the machine's RAM
    free["gpu"] = int(0.3 * GIB)  # the estimate: 0.4 GiB (torch itself) and a little
    with pytest.raises(MemoryCheckError, match=r"on cuda:1 needs about .* 0\.3 GiB are available"):
        _require_memory(net, [50, 3000], 4096, False, "cuda:1")
    assert seen == [torch.device("cuda", 1)]
    _require_memory(net, [50, 3000], 4096, False, "cpu")  # 64 GiB of RAM hold it
    monkeypatch.setenv("RESM_AVAILABLE_MEMORY", str(int(0.3 * GIB)))
    free["gpu"] = 40 * GIB
    _require_memory(net, [50, 3000], 4096, False, torch.device("cuda", 0))  # the GPU holds it
    with pytest.raises(MemoryCheckError, match=r"\(the longest 3000 nt\) needs"):
        _require_memory(net, [50, 3000], 4096, False, "cpu")
