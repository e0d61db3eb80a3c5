import numpy as np
import pytest
from skimage.metrics import structural_similarity

from facelab.evaluate import metrics as M


def _face_points(rng, scale=100.0):
    pts = rng.uniform(0, scale, (68, 2))
    pts[36] = (30.0, 40.0)
    pts[45] = (70.0, 40.0)  # inter-ocular distance 40
    return pts


def test_nme_is_mean_distance_over_interocular():
    rng = np.random.default_rng(0)
    ref = _face_points(rng)
    pred = ref + np.array([3.0, 4.0])  # every point moved by 5 px
    assert M.landmark_nme(pred, ref) == pytest.approx(5.0 / 40.0)
    assert M.landmark_nme(ref, ref) == 0.0
    with pytest.raises(ValueError):
        M.landmark_nme(ref[:10], ref)


def test_pose_error_in_degrees():
    assert M.pose_error_deg((0.0, np.pi / 2, 0.0), (0.0, 0.0, 0.0)) == pytest.approx(30.0)


def test_embedding_distance():
    assert M.embedding_distance(np.zeros(128), np.full(128, 0.5)) == pytest.approx(np.sqrt(128) * 0.5)


def test_ssim_matches_skimage(astronaut):
    a = astronaut[:64, :64].astype(np.float32) / 255
    b = np.clip(a + 0.05 * np.random.default_rng(1).standard_normal(a.shape).astype(np.float32), 0, 1)
    ref = structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert M.image_ssim(a, b) == pytest.approx(ref)
    assert M.image_ssim(a, a) == pytest.approx(1.0)


def test_jitter_zero_for_linear_motion_and_grows_with_shake():
    rng = np.random.default_rng(2)
    base = _face_points(rng)
    t = np.arange(10)[:, None, None]
    linear = base[None] + t * np.array([1.0, 0.5])
    assert M.landmark_jitter(linear) == pytest.approx(0.0, abs=1e-12)
    shaky = linear + rng.normal(0, 2.0, linear.shape)
    assert M.landmark_jitter(shaky) > 0.05
    # alternating +-1 px shake on every point: second difference is 4 px, over iod 40
    alt = base[None] + (np.where(np.arange(10) % 2 == 0, 1.0, -1.0)[:, None, None] * np.array([1.0, 0.0]))
    assert M.landmark_jitter(alt) == pytest.approx(4.0 / 40.0)


def test_colour_jitter_and_masked_mean():
    means = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.6, 0.5, 0.5]])
    assert M.colour_jitter(means) == pytest.approx(0.1 * 255 / 3)
    img = np.zeros((4, 4, 3), np.float32)
    img[:2] = 1.0
    mask = np.zeros((4, 4), np.float32)
    mask[:2] = 1.0
    assert np.allclose(M.masked_mean_colour(img, mask), 1.0)
    with pytest.raises(ValueError):
        M.masked_mean_colour(img, np.zeros((4, 4)))


def test_masked_ssim_ignores_what_lies_outside_the_mask(astronaut):
    img = astronaut[:128, :128].astype(np.float32) / 255.0
    other = img.copy()
    other[:, 64:] = 0.0  # the right half is ruined
    left = np.zeros((128, 128), np.float32)
    left[:, :48] = 1.0
    assert M.masked_ssim(img, other, left) > 0.99
    assert M.masked_ssim(img, other, 1.0 - left) < M.image_ssim(img, other) < 0.9
