"""Tests for handx_gen.hand.rotations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handx_gen.errors import HandModelError
from handx_gen.hand import rotations as rot


def _random_axis_angles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random rotations plus the hard cases: zero, tiny, near pi and exactly pi."""
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = rng.uniform(0.0, np.pi, size=n)
    angles[:6] = [0.0, 1e-9, 1e-5, 5e-3, np.pi - 1e-6, np.pi]
    angles[6:9] = [np.pi - 1e-3, 1e-2, 0.3]
    aa = axes * angles[:, None]
    aa[9] = [np.pi, 0.0, 0.0]  # pi about a basis axis (a degenerate case for naive methods)
    aa[10] = [0.0, 0.0, -np.pi]
    return aa


def _same_rotation_aa(aa1: np.ndarray, aa2: np.ndarray, atol: float) -> None:
    """Axis-angles are equal as rotations (handles the +-pi ambiguity)."""
    r1 = Rotation.from_rotvec(aa1).as_matrix()
    r2 = Rotation.from_rotvec(aa2).as_matrix()
    np.testing.assert_allclose(r1, r2, atol=atol)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_axis_angle_to_matrix_matches_scipy(rng):
    aa = _random_axis_angles(rng, 64)
    expected = Rotation.from_rotvec(aa).as_matrix()
    np.testing.assert_allclose(rot.axis_angle_to_matrix(aa), expected, atol=1e-14)


def test_hand_computed_quarter_turn():
    # 90 deg about z maps x to y.
    mat = rot.axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(mat @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    quat = rot.axis_angle_to_quaternion(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(quat, [np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)], atol=1e-15)


def test_matrix_to_axis_angle_round_trip_incl_near_zero_and_pi(rng):
    aa = _random_axis_angles(rng, 64)
    back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa))
    # Angles below pi come back exactly; at pi the sign of the axis is arbitrary.
    below_pi = np.linalg.norm(aa, axis=-1) < np.pi - 1e-4
    np.testing.assert_allclose(back[below_pi], aa[below_pi], atol=1e-9, rtol=1e-9)
    _same_rotation_aa(back, aa, atol=1e-12)
    assert np.all(np.linalg.norm(back, axis=-1) <= np.pi + 1e-12)
    # Tiny angles keep full relative precision.
    tiny = np.array([1e-9, -2e-9, 3e-9])
    np.testing.assert_allclose(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(tiny)), tiny,
                               rtol=1e-6)


def test_quaternion_round_trips(rng):
    aa = _random_axis_angles(rng, 64)
    quat = rot.axis_angle_to_quaternion(aa)
    np.testing.assert_allclose(np.linalg.norm(quat, axis=-1), 1.0, atol=1e-14)
    _same_rotation_aa(rot.quaternion_to_axis_angle(quat), aa, atol=1e-12)
    below_pi = np.linalg.norm(aa, axis=-1) < np.pi - 1e-4
    np.testing.assert_allclose(rot.quaternion_to_axis_angle(quat)[below_pi], aa[below_pi],
                               atol=1e-12)
    # q and -q are the same rotation.
    np.testing.assert_allclose(rot.quaternion_to_axis_angle(-quat)[below_pi], aa[below_pi],
                               atol=1e-12)
    mats = rot.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(rot.quaternion_to_matrix(quat), mats, atol=1e-14)
    q_from_mat = rot.matrix_to_quaternion(mats)
    assert np.all(q_from_mat[:, 0] >= 0.0)
    np.testing.assert_allclose(np.abs(np.sum(q_from_mat * quat, axis=-1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(rot.quaternion_to_matrix(q_from_mat), mats, atol=1e-14)


def test_quaternion_to_matrix_normalises():
    quat = np.array([2.0, 0.0, 0.0, 2.0])  # 90 deg about z, norm 2*sqrt(2)
    np.testing.assert_allclose(rot.quaternion_to_matrix(quat),
                               Rotation.from_rotvec([0, 0, np.pi / 2]).as_matrix(), atol=1e-15)
    np.testing.assert_allclose(rot.quaternion_to_axis_angle(quat), [0, 0, np.pi / 2],
                               atol=1e-15)


def test_rot6d_round_trips(rng):
    aa = _random_axis_angles(rng, 64)
    mats = rot.axis_angle_to_matrix(aa)
    six = rot.matrix_to_rot6d(mats)
    assert six.shape == (64, 6)
    np.testing.assert_array_equal(six[:, :3], mats[:, :, 0])
    np.testing.assert_array_equal(six[:, 3:], mats[:, :, 1])
    np.testing.assert_allclose(rot.rot6d_to_matrix(six), mats, atol=1e-14)
    _same_rotation_aa(rot.rot6d_to_axis_angle(rot.axis_angle_to_rot6d(aa)), aa, atol=1e-12)


def test_rot6d_of_non_orthogonal_input_is_proper_rotation(rng):
    six = rng.normal(size=(5, 7, 6))
    mats = rot.rot6d_to_matrix(six)
    assert mats.shape == (5, 7, 3, 3)
    np.testing.assert_allclose(mats @ np.swapaxes(mats, -1, -2), np.broadcast_to(np.eye(3),
                               mats.shape), atol=1e-13)
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=1e-13)
    # Column 0 is the first vector's direction; column 1 lies in the span of both vectors.
    a1 = six[..., :3] / np.linalg.norm(six[..., :3], axis=-1, keepdims=True)
    np.testing.assert_allclose(mats[..., :, 0], a1, atol=1e-14)
    normal = np.cross(six[..., :3], six[..., 3:])
    np.testing.assert_allclose(np.sum(mats[..., :, 1] * normal, axis=-1), 0.0, atol=1e-12)
    assert np.all(np.sum(mats[..., :, 1] * six[..., 3:], axis=-1) > 0.0)


def test_quaternion_multiply_composes_rotations(rng):
    aa1, aa2 = rng.normal(size=(2, 10, 3))
    q = rot.quaternion_multiply(rot.axis_angle_to_quaternion(aa1),
                                rot.axis_angle_to_quaternion(aa2))
    expected = rot.axis_angle_to_matrix(aa1) @ rot.axis_angle_to_matrix(aa2)
    np.testing.assert_allclose(rot.quaternion_to_matrix(q), expected, atol=1e-13)
    identity = np.array([1.0, 0.0, 0.0, 0.0])
    q2 = rot.axis_angle_to_quaternion(aa2)
    np.testing.assert_allclose(rot.quaternion_multiply(identity, q2), q2, atol=0)


def test_rotation_between_vectors(rng):
    a = rng.normal(size=(50, 3))
    b = rng.normal(size=(50, 3)) * 3.0
    b[0] = a[0] * 2.0  # parallel: identity
    b[1] = -a[1] * 0.5  # opposite
    b[2] = -a[2] + 1e-9  # nearly opposite
    b[3] = a[3] + 1e-12
    b[4] = [0.0, 0.0, -1.0]
    a[4] = [0.0, 0.0, 1.0]
    mats = rot.rotation_between_vectors(a, b)
    a_hat = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b_hat = b / np.linalg.norm(b, axis=-1, keepdims=True)
    np.testing.assert_allclose(np.einsum('nij,nj->ni', mats, a_hat), b_hat, atol=1e-7)
    ok = np.ones(50, dtype=bool)
    ok[2] = False  # ill-conditioned by nature; checked to 1e-7 above
    np.testing.assert_allclose(np.einsum('nij,nj->ni', mats[ok], a_hat[ok]), b_hat[ok],
                               atol=1e-13)
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=1e-13)
    np.testing.assert_allclose(mats[0], np.eye(3), atol=1e-14)
    # Minimal: the angle equals the angle between the vectors.
    angle = np.linalg.norm(rot.matrix_to_axis_angle(mats), axis=-1)
    expected = np.arccos(np.clip(np.sum(a_hat * b_hat, axis=-1), -1.0, 1.0))
    np.testing.assert_allclose(angle[ok], expected[ok], atol=1e-7)
    np.testing.assert_allclose(angle[1], np.pi, atol=1e-12)


def test_rotation_between_vectors_rejects_zero():
    with pytest.raises(HandModelError, match='zero-length'):
        rot.rotation_between_vectors(np.zeros(3), np.ones(3))


ALL_CONVERSIONS = [
    (rot.axis_angle_to_matrix, 3),
    (rot.matrix_to_axis_angle, (3, 3)),
    (rot.axis_angle_to_quaternion, 3),
    (rot.quaternion_to_axis_angle, 4),
    (rot.quaternion_to_matrix, 4),
    (rot.matrix_to_quaternion, (3, 3)),
    (rot.matrix_to_rot6d, (3, 3)),
    (rot.rot6d_to_matrix, 6),
    (rot.axis_angle_to_rot6d, 3),
    (rot.rot6d_to_axis_angle, 6),
]


def _input_for(tail: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    aa = _random_axis_angles(rng, 24).reshape(2, 12, 3)
    if tail == 3:
        return aa
    if tail == 4:
        return rot.axis_angle_to_quaternion(aa)
    if tail == 6:
        return rot.axis_angle_to_rot6d(aa)
    return rot.axis_angle_to_matrix(aa)


@pytest.mark.parametrize(('func', 'tail'), ALL_CONVERSIONS, ids=lambda v: getattr(v, '__name__',
                                                                                     str(v)))
def test_numpy_and_torch_agree_and_keep_type(func, tail, rng):
    x = _input_for(tail, rng)
    out_np = func(x)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float64
    out_t64 = func(torch.from_numpy(x))
    assert isinstance(out_t64, torch.Tensor) and out_t64.dtype == torch.float64
    np.testing.assert_allclose(out_t64.numpy(), out_np, atol=1e-12)
    out_t32 = func(torch.from_numpy(x).float())
    assert out_t32.dtype == torch.float32
    assert func(x.astype(np.float32)).dtype == np.float32
    # Exact-pi inputs may flip the sign of an axis-angle or quaternion in float32 (both signs
    # are the same rotation), so compare those as rotations.
    if func in (rot.matrix_to_axis_angle, rot.quaternion_to_axis_angle, rot.rot6d_to_axis_angle):
        _same_rotation_aa(out_t32.double().numpy().reshape(-1, 3), out_np.reshape(-1, 3),
                          atol=1e-5)
    elif func is rot.matrix_to_quaternion:
        np.testing.assert_allclose(rot.quaternion_to_matrix(out_t32.double().numpy()),
                                   rot.quaternion_to_matrix(out_np), atol=1e-5)
    else:
        np.testing.assert_allclose(out_t32.numpy(), out_np, atol=1e-5)


def test_quaternion_multiply_and_between_vectors_torch(rng):
    q1, q2 = rot.axis_angle_to_quaternion(rng.normal(size=(2, 4, 3)))
    np.testing.assert_allclose(
        rot.quaternion_multiply(torch.from_numpy(q1), torch.from_numpy(q2)).numpy(),
        rot.quaternion_multiply(q1, q2), atol=1e-15)
    a, b = rng.normal(size=(2, 4, 3))
    np.testing.assert_allclose(
        rot.rotation_between_vectors(torch.from_numpy(a), torch.from_numpy(b)).numpy(),
        rot.rotation_between_vectors(a, b), atol=1e-14)
    with pytest.raises(HandModelError, match='both'):
        rot.quaternion_multiply(q1, torch.from_numpy(q2))


def test_gradients_finite_at_zero_and_pi():
    zero = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(3, 3)
    (rot.axis_angle_to_matrix(zero) * weights).sum().backward()
    assert torch.isfinite(zero.grad).all()
    # d(R)/d(aa) at zero is the skew map: sum(W * skew(e_k)) per component.
    expected = torch.tensor([weights[2, 1] - weights[1, 2], weights[0, 2] - weights[2, 0],
                             weights[1, 0] - weights[0, 1]], dtype=torch.float64)
    torch.testing.assert_close(zero.grad[0], expected)

    for func in (lambda v: rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(v)),
                 lambda v: rot.quaternion_to_axis_angle(rot.axis_angle_to_quaternion(v)),
                 lambda v: rot.rot6d_to_axis_angle(rot.axis_angle_to_rot6d(v))):
        x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        func(x).sum().backward()
        assert torch.isfinite(x.grad).all()
        torch.testing.assert_close(x.grad, torch.ones(3, dtype=torch.float64))  # identity map

    near_pi = torch.tensor([np.pi - 1e-6, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(near_pi)).sum().backward()
    assert torch.isfinite(near_pi.grad).all()


def test_gradcheck_against_finite_differences():
    rng = np.random.default_rng(7)
    aa = torch.tensor(_random_axis_angles(rng, 12)[[0, 2, 3, 6, 7, 8]], requires_grad=True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (aa,))
    assert torch.autograd.gradcheck(rot.axis_angle_to_quaternion, (aa,))
    aa_inner = torch.tensor(rng.normal(size=(4, 3)) * 0.8, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda v: rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(v)), (aa_inner,))
    six = torch.tensor(rng.normal(size=(4, 6)), requires_grad=True)
    assert torch.autograd.gradcheck(rot.rot6d_to_matrix, (six,))
    quat = torch.tensor(rng.normal(size=(4, 4)), requires_grad=True)
    assert torch.autograd.gradcheck(rot.quaternion_to_axis_angle, (quat,))


@pytest.mark.parametrize(('func', 'bad_shape'), [
    (rot.axis_angle_to_matrix, (4,)),
    (rot.matrix_to_axis_angle, (3, 4)),
    (rot.quaternion_to_matrix, (2, 3)),
    (rot.rot6d_to_matrix, (9,)),
    (rot.matrix_to_rot6d, (9,)),
])
def test_bad_shapes_name_the_shape(func, bad_shape):
    with pytest.raises(HandModelError, match=f'got shape {bad_shape}'.replace('(', r'\(')
                       .replace(')', r'\)')):
        func(np.zeros(bad_shape))


def test_integer_input_becomes_float64():
    out = rot.axis_angle_to_matrix([0, 0, 0])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.eye(3))


def test_quaternion_slerp_halfway_and_shortest_path():
    from handx_gen.hand.rotations import (
        axis_angle_to_quaternion,
        quaternion_slerp,
        quaternion_to_axis_angle,
    )

    q0 = axis_angle_to_quaternion(np.zeros(3))
    q1 = axis_angle_to_quaternion(np.array([0.0, 0.0, 1.2]))
    half = quaternion_slerp(q0, q1, np.array([0.5]))
    np.testing.assert_allclose(quaternion_to_axis_angle(half), [0.0, 0.0, 0.6], atol=1e-12)
    # -q1 is the same rotation: the interpolation takes the short way either way.
    np.testing.assert_allclose(np.abs(quaternion_slerp(q0, -q1, np.array([0.5]))),
                               np.abs(half), atol=1e-12)
    # Nearly equal ends: no division by ~0.
    near = quaternion_slerp(q0, q0 + 1e-9, np.array([0.3]))
    assert np.isfinite(near).all() and np.linalg.norm(near) == pytest.approx(1.0)
