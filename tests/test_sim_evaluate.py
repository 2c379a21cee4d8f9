"""Tests for handx_ros.sim.evaluate and handx_ros.sim.gate: playing retargeted clips in MuJoCo,
contact fidelity against the human clip, stability, and the gate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from handx_gen.annotate.features import extract_features
from handx_gen.data.synthetic import SynthConfig, load_primitives, synthesize_clip
from handx_gen.errors import ConfigError, SimulationError
from handx_ros.retarget import retarget_motion
from handx_ros.retarget.trajectory import RobotTrajectory
from handx_ros.sim.evaluate import SimConfig, SimStatus, match_intervals, simulate
from handx_ros.sim.gate import GateConfig, judge, load_gate_config
from handx_ros.sim.scene import SceneConfig, build_scene

SHORT = SynthConfig(clip_duration_s=(2.0, 4.0), primitives_per_clip=(1, 1))


def _clip(motion_type: str, seed: int):
    load_primitives()
    return synthesize_clip(SHORT, seed, seed, motion_types=[motion_type]).motion


@pytest.fixture(scope='module')
def allegro():
    return build_scene('allegro')


@pytest.fixture(scope='module')
def clap(allegro):
    motion = _clip('clap', 0)
    trajectory = retarget_motion(motion, 'allegro')
    return motion, trajectory, simulate(allegro, trajectory, motion)


@pytest.fixture(scope='module')
def wave():
    motion = _clip('wave', 2)
    return motion, retarget_motion(motion, 'allegro')


def _inter_hand_events(motion) -> list[tuple[int, int]]:
    return [(c.start, c.stop) for c in extract_features(motion).contacts if c.inter_hand]


def test_clap_touches_when_the_human_hands_touch(clap):
    motion, trajectory, result = clap
    human = _inter_hand_events(motion)
    assert len(human) >= 2  # two claps
    assert result.status == SimStatus.OK and result.frames_simulated == trajectory.num_frames
    fidelity = result.fidelity
    assert fidelity is not None and len(fidelity.human) == len(human)
    assert fidelity.recall >= 0.8
    assert fidelity.precision >= 0.8
    assert result.robot_contacts  # simulated contacts between the hands ...
    for start, stop in result.robot_contacts:  # ... during the claps, not between them
        assert any(start < h_stop + 3 and h_start < stop + 3 for h_start, h_stop in human)
        assert np.min(result.inter_hand_distance_m[start:stop]) <= 0.001
    assert fidelity.mean_abs_onset_error_s <= 0.1
    touching = [t for t, frame in enumerate(result.contacts) if any(c.inter_hand for c in frame)]
    assert touching and all(any(s - 3 <= t < e + 3 for s, e in result.robot_contacts)
                            for t in touching)


def test_clip_without_contact_has_none(allegro, wave):
    motion, trajectory = wave
    assert _inter_hand_events(motion) == []
    result = simulate(allegro, trajectory, motion)
    assert result.status == SimStatus.OK
    assert result.robot_contacts == ()
    assert not any(c.inter_hand for frame in result.contacts for c in frame)
    assert result.inter_hand_distance_m.min() > 0.005
    assert result.fidelity.recall is None and result.fidelity.precision is None


@pytest.mark.parametrize('robot, pelvis', [('g1_hands', 'pelvis'), ('gr1', 'base_link')])
def test_humanoid_plays_with_its_pelvis_fixed(wave, robot, pelvis):
    motion, _ = wave
    trajectory = retarget_motion(motion[:30], robot)
    scene = build_scene(robot)
    result = simulate(scene, trajectory, motion[:30])
    assert result.status == SimStatus.OK and result.wrist_error_m is None
    assert scene.model.body_weldid[scene.model.body(pelvis).id] == 0  # fixed to the world
    assert np.median(result.joint_error_rad) < 0.01
    tips = sum(len(hand.fingertips) for hand in scene.spec.hands)
    assert result.fingertip_error_m.shape == (30, tips)


def test_humanoid_hands_touch_when_the_human_hands_touch():
    """The GR1's Inspire hands have no collision geometry: their visual meshes collide, so a
    clap on the humanoid is measured as on a pair."""
    motion = _clip('clap', 0)
    trajectory = retarget_motion(motion, 'gr1')
    result = simulate(build_scene('gr1'), trajectory, motion)
    assert result.status == SimStatus.OK
    assert len(result.fidelity.human) >= 2  # two claps
    assert result.fidelity.recall >= 0.8 and result.fidelity.precision >= 0.8
    touching = {(c.a, c.b) for frame in result.contacts for c in frame if c.inter_hand}
    assert touching and all(a.startswith('L_') and b.startswith('R_') for a, b in touching)


def test_result_report_is_json_and_keeps_frames_for_rendering(clap, allegro):
    _, trajectory, result = clap
    report = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert report['summary']['contact_recall'] == result.fidelity.recall
    assert len(report['frames']['joint_error_rad']) == trajectory.num_frames
    assert result.qpos_sim.shape == (trajectory.num_frames, allegro.model.nq)
    assert result.joint_error_rad.shape == (trajectory.num_frames, trajectory.num_joints)
    assert result.fingertip_error_m.shape == (trajectory.num_frames, 8)
    # Tracking: the wrists follow closely; the joints away from contacts too.
    assert np.percentile(result.wrist_error_m, 95) < 0.005
    assert np.median(result.joint_error_rad) < 0.01
    assert result.realtime_factor > 1.0


def test_trajectory_pushed_through_the_other_hand_fails_the_gate(allegro, wave):
    _, trajectory = wave
    poses = trajectory.base_poses.copy()
    frames = np.arange(trajectory.num_frames)
    start, stop = trajectory.num_frames // 3, 2 * trajectory.num_frames // 3
    weight = np.clip(np.minimum(frames - start + 5, stop + 5 - frames) / 5.0, 0.0, 1.0)
    poses[:, 1, :3] += weight[:, None] * (poses[:, 0, :3] - poses[:, 1, :3])  # onto the left
    pushed = dataclasses.replace(trajectory, base_poses=poses)
    baseline = {c.name: c for c in judge(simulate(allegro, trajectory)).checks}
    assert baseline['command_penetration'].passed and baseline['penetration'].passed
    result = simulate(allegro, pushed)
    verdict = judge(result, GateConfig())
    assert not verdict.passed
    reason = next(r for r in verdict.reasons if r.startswith('commanded penetration'))
    depth_mm = float(reason.split()[2])
    assert depth_mm > 20.0  # the right hand's base is on the left hand's
    assert 'left/' in reason and 'right/' in reason and ' mm > 10.0 mm between ' in reason
    failed = {check.name for check in verdict.checks if not check.passed}
    # The simulated hands then stay inside each other, or are thrown apart (unstable).
    assert 'command_penetration' in failed and failed & {'penetrating_fraction', 'stability'}
    assert result.peak_force_n.max() > 100.0  # the hands push each other back


def test_blow_up_is_flagged_not_raised(wave):
    _, trajectory = wave
    scene = build_scene('allegro', SceneConfig(finger_kp=1e7, finger_force_limit_nm=None))
    result = simulate(scene, trajectory)
    assert result.status == SimStatus.UNSTABLE
    assert 'frame' in result.message and result.frames_simulated < trajectory.num_frames
    assert result.qpos_sim.shape[0] == result.frames_simulated
    assert np.all(np.isfinite(result.qpos_sim))
    verdict = judge(result)
    assert not verdict.passed and any(r.startswith('unstable: ') for r in verdict.reasons)
    json.dumps(result.to_dict(), allow_nan=False)


def test_gate_names_a_joint_that_jumps(allegro, wave):
    _, trajectory = wave
    qpos = trajectory.qpos[:30].copy()
    column = trajectory.joint_names.index('allegro_right/index_mcp')
    qpos[15:, column] += 0.6  # one frame: 18 rad/s at 30 fps
    jumped = dataclasses.replace(trajectory[:30], qpos=qpos)
    verdict = judge(simulate(allegro, jumped), GateConfig())
    reason = next(r for r in verdict.reasons if r.startswith('commanded joint velocity'))
    assert reason.endswith('> 7.00 rad/s limit of allegro_right/index_mcp at 0.50 s')


def test_trajectory_joints_are_matched_by_name(allegro, wave):
    _, trajectory = wave
    shuffled = trajectory.joint_names[::-1]
    reordered = dataclasses.replace(trajectory[:10], joint_names=shuffled,
                                    qpos=trajectory.qpos[:10, ::-1])
    np.testing.assert_allclose(simulate(allegro, reordered).qpos_cmd, trajectory.qpos[:10])
    names = list(trajectory.joint_names)
    names[0] = 'allegro_left/sixth_finger'
    renamed = dataclasses.replace(trajectory[:10], joint_names=tuple(names))
    with pytest.raises(SimulationError, match='allegro_left/sixth_finger'):
        simulate(allegro, renamed)
    other = dataclasses.replace(trajectory[:10], robot='inspire')
    with pytest.raises(SimulationError, match="robot 'inspire'"):
        simulate(allegro, other)
    no_wrists = RobotTrajectory(robot='allegro', fps=30.0, joint_names=trajectory.joint_names,
                                qpos=trajectory.qpos[:10])
    with pytest.raises(SimulationError, match='base_poses'):
        simulate(allegro, no_wrists)


def test_match_intervals_scores_overlap():
    matches, precision, recall = match_intervals([(10, 20), (40, 50), (80, 90)],
                                                 [(12, 25), (45, 48), (60, 65)], tolerance=0)
    assert matches == [(0, 0), (1, 1)]
    assert precision == pytest.approx(2 / 3) and recall == pytest.approx(2 / 3)
    # A robot event just after a human one matches within the tolerance only.
    assert match_intervals([(10, 20)], [(22, 30)], tolerance=0)[2] == 0.0
    assert match_intervals([(10, 20)], [(22, 30)], tolerance=2)[2] == 1.0
    assert match_intervals([], [], tolerance=3) == ([], None, None)


def test_gate_yaml_matches_the_defaults():
    shipped = Path(__file__).resolve().parents[1] / 'config' / 'sim_gate.yaml'
    assert load_gate_config(shipped) == GateConfig()
    assert load_gate_config() == GateConfig()
    with pytest.raises(ConfigError, match='valid options'):
        GateConfig.from_dict({'max_penetration_mm': 5.0})
    with pytest.raises(ConfigError, match='fraction'):
        GateConfig(max_penetrating_fraction=5.0)
    with pytest.raises(ConfigError, match='release_distance_m'):
        SimConfig(touch_distance_m=0.01, release_distance_m=0.005)
