"""``handx robots``: the robot listing and one robot's joints and keypoints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from handx_ros import cli
from handx_ros.retarget.spec import load_robot_spec

EXPECTED_DOF = {'allegro': 32, 'allegro_left': 16, 'allegro_right': 16, 'g1_hands': 28,
                'gr1': 26, 'inspire': 12, 'inspire_left': 6, 'inspire_right': 6}


def _run(capsys, *argv: str) -> str:
    assert cli.main(['robots', *argv]) == 0
    return capsys.readouterr().out


def test_list_names_every_robot_with_kind_and_dof(capsys):
    lines = _run(capsys).splitlines()
    assert lines[0].split() == ['robot', 'kind', 'dof', 'description']
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    for name, dof in EXPECTED_DOF.items():
        assert rows[name][1] == str(dof), name
    assert rows['allegro'][0] == 'pair'
    assert rows['g1_hands'][0] == rows['gr1'][0] == 'humanoid'
    assert rows['inspire_right'][0] == 'hand'


def test_list_as_json(capsys):
    summaries = json.loads(_run(capsys, '--json'))
    by_name = {s['name']: s for s in summaries}
    assert {n: by_name[n]['dof'] for n in EXPECTED_DOF} == EXPECTED_DOF
    assert by_name['inspire']['description'] == load_robot_spec('inspire').description


def test_hand_with_mimic_joints_as_json(capsys):
    details = json.loads(_run(capsys, 'inspire_right', '--json'))
    assert (details['kind'], details['dof'], details['members']) == ('hand', 6, [])
    joints = details['joints']
    driven = [j['urdf_name'] for j in joints if j['mimic'] is None]
    assert driven == list(load_robot_spec('inspire_right').hands[0].joints)
    assert len(joints) == 12 and all(j['group'] == 'right hand' for j in joints)
    by_name = {j['urdf_name']: j for j in joints}
    index = by_name['R_index_proximal_joint']
    assert index['controller_name'] == 'inspire_right/index'
    assert (index['lower'], index['upper']) == pytest.approx((0.0, 1.7))
    assert by_name['R_thumb_distal_joint']['mimic'] == {
        'joint': 'R_thumb_proximal_pitch_joint', 'multiplier': 2.4, 'offset': 0.0}
    assert by_name['R_thumb_distal_joint']['controller_name'] == 'R_thumb_distal_joint'
    (hand,) = details['hands']
    assert hand['side'] == 'right' and hand['keypoints']['little_tip'] == 'R_pinky_tip'
    assert hand['wrist'] == hand['keypoints']['wrist']


def test_pair_lists_left_then_right_with_member_controller_names(capsys):
    details = json.loads(_run(capsys, 'allegro', '--json'))
    assert details['members'] == ['allegro_left', 'allegro_right']
    joints = details['joints']
    assert [j['group'] for j in joints] == ['left hand'] * 16 + ['right hand'] * 16
    assert joints[0]['controller_name'] == 'allegro_left/index_abduction'
    assert joints[16]['controller_name'] == 'allegro_right/index_abduction'
    assert [h['robot'] for h in details['hands']] == ['allegro_left', 'allegro_right']


def test_humanoid_text_shows_arms_then_hands_and_keypoints(capsys):
    out = _run(capsys, 'g1_hands')
    assert out.splitlines()[0].startswith('g1_hands (humanoid, 28 DoF)')
    rows = [line.split() for line in out.splitlines()
            if line.split()[:1] in (['left'], ['right']) and line.split()[2].endswith('_joint')]
    groups = [' '.join(row[:2]) for row in rows]
    assert groups == ['left arm'] * 7 + ['right arm'] * 7 + ['left hand'] * 7 + \
        ['right hand'] * 7
    elbow = next(row for row in rows if row[2] == 'left_elbow_joint')
    assert elbow[4:6] == ['-1.0472', '+2.0944']
    assert 'handx_right_index_tip' in out and 'wrist handx_left_wrist' in out


def test_unknown_robot_is_one_line_listing_the_valid_ones(capsys):
    assert cli.main(['robots', 'no_such_robot']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'no_such_robot' in err and "'inspire_left'" in err and "'g1_hands'" in err


def test_module_loads_neither_torch_nor_mujoco_nor_rclpy():
    code = ('import sys, handx_ros.retarget.cli; '
            'print(sorted(m for m in ("mujoco", "torch", "rclpy") if m in sys.modules))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == '[]'
