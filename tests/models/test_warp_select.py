"""Temporal source-face choice of the warp model: Viterbi against brute force, hysteresis, exclusions,
cross-fades."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facelab.models.warp.select import (
    count_switches,
    crossfade_weights,
    exclude_unusable,
    frame_gap_pair_cost,
    path_cost,
    select_track,
)


def _brute_force(costs: np.ndarray, switch_cost: float, pair_cost=None) -> float:
    t_len, n = costs.shape
    return min(path_cost(costs, np.array(p), switch_cost, pair_cost)
               for p in itertools.product(range(n), repeat=t_len))


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_matches_brute_force_on_tiny_problems(seed):
    rng = np.random.default_rng(seed)
    for _ in range(10):
        t_len, n = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        costs = rng.random((t_len, n)) * 3.0
        switch = float(rng.random() * 2.0)
        path = select_track(costs, switch)
        assert path.shape == (t_len,) and path.dtype == np.int64
        assert path_cost(costs, path, switch) == pytest.approx(_brute_force(costs, switch), abs=1e-9)
        pair = frame_gap_pair_cost(rng.integers(0, 8, n), switch, full_gap=3)
        path = select_track(costs, switch, pair_cost=pair, top_k=n)
        assert path_cost(costs, path, switch, pair) == pytest.approx(_brute_force(costs, switch, pair), abs=1e-9)


def test_switches_fall_as_the_switch_cost_rises():
    rng = np.random.default_rng(0)
    costs = rng.random((300, 12))
    counts = [count_switches(select_track(costs, s)) for s in (0.0, 0.05, 0.2, 0.5, 1.0, 3.0, 1000.0)]
    assert counts == sorted(counts, reverse=True) and counts[0] > 200 and counts[-1] == 0
    np.testing.assert_array_equal(select_track(costs, 0.0), costs.argmin(1))
    assert (select_track(costs, 1000.0) == costs.sum(0).argmin()).all()


def test_hysteresis_holds_a_face_through_noise_and_switches_for_a_lasting_change():
    rng = np.random.default_rng(1)
    t_len = 120
    costs = np.ones((t_len, 3)) + rng.normal(0, 0.05, (t_len, 3))
    costs[:60, :2] -= 0.2  # faces 0 and 1 tie for the first half (the argmin flickers), face 2 wins the second
    costs[60:, 2] -= 0.3
    path = select_track(costs, switch_cost=1.0)
    assert count_switches(path) == 1 and path[0] in (0, 1) and path[-1] == 2
    assert abs(int(np.flatnonzero(np.diff(path))[0]) + 1 - 60) <= 3
    assert count_switches(costs.argmin(1)) > 10


def test_restricted_candidates_with_a_pair_cost_stay_near_the_optimum():
    rng = np.random.default_rng(2)
    costs = rng.random((80, 60))  # uniform noise: the hardest case for a candidate cut
    pair = frame_gap_pair_cost(np.arange(60), 0.8)
    exact = path_cost(costs, select_track(costs, 0.8, pair_cost=pair, top_k=60), 0.8, pair)
    got = path_cost(costs, select_track(costs, 0.8, pair_cost=pair, top_k=12), 0.8, pair)
    assert exact <= got + 1e-9 <= path_cost(costs, costs.argmin(1), 0.8, pair) + 1e-9
    assert got <= exact * 1.03
    assert path_cost(costs, select_track(costs, 0.8, pair_cost=pair), 0.8, pair) == pytest.approx(exact)  # top_k 32


def test_frame_gap_pair_cost_lets_the_path_follow_the_source_video():
    t_len = n = 30
    costs = np.full((t_len, n), 1.0)
    costs[np.arange(t_len), np.arange(n)] = 0.0  # frame t matches source frame t
    follow = select_track(costs, 2.0, pair_cost=frame_gap_pair_cost(np.arange(n), 2.0, full_gap=5))
    np.testing.assert_array_equal(follow, np.arange(t_len))  # each step costs 0.4 < 1 for staying
    assert count_switches(select_track(costs, 2.0)) < 10  # a flat switch cost of 2 makes it hold faces


def test_unusable_faces_are_excluded_unless_none_is_usable():
    costs = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    usable = np.array([False, True, True])
    assert (select_track(costs, 0.5, usable=usable) == 1).all()
    assert (select_track(costs, 0.5, usable=np.zeros(3, bool)) == 0).all()
    assert np.isinf(exclude_unusable(costs, usable)[:, 0]).all()
    with pytest.raises(ValueError):
        exclude_unusable(costs, np.ones(2, bool))


def test_bad_costs_raise():
    with pytest.raises(ValueError):
        select_track(np.array([[np.nan, 1.0]]), 1.0)
    with pytest.raises(ValueError):
        select_track(np.array([[0.0, 1.0], [np.inf, np.inf]]), 1.0)
    with pytest.raises(ValueError):
        select_track(np.zeros((0, 3)), 1.0)
    with pytest.raises(ValueError):
        select_track(np.zeros((2, 3)), -1.0)


def test_large_tracks_are_fast():
    import time

    costs = np.random.default_rng(3).random((2000, 2000)).astype(np.float32)
    start = time.perf_counter()
    path = select_track(costs, 0.5)
    assert time.perf_counter() - start < 5.0 and path.shape == (2000,)


def test_crossfade_weights_sum_to_one_and_ramp():
    path = np.array([0] * 10 + [1] * 10 + [2] * 3 + [3] * 10)
    length = 4
    weights = crossfade_weights(path, length)
    assert len(weights) == len(path)
    for frame in weights:
        assert sum(w for _, w in frame) == pytest.approx(1.0)
        assert all(w > 0 for _, w in frame) and [w for _, w in frame] == sorted((w for _, w in frame), reverse=True)
    new = [dict(frame).get(1, 0.0) for frame in weights[:12]]
    ramp = [w for w in new if 0.0 < w < 1.0]
    assert len(ramp) == length and ramp == sorted(ramp) and np.allclose(np.diff(ramp), 1 / (length + 1))
    assert weights[0] == [(0, 1.0)] and weights[-1] == [(3, 1.0)]
    assert any(len(frame) == 3 for frame in weights)  # switches closer than the fade blend three faces
    hard = crossfade_weights(path, 0)
    assert all(frame == [(int(p), 1.0)] for frame, p in zip(hard, path, strict=True))
    assert crossfade_weights(np.array([5, 5, 5]), 6) == [[(5, 1.0)]] * 3
    with pytest.raises(ValueError):
        crossfade_weights(path, -1)
