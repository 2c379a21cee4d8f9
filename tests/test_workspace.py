"""Tests for handx_gen.data.workspace: the canonical wrist spots, the box and the check."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.data.synthetic import SynthConfig, clip_seeds, synthesize_clip
from handx_gen.data.workspace import (
    CANONICAL_WRIST_M,
    CORPUS_RANGE_M,
    WORKSPACE,
    WORKSPACE_MARGIN_M,
    check_workspace,
)
from handx_gen.errors import MotionError
from handx_gen.hand.topology import HandSide
from handx_gen.motion import BimanualMotion


def test_the_spots_and_boxes_are_mirror_images_and_the_spots_lie_inside() -> None:
    mirror = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(CANONICAL_WRIST_M[0], CANONICAL_WRIST_M[1] * mirror)
    (lx, ly, lz), (ux, uy, uz) = WORKSPACE.lower_m[1], WORKSPACE.upper_m[1]  # right hand
    np.testing.assert_array_equal(WORKSPACE.lower_m[0], [-ux, ly, lz])
    np.testing.assert_array_equal(WORKSPACE.upper_m[0], [-lx, uy, uz])
    np.testing.assert_allclose(WORKSPACE.upper_m - WORKSPACE.lower_m,
                               CORPUS_RANGE_M[:, 1] - CORPUS_RANGE_M[:, 0]
                               + 2 * WORKSPACE_MARGIN_M, atol=1e-12)
    assert np.all(WORKSPACE.distance_m(CANONICAL_WRIST_M) == 0.0)
    assert np.all(WORKSPACE.distance_m(CANONICAL_WRIST_M[::-1]) == 0.0)  # crossed hands
    # A standing person's hands are 1 m up; wrist-centred data at the origin are not.
    assert np.all(WORKSPACE.distance_m(np.zeros((2, 3))) > 0.5)


def test_the_numbers_describe_the_synthetic_corpus() -> None:
    """The canonical spots and the range come from the corpus the models are trained on (the
    module doc); a change to where the corpus puts the hands shows here."""
    config = SynthConfig()
    wrists = []
    for index in range(16):  # about 4,500 frames
        clip = synthesize_clip(config, *clip_seeds(0, index, config.clips_per_composition))
        wrists.append(np.asarray(clip.motion.keypoints[:, :, 0], dtype=np.float64))
    wrists = np.concatenate(wrists)  # (T, 2, 3)
    mirrored = wrists * [[[-1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]  # each left wrist on the right
    inside = (mirrored >= CORPUS_RANGE_M[1, 0] - 1e-9) & (mirrored <= CORPUS_RANGE_M[1, 1])
    assert inside.all(axis=-1).mean() > 0.99
    assert check_workspace(wrists[:, :, None].repeat(21, axis=2)) == []
    median = np.median(mirrored.reshape(-1, 3), axis=0)
    np.testing.assert_allclose(median, CANONICAL_WRIST_M[1], atol=0.05)


def _keypoints(wrists: np.ndarray) -> np.ndarray:
    """(T, 2, 21, 3) a small hand shape at each wrist (T, 2, 3)."""
    rng = np.random.default_rng(0)
    shape = rng.normal(scale=0.03, size=(21, 3))
    shape[0] = 0.0
    return wrists[:, :, None] + shape


def test_a_hand_3_m_away_is_named_with_its_frames_and_distance() -> None:
    wrists = np.repeat(CANONICAL_WRIST_M[None], 10, axis=0)
    wrists[4:7, 1] += [3.0, 0.0, 0.0]  # the right wrist jumps 3 m to the right
    motion = BimanualMotion.from_mano(30.0, np.zeros((10, 2, 3)), np.zeros((10, 2, 15, 3)),
                                      wrists)  # default skeletons: the wrist is at transl
    findings = check_workspace(motion)
    assert [f.side for f in findings] == [HandSide.RIGHT]
    finding = findings[0]
    assert finding.num_outside == 3 and finding.num_present == 10
    assert finding.outside.tolist() == [False] * 4 + [True] * 3 + [False] * 3
    expected = 0.17 + 3.0 - WORKSPACE.upper_m[1, 0]
    assert finding.max_distance_m == pytest.approx(expected, abs=1e-6)
    line = finding.describe()
    assert line == (f'the right wrist is outside the usual workspace in 3 of 10 frames (4-6), '
                    f'up to {expected:.2f} m from it (frame 4: (+3.17, +0.30, +1.04) m)')


def test_absent_frames_are_skipped_and_shapes_checked() -> None:
    wrists = np.repeat(CANONICAL_WRIST_M[None], 5, axis=0)
    keypoints = _keypoints(wrists)
    keypoints[:, 0] = np.nan  # the left hand absent throughout
    keypoints[2, 1] = np.nan
    assert check_workspace(keypoints) == []
    keypoints[3, 1] = 0.0
    (finding,) = check_workspace(keypoints)
    assert finding.side is HandSide.RIGHT and finding.num_present == 4
    assert finding.worst_frame == 3
    with pytest.raises(MotionError, match=r'\(T, 2, 21, 3\), got \(5, 42, 3\)'):
        check_workspace(keypoints.reshape(5, 42, 3))
