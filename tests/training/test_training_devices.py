"""One device picker for the engine and the trainers (nodeforge.devices): CUDA, then MPS, then CPU."""
from __future__ import annotations

import pytest
import torch

from nodeforge import devices


@pytest.fixture
def machine(monkeypatch):
    """Pretend which accelerators torch sees; the picker's cache is emptied before and after."""
    def have(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        devices.resolve_device.cache_clear()

    yield have
    devices.resolve_device.cache_clear()


def test_auto_picks_cuda_then_mps_then_cpu_for_training_too(machine):
    machine(cuda=True, mps=True)
    assert devices.torch_device("auto") == torch.device("cuda")
    machine(cuda=False, mps=True)
    assert devices.torch_device("auto") == torch.device("mps")     # the trainers never picked MPS before
    machine(cuda=False, mps=False)
    assert devices.torch_device() == torch.device("cpu") and devices.torch_device(" CPU ") == torch.device("cpu")


def test_a_device_that_is_not_there_or_misspelt_says_what_to_use(machine):
    machine(cuda=False, mps=False)
    with pytest.raises(ValueError, match="'cuda' is not available here.*--device cpu"):
        devices.torch_device("cuda:1")
    with pytest.raises(ValueError, match="did you mean 'cuda'"):
        devices.torch_device("gpu")


def test_train_lora_names_a_missing_device_in_one_line(machine, tmp_path):
    from nodeforge.training import lora

    machine(cuda=False, mps=False)
    with pytest.raises(SystemExit, match="^error: train-lora: device 'mps' is not available here"):
        lora.main([str(tmp_path), "--base", str(tmp_path), "--out", str(tmp_path / "x.safetensors"), "--device", "mps"])
