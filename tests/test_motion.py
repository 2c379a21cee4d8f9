"""Tests for handx_gen.motion.container: BimanualMotion and the handx-motion/1 file format."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from handx_gen.data.workspace import CANONICAL_WRIST_M
from handx_gen.errors import MotionError, MotionFormatError
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import HandSide
from handx_gen.motion import MOTION_FORMAT, BimanualMotion, rest_hand, swap_left_right_words

MIRROR_X = np.array([-1.0, 1.0, 1.0])


def _smooth_params(rng: np.random.Generator, num_frames: int, fps: float = 30.0):
    """Smooth random MANO parameters: sinusoids of 0.3-1.2 Hz around a random offset."""
    t_s = np.arange(num_frames) / fps

    def signal(shape, offset_scale, amp_scale):
        offset = rng.normal(scale=offset_scale, size=shape)
        amp = rng.normal(scale=amp_scale, size=shape)
        freq_hz = rng.uniform(0.3, 1.2, size=shape)
        phase = rng.uniform(0, 2 * np.pi, size=shape)
        t = t_s.reshape((-1,) + (1,) * len(shape))
        return offset + amp * np.sin(2 * np.pi * freq_hz * t + phase)

    global_orient = signal((2, 3), 0.8, 0.3)  # (T, 2, 3)
    hand_pose = signal((2, 15, 3), 0.3, 0.2)  # (T, 2, 15, 3)
    transl = signal((2, 3), 0.2, 0.05)  # (T, 2, 3)
    return global_orient, hand_pose, transl


def _motion(seed: int = 0, num_frames: int = 30, **kwargs) -> BimanualMotion:
    rng = np.random.default_rng(seed)
    return BimanualMotion.from_mano(30.0, *_smooth_params(rng, num_frames), **kwargs)


def _rotation_angle_between(aa_a: np.ndarray, aa_b: np.ndarray) -> np.ndarray:
    """Angle (rad) of R_a^T R_b for axis-angle arrays (..., 3)."""
    rel = np.swapaxes(axis_angle_to_matrix(aa_a), -1, -2) @ axis_angle_to_matrix(aa_b)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _assert_same_motion(a: BimanualMotion, b: BimanualMotion) -> None:
    assert a.fps == b.fps
    for name in ('global_orient', 'hand_pose', 'transl', 'keypoints'):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype
    if a.betas is None:
        assert b.betas is None
    else:
        np.testing.assert_array_equal(a.betas, b.betas)
    assert a.texts == b.texts
    assert a.annotation == b.annotation


# ---------------------------------------------------------------------- construction


def test_fields_shapes_dtypes_and_read_only():
    motion = _motion(num_frames=12)
    assert motion.num_frames == 12 == len(motion)
    assert motion.duration_s == pytest.approx(12 / 30)
    assert motion.global_orient.shape == (12, 2, 3)
    assert motion.hand_pose.shape == (12, 2, 15, 3)
    assert motion.transl.shape == (12, 2, 3)
    assert motion.keypoints.shape == (12, 2, 21, 3)
    assert motion.keypoints.dtype == np.float32
    assert motion.global_orient.dtype == np.float64
    for name in ('global_orient', 'hand_pose', 'transl', 'keypoints'):
        with pytest.raises(ValueError):
            getattr(motion, name)[0, 0, 0] = 1.0


def test_constructor_copies_inputs():
    rng = np.random.default_rng(1)
    go, hp, tr = _smooth_params(rng, 5)
    kp = rng.normal(size=(5, 2, 21, 3))
    annotation = {'tags': ['a']}
    motion = BimanualMotion(30, go, hp, tr, kp, annotation=annotation)
    go[:] = 0.0
    kp[:] = 0.0
    annotation['tags'].append('b')
    assert np.abs(motion.global_orient).max() > 0
    assert np.abs(motion.keypoints).max() > 0
    assert motion.annotation == {'tags': ['a']}
    motion.annotation['tags'].append('c')  # a copy: the motion keeps its own
    assert motion.annotation == {'tags': ['a']}


def test_from_mano_rest_pose_is_rest_skeleton_plus_transl():
    # With zero rotations, FK puts each hand's rest keypoints at J + transl.
    transl = np.array([[[0.1, -0.2, 0.3], [-0.1, 0.05, 0.2]]])  # (1, 2, 3)
    motion = BimanualMotion.from_mano(
        30, np.zeros((1, 2, 3)), np.zeros((1, 2, 15, 3)), transl)
    for side in HandSide:
        expected = default_skeleton(side).keypoints_rest() + transl[0, side]
        np.testing.assert_allclose(motion.keypoints[0, side], expected, atol=1e-6)
    # Left hand is the mirror image: its fingers point +x, the right hand's -x.
    left_rel = motion.keypoints[0, 0, 12] - motion.keypoints[0, 0, 0]
    right_rel = motion.keypoints[0, 1, 12] - motion.keypoints[0, 1, 0]
    assert left_rel[0] > 0.1 and right_rel[0] < -0.1


def test_from_mano_uses_given_skeletons_and_checks_sides():
    big = (default_skeleton(HandSide.LEFT, 0.2), default_skeleton(HandSide.RIGHT, 0.2))
    rng = np.random.default_rng(2)
    go, hp, tr = _smooth_params(rng, 3)
    small = BimanualMotion.from_mano(30, go, hp, tr)
    large = BimanualMotion.from_mano(30, go, hp, tr, skeletons=big)
    # Wrist keypoints agree (the default wrist is at the origin), the fingers do not.
    np.testing.assert_allclose(small.keypoints[:, :, 0], large.keypoints[:, :, 0], atol=1e-6)
    assert np.abs(small.keypoints - large.keypoints).max() > 1e-3
    with pytest.raises(MotionError, match='LEFT'):
        BimanualMotion.from_mano(30, go, hp, tr, skeletons=big[::-1])
    with pytest.raises(MotionError, match='got 1 items'):
        BimanualMotion.from_mano(30, go, hp, tr, skeletons=big[:1])


@pytest.mark.parametrize('fps', [0.0, -30.0, float('nan'), float('inf'), 'fast', True, 1e9,
                                 1e-9, 5e-324, 1 / 3600])
def test_bad_fps_rejected(fps):
    rng = np.random.default_rng(3)
    with pytest.raises(MotionError, match='fps must be'):
        BimanualMotion.from_mano(fps, *_smooth_params(rng, 2))


def test_clip_size_bounded_by_frames_and_duration():
    from handx_gen.rates import MAX_DURATION_S, MAX_FRAMES, check_clip_size
    check_clip_size(MAX_FRAMES, 30.0)
    with pytest.raises(MotionError, match=f'at most {MAX_FRAMES} are accepted'):
        check_clip_size(MAX_FRAMES + 1, 1000.0)
    with pytest.raises(MotionError, match=f'at most {MAX_DURATION_S:g} s are accepted'):
        check_clip_size(7201, 2.0)


def test_shape_errors_name_field_and_shapes():
    rng = np.random.default_rng(4)
    go, hp, tr = _smooth_params(rng, 4)
    kp = np.zeros((4, 2, 21, 3))
    with pytest.raises(MotionError, match=r'global_orient.*\(T, 2, 3\).*\(4, 3\)'):
        BimanualMotion(30, go[:, 0], hp, tr, kp)
    with pytest.raises(MotionError, match=r'hand_pose.*\(4, 2, 15, 3\).*\(4, 2, 45\)'):
        BimanualMotion(30, go, hp.reshape(4, 2, 45), tr, kp)
    with pytest.raises(MotionError, match=r'keypoints.*\(4, 2, 21, 3\).*\(3, 2, 21, 3\)'):
        BimanualMotion(30, go, hp, tr, kp[:3])
    with pytest.raises(MotionError, match=r'T >= 1'):
        BimanualMotion(30, go[:0], hp[:0], tr[:0], kp[:0])
    with pytest.raises(MotionError, match=r'betas.*\(2, 10\).*\(2, 16\)'):
        BimanualMotion(30, go, hp, tr, kp, betas=np.zeros((2, 16)))


def test_non_finite_and_bad_types_rejected():
    rng = np.random.default_rng(5)
    go, hp, tr = _smooth_params(rng, 4)
    kp = np.zeros((4, 2, 21, 3))
    bad = tr.copy()
    bad[2, 1, 0] = np.nan
    with pytest.raises(MotionError, match=r'transl.*non-finite.*\(2, 1, 0\)'):
        BimanualMotion(30, go, hp, bad, kp)
    with pytest.raises(MotionError, match='texts\\[1\\].*int'):
        BimanualMotion(30, go, hp, tr, kp, texts=['ok', 3])
    with pytest.raises(MotionError, match='annotation.*JSON'):
        BimanualMotion(30, go, hp, tr, kp, annotation={'x': object()})
    with pytest.raises(MotionError, match='numeric'):
        BimanualMotion(30, go, hp, tr, np.full((4, 2, 21, 3), 'a'))
    # A bare string is one text, not a sequence of characters.
    assert BimanualMotion(30, go, hp, tr, kp, texts='wave').texts == ('wave',)


# ---------------------------------------------------------------------- files


def test_save_load_round_trip_all_fields(tmp_path):
    betas = np.random.default_rng(6).normal(size=(2, 10))
    annotation = {'contacts': [[0, 1], [3, 4]], 'source': 'unit-test', 'score': 0.5}
    motion = _motion(seed=6, num_frames=17, betas=betas,
                     texts=['both hands clap', 'applause'], annotation=annotation)
    path = motion.save(tmp_path / 'clip.npz')
    loaded = BimanualMotion.load(path)
    _assert_same_motion(motion, loaded)
    assert loaded.annotation == annotation
    assert loaded.texts == ('both hands clap', 'applause')
    # The file holds exactly the documented entries, readable without pickle.
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {
            'format', 'fps', 'keypoints', 'global_orient', 'transl', 'hand_pose', 'betas',
            'texts', 'annotation'}
        assert str(archive['format']) == MOTION_FORMAT
        assert archive['keypoints'].dtype == np.float32
        assert archive['texts'].dtype.kind == 'U'
    assert not [p for p in tmp_path.iterdir() if p.name != 'clip.npz']  # no temp files left


def test_save_load_round_trip_minimal(tmp_path):
    motion = _motion(seed=7, num_frames=1)
    loaded = BimanualMotion.load(motion.save(tmp_path / 'one_frame.npz'))
    _assert_same_motion(motion, loaded)
    assert loaded.betas is None and loaded.texts == () and loaded.annotation is None


def _rewrite(path, **changes):
    """Rewrite an npz file with entries replaced (value None deletes the entry)."""
    with np.load(path, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files}
    for name, value in changes.items():
        if value is None:
            entries.pop(name)
        else:
            entries[name] = value
    with open(path, 'wb') as handle:
        np.savez(handle, **entries)


def test_fingerprint_survives_a_file_and_tells_clips_apart(tmp_path):
    motion = _motion(0)
    loaded = BimanualMotion.load(motion.save(tmp_path / 'clip.npz'))
    assert loaded.fingerprint() == motion.fingerprint() and len(motion.fingerprint()) == 16
    assert _motion(1).fingerprint() != motion.fingerprint()  # same length and rate
    assert motion.mirrored().fingerprint() != motion.fingerprint()


def test_load_rejects_other_format_version(tmp_path):
    path = _motion(num_frames=3).save(tmp_path / 'm.npz')
    _rewrite(path, format=np.array('handx-motion/2'))
    with pytest.raises(MotionFormatError, match="'handx-motion/2'.*supported: 'handx-motion/1'"):
        BimanualMotion.load(path)
    _rewrite(path, format=None)
    with pytest.raises(MotionFormatError, match='no "format" entry'):
        BimanualMotion.load(path)


def test_load_rejects_nan_wrong_shape_and_missing_entry(tmp_path):
    motion = _motion(num_frames=3)
    path = motion.save(tmp_path / 'm.npz')
    keypoints = motion.keypoints.copy()
    keypoints[1, 0, 5, 2] = np.nan
    _rewrite(path, keypoints=keypoints)
    with pytest.raises(MotionFormatError, match=r'm\.npz.*keypoints.*non-finite'):
        BimanualMotion.load(path)

    path = motion.save(tmp_path / 'm.npz')
    _rewrite(path, hand_pose=motion.hand_pose.reshape(3, 2, 45))
    with pytest.raises(MotionFormatError, match=r'hand_pose.*\(3, 2, 15, 3\).*\(3, 2, 45\)'):
        BimanualMotion.load(path)

    path = motion.save(tmp_path / 'm.npz')
    _rewrite(path, transl=None)
    with pytest.raises(MotionFormatError, match=r"missing entries \['transl'\]"):
        BimanualMotion.load(path)

    path = motion.save(tmp_path / 'm.npz')
    _rewrite(path, fps=np.array([30.0, 30.0]))
    with pytest.raises(MotionFormatError, match='fps'):
        BimanualMotion.load(path)


def test_load_rejects_truncated_missing_and_foreign_files(tmp_path):
    path = _motion(num_frames=20).save(tmp_path / 'm.npz')
    data = path.read_bytes()
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MotionFormatError, match='truncated.npz.*corrupt or truncated'):
        BimanualMotion.load(truncated)

    # Damage the compressed member data but keep the zip directory: CRC or zlib failure.
    corrupt = tmp_path / 'corrupt.npz'
    middle = len(data) // 2
    corrupt.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64])
                        + data[middle + 64:])
    with pytest.raises(MotionFormatError, match='corrupt.npz.*corrupt or truncated'):
        BimanualMotion.load(corrupt)

    with pytest.raises(MotionFormatError, match='not found.*absent.npz'):
        BimanualMotion.load(tmp_path / 'absent.npz')

    text = tmp_path / 'notes.npz'
    text.write_text('just some text\n')
    with pytest.raises(MotionFormatError, match="notes.npz.*starts with b'just som"):
        BimanualMotion.load(text)

    single = tmp_path / 'single.npy'
    np.save(single, np.zeros(3))
    with pytest.raises(MotionFormatError, match='single.npy.*not a'):
        BimanualMotion.load(single)

    with zipfile.ZipFile(tmp_path / 'empty.npz', 'w'):
        pass
    with pytest.raises(MotionFormatError, match='no "format" entry'):
        BimanualMotion.load(tmp_path / 'empty.npz')


def test_load_never_unpickles(tmp_path):
    path = _motion(num_frames=2).save(tmp_path / 'm.npz')
    _rewrite(path, texts=np.array(['a', None], dtype=object))
    with pytest.raises(MotionFormatError, match='m.npz'):
        BimanualMotion.load(path)


# ---------------------------------------------------------------------- resampling


def test_resample_up_and_down_recovers_original_and_keeps_duration():
    motion = _motion(seed=8, num_frames=60)
    up = motion.resample(60)
    assert up.num_frames == 120 and up.fps == 60
    assert up.duration_s == pytest.approx(motion.duration_s)
    back = up.resample(30)
    assert back.num_frames == 60
    assert back.duration_s == pytest.approx(motion.duration_s)
    np.testing.assert_allclose(back.transl, motion.transl, atol=1e-9)
    assert _rotation_angle_between(back.hand_pose, motion.hand_pose).max() < 1e-6
    assert _rotation_angle_between(back.global_orient, motion.global_orient).max() < 1e-6
    np.testing.assert_allclose(back.keypoints, motion.keypoints, atol=1e-5)


def test_resample_through_non_aligned_rate_stays_close():
    # 30 -> 50 -> 30: most output frames fall between input frames twice over.
    motion = _motion(seed=9, num_frames=60)
    back = motion.resample(50).resample(30)
    assert back.num_frames == 60
    # Interpolation error of smooth (< 1.2 Hz) motion sampled at 30 fps is below ~1e-2.
    assert _rotation_angle_between(back.hand_pose, motion.hand_pose)[:-2].max() < 1e-2
    np.testing.assert_allclose(back.transl[:-2], motion.transl[:-2], atol=2e-3)
    np.testing.assert_allclose(back.keypoints[:-2], motion.keypoints[:-2], atol=3e-3)


def test_resample_midpoints_follow_slerp_and_fk():
    # Rotation about a fixed axis with a constant step: slerp midpoints are half steps.
    num_frames = 6
    axis = np.array([0.0, 0.6, 0.8])
    angle = 0.25 * np.arange(num_frames)  # rad per frame
    global_orient = np.zeros((num_frames, 2, 3))
    global_orient[:, 0] = angle[:, None] * axis
    global_orient[:, 1] = -angle[:, None] * axis
    hand_pose = np.zeros((num_frames, 2, 15, 3))
    hand_pose[:, :, 4, 0] = angle[:, None]  # middle1 flexes steadily
    transl = np.zeros((num_frames, 2, 3))
    transl[:, :, 2] = 0.01 * np.arange(num_frames)[:, None]
    motion = BimanualMotion.from_mano(10, global_orient, hand_pose, transl)
    up = motion.resample(20)
    assert up.num_frames == 12
    t = np.minimum(np.arange(12) / 2.0, num_frames - 1)  # source frame of each output
    np.testing.assert_allclose(up.global_orient[:, 0], (0.25 * t)[:, None] * axis, atol=1e-12)
    np.testing.assert_allclose(up.hand_pose[:, 1, 4, 0], 0.25 * t, atol=1e-12)
    np.testing.assert_allclose(up.transl[:, 0, 2], 0.01 * t, atol=1e-12)
    # Re-posed keypoints equal forward kinematics of the resampled parameters (the default
    # skeletons made the input), which linear keypoint interpolation would not.
    fk = BimanualMotion.from_mano(20, up.global_orient, up.hand_pose, up.transl)
    np.testing.assert_allclose(up.keypoints, fk.keypoints, atol=2e-6)
    linear = 0.5 * (motion.keypoints[:-1] + motion.keypoints[1:])
    assert np.abs(linear - fk.keypoints[1:-1:2]).max() > 1e-3


def test_resample_takes_the_short_way_across_pi():
    # 3.0 rad and 3.2 rad about one axis; the second written as -(2 pi - 3.2) rad, so the
    # quaternions have opposite signs. The midpoint must be 3.1 rad, not a long detour.
    axis = np.array([0.48, 0.6, 0.64])
    global_orient = np.zeros((2, 2, 3))
    global_orient[0, :] = 3.0 * axis
    global_orient[1, :] = -(2 * np.pi - 3.2) * axis
    motion = BimanualMotion.from_mano(
        10, global_orient, np.zeros((2, 2, 15, 3)), np.zeros((2, 2, 3)))
    middle = motion.resample(20).global_orient[1]  # (2, 3)
    assert _rotation_angle_between(middle, np.tile(3.1 * axis, (2, 1))).max() < 1e-9


def test_resample_keeps_fk_consistency_for_any_skeleton():
    skeletons = (default_skeleton(HandSide.LEFT, 0.16), default_skeleton(HandSide.RIGHT, 0.21))
    rng = np.random.default_rng(10)
    params = _smooth_params(rng, 20)
    motion = BimanualMotion.from_mano(30, *params, skeletons=skeletons)
    down = motion.resample(24)
    fk = BimanualMotion.from_mano(24, down.global_orient, down.hand_pose, down.transl,
                                  skeletons=skeletons)
    np.testing.assert_allclose(down.keypoints, fk.keypoints, atol=2e-6)


def test_resample_single_frame_and_metadata():
    motion = _motion(num_frames=1, texts=['still'], annotation={'k': 1})
    up = motion.resample(90)
    assert up.num_frames == 3
    for frame in range(3):
        np.testing.assert_array_equal(up.keypoints[frame], motion.keypoints[0])
    assert up.texts == ('still',) and up.annotation == {'k': 1}
    with pytest.raises(MotionError, match='fps'):
        motion.resample(0)


# ---------------------------------------------------------------------- slicing, joining


def test_slicing_over_frames():
    motion = _motion(num_frames=30, texts=['x'])
    part = motion[10:20]
    assert part.num_frames == 10 and part.fps == 30 and part.texts == ('x',)
    np.testing.assert_array_equal(part.keypoints, motion.keypoints[10:20])
    np.testing.assert_array_equal(part.hand_pose, motion.hand_pose[10:20])
    every_other = motion[1::2]
    assert every_other.num_frames == 15 and every_other.fps == 15
    np.testing.assert_array_equal(every_other.transl, motion.transl[1::2])
    assert motion[-5:].num_frames == 5
    with pytest.raises(MotionError, match='selects no frame'):
        motion[40:]
    with pytest.raises(MotionError, match='step'):
        motion[::-1]
    with pytest.raises(TypeError, match='slices'):
        motion[3]


def test_concatenate():
    motion = _motion(num_frames=30, texts=['a'])
    joined = BimanualMotion.concatenate([motion[:10], motion[10:25], motion[25:]])
    _assert_same_motion(joined, motion)
    mixed = BimanualMotion.concatenate([motion[:10], motion[10:].with_texts('b')])
    assert mixed.texts == ()
    with pytest.raises(MotionError, match='fps'):
        BimanualMotion.concatenate([motion, motion.resample(60)])
    with pytest.raises(MotionError, match='betas'):
        BimanualMotion.concatenate([motion, _motion(num_frames=2, betas=np.ones((2, 10)))])
    with pytest.raises(MotionError, match='at least one'):
        BimanualMotion.concatenate([])


def test_with_texts_and_annotation_and_repr():
    motion = _motion(num_frames=4)
    tagged = motion.with_texts(['wave', 'hello']).with_annotation({'n': 2})
    assert tagged.texts == ('wave', 'hello') and tagged.annotation == {'n': 2}
    assert motion.texts == () and motion.annotation is None
    np.testing.assert_array_equal(tagged.keypoints, motion.keypoints)
    assert tagged.with_annotation(None).annotation is None
    text = repr(tagged)
    assert 'frames=4' in text and 'fps=30' in text and len(text) < 120


# ---------------------------------------------------------------------- mirroring


def test_mirrored_twice_is_identity():
    motion = _motion(seed=11, num_frames=8, betas=np.arange(20.0).reshape(2, 10),
                     texts=['Left hand taps the right palm'])
    twice = motion.mirrored().mirrored()
    _assert_same_motion(twice, motion)


def test_mirrored_matches_fk_of_mirrored_parameters():
    motion = _motion(seed=12, num_frames=10)
    mirrored = motion.mirrored()
    # Hand-built expectation: every keypoint x -> -x, and the hands swap index.
    expected = motion.keypoints[:, ::-1] * MIRROR_X
    np.testing.assert_allclose(mirrored.keypoints, expected, atol=1e-7)
    # FK of the mirrored parameters with the default skeletons gives the same points.
    fk = BimanualMotion.from_mano(30, mirrored.global_orient, mirrored.hand_pose,
                                  mirrored.transl)
    np.testing.assert_allclose(fk.keypoints, expected, atol=2e-6)


def test_mirrored_metadata_and_swap_hands():
    betas = np.stack([np.zeros(10), np.ones(10)])
    motion = _motion(num_frames=3, betas=betas, texts=['LEFT hand waves, Right rests'],
                     annotation={'k': 1})
    mirrored = motion.mirrored()
    np.testing.assert_array_equal(mirrored.betas, betas[::-1])
    assert mirrored.texts == ('RIGHT hand waves, Left rests',)
    assert mirrored.annotation is None
    _assert_same_motion(motion.swap_hands(), mirrored)


def test_swap_left_right_words():
    assert swap_left_right_words('left, Right and LEFT') == 'right, Left and RIGHT'
    assert swap_left_right_words('leftover righteous') == 'leftover righteous'


def test_segment_keeps_frames_and_everything_else():
    motion = _motion(num_frames=12).with_texts('a clip')
    part = motion.segment(3, 9)
    assert part.num_frames == 6 and part.fps == motion.fps and part.texts == ('a clip',)
    np.testing.assert_array_equal(part.keypoints, motion.keypoints[3:9])
    np.testing.assert_array_equal(part.hand_pose, motion.hand_pose[3:9])
    for start, stop in ((3, 3), (-1, 4), (0, 13), (5, 2)):
        with pytest.raises(MotionError, match='non-empty interval'):
            motion.segment(start, stop)
    with pytest.raises(MotionError, match='integer'):
        motion.segment(1.5, 4)


# ---------------------------------------------------------------------- one hand absent


def _one_hand(absent: HandSide = HandSide.LEFT, num_frames: int = 12, seed: int = 3,
              **kwargs) -> BimanualMotion:
    """A motion of one hand; the absent hand's parameters are NaN, as a tracker leaves them."""
    global_orient, hand_pose, transl = _smooth_params(np.random.default_rng(seed), num_frames)
    for array in (global_orient, hand_pose, transl):
        array[:, absent] = np.nan
    present = np.ones(2, dtype=bool)
    present[absent] = False
    return BimanualMotion.from_mano(30.0, global_orient, hand_pose, transl, present=present,
                                    **kwargs)


def test_both_hands_are_present_by_default():
    motion = _motion(num_frames=4)
    assert motion.present.tolist() == [True, True] and not motion.present.flags.writeable
    assert motion.absent_sides == () and motion.present_sides == (HandSide.LEFT, HandSide.RIGHT)
    assert motion.hands_present() == 'both hands'


def test_an_absent_hand_holds_the_rest_hand_still():
    motion = _one_hand(HandSide.LEFT)
    rest = rest_hand(HandSide.LEFT)
    assert motion.present.tolist() == [False, True]
    assert motion.absent_sides == (HandSide.LEFT,)
    assert motion.hands_present() == 'the right hand only'
    for name in ('global_orient', 'hand_pose', 'transl'):
        np.testing.assert_array_equal(getattr(motion, name)[:, 0],
                                      np.broadcast_to(getattr(rest, name),
                                                      getattr(motion, name)[:, 0].shape))
    np.testing.assert_allclose(motion.keypoints[:, 0], np.broadcast_to(
        rest.keypoints, (12, 21, 3)), atol=1e-6)
    assert np.all(np.isfinite(motion.keypoints))
    # the present hand is what was given
    np.testing.assert_array_equal(motion.hand_pose[:, 1], _motion(3, 12).hand_pose[:, 1])
    # what is given for an absent hand is not kept, finite or not
    arrays = [np.array(a) for a in (motion.global_orient, motion.hand_pose, motion.transl,
                                    motion.keypoints)]
    arrays[3][:, 0] += 1.0
    again = BimanualMotion(30.0, *arrays, present=motion.present)
    np.testing.assert_array_equal(again.keypoints, motion.keypoints)
    assert 'the right hand only' in repr(motion)


def test_rest_hand_sits_on_its_canonical_spot_palm_down_fingers_forward():
    for side in HandSide:
        rest = rest_hand(side)
        np.testing.assert_allclose(rest.keypoints[0], CANONICAL_WRIST_M[side], atol=1e-12)
        np.testing.assert_array_equal(rest.hand_pose, 0.0)
        middle_tip = rest.keypoints[12] - rest.keypoints[0]
        assert middle_tip[1] > 0.15 and abs(middle_tip[0]) < 1e-9  # fingers forward
        R = axis_angle_to_matrix(rest.global_orient)
        np.testing.assert_allclose(R @ [0.0, -1.0, 0.0], [0.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(rest_hand(HandSide.LEFT).keypoints,
                               rest_hand(HandSide.RIGHT).keypoints * MIRROR_X, atol=1e-12)


@pytest.mark.parametrize('present, message', [
    ([False, False], 'at least one hand'),
    ([1, 0], 'two bools'),
    ([True], 'two bools'),
    ([[True, False]], 'two bools'),
    ('right', 'two bools'),
])
def test_present_is_validated(present, message):
    global_orient, hand_pose, transl = _smooth_params(np.random.default_rng(0), 3)
    with pytest.raises(MotionError, match=message):
        BimanualMotion.from_mano(30.0, global_orient, hand_pose, transl, present=present)


def test_a_present_hand_must_still_be_finite():
    global_orient, hand_pose, transl = _smooth_params(np.random.default_rng(0), 3)
    hand_pose[1, 1, 4, 0] = np.nan  # the right hand, which is present
    with pytest.raises(MotionError, match=r'hand_pose has 1 non-finite values \(first at index '
                                          r'\(1, 1, 4, 0\)\)'):
        BimanualMotion.from_mano(30.0, global_orient, hand_pose, transl,
                                 present=[False, True])


def test_one_hand_file_round_trip_and_what_other_readers_see(tmp_path):
    motion = _one_hand(HandSide.RIGHT, texts=['the left hand waves'], annotation={'a': 1})
    path = motion.save(tmp_path / 'one.npz')
    loaded = BimanualMotion.load(path)
    _assert_same_motion(loaded, motion)
    np.testing.assert_array_equal(loaded.present, [True, False])
    assert loaded.fingerprint() == motion.fingerprint()
    with np.load(path) as raw:  # the file: `present`, and NaN where the hand is absent
        np.testing.assert_array_equal(raw['present'], [True, False])
        for name in ('keypoints', 'global_orient', 'transl', 'hand_pose'):
            assert np.isnan(raw[name][:, 1]).all() and np.isfinite(raw[name][:, 0]).all()


def test_two_hand_files_stay_as_they_were(tmp_path):
    """Files without `present` (every file written before it) hold both hands; a two-hand
    motion writes no `present` and keeps its fingerprint."""
    motion = _motion(num_frames=5)
    path = motion.save(tmp_path / 'two.npz')
    with np.load(path) as raw:
        assert 'present' not in raw.files
    assert BimanualMotion.load(path).present.tolist() == [True, True]
    one = _one_hand(HandSide.LEFT, num_frames=5)
    two = BimanualMotion(30.0, one.global_orient, one.hand_pose, one.transl, one.keypoints)
    assert two.fingerprint() != one.fingerprint()  # same arrays, other hands


@pytest.mark.parametrize('present, message', [
    (np.array([1, 0]), r'"present" must be \(2,\) bool'),
    (np.array([True, False, True]), r'"present" must be \(2,\) bool'),
    (np.array([False, False]), 'at least one hand'),
])
def test_load_rejects_a_bad_present_entry(tmp_path, present, message):
    motion = _motion(num_frames=3)
    path = tmp_path / 'bad.npz'
    np.savez(path, format=np.array(MOTION_FORMAT), fps=np.array(30.0),
             keypoints=motion.keypoints, global_orient=motion.global_orient,
             transl=motion.transl, hand_pose=motion.hand_pose, present=present)
    with pytest.raises(MotionFormatError, match=message):
        BimanualMotion.load(path)


def test_load_rejects_nan_in_the_present_hand(tmp_path):
    motion = _one_hand(HandSide.LEFT, num_frames=3)
    path = motion.save(tmp_path / 'one.npz')
    with np.load(path) as raw:
        entries = dict(raw)
    entries['keypoints'][2, 1, 5, 0] = np.nan
    np.savez(path, **entries)
    with pytest.raises(MotionFormatError, match='keypoints has 1 non-finite'):
        BimanualMotion.load(path)


def test_derived_motions_keep_the_absent_hand():
    motion = _one_hand(HandSide.LEFT, num_frames=12)
    for derived in (motion.segment(2, 7), motion[::2], motion.resample(60.0),
                    motion.with_texts('x'), BimanualMotion.concatenate([motion, motion])):
        np.testing.assert_array_equal(derived.present, [False, True])
        np.testing.assert_allclose(derived.keypoints[:, 0], np.broadcast_to(
            rest_hand(HandSide.LEFT).keypoints, derived.keypoints[:, 0].shape), atol=1e-6)
    mirrored = motion.mirrored()  # the right hand becomes a left hand: now the right is absent
    np.testing.assert_array_equal(mirrored.present, [True, False])
    np.testing.assert_allclose(mirrored.keypoints[:, 0], motion.keypoints[:, 1] * MIRROR_X,
                               atol=1e-6)
    np.testing.assert_allclose(mirrored.keypoints[:, 1], np.broadcast_to(
        rest_hand(HandSide.RIGHT).keypoints, (12, 21, 3)), atol=1e-6)
    with pytest.raises(MotionError, match='motion 1 holds both hands, motion 0 the right hand '
                                          'only.*dropout'):
        BimanualMotion.concatenate([motion, _motion(num_frames=4)])
