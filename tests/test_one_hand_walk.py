"""The one-hand walk of the README through the ``handx`` entry point: a wrist-centred tracker
recording of the right hand, in a facing camera's axes, converted, filtered, annotated, given
to a reaction that generates the left hand, retargeted onto the Allegro pair and simulated; and
the one-hand clip itself retargeted and simulated, its left robot hand holding still."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from handx_gen.data.frames import AxesMap
from handx_gen.data.workspace import CANONICAL_WRIST_M
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import HandSide
from handx_gen.motion import BimanualMotion, rest_hand
from handx_ros.cli import main
from handx_ros.retarget.trajectory import RobotTrajectory

FPS = 30.0
FRAMES = 60  # 2 s
AXES = 'left,down,back'  # a camera facing the person: image x right, y down, depth away


def _tracker_recording() -> np.ndarray:
    """(T, 21, 3) float32: a right hand, palm down and fingers forward, closing into a fist
    and opening again while it turns by up to 20 degrees about the vertical; relative to its
    wrist, in the camera's axes, with 1 mm of tracker noise."""
    from handx_gen.data.synth_gestures import Posture, posture
    from handx_gen.data.synth_motion import local_keypoints, place_keypoints, wrist_rotation

    s = np.linspace(0.0, 1.0, FRAMES)
    close = (0.5 - 0.5 * np.cos(2 * np.pi * s))[:, None, None]  # open, fist at 1 s, open
    angles = (1 - close) * posture(Posture.OPEN) + close * posture(Posture.FIST)
    yaw = np.radians(20.0) * np.sin(2 * np.pi * s)
    fingers = np.stack([-np.sin(yaw), np.cos(yaw), np.zeros_like(yaw)], axis=-1)
    R = wrist_rotation(fingers, np.array([0.0, 0.0, -1.0]), HandSide.RIGHT)
    local = local_keypoints(angles, default_skeleton(HandSide.RIGHT))
    world = place_keypoints(local, R, np.zeros(3))  # wrist-centred, world axes
    world += np.random.default_rng(0).normal(scale=0.001, size=world.shape)
    world[:, 0] = 0.0
    return (world @ AxesMap.parse(AXES).R_world_source).astype(np.float32)  # p_cam = R^T p


def _handx(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_hand_from_tracker_to_simulation(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    tracker = tmp_path / 'tracker.npz'
    np.savez(tracker, keypoints=_tracker_recording(), fps=np.array(FPS))

    # convert: the left hand is absent and said to be kept so; the right one placed
    clip = tmp_path / 'clip.npz'
    code, out, err = _handx(capsys, 'data', 'convert', tracker, clip, '--side', 'right',
                            '--frame', 'wrist', '--axes', AXES)
    assert code == 0, err
    assert 'the right hand only' in out
    assert re.search(r'the left hand is not in the file .* it is kept absent', err), err
    converted = BimanualMotion.load(clip)
    np.testing.assert_array_equal(converted.present, [False, True])
    wrist = converted.keypoints[:, 1, 0].astype(np.float64)
    np.testing.assert_allclose(wrist.mean(axis=0), CANONICAL_WRIST_M[1], atol=1e-4)
    middle = converted.keypoints[:, 1, 9] - converted.keypoints[:, 1, 0]
    assert (middle[:, 1] / np.linalg.norm(middle, axis=-1)).min() > 0.9  # fingers forward

    # inspect and filter: the right hand alone is looked at, and it is clean
    code, out, err = _handx(capsys, 'data', 'inspect', clip)
    assert code == 0 and 'hands: right only (the left hand is absent)' in out
    code, out, err = _handx(capsys, 'data', 'filter', clip, '--out', tmp_path / 'kept')
    assert code == 0, err
    assert 'kept 1 segment(s), 2.00 s (100%)' in out, out
    (kept,) = sorted((tmp_path / 'kept').glob('*.npz'))
    np.testing.assert_array_equal(BimanualMotion.load(kept).keypoints, converted.keypoints)

    # annotate: features and texts of the right hand alone
    code, out, err = _handx(capsys, 'annotate', kept, '--out', tmp_path / 'annotated')
    assert code == 0, err
    annotated_path = tmp_path / 'annotated' / kept.name
    annotated = BimanualMotion.load(annotated_path)
    np.testing.assert_array_equal(annotated.present, [False, True])
    features = annotated.annotation['features']
    assert features['present'] == [False, True] and features['relations'] is None
    assert not [c for c in features['contacts'] if c['a'].startswith('left')
                or c['b'].startswith('left')]
    assert any(e['action'] == 'bend' for f in features['hands'][1]['fingers']
               for e in f['events'])  # the fist is seen
    assert annotated.texts and not any(re.search(r'\bleft\b|\bhands\b|each other', t.lower())
                                       for t in annotated.texts), annotated.texts

    # the one-hand clip on the robot: the left robot hand holds its rest pose, and passes
    one_traj, one_sim = tmp_path / 'one_traj.npz', tmp_path / 'one_sim.json'
    code, out, err = _handx(capsys, 'retarget', annotated_path, '--robot', 'allegro', '--out',
                            one_traj, '--report', tmp_path / 'one_retarget.json')
    assert code == 0, err
    assert 'the left hand is absent from the clip: its robot hand holds a rest pose' in out
    trajectory = RobotTrajectory.load(one_traj)
    left = [i for i, name in enumerate(trajectory.joint_names) if name.startswith('allegro_left')]
    assert left and np.ptp(trajectory.qpos[:, left], axis=0).max() == 0.0  # constant joints
    assert np.ptp(trajectory.base_poses[:, 0], axis=0).max() < 1e-12  # its base: still
    assert np.ptp(trajectory.qpos[:, [i for i in range(len(trajectory.joint_names))
                                      if i not in left]], axis=0).max() > 0.3  # the right moves
    assert trajectory.info['absent'] == ['left'] and trajectory.info['contact'] is None
    report = json.loads((tmp_path / 'one_retarget.json').read_text())
    assert report['absent'] == ['left'] and report['absent_joint_motion_rad'] == 0.0
    code, out, err = _handx(capsys, 'sim', one_traj, '--motion', annotated_path, '--report',
                            one_sim)
    sim = json.loads(one_sim.read_text())
    assert sim['result']['summary']['frames_simulated'] == trajectory.num_frames
    assert (code, sim['verdict']) == (0, 'pass'), (sim['reasons'], err)
    assert sim['result']['fidelity']['human'] == []  # no contact claimed for one hand
    assert sim['result']['summary']['robot_contact_events'] == 0  # and the robot hands: none

    # a reaction may not keep the absent hand as given
    reaction = tmp_path / 'reaction.npz'
    prompt = 'The left hand makes a fist and opens again.'
    code, out, err = _handx(capsys, 'generate', prompt, '--mode', 'reaction', '--side', 'left',
                            '--given', annotated_path, '--model', 'ar', '--out', reaction)
    assert code == 2 and not reaction.exists()
    assert 'its left hand is absent' in err and '--side right' in err
    # the reaction to the right hand generates the left one; the right hand is unchanged
    code, out, err = _handx(capsys, 'generate', prompt, '--mode', 'reaction', '--side', 'right',
                            '--given', annotated_path, '--model', 'ar', '--seed', '0', '--out',
                            reaction)
    assert code == 0, err
    both = BimanualMotion.load(reaction)
    np.testing.assert_array_equal(both.present, [True, True])
    np.testing.assert_array_equal(both.keypoints[:, 1], annotated.keypoints[:, 1])
    generated = both.keypoints[:, 0] - rest_hand(HandSide.LEFT).keypoints
    assert np.abs(generated).max() > 0.02  # not the stand-in: a left hand was made

    # the pair on the robot and in simulation
    traj, sim_report = tmp_path / 'traj.npz', tmp_path / 'sim.json'
    code, out, err = _handx(capsys, 'retarget', reaction, '--robot', 'allegro', '--out', traj)
    assert code == 0, err
    assert 'absent' not in out
    trajectory = RobotTrajectory.load(traj)
    assert trajectory.info['absent'] == []
    assert np.ptp(trajectory.qpos[:, left], axis=0).max() > 0.1  # now the left hand moves
    code, out, err = _handx(capsys, 'sim', traj, '--motion', reaction, '--report', sim_report)
    assert sim_report.exists() and code in (0, 3), err
    sim = json.loads(sim_report.read_text())
    assert sim['result']['summary']['frames_simulated'] == trajectory.num_frames
    assert (code == 0) == (sim['verdict'] == 'pass')
