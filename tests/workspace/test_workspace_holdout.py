import hashlib
from dataclasses import dataclass

import numpy as np
import pytest

from facelab.workspace.faces import FaceMeta
from facelab.workspace.holdout import block_key, block_score, is_held_out, split_held_out


def _frames(n: int, folder: str = "data_src", ext: str = "png") -> list[str]:
    return [f"{folder}/{i:06d}.{ext}" for i in range(n)]


def test_share_zero_holds_nothing_and_one_holds_everything():
    frames = _frames(2000)
    assert not any(is_held_out(f, 0.0) for f in frames)
    assert all(is_held_out(f, 1.0) for f in frames)
    with pytest.raises(ValueError):
        is_held_out(frames[0], 1.5)
    with pytest.raises(ValueError):
        is_held_out(frames[0], 0.1, block=0)


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5])
def test_held_share_over_many_frames_is_close_to_share(share):
    frames = _frames(10000)
    by_frame = np.mean([is_held_out(f, share, block=1) for f in frames])
    by_block = np.mean([is_held_out(f, share) for f in frames])  # 417 blocks of 24
    assert by_frame == pytest.approx(share, abs=0.015)
    assert by_block == pytest.approx(share, abs=0.05)
    names = [f"faces/img_{i:x}q.jpg" for i in range(10000)]  # non-numeric stems: one block each
    assert np.mean([is_held_out(f, share) for f in names]) == pytest.approx(share, abs=0.015)


def test_neighbours_in_a_block_share_their_fate():
    fates = np.array([is_held_out(f, 0.3) for f in _frames(24 * 50)]).reshape(50, 24)
    assert np.all(fates == fates[:, :1])  # frames 0-23, 24-47, ... decide together
    assert 0 < fates[:, 0].sum() < 50
    assert block_key("data_src/000023.png") == block_key("000000") != block_key("data_src/000024.png")
    assert block_key("clip_0007.png", block=4) == "clip_#1"
    assert block_key("a/b/face.png") == "=face"


def test_decision_ignores_folders_extension_and_leading_zeros():
    for i in range(0, 5000, 7):
        want = is_held_out(f"data_src/{i:06d}.png", 0.3)
        for other in (f"/elsewhere/frames/{i:06d}.jpg", f"{i:06d}", f"data_src\\{i:06d}.png", f"x/{i}.webp"):
            assert is_held_out(other, 0.3) == want


def test_rule_is_pinned_sha256_of_salt_and_block():
    digest = hashlib.sha256("facelab\x00#5".encode()).digest()
    assert block_score("#5") == int.from_bytes(digest[:8], "big") / 2.0 ** 64
    # the first 40 blocks of 24 frames at share 0.25 (a change here moves faces between train and held-out)
    held = [b for b in range(40) if is_held_out(f"data_src/{b * 24:06d}.png", 0.25)]
    assert held == [0, 5, 7, 8, 13, 18, 22, 24, 25, 27, 28, 30, 31, 32, 33, 34, 35, 36, 37, 38]
    other = [b for b in range(40) if is_held_out(f"data_src/{b * 24:06d}.png", 0.25, salt="other")]
    assert other == [1, 2, 5, 9, 12, 13, 16, 20, 28, 35, 36, 38]


@dataclass(frozen=True)
class _Meta:
    source_frame: str


def test_split_follows_the_rule_on_metas_and_frames():
    frames = _frames(24 * 30)
    train, held = split_held_out(frames, 0.3)
    assert sorted(train + held) == list(range(len(frames))) and not set(train) & set(held)
    assert held == [i for i, f in enumerate(frames) if is_held_out(f, 0.3)]
    assert split_held_out([_Meta(f) for f in frames], 0.3) == (train, held)
    real = [FaceMeta.create(source_frame=f, frame_size=(64, 64), face_index=0, face_type="full", size=64,
                            box=(0, 0, 1, 1), landmarks_frame=np.zeros((68, 2)), landmarks_face=np.zeros((68, 2)),
                            matrix=np.eye(3)[:2], detector="d", landmarks_backend="l") for f in frames[::24]]
    assert split_held_out(real, 0.3) == split_held_out(frames[::24], 0.3)


def test_split_keeps_one_block_in_training_and_holds_at_least_one():
    frames = _frames(24 * 4)
    train, held = split_held_out(frames, 1.0)
    assert len(train) == 24 and len(held) == 72
    train, held = split_held_out(frames, 1e-9)
    assert len(train) == 72 and len(held) == 24
    assert split_held_out(frames, 0.0) == (list(range(96)), [])
    assert split_held_out(frames[:24], 1.0) == (list(range(24)), [])  # one block: it must train
    assert split_held_out([], 0.5) == ([], [])
