"""Robot folders (robot_models/) and their generated MuJoCo models (handx_ros.sim.mjcf)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import pinocchio as pin
import pytest

from handx_gen.errors import RobotModelError
from handx_gen.hand.topology import HandSide
from handx_ros.paths import robot_models_dir
from handx_ros.retarget.spec import RobotKind, RobotSpec, available_robots, load_robot_spec
from handx_ros.sim import mjcf

SHIPPED = ['allegro', 'allegro_left', 'allegro_right', 'g1_hands', 'gr1', 'inspire',
           'inspire_left', 'inspire_right']
SINGLE_URDF = ['allegro_left', 'allegro_right', 'inspire_left', 'inspire_right', 'g1_hands',
               'gr1']
HUMANOIDS = ['g1_hands', 'gr1']
HAND_SPECS = [('allegro_left', 0), ('allegro_right', 0), ('inspire_left', 0),
              ('inspire_right', 0), ('g1_hands', 0), ('g1_hands', 1), ('gr1', 0), ('gr1', 1)]


@pytest.fixture(scope='module', autouse=True)
def _private_cache(tmp_path_factory):
    """Every test of this module generates into its own cache folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(mjcf.CACHE_ENV, str(tmp_path_factory.mktemp('handx-cache')))
        yield


# ----------------------------------------------------------------------------- helpers

def _mimics(urdf: Path) -> dict[str, tuple[str, float, float]]:
    """Mimic joint -> (mimicked joint, multiplier, offset), from the URDF's <mimic> tags."""
    result = {}
    for joint in ET.parse(urdf).getroot().iter('joint'):
        tag = joint.find('mimic')
        if tag is not None:
            result[joint.get('name')] = (tag.get('joint'), float(tag.get('multiplier', 1.0)),
                                         float(tag.get('offset', 0.0)))
    return result


class PinModel:
    """Pinocchio model of a folder's URDF with the spec's extra frames (test-side reference)."""

    def __init__(self, spec: RobotSpec):
        self.spec = spec
        self.urdf = spec.urdf.resolve()
        self.model = pin.buildModelFromUrdf(str(self.urdf))
        for frame in spec.frames:
            parent = self.model.frames[self.model.getFrameId(frame.parent)]
            placement = parent.placement * pin.SE3(np.eye(3), np.array(frame.xyz))
            self.model.addFrame(pin.Frame(frame.name, parent.parentJoint, self.model.getFrameId(
                frame.parent), placement, pin.FrameType.OP_FRAME))
        self.data = self.model.createData()
        self.mimics = _mimics(self.urdf)
        self.movable = [self.model.names[i] for i in range(1, self.model.njoints)]

    def q_index(self, joint: str) -> int:
        return self.model.joints[self.model.getJointId(joint)].idx_q

    def limits(self, joint: str) -> tuple[float, float]:
        i = self.q_index(joint)
        return float(self.model.lowerPositionLimit[i]), float(self.model.upperPositionLimit[i])

    def driven(self) -> list[str]:
        joints = [j for hand in self.spec.hands for j in hand.joints]
        return [j for arm in self.spec.arm_joints for j in arm] + joints

    def full_q(self, values: dict[str, float]) -> dict[str, float]:
        """Every joint's value: given ones, locked ones, mimic ones from their leaders."""
        q = {name: float(self.spec.locked_joints.get(name, 0.0)) for name in self.movable}
        q.update(values)
        for name, (leader, multiplier, offset) in self.mimics.items():
            q[name] = multiplier * q[leader] + offset
        return q

    def positions(self, q: dict[str, float], frames: list[str]) -> np.ndarray:
        vector = pin.neutral(self.model)
        for name, value in q.items():
            vector[self.q_index(name)] = value
        pin.framesForwardKinematics(self.model, self.data, vector)
        return np.array([self.data.oMf[self.model.getFrameId(f)].translation for f in frames])

    def in_base(self, q: dict[str, float], base: str, frames: list[str]) -> np.ndarray:
        world = self.positions(q, frames)  # (k, 3)
        T_world_base = self.data.oMf[self.model.getFrameId(base)]
        return (world - T_world_base.translation) @ T_world_base.rotation


_PIN_CACHE: dict[str, PinModel] = {}


def _pin(name: str) -> PinModel:
    if name not in _PIN_CACHE:
        _PIN_CACHE[name] = PinModel(load_robot_spec(name))
    return _PIN_CACHE[name]


# ----------------------------------------------------------------------------- folders

def test_every_shipped_folder_loads_with_its_kind():
    assert set(SHIPPED) <= set(available_robots())
    kinds = {name: load_robot_spec(name).kind for name in SHIPPED}
    assert kinds['allegro'] == kinds['inspire'] == RobotKind.PAIR
    assert all(kinds[name] == RobotKind.HUMANOID for name in HUMANOIDS)
    for name in ('allegro', 'inspire'):
        spec = load_robot_spec(name)
        assert spec.members == (f'{name}_left', f'{name}_right')
        assert [h.side for h in spec.hands] == [HandSide.LEFT, HandSide.RIGHT]


@pytest.mark.parametrize('name', SHIPPED)
def test_every_folder_has_a_provenance_note(name):
    text = (robot_models_dir() / name / 'PROVENANCE.md').read_text(encoding='utf-8')
    assert 'icen' in text  # the source's licence is stated
    assert len(text.splitlines()) >= 5


@pytest.mark.parametrize('name', SINGLE_URDF)
def test_every_named_link_frame_and_joint_exists_in_the_urdf(name):
    robot = _pin(name)
    spec, model = robot.spec, robot.model
    frames = {frame.name for frame in model.frames}
    for frame in spec.frames:
        assert frame.parent in frames and frame.parent != frame.name
    for hand in spec.hands:
        assert model.existBodyName(hand.base_link), hand.base_link
        assert hand.wrist in frames
        assert set(hand.keypoints.values()) <= frames
        assert len(hand.fingertips) >= 3
        assert not set(hand.joints) & set(robot.mimics), 'mimic joints are not driven'
    driven = robot.driven()
    assert len(driven) == len(set(driven))
    # Driven, mimic and locked joints together are every movable joint of the URDF.
    accounted = set(driven) | set(robot.mimics) | set(spec.locked_joints)
    assert accounted == set(robot.movable)
    assert not set(spec.locked_joints) & set(driven)
    assert set(spec.controller_names) <= set(driven)
    if spec.operator is not None:
        assert model.existBodyName(spec.operator.robot_frame)
    joint_names = set(robot.movable)
    for value in spec.dex_retargeting.values():
        assert value in frames or value in joint_names, value


def test_hand_joints_belong_to_the_hand_below_its_base_link():
    for name, index in HAND_SPECS:
        robot = _pin(name)
        hand = robot.spec.hands[index]
        base_joint = robot.model.frames[robot.model.getFrameId(hand.base_link)].parentJoint
        for joint in hand.joints:
            support = robot.model.supports[robot.model.getJointId(joint)]
            assert base_joint in support, (name, joint)


def test_inspire_lists_only_its_six_actuated_joints():
    for side, prefix in (('left', 'L'), ('right', 'R')):
        robot = _pin(f'inspire_{side}')
        hand = robot.spec.hands[0]
        assert len(hand.joints) == 6 and len(robot.mimics) == 6
        assert all(j.startswith(f'{prefix}_') for j in hand.joints)
        assert {leader for leader, _, _ in robot.mimics.values()} <= set(hand.joints)


def test_gr1_carries_the_inspire_hand_folders_hands():
    """The GR1's hands are the Inspire hands: same links, frames, scale and driven joints as
    the inspire_left / inspire_right folders, so the two cannot drift apart."""
    gr1 = load_robot_spec('gr1')
    for hand, name in zip(gr1.hands, ('inspire_left', 'inspire_right'), strict=True):
        inspire = load_robot_spec(name).hands[0]
        assert (hand.side, hand.base_link, hand.wrist, hand.scale, hand.joints) == (
            inspire.side, inspire.base_link, inspire.wrist, inspire.scale, inspire.joints)
        assert dict(hand.keypoints) == dict(inspire.keypoints)
        np.testing.assert_array_equal(hand.R_base_hand, inspire.R_base_hand)


# ----------------------------------------------------------------------------- R_base_hand

_FLEX_RAD = 0.5


def _flat_and_curled(robot: PinModel, hand) -> tuple[dict, dict, list[str]]:
    """Joints at zero (clipped to limits), and the same with the non-thumb fingers flexed
    (each flexion joint turned by _FLEX_RAD towards its farther limit)."""
    flat = {j: float(np.clip(0.0, *robot.limits(j))) for j in hand.joints}
    model = robot.model
    tips = hand.fingertips
    thumb_frame = model.frames[model.getFrameId(tips['thumb_tip'])]
    thumb_chain = set(model.supports[thumb_frame.parentJoint])
    curled = dict(flat)
    for key, frame in tips.items():
        if key == 'thumb_tip':
            continue
        chain = model.supports[model.frames[model.getFrameId(frame)].parentJoint]
        for joint_id in chain:
            joint = model.names[joint_id]
            if joint not in hand.joints or joint_id in thumb_chain:
                continue
            lower, upper = robot.limits(joint)
            if abs(lower + upper) < 0.2 * (upper - lower):
                continue  # a symmetric range: abduction, not flexion
            sign = 1.0 if abs(upper) >= abs(lower) else -1.0
            curled[joint] = float(np.clip(sign * _FLEX_RAD, lower, upper))
    return flat, curled, list(tips)


@pytest.mark.parametrize('name,index', HAND_SPECS)
def test_R_base_hand_maps_the_human_hand_axes_onto_the_robot(name, index):
    robot = _pin(name)
    hand = robot.spec.hands[index]
    R_base_hand = hand.R_base_hand
    assert np.isclose(np.linalg.det(R_base_hand), 1.0)
    flat, curled, keys = _flat_and_curled(robot, hand)
    frames = [hand.wrist] + [hand.fingertips[k] for k in keys]

    def tips_in_hand_frame(values):
        p_base = robot.in_base(robot.full_q(values), hand.base_link, frames)  # (k, 3)
        vectors = (p_base[1:] - p_base[0]) @ R_base_hand  # (k - 1, 3) in the human frame
        return dict(zip(keys, vectors, strict=True))

    tips_flat, tips_curled = tips_in_hand_frame(flat), tips_in_hand_frame(curled)
    finger_dir = np.array([-1.0 if hand.side == HandSide.RIGHT else 1.0, 0.0, 0.0])
    for key, tip in tips_flat.items():
        if key == 'thumb_tip':
            continue
        cosine = tip @ finger_dir / np.linalg.norm(tip)
        assert cosine > np.cos(np.radians(35.0)), (key, tip)
    # Flexing the fingers moves the tips towards the palm side (human -y).
    moved = np.mean([tips_curled[k] - tips_flat[k] for k in keys if k != 'thumb_tip'], axis=0)
    assert moved[1] < -0.02 and abs(moved[1]) > abs(moved[2]), moved
    # The thumb side is +z: the index lies above the middle finger, the thumb above the
    # finger farthest from it.
    assert tips_flat['index_tip'][2] > tips_flat['middle_tip'][2]
    others = [tips_flat[k][2] for k in keys if k != 'thumb_tip']
    assert tips_flat['thumb_tip'][2] > min(others)


@pytest.mark.parametrize('name,index', HAND_SPECS)
def test_scale_matches_the_robot_hand_length(name, index):
    robot = _pin(name)
    hand = robot.spec.hands[index]
    flat, _, _ = _flat_and_curled(robot, hand)
    wrist, tip = robot.in_base(robot.full_q(flat), hand.base_link,
                               [hand.wrist, hand.fingertips['middle_tip']])
    assert hand.scale == pytest.approx(np.linalg.norm(tip - wrist) / 0.185, rel=0.03)


@pytest.mark.parametrize('name', HUMANOIDS)
def test_humanoid_operator_origin_sits_between_the_shoulders(name):
    robot = _pin(name)
    operator = robot.spec.operator
    # The shoulder roll joints: the second joint of each arm.
    roll_joints = [arm[1] for arm in robot.spec.arm_joints]
    assert all('shoulder_roll' in joint for joint in roll_joints)
    shoulders = robot.in_base(robot.full_q({}), operator.robot_frame, roll_joints)
    np.testing.assert_allclose(shoulders.mean(axis=0), operator.robot_origin, atol=2e-3)
    # Human right (+x) is the robot's -y, forward (+y) its +x.
    np.testing.assert_allclose(operator.R_robot_human @ [1.0, 0.0, 0.0], [0.0, -1.0, 0.0])
    np.testing.assert_allclose(operator.R_robot_human @ [0.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    assert shoulders[0, 1] > shoulders[1, 1]  # left shoulder on +y


# ----------------------------------------------------------------------------- MuJoCo

@pytest.mark.parametrize('name', SINGLE_URDF)
def test_pinocchio_and_mujoco_agree_on_mapped_frames(name):
    robot = _pin(name)
    spec = robot.spec
    model = mjcf.load_mujoco_model(name)
    data = mujoco.MjData(model)
    frames = mjcf.site_frames(spec)
    assert len(frames) >= len(spec.hands) * 4
    assert {model.joint(j).name for j in range(model.njnt)} == set(robot.movable)
    for joint in robot.movable:
        assert tuple(model.joint(joint).range) == robot.limits(joint), joint
    rng = np.random.default_rng(4)
    for _ in range(5):
        values = {}
        for joint in robot.driven():
            values[joint] = rng.uniform(*robot.limits(joint))
        q = robot.full_q(values)
        expected = robot.positions(q, frames)  # (k, 3)
        data.qpos[:] = 0.0
        for joint, value in q.items():
            data.qpos[model.joint(joint).qposadr[0]] = value
        mujoco.mj_kinematics(model, data)
        got = np.array([data.site(f).xpos for f in frames])
        np.testing.assert_allclose(got, expected, atol=1e-9, rtol=0)


def test_mimic_joints_become_mujoco_equality_constraints():
    robot = _pin('inspire_right')
    model = mjcf.load_mujoco_model('inspire_right')
    found = {}
    for i in range(model.neq):
        assert model.eq_type[i] == mujoco.mjtEq.mjEQ_JOINT
        follower = model.joint(model.eq_obj1id[i]).name
        leader = model.joint(model.eq_obj2id[i]).name
        found[follower] = (leader, float(model.eq_data[i, 1]), float(model.eq_data[i, 0]))
    assert found == robot.mimics


def test_meshes_resolve_to_installed_files():
    path = mjcf.generate_mjcf('g1_hands')
    files = [m.get('file') for m in ET.parse(path).getroot().iter('mesh')]
    assert files and all(Path(f).is_absolute() and Path(f).is_file() for f in files)
    assert all('example-robot-data' in f for f in files)
    assert path.parent == mjcf.cache_dir()


def test_pair_generates_one_model_per_member():
    paths = mjcf.generate_robot_mjcfs('inspire')
    assert list(paths) == ['inspire_left', 'inspire_right']
    assert paths['inspire_left'] != paths['inspire_right']
    with pytest.raises(RobotModelError, match='inspire_left'):
        mjcf.generate_mjcf('inspire')


# ----------------------------------------------------------------------------- cache and errors

def _copy_folders(tmp_path: Path, *names: str) -> Path:
    root = tmp_path / 'robot_models'
    for name in names:
        shutil.copytree(robot_models_dir() / name, root / name)
    return root


def test_cache_reuses_the_file_and_regenerates_when_the_spec_changes(tmp_path, monkeypatch):
    monkeypatch.setenv(mjcf.CACHE_ENV, str(tmp_path / 'cache'))
    root = _copy_folders(tmp_path, 'allegro_right')
    first = mjcf.generate_mjcf('allegro_right', root)
    assert first.parent == tmp_path / 'cache' / 'mjcf'
    stamp = first.stat().st_mtime_ns

    def no_rebuild(*args, **kwargs):
        raise AssertionError('regenerated although cached')

    with monkeypatch.context() as patch:
        patch.setattr(mjcf, 'build_model', no_rebuild)
        assert mjcf.generate_mjcf('allegro_right', root) == first
    assert first.stat().st_mtime_ns == stamp
    spec_file = root / 'allegro_right' / 'robot.yaml'
    spec_file.write_text(spec_file.read_text().replace('xyz: [0.0, 0.0, -0.095]',
                                                       'xyz: [0.0, 0.0, -0.080]'))
    second = mjcf.generate_mjcf('allegro_right', root)
    assert second != first and first.is_file()
    model = mujoco.MjModel.from_xml_path(str(second))
    np.testing.assert_allclose(model.site('handx_wrist').pos, [0.0, 0.0, -0.080])
    assert not [p for p in second.parent.iterdir() if p.suffix == '.tmp']


def test_cache_dir_follows_the_override_then_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv(mjcf.CACHE_ENV, str(tmp_path / 'override'))
    assert mjcf.cache_dir() == tmp_path / 'override' / 'mjcf'
    monkeypatch.delenv(mjcf.CACHE_ENV)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert mjcf.cache_dir() == tmp_path / 'xdg' / 'handx' / 'mjcf'


def test_unknown_robot_lists_the_valid_ones():
    with pytest.raises(RobotModelError) as error:
        mjcf.generate_mjcf('no_such_hand')
    message = str(error.value)
    assert 'no_such_hand' in message
    for name in SHIPPED:
        assert repr(name) in message


def test_spec_naming_a_missing_link_is_an_error_naming_it(tmp_path):
    root = _copy_folders(tmp_path, 'inspire_right')
    spec_file = root / 'inspire_right' / 'robot.yaml'
    spec_file.write_text(spec_file.read_text().replace('index_tip: R_index_tip',
                                                       'index_tip: R_index_fingertip'))
    spec = load_robot_spec('inspire_right', root=root)
    with pytest.raises(RobotModelError, match="'R_index_fingertip'") as error:
        mjcf.generate_mjcf(spec)
    assert 'index_tip' in str(error.value) and 'R_index_tip' in str(error.value)


def test_spec_naming_a_missing_joint_is_an_error_naming_it(tmp_path):
    root = _copy_folders(tmp_path, 'allegro_left')
    spec_file = root / 'allegro_left' / 'robot.yaml'
    spec_file.write_text(spec_file.read_text().replace('joint_15.0]', 'joint_99.0]'))
    with pytest.raises(RobotModelError, match="'joint_99.0'"):
        mjcf.generate_mjcf('allegro_left', root)


def test_extra_frame_shadowing_a_link_is_an_error(tmp_path):
    root = _copy_folders(tmp_path, 'allegro_left')
    spec_file = root / 'allegro_left' / 'robot.yaml'
    spec_file.write_text(spec_file.read_text().replace('{name: handx_wrist,',
                                                       '{name: link_3.0_tip,'))
    with pytest.raises(RobotModelError, match="extra frame 'link_3.0_tip'"):
        mjcf.generate_mjcf('allegro_left', root)


def _write_share_package(tmp_path: Path, urdf: str) -> None:
    folder = tmp_path / 'prefix' / 'share' / 'handx_test_robot'
    folder.mkdir(parents=True)
    (folder / 'robot.urdf').write_text(urdf)
    spec = (robot_models_dir() / 'allegro_right' / 'robot.yaml').read_text()
    spec = spec.replace('share:example-robot-data', 'share:handx_test_robot').replace(
        'robots/allegro_hand_description/urdf/allegro_right_hand.urdf', 'robot.urdf')
    (tmp_path / 'robot_models' / 'test_hand').mkdir(parents=True)
    (tmp_path / 'robot_models' / 'test_hand' / 'robot.yaml').write_text(spec)


def test_urdf_mujoco_cannot_compile_is_a_robot_model_error(tmp_path, monkeypatch):
    source = load_robot_spec('allegro_right').urdf.resolve().read_text()
    # A revolute joint without an axis: MuJoCo refuses it.
    start = source.index('<axis xyz=', source.index('<joint name="joint_1.0"'))
    end = source.index('/>', start)
    _write_share_package(tmp_path, source[:start] + '<axis xyz="0 0 0"' + source[end:])
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path / 'prefix'))
    with pytest.raises(RobotModelError, match='cannot compile') as error:
        mjcf.generate_mjcf('test_hand', tmp_path / 'robot_models')
    assert 'joint_1.0' in str(error.value) and 'test_hand' in str(error.value)
    assert not list(mjcf.cache_dir().glob('test_hand-*'))


def test_missing_mesh_is_a_robot_model_error(tmp_path, monkeypatch):
    source = load_robot_spec('allegro_right').urdf.resolve().read_text()
    _write_share_package(tmp_path, source.replace('meshes/link_2.0.STL', 'meshes/gone.STL'))
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path / 'prefix'))
    with pytest.raises(RobotModelError, match='gone.STL'):
        mjcf.generate_mjcf('test_hand', tmp_path / 'robot_models')



# ----------------------------------------------------------------------------- motion limits

def test_velocity_limits_come_from_the_urdf_in_controller_order():
    from handx_ros.retarget import build_retargeter

    allegro = build_retargeter('allegro')
    assert allegro.joint_velocity_limits().shape == (len(allegro.joint_names),)
    np.testing.assert_array_equal(allegro.joint_velocity_limits(), 7.0)  # every Allegro joint
    np.testing.assert_array_equal(allegro.joint_acceleration_limits(), 100.0)
    g1 = build_retargeter('g1_hands')
    limits = dict(zip(g1.joint_names, g1.joint_velocity_limits(), strict=True))
    assert limits['left_shoulder_pitch_joint'] == 37.0
    assert limits['right_hand_thumb_0_joint'] == pytest.approx(3.14, abs=0.01)


def test_a_folder_overrides_velocity_and_acceleration_per_joint(tmp_path):
    from handx_ros.retarget.robot import ChainKinematics, load_urdf_model

    root = _copy_folders(tmp_path, 'allegro_right')
    path = root / 'allegro_right' / 'robot.yaml'
    path.write_text(path.read_text() + (
        'limits:\n  joint_velocity_rad_s: {joint_12.0: 2.5}\n  acceleration_rad_s2: 40\n'
        '  joint_acceleration_rad_s2: {joint_0.0: 20}\n'))
    spec = load_robot_spec('allegro_right', root)
    chain = ChainKinematics(load_urdf_model(spec), spec.hands[0].joints)
    by_name = dict(zip(chain.joint_names, chain.max_velocity, strict=True))
    assert by_name['joint_12.0'] == 2.5 and by_name['joint_13.0'] == 7.0
    accel = dict(zip(chain.joint_names, chain.max_acceleration, strict=True))
    assert accel['joint_0.0'] == 20.0 and accel['joint_1.0'] == 40.0


@pytest.mark.parametrize('limits, match', [
    ('limits:\n  joint_velocity_rad_s: {joint_12.0: -1}\n', r'must be a finite number > 0'),
    ('limits:\n  acceleration_rad_s2: .inf\n', r'must be a finite number > 0'),
    ('limits:\n  speed: 3\n', r"unknown limits key 'speed'"),
    ('limits:\n  joint_velocity_rad_s: {no_such_joint: 3}\n', r'no_such_joint'),
])
def test_bad_limits_are_refused_in_one_line(tmp_path, limits, match):
    from handx_ros.retarget import build_retargeter

    root = _copy_folders(tmp_path, 'allegro_right', 'allegro_left', 'allegro')
    path = root / 'allegro_right' / 'robot.yaml'
    path.write_text(path.read_text() + limits)
    with pytest.raises(RobotModelError, match=match):
        build_retargeter(load_robot_spec('allegro', root))


@pytest.mark.parametrize('robot', ['inspire_right', 'gr1'])
def test_a_leader_never_drives_its_mimic_joints_past_their_limits(robot):
    """The Inspire thumb's pitch is -0.1..0.6 rad in the URDF, but its followers (1.6 and
    2.4 x pitch) stop at 0 and at 0.8 / 1.2 rad: the driven range is 0..0.5 rad, or a
    simulator holds the thumb where the command is not."""
    from handx_ros.retarget.robot import hand_kinematics, load_urdf_model
    from handx_ros.retarget.spec import load_robot_spec

    spec = load_robot_spec(robot)
    side = spec.hands[-1].side
    chain, _ = hand_kinematics(spec, side)
    model = load_urdf_model(spec).model
    pitch = [n for n in chain.joint_names if 'thumb_proximal_pitch' in n][0]
    i = chain.joint_names.index(pitch)
    assert (chain.lower[i], chain.upper[i]) == pytest.approx((0.0, 0.5))
    for u in (chain.lower, chain.upper):
        q = chain.full_q(u)
        assert np.all(q >= model.lowerPositionLimit - 1e-9)
        assert np.all(q <= model.upperPositionLimit + 1e-9)
