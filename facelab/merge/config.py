"""Merge settings: one frozen dataclass, plus per-frame-range overrides read from a config file.

Config file shape (JSON or TOML)::

    {"defaults": {"mode": "overlay", "color": "rct"},
     "ranges": [{"frames": "10-50", "erode": 20}, {"frames": "90", "mode": "seamless"}]}

A flat file (no ``defaults`` / ``ranges`` keys) is read as defaults. Precedence: dataclass defaults < file defaults
< command-line flags < the matching range (a range is the most specific setting). Frame numbers are the digits of
the frame's file stem (``000010.png`` is frame 10); frames with non-numeric stems use their 1-based position.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from facelab.errors import FacelabError
from facelab.utils.config import build_config, load_config_file

MODES = ("original", "overlay", "hist-match", "seamless", "seamless-hist-match", "raw-rgb", "raw-predict")
SHARPEN_MODES = ("none", "box", "gaussian")
OUTPUT_FORMATS = ("png", "jpg")
#: Settings that act over the whole run (tracks, batching, files): a frame range may not change them.
GLOBAL_KEYS = frozenset({"smooth", "smooth_window", "color_smooth", "batch", "workers", "output_format"})


@dataclass(frozen=True)
class MergeConfig:
    """Every merge setting. Mask sizes (erode, blur) are pixels at 4x the model resolution, as in DeepFaceLab."""

    mode: str = "overlay"
    mask_mode: str = "dst"  # see facelab.merge.masks.MASK_MODES; stored masks as "stored:<name>[*learned-prd...]"
    erode: int = 0  # >0 erode, <0 dilate (-400..400)
    blur: int = 64  # Gaussian kernel (0..400)
    face_scale: int = 0  # output face scale in percent (-50..50)
    offset_x: float = 0.0  # face shift in percent of the face size (+ = right in face axes)
    offset_y: float = 0.0  # (+ = down)
    color: str = "rct"  # colour transfer name (facelab.imageops.color.COLOR_TRANSFERS) or "none"
    masked_hist_match: bool = True
    hist_match_threshold: int = 255  # 0..255
    motion_blur: int = 0  # 0..100
    sharpen_mode: str = "none"  # none | box | gaussian
    sharpen_amount: int = 0  # -100..100; negative blurs
    denoise: int = 0  # frame denoise power 0..500
    bicubic_degrade: int = 0  # frame bicubic degrade power 0..100
    color_degrade: int = 0  # 256-colour degrade power 0..100
    smooth: bool = True  # smooth landmarks over each face's track
    smooth_window: int = 7  # frames (odd)
    color_smooth: int = 5  # frames in the window of the colour statistics (1 = off)
    batch: int = 8  # faces per model call
    workers: int = -1  # CPU worker processes; -1 = one per core, 0 = in the main process
    output_format: str = "png"

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("sharpen_mode", self.sharpen_mode, SHARPEN_MODES)
        _check_choice("output_format", self.output_format, OUTPUT_FORMATS)
        for name, lo, hi in (("erode", -400, 400), ("blur", 0, 400), ("face_scale", -50, 50),
                             ("hist_match_threshold", 0, 255), ("motion_blur", 0, 100), ("sharpen_amount", -100, 100),
                             ("denoise", 0, 500), ("bicubic_degrade", 0, 100), ("color_degrade", 0, 100),
                             ("offset_x", -100, 100), ("offset_y", -100, 100)):
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
        if self.smooth_window < 3 or self.smooth_window % 2 == 0:
            raise ValueError(f"smooth_window must be odd and >= 3, got {self.smooth_window}")
        if self.color_smooth < 1 or self.batch < 1 or self.workers < -1:
            raise ValueError("color_smooth must be >= 1, batch >= 1 and workers >= -1")
        from facelab.merge.masks import parse_mask_mode

        parse_mask_mode(self.mask_mode)
        check_color(self.color)

    @property
    def uses_color(self) -> bool:
        return self.color != "none"


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_color(name: str) -> None:
    """Raise :class:`FacelabError` when ``name`` is not ``none`` nor a registered colour transfer."""
    if name == "none":
        return
    from facelab.imageops.color import COLOR_TRANSFERS

    COLOR_TRANSFERS.get(name)


# ---------------------------------------------------------------------------------------------------------------
# frame ranges


@dataclass(frozen=True)
class FrameRange:
    """Inclusive frame numbers ``first..last`` and the settings that apply there."""

    first: int
    last: int
    overrides: Mapping[str, Any]

    def contains(self, number: int) -> bool:
        return self.first <= number <= self.last


def parse_frames(text: str | int, where: str = "config") -> tuple[int, int]:
    """``"10-50"`` -> (10, 50); ``"7"`` or 7 -> (7, 7)."""
    try:
        if isinstance(text, int):
            first = last = text
        elif "-" in str(text).strip().lstrip("-"):
            a, b = str(text).split("-", 1)
            first, last = int(a), int(b)
        else:
            first = last = int(str(text))
    except ValueError:
        raise FacelabError(f"{where}: frame range {text!r} is not N or N-M; write e.g. \"10-50\"") from None
    if first < 0 or last < first:
        raise FacelabError(f"{where}: frame range {text!r} must have 0 <= first <= last")
    return first, last


@dataclass(frozen=True)
class MergeSettings:
    """The run's base :class:`MergeConfig` and its frame-range overrides."""

    base: MergeConfig = MergeConfig()
    ranges: tuple[FrameRange, ...] = ()

    def for_frame(self, number: int) -> MergeConfig:
        """The config of frame ``number``: later ranges win over earlier ones."""
        overrides: dict[str, Any] = {}
        for rng in self.ranges:
            if rng.contains(number):
                overrides.update(rng.overrides)
        if not overrides:
            return self.base
        try:
            return replace(self.base, **overrides)
        except (TypeError, ValueError) as exc:
            raise FacelabError(f"invalid merge range override for frame {number}: {exc}") from exc


def settings_from_file(path: str | Path | None, flags: Mapping[str, Any] | None = None) -> MergeSettings:
    """Build :class:`MergeSettings` from a config file (may be None) and CLI flags (None values ignored)."""
    data = load_config_file(path)
    where = str(path) if path is not None else "config"
    return settings_from_dict(data, flags, where)


def settings_from_dict(data: Mapping[str, Any], flags: Mapping[str, Any] | None = None,
                       where: str = "config") -> MergeSettings:
    """As :func:`settings_from_file`, from an already parsed mapping."""
    if "defaults" in data or "ranges" in data:
        extra = sorted(set(data) - {"defaults", "ranges"})
        if extra:
            raise FacelabError(f"{where}: unknown top-level key(s) {', '.join(extra)}; use defaults and ranges")
        defaults = data.get("defaults") or {}
        raw_ranges = data.get("ranges") or []
    else:
        defaults, raw_ranges = data, []
    base = build_config(MergeConfig, defaults, flags, source=f"merge option in {where}")
    if not isinstance(raw_ranges, list):
        raise FacelabError(f"{where}: ranges must be a list of objects with a \"frames\" key")
    return MergeSettings(base, tuple(_parse_range(r, base, where) for r in raw_ranges))


def _parse_range(raw: Any, base: MergeConfig, where: str) -> FrameRange:
    if not isinstance(raw, dict) or "frames" not in raw:
        raise FacelabError(f"{where}: each range needs a \"frames\" key, e.g. {{\"frames\": \"10-50\", \"erode\": 5}}")
    first, last = parse_frames(raw["frames"], where)
    overrides = {k: v for k, v in raw.items() if k != "frames"}
    names = {f.name for f in dataclasses.fields(MergeConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise FacelabError(f"{where}: unknown merge option(s) {', '.join(unknown)} in range {raw['frames']!r}")
    fixed = sorted(set(overrides) & GLOBAL_KEYS)
    if fixed:
        raise FacelabError(f"{where}: {', '.join(fixed)} act on the whole run; set them in defaults, not a range")
    try:
        replace(base, **overrides)  # validates the combination
    except (TypeError, ValueError) as exc:
        raise FacelabError(f"{where}: range {raw['frames']!r}: {exc}") from exc
    return FrameRange(first, last, overrides)
