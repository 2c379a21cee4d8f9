"""Tests for handx_gen.motion.features: the feature layout and the normaliser."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from handx_gen.errors import ConfigError, MotionError, MotionFormatError
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import HandSide
from handx_gen.motion import (
    FEATURE_LAYOUT,
    BimanualMotion,
    FeatureGroup,
    FeatureLayout,
    Normalizer,
)


def _random_motion(seed: int, num_frames: int = 12, **kwargs) -> BimanualMotion:
    """Random parameters with rotation angles below pi (axis-angle is then unique)."""
    rng = np.random.default_rng(seed)

    def rotvecs(shape, max_angle):
        axis = rng.normal(size=shape + (3,))
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        return axis * rng.uniform(0.0, max_angle, size=shape + (1,))

    global_orient = rotvecs((num_frames, 2), 3.0)
    hand_pose = rotvecs((num_frames, 2, 15), 1.2)
    transl = rng.normal(scale=0.2, size=(num_frames, 2, 3))
    return BimanualMotion.from_mano(30.0, global_orient, hand_pose, transl, **kwargs)


# ---------------------------------------------------------------------- layout


def test_layout_slices_cover_dim_without_overlap():
    layout = FEATURE_LAYOUT
    assert layout.dim == 2 * (3 + 6 + 90 + 63) == 324
    covered = np.zeros(layout.dim, dtype=int)
    for side in HandSide:
        for group in FeatureGroup:
            sl = layout.slice(side, group)
            assert sl.stop - sl.start == group.size
            covered[sl] += 1
    assert np.all(covered == 1)
    # Entries are contiguous and in order: left hand first, groups in enum order.
    starts = [entry.slice.start for entry in layout.entries]
    stops = [entry.slice.stop for entry in layout.entries]
    assert starts[0] == 0 and stops[-1] == layout.dim and starts[1:] == stops[:-1]
    assert [e.side for e in layout.entries[:4]] == [HandSide.LEFT] * 4


def test_layout_offsets_and_names():
    layout = FeatureLayout()
    assert layout == FEATURE_LAYOUT
    assert layout.slice(HandSide.LEFT, FeatureGroup.TRANSL) == slice(0, 3)
    assert layout.slice(HandSide.LEFT, FeatureGroup.GLOBAL_ORIENT) == slice(3, 9)
    assert layout.slice(HandSide.LEFT, FeatureGroup.HAND_POSE) == slice(9, 99)
    assert layout.slice(HandSide.LEFT, FeatureGroup.KEYPOINTS) == slice(99, 162)
    assert layout.slice(HandSide.RIGHT, FeatureGroup.TRANSL) == slice(162, 165)
    assert layout.slice('right', 'keypoints') == slice(261, 324)
    assert layout.slice(1, FeatureGroup.KEYPOINTS) == slice(261, 324)
    names = layout.names
    assert len(names) == layout.dim == len(set(names))
    assert names[0] == 'left.transl.x'
    assert names[9] == 'left.hand_pose.index1.r00'
    assert names[-1] == 'right.keypoints.little_tip.z'
    with pytest.raises(ConfigError, match="'pose'.*'global_orient'.*'hand_pose'"):
        layout.slice(HandSide.LEFT, 'pose')
    with pytest.raises(ConfigError, match="'middle'.*'left', 'right'"):
        layout.slice('middle', FeatureGroup.TRANSL)


def test_group_mask():
    layout = FEATURE_LAYOUT
    mask = layout.group_mask([(side, FeatureGroup.KEYPOINTS) for side in HandSide])
    assert mask.shape == (324,) and mask.dtype == bool
    assert mask.sum() == 2 * 63
    assert mask[99:162].all() and mask[261:].all() and not mask[:99].any()
    one = layout.group_mask([(HandSide.RIGHT, FeatureGroup.GLOBAL_ORIENT)])
    assert np.flatnonzero(one).tolist() == list(range(165, 171))
    everything = layout.group_mask([(s, g) for s in HandSide for g in FeatureGroup])
    assert everything.all()
    assert not layout.group_mask([]).any()
    with pytest.raises(ConfigError, match='pairs'):
        layout.group_mask([FeatureGroup.TRANSL])


# ---------------------------------------------------------------------- encode / decode


def test_encode_contents():
    motion = _random_motion(1, num_frames=5)
    features = FEATURE_LAYOUT.encode(motion)
    assert features.shape == (5, 324) and features.dtype == np.float32
    for side in HandSide:
        np.testing.assert_allclose(
            features[:, FEATURE_LAYOUT.slice(side, FeatureGroup.TRANSL)],
            motion.transl[:, side], atol=1e-6)
        # 6D = first two columns of the rotation matrix, column 0 then column 1.
        matrix = axis_angle_to_matrix(motion.global_orient[:, side])  # (T, 3, 3)
        expected_6d = np.concatenate([matrix[:, :, 0], matrix[:, :, 1]], axis=-1)
        np.testing.assert_allclose(
            features[:, FEATURE_LAYOUT.slice(side, FeatureGroup.GLOBAL_ORIENT)],
            expected_6d, atol=1e-6)
        keypoints = features[:, FEATURE_LAYOUT.slice(side, FeatureGroup.KEYPOINTS)]
        keypoints = keypoints.reshape(5, 21, 3)
        np.testing.assert_allclose(keypoints[:, 0], 0.0, atol=0)
        np.testing.assert_allclose(
            keypoints, motion.keypoints[:, side] - motion.keypoints[:, side, :1], atol=1e-6)


def test_encode_rest_pose_is_identity_6d():
    motion = BimanualMotion.from_mano(
        30, np.zeros((1, 2, 3)), np.zeros((1, 2, 15, 3)), np.zeros((1, 2, 3)))
    features = FEATURE_LAYOUT.encode(motion)
    pose = features[0, FEATURE_LAYOUT.slice(HandSide.LEFT, FeatureGroup.HAND_POSE)]
    np.testing.assert_array_equal(pose.reshape(15, 6), np.tile([1, 0, 0, 0, 1, 0], (15, 1)))
    right = features[0, FEATURE_LAYOUT.slice(HandSide.RIGHT, FeatureGroup.KEYPOINTS)]
    rest = default_skeleton(HandSide.RIGHT).keypoints_rest()
    np.testing.assert_allclose(right.reshape(21, 3), rest - rest[0], atol=1e-6)


def test_encode_decode_round_trip():
    motion = _random_motion(2, num_frames=20, texts=['x'])
    features = FEATURE_LAYOUT.encode(motion)
    decoded = FEATURE_LAYOUT.decode(features, motion.fps, texts=motion.texts)
    assert decoded.num_frames == 20 and decoded.fps == 30 and decoded.texts == ('x',)
    np.testing.assert_allclose(decoded.transl, motion.transl, atol=1e-6)
    np.testing.assert_allclose(decoded.global_orient, motion.global_orient, atol=1e-5)
    np.testing.assert_allclose(decoded.hand_pose, motion.hand_pose, atol=1e-5)
    np.testing.assert_allclose(decoded.keypoints, motion.keypoints, atol=1e-5)
    # Encoding the decoded motion gives the same features again.
    np.testing.assert_allclose(FEATURE_LAYOUT.encode(decoded), features, atol=1e-5)


def test_decode_uses_skeletons_ignores_keypoint_group_and_takes_torch():
    skeletons = (default_skeleton(HandSide.LEFT, 0.17), default_skeleton(HandSide.RIGHT, 0.2))
    motion = _random_motion(3, num_frames=4, skeletons=skeletons)
    features = FEATURE_LAYOUT.encode(motion)
    features[:, FEATURE_LAYOUT.group_mask([(s, FeatureGroup.KEYPOINTS) for s in HandSide])] = 9
    decoded = FEATURE_LAYOUT.decode(torch.from_numpy(features), 30, skeletons=skeletons)
    np.testing.assert_allclose(decoded.keypoints, motion.keypoints, atol=1e-5)


def test_decode_projects_unnormalised_6d():
    # Model outputs are not exact 6D rotations; Gram-Schmidt must still give a rotation.
    motion = _random_motion(4, num_frames=3)
    features = FEATURE_LAYOUT.encode(motion)
    sl = FEATURE_LAYOUT.slice(HandSide.LEFT, FeatureGroup.GLOBAL_ORIENT)
    features[:, sl] *= 1.7  # scaling both columns keeps the rotation
    decoded = FEATURE_LAYOUT.decode(features, 30)
    np.testing.assert_allclose(decoded.global_orient, motion.global_orient, atol=1e-5)


def test_decode_rejects_bad_input():
    with pytest.raises(MotionError, match=r'\(T, 324\).*\(5, 323\)'):
        FEATURE_LAYOUT.decode(np.zeros((5, 323)), 30)
    bad = np.zeros((2, 324))
    bad[1, 7] = np.inf
    with pytest.raises(MotionError, match='non-finite'):
        FEATURE_LAYOUT.decode(bad, 30)
    with pytest.raises(MotionError, match='BimanualMotion'):
        FEATURE_LAYOUT.encode(np.zeros((2, 324)))


# ---------------------------------------------------------------------- normaliser


def test_normalizer_streaming_fit_matches_batch_statistics():
    rng = np.random.default_rng(5)
    dim = FEATURE_LAYOUT.dim
    scale = rng.uniform(0.05, 3.0, size=dim)
    chunks = [1000.0 + scale * rng.normal(size=(n, dim)) for n in (7, 1, 40, 13)]
    chunks.append(np.empty((0, dim)))
    normalizer = Normalizer.fit(iter(chunks), std_floor=1e-3)
    everything = np.concatenate(chunks)
    assert normalizer.count == 61
    np.testing.assert_allclose(normalizer.mean, everything.mean(axis=0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(normalizer.std, everything.std(axis=0), rtol=1e-9)


def test_normalizer_floor_and_round_trip_numpy_and_torch():
    rng = np.random.default_rng(6)
    features = [FEATURE_LAYOUT.encode(_random_motion(seed, num_frames=10)) for seed in (7, 8)]
    constant = np.ones((5, FEATURE_LAYOUT.dim), dtype=np.float32)
    normalizer = Normalizer.fit(features)
    assert normalizer.std.min() >= 1e-2
    x = features[0]
    y = normalizer.normalize(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(normalizer.denormalize(y), x, atol=1e-5)
    both = np.concatenate(features)
    unfloored = normalizer.std > 1e-2
    np.testing.assert_allclose(normalizer.normalize(both).std(axis=0)[unfloored], 1.0,
                               atol=1e-4)
    np.testing.assert_allclose(normalizer.normalize(both).mean(axis=0), 0.0, atol=1e-4)
    # A constant feature gets the floor, not a zero division.
    flat = Normalizer.fit([constant], std_floor=0.05)
    np.testing.assert_array_equal(flat.std, 0.05)
    np.testing.assert_array_equal(flat.normalize(constant), 0.0)
    # Torch: same numbers, dtype kept, differentiable.
    xt = torch.tensor(rng.normal(size=(3, 4, FEATURE_LAYOUT.dim)), requires_grad=True)
    yt = normalizer.normalize(xt)
    assert yt.dtype == torch.float64 and yt.shape == xt.shape
    np.testing.assert_allclose(yt.detach().numpy(), normalizer.normalize(xt.detach().numpy()))
    yt.sum().backward()
    np.testing.assert_allclose(xt.grad[0, 0].numpy(), 1.0 / normalizer.std)
    np.testing.assert_allclose(normalizer.denormalize(yt).detach().numpy(),
                               xt.detach().numpy(), atol=1e-12)


def test_normalizer_state_dict_round_trip_and_checkpoint():
    normalizer = Normalizer.fit([FEATURE_LAYOUT.encode(_random_motion(9))], std_floor=0.02)
    state = normalizer.state_dict()
    assert state['layout_version'] == FEATURE_LAYOUT.version
    assert isinstance(state['mean'], np.ndarray)
    restored = Normalizer.from_state_dict(state)
    np.testing.assert_array_equal(restored.mean, normalizer.mean)
    np.testing.assert_array_equal(restored.std, normalizer.std)
    assert restored.count == normalizer.count and restored.std_floor == 0.02
    # Tensor state survives a weights_only checkpoint load.
    buffer = io.BytesIO()
    torch.save({'normalizer': normalizer.state_dict(tensors=True)}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)['normalizer']
    from_checkpoint = Normalizer.from_state_dict(loaded)
    np.testing.assert_array_equal(from_checkpoint.std, normalizer.std)
    assert from_checkpoint.count == normalizer.count


def test_normalizer_rejects_mismatch():
    normalizer = Normalizer.fit([np.zeros((2, FEATURE_LAYOUT.dim))])
    state = normalizer.state_dict()
    state['layout_version'] = 'handx-features/0'
    with pytest.raises(MotionFormatError, match="'handx-features/0'.*'handx-features/1'"):
        Normalizer.from_state_dict(state)
    state = normalizer.state_dict()
    state['mean'] = state['mean'][:100]
    with pytest.raises(MotionFormatError, match=r'mean.*\(324,\).*\(100,\)'):
        Normalizer.from_state_dict(state)
    with pytest.raises(MotionFormatError, match="lacks \\['std'\\]"):
        Normalizer.from_state_dict({'mean': normalizer.mean, 'layout_version': 'x'})
    with pytest.raises(MotionError, match=r'\(\.\.\., 324\).*\(3, 10\)'):
        normalizer.normalize(np.zeros((3, 10)))
    with pytest.raises(MotionError, match='no frames'):
        Normalizer.fit([])
    with pytest.raises(MotionError, match=r'batch 1.*\(\.\.\., 324\)'):
        Normalizer.fit([np.zeros((2, 324)), np.zeros((2, 5))])
