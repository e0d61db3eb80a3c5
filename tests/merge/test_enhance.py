"""Face enhancers at merge time, with tiny ONNX models of the published signatures (built here)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "weights"))
import onnx_testkit  # noqa: E402
from merge_testkit import detect_landmarks, make_clip  # noqa: E402

from facelab.align import face_transform, transform_points  # noqa: E402
from facelab.errors import FacelabError  # noqa: E402
from facelab.merge.config import MergeConfig, settings_from_dict  # noqa: E402
from facelab.merge.enhance import (  # noqa: E402
    TEMPLATES,
    EnhancedPredictor,
    FaceEnhancer,
    box_mask,
    landmarks5,
    open_enhancer,
    template_matrix5,
)
from facelab.merge.predict import IdentityPredictor  # noqa: E402
from facelab.merge.stage import merge_frames  # noqa: E402
from facelab.workspace import read_image  # noqa: E402


@pytest.fixture(scope="module")
def astro_lm(astronaut) -> np.ndarray:
    return detect_landmarks(astronaut)


@pytest.fixture(scope="module")
def face_crop(astronaut, astro_lm):
    """(64, 64, 3) float32 whole-face crop of a real face and its landmarks in crop pixels."""
    mat = face_transform(astro_lm, 64, "whole_face")
    crop = cv2.warpAffine(astronaut, mat, (64, 64), flags=cv2.INTER_AREA).astype(np.float32) / 255.0
    return crop, transform_points(astro_lm, mat)


def test_run_matches_the_conventions_and_batches(tmp_path):
    free = FaceEnhancer.open(onnx_testkit.enhancer(tmp_path / "a.onnx", size=32))
    one = FaceEnhancer.open(onnx_testkit.enhancer(tmp_path / "b.onnx", size=32, batch=1, weight_input=True))
    assert (free.size, free.batch_limit, free.has_weight) == (32, None, False)
    assert (one.size, one.batch_limit, one.has_weight) == (32, 1, True)
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(free.run(x), 1.0 - x, atol=1e-6)  # [0,1] -> [-1,1] -> negated -> [0,1]
    np.testing.assert_allclose(one.run(x), free.run(x), atol=1e-6)
    with pytest.raises(ValueError, match=r"takes \(B, 32, 32, 3\)"):
        free.run(x[:, :16])


def test_template_matrix_puts_five_points_on_the_template():
    tpl = TEMPLATES["ffhq_512"] * 512
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48], lm[30], lm[48], lm[54] = tpl[0], tpl[1], tpl[2], tpl[3], tpl[4]
    lm = lm * 0.25 + 7.0  # a face at another scale and place
    np.testing.assert_allclose(landmarks5(lm), tpl * 0.25 + 7.0)
    mat = template_matrix5(lm, "ffhq_512", 512)
    np.testing.assert_allclose(transform_points(landmarks5(lm), mat), tpl, atol=1e-6)


def test_enhance_lays_the_enhanced_face_inside_the_box_only(tmp_path, face_crop):
    crop, lm = face_crop
    crop = cv2.GaussianBlur(crop, (0, 0), 2.0)  # smooth, so warping there and back is nearly exact
    enh = FaceEnhancer.open(onnx_testkit.enhancer(tmp_path / "e.onnx", size=64))
    out = enh.enhance(crop[None], lm[None])[0]
    mat = template_matrix5(lm, "ffhq_512", 64)
    inv = cv2.invertAffineTransform(mat)
    m = cv2.warpAffine(box_mask(64), inv, (64, 64))
    inner, outer = m > 0.99, m < 1e-4
    assert inner.mean() > 0.15 and outer.mean() > 0.01
    np.testing.assert_allclose(out[inner], 1.0 - crop[inner], atol=0.05)
    np.testing.assert_array_equal(out[outer], crop[outer])
    assert enh.faces == 1 and enh.seconds > 0


def test_enhanced_predictor_blends_and_forwards(tmp_path, face_crop):
    crop, lm = face_crop
    enh = FaceEnhancer.open(onnx_testkit.enhancer(tmp_path / "e.onnx", size=64))
    full = EnhancedPredictor(IdentityPredictor(64, "whole_face"), enh, 100)
    half = EnhancedPredictor(IdentityPredictor(64, "whole_face"), enh, 50)
    assert (full.resolution, full.face_type) == (64, "whole_face")
    f100, prd, _ = full(crop[None], lm[None])
    f50 = half(crop[None], lm[None])[0]
    np.testing.assert_allclose(f50, 0.5 * (crop[None] + f100), atol=1e-5)
    assert prd.shape == (1, 64, 64)


def test_wrong_signature_is_refused_naming_what_was_expected(tmp_path):
    bad = onnx_testkit.enhancer(tmp_path / "x.onnx", input_name="x")
    with pytest.raises(FacelabError, match=r"x\.onnx is not a face enhancer: expected input 'input' .*it has inputs x "):
        FaceEnhancer.open(bad)
    occ = onnx_testkit.occluder(tmp_path / "occ.onnx")
    with pytest.raises(FacelabError, match="is not a face enhancer"):
        FaceEnhancer.open(occ)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(FacelabError, match="not a readable ONNX face enhancer"):
        FaceEnhancer.open(junk)


def test_missing_catalogue_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_MODELS", str(tmp_path / "m"))
    with pytest.raises(FacelabError, match=r"gfpgan_1\.4\.onnx is not in .*/m; run `python main\.py models fetch "
                                           r"gfpgan_1\.4` or download https://github\.com/facefusion/"):
        open_enhancer("gfpgan_1.4")
    with pytest.raises(FacelabError, match="xseg_1 is listed as occluder, not enhancer; choose one of: gfpgan_1.4"):
        open_enhancer("xseg_1")
    (tmp_path / "m").mkdir()
    onnx_testkit.enhancer(tmp_path / "m" / "codeformer.onnx", size=32, weight_input=True)
    enh = open_enhancer("codeformer")  # a catalogue name found in $FACELAB_MODELS
    assert enh.has_weight and enh.template == "ffhq_512"


def test_enhancer_blend_is_a_whole_run_setting():
    with pytest.raises(FacelabError, match="act on the whole run"):
        settings_from_dict({"ranges": [{"frames": "1-2", "enhancer_blend": 10}]})
    with pytest.raises(FacelabError):
        settings_from_dict({"enhancer_blend": 101})


def test_merge_with_a_test_built_enhancer(ws, astronaut, astro_lm, tmp_path):
    make_clip(ws, astronaut, 2, astro_lm)
    path = onnx_testkit.enhancer(tmp_path / "enh.onnx", size=64)
    pred = IdentityPredictor(64, "whole_face")
    outs = {}
    for blend in (0, 100):
        cfg = MergeConfig(mode="overlay", color="none", mask_mode="dst", blur=0, workers=0, enhancer=str(path),
                          enhancer_blend=blend)
        res = merge_frames(ws, None, cfg, predictor=pred, force=True)
        assert (res.merged, res.faces, res.failures) == (2, 2, ())
        outs[blend] = read_image(ws.merged / "000001.png").astype(np.float64)
    plain = merge_frames(ws, None, MergeConfig(mode="overlay", color="none", mask_mode="dst", blur=0, workers=0),
                         predictor=pred, force=True)
    assert plain.merged == 2
    np.testing.assert_array_equal(read_image(ws.merged / "000001.png"), outs[0])  # blend 0 = no enhancer
    mask_img = read_image(ws.merged_mask / "000001.png", grey=True)
    mask, outside = mask_img == 255, mask_img == 0
    centre = np.zeros_like(mask)
    cy, cx = astro_lm[30].astype(int)[::-1]
    centre[cy - 15:cy + 15, cx - 15:cx + 15] = True
    inv = 255.0 - outs[0]
    assert np.abs(outs[100][centre & mask] - inv[centre & mask]).mean() < 25  # the negative, through two crops
    assert outside.mean() > 0.5 and np.abs(outs[100][outside] - outs[0][outside]).max() == 0  # nothing outside the face changes


def test_merge_cli_enhancer_flags(ws, astronaut, astro_lm, tmp_path):
    make_clip(ws, astronaut, 1, astro_lm)
    path = onnx_testkit.enhancer(tmp_path / "enh.onnx", size=64)
    from facelab.cli.root import cli

    res = CliRunner().invoke(cli, ["merge", "-w", str(ws.root), "--mode", "original", "--enhancer", str(path),
                                   "--enhancer-blend", "60", "--workers", "0"], obj={}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    bad = CliRunner().invoke(cli, ["merge", "-w", str(ws.root), "--mode", "original", "--enhancer", "nope.onnx",
                                   "--force", "--workers", "0"], obj={})
    assert bad.exit_code != 0 and "nope.onnx does not exist" in bad.output
