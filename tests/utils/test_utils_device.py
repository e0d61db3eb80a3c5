"""Device selection: auto picks what is present; an absent accelerator asked for by name is a clear error."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import FacelabError
from facelab.utils.device import select_device


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_and_cpu_on_a_cpu_only_machine(cpu_only):
    assert select_device() == torch.device("cpu")
    assert select_device("auto") == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name,flag", [("cuda", "cuda"), ("cuda:1", "cuda"), ("mps", "mps")])
def test_an_absent_accelerator_is_an_error_not_a_fallback(cpu_only, name, flag):
    with pytest.raises(FacelabError, match=f"--device {flag} was asked for but .* use --device cpu or auto"):
        select_device(name)


def test_auto_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")
    assert select_device("cuda:1") == torch.device("cuda", 1)


def test_unknown_device_name(cpu_only):
    with pytest.raises(FacelabError, match="unknown device 'tpu'; use one of auto, cpu, cuda, mps"):
        select_device("tpu")
