"""Tests for ``handx data inspect|filter|convert`` through the ``handx`` entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handx_gen.hand.limits import anatomical_bounds, anatomical_to_pose
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import HandSide
from handx_gen.motion import BimanualMotion
from handx_ros.cli import main

FPS = 30.0


def _params(num_frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Slowly moving hands within joint limits; the left wrist sweeps x from 0.1 to 0.3 m."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, num_frames)[:, None, None, None]
    lower, upper = anatomical_bounds()
    angles = (lower + upper) / 2 + 0.3 * (upper - lower) / 2 * np.sin(
        4 * np.pi * t + rng.uniform(0, 2 * np.pi, size=(2, 15, 3)))  # (T, 2, 15, 3)
    hand_pose = np.stack([anatomical_to_pose(angles[:, side], default_skeleton(side))
                          for side in HandSide], axis=1)
    orient = np.zeros((num_frames, 2, 3))
    orient[:, :, 0] = 0.3 * np.sin(2 * np.pi * t[:, :, 0, 0])
    transl = np.zeros((num_frames, 2, 3))
    transl[:, 0] = [0.2, 0.0, 1.0]
    transl[:, 1] = [-0.2, 0.0, 1.0]
    transl[:, 0, 0] = 0.1 + 0.2 * t[:, 0, 0, 0]
    return {'global_orient': orient, 'hand_pose': hand_pose, 'transl': transl}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(['data', *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2
    assert out == ''
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('handx data: error: ')
    assert 'Traceback' not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_inspect_motion_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / 'clip.npz'
    BimanualMotion.from_mano(FPS, **_params(45)).save(path)
    code, out, err = _run(capsys, 'inspect', path)
    assert code == 0 and err == ''
    assert 'fps: 30' in out
    assert 'frames: 45' in out
    assert 'duration: 1.500 s' in out
    # The default skeleton's rest wrist is its origin, so the wrist is at transl.
    left = out[out.index('left hand:'):out.index('right hand:')]
    assert 'wrist x: +0.100 .. +0.300 m' in left
    assert 'wrist z: +1.000 .. +1.000 m' in left
    assert 'fingertip spread' in left and 'joint angle: ' in left

    code, out, _ = _run(capsys, 'inspect', path, '--json')
    summary = json.loads(out)
    assert (summary['fps'], summary['frames'], summary['kind']) == (30.0, 45, 'motion')
    np.testing.assert_allclose(summary['hands']['right']['wrist_min_m'], [-0.2, 0.0, 1.0],
                               atol=1e-6)
    angles = np.degrees(np.linalg.norm(_params(45)['hand_pose'][:, 0], axis=-1))
    np.testing.assert_allclose(summary['hands']['left']['joint_angle_deg'],
                               [angles.min(), angles.max()], rtol=1e-9)


def test_inspect_amass_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / 'amass.npz'
    np.savez(path, poses=np.zeros((12, 156)), trans=np.zeros((12, 3)),
             mocap_framerate=np.array(120.0))
    code, out, _ = _run(capsys, 'inspect', path)
    assert code == 0
    assert '(amass-smplh)' in out and 'fps: 120' in out and 'frames: 12' in out
    assert 'duration: 0.100 s' in out


def test_filter_prints_reasons_and_writes_segments(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = _params(210)
    params['transl'][100, 1, 2] += 0.3  # a teleport at frame 100
    source = tmp_path / 'mano.npz'
    np.savez(source, fps=np.array(FPS), **params)
    out_dir = tmp_path / 'kept'
    code, out, err = _run(capsys, 'filter', source, '--out', out_dir)
    assert code == 0, err
    assert 'kept 2 segment(s)' in out
    assert 'dropped frames 96-105' in out and 'velocity_spike' in out
    written = sorted(out_dir.glob('*.npz'))
    assert [p.name for p in written] == ['mano_000000-000096.npz', 'mano_000105-000210.npz']
    assert [BimanualMotion.load(p).num_frames for p in written] == [96, 105]

    code, out, _ = _run(capsys, 'filter', source, '--json')
    report = json.loads(out)
    assert [(k['start'], k['stop']) for k in report['kept']] == [(0, 96), (105, 210)]
    assert report['dropped'][0]['reasons'] == ['velocity_spike', 'acceleration_spike']
    assert report['written'] == []


def test_filter_config_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / 'clip.npz'
    BimanualMotion.from_mano(FPS, **_params(40)).save(source)
    config = tmp_path / 'filter.yaml'
    config.write_text('min_segment_s: 1.0\n')
    code, out, _ = _run(capsys, 'filter', source, '--config', config)
    assert code == 0 and 'kept 1 segment(s)' in out  # 1.33 s >= 1 s
    code, out, _ = _run(capsys, 'filter', source)
    assert code == 0 and 'kept 0 segment(s)' in out and 'too_short' in out  # < 2 s default
    config.write_text('min_segment: 1.0\n')
    code, out, err = _run(capsys, 'filter', source, '--config', config)
    _assert_one_line_error(code, out, err, "unknown filter config key 'min_segment'",
                           'min_segment_s')


def test_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = _params(20)
    source = tmp_path / 'mano.npz'
    np.savez(source, fps=np.array(FPS), **params)
    target = tmp_path / 'out.npz'
    code, out, _ = _run(capsys, 'convert', source, target, '--kind', 'mano')
    assert code == 0 and 'wrote' in out and 'mano -> handx-motion/1' in out
    motion = BimanualMotion.load(target)
    np.testing.assert_allclose(motion.hand_pose, params['hand_pose'])
    np.testing.assert_allclose(motion.transl, params['transl'])

    params['hand_pose'][3, 0, 0, 0] = np.nan
    np.savez(source, fps=np.array(FPS), **params)
    code, out, err = _run(capsys, 'convert', source, target)
    _assert_one_line_error(code, out, err, 'mano.npz', 'frames 3',
                           '`handx data convert FILE OUT.npz --fill-invalid`',
                           '`handx data filter FILE --out DIR`')
    code, out, err = _run(capsys, 'convert', source, target, '--fill-invalid')
    assert code == 0 and '1 invalid frames filled' in out, err
    filled = BimanualMotion.load(target).hand_pose
    assert np.isfinite(filled).all()
    assert any(np.allclose(filled[3], params['hand_pose'][i]) for i in (2, 4))
    code, out, err = _run(capsys, 'convert', tmp_path / 'missing.npz', target)
    _assert_one_line_error(code, out, err, 'not found')


def test_bad_files_give_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / 'garbage.npz'
    garbage.write_text('this is not an archive')
    for command in ('inspect', 'filter'):
        code, out, err = _run(capsys, command, garbage)
        _assert_one_line_error(code, out, err, 'garbage.npz')
    unknown = tmp_path / 'unknown.npz'
    np.savez(unknown, something=np.zeros(2))
    code, out, err = _run(capsys, 'inspect', unknown)
    _assert_one_line_error(code, out, err, 'unknown.npz', "'keypoints'", "'amass-smplh'")
    old = tmp_path / 'old.npz'
    np.savez(old, format=np.array('handx-motion/0'), fps=np.array(30.0))
    code, out, err = _run(capsys, 'inspect', old)
    _assert_one_line_error(code, out, err, 'handx-motion/0')
    source = tmp_path / 'clip.npz'
    BimanualMotion.from_mano(FPS, **_params(5)).save(source)
    (tmp_path / 'a_file').write_text('')
    code, out, err = _run(capsys, 'convert', source, tmp_path / 'a_file' / 'x.npz')
    _assert_one_line_error(code, out, err, 'cannot create the folder of', 'a_file')


def test_convert_creates_the_output_folder(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / 'clip.npz'
    BimanualMotion.from_mano(FPS, **_params(5)).save(source)
    target = tmp_path / 'new' / 'deeper' / 'x.npz'
    code, out, err = _run(capsys, 'convert', source, target)
    assert code == 0 and err == '' and f'wrote {target}' in out
    assert BimanualMotion.load(target).num_frames == 5


def _clip(tmp_path: Path, num_frames: int = 90) -> tuple[BimanualMotion, Path]:
    motion = BimanualMotion.from_mano(FPS, **_params(num_frames))
    return motion, motion.save(tmp_path / 'clip.npz')


def test_slice_keeps_a_part_given_in_seconds_or_frames(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    motion, source = _clip(tmp_path)
    out = tmp_path / 'parts' / 'a.npz'
    code, printed, err = _run(capsys, 'slice', source, out, '--start', '0.5', '--end', '2')
    assert code == 0 and 'frames 15-60 of 90, 0.500-2.000 s' in printed, err
    np.testing.assert_array_equal(BimanualMotion.load(out).keypoints, motion.keypoints[15:60])
    code, printed, err = _run(capsys, 'slice', source, out, '--start', '10', '--frames')
    assert code == 0 and 'frames 10-90 of 90' in printed, err
    assert BimanualMotion.load(out).num_frames == 80
    code, printed, err = _run(capsys, 'slice', source, out, '--end', '4')
    _assert_one_line_error(code, printed, err, '--end 4 s: frames [0, 120)',
                           '90 frames (3.000 s at 30 fps)')
    code, printed, err = _run(capsys, 'slice', source, out, '--start', '1.5', '--frames')
    _assert_one_line_error(code, printed, err, '--start must be a whole frame number')
    code, printed, err = _run(capsys, 'slice', source, source, '--end', '1')
    _assert_one_line_error(code, printed, err, 'same file')


def test_resample_plays_a_clip_at_another_rate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    motion, source = _clip(tmp_path)
    out = tmp_path / 'new' / 'fast.npz'
    code, printed, err = _run(capsys, 'resample', source, out, '--fps', '60')
    assert code == 0 and '30 -> 60 fps, 3.000 s' in printed and '180 frames at 60 fps' in printed
    fast = BimanualMotion.load(out)
    assert fast.fps == 60.0 and fast.num_frames == 180
    np.testing.assert_allclose(fast.keypoints[::2], motion.keypoints, atol=1e-6)
    code, printed, err = _run(capsys, 'resample', source, out, '--fps', '0')
    _assert_one_line_error(code, printed, err, '--fps must be between')


# ---------------------------------------------------------------------------- frames, placement


def _tracker_hands(num_frames: int = 30) -> np.ndarray:
    """(T, 2, 21, 3) world keypoints of two hands held palm down, fingers forward (+y), turning
    left and right by up to 20 degrees about the vertical while they close from open to fist;
    wrists 0.3 m apart at 1.1 m height. The left hand is the right one's mirror image."""
    from handx_gen.data.synth_gestures import Posture, posture
    from handx_gen.data.synth_motion import local_keypoints, place_keypoints, wrist_rotation

    s = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    angles = (1 - s) * posture(Posture.OPEN) + s * posture(Posture.FIST)  # (T, 15, 3)
    yaw = np.radians(20.0) * np.sin(2 * np.pi * s[:, 0, 0])
    fingers = np.stack([-np.sin(yaw), np.cos(yaw), np.zeros_like(yaw)], axis=-1)  # (T, 3)
    hands = []
    for side, mirror in ((HandSide.LEFT, -1.0), (HandSide.RIGHT, 1.0)):
        R = wrist_rotation(fingers * [mirror, 1.0, 1.0], np.array([0.0, 0.0, -1.0]), side)
        local = local_keypoints(angles, default_skeleton(side))
        hands.append(place_keypoints(local, R, np.array([0.15 * mirror, 0.4, 1.1])))
    return np.stack(hands, axis=1)


def _pairwise(keypoints: np.ndarray) -> np.ndarray:
    """(T, 2, 21, 21) distances between each hand's keypoints."""
    return np.linalg.norm(keypoints[..., :, None, :] - keypoints[..., None, :, :], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize(('axes', 'note'), [
    ('left,down,back', ''),  # a camera facing the person: image x right, y down, depth away
    ('right,down,forward', ''),  # a head-mounted camera looking forward
    # The same camera with depth towards it: left-handed axes, read through a mirror.
    ('left,down,forward', 'handx data: note: --axes left,down,forward are left-handed'),
])
def test_wrist_centred_tracker_hands_land_at_the_canonical_spots(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], axes: str, note: str) -> None:
    """A tracker's wrist-centred keypoints, in its own axes, come out with the wrists on the
    canonical spots, the fingers forward and the palms down, as the hands were; the shape of
    each hand is unchanged."""
    from handx_gen.data.frames import AxesMap
    from handx_gen.data.workspace import CANONICAL_WRIST_M

    world = _tracker_hands()
    R_world_source = AxesMap.parse(axes).R_world_source
    tracker = (world - world[:, :, :1]) @ R_world_source  # R.T @ (p - wrist), R orthogonal
    source = tmp_path / 'tracker.npz'
    np.savez(source, keypoints=tracker.astype(np.float32), fps=np.array(FPS))
    target = tmp_path / 'placed.npz'
    code, out, err = _run(capsys, 'convert', source, target, '--frame', 'wrist', '--axes', axes)
    assert code == 0, err
    assert f'axes {axes}, wrist frame, placed at the canonical spots' in out
    assert err.strip() == '' if not note else err.startswith(note) and err.count('\n') == 1

    keypoints = BimanualMotion.load(target).keypoints.astype(np.float64)  # (T, 2, 21, 3)
    wrist = keypoints[:, :, 0]
    np.testing.assert_allclose(wrist, np.broadcast_to(CANONICAL_WRIST_M, wrist.shape),
                               atol=1e-5)
    middle = _unit(keypoints[:, :, 9] - wrist)  # wrist to middle MCP
    np.testing.assert_allclose(middle, _unit(world[:, :, 9] - world[:, :, 0]), atol=1e-3)
    assert middle[:, :, 1].min() > np.cos(np.radians(21.0))  # forward, turning up to 20 deg
    # Palm normal: index MCP x little MCP about the wrist faces the palm's way for a right
    # hand; a left hand, the mirror image, has it the other way round.
    palm = _unit(np.cross(keypoints[:, :, 5] - wrist, keypoints[:, :, 17] - wrist))
    palm[:, HandSide.LEFT] *= -1.0
    np.testing.assert_allclose(palm, np.broadcast_to([0.0, 0.0, -1.0], palm.shape), atol=1e-3)
    np.testing.assert_allclose(_pairwise(keypoints), _pairwise(world), atol=1e-5)


def test_wrist_centred_data_read_as_world_positions_are_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = _tracker_hands()
    source = tmp_path / 'tracker.npz'
    np.savez(source, keypoints=world - world[:, :, :1], fps=np.array(FPS))
    target = tmp_path / 'as_is.npz'
    for extra in ([], ['--frame', 'wrist', '--place', 'none']):
        code, out, err = _run(capsys, 'convert', source, target, *extra)
        assert code == 0 and 'wrote' in out
        lines = err.strip().splitlines()
        assert len(lines) == 2, err  # one line per hand
        for line, hand in zip(lines, ('left', 'right'), strict=True):
            assert line.startswith(f'handx data: warning: {source}: the {hand} wrist is outside '
                                   f'the usual workspace in 30 of 30 frames (0-29), up to 0.')
            assert 'wrist-centred data? convert with --frame wrist' in line
    code, out, err = _run(capsys, 'inspect', source, '--json')
    assert code == 0 and err == ''
    assert len(json.loads(out)['workspace']) == 2


def test_a_wrist_3_m_away_is_warned_about(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    params = _params(30)
    params['transl'][:, 1] = [3.0, 0.3, 1.0]  # the right wrist 3 m to the right
    source = tmp_path / 'far.npz'
    BimanualMotion.from_mano(FPS, **params).save(source)
    code, out, err = _run(capsys, 'convert', source, tmp_path / 'out.npz')
    assert code == 0 and 'wrote' in out
    assert err.count('\n') == 1, err
    assert err.startswith(f'handx data: warning: {source}: the right wrist is outside the usual '
                          f'workspace in 30 of 30 frames (0-29), up to 2.30 m from it (frame 0: '
                          f'(+3.00, +0.30, +1.00) m); check --axes, --frame and --place')
    # Moved as a whole to the usual spots, the pair keeps its 3.2 m span and its warning.
    code, out, err = _run(capsys, 'convert', source, tmp_path / 'out.npz', '--place',
                          'canonical')
    assert code == 0 and 'placed at the canonical spots' in out and 'right wrist' in err


def test_up_axis_stays_a_shorthand_for_axes(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    world = _tracker_hands(10)
    source = tmp_path / 'y_up.npz'
    # A Y-up file: its y is the world's up, its z the world's back.
    np.savez(source, keypoints=world[..., [0, 2, 1]] * [1.0, 1.0, -1.0], fps=np.array(FPS))
    summaries = []
    for option in (['--up-axis', 'y'], ['--axes', 'right,up,back']):
        code, out, err = _run(capsys, 'inspect', source, '--json', *option)
        assert code == 0 and err == ''
        summaries.append(json.loads(out)['hands'])
    assert summaries[0] == summaries[1]
    np.testing.assert_allclose(summaries[0]['right']['wrist_min_m'], world[0, 1, 0], atol=1e-4)


def test_frame_and_axes_errors_are_one_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    mano = tmp_path / 'mano.npz'
    np.savez(mano, fps=np.array(FPS), **_params(5))
    amass = tmp_path / 'amass.npz'
    np.savez(amass, poses=np.zeros((5, 156)), trans=np.zeros((5, 3)),
             mocap_framerate=np.array(FPS))
    out = tmp_path / 'out.npz'
    cases = [
        ((mano, '--axes', 'left,down'), ("axes 'left,down': 2 directions, not 3",
                                         'right, left, forward, back, up, down')),
        ((mano, '--axes', 'left,dwn,back'), ("'dwn' is not a direction",)),
        ((mano, '--axes', 'up,down,left'), ('two axes point along the same world axis',)),
        ((mano, '--axes', 'right,up,back', '--up-axis', 'y'),
         ('--axes right,up,back and --up-axis y: give one',)),
        ((mano, '--axes', 'left,down,forward'), ('mano.npz', 'are a reflection',
                                                 'only keypoint files')),
        ((amass, '--frame', 'wrist'), ('amass.npz', "frame 'wrist' does not apply to an "
                                                    'amass-smplh file')),
    ]
    for argv, fragments in cases:
        code, printed, err = _run(capsys, 'convert', argv[0], out, *argv[1:])
        _assert_one_line_error(code, printed, err, *fragments)
    assert not out.exists()


def test_place_help_quotes_the_canonical_spots(capsys: pytest.CaptureFixture[str]) -> None:
    """The parser loads no numpy, so its help repeats the spots: it must say the same."""
    from handx_gen.data.workspace import CANONICAL_WRIST_M

    with pytest.raises(SystemExit):
        main(['data', 'convert', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    for side, (x, y, z) in zip(('left', 'right'), CANONICAL_WRIST_M, strict=True):
        assert f'{side} ({x:.2f}, {y:.2f}, {z:.2f})' in text


# ---------------------------------------------------------------------------- one hand


@pytest.mark.parametrize('layout', ['nan', 'zeros', 'one'])
def test_a_one_hand_recording_converts_to_a_one_hand_motion(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str) -> None:
    """A wrist-centred right-hand recording in camera axes, the left hand NaN, zeros or not
    in the file (--side right): convert says the left hand is absent and kept so, places the
    right hand, and inspect and filter look at the right hand alone."""
    from handx_gen.data.frames import AxesMap
    from handx_gen.data.workspace import CANONICAL_WRIST_M

    world = _tracker_hands(60)[:, HandSide.RIGHT]
    tracker = (world - world[:, :1]) @ AxesMap.parse('left,down,back').R_world_source
    if layout != 'one':
        both = np.full((60, 2, 21, 3), np.nan if layout == 'nan' else 0.0)
        both[:, HandSide.RIGHT] = tracker
        tracker = both
    source = tmp_path / 'tracker.npz'
    np.savez(source, keypoints=tracker.astype(np.float32), fps=np.array(FPS))
    side = ['--side', 'right'] if layout == 'one' else []
    target = tmp_path / 'clip.npz'
    code, out, err = _run(capsys, 'convert', source, target, '--frame', 'wrist', '--axes',
                          'left,down,back', *side)
    assert code == 0, err
    assert 'the right hand only (the other hand absent)' in out
    assert '(moved right 1.' in out and 'moved left' not in out
    notes = err.strip().splitlines()
    assert len(notes) == 1 and notes[0].startswith(f'handx data: note: {source}: the left hand ')
    assert 'it is kept absent' in notes[0]
    motion = BimanualMotion.load(target)
    np.testing.assert_array_equal(motion.present, [False, True])
    np.testing.assert_allclose(motion.keypoints[:, 1, 0],
                               np.broadcast_to(CANONICAL_WRIST_M[1], (60, 3)), atol=1e-5)
    np.testing.assert_allclose(_pairwise(motion.keypoints)[:, 1], _pairwise(world), atol=1e-3)

    code, out, err = _run(capsys, 'inspect', target)
    assert code == 0 and 'hands: right only (the left hand is absent)' in out
    assert 'left hand:' not in out and 'right hand:' in out
    assert 'the left hand is absent from the file: it is kept absent' in err
    # filter judges the right hand: every frame kept (the left hand's NaN observations and
    # its stand-in pose count for nothing)
    code, out, err = _run(capsys, 'filter', source, '--frame', 'wrist', '--axes',
                          'left,down,back', *side)
    assert code == 0, err
    assert 'kept 1 segment(s), 2.00 s (100%)' in out, out


def test_filter_does_not_judge_an_absent_hand(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A right hand reaching across to where the absent left hand's stand-in rests: no
    interpenetration, since there is no left hand; with the left hand present there is."""
    from handx_gen.motion import rest_hand

    world = _tracker_hands(60)
    world[:, HandSide.RIGHT] += rest_hand(HandSide.LEFT).keypoints[0] - world[:, 1, :1] + [
        0.0, 0.0, 0.01]  # the right wrist 1 cm above the left rest wrist
    both = world.copy()
    world[:, HandSide.LEFT] = np.nan
    np.savez(tmp_path / 'one.npz', keypoints=world, fps=np.array(FPS))
    code, out, err = _run(capsys, 'filter', tmp_path / 'one.npz')
    assert code == 0, err
    assert 'kept 1 segment(s), 2.00 s (100%)' in out and 'interpenetration' not in out
    both[:, HandSide.LEFT] = rest_hand(HandSide.LEFT).keypoints  # a real, still left hand there
    np.savez(tmp_path / 'two.npz', keypoints=both, fps=np.array(FPS))
    code, out, err = _run(capsys, 'filter', tmp_path / 'two.npz')
    assert code == 0, err
    assert 'interpenetration' in out


def test_one_hand_side_errors_are_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    world = _tracker_hands(10)
    np.savez(tmp_path / 'one.npz', keypoints=world[:, 1], fps=np.array(FPS))
    code, out, err = _run(capsys, 'convert', tmp_path / 'one.npz', tmp_path / 'o.npz')
    _assert_one_line_error(code, out, err, 'one hand: say which', '--side right')
    np.savez(tmp_path / 'two.npz', keypoints=world, fps=np.array(FPS))
    code, out, err = _run(capsys, 'convert', tmp_path / 'two.npz', tmp_path / 'o.npz',
                          '--side', 'left')
    _assert_one_line_error(code, out, err, 'side left is for a file of one hand')
