"""Safe tensor-file loading: plain types and tensors load; missing, truncated and pickled files are one error."""

from __future__ import annotations

import re

import pytest
import torch

from facelab.errors import FacelabError
from facelab.utils.torch_io import load_tensors

RAN: list[str] = []


def _mark(text: str) -> str:
    RAN.append(text)
    return text


class _Payload:
    """Unpickling this calls ``_mark``: code a weights-only load must never run."""

    def __reduce__(self):
        return (_mark, ("pickled code ran",))


def test_a_good_file_loads_its_values(tmp_path):
    doc = {"format_version": 2, "name": "x", "w": torch.arange(6.0).view(2, 3), "hist": [1.5, 2.5],
           "nested": {"ids": torch.tensor([1, 2], dtype=torch.int64), "none": None}}
    torch.save(doc, tmp_path / "a.pt")
    got = load_tensors(tmp_path / "a.pt", "checkpoint", "retrain")
    assert got.keys() == doc.keys() and got["name"] == "x" and got["hist"] == [1.5, 2.5]
    assert torch.equal(got["w"], doc["w"]) and got["w"].device.type == "cpu"
    assert torch.equal(got["nested"]["ids"], doc["nested"]["ids"]) and got["nested"]["none"] is None


def test_a_missing_file(tmp_path):
    path = tmp_path / "none.pt"
    with pytest.raises(FacelabError, match=re.escape(f"no mask model at {path}; run `mask train`")):
        load_tensors(path, "mask model", "run `mask train`")


def test_a_pickled_object_is_refused_and_never_runs(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": _Payload()}, path)
    RAN.clear()
    with pytest.raises(FacelabError, match=re.escape(f"{path} is not a readable checkpoint (")) as info:
        load_tensors(path, "checkpoint", "delete it")
    assert RAN == [] and str(info.value).endswith("; delete it")


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_a_truncated_or_empty_file(tmp_path, keep):
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(FacelabError, match=re.escape(f"{path} is not a readable weights file (")):
        load_tensors(path, "weights file", "download it again")
