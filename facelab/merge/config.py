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
from facelab.merge.blend import MERGE_MODES
from facelab.merge.masks import MASK_MODES
from facelab.utils.config import build_config, check_values, load_config_file, setting
from facelab.utils.workers import workers_field

MODES = tuple(MERGE_MODES.names())
SHARPEN_MODES = ("none", "box", "gaussian")
OUTPUT_FORMATS = ("png", "jpg")
#: Settings that act over the whole run (tracks, batching, files): a frame range may not change them.
GLOBAL_KEYS = frozenset({"smooth", "smooth_window", "color_smooth", "batch", "workers", "output_format", "enhancer",
                         "enhancer_blend"})


def color_choices() -> list[str]:
    """``none`` and every registered colour transfer (the registry is imported when asked)."""
    from facelab.imageops.color import COLOR_TRANSFERS

    return ["none", *COLOR_TRANSFERS.names()]


def color_stats_choices() -> list[str]:
    """How a mask enters the colour statistics (:data:`facelab.imageops.color.MASK_STATS`)."""
    from facelab.imageops.color import MASK_STATS

    return list(MASK_STATS)


@dataclass(frozen=True)
class MergeConfig:
    """Every merge setting. Mask sizes (erode, blur) are pixels at 4x the model resolution, as in DeepFaceLab.

    ``range`` metadata bounds both the flag and a value from a config file.
    """

    mode: str = setting("overlay", "Merge mode.", choices=MERGE_MODES.names)
    mask_mode: str = setting("dst", "Mask: " + " | ".join(MASK_MODES.names()).replace("NAME", "<name>") + ".")
    erode: int = setting(0, "Erode (>0) / dilate (<0) the mask, pixels at 4x model resolution.", range=(-400, 400))
    blur: int = setting(64, "Mask blur, pixels at 4x model resolution.", range=(0, 400))
    face_scale: int = setting(0, "Output face scale, percent.", range=(-50, 50))
    offset_x: float = setting(0.0, "Face shift right, percent of the face size.", range=(-100, 100))
    offset_y: float = setting(0.0, "Face shift down, percent of the face size.", range=(-100, 100))
    color: str = setting("rct", "Colour transfer.", choices=color_choices)
    color_stats: str = setting(
        "inside", "Masked colour statistics (rct, the -m transfers, masked hist-match): inside = over the pixels "
        "of the working mask > 0.5 only; zeros = over the eroded/blurred mask > 0, pixels outside it counted as "
        "zeros (DeepFaceLab; with a blurred mask its statistics take in background).",
        choices=color_stats_choices)
    masked_hist_match: bool = setting(
        True, "hist-match mode: match inside the mask only (seamless-hist-match matches whole crops).")
    hist_match_threshold: int = setting(255, "hist-match threshold.", range=(0, 255))
    motion_blur: int = setting(0, "Motion blur power.", range=(0, 100))
    sharpen_mode: str = setting("none", "Sharpening filter.", choices=SHARPEN_MODES, flag="sharpen")
    sharpen_amount: int = setting(
        0, "Sharpening amount, as DeepFaceLab: box adds amount x (face - 3x3 blur), gaussian half that; negative "
        "blurs (one 5x5 median per 10).", range=(-100, 100))
    denoise: int = setting(
        0, "Frame denoise power: 5x5 median passes at power, power-10, ... (full at 100 and above), as DeepFaceLab.",
        range=(0, 500))
    bicubic_degrade: int = setting(0, "Frame bicubic degrade power.", range=(0, 100))
    color_degrade: int = setting(0, "256-colour degrade power.", range=(0, 100))
    smooth: bool = setting(True, "Smooth landmarks over each face's track.")
    smooth_window: int = setting(7, "Landmark smoothing window in frames, odd.", range=(3, 99))
    color_smooth: int = setting(5, "Colour statistics window in frames; 1 = off.", range=(1, 99))
    batch: int = setting(8, "Faces per model call.", range=(1, 1024))
    workers: int = workers_field("Frame-rendering processes beside the model")
    output_format: str = setting("png", "Merged frame format.", choices=OUTPUT_FORMATS)
    enhancer: str = setting(
        "none", "Face enhancer run on each predicted face before colour transfer: none, gfpgan_1.4, codeformer, "
        "gpen_bfr_512 (see `models list`) or an .onnx file.")
    enhancer_blend: int = setting(80, "Enhanced face over the prediction, percent.", range=(0, 100))

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("sharpen_mode", self.sharpen_mode, SHARPEN_MODES)
        _check_choice("output_format", self.output_format, OUTPUT_FORMATS)
        for f in dataclasses.fields(self):
            if "range" in f.metadata:
                lo, hi = f.metadata["range"]
                value = getattr(self, f.name)
                if not lo <= value <= hi:
                    raise ValueError(f"{f.name} must be in [{lo}, {hi}], got {value}")
        if self.smooth_window % 2 == 0:
            raise ValueError(f"smooth_window must be odd and >= 3, got {self.smooth_window}")
        from facelab.merge.masks import parse_mask_mode

        parse_mask_mode(self.mask_mode)
        check_color(self.color)
        _check_choice("color_stats", self.color_stats, color_stats_choices())

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
    overrides = check_values(MergeConfig, overrides, f"merge option in {where}, range {raw['frames']!r}")
    try:
        replace(base, **overrides)  # validates the combination
    except (TypeError, ValueError) as exc:
        raise FacelabError(f"{where}: range {raw['frames']!r}: {exc}") from exc
    return FrameRange(first, last, overrides)
