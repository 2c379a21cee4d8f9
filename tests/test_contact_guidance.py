"""Contacts read from prompts, and contact completion of generated clips."""

from __future__ import annotations

import numpy as np
import pytest
from hand_pairs import facing_hands

from handx_gen.annotate.contact_text import MAX_REPEATS, StatedContact, stated_contacts
from handx_gen.annotate.features import extract_features
from handx_gen.annotate.surface import hand_surface, inter_hand_penetration, part_distance
from handx_gen.errors import ConfigError
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import HandSide
from handx_gen.models.contact_guidance import ContactGuidanceConfig, complete_contacts
from handx_gen.motion import BimanualMotion

L, R = HandSide.LEFT, HandSide.RIGHT


def pairs(text: str) -> list[str]:
    return [c.to_json() for c in stated_contacts(text)]


# ------------------------------------------------------------------------------ reading


def test_narration_counting_states_each_fingertip_in_order():
    text = ('The hands approach each other, and then the tip of the right index finger briefly '
            'touches the tip of the left little finger. The tip of the right index finger taps '
            'the tip of the left ring finger; after that, the tip of the right index finger '
            'taps the left middle fingertip.')
    assert pairs(text) == ['left.little_tip~right.index_tip', 'left.ring_tip~right.index_tip',
                           'left.middle_tip~right.index_tip']


def test_counts_repeat_a_contact():
    assert pairs('The right index fingertip touches the left palm five times.') == \
        ['left.palm~right.index_tip'] * 5
    assert pairs('tap your right palm with your left index finger 4x') == \
        ['left.index_tip~right.palm'] * 4
    assert pairs('the palms strike together twice') == ['left.palm~right.palm'] * 2
    assert len(stated_contacts('tap your left palm with your right index 40 times')) \
        == MAX_REPEATS


def test_both_hands_and_palm_phrases():
    assert pairs('the index, middle and ring fingertips of both hands meet') == [
        'left.index_tip~right.index_tip', 'left.middle_tip~right.middle_tip',
        'left.ring_tip~right.ring_tip']
    assert pairs('press your palms together') == ['left.palm~right.palm']
    assert pairs('The tip of the right middle finger touches the back of the left hand '
                 'as the right index fingertip meets the back of the left hand.') == [
        'left.back~right.middle_tip', 'left.back~right.index_tip']


def test_contacts_within_one_hand_and_no_contact_are_not_read():
    assert pairs('The right thumb tip touches the index fingertip twice.') == []
    assert pairs('The tip of the right thumb and the index fingertip of the same hand meet.') \
        == []
    assert pairs('tap your left thumb and pointer together twice') == []
    assert pairs('Both hands wave. The hands move apart.') == []


def test_users_counting_requests():
    assert pairs('Count to 3 on your left hand by tapping its fingers with your right index.') \
        == ['left.index_tip~right.index_tip', 'left.middle_tip~right.index_tip',
            'left.ring_tip~right.index_tip']
    assert pairs('count off the fingers of your right hand with your left index') == [
        f'left.index_tip~right.{f}_tip' for f in ('index', 'middle', 'ring', 'little')]


@pytest.mark.parametrize('text, expected', [
    ('tap your left palm with your right index finger three times',
     ['left.palm~right.index_tip'] * 3),
    ('Use your left pointer to poke the right palm 2 times.', ['left.index_tip~right.palm'] * 2),
    ('with the right index, touch each fingertip of your left hand',
     [f'left.{f}_tip~right.index_tip' for f in ('thumb', 'index', 'middle', 'ring', 'little')]),
])
def test_requests_in_users_words(text, expected):
    # Written for this test; the held-out prompts (benchmarks/prompts/heldout) measure the
    # reader with the rest of generation and are not read here.
    assert sorted(pairs(text)) == sorted(expected)


# ------------------------------------------------------------------------------ completion


BACKS = 'The back of the left hand touches the back of the right hand.'


def back_gap(motion: BimanualMotion) -> np.ndarray:
    left, right = (hand_surface(motion.keypoints[:, s], s) for s in HandSide)
    return part_distance(left, HandPart.BACK, right, HandPart.BACK).distance


def backs_touch(motion: BimanualMotion) -> bool:
    wanted = {PartRef(L, HandPart.BACK), PartRef(R, HandPart.BACK)}
    return any({e.a, e.b} == wanted for e in extract_features(motion).contacts)


def test_a_near_miss_is_made_a_touch():
    clip = facing_hands(0.026)  # the backs pass about 2.5 cm apart
    assert back_gap(clip).min() > 0.015
    assert not backs_touch(clip)
    done = complete_contacts(clip, BACKS)
    assert done.stated == (StatedContact(PartRef(L, HandPart.BACK), PartRef(R, HandPart.BACK)),)
    assert done.completed == (True,) and done.already == (False,)
    assert backs_touch(done.motion)
    gap = back_gap(done.motion)
    assert abs(gap[done.frames[0]] - ContactGuidanceConfig().target_gap_m) < 1e-3
    # only the wrists moved, by the same amount in transl and keypoints, smoothly
    shift = done.motion.transl - clip.transl  # (T, 2, 3)
    np.testing.assert_allclose(done.motion.keypoints - clip.keypoints, shift[:, :, None, :]
                               .repeat(21, axis=2), atol=1e-5)
    np.testing.assert_array_equal(done.motion.hand_pose, clip.hand_pose)
    step = np.linalg.norm(np.diff(shift, axis=0), axis=-1).max()
    assert step <= ContactGuidanceConfig().max_step_m + 1e-9
    assert np.allclose(shift[0], 0) and np.allclose(shift[-1], 0)
    assert done.max_shift_m == pytest.approx(np.linalg.norm(shift, axis=-1).max())
    depth = inter_hand_penetration(*(hand_surface(done.motion.keypoints[:, s], s)
                                     for s in HandSide))
    assert depth.max() <= ContactGuidanceConfig().max_penetration_m


def test_out_of_reach_and_already_touching_are_left_alone():
    far = facing_hands(0.06)
    done = complete_contacts(far, BACKS)
    assert done.motion is far and done.completed == (False,)
    touching = facing_hands(0.0135)
    done = complete_contacts(touching, BACKS)
    assert done.already == (True,) and done.motion is touching
    wider = complete_contacts(far, BACKS, config=ContactGuidanceConfig(max_reach_m=0.25))
    assert wider.completed == (True,) and backs_touch(wider.motion)


def test_a_given_hand_does_not_move():
    clip = facing_hands(0.026)
    free = np.zeros((clip.num_frames, 2), dtype=bool)
    free[:, R] = True  # the left hand is given
    done = complete_contacts(clip, BACKS, free=free)
    assert done.completed == (True,)
    np.testing.assert_array_equal(done.motion.keypoints[:, L], clip.keypoints[:, L])
    np.testing.assert_array_equal(done.motion.transl[:, L], clip.transl[:, L])
    assert backs_touch(done.motion)
    frozen = complete_contacts(clip, BACKS, free=np.zeros((clip.num_frames, 2), dtype=bool))
    assert frozen.motion is clip
    with pytest.raises(ConfigError, match='free must have shape'):
        complete_contacts(clip, BACKS, free=free[:3])


def test_config_is_checked():
    with pytest.raises(ConfigError, match='max_reach_m'):
        ContactGuidanceConfig(max_reach_m=0.0)
    with pytest.raises(ConfigError, match='target_gap_m'):
        ContactGuidanceConfig(target_gap_m=0.01)
    with pytest.raises(ConfigError, match='rounds'):
        ContactGuidanceConfig(rounds=0)
