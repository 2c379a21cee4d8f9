"""Tests for handx_ros.sim.scene: MuJoCo scenes of the pair and humanoid folders."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from handx_gen.errors import ConfigError, SimulationError
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import HandSide
from handx_ros.retarget.bimanual import build_retargeter
from handx_ros.retarget.spec import RobotKind
from handx_ros.sim.scene import JointKind, SceneConfig, SimScene, build_scene

ROBOTS = ('allegro', 'inspire', 'g1_hands', 'gr1')
# Both hands in front of the body, palms facing, 0.3 m apart (xyz + quaternion wxyz).
APART = np.array([[-0.15, 0.3, 1.0, 0.5, 0.5, 0.5, 0.5],
                  [0.15, 0.3, 1.0, 0.5, -0.5, 0.5, -0.5]])


@pytest.fixture(scope='module', params=ROBOTS)
def scene(request) -> SimScene:
    return build_scene(request.param)


def _ranges(scene: SimScene) -> np.ndarray:
    """(n, 2) joint ranges of the driven joints."""
    ids = [scene.model.joint(name).id for name in scene.mjcf_joint_names]
    return scene.model.jnt_range[ids]


def _rest(scene: SimScene) -> np.ndarray:
    low, high = _ranges(scene).T
    return np.clip(np.zeros(scene.num_joints), low, high)


def _poses(scene: SimScene) -> np.ndarray | None:
    return APART.copy() if scene.floating else None


def test_scene_drives_the_retargeters_joints_by_name(scene):
    retargeter = build_retargeter(scene.robot)
    assert scene.joint_names == retargeter.joint_names
    model = scene.model
    assert np.all(model.opt.gravity == 0.0)
    arms = sum(kind == JointKind.ARM for kind in scene.joint_kinds)
    assert arms == (14 if scene.spec.kind == RobotKind.HUMANOID else 0)
    assert JointKind.HELD not in scene.joint_kinds  # held joints are not trajectory joints
    # One actuator per driven joint (plus the held legs and waist of a humanoid).
    locked = len(scene.spec.locked_joints)
    assert model.nu == scene.num_joints + locked
    for name in scene.mjcf_joint_names:
        actuator = model.actuator(name)
        joint = model.joint(name)
        assert model.actuator_trnid[actuator.id, 0] == joint.id
        np.testing.assert_allclose(model.actuator_ctrlrange[actuator.id], joint.range)
    if scene.floating:
        assert all(name.startswith(('left/', 'right/')) for name in scene.mjcf_joint_names)
        assert model.neq >= 2  # the wrist welds (and the Inspire's mimic joints)


def test_hands_collide_with_each_other_and_have_fingertip_sites(scene):
    left, right = scene.hand_geoms
    assert left.size > 0 and right.size > 0
    assert not set(left.tolist()) & set(right.tolist())
    model = scene.model
    for geoms in (left, right):
        assert np.all((model.geom_contype[geoms] != 0) | (model.geom_conaffinity[geoms] != 0))
    for side, sites in enumerate(scene.fingertip_sites):
        hand = scene.spec.hands[side]
        assert len(sites) == len(hand.fingertips)
        for site, name, frame in zip(sites, scene.fingertip_names[side],
                                     hand.fingertips.values(), strict=True):
            assert model.site(int(site)).name == name
            assert name.endswith(frame)


def test_rest_pose_is_free_of_contacts(scene):
    data = scene.make_data()
    scene.reset(data, _rest(scene), _poses(scene))
    assert data.ncon == 0
    np.testing.assert_allclose(scene.joint_positions(data), _rest(scene))
    if scene.floating:
        np.testing.assert_allclose(scene.base_poses(data), APART, atol=1e-9)


def test_actuators_track_a_static_command(scene):
    data = scene.make_data()
    rest = _rest(scene)
    low, high = _ranges(scene).T
    target = rest + 0.25 * ((low + high) / 2.0 - rest)  # a quarter of the way to mid-range
    poses = _poses(scene)
    scene.reset(data, rest, poses)
    moved = None
    if poses is not None:
        moved = poses.copy()
        moved[:, 2] += 0.05  # both wrists 5 cm up
    scene.apply_command(data, target, moved)
    for _ in range(int(round(0.5 / scene.timestep_s))):
        mujoco.mj_step(scene.model, data)
    assert np.abs(target - rest).max() > 0.1
    np.testing.assert_allclose(scene.joint_positions(data), target, atol=0.01)
    # Mimic joints follow their leaders: the whole configuration matches the command.
    hinge = scene.model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE
    adr = scene.model.jnt_qposadr[hinge]
    np.testing.assert_allclose(data.qpos[adr], scene.full_qpos(target, moved)[adr], atol=0.02)
    if moved is not None:
        np.testing.assert_allclose(scene.base_poses(data)[:, :3], moved[:, :3], atol=1e-3)


def test_links_map_to_hand_parts():
    scene = build_scene('allegro')
    part = {link: scene.geom_part[g] for g, link in enumerate(scene.geom_link)}
    assert part['left/palm_link'] == PartRef(HandSide.LEFT, HandPart.PALM)
    assert part['right/link_3.0_tip'] == PartRef(HandSide.RIGHT, HandPart.INDEX_TIP)
    assert part['right/link_2.0'] == PartRef(HandSide.RIGHT, HandPart.INDEX)
    assert part['left/link_15.0_tip'] == PartRef(HandSide.LEFT, HandPart.THUMB_TIP)
    g1 = build_scene('g1_hands')
    g1_part = {link: g1.geom_part[g] for g, link in enumerate(g1.geom_link)}
    assert g1_part['torso_link'] is None
    assert g1_part['left_hand_index_1_link'] == PartRef(HandSide.LEFT, HandPart.INDEX_TIP)
    gr1 = build_scene('gr1')
    gr1_part = {link: gr1.geom_part[g] for g, link in enumerate(gr1.geom_link)}
    assert gr1_part['torso_link'] is None and gr1_part['left_hand_pitch_link'] is None
    assert gr1_part['L_hand_base_link'] == PartRef(HandSide.LEFT, HandPart.PALM)
    assert gr1_part['R_thumb_distal'] == PartRef(HandSide.RIGHT, HandPart.THUMB)
    assert gr1_part['R_index_intermediate'] == PartRef(HandSide.RIGHT, HandPart.INDEX)
    assert gr1_part['R_index_tip'] == PartRef(HandSide.RIGHT, HandPart.INDEX_TIP)


def test_bad_commands_raise_clear_errors():
    scene = build_scene('allegro')
    data = scene.make_data()
    rest = _rest(scene)
    bad = rest.copy()
    bad[3] = np.nan
    with pytest.raises(SimulationError, match='non-finite'):
        scene.apply_command(data, bad, APART)
    with pytest.raises(SimulationError, match=r'shape \(32,\)'):
        scene.apply_command(data, rest[:-1], APART)
    with pytest.raises(SimulationError, match='base_poses'):
        scene.apply_command(data, rest, None)
    with pytest.raises(SimulationError, match='single hand'):
        build_scene('allegro_left')


def test_scene_config_checks_its_values():
    config = SceneConfig.from_dict({'finger_kp': 20, 'contact_solref': [0.01, 1.0]})
    assert config.finger_kp == 20.0 and config.contact_solref == (0.01, 1.0)
    with pytest.raises(ConfigError, match='valid options'):
        SceneConfig.from_dict({'finger_gain': 1.0})
    with pytest.raises(ConfigError, match='finger_kp'):
        SceneConfig(finger_kp=-1.0)
    with pytest.raises(ConfigError, match='twice timestep_s'):
        SceneConfig(contact_solref=(0.002, 1.0))
    with pytest.raises(ConfigError, match='3 numbers'):
        SceneConfig(friction=(1.0, 0.0))
