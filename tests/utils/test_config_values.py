"""Every config value is checked against its field's type and range before the config is built: one
FacelabError naming the field, the value and what is allowed; the CLI shows it as one line."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import typing

import pytest
from click.testing import CliRunner

from facelab.demo.pipeline import DemoConfig
from facelab.errors import FacelabError
from facelab.evaluate.report import EvaluateConfig
from facelab.extract.config import ExtractConfig
from facelab.masks.learner import MaskLearnConfig
from facelab.merge.config import MergeConfig, settings_from_dict
from facelab.models.amp import AMPArch
from facelab.models.quick96 import Quick96Arch
from facelab.models.saehd.config import SAEHDArch
from facelab.models.warp.model import WarpArch
from facelab.train.options import TrainOptions
from facelab.utils.config import build_config, load_config_file
from facelab.video.encode import EncodeSettings
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import WsolArch
from facelab.wsol.trainer import WsolTrainConfig

pytestmark = pytest.mark.fault

CLASSES = [ExtractConfig, TrainOptions, SAEHDArch, Quick96Arch, AMPArch, WarpArch, MergeConfig, MaskLearnConfig,
           WsolTrainConfig, WsolArch, LossWeights, EncodeSettings, EvaluateConfig, DemoConfig]


def _raises_naming(cls, name: str, value) -> str:
    with pytest.raises(FacelabError) as err:
        build_config(cls, {name: value})
    msg = str(err.value)
    assert name in msg and "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("cls, name, value", [
    (SAEHDArch, "resolution", 1000000016),
    (TrainOptions, "batch_size", float("inf")),  # what JSON's 1e400 parses to
    (TrainOptions, "lr", float("nan")),
    (TrainOptions, "batch_size", "four"),
    (TrainOptions, "lr", float("inf")),
    (TrainOptions, "batch_size", True),
    (TrainOptions, "batch_size", 10 ** 12),
    (TrainOptions, "optimizer", "sgd"),
    (TrainOptions, "random_warp", "yes"),
    (MergeConfig, "erode", 10 ** 9),
    (MergeConfig, "blur", 2.5),
    (ExtractConfig, "size", 10 ** 9),
    (ExtractConfig, "jpeg_quality", 0),
    (AMPArch, "ae_dims", 10 ** 7),
    (WsolTrainConfig, "weights", "heavy"),
])
def test_testers_cases_name_field_and_value(cls, name, value):
    msg = _raises_naming(cls, name, value)
    assert (str(value) if not isinstance(value, float) or math.isfinite(value) else "") in msg


def test_messages_say_the_range():
    msg = _raises_naming(SAEHDArch, "resolution", 1000000016)
    assert "1000000016" in msg and "16" in msg and "1024" in msg
    msg = _raises_naming(TrainOptions, "batch_size", "four")
    assert "'four'" in msg and "integer" in msg


def test_json_file_values(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('{"batch_size": 1e400, "lr": NaN}')
    with pytest.raises(FacelabError, match="batch_size"):
        build_config(TrainOptions, load_config_file(path))
    path.write_text('{"lr": NaN}')
    with pytest.raises(FacelabError, match="lr"):
        build_config(TrainOptions, load_config_file(path))


def test_good_values_still_pass_and_are_normalised():
    opts = build_config(TrainOptions, {"lr": 1, "batch_size": 4.0, "workers": 0})
    assert opts.lr == 1.0 and isinstance(opts.lr, float) and opts.batch_size == 4 and isinstance(opts.batch_size, int)
    assert build_config(SAEHDArch, {"resolution": 64, "archi": "df"}).resolution == 64
    assert build_config(ExtractConfig, {"reference": None}).reference is None
    assert build_config(WsolTrainConfig, {"weights": LossWeights(alpha=0.1)}).weights.alpha == 0.1
    for cls in CLASSES:
        build_config(cls)  # every default is inside its own range
        build_config(cls, {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)})


def test_merge_range_overrides_are_checked():
    with pytest.raises(FacelabError, match="erode"):
        settings_from_dict({"defaults": {}, "ranges": [{"frames": "1-3", "erode": float("nan")}]})
    with pytest.raises(FacelabError, match="blur"):
        settings_from_dict({"defaults": {}, "ranges": [{"frames": "1-3", "blur": "lots"}]})


def _bad_values(cls, f: dataclasses.Field, hint, rng: random.Random) -> list:
    """Values of the wrong type, non-finite numbers, and numbers outside the field's declared range."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, type(int | None)) and len(args) == 1 else hint
    nan, inf = float("nan"), float("inf")
    if base is bool:
        pool = ["yes", 2, 0.5, [True], "true"]
    elif base is int:
        pool = ["four", 1.5, nan, inf, -inf, True, [1], {"a": 1}]
    elif base is float:
        pool = ["x", nan, inf, -inf, False, [0.1], {}]
    elif base is str or typing.get_origin(base) is typing.Literal:
        pool = [5, 1.5, True, ["a"], {"b": 1}]
    else:  # a nested config
        pool = ["heavy", 3, [1]]
    lo_hi = f.metadata.get("range")
    if lo_hi is not None and base in (int, float):
        lo, hi = lo_hi
        pool += [v for v in (None if lo is None else lo - 1, None if hi is None else hi + 1,
                             None if hi is None else 10 ** 12) if v is not None]
    if typing.get_origin(base) is typing.Literal:
        pool.append("no-such-choice")
    return rng.sample(pool, min(4, len(pool)))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_random_bad_values_name_the_field(cls):
    rng = random.Random(f"bad-{cls.__name__}")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        for value in _bad_values(cls, f, hints[f.name], rng):
            with pytest.raises(FacelabError) as err:
                build_config(cls, {f.name: value})
            assert f.name in str(err.value), (f.name, value, str(err.value))


def _train_cli(ws, config_name: str, text: str):
    from facelab.cli.root import cli

    path = ws.root.parent / config_name
    path.write_text(text)
    return CliRunner().invoke(cli, ["train", "-w", str(ws.root), "--device", "cpu", "--workers", "0",
                                    "--config", str(path)], obj={})


@pytest.mark.parametrize("name, text, field", [
    ("arch.toml", "[arch]\nresolution = 1000000016\n", "resolution"),
    ("big.json", '{"batch_size": 1e400}', "batch_size"),
    ("nan.json", '{"lr": NaN}', "lr"),
    ("four.json", json.dumps({"batch_size": "four"}), "batch_size"),
])
def test_cli_bad_config_file_is_one_line(ws, name, text, field):
    res = _train_cli(ws, name, text)
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and field in lines[0], res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("name", ["detector", "landmarks", "device", "face_type"])
def test_choices_from_a_file_are_checked_like_the_flag(name):
    msg = _raises_naming(ExtractConfig, name, "no-such-choice")
    assert "'no-such-choice'" in msg and "one of" in msg
