"""Occluder and face-parser mask sources from ONNX files (tiny models of the published signatures, built here):
values, refusals, mask-mode terms at merge time and ``mask apply --source occluder|parser``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "merge"))
sys.path.insert(0, str(Path(__file__).parents[1] / "weights"))
import onnx_testkit  # noqa: E402
from merge_testkit import detect_landmarks, make_clip  # noqa: E402

from facelab.errors import FacelabError  # noqa: E402
from facelab.masks.onnx_masks import FaceParser, Occluder, soften  # noqa: E402
from facelab.merge.config import MergeConfig  # noqa: E402
from facelab.merge.masks import parse_mask_mode  # noqa: E402
from facelab.merge.stage import merge_frames  # noqa: E402
from facelab.workspace import read_image, read_meta  # noqa: E402


class GreenPredictor:
    """Predicts a plain green face with full learned masks: where the merge pastes is plain to see."""

    resolution = 64
    face_type = "whole_face"

    def __call__(self, crops, landmarks=None, keys=()):
        b, r = crops.shape[:2]
        face = np.zeros((b, r, r, 3), np.float32)
        face[..., 1] = 1.0
        return face, np.ones((b, r, r), np.float32), np.ones((b, r, r), np.float32)


@pytest.fixture(scope="module")
def astro_lm(astronaut):
    return detect_landmarks(astronaut)


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    onnx_testkit.occluder(folder / "xseg_1.onnx", size=32)
    onnx_testkit.parser(folder / "bisenet_resnet_34.onnx", size=32)
    monkeypatch.setenv("FACELAB_MODELS", str(folder))
    return folder


def test_occluder_values_and_fixed_batch(tmp_path):
    free = Occluder.open(onnx_testkit.occluder(tmp_path / "a.onnx", size=32))
    one = Occluder.open(onnx_testkit.occluder(tmp_path / "b.onnx", size=32, batch=1))
    img = np.zeros((3, 48, 48, 3), np.uint8)
    img[:, :, 24:, 2] = 255  # right half blue: "covered"
    m = free.masks(img)
    assert m.shape == (3, 48, 48) and m.dtype == np.float32
    assert m[:, :, :18].min() == 1.0 and m[:, :, 30:].max() == 0.0  # the edge is softened in between
    np.testing.assert_allclose(one.masks(img), m, atol=1e-6)
    np.testing.assert_allclose(free.masks(img.astype(np.float32) / 255.0), m, atol=1e-6)


def test_parser_regions(tmp_path):
    parser = FaceParser.open(onnx_testkit.parser(tmp_path / "p.onnx", size=32))
    img = np.zeros((1, 64, 64, 3), np.uint8)
    img[:, :21, :, 0] = 230  # red band: skin
    img[:, 43:, :, 2] = 230  # blue band: hair; the middle stays dark: background
    labels = parser.labels(img)[0]
    assert (labels[:8] == 1).all() and (labels[-8:] == 17).all() and (labels[13:18] == 0).all()
    skin = parser.masks(img, ["skin"])[0]
    assert skin[:12].min() > 0.999 and skin[30:].max() == 0.0
    both = parser.masks(img, ["skin", "hair"])[0]
    assert both[-10:].min() > 0.999 and both[28:36].max() == 0.0
    with pytest.raises(FacelabError, match="unknown face region 'beard'"):
        parser.masks(img, ["beard"])


def test_wrong_signatures_are_refused(tmp_path):
    enh = onnx_testkit.enhancer(tmp_path / "enh.onnx", size=32)
    with pytest.raises(FacelabError, match=r"enh\.onnx is not an occluder: expected one input \(N, S, S, 3\)"):
        Occluder.open(enh)
    with pytest.raises(FacelabError, match=r"is not a face parser: expected .* one output \(N, 19, S, S\).*"
                                           r"outputs output \(\?, 5, 32, 32\)"):
        FaceParser.open(onnx_testkit.parser(tmp_path / "p5.onnx", size=32, classes=5))


def test_mask_mode_terms():
    assert parse_mask_mode("occluder").terms == ("occluder",)
    spec = parse_mask_mode("region:skin, nose*occluder*stored:bas")
    assert spec.terms == ("region:skin,nose", "occluder", "stored:bas") and spec.stored == "bas" and spec.op == "*"
    assert parse_mask_mode("dst+occluder").op == "+"
    assert parse_mask_mode("learned-prd*learned-dst").terms == ("learned-prd", "learned-dst")  # as before
    for bad, why in (("region:skin,beard", "unknown face region 'beard'"), ("occluder*hull", "unknown term 'hull'"),
                     ("occluder*dst+full", "mixes"), ("region:", "unknown face region")):
        with pytest.raises(FacelabError, match=why):
            parse_mask_mode(bad)
    with pytest.raises(FacelabError, match="unknown face region 'nope'"):
        MergeConfig(mask_mode="region:nope")


def _blue_patch_clip(ws, astronaut, astro_lm):
    frame = astronaut.copy()
    x, y = astro_lm[30].astype(int)
    frame[y - 12:y + 12, x - 12:x + 12] = (0, 0, 255)  # a blue "hand" over the nose
    make_clip(ws, frame, 2, astro_lm)
    return frame, (slice(y - 6, y + 6), slice(x - 6, x + 6))


def test_merge_keeps_an_occluder_in_front(ws, astronaut, astro_lm, models_dir):
    frame, patch = _blue_patch_clip(ws, astronaut, astro_lm)
    res = merge_frames(ws, None, MergeConfig(mode="overlay", color="none", mask_mode="dst*occluder", blur=0,
                                             workers=0), predictor=GreenPredictor())
    assert (res.merged, res.failures) == (2, ())
    out = read_image(ws.merged / "000001.png")
    assert np.abs(out[patch].astype(int) - frame[patch]).max() <= 3  # the "hand" stays in front
    x, y = astro_lm[36].astype(int)  # an eye corner: swapped (green)
    assert out[y, x, 1] > 200 and out[y, x, 0] < 40
    plain = merge_frames(ws, None, MergeConfig(mode="overlay", color="none", mask_mode="dst", blur=0, workers=0),
                         predictor=GreenPredictor(), force=True)
    assert plain.merged == 2
    assert read_image(ws.merged / "000001.png")[patch][..., 1].min() > 200  # without it the patch is swapped


def test_merge_region_terms(ws, astronaut, astro_lm, models_dir):
    make_clip(ws, astronaut, 1, astro_lm)
    cfg = dict(mode="overlay", color="none", blur=0, workers=0)
    merge_frames(ws, None, MergeConfig(mask_mode="full", **cfg), predictor=GreenPredictor())
    full = read_image(ws.merged_mask / "000001.png", grey=True)
    merge_frames(ws, None, MergeConfig(mask_mode="region:background,skin,hair", **cfg), predictor=GreenPredictor(),
                 force=True)
    assert np.abs(read_image(ws.merged_mask / "000001.png", grey=True).astype(int) - full).max() <= 1
    merge_frames(ws, None, MergeConfig(mask_mode="region:hat", **cfg), predictor=GreenPredictor(), force=True)
    assert read_image(ws.merged_mask / "000001.png", grey=True).max() == 0  # the test parser never says "hat"
    assert np.array_equal(read_image(ws.merged / "000001.png"), astronaut)
    merge_frames(ws, None, MergeConfig(mask_mode="region:skin", **cfg), predictor=GreenPredictor(), force=True)
    skin = read_image(ws.merged_mask / "000001.png", grey=True)
    assert 0.1 < (skin > 0).sum() / (full > 0).sum() < 0.99


def test_missing_occluder_file_is_one_clear_error(ws, astronaut, astro_lm, tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_MODELS", str(tmp_path / "empty"))
    make_clip(ws, astronaut, 1, astro_lm)
    with pytest.raises(FacelabError, match=r"xseg_1\.onnx is not in .*empty; run `python main\.py models fetch xseg_1`"):
        merge_frames(ws, None, MergeConfig(mask_mode="occluder", workers=0), predictor=GreenPredictor())


def test_mask_apply_source_occluder_and_parser(ws, astronaut, astro_lm, models_dir):
    from facelab.cli.root import cli

    _, _ = _blue_patch_clip(ws, astronaut, astro_lm)
    run = CliRunner().invoke
    res = run(cli, ["mask", "apply", "-w", str(ws.root), "--source", "occluder", "--device", "cpu"], obj={},
              catch_exceptions=False)
    assert res.exit_code == 0, res.output
    res = run(cli, ["mask", "apply", "-w", str(ws.root), "--source", "parser", "--regions", "skin,nose",
                    "--device", "cpu"], obj={}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    meta = read_meta(ws.aligned("dst") / "000001_0.jpg")
    occ = meta.mask("occluder")
    assert occ is not None and occ.source == "occluder" and meta.mask("parser").source == "parser"
    m = occ.to_face(meta.size)
    x, y = meta.lm_face[30].astype(int)
    assert m[y, x] < 0.05 and m[meta.size // 2, meta.size // 4] > 0.95  # the blue patch is "covered"
    again = run(cli, ["mask", "apply", "-w", str(ws.root), "--source", "occluder", "--device", "cpu"], obj={})
    assert "skipped" in again.output and again.exit_code == 0
    res = merge_frames(ws, None, MergeConfig(mode="overlay", color="none", mask_mode="stored:occluder",
                                             workers=0), predictor=GreenPredictor(), force=True)
    assert (res.merged, res.failures) == (2, ())
    bad = run(cli, ["mask", "apply", "-w", str(ws.root), "--source", "parser", "--regions", "beard", "--force",
                    "--device", "cpu"], obj={})
    assert bad.exit_code != 0 and "unknown face region 'beard'" in bad.output


def test_soften_drops_the_low_half():
    m = np.zeros((64, 64), np.float32)
    m[:, 32:] = 1.0
    s = soften(m)
    assert s[:, :24].max() == 0.0 and s[:, 40:].min() == 1.0 and 0.0 <= s.min() and s.max() <= 1.0
