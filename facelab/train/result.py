"""What a training run reports (:class:`TrainResult`) and the architecture check of a resumed model, shared by the
training loop and the indexing of training-free models."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelab.errors import FacelabError


@dataclass(frozen=True)
class TrainResult:
    """What a run did."""

    model_dir: Path
    created: bool
    start_iteration: int
    iteration: int
    seconds: float
    ms_per_iter: float
    src_loss: float  # mean over the last (up to 100) good steps
    dst_loss: float
    stopped_by: str  # target_iter | max_minutes | interrupted | should_stop | stopped_by_other_rank
    skipped_steps: int
    rollbacks: int
    saves: int


def check_arch(model_type: str, saved: dict[str, Any], overrides: dict[str, Any], model_dir: Path) -> None:
    """Error when an explicit architecture flag conflicts with the architecture a model was created with."""
    from facelab.models import arch_class

    cls = arch_class(model_type)
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        base = cls(**{k: v for k, v in saved.items() if k in names})
    except (TypeError, ValueError) as exc:
        raise FacelabError(f"architecture stored in {model_dir} is invalid ({exc}); train under a new --name") from exc
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in names:
            raise FacelabError(f"--{key.replace('_', '-')} is not an option of {model_type} models; drop it")
        try:
            wanted = getattr(dataclasses.replace(base, **{key: value}), key)
        except (TypeError, ValueError) as exc:
            raise FacelabError(f"invalid --{key.replace('_', '-')} {value!r}: {exc}") from exc
        if wanted != getattr(base, key):
            raise FacelabError(
                f"--{key.replace('_', '-')} {value} conflicts with the model in {model_dir}, created with "
                f"{key}={getattr(base, key)} (architecture is fixed at creation); drop the flag or use a new --name")
