"""Tests for handx_gen.hand.mano and the ``handx mano`` CLI, on synthetic MANO files."""

from __future__ import annotations

import importlib.util
import pickle
import pickletools
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from mano_fixtures import (
    RING_RADIUS_M,
    synthetic_mano_arrays,
    write_chumpy_pickle,
    write_malicious_pickle,
    write_plain_pickle,
    write_unsupported_chumpy_pickle,
)

from handx_gen.errors import HandxError, ManoModelError
from handx_gen.hand.kinematics import forward_kinematics
from handx_gen.hand.mano import (
    MANO_ARRAY_SHAPES,
    MANO_FORMAT,
    ManoArrays,
    ManoLayer,
    build_mano_layer,
    convert_mano_pickle,
    inspect_mano_file,
    load_mano_arrays,
    load_mano_pickle,
    skeleton_from_mano,
)
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import (
    KEYPOINT_FROM_MANO_JOINT,
    MANO_FINGERTIP_VERTEX_IDS,
    TIP_KEYPOINTS,
    HandSide,
)
from handx_ros.cli import main

OFFICIAL_KEYS = {
    'hands_components', 'f', 'J_regressor', 'kintree_table', 'J', 'bs_style', 'hands_coeffs',
    'weights', 'posedirs', 'hands_mean', 'v_template', 'shapedirs', 'bs_type',
}


@pytest.fixture(scope='module')
def entries() -> dict[str, object]:
    return synthetic_mano_arrays(HandSide.RIGHT, seed=0)


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory: pytest.TempPathFactory, entries: dict) -> Path:
    folder = tmp_path_factory.mktemp('mano')
    write_plain_pickle(folder / 'MANO_RIGHT.pkl', entries)
    write_chumpy_pickle(folder / 'chumpy_MANO_RIGHT.pkl', entries)
    write_plain_pickle(folder / 'MANO_LEFT.pkl', synthetic_mano_arrays(HandSide.LEFT, seed=1))
    convert_mano_pickle(folder / 'MANO_RIGHT.pkl', folder / 'mano_right.npz')
    return folder


@pytest.fixture(scope='module')
def right_arrays(model_dir: Path) -> ManoArrays:
    return load_mano_arrays(model_dir / 'MANO_RIGHT.pkl')


@pytest.fixture(scope='module')
def layers(model_dir: Path) -> dict[str, ManoLayer]:
    return {
        'right': build_mano_layer(model_dir / 'MANO_RIGHT.pkl', dtype=torch.float64),
        'left': build_mano_layer(model_dir / 'MANO_LEFT.pkl', dtype=torch.float64),
    }


def _assert_entries_equal(loaded: dict, entries: dict) -> None:
    assert set(loaded) == OFFICIAL_KEYS
    for key in MANO_ARRAY_SHAPES:
        expected = entries[key].toarray() if sp.issparse(entries[key]) else entries[key]
        got = loaded[key].toarray() if sp.issparse(loaded[key]) else loaded[key]
        np.testing.assert_array_equal(got, expected, err_msg=key)


# ---- restricted unpickling ------------------------------------------------------------------


def test_plain_pickle_with_legacy_paths_loads_every_entry(model_dir: Path, entries: dict) -> None:
    raw = (model_dir / 'MANO_RIGHT.pkl').read_bytes()
    # Written as Python 2 did: old module paths, binary strings, no _codecs.encode.
    assert b'scipy.sparse.csc\ncsc_matrix' in raw
    assert b'U\nv_template' in raw  # SHORT_BINSTRING key
    assert b'_codecs' not in raw
    loaded = load_mano_pickle(model_dir / 'MANO_RIGHT.pkl')
    _assert_entries_equal(loaded, entries)
    assert isinstance(loaded['J_regressor'], sp.csc_matrix)
    assert loaded['bs_style'] == 'lbs' and loaded['bs_type'] == 'lrotmin'


@pytest.mark.parametrize('protocol', [0, 4])
def test_other_pickle_protocols_load(tmp_path: Path, entries: dict, protocol: int) -> None:
    path = write_plain_pickle(tmp_path / 'MANO_RIGHT.pkl', entries, protocol=protocol)
    _assert_entries_equal(load_mano_pickle(path), entries)


def test_chumpy_pickle_loads_without_chumpy(model_dir: Path, entries: dict) -> None:
    path = model_dir / 'chumpy_MANO_RIGHT.pkl'
    globals_used = {arg for op, arg, _ in pickletools.genops(path.read_bytes())
                    if op.name == 'GLOBAL'}
    assert {'chumpy.ch Ch', 'chumpy.reordering Reshape', 'chumpy.ch_ops multiply'} <= globals_used
    assert importlib.util.find_spec('chumpy') is None
    assert not any(name == 'chumpy' or name.startswith('chumpy.') for name in sys.modules)

    loaded = load_mano_pickle(path)
    _assert_entries_equal(loaded, entries)
    assert loaded['shapedirs'].dtype == np.float64
    assert not any(name.startswith('chumpy') for name in sys.modules)


def test_chumpy_and_plain_pickles_give_equal_arrays(model_dir: Path) -> None:
    plain = load_mano_arrays(model_dir / 'MANO_RIGHT.pkl')
    chumpy = load_mano_arrays(model_dir / 'chumpy_MANO_RIGHT.pkl')
    for key in MANO_ARRAY_SHAPES:
        np.testing.assert_array_equal(getattr(plain, key), getattr(chumpy, key), err_msg=key)


def test_unsupported_chumpy_class_is_named(tmp_path: Path, entries: dict) -> None:
    path = write_unsupported_chumpy_pickle(tmp_path / 'MANO_RIGHT.pkl', entries)
    with pytest.raises(ManoModelError, match=r'unsupported chumpy class chumpy\.ch_ops\.sin'):
        load_mano_pickle(path)


@pytest.mark.parametrize('how, named', [
    ('os.system', r'posix\.system'),
    ('builtins.eval', r'builtins\.eval'),
    ('builtins.exec', r'builtins\.exec'),
])
@pytest.mark.parametrize('hidden', [False, True])
def test_malicious_pickle_is_refused_before_running(
    tmp_path: Path, entries: dict, how: str, named: str, hidden: bool,
) -> None:
    marker = tmp_path / 'pwned'
    path = write_malicious_pickle(
        tmp_path / 'MANO_RIGHT.pkl', how, marker, entries if hidden else None)
    with pytest.raises(ManoModelError, match=f'refusing to load {named}'):
        load_mano_arrays(path)
    assert not marker.exists()


def test_malicious_pickle_really_runs_code_under_plain_pickle(tmp_path: Path) -> None:
    # Guards the test above: the payload is live, so its refusal means something.
    marker = tmp_path / 'pwned'
    path = write_malicious_pickle(tmp_path / 'evil.pkl', 'builtins.exec', marker)
    with open(path, 'rb') as stream:
        pickle.load(stream)  # deliberately unsafe, on our own harmless payload
    assert marker.exists()


def test_reconstructor_creates_only_stand_ins(tmp_path: Path) -> None:
    # copyreg._reconstructor(numpy.ndarray, object, None), as a protocol-0 pickle.
    path = tmp_path / 'MANO_RIGHT.pkl'
    path.write_bytes(b'ccopy_reg\n_reconstructor\n(cnumpy\nndarray\nc__builtin__\nobject\nNtR.')
    with pytest.raises(ManoModelError, match=r'MANO_RIGHT\.pkl: refusing copyreg\._reconstructor'):
        load_mano_pickle(path)


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'empty', 'not_a_dict'])
def test_corrupt_pickle_raises_mano_model_error(
    tmp_path: Path, model_dir: Path, damage: str,
) -> None:
    good = (model_dir / 'MANO_RIGHT.pkl').read_bytes()
    content = {
        'truncated': good[: len(good) // 2],
        'garbage': np.random.default_rng(3).bytes(4096),
        'empty': b'',
        'not_a_dict': pickle.dumps([1, 2, 3], protocol=2),
    }[damage]
    path = tmp_path / 'MANO_RIGHT.pkl'
    path.write_bytes(content)
    with pytest.raises(ManoModelError, match=str(path)):
        load_mano_arrays(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManoModelError, match='not found'):
        load_mano_arrays(tmp_path / 'MANO_RIGHT.pkl')


# ---- validation and side --------------------------------------------------------------------


def test_missing_keys_are_listed_with_the_expected_layout(tmp_path: Path, entries: dict) -> None:
    partial = {k: v for k, v in entries.items() if k not in ('weights', 'hands_mean')}
    path = write_plain_pickle(tmp_path / 'MANO_RIGHT.pkl', partial)
    with pytest.raises(ManoModelError) as info:
        load_mano_arrays(path)
    message = str(info.value)
    assert "['weights', 'hands_mean']" in message
    assert 'posedirs (778, 3, 135)' in message and 'J_regressor (16, 778)' in message


def test_wrong_shape_is_reported(tmp_path: Path, entries: dict) -> None:
    bad = dict(entries, shapedirs=np.zeros((778, 3, 5)), f=np.zeros((1538, 4), dtype=np.uint32))
    path = write_plain_pickle(tmp_path / 'MANO_RIGHT.pkl', bad)
    with pytest.raises(ManoModelError) as info:
        load_mano_arrays(path)
    message = str(info.value)
    assert 'shapedirs: shape (778, 3, 5), expected (778, 3, 10)' in message
    assert 'f: shape (1538, 4), expected (1538, 3)' in message


def test_bad_tree_and_faces_are_refused(entries: dict) -> None:
    kintree = np.array(entries['kintree_table'])
    kintree[0, 5] = 0
    with pytest.raises(ManoModelError, match='kintree_table'):
        ManoArrays.from_mapping(dict(entries, kintree_table=kintree), side='right')
    faces = np.array(entries['f'])
    faces[7, 1] = 778
    with pytest.raises(ManoModelError, match=r'faces f index vertices 0\.\.778'):
        ManoArrays.from_mapping(dict(entries, f=faces), side='right')


def test_arrays_are_read_only_copies(entries: dict) -> None:
    v_template = np.array(entries['v_template'])
    arrays = ManoArrays.from_mapping(dict(entries, v_template=v_template), side=HandSide.RIGHT)
    v_template[0, 0] = 123.0
    assert arrays.v_template[0, 0] != 123.0
    with pytest.raises(ValueError):
        arrays.v_template[0, 0] = 1.0


def test_side_from_name_argument_and_conflicts(tmp_path: Path, model_dir: Path) -> None:
    assert load_mano_arrays(model_dir / 'MANO_LEFT.pkl').side is HandSide.LEFT
    neutral = tmp_path / 'hand_model.pkl'
    neutral.write_bytes((model_dir / 'MANO_RIGHT.pkl').read_bytes())
    with pytest.raises(ManoModelError, match='cannot tell the hand side'):
        load_mano_arrays(neutral)
    assert load_mano_arrays(neutral, side='right').side is HandSide.RIGHT
    with pytest.raises(ManoModelError, match="side 'left' was given"):
        load_mano_arrays(model_dir / 'MANO_RIGHT.pkl', side=HandSide.LEFT)
    with pytest.raises(ManoModelError, match="unknown hand side 'up'"):
        load_mano_arrays(neutral, side='up')


# ---- conversion -----------------------------------------------------------------------------


def test_inspect_reports_kind_side_and_keys(model_dir: Path) -> None:
    info = inspect_mano_file(model_dir / 'chumpy_MANO_RIGHT.pkl')
    assert (info.kind, info.side, info.num_vertices, info.num_faces) == (
        'pickle', HandSide.RIGHT, 778, 1538)
    assert info.keys == tuple(sorted(OFFICIAL_KEYS))
    npz = inspect_mano_file(model_dir / 'mano_right.npz')
    assert (npz.kind, npz.side) == ('npz', HandSide.RIGHT)


def test_convert_round_trip(tmp_path: Path, model_dir: Path, right_arrays: ManoArrays) -> None:
    dst = convert_mano_pickle(model_dir / 'chumpy_MANO_RIGHT.pkl', tmp_path / 'out' / 'right')
    assert dst == tmp_path / 'out' / 'right'  # no suffix appended
    with np.load(dst, allow_pickle=False) as npz:
        assert set(npz.files) == set(MANO_ARRAY_SHAPES) | {'format', 'side'}
        assert str(npz['format']) == MANO_FORMAT and str(npz['side']) == 'right'
        assert npz['J_regressor'].shape == (16, 778)
    converted = load_mano_arrays(dst)
    assert converted.side is HandSide.RIGHT
    for key in MANO_ARRAY_SHAPES:
        np.testing.assert_array_equal(getattr(converted, key), getattr(right_arrays, key))
    assert not list((tmp_path / 'out').glob('.*tmp'))  # temporary file cleaned up


def test_convert_default_destination_and_explicit_side(tmp_path: Path, model_dir: Path) -> None:
    src = tmp_path / 'hand.pkl'
    src.write_bytes((model_dir / 'MANO_LEFT.pkl').read_bytes())
    dst = convert_mano_pickle(src, side='left')
    assert dst == tmp_path / 'hand.npz'
    assert load_mano_arrays(dst).side is HandSide.LEFT
    with pytest.raises(ManoModelError, match="stores side 'left'"):
        load_mano_arrays(dst, side='right')


def test_npz_of_other_format_or_corrupt(tmp_path: Path, model_dir: Path) -> None:
    other = tmp_path / 'other.npz'
    np.savez(other, format=np.asarray('handx-motion/1'), side=np.asarray('right'))
    with pytest.raises(ManoModelError, match="format 'handx-motion/1'; expected 'handx-mano/1'"):
        load_mano_arrays(other)
    good = (model_dir / 'mano_right.npz').read_bytes()
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes(good[: len(good) // 3])
    with pytest.raises(ManoModelError,
                       match='cannot read it as a MANO .npz archive, it is corrupt or truncated'):
        load_mano_arrays(truncated)


# ---- smplx layer ----------------------------------------------------------------------------


def test_layer_from_pkl_and_npz_agree(model_dir: Path) -> None:
    from_pkl = build_mano_layer(model_dir / 'chumpy_MANO_RIGHT.pkl')
    from_npz = build_mano_layer(model_dir / 'mano_right.npz')
    rng = np.random.default_rng(5)
    pose = torch.as_tensor(rng.normal(0.0, 0.4, size=(3, 15, 3)), dtype=torch.float32)
    orient = torch.as_tensor(rng.normal(0.0, 0.5, size=(3, 3)), dtype=torch.float32)
    a = from_pkl(orient, pose)
    b = from_npz(orient, pose.reshape(3, 45))
    assert a.vertices.shape == (3, 778, 3) and a.keypoints.shape == (3, 21, 3)
    assert a.joints.shape == (3, 16, 3)
    torch.testing.assert_close(a.vertices, b.vertices)
    torch.testing.assert_close(a.keypoints, b.keypoints)
    assert from_pkl.faces.shape == (1538, 3)


def test_layer_keypoints_order_and_fingertip_vertices(
    layers: dict[str, ManoLayer], right_arrays: ManoArrays,
) -> None:
    rng = np.random.default_rng(6)
    pose = torch.as_tensor(rng.normal(0.0, 0.5, size=(2, 15, 3)))
    out = layers['right'](torch.zeros(2, 3, dtype=torch.float64), pose,
                          transl=torch.as_tensor(rng.normal(size=(2, 3))))
    tips = out.vertices[:, list(MANO_FINGERTIP_VERTEX_IDS)]
    torch.testing.assert_close(out.keypoints[:, list(TIP_KEYPOINTS)], tips, rtol=0, atol=0)
    torch.testing.assert_close(out.keypoints[:, list(KEYPOINT_FROM_MANO_JOINT)], out.joints,
                               rtol=0, atol=0)
    # At rest (zero pose, zero shape, zero translation) the mesh is the template and the
    # joints are the regressed ones: by construction of the fixture, the default skeleton.
    rest = layers['right'](torch.zeros(1, 3, dtype=torch.float64),
                           torch.zeros(1, 15, 3, dtype=torch.float64))
    np.testing.assert_allclose(rest.vertices[0].numpy(), right_arrays.v_template, atol=1e-12)
    np.testing.assert_allclose(rest.keypoints[0].numpy(),
                               default_skeleton(HandSide.RIGHT).keypoints_rest(), atol=1e-12)


def test_layer_flat_hand_mean_and_pose_blend_shapes(
    layers: dict[str, ManoLayer], right_arrays: ManoArrays,
) -> None:
    # flat_hand_mean: hands_mean (non-zero in the fixture) must not shift the zero pose.
    assert np.linalg.norm(right_arrays.hands_mean) > 0.1
    assert not layers['right'].model.use_pca
    # A pose moves vertices by more than the rigid skinning alone: pose blend shapes apply.
    pose = torch.zeros(1, 15, 3, dtype=torch.float64)
    pose[0, 4, 2] = 0.8  # middle2
    out = layers['right'](torch.zeros(1, 3, dtype=torch.float64), pose)
    ring_vertex = np.flatnonzero(right_arrays.J_regressor[0])[0]  # skinned to the wrist
    offset = out.vertices[0, ring_vertex].numpy() - right_arrays.v_template[ring_vertex]
    assert 1e-6 < np.linalg.norm(offset) < 0.01


def test_layer_rejects_bad_shapes(layers: dict[str, ManoLayer]) -> None:
    layer = layers['right']
    zeros = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ManoModelError, match=r'hand_pose must be \(2, 15, 3\) or \(2, 45\)'):
        layer(zeros, torch.zeros(2, 16, 3))
    with pytest.raises(ManoModelError, match=r'global_orient must be \(B, 3\); got \(2, 4\)'):
        layer(torch.zeros(2, 4), torch.zeros(2, 15, 3))
    with pytest.raises(ManoModelError, match=r'betas must be'):
        layer(zeros, torch.zeros(2, 15, 3), betas=torch.zeros(2, 8))


# ---- skeleton and forward kinematics --------------------------------------------------------


@pytest.mark.parametrize('side', [HandSide.RIGHT, HandSide.LEFT])
def test_skeleton_from_mano_at_zero_shape_is_the_fixture_skeleton(
    model_dir: Path, side: HandSide,
) -> None:
    arrays = load_mano_arrays(model_dir / f'MANO_{side.name}.pkl')
    skeleton = skeleton_from_mano(arrays, side)
    expected = default_skeleton(side)
    assert skeleton.side is side
    np.testing.assert_allclose(skeleton.joints_rest, expected.joints_rest, atol=1e-12)
    np.testing.assert_array_equal(skeleton.tips_rest, expected.tips_rest)


def test_skeleton_from_mano_with_shape(right_arrays: ManoArrays) -> None:
    betas = np.linspace(-2.0, 2.0, 10)
    skeleton = skeleton_from_mano(right_arrays, betas=betas)
    shaped = right_arrays.v_template + np.einsum('vck,k->vc', right_arrays.shapedirs, betas)
    # Each joint is the mean of its six-vertex ring (1/6 weights, 4 mm ring).
    ring = np.flatnonzero(right_arrays.J_regressor[3])
    assert len(ring) == 6
    np.testing.assert_allclose(skeleton.joints_rest[3], shaped[ring].mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(skeleton.tips_rest, shaped[list(MANO_FINGERTIP_VERTEX_IDS)],
                               atol=1e-15)
    rest = skeleton_from_mano(right_arrays)
    moved = np.linalg.norm(skeleton.joints_rest - rest.joints_rest, axis=1)
    assert np.all(moved > 1e-4) and np.all(moved < 10 * RING_RADIUS_M)
    with pytest.raises(ManoModelError, match="side 'left' given for a 'right'"):
        skeleton_from_mano(right_arrays, 'left')
    with pytest.raises(ManoModelError, match=r'betas must be 10 finite numbers'):
        skeleton_from_mano(right_arrays, betas=np.zeros(3))


@pytest.mark.parametrize('side', ['right', 'left'])
def test_forward_kinematics_matches_smplx_joints(
    layers: dict[str, ManoLayer], model_dir: Path, side: str,
) -> None:
    rng = np.random.default_rng(11)
    batch = 6
    arrays = load_mano_arrays(model_dir / f'MANO_{side.upper()}.pkl')
    betas = rng.normal(0.0, 1.5, size=10)
    skeleton = skeleton_from_mano(arrays, betas=betas)
    orient = rng.normal(0.0, 0.8, size=(batch, 3))
    pose = rng.normal(0.0, 0.6, size=(batch, 15, 3))
    transl = rng.normal(0.0, 0.3, size=(batch, 3))

    out = layers[side](torch.as_tensor(orient), torch.as_tensor(pose),
                       transl=torch.as_tensor(transl), betas=torch.as_tensor(betas))
    ours = forward_kinematics(orient, pose, transl, skeleton)  # (B, 21, 3)
    # smplx's batch_rodrigues takes the angle as |aa + 1e-8| (a deliberate epsilon), which
    # perturbs its rotations by ~1e-8 rad: a few nanometres here. Anything else would show.
    np.testing.assert_allclose(ours[:, list(KEYPOINT_FROM_MANO_JOINT)], out.joints.numpy(),
                               rtol=0, atol=5e-8)
    # Posed fingertips are skinned vertices in MANO, not rigid points: they differ.
    assert np.abs(ours[:, list(TIP_KEYPOINTS)] - out.keypoints[:, list(TIP_KEYPOINTS)].numpy()
                  ).max() > 1e-5

    # With the fingers unposed, every vertex moves rigidly with the wrist: all 21 agree.
    flat = layers[side](torch.as_tensor(orient), torch.zeros(batch, 15, 3, dtype=torch.float64),
                        transl=torch.as_tensor(transl), betas=torch.as_tensor(betas))
    ours_flat = forward_kinematics(orient, np.zeros((batch, 15, 3)), transl, skeleton)
    np.testing.assert_allclose(ours_flat, flat.keypoints.numpy(), rtol=0, atol=5e-8)


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_convert_and_info(tmp_path: Path, model_dir: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / 'some_hand.pkl'
    src.write_bytes((model_dir / 'chumpy_MANO_RIGHT.pkl').read_bytes())
    dst = tmp_path / 'converted.npz'
    assert main(['mano', 'convert', str(src), '--out', str(dst), '--side', 'right']) == 0
    assert f'wrote {dst} (right hand, 778 vertices)' in capsys.readouterr().out
    assert load_mano_arrays(dst).side is HandSide.RIGHT

    assert main(['mano', 'info', str(dst)]) == 0
    out = capsys.readouterr().out
    assert 'side: right' in out and 'vertices: 778' in out and 'kind: npz' in out
    assert 'keys: J_regressor, f, format, hands_components' in out

    assert main(['mano', 'info', str(src)]) == 0
    out = capsys.readouterr().out
    assert 'side: unknown' in out and 'kind: pickle' in out
    assert 'bs_style, bs_type' in out


def test_cli_errors_are_one_line(tmp_path: Path, model_dir: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / 'hand.pkl'
    src.write_bytes((model_dir / 'MANO_RIGHT.pkl').read_bytes())
    assert main(['mano', 'convert', str(src)]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'cannot tell the hand side' in err
    assert not (tmp_path / 'hand.npz').exists()

    marker = tmp_path / 'pwned'
    evil = write_malicious_pickle(tmp_path / 'MANO_RIGHT.pkl', 'os.system', marker)
    assert main(['mano', 'info', str(evil)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('handx mano: error:') and 'refusing to load posix.system' in err
    assert not marker.exists()


def test_errors_are_handx_errors() -> None:
    assert issubclass(ManoModelError, HandxError)
