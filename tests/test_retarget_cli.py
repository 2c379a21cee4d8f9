"""``handx retarget``: a motion file in, a trajectory file and a metrics report out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handx_gen.data.synthetic import SynthConfig, synthesize_clip
from handx_gen.motion import BimanualMotion
from handx_ros.cli import main
from handx_ros.retarget.trajectory import TRAJECTORY_FORMAT, RobotTrajectory


@pytest.fixture(scope='module')
def motion_file(tmp_path_factory):
    motion = synthesize_clip(SynthConfig(), 2, 5).motion[:30]
    return motion, motion.save(tmp_path_factory.mktemp('motion') / 'clip.npz')


# Median wrist position error a humanoid's retargeted clip may show. This clip's right hand is
# raised, fingers up and palm forward, a turn the GR1's wrist (pitch +-0.61 rad, roll -0.96 to
# 0.87 rad) cannot make: its arm IK trades 1-2 cm of position for the orientation there.
WRIST_ERROR_MEDIAN_MM = {'g1_hands': 5.0, 'gr1': 10.0}


@pytest.mark.parametrize('robot', ['allegro', 'g1_hands', 'gr1'])
def test_retarget_writes_a_trajectory_and_a_report(motion_file, tmp_path, capsys, robot):
    motion, path = motion_file
    out, report = tmp_path / 'traj.npz', tmp_path / 'report.json'
    assert main(['retarget', str(path), '--robot', robot, '--out', str(out),
                 '--report', str(report)]) == 0
    trajectory = RobotTrajectory.load(out)
    assert trajectory.robot == robot and trajectory.num_frames >= motion.num_frames
    assert trajectory.info['source_motion'] == str(path)
    assert np.load(out)['format'] == TRAJECTORY_FORMAT
    data = json.loads(report.read_text())
    assert data['frames'] == motion.num_frames
    assert data['metrics']['limit_violation_count'] == 0
    assert data['fingertip_error_median_mm'] > 0
    captured = capsys.readouterr()
    printed = captured.out
    assert 'fingertip error median' in printed
    summary = printed.splitlines()[0]  # the self-collision rate is on the summary line
    rate = data['self_collision_rate']
    assert f'self-collision {rate:.1%} of frames' in summary
    if trajectory.base_poses is not None:
        assert f'between hands {data["inter_hand_collision_rate"]:.1%}; ' in summary
    assert 'cannot reach' not in captured.err
    if trajectory.base_poses is None:  # a humanoid
        assert data['wrist_error_median_mm'] < WRIST_ERROR_MEDIAN_MM[robot]
        assert 'wrist position error' in printed
        assert data['reach']['frames'] == 0 and data['reach']['tolerance_m'] == 0.03
        assert data['arm_body_min_distance_mm'] > 0.0
    else:
        assert trajectory.base_poses.shape == (trajectory.num_frames, 2, 7)
        assert 'inter_hand_collision_rate' in data


def test_retarget_errors_are_one_line(motion_file, tmp_path, capsys):
    _, path = motion_file
    assert main(['retarget', str(path), '--robot', 'shadow', '--out',
                 str(tmp_path / 'x.npz')]) == 2
    assert "unknown robot 'shadow'" in capsys.readouterr().err
    assert main(['retarget', str(tmp_path / 'missing.npz'), '--out',
                 str(tmp_path / 'x.npz')]) == 2
    assert main(['retarget', str(path), '--robot', 'allegro_left', '--out',
                 str(tmp_path / 'x.npz')]) == 2
    assert 'single hand' in capsys.readouterr().err
    assert not (tmp_path / 'x.npz').exists()


def test_retarget_retimes_a_clip_too_fast_for_the_robot(motion_file, tmp_path, capsys):
    motion, path = motion_file
    out, report = tmp_path / 'traj.npz', tmp_path / 'report.json'
    # The Inspire's fingers do 0.5 rad/s: a human gesture is too fast for them.
    assert main(['retarget', str(path), '--robot', 'inspire', '--out', str(out),
                 '--report', str(report)]) == 0
    printed = capsys.readouterr().out
    trajectory = RobotTrajectory.load(out)
    retime = json.loads(report.read_text())['retime']
    assert retime['status'] == 'retimed' and retime['factor'] > 1.0
    assert trajectory.num_frames > motion.num_frames
    assert f'retimed: {motion.num_frames / motion.fps:.2f} s -> {trajectory.duration_s:.2f} s' \
        in printed
    source = np.asarray(trajectory.info['retime']['source_frames'])
    assert source.shape == (trajectory.num_frames,) and source[-1] == motion.num_frames - 1
    step = np.abs(np.diff(trajectory.qpos, axis=0)) * trajectory.fps
    assert step.max() <= 0.5 * (1 + 1e-5)
    assert main(['retarget', str(path), '--robot', 'inspire', '--out', str(out),
                 '--no-retime']) == 0
    assert 'retimed' not in capsys.readouterr().out
    assert RobotTrajectory.load(out).num_frames == motion.num_frames


def test_retarget_keeps_a_claps_contact_unless_told_not_to(tmp_path, capsys):
    from handx_gen.data.synthetic import load_primitives

    load_primitives()
    config = SynthConfig(clip_duration_s=(2.0, 3.0), primitives_per_clip=(1, 1))
    clap = synthesize_clip(config, 0, 0, motion_types=['clap']).motion
    path = clap.save(tmp_path / 'clap.npz')
    reports = {}
    for label, extra in (('kept', []), ('plain', ['--no-contact'])):
        out, report = tmp_path / f'{label}.npz', tmp_path / f'{label}.json'
        assert main(['retarget', str(path), '--robot', 'allegro', '--no-retime', '--out',
                     str(out), '--report', str(report), *extra]) == 0
        reports[label] = (json.loads(report.read_text()), capsys.readouterr().out,
                          RobotTrajectory.load(out))
    kept, printed, trajectory = reports['kept']
    assert kept['contact']['human_touch_frames'] > 0 and 'hands touch in' in printed
    low, high = kept['contact']['robot_distance_m_touching']
    assert -0.004 < low <= high < 0.002  # pressing lightly, never far in
    plain = reports['plain']
    assert plain[0]['contact'] is None and 'hands touch in' not in plain[1]
    # Only the wrists differ until the human palms come near: the fingers are solved the
    # same; from there each hand's fingers are also kept clear of the other hand.
    from handx_ros.retarget.contact import ContactTargets, human_palm_distance

    targets = ContactTargets()
    near = np.flatnonzero(human_palm_distance(clap.keypoints) < targets.human_apart_m)
    assert 0 < near[0] < clap.num_frames
    np.testing.assert_allclose(trajectory.qpos[:near[0]], plain[2].qpos[:near[0]], atol=1e-9)
    assert not np.allclose(trajectory.qpos[near[0]:], plain[2].qpos[near[0]:], atol=1e-6)
    assert not np.allclose(trajectory.base_poses[..., :3], plain[2].base_poses[..., :3])


def test_summary_never_rounds_a_collision_rate_to_zero():
    from handx_ros.retarget.cli import _collisions

    assert _collisions({'self_collision_rate': 0.0002}) == 'self-collision <0.1% of frames; '
    assert _collisions({'self_collision_rate': 0.25, 'inter_hand_collision_rate': 0.0}) == \
        'self-collision 25.0% of frames, between hands 0.0%; '


def test_retarget_and_sim_read_any_source_file(motion_file, tmp_path, capsys):
    """What `handx data inspect` reads, `handx retarget` and `handx sim --motion` read: here
    per-hand MANO parameters (a 'mano' source), not a handx-motion/1 file."""
    from handx_gen.data.sources import SourceKind, load_source

    motion, _ = motion_file
    source = tmp_path / 'mano_source.npz'
    np.savez(source, fps=np.array(motion.fps), global_orient=motion.global_orient,
             hand_pose=motion.hand_pose, transl=motion.transl)
    reading = load_source(source)
    assert reading.kind is SourceKind.MANO
    out = tmp_path / 'traj.npz'
    assert main(['retarget', str(source), '--robot', 'allegro', '--out', str(out),
                 '--no-retime']) == 0, capsys.readouterr().err
    trajectory = RobotTrajectory.load(out)
    assert trajectory.num_frames == motion.num_frames
    assert trajectory.info['source_clip']['fingerprint'] == reading.motion.fingerprint()
    capsys.readouterr()
    assert main(['sim', str(out), '--motion', str(source)]) in (0, 3)
    assert 'error' not in capsys.readouterr().err


def test_retarget_warns_when_a_humanoid_wrist_cannot_reach(motion_file, tmp_path, capsys):
    motion, _ = motion_file
    # The right hand a metre further forward: 0.68 m at the G1's scale, beyond its arm.
    shift = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    far = BimanualMotion(motion.fps, motion.global_orient, motion.hand_pose,
                         np.asarray(motion.transl) + shift,
                         (np.asarray(motion.keypoints) + shift[:, None]).astype(np.float32))
    path = far.save(tmp_path / 'far.npz')
    out, report = tmp_path / 'traj.npz', tmp_path / 'report.json'
    assert main(['retarget', str(path), '--robot', 'g1_hands', '--out', str(out),
                 '--report', str(report)]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert f'warning: the right wrist cannot reach its target on {far.num_frames} of ' \
        f'{far.num_frames} frames (up to ' in err
    assert 'tolerance 30.0 mm' in err and 'left wrist' not in err
    reach = json.loads(report.read_text())['reach']
    assert reach['right']['frames'] == far.num_frames and reach['left']['frames'] == 0
    assert reach['right']['max_error_m'] > 0.3
    assert RobotTrajectory.load(out).info['reach'] == reach
    # The stretched arm cannot turn its wrist as the human's either: said, with how far.
    right = reach['right']
    assert right['tilted_frames'] > 0 and reach['left']['tilted_frames'] == 0
    assert f'the right wrist is turned up to {np.degrees(right["max_rotation_error_rad"]):.1f} ' \
        f'deg from its target orientation' in captured.out
    assert 'the left wrist is turned' not in captured.out
