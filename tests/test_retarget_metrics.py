"""Tests for handx_ros.retarget.metrics: retargeting quality metrics on small hand-made arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from handx_gen.errors import RetargetError
from handx_ros.retarget.metrics import (
    RetargetMetrics,
    collision_rate,
    fingertip_error,
    joint_limit_violation,
    keyvector_error,
    limit_violation_count,
    normalised_jerk,
    summarize,
    timing_summary,
)

# Rotation about z by +90 degrees: human x -> base y, human y -> base -x.
R_Z90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _minimum_jerk(tau: np.ndarray) -> np.ndarray:
    """Minimum-jerk point-to-point profile from 0 to 1 over tau in [0, 1]."""
    return 10 * tau**3 - 15 * tau**4 + 6 * tau**5


# ---------------------------------------------------------------------- fingertip error


def test_fingertip_error_is_zero_when_robot_matches_mapped_human():
    rng = np.random.default_rng(0)
    human = rng.normal(scale=0.1, size=(6, 4, 3))  # (T, k, 3)
    p_base_wrist = np.array([0.01, -0.02, 0.05])
    robot = 1.6 * human @ R_Z90.T + p_base_wrist
    error = fingertip_error(robot, human, R_Z90, 1.6, p_base_wrist)
    assert error.shape == (6, 4)
    np.testing.assert_allclose(error, 0.0, atol=1e-15)


def test_fingertip_error_hand_computed_with_frame_change_and_scale():
    human = np.array([[[0.1, 0.0, 0.0], [0.0, 0.2, 0.0]]])  # (1, 2, 3)
    p_base_wrist = np.array([0.0, 0.0, 0.5])
    # Targets: 2 * (0.1, 0, 0) -> (0, 0.2, 0.5); 2 * (0, 0.2, 0) -> (-0.4, 0, 0.5).
    robot = np.array([[[0.0, 0.2, 0.53], [-0.4, 0.04, 0.5]]])
    error = fingertip_error(robot, human, R_Z90, 2.0, p_base_wrist)
    np.testing.assert_allclose(error, [[0.03, 0.04]], atol=1e-12)
    human_units = fingertip_error(robot, human, R_Z90, 2.0, p_base_wrist, in_human_units=True)
    np.testing.assert_allclose(human_units, [[0.015, 0.02]], atol=1e-12)


def test_fingertip_error_rejects_bad_input():
    tips = np.zeros((3, 4, 3))
    with pytest.raises(RetargetError, match=r'human_tips_wrist: expected shape \(3, 4, 3\)'):
        fingertip_error(tips, np.zeros((3, 5, 3)), np.eye(3), 1.0, np.zeros(3))
    with pytest.raises(RetargetError, match=r'robot_tips_base: expected shape \(T, k, 3\)'):
        fingertip_error(np.zeros((3, 4)), np.zeros((3, 4)), np.eye(3), 1.0, np.zeros(3))
    with pytest.raises(RetargetError, match=r'R_base_hand: expected shape \(3, 3\)'):
        fingertip_error(tips, tips, np.eye(4), 1.0, np.zeros(3))
    with pytest.raises(RetargetError, match=r'p_base_wrist: expected shape \(3,\)'):
        fingertip_error(tips, tips, np.eye(3), 1.0, np.zeros(2))
    with pytest.raises(RetargetError, match='scale must be a positive finite number'):
        fingertip_error(tips, tips, np.eye(3), 0.0, np.zeros(3))
    bad = tips.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(RetargetError, match=r'robot_tips_base has 1 non-finite.*\(1, 2, 0\)'):
        fingertip_error(bad, tips, np.eye(3), 1.0, np.zeros(3))


def test_keyvector_error():
    robot = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    target = np.array([[[1.0, 0.3, 0.4], [0.0, 0.0, -0.2]]])
    np.testing.assert_allclose(keyvector_error(robot, target), [[0.5, 0.2]])
    with pytest.raises(RetargetError, match=r'target_vectors: expected shape \(1, 2, 3\)'):
        keyvector_error(robot, target[:, :1])


# ---------------------------------------------------------------------- joint limits


def test_joint_limit_violation_amounts_and_count():
    lower = np.array([-1.0, 0.0, -np.inf])
    upper = np.array([1.0, 0.5, np.inf])
    qpos = np.array([[0.0, 0.5, 100.0],
                     [1.25, -0.001, -100.0],
                     [-1.5, 0.6, 0.0]])
    violation = joint_limit_violation(qpos, lower, upper)
    np.testing.assert_allclose(violation, [[0, 0, 0], [0.25, 0.001, 0], [0.5, 0.1, 0]],
                               atol=1e-15)
    assert limit_violation_count(qpos, lower, upper) == 4
    assert limit_violation_count(qpos, lower, upper, tolerance=0.01) == 3
    with pytest.raises(RetargetError, match='tolerance must be a finite number >= 0'):
        limit_violation_count(qpos, lower, upper, tolerance=-1.0)


def test_joint_limit_violation_rejects_bad_limits():
    qpos = np.zeros((2, 2))
    with pytest.raises(RetargetError, match=r'lower > upper at joints \[1\]'):
        joint_limit_violation(qpos, [0.0, 1.0], [1.0, 0.0])
    with pytest.raises(RetargetError, match=r'upper: expected shape \(2,\)'):
        joint_limit_violation(qpos, [0.0, 0.0], [1.0])
    with pytest.raises(RetargetError, match=r'lower has NaN limits at joints \[0\]'):
        joint_limit_violation(qpos, [np.nan, 0.0], [1.0, 1.0])
    with pytest.raises(RetargetError, match=r'qpos: expected shape \(T, n\)'):
        joint_limit_violation(np.zeros(2), [0.0, 0.0], [1.0, 1.0])


# ---------------------------------------------------------------------- collisions


def test_collision_rate_per_frame_and_per_pair():
    assert collision_rate(np.array([0.01, -0.001, 0.0, 0.2])) == 0.25
    assert collision_rate(np.array([0.01, -0.001, 0.0, 0.2]), margin_m=0.005) == 0.5
    per_pair = np.array([[0.1, np.inf], [0.1, -0.01], [-0.2, -0.1], [0.3, 0.3]])  # (T, p)
    assert collision_rate(per_pair) == 0.5
    assert collision_rate(per_pair, margin_m=0.2) == 0.75
    with pytest.raises(RetargetError, match='min_distance has 1 NaN'):
        collision_rate(np.array([0.1, np.nan]))
    with pytest.raises(RetargetError, match=r'expected shape \(T,\) or \(T, p\)'):
        collision_rate(np.zeros((2, 2, 2)))
    with pytest.raises(RetargetError, match='T >= 1'):
        collision_rate(np.zeros(0))


# ---------------------------------------------------------------------- jerk


def test_normalised_jerk_of_minimum_jerk_movement_matches_first_principles():
    # The analytic jerk of A * s(t / D) is A / D^3 * (60 - 360 tau + 360 tau^2); integrate its
    # square on a fine grid and form the dimensionless value from the definition.
    amplitude, duration_s = 0.7, 1.3
    tau = np.linspace(0.0, 1.0, 200_001)
    jerk = amplitude / duration_s**3 * (60 - 360 * tau + 360 * tau**2)
    integral = np.trapezoid(jerk**2, tau * duration_s)
    expected = math.sqrt(0.5 * integral * duration_s**5 / amplitude**2)
    assert expected == pytest.approx(math.sqrt(360.0), rel=1e-6)  # the closed form

    # The finite-difference estimate converges to it as the frame rate grows.
    errors = []
    for fps in (30.0, 300.0, 3000.0):
        num_frames = int(round(duration_s * fps)) + 1
        q = 0.2 + amplitude * _minimum_jerk(np.linspace(0.0, 1.0, num_frames))
        errors.append(abs(normalised_jerk(q, fps) - expected) / expected)
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] < 0.15 and errors[2] < 2e-3


def test_normalised_jerk_is_invariant_to_amplitude_duration_and_offset():
    coarse = normalised_jerk(_minimum_jerk(np.linspace(0, 1, 301)), 300.0)
    other = normalised_jerk(5.0 - 3.0 * _minimum_jerk(np.linspace(0, 1, 301)), 100.0)
    assert other == pytest.approx(coarse, rel=1e-9)


def test_normalised_jerk_per_joint_noise_raises_it_and_still_joint_is_zero():
    rng = np.random.default_rng(1)
    smooth = _minimum_jerk(np.linspace(0.0, 1.0, 61))
    noisy = smooth + rng.normal(scale=0.01, size=smooth.shape)
    qpos = np.stack([smooth, noisy, np.full_like(smooth, 0.3)], axis=1)  # (T, 3)
    value = normalised_jerk(qpos, 30.0)
    assert value.shape == (3,)
    assert value[0] == pytest.approx(math.sqrt(360.0), rel=0.1)
    assert value[0] == pytest.approx(normalised_jerk(smooth, 30.0), rel=1e-12)
    assert value[1] > 10 * value[0]
    assert value[2] == 0.0
    # A pure ramp has no jerk at all.
    assert normalised_jerk(np.linspace(0.0, 2.0, 10), 30.0) == pytest.approx(0.0, abs=1e-9)


def test_normalised_jerk_rejects_short_or_bad_input():
    with pytest.raises(RetargetError, match='at least 4 frames'):
        normalised_jerk(np.zeros((3, 2)), 30.0)
    with pytest.raises(RetargetError, match='fps must be a positive finite number'):
        normalised_jerk(np.zeros(5), 0.0)
    with pytest.raises(RetargetError, match='qpos has 1 non-finite'):
        normalised_jerk(np.array([0.0, 1.0, np.inf, 2.0]), 30.0)


# ---------------------------------------------------------------------- timing and summary


def test_timing_summary_in_milliseconds():
    time_s = np.arange(1, 101) * 1e-3  # 1 ms .. 100 ms
    summary = timing_summary(time_s)
    assert summary == pytest.approx({'p50_ms': 50.5, 'p95_ms': 95.05, 'p99_ms': 99.01,
                                     'mean_ms': 50.5, 'max_ms': 100.0})
    with pytest.raises(RetargetError, match='time_s must be >= 0'):
        timing_summary(np.array([0.001, -0.001]))
    with pytest.raises(RetargetError, match=r'time_s: expected shape \(T,\) with T >= 1'):
        timing_summary(np.zeros((2, 2)))


def test_summarize_hand_computed_clip():
    fingertip = np.array([[0.001, 0.002], [0.003, 0.010]])  # (T=2, k=2)
    keyvector = np.array([[0.0], [0.004]])
    qpos = np.array([[0.0, 1.2], [0.1, -0.1]])
    metrics = summarize(
        fingertip_error_m=fingertip, keyvector_error_m=keyvector, qpos=qpos, fps=30.0,
        lower=np.array([-1.0, 0.0]), upper=np.array([1.0, 1.0]),
        min_distance_m=np.array([[0.1, -0.01], [0.2, 0.3]]),
        converged=np.array([True, False]), time_s=np.array([0.002, 0.004]))
    assert metrics.num_frames == 2
    assert metrics.fingertip_error_median_m == pytest.approx(0.0025)
    assert metrics.fingertip_error_p95_m == pytest.approx(0.003 + 0.85 * 0.007)  # index 0.95 * 3
    assert metrics.fingertip_error_max_m == pytest.approx(0.010)
    assert metrics.keyvector_error_median_m == pytest.approx(0.002)
    assert metrics.limit_violation_count == 2
    assert metrics.limit_violation_max == pytest.approx(0.2)
    assert metrics.collision_rate == 0.5
    assert metrics.converged_fraction == 0.5
    assert metrics.time_p50_ms == pytest.approx(3.0)
    assert metrics.normalised_jerk_median is None  # 2 frames: too short for jerk
    as_dict = metrics.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert set(as_dict) == {f.name for f in RetargetMetrics.__dataclass_fields__.values()}


def test_summarize_jerk_and_empty_summary():
    qpos = _minimum_jerk(np.linspace(0.0, 1.0, 61))[:, None] * np.array([[1.0, 2.0]])
    metrics = summarize(qpos=qpos, fps=30.0)
    assert metrics.num_frames == 61
    assert metrics.normalised_jerk_median == pytest.approx(metrics.normalised_jerk_max)
    assert metrics.normalised_jerk_max == pytest.approx(normalised_jerk(qpos[:, 0], 30.0))
    assert metrics.fingertip_error_median_m is None and metrics.limit_violation_count is None
    assert summarize() == RetargetMetrics(num_frames=0)


def test_summarize_rejects_inconsistent_input():
    with pytest.raises(RetargetError, match='disagree on the number of frames'):
        summarize(fingertip_error_m=np.zeros((3, 2)), time_s=np.zeros(4))
    with pytest.raises(RetargetError, match='fps is required with qpos'):
        summarize(qpos=np.zeros((5, 2)))
    with pytest.raises(RetargetError, match='both lower and upper'):
        summarize(qpos=np.zeros((5, 2)), fps=30.0, lower=np.zeros(2))
    with pytest.raises(RetargetError, match='converged must be a bool array'):
        summarize(converged=np.ones(3))
    with pytest.raises(RetargetError, match='fingertip_error_m: expected 2-D or 3-D'):
        summarize(fingertip_error_m=np.zeros(3))
