"""``handx sim``: a trajectory in, a verdict, a report, plots and a video out."""

from __future__ import annotations

import json

import imageio_ffmpeg
import pytest

from handx_gen.data.synthetic import SynthConfig, load_primitives, synthesize_clip
from handx_gen.motion import BimanualMotion
from handx_ros.cli import main
from handx_ros.retarget import retarget_motion
from handx_ros.sim.cli import GATE_FAILED_EXIT


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    load_primitives()
    folder = tmp_path_factory.mktemp('sim_cli')
    out = {}
    for name, seed in (('clap', 0), ('wave', 1)):
        motion = synthesize_clip(SynthConfig(), seed, seed, motion_types=[name]).motion[:75]
        # The clap with the wrists on the human wrists (contacts not kept), and as kept.
        trajectory = retarget_motion(motion, 'allegro', contact=False if name == 'clap'
                                     else None)
        out[name] = (motion.save(folder / f'{name}_motion.npz'),
                     trajectory.save(folder / f'{name}_traj.npz'))
        if name == 'clap':
            out['clap_kept'] = (out[name][0], retarget_motion(motion, 'allegro').save(
                folder / 'clap_kept_traj.npz'))
    return out


def test_clap_is_simulated_reported_plotted_and_rendered(clips, tmp_path, capsys):
    motion, trajectory = clips['clap']
    report, plot, video = tmp_path / 'r.json', tmp_path / 'p.png', tmp_path / 'v.mp4'
    code = main(['sim', str(trajectory), '--motion', str(motion), '--report', str(report),
                 '--plot', str(plot), '--video', str(video)])
    data = json.loads(report.read_text())
    assert data['verdict'] == ('pass' if code == 0 else 'fail')
    assert code in (0, GATE_FAILED_EXIT)
    # With the wrists on the human wrists the bigger robot hands are commanded into each
    # other: the gate names where.
    assert code == GATE_FAILED_EXIT
    assert any('penetration' in r and 'left/' in r and 'right/' in r and 'mm' in r
               for r in data['reasons'])
    assert data['result']['fidelity']['recall'] >= 0.8
    err = capsys.readouterr().err
    assert 'gate: fail' in err
    assert plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    assert sum(1 for _ in reader) == 75 and meta['size'] == (640, 240)


def test_the_clap_with_its_contact_kept_touches_and_passes(clips, tmp_path, capsys):
    motion, trajectory = clips['clap_kept']
    report = tmp_path / 'r.json'
    assert main(['sim', str(trajectory), '--motion', str(motion), '--report', str(report)]) == 0
    data = json.loads(report.read_text())
    assert data['result']['fidelity']['recall'] == 1.0
    assert data['result']['fidelity']['precision'] == 1.0


def test_a_clean_clip_passes(clips, capsys):
    _, trajectory = clips['wave']
    assert main(['sim', str(trajectory)]) == 0
    assert 'gate: pass' in capsys.readouterr().out


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(['sim', str(tmp_path / 'missing.npz')]) == 2
    assert 'error' in capsys.readouterr().err


def test_a_retimed_clip_is_rendered_beside_its_motion(clips, tmp_path, capsys):
    """`handx retarget` retimes by default: the clip has more frames than its motion, and the
    video places the motion's skeletons at the frames each robot frame plays."""
    load_primitives()
    fist = synthesize_clip(SynthConfig(), 0, 0, motion_types=['fist']).motion[:60]
    motion = fist.save(tmp_path / 'fist.npz')
    trajectory, video = tmp_path / 'retimed.npz', tmp_path / 'v.mp4'
    # The Inspire's fingers do 0.5 rad/s: closing a fist is too fast for them.
    assert main(['retarget', str(motion), '--robot', 'inspire', '--out', str(trajectory)]) == 0
    assert 'retimed: ' in capsys.readouterr().out
    code = main(['sim', str(trajectory), '--motion', str(motion), '--video', str(video)])
    assert code in (0, GATE_FAILED_EXIT), capsys.readouterr().err
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    assert frames > 60 and meta['size'] == (640, 240)


def test_motion_must_be_the_clip_the_trajectory_was_retargeted_from(clips, tmp_path, capsys):
    """`handx retarget` records its clip's rate, length and fingerprint; `handx sim --motion`
    refuses another clip, even one of the same length, in one line."""
    wave, clap = clips['wave'][0], clips['clap'][0]
    motion = BimanualMotion.load(wave)
    trajectory = tmp_path / 'wave_traj.npz'
    assert main(['retarget', str(wave), '--robot', 'allegro', '--out', str(trajectory),
                 '--no-retime']) == 0
    capsys.readouterr()
    assert BimanualMotion.load(clap).num_frames == motion.num_frames  # same length and rate
    faster = motion.resample(60.0).save(tmp_path / 'fast.npz')
    shorter = motion[:50].save(tmp_path / 'short.npz')
    for other, says in [(clap, 'is not the clip the trajectory was retargeted from'),
                        (faster, 'is at 60 fps; the trajectory was retargeted from a clip at '
                                 '30 fps'),
                        (shorter, 'has 50 frames; the trajectory was retargeted from a clip '
                                  'of 75')]:
        assert main(['sim', str(trajectory), '--motion', str(other)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err and str(wave) in err, err
        assert err.startswith(f'handx sim: error: --motion {other} ')
    assert main(['sim', str(trajectory), '--motion', str(wave)]) in (0, GATE_FAILED_EXIT)
