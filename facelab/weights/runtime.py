"""onnxruntime sessions for weight files: providers by device, and signature checks with one-line refusals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from facelab.errors import FacelabError


@dataclass(frozen=True)
class Port:
    """One input or output of an ONNX graph: name, shape (ints, or None for a free dimension), element type."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str  # onnxruntime's type string, e.g. "tensor(float)"

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} ({dims}) {self.dtype.removeprefix('tensor(').rstrip(')')}"


def providers_for(device: str = "cpu") -> list[str]:
    """CUDA first when asked for and present in this onnxruntime build, CPU always."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in have:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def open_session(path: Path, device: str = "cpu", what: str = "model"):
    """An ``onnxruntime.InferenceSession`` of ``path``; on CPU it uses torch's thread count (one in the tests)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not str(device).startswith("cuda"):
        import torch

        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=providers_for(device))
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise FacelabError(f"{path} is not a readable ONNX {what} ({str(exc).splitlines()[0][:160]}); "
                           "fetch it again with `python main.py models fetch`") from exc


def ports(items: Sequence) -> list[Port]:
    return [Port(p.name, tuple(d if isinstance(d, int) and d > 0 else None for d in p.shape), p.type) for p in items]


def signature(session) -> tuple[list[Port], list[Port]]:
    return ports(session.get_inputs()), ports(session.get_outputs())


def refuse(path: Path, what: str, expected: str, session) -> FacelabError:
    """The one-line refusal of an ONNX file whose inputs or outputs are not those of a ``what``."""
    ins, outs = signature(session)
    article = "an" if what[0] in "aeiou" else "a"
    return FacelabError(f"{path} is not {article} {what}: expected {expected}; it has inputs "
                        f"{', '.join(map(str, ins)) or 'none'} and outputs {', '.join(map(str, outs)) or 'none'}")
