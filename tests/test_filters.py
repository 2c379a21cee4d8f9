"""Tests for handx_gen.data.filters: each criterion, segmentation and the config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from handx_gen.data.filters import (
    DEFAULT_CHECKS,
    DropReason,
    FilterConfig,
    FilterResult,
    Segment,
    filter_motion,
    filter_reading,
)
from handx_gen.data.sources import SourceReading, load_source
from handx_gen.data.synthetic import SynthConfig, clip_seeds, synthesize_clip
from handx_gen.data.tracker_noise import Implausible, inject_implausible, track
from handx_gen.errors import ConfigError
from handx_gen.hand.limits import anatomical_bounds, anatomical_to_pose, pose_to_anatomical
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import KEYPOINT_PARENTS, HandSide
from handx_gen.motion import BimanualMotion

FPS = 30.0
NUM_FRAMES = 240  # 8 s
SKELETONS = (default_skeleton(HandSide.LEFT), default_skeleton(HandSide.RIGHT))
INDEX1 = 0  # row of index1 in hand_pose
INDEX2 = 1  # row of index2 (the index PIP) in hand_pose
TRACKER_NOISE_M = 0.002  # per axis, as the demo's tracker stream (3.5 mm RMS per keypoint)


def _clean_params(num_frames: int = NUM_FRAMES, seed: int = 0) -> dict[str, np.ndarray]:
    """Slow, anatomically valid two-hand motion, hands 0.5 m apart."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None, None] / FPS  # (T, 1, 1)
    lower, upper = anatomical_bounds()
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    phase = rng.uniform(0, 2 * np.pi, size=(2, 15, 3))
    angles = mid + 0.3 * half * np.sin(2 * np.pi * 0.5 * t[..., None] + phase)  # (T, 2, 15, 3)
    hand_pose = np.stack([anatomical_to_pose(angles[:, s], SKELETONS[s]) for s in HandSide], 1)
    orient = np.zeros((num_frames, 2, 3))
    orient[..., 0] = 0.2 * np.sin(2 * np.pi * 0.3 * t[..., 0])
    transl = np.array([[0.25, 0.0, 1.0], [-0.25, 0.0, 1.0]]) + 0.05 * np.sin(
        2 * np.pi * 0.4 * t + np.array([0.0, 1.0, 2.0]))
    return {'global_orient': orient, 'hand_pose': hand_pose, 'transl': transl}


def _motion(params: dict[str, np.ndarray]) -> BimanualMotion:
    return BimanualMotion.from_mano(FPS, skeletons=SKELETONS, **params)


def _tracker_reading(params: dict[str, np.ndarray], path: Path, noise_m: float, seed: int,
                     edit=None) -> SourceReading:
    """The clip as a hand tracker sees it: its keypoints with Gaussian noise of ``noise_m`` per
    axis (after ``edit(keypoints)``), read back through skeleton fitting and IK."""
    keypoints = np.array(_motion(params).keypoints, dtype=np.float64)  # (T, 2, 21, 3)
    if edit is not None:
        edit(keypoints)
    rng = np.random.default_rng(seed)
    keypoints += rng.normal(scale=noise_m, size=keypoints.shape)
    np.savez(path, keypoints=keypoints, fps=np.array(FPS))
    return load_source(path)


def _frames(result: FilterResult, reason: DropReason) -> list[int]:
    return np.flatnonzero(result.flags[reason]).tolist()


def _assert_covers(result: FilterResult) -> None:
    segments = sorted([s for s in result.kept] + [d.segment for d in result.dropped],
                      key=lambda s: s.start)
    assert segments[0].start == 0 and segments[-1].stop == result.num_frames
    for a, b in zip(segments[:-1], segments[1:], strict=True):
        assert a.stop == b.start


def _dropped_with(result: FilterResult, reason: DropReason):
    return [d for d in result.dropped if reason in d.reasons]


def test_clean_clip_is_kept_whole() -> None:
    result = filter_motion(_motion(_clean_params()))
    assert result.kept == [Segment(0, NUM_FRAMES, FPS)]
    assert result.dropped == []
    assert result.kept_fraction == 1.0
    assert set(result.flags) == set(FilterConfig().checks)
    assert not any(flag.any() for flag in result.flags.values())


def test_non_finite_frames_are_cut_out_with_margin() -> None:
    motion = _motion(_clean_params())
    invalid = np.zeros(NUM_FRAMES, dtype=bool)
    invalid[120:124] = True
    result = filter_motion(motion, invalid_frames=invalid)
    assert _frames(result, DropReason.NON_FINITE) == [120, 121, 122, 123]
    # Dilated by 0.1 s = 3 frames each side.
    assert result.kept == [Segment(0, 117, FPS), Segment(127, NUM_FRAMES, FPS)]
    (dropped,) = result.dropped
    assert dropped.segment == Segment(117, 127, FPS)
    assert dropped.reasons == (DropReason.NON_FINITE,)
    assert ('non_finite: 4 frame(s), a gap of 4 frame(s) (0.13 s) without source data, longer '
            'than 0.1 s') in dropped.detail
    assert result.bridged_frames == 0
    # NaN observations count too, per hand.
    observed = np.array(motion.keypoints, dtype=np.float64)
    observed[50:56, 0, 3] = np.nan
    observed[53:56, 1] = np.nan
    result = filter_motion(motion, observed_keypoints=observed)
    assert _frames(result, DropReason.NON_FINITE) == list(range(50, 56))
    (dropped,) = _dropped_with(result, DropReason.NON_FINITE)
    assert ('a gap of 6 frame(s) (0.20 s) without keypoints, longer than 0.1 s (frames lost per '
            'hand: left 6, right 3)') in dropped.detail


def test_short_gaps_are_bridged() -> None:
    motion = _motion(_clean_params())
    invalid = np.zeros(NUM_FRAMES, dtype=bool)
    invalid[[40, 41, 42, 90, 150, 151]] = True  # gaps of 3, 1 and 2 frames (up to 0.1 s)
    result = filter_motion(motion, invalid_frames=invalid)
    assert result.kept == [Segment(0, NUM_FRAMES, FPS)]
    assert result.bridged_frames == 6
    assert result.to_dict()['bridged_frames'] == 6
    # At the clip's ends there is nothing to bridge to.
    invalid[:] = False
    invalid[:2] = True
    assert _frames(filter_motion(motion, invalid_frames=invalid), DropReason.NON_FINITE) == [0, 1]
    # max_gap_s = 0 bridges nothing.
    invalid[:] = False
    invalid[90] = True
    result = filter_motion(motion, FilterConfig(max_gap_s=0.0), invalid_frames=invalid)
    assert _frames(result, DropReason.NON_FINITE) == [90]


def test_finger_bent_backwards_violates_joint_limits() -> None:
    params = _clean_params()
    lower, _ = anatomical_bounds()
    angles = np.zeros((5, 15, 3))
    angles[:, INDEX1, 0] = lower[INDEX1, 0] - math.radians(60.0)  # 60 deg past hyperextension
    params['hand_pose'][120:125, 1] = anatomical_to_pose(angles, SKELETONS[1])
    result = filter_motion(_motion(params))
    assert _frames(result, DropReason.JOINT_LIMITS) == [120, 121, 122, 123, 124]
    (dropped,) = _dropped_with(result, DropReason.JOINT_LIMITS)
    assert dropped.segment.start <= 117 and dropped.segment.stop >= 128
    # Named: the hand, the joint, the angle, its value and the bound (the range widened by the
    # 0.26 rad tolerance: index MCP flexion -30..90 deg).
    assert ('joint_limits: 5 frame(s), right index_mcp flexion -1.57 rad outside '
            '[-0.78, 1.83] rad' in dropped.detail)
    # Within tolerance: 10 deg past the limit is accepted.
    params = _clean_params()
    angles[:, INDEX1, 0] = lower[INDEX1, 0] - math.radians(10.0)
    params['hand_pose'][120:125, 1] = anatomical_to_pose(angles, SKELETONS[1])
    assert not filter_motion(_motion(params)).flags[DropReason.JOINT_LIMITS].any()


def test_teleport_spike_flags_velocity_and_acceleration() -> None:
    params = _clean_params()
    params['transl'][120, 1, 2] += 0.3  # one frame 30 cm off: 9 m/s, ~16000 m/s^2
    result = filter_motion(_motion(params))
    assert _frames(result, DropReason.VELOCITY_SPIKE) == [119, 120, 121]
    assert _frames(result, DropReason.ACCELERATION_SPIKE) == [119, 120, 121]
    (dropped,) = result.dropped
    assert set(dropped.reasons) == {DropReason.VELOCITY_SPIKE, DropReason.ACCELERATION_SPIKE}
    assert dropped.segment == Segment(116, 125, FPS)
    # A one-frame outlier of 10 cm (3 m/s) passes the speed limit; its second differences are
    # 0.1, -0.2, 0.1 m, i.e. 90, 180, 90 m/s^2 at 30 fps: only the middle one is over 150.
    params = _clean_params()
    params['transl'][120, 1, 2] += 0.1
    result = filter_motion(_motion(params))
    assert _frames(result, DropReason.VELOCITY_SPIKE) == []
    assert _frames(result, DropReason.ACCELERATION_SPIKE) == [120]


def test_bone_length_drift_on_observed_keypoints_when_asked_for() -> None:
    motion = _motion(_clean_params())
    observed = np.array(motion.keypoints, dtype=np.float64)
    tip, dip = 8, 7  # index tip and DIP
    bone = observed[100:104, 0, tip] - observed[100:104, 0, dip]
    observed[100:104, 0, tip] += 0.5 * bone  # +50 % distal bone length, ~1 cm
    # Raw bone lengths are not judged by default: real trackers' bones vary that much.
    assert DropReason.BONE_LENGTH_DRIFT not in FilterConfig().checks
    assert filter_motion(motion, observed_keypoints=observed).kept_fraction == 1.0
    config = FilterConfig(checks=DEFAULT_CHECKS + (DropReason.BONE_LENGTH_DRIFT,))
    result = filter_motion(motion, config, observed_keypoints=observed)
    assert _frames(result, DropReason.BONE_LENGTH_DRIFT) == [100, 101, 102, 103]
    assert _frames(result, DropReason.VELOCITY_SPIKE) == []
    (dropped,) = result.dropped
    assert dropped.reasons == (DropReason.BONE_LENGTH_DRIFT,)
    assert 'left bone index_dip-index_tip' in dropped.detail and '50% off' in dropped.detail
    # The motion's own (FK) keypoints have rigid bones.
    assert not filter_motion(motion, config).flags[DropReason.BONE_LENGTH_DRIFT].any()


def test_observations_no_hand_of_the_skeleton_makes_leave_a_fit_residual() -> None:
    motion = _motion(_clean_params())
    observed = np.array(motion.keypoints, dtype=np.float64)
    observed[100:110, 1, 13:17] += [0.0, 0.0, 0.06]  # the right ring finger 6 cm off
    result = filter_motion(motion, observed_keypoints=observed)
    assert _frames(result, DropReason.FIT_RESIDUAL) == list(range(100, 110))
    (dropped,) = result.dropped
    assert dropped.reasons == (DropReason.FIT_RESIDUAL,)
    assert ('right ring_mcp observed 60 mm from the fitted hand (0.2 s moving median), above '
            '40 mm') in dropped.detail
    # Without observations there is nothing to compare with.
    assert not filter_motion(motion).flags[DropReason.FIT_RESIDUAL].any()


@pytest.mark.parametrize('noise_m', [TRACKER_NOISE_M, 0.003 / math.sqrt(3.0)])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_clean_clip_seen_by_a_noisy_tracker_is_kept(tmp_path: Path, noise_m: float,
                                                    seed: int) -> None:
    # 2 mm per axis (the demo's tracker) and 3 mm RMS per keypoint (1.7 mm per axis).
    reading = _tracker_reading(_clean_params(), tmp_path / 'k.npz', noise_m, seed)
    result = filter_reading(reading)
    assert result.kept_fraction >= 0.95
    # The fit keeps its joints in range frame by frame, too (no moving median) ...
    assert filter_reading(reading, FilterConfig(joint_limit_window_s=0.0)).kept_fraction >= 0.9
    # ... where the raw bone lengths, frame by frame and without a floor, look like drift.
    per_frame = FilterConfig(checks=(DropReason.BONE_LENGTH_DRIFT,), bone_length_floor_m=0.0,
                             bone_length_window_s=0.0)
    assert filter_reading(reading, per_frame).kept_fraction < 0.5


def test_bone_length_change_in_noisy_tracker_data_is_judged_on_the_fit(tmp_path: Path) -> None:
    mcp, pip, tip = 5, 6, 8  # index keypoints

    def lengthen(keypoints: np.ndarray) -> None:
        # The right index proximal phalanx (~49 mm) 30 % longer for 1 s: PIP, DIP and tip move
        # out along it, as a tracker's depth error makes a bone along the view axis look.
        bone = keypoints[120:150, 1, pip] - keypoints[120:150, 1, mcp]
        keypoints[120:150, 1, pip:tip + 1] += 0.3 * bone[:, None]

    reading = _tracker_reading(_clean_params(), tmp_path / 'k.npz', TRACKER_NOISE_M, 0,
                               lengthen)
    # The fit reaches the fingertip with the finger it has (tips first), so the frames are
    # kept ...
    result = filter_reading(reading)
    assert result.kept_fraction == 1.0
    tip_error = np.linalg.norm(reading.motion.keypoints[120:150, 1, tip]
                               - reading.observed_keypoints[120:150, 1, tip], axis=-1)
    assert np.median(tip_error) < 0.005
    # ... and the raw bone lengths, when asked for, still see the change.
    config = FilterConfig(checks=(DropReason.BONE_LENGTH_DRIFT,))
    result = filter_reading(reading, config)
    assert _frames(result, DropReason.BONE_LENGTH_DRIFT) == list(range(120, 150))
    (dropped,) = _dropped_with(result, DropReason.BONE_LENGTH_DRIFT)
    assert 'right bone index_mcp-index_pip' in dropped.detail


def test_finger_bent_backwards_in_noisy_tracker_data_violates_joint_limits(
        tmp_path: Path) -> None:
    params = _clean_params()
    angles = pose_to_anatomical(params['hand_pose'][120:135, 1], SKELETONS[1])
    angles[:, INDEX2] = [math.radians(-60.0), 0.0, 0.0]  # PIP 60 deg past full extension
    params['hand_pose'][120:135, 1] = anatomical_to_pose(angles, SKELETONS[1])
    reading = _tracker_reading(params, tmp_path / 'k.npz', TRACKER_NOISE_M, 0)
    result = filter_reading(reading)
    assert _frames(result, DropReason.JOINT_LIMITS) == list(range(120, 135))
    (dropped,) = _dropped_with(result, DropReason.JOINT_LIMITS)
    assert dropped.segment.start <= 117 and dropped.segment.stop >= 138
    # The fit bends the PIP backwards, past its range (0..110 deg) and the 0.26 rad tolerance.
    value = float(dropped.detail.split('right index_pip flexion ')[1].split(' rad')[0])
    assert -1.05 <= value < -0.26
    assert 'outside [-0.26, 2.18] rad' in dropped.detail


def test_overlapping_hands_interpenetrate() -> None:
    params = _clean_params()
    params['transl'][120:130, 0] = params['transl'][120:130, 1]  # left hand onto the right
    config = FilterConfig(checks=('interpenetration',))
    result = filter_motion(_motion(params), config)
    assert _frames(result, DropReason.INTERPENETRATION) == list(range(120, 130))
    (dropped,) = result.dropped
    assert dropped.reasons == (DropReason.INTERPENETRATION,)
    # The wrists coincide: the bones from the wrist overlap by 2 r.
    assert ('overlap by 18.0 mm (0.3 s moving median), above 15 mm (bone capsules r = 9 mm)'
            in dropped.detail)
    assert 'left bone wrist-' in dropped.detail and 'right bone wrist-' in dropped.detail
    # Overlaps of a few frames (a tracker's glitches) are under the 0.3 s moving median.
    params = _clean_params()
    params['transl'][120:124, 0] = params['transl'][120:124, 1]
    assert not filter_motion(_motion(params), config).flags[DropReason.INTERPENETRATION].any()


def test_touching_but_not_overlapping_hands_pass() -> None:
    params = _clean_params()
    motion = _motion(params)
    # Move the left hand so its wrist is 2 cm above the right wrist: capsules (r = 9 mm) touch
    # at most by a few mm near the wrists.
    keypoints = np.array(motion.keypoints)
    lift = keypoints[:, 1, 0] - keypoints[:, 0, 0] + np.array([0.0, 0.0, 0.02])
    params['transl'][:, 0] += lift
    result = filter_motion(_motion(params), FilterConfig(checks=('interpenetration',)))
    assert not result.flags[DropReason.INTERPENETRATION].any()


def test_static_clip_is_inactive() -> None:
    params = {name: np.repeat(value[:1], NUM_FRAMES, axis=0)
              for name, value in _clean_params().items()}
    result = filter_motion(_motion(params))
    assert result.kept == []
    (dropped,) = result.dropped
    assert dropped.segment == Segment(0, NUM_FRAMES, FPS)
    assert dropped.reasons == (DropReason.INACTIVE,)
    # Motion of one hand alone makes the clip active.
    params['transl'][:, 1, 0] += 0.1 * np.sin(np.arange(NUM_FRAMES) / FPS)
    assert filter_motion(_motion(params)).kept == [Segment(0, NUM_FRAMES, FPS)]


def test_short_clean_runs_are_dropped_as_too_short() -> None:
    params = _clean_params()
    params['transl'][100, 1, 2] += 0.3
    params['transl'][140, 1, 2] += 0.3
    result = filter_motion(_motion(params))
    # Spikes flag frames 99-101 and 139-141, dilated by 3 frames: 96-104 and 136-144.
    assert [s.start for s in result.kept] == [0, 145]
    short = _dropped_with(result, DropReason.TOO_SHORT)
    assert [d.segment for d in short] == [Segment(105, 136, FPS)]
    assert len(result.dropped) == 3
    _assert_covers(result)
    # A shorter minimum keeps the middle run.
    result = filter_motion(_motion(params), FilterConfig(min_segment_s=1.0))
    assert [(s.start, s.stop) for s in result.kept] == [(0, 96), (105, 136), (145, NUM_FRAMES)]
    kept = result.kept_motions(_motion(params))
    assert [m.num_frames for m in kept] == [96, 31, 95]


def test_keypoint_source_with_nan_frames(tmp_path: Path) -> None:
    motion = _motion(_clean_params(90))
    keypoints = np.array(motion.keypoints)
    keypoints[40:42, 0, 5] = np.nan
    keypoints[60:66, 1] = np.nan
    np.savez(tmp_path / 'k.npz', keypoints=keypoints, fps=np.array(FPS))
    reading = load_source(tmp_path / 'k.npz', fill_invalid=True)
    result = filter_reading(reading, FilterConfig(min_segment_s=0.5))
    # Two frames are bridged (the reader interpolated the keypoints), six are not.
    assert result.bridged_frames == 2
    assert _frames(result, DropReason.NON_FINITE) == list(range(60, 66))
    assert [(s.start, s.stop) for s in result.kept] == [(0, 57), (69, 90)]
    assert result.dropped[0].reasons == (DropReason.NON_FINITE,)
    # The bridged frames lie between their neighbours.
    wrist = np.asarray(reading.motion.keypoints[39:43, 0, 5], dtype=np.float64)
    between = wrist[0] + np.outer([1 / 3, 2 / 3], wrist[3] - wrist[0])
    np.testing.assert_allclose(wrist[1:3], between, atol=2e-3)


def test_config_from_dict_and_yaml(tmp_path: Path) -> None:
    config = FilterConfig.from_dict({'max_speed_m_s': 3, 'checks': ['inactive', 'non_finite']})
    assert config.max_speed_m_s == 3.0
    assert config.checks == (DropReason.NON_FINITE, DropReason.INACTIVE)
    assert FilterConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError,
                       match=r"unknown filter config key 'max_sped'.*'max_speed_m_s'"):
        FilterConfig.from_dict({'max_sped': 1.0})
    with pytest.raises(ConfigError, match="unknown filter check 'fast'"):
        FilterConfig.from_dict({'checks': ['fast']})
    with pytest.raises(ConfigError, match='min_segment_s'):
        FilterConfig(min_segment_s=-1.0)
    with pytest.raises(ConfigError, match='capsule_radius_m'):
        FilterConfig(capsule_radius_m=0.0)
    path = tmp_path / 'filter.yaml'
    path.write_text('max_acceleration_m_s2: 100\nmin_segment_s: 1.5\n')
    config = FilterConfig.from_yaml(path)
    assert (config.max_acceleration_m_s2, config.min_segment_s) == (100.0, 1.5)
    path.write_text('- a list\n')
    with pytest.raises(ConfigError, match='mapping'):
        FilterConfig.from_yaml(path)
    path.write_text('dilate_s: 0.1\nbogus: 2\n')
    with pytest.raises(ConfigError, match=r"filter\.yaml: unknown filter config key 'bogus'"):
        FilterConfig.from_yaml(path)


def test_segment_distance_matches_dense_sampling() -> None:
    from handx_gen.data.filters import _segment_distances

    rng = np.random.default_rng(11)
    p1, q1, p2, q2 = rng.normal(size=(4, 200, 3))
    q2[:20] = p2[:20]  # degenerate segments (points)
    q1[20:40] = p1[20:40] + 1e-3 * (q2[20:40] - p2[20:40])  # near-parallel, short
    p2[40:60] = p1[40:60] + 0.3 * (q1[40:60] - p1[40:60])  # touching
    u = np.linspace(0.0, 1.0, 401)[:, None]
    brute = np.array([
        np.linalg.norm((p1[i] + u * (q1[i] - p1[i]))[:, None]
                       - (p2[i] + u * (q2[i] - p2[i]))[None], axis=-1).min()
        for i in range(p1.shape[0])
    ])
    exact = _segment_distances(p1, q1, p2, q2)
    assert np.all(exact <= brute + 1e-12)  # never farther than any sampled pair
    assert np.all(brute - exact < 5e-3)  # and as close as the sampling can tell
    np.testing.assert_allclose(exact[40:60], 0.0, atol=1e-12)
    point = _segment_distances(p1[:1], q1[:1], p1[:1], p1[:1])  # a segment's own endpoint
    np.testing.assert_allclose(point, 0.0, atol=1e-12)


def test_reported_overlap_depth_follows_hand_separation() -> None:
    params = {'global_orient': np.zeros((70, 2, 3)), 'hand_pose': np.zeros((70, 2, 15, 3)),
              'transl': np.zeros((70, 2, 3))}
    params['transl'][:, 1, 2] = 1.0
    params['transl'][:, 0, 2] = 1.0
    params['transl'][:, 0, 1] = 0.005  # left wrist 5 mm off the right wrist, normal to the palm
    config = FilterConfig(checks=('interpenetration',), max_penetration_m=0.008)
    motion = _motion(params)
    result = filter_motion(motion, config)
    assert result.flags[DropReason.INTERPENETRATION].all()
    # Dense sampling of every left/right bone pair gives the closest approach.
    kp = np.asarray(motion.keypoints[0], dtype=np.float64)  # (2, 21, 3)
    u = np.linspace(0.0, 1.0, 101)[:, None]
    bones = [[kp[h, p] + u * (kp[h, c] - kp[h, p]) for c, p in enumerate(KEYPOINT_PARENTS)
              if p >= 0] for h in range(2)]
    left, right = np.concatenate(bones[0]), np.concatenate(bones[1])
    closest = np.linalg.norm(left[:, None] - right[None], axis=-1).min()
    assert closest <= 0.005  # the wrists are 5 mm apart
    depth_mm = float(result.dropped[0].detail.split('overlap by ')[1].split(' mm')[0])
    assert depth_mm == pytest.approx((0.018 - closest) * 1000, abs=0.06)
    params['transl'][:, 0, 1] = 0.015  # wrists 15 mm apart: at most ~3.5 mm overlap
    assert not filter_motion(_motion(params), config).flags[DropReason.INTERPENETRATION].any()


def test_shipped_config_file_matches_the_defaults() -> None:
    shipped = Path(__file__).resolve().parents[1] / 'config' / 'data_filter.yaml'
    assert FilterConfig.from_yaml(shipped) == FilterConfig()


def test_config_files_name_the_file_and_the_valid_keys(tmp_path: Path) -> None:
    bad = tmp_path / 'bad.yaml'
    bad.write_text('max_speed_m_s: 4.0\nmax_sped: 3\n')
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown filter config key 'max_sped'; "
                                          r'valid options: .*max_speed_m_s'):
        FilterConfig.from_yaml(bad)
    bad.write_text('- a list\n')
    with pytest.raises(ConfigError, match='must be a mapping of settings, got list'):
        FilterConfig.from_yaml(bad)
    bad.write_text('key: [unclosed\n')
    with pytest.raises(ConfigError, match='invalid YAML'):
        FilterConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match='cannot read filter config'):
        FilterConfig.from_yaml(tmp_path / 'missing.yaml')


@pytest.mark.parametrize('num_frames', [1, 2, 3, 6, 7])
def test_clips_shorter_than_the_dilation_are_filtered(num_frames: int) -> None:
    # The dilation kernel (2 * round(dilate_s * fps) + 1 frames) is longer than these clips;
    # a convolution in 'same' mode returned the kernel's length and broke the frame mask.
    result = filter_motion(_motion(_clean_params(num_frames)))
    assert result.num_frames == num_frames
    segments = list(result.kept) + [d.segment for d in result.dropped]
    assert sum(s.num_frames for s in segments) == num_frames
    assert all(flag.shape == (num_frames,) for flag in result.flags.values())
    assert not result.kept  # shorter than min_segment_s
    assert all(d.reasons for d in result.dropped)


# What a tracker expects of each implausible segment's drop.
EXPECTED = {
    Implausible.BENT_BACK: (DropReason.JOINT_LIMITS, 'right index_pip flexion'),
    Implausible.SWAPPED: (DropReason.JOINT_LIMITS, 'right index_mcp abduction'),
    Implausible.TELEPORT: (DropReason.VELOCITY_SPIKE, 'right '),
    Implausible.ZEROED: (DropReason.FIT_RESIDUAL, 'right index_'),
}


def test_tracker_noised_corpus_clips_are_kept_and_implausible_segments_dropped(
        tmp_path: Path) -> None:
    # Synthetic corpus clips as a tracker sees them (tracker_noise: 3 mm jitter, depth errors
    # of up to 20 % along the view axis, single-frame glitches, dropouts, a hand missing for
    # up to a second), read and fitted as `handx data convert` does.
    path = tmp_path / 'tracked.npz'
    kept = total = 0
    for number, kind in enumerate([*Implausible, *Implausible][:6]):
        composition, clip = clip_seeds(0, number)
        motion = synthesize_clip(SynthConfig(), composition, clip).motion
        track(motion, seed=number).save(path)
        result = filter_reading(load_source(path, fill_invalid=True))
        kept += sum(segment.num_frames for segment in result.kept)
        total += result.num_frames
        # The same clip with an implausible half second on the right hand.
        start = motion.num_frames // 2
        frames = slice(start, start + 15)
        keypoints = inject_implausible(np.asarray(motion.keypoints), kind, HandSide.RIGHT,
                                       frames)
        track(motion, seed=number, keypoints=keypoints).save(path)
        result = filter_reading(load_source(path, fill_invalid=True))
        dropped = np.zeros(result.num_frames, dtype=bool)
        for entry in result.dropped:
            dropped[entry.segment.frames] = True
        assert dropped[frames].all(), (kind, [d.detail for d in result.dropped])
        reason, named = EXPECTED[kind]
        details = [d.detail for d in result.dropped if reason in d.reasons
                   and d.segment.start < frames.stop and d.segment.stop > frames.start]
        assert any(f'{reason.value}: ' in d and named in d for d in details), (kind, details)
    assert kept / total >= 0.9
