"""Hand separation of generated clips, and the overlaps it reads."""

from __future__ import annotations

import numpy as np
import pytest
from hand_pairs import facing_hands

from handx_gen.annotate.features import extract_features
from handx_gen.annotate.surface import (
    hand_surface,
    inter_hand_overlaps,
    inter_hand_penetration,
    part_distance_matrix,
)
from handx_gen.errors import ConfigError
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import HandSide
from handx_gen.models.separation import SeparationConfig, separate_hands
from handx_gen.motion import BimanualMotion

L, R = HandSide.LEFT, HandSide.RIGHT


def depth(motion: BimanualMotion) -> np.ndarray:
    return inter_hand_penetration(*(hand_surface(motion.keypoints[:, s].astype(np.float64), s)
                                    for s in HandSide))


def backs_touch(motion: BimanualMotion) -> bool:
    wanted = {PartRef(L, HandPart.BACK), PartRef(R, HandPart.BACK)}
    return any({e.a, e.b} == wanted for e in extract_features(motion).contacts)


def test_overlaps_match_the_distances_and_open_along_their_direction():
    clip = facing_hands(0.009)
    kp = clip.keypoints.astype(np.float64)
    surfaces = [hand_surface(kp[:, s], s) for s in HandSide]
    signed, direction = inter_hand_overlaps(*surfaces)
    assert signed.shape == (clip.num_frames, 17, 17)
    assert direction.shape == (clip.num_frames, 17, 17, 3)
    np.testing.assert_allclose(np.linalg.norm(direction, axis=-1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.maximum(-signed.min(axis=(1, 2)), 0.0),
                               inter_hand_penetration(*surfaces))
    np.testing.assert_allclose(signed.min(axis=(1, 2)),
                               part_distance_matrix(*surfaces).min(axis=(1, 2)))
    # The deepest pair at the middle frame opens by as much as the right hand moves along
    # its direction (first order, while the cores do not cross).
    frame = clip.num_frames // 2
    row, col = np.unravel_index(np.argmin(signed[frame]), signed.shape[1:])
    assert signed[frame, row, col] < -0.003
    step = 1e-4 * direction[frame, row, col]
    moved = hand_surface(kp[frame, R] + step, R)
    after = inter_hand_overlaps(hand_surface(kp[frame, L], L), moved)[0][row, col]
    assert after - signed[frame, row, col] == pytest.approx(1e-4, rel=0.05)


def test_overlapping_hands_are_moved_apart_to_a_touch():
    clip = facing_hands(0.006, num_frames=80)  # the backs overlap by 15 mm at frame 40
    before = depth(clip)
    config = SeparationConfig()
    assert before.max() > 0.012
    done = separate_hands(clip)
    after = depth(done.motion)
    assert after.max() <= config.max_depth_m + 5e-4
    assert done.frames_before == int((before > config.max_depth_m).sum()) > 0
    assert done.frames_left == 0
    assert done.max_depth_before_m == pytest.approx(before.max())
    assert done.max_depth_after_m == pytest.approx(after.max(), abs=1e-6)
    assert backs_touch(done.motion)  # a touch is still a touch
    shift = done.motion.transl - clip.transl  # (T, 2, 3)
    np.testing.assert_allclose(done.motion.keypoints - clip.keypoints,
                               shift[:, :, None, :].repeat(21, axis=2), atol=1e-5)
    np.testing.assert_array_equal(done.motion.hand_pose, clip.hand_pose)
    np.testing.assert_allclose(shift[:, L], -shift[:, R], atol=1e-9)  # shared, apart
    assert (shift[clip.num_frames // 2, R, 0] > 0) and (shift[clip.num_frames // 2, L, 0] < 0)
    steps = np.linalg.norm(np.diff(shift, axis=0), axis=-1)
    assert steps.max() <= config.max_step_m + 1e-9
    assert done.max_step_m == pytest.approx(steps.max())
    assert done.max_shift_m == pytest.approx(np.linalg.norm(shift, axis=-1).max())
    far = np.r_[:20, 60:80]  # eased out away from the overlap
    assert np.linalg.norm(shift[far], axis=-1).max() < 0.1 * done.max_shift_m
    assert set(done.to_dict()) >= {'frames_before', 'frames_left', 'max_shift_m'}


def test_a_touch_and_hands_apart_are_left_alone():
    for half_gap in (0.0135, 0.05):
        clip = facing_hands(half_gap)
        done = separate_hands(clip)
        assert done.motion is clip and done.frames_before == 0 and done.max_shift_m == 0.0


def test_a_given_hand_does_not_move():
    clip = facing_hands(0.006)
    free = np.zeros((clip.num_frames, 2), dtype=bool)
    free[:, R] = True  # the left hand is given
    done = separate_hands(clip, free=free)
    np.testing.assert_array_equal(done.motion.keypoints[:, L], clip.keypoints[:, L])
    np.testing.assert_array_equal(done.motion.transl[:, L], clip.transl[:, L])
    assert depth(done.motion).max() <= SeparationConfig().max_depth_m + 5e-4
    frozen = separate_hands(clip, free=np.zeros((clip.num_frames, 2), dtype=bool))
    assert frozen.motion is clip and frozen.frames_left == frozen.frames_before > 0
    with pytest.raises(ConfigError, match='free must have shape'):
        separate_hands(clip, free=free[:3])


def test_a_slower_bound_spreads_the_move():
    clip = facing_hands(0.006, num_frames=80)
    quick = separate_hands(clip)
    slow = separate_hands(clip, config=SeparationConfig(max_step_m=0.5 * quick.max_step_m))
    assert slow.max_step_m <= 0.5 * quick.max_step_m + 1e-9
    assert depth(slow.motion).max() <= SeparationConfig().max_depth_m + 5e-4
    # a bound the clip is too short to keep: the hands are left as they were, and it says so
    short = facing_hands(0.006)
    stuck = separate_hands(short, config=SeparationConfig(max_step_m=1e-4, max_spread_rounds=1))
    assert stuck.motion is short and stuck.frames_left == stuck.frames_before > 0


def test_config_is_checked():
    with pytest.raises(ConfigError, match='max_depth_m'):
        SeparationConfig(max_depth_m=0.0)
    with pytest.raises(ConfigError, match='margin_m'):
        SeparationConfig(margin_m=-0.001)
    with pytest.raises(ConfigError, match='rounds'):
        SeparationConfig(rounds=0)
    with pytest.raises(ConfigError, match='max_step_m'):
        SeparationConfig(max_step_m=float('nan'))


def test_a_moved_wrist_keeps_within_the_wrist_step_bound():
    clip = facing_hands(0.006, num_frames=80)  # wrists slow to a stop at the overlap
    own = np.linalg.norm(np.diff(clip.transl, axis=0), axis=-1)  # (T - 1, 2)

    def too_fast(motion: BimanualMotion, bound: float) -> bool:
        steps = np.linalg.norm(np.diff(motion.transl, axis=0), axis=-1)
        return bool(np.any(steps > np.maximum(own, bound) + 1e-9))

    assert too_fast(separate_hands(clip).motion, 0.002)  # the default bound is 1 cm
    done = separate_hands(clip, config=SeparationConfig(max_wrist_step_m=0.002))
    assert not too_fast(done.motion, 0.002)
    assert done.frames_left == 0 < done.frames_before
    with pytest.raises(ConfigError, match='max_wrist_step_m'):
        SeparationConfig(max_wrist_step_m=0.0)
