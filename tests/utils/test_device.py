"""Where a process runs under a launcher, checked on CPU with CUDA faked (this suite runs
without a GPU)."""

import pytest
import torch

from resm.utils.device import use_device


@pytest.fixture
def two_gpus(monkeypatch):
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(torch.device(d)))
    return current


def test_each_launched_process_makes_its_own_gpu_current(two_gpus, monkeypatch):
    """``resm fold/embed --device auto|cuda`` under torchrun: process LOCAL_RANK=1 runs on
    cuda:1 and makes it its current device (it stayed on GPU 0, where every process's implicit
    CUDA work then went)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert use_device("auto") == use_device("cuda") == "cuda:1"
    assert two_gpus == [torch.device("cuda", 1)] * 2
    assert use_device("cuda:0") == "cuda:0" and two_gpus[-1] == torch.device("cuda", 0)
    assert use_device("cpu") == "cpu" and len(two_gpus) == 3  # the CPU sets nothing


def test_the_command_line_resolves_its_device_through_use_device(two_gpus, monkeypatch):
    import argparse

    from resm import cli

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    a = argparse.Namespace(device="auto")
    cli._resolve_device(a)
    assert a.device == "cuda:1" and two_gpus == [torch.device("cuda", 1)]
