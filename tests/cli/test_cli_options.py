"""Every config flag is made from one dataclass field, and the commands hand their stage the exact config.

The mapping tests fail when a field is added without a flag or a flag without a field; the recorder tests patch
each command's stage function (mkdocs style) and check the config it receives for defaults < file < flags.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from facelab.align.geometry import FACE_TYPE_NAMES, canonical_face_type
from facelab.cli.options import config_options, field_help, flag_specs, help_text, is_flag_field, resolve_choices
from facelab.cli.root import cli
from facelab.cli.train import ARCH_LABELS
from facelab.extract import ExtractConfig
from facelab.masks.learner import MaskLearnConfig
from facelab.merge.config import FrameRange, MergeConfig, MergeSettings
from facelab.train.options import CtMode, TrainOptions
from facelab.utils.workers import WORKERS_MEANING
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import WsolArch
from facelab.wsol.trainer import WsolTrainConfig

_MERGE_OTHER = {"workspace", "config_file", "device", "name", "model_dir", "frames_dir", "aligned_dir"}
#: command path -> (the config dataclasses its flags set, the parameters that are not config fields)
COMMANDS: dict[tuple[str, ...], tuple[tuple[type, ...], set[str]]] = {
    ("extract",): ((ExtractConfig,), {"target", "workspace", "side", "input_dir", "output_dir", "config_file",
                                      "force", "keep_going"}),
    ("merge",): ((MergeConfig,), _MERGE_OTHER | {"force", "keep_going", "merged_dir", "mask_dir"}),
    ("merge", "preview"): ((MergeConfig,), _MERGE_OTHER | {"frames_text", "varies", "out_path", "cell_width"}),
    ("mask", "train"): ((MaskLearnConfig,), {"workspace", "side", "occluded_list", "device", "keep_going"}),
    ("wsol", "train"): ((WsolArch, WsolTrainConfig, LossWeights), {"data", "out", "pretrained", "config_file",
                                                                   "device", "force"}),
    ("train",): ((*ARCH_LABELS, TrainOptions), {"model_type", "name", "workspace", "device", "config_file",
                                                "src_dir", "dst_dir", "pretraining_dir", "pretrained",
                                                "no_preview", "tensorboard"}),
}
IDS = [" ".join(path) for path in COMMANDS]


def _command(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = cli
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return cmd


def _options(path: tuple[str, ...]) -> dict[str, click.Option]:
    return {p.name: p for p in _command(path).params if isinstance(p, click.Option) and p.name != "help"}


def _fields(classes: tuple[type, ...]) -> dict[str, list[dataclasses.Field]]:
    out: dict[str, list[dataclasses.Field]] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            out.setdefault(f.name, []).append(f)
    return out


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_every_config_flag_is_one_field_with_its_help_and_no_default(path):
    classes, other = COMMANDS[path]
    fields = _fields(classes)
    params = [p for p in _command(path).params if p.name != "help"]
    assert [n for n, c in Counter(p.name for p in params).items() if c > 1] == []  # one flag per name
    config_flags = {name: opt for name, opt in _options(path).items() if name not in other}
    for name, opt in config_flags.items():
        assert name in fields, f"{' '.join(path)} --{name}: a flag without a config field"
        f = fields[name][0]
        assert is_flag_field(f), f"{name} is marked cli=False but has a flag"
        assert opt.default is None, f"--{name} has a default; it would override the config file"
        assert opt.help.startswith(help_text(f)) and help_text(f), name
        flag = f.metadata.get("flag", name.replace("_", "-"))
        assert opt.opts == [f"--{flag}"]
        if isinstance(f.default, bool):
            assert opt.secondary_opts == [f"--no-{flag}"]
        if "choices" in f.metadata:
            assert list(opt.type.choices) == [str(c) for c in resolve_choices(f.metadata["choices"])]


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_every_field_has_a_flag(path):
    classes, other = COMMANDS[path]
    options = _options(path)
    for name, fs in _fields(classes).items():
        if is_flag_field(fs[0]):
            assert name in options and name not in other, f"{' '.join(path)}: field {name} has no flag"
        else:
            assert name not in options


def test_help_shows_the_field_default_or_each_model_default():
    opts = _options(("merge",))
    assert opts["batch"].help == "Faces per model call. [default: 8]"
    assert opts["smooth"].help == "Smooth landmarks over each face's track. [default: on]"
    train = _options(("train",))
    assert train["resolution"].help == "Face resolution in pixels. Fixed at creation. [default: saehd 128, " \
                                       "quick96 96, amp 224, warp 256]"
    assert train["inter_dims"].help.endswith("[default: amp 1024]")
    assert train["lr"].help == "Learning rate. [default: 5e-05]"


def test_fields_shared_by_arch_classes_share_their_help_and_type():
    """The train flag of a shared arch field shows the first class's help: it must be true for every model."""
    for name, fs in _fields(tuple(ARCH_LABELS)).items():
        assert len({help_text(f) for f in fs}) == 1, name
        assert len({f.type for f in fs}) == 1, name


def test_choices_come_from_the_registries():
    from facelab.detect import DETECTORS
    from facelab.imageops.color import COLOR_TRANSFERS
    from facelab.landmarks import LANDMARKS
    from facelab.merge.blend import MERGE_MODES
    from facelab.models import MODELS
    from facelab.wsol.models import BACKBONES

    merge = _options(("merge",))
    assert list(merge["color"].type.choices) == ["none", *COLOR_TRANSFERS.names()]
    assert list(merge["mode"].type.choices) == MERGE_MODES.names()
    extract = _options(("extract",))
    assert list(extract["detector"].type.choices) == DETECTORS.names()
    assert list(extract["landmarks"].type.choices) == LANDMARKS.names()
    backbones = [n for r in BACKBONES.values() for n in r.names()]
    assert list(_options(("wsol", "train"))["backbone"].type.choices) == backbones
    assert list(ARCH_LABELS.values()) == MODELS.names()  # every model type's arch flags are there
    assert set(CtMode.__args__) - {"none"} <= set(COLOR_TRANSFERS.names())  # training's subset of the registry


def test_every_face_type_flag_takes_every_alias():
    assert len(FACE_TYPE_NAMES) == 16 and {canonical_face_type(n) for n in FACE_TYPE_NAMES} == {
        "half", "mid-full", "full", "whole_face", "head"}
    for path in (("extract",), ("train",)):
        assert list(_options(path)["face_type"].type.choices) == list(FACE_TYPE_NAMES)


def test_workers_means_the_same_in_every_stage():
    for path in (("extract",), ("merge",), ("train",)):
        opt = _options(path)["workers"]
        assert WORKERS_MEANING in opt.help and "[default: -1]" in opt.help
        assert (opt.type.min, opt.type.max) == (-1, 256)


@dataclass(frozen=True)
class _Toy:
    count: int = dataclasses.field(default=8, metadata={"help": "Items.", "range": (1, 9)})
    fast: bool = dataclasses.field(default=False, metadata={"help": "Go fast."})
    kind: Literal["a", "b"] = dataclasses.field(default="a", metadata={"help": "Kind."})
    name: str = dataclasses.field(default="x", metadata={"help": "Name.", "choices": lambda: ("x", "y"),
                                                           "flag": "label"})
    path: str | None = dataclasses.field(default=None, metadata={"help": "A file.", "path": True})
    hidden: int = dataclasses.field(default=0, metadata={"cli": False})


def test_flag_specs_of_a_toy_config():
    specs = {s.name: s for s in flag_specs(_Toy)}
    assert list(specs) == ["count", "fast", "kind", "name", "path"]
    assert specs["count"].help == "Items. [default: 8]"
    assert (specs["count"].click_type().min, specs["count"].click_type().max) == (1, 9)
    assert specs["fast"].is_bool and specs["fast"].help == "Go fast. [default: off]"
    assert list(specs["kind"].click_type().choices) == ["a", "b"]
    assert specs["name"].flag == "label" and list(specs["name"].click_type().choices) == ["x", "y"]
    assert specs["path"].help == "A file." and isinstance(specs["path"].click_type(), click.Path)
    bare = dataclasses.fields(dataclass(type("Bare", (), {"__annotations__": {"n": int}, "n": 1})))[0]
    assert field_help(bare) == "[default: 1]"  # still a flag; the mapping tests above ask for its help

    @click.command()
    @config_options(_Toy)
    def cmd(**kw):
        click.echo(json.dumps(kw, sort_keys=True))

    res = CliRunner().invoke(cmd, ["--count", "3", "--fast", "--label", "y"])
    assert json.loads(res.output) == {"count": 3, "fast": True, "kind": None, "name": "y", "path": None}
    assert CliRunner().invoke(cmd, ["--count", "10"]).exit_code == 2  # the range is the flag's too


# --- the commands hand their stage the exact config ---------------------------------------------------------------

class Recorder:
    """Stands in for a stage function: records its arguments and returns ``result``."""

    def __init__(self, result: object) -> None:
        self.result = result
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result


def _invoke(*args: str):
    res = CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def _summary() -> SimpleNamespace:
    return SimpleNamespace(summary=lambda: {"frames": 0}, failures=())


def test_extract_hands_the_stage_defaults_under_file_under_flags(monkeypatch, tmp_path):
    rec = Recorder(_summary())
    monkeypatch.setattr("facelab.cli.extract.extract_faces", rec)
    frames = tmp_path / "frames"
    cfg = tmp_path / "extract.json"
    cfg.write_text(json.dumps({"extract": {"size": 64, "jpeg_quality": 80, "debug": True, "rotations": True}}))
    _invoke("extract", "--input", str(frames), "--config", str(cfg), "--size", "96", "--workers", "0",
            "--face-type", "full_face", "--no-rotations")
    (args, kwargs), = rec.calls
    assert args == (frames, frames / "aligned", ExtractConfig(size=96, jpeg_quality=80, debug=True, workers=0,
                                                               face_type="full", rotations=False), args[3])
    assert kwargs == {"source_root": tmp_path, "force": False}


def test_merge_hands_the_stage_defaults_under_file_under_flags(monkeypatch, ws, tmp_path):
    rec = Recorder(_summary())
    monkeypatch.setattr("facelab.merge.stage.merge_frames", rec)
    cfg = tmp_path / "merge.json"
    cfg.write_text(json.dumps({"defaults": {"erode": 10, "blur": 20, "color": "mkl"},
                               "ranges": [{"frames": "3", "mode": "original"}]}))
    _invoke("merge", "-w", str(ws.root), "--model-dir", str(tmp_path / "m"), "--device", "cpu", "--config", str(cfg),
            "--erode", "4", "--no-smooth", "--sharpen", "box", "--workers", "0")
    (args, kwargs), = rec.calls
    assert args[1] == tmp_path / "m" and str(args[3]) == "cpu"
    assert args[2] == MergeSettings(MergeConfig(erode=4, blur=20, color="mkl", smooth=False, sharpen_mode="box",
                                                workers=0), (FrameRange(3, 3, {"mode": "original"}),))
    assert kwargs["force"] is False and kwargs["predictor"] is None


def test_train_hands_the_loop_options_and_arch_overrides(monkeypatch, tmp_path):
    result = SimpleNamespace(model_dir=tmp_path, stopped_by="target_iter", start_iteration=0, iteration=5,
                             seconds=1.0, ms_per_iter=1.0, src_loss=0.1, dst_loss=0.1, skipped_steps=0, rollbacks=0,
                             saves=1)
    rec = Recorder(result)
    monkeypatch.setattr("facelab.train.loop.train", rec)
    monkeypatch.setattr("facelab.utils.runtime.keep_freed_memory", lambda: False)
    cfg = tmp_path / "run.toml"
    cfg.write_text('[train]\nbatch_size = 3\nlr = 0.0002\nrandom_warp = true\n[arch]\nae_dims = 99\nresolution = 64\n')
    _invoke("train", "--model", "saehd", "--name", "m", "-w", str(tmp_path / "ws"), "--device", "cpu", "--config",
            str(cfg), "--ae-dims", "16", "--face-type", "wf", "--target-iter", "5", "--no-random-warp",
            "--workers", "0")
    (args, kwargs), = rec.calls
    assert args[1:5] == ("m", "saehd", {"ae_dims": 16, "resolution": 64, "face_type": "wf"},
                         TrainOptions(batch_size=3, lr=2e-4, random_warp=False, target_iter=5, workers=0))


def test_train_hands_the_loop_the_pretraining_faces_and_pretrained_model(monkeypatch, tmp_path):
    rec = Recorder(SimpleNamespace(model_dir=tmp_path, stopped_by="target_iter", start_iteration=0, iteration=1,
                                   seconds=1.0, ms_per_iter=1.0, src_loss=0.1, dst_loss=0.1, skipped_steps=0,
                                   rollbacks=0, saves=1))
    monkeypatch.setattr("facelab.train.loop.train", rec)
    monkeypatch.setattr("facelab.utils.runtime.keep_freed_memory", lambda: False)
    (tmp_path / "pre_model").mkdir()
    _invoke("train", "--model", "saehd", "--name", "m", "-w", str(tmp_path / "ws"), "--device", "cpu",
            "--pretrain", "--pretraining-data-dir", str(tmp_path / "faces"), "--pretrained-model",
            str(tmp_path / "pre_model"), "--target-iter", "1")
    (args, kwargs), = rec.calls
    assert args[4] == TrainOptions(pretrain=True, target_iter=1)
    assert kwargs["pretraining_dir"] == tmp_path / "faces" and kwargs["pretrained"] == tmp_path / "pre_model"


def test_train_kernel_choice_flag_comes_from_its_field(monkeypatch, tmp_path):
    assert _options(("train",))["kernel_choice"].help.endswith("[default: on]")
    rec = Recorder(SimpleNamespace(model_dir=tmp_path, stopped_by="target_iter", start_iteration=0, iteration=1,
                                   seconds=1.0, ms_per_iter=1.0, src_loss=0.1, dst_loss=0.1, skipped_steps=0,
                                   rollbacks=0, saves=1))
    monkeypatch.setattr("facelab.train.loop.train", rec)
    monkeypatch.setattr("facelab.utils.runtime.keep_freed_memory", lambda: False)
    _invoke("train", "--model", "saehd", "--name", "m", "-w", str(tmp_path / "ws"), "--device", "cpu",
            "--no-kernel-choice", "--target-iter", "1")
    (args, _), = rec.calls
    assert args[4] == TrainOptions(kernel_choice=False, target_iter=1)


def test_mask_train_hands_the_stage_its_config(monkeypatch, ws):
    rec = Recorder({"steps": 5})
    monkeypatch.setattr("facelab.masks.workspace_masks.train_mask_model", rec)
    _invoke("mask", "train", "-w", str(ws.root), "--method", "sat", "--steps", "5", "--batch", "4", "--lr", "0.01",
            "--sat-backbone", "deit_tiny", "--device", "cpu")
    (args, _), = rec.calls
    assert args[1:3] == ("dst", MaskLearnConfig(method="sat", steps=5, batch_size=4, lr=0.01, sat_backbone="deit_tiny"))


def test_wsol_train_hands_the_trainer_file_and_flag_settings(monkeypatch, tmp_path):
    rec = Recorder({"epochs_done": 5})
    monkeypatch.setattr("facelab.wsol.trainer.train_wsol", rec)
    monkeypatch.setattr("facelab.wsol.data.load_split", lambda data, split: [SimpleNamespace(label=k) for k in (0, 2)])
    cfg = tmp_path / "wsol.json"
    cfg.write_text(json.dumps({"epochs": 3, "lr": 0.01, "weights": {"alpha": 0.1, "beta": 2.0}}))
    _invoke("wsol", "train", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--config", str(cfg),
            "--method", "sat", "--epochs", "5", "--alpha", "0.3", "--size", "48", "--device", "cpu")
    (args, _), = rec.calls
    assert args[0] == Path(tmp_path) and args[2] == WsolArch("sat", "vit_tiny_scratch", 3)
    assert args[3] == WsolTrainConfig(input_size=48, epochs=5, lr=0.01, weights=LossWeights(alpha=0.3, beta=2.0))
