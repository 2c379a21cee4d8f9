"""`make demo` (the data-pipeline demo) runs end to end and its report says what happened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handx_gen.motion import BimanualMotion
from handx_ros import demo


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp('demo')
    assert demo.main(['--out', str(out), '--corpus-clips', '8']) == 0
    return out, json.loads((out / 'report.json').read_text())


def test_clip_is_plausible_and_kept_whole(demo_run):
    _, report = demo_run
    own = report['sources']['motion']
    assert own['frames'] == int(demo.DURATION_S * demo.FPS)
    assert own['kept_fraction'] == 1.0 and own['filter']['dropped'] == []


def test_parameter_sources_round_trip_exactly(demo_run):
    _, report = demo_run
    for kind in ['motion', 'mano']:
        assert report['sources'][kind]['keypoint_error_m'] < 1e-6
        assert report['sources'][kind]['hand_pose_error_rad'] < 1e-9
    # The SMPL-H file carries the clip's finger articulation through the 52-joint layout.
    assert report['sources']['amass-smplh']['hand_pose_error_rad'] < 1e-9


def test_tracker_defects_are_found_where_they_were_put(demo_run):
    _, report = demo_run
    tracker = report['sources']['keypoints']
    start, stop = (int(t * demo.FPS) for t in demo.DROPOUT_S)
    assert tracker['invalid_frames'] == stop - start
    dropped = tracker['filter']['dropped']
    covered = np.zeros(tracker['frames'], bool)
    for segment in dropped:
        covered[segment['start']:segment['stop']] = True
    assert covered[start:stop].all()  # the dropout
    assert covered[int(demo.GLITCH_S * demo.FPS)]  # the glitch
    assert tracker['filter']['flagged_frames']['non_finite'] == stop - start
    # Tracker noise alone drops nothing: only the neighbourhoods of the two defects go.
    assert tracker['kept_fraction'] >= 0.85
    assert all(set(d['reasons']) & {'non_finite', 'acceleration_spike', 'velocity_spike'}
               for d in dropped)


def test_outputs_are_written_and_readable(demo_run):
    out, report = demo_run
    assert (out / 'demo.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'amass-smplh' in (out / 'report.md').read_text()
    for entry in report['sources'].values():
        for name in entry['kept_files']:
            kept = BimanualMotion.load(out / name)
            assert kept.fps == demo.FPS and kept.num_frames >= 2 * demo.FPS


def test_corpus_stage_annotates_and_checks(demo_run):
    out, report = demo_run
    corpus = report['corpus']
    assert corpus['clips'] == 8 and corpus['frames'] > 8 * 60
    assert corpus['check']['flexion']['agreement'] >= 0.9
    assert all(len(example['texts']) >= 3 for example in corpus['examples'])
    assert (out / 'corpus' / 'index.json').is_file()
    assert 'Annotation check' in (out / 'report.md').read_text()


def test_retargeting_stage_reports_every_robot(demo_run):
    out, report = demo_run
    runs = report['retarget']['runs']
    assert set(runs) == {'allegro', 'allegro, wrists on the human wrists',
                         'allegro, collision avoidance', 'g1_hands', 'gr1'}
    for entry in runs.values():
        assert (out / entry['file']).is_file()
        assert entry['metrics']['limit_violation_count'] == 0
    # With the wrists on the human wrists the bigger robot hands overlap; keeping contacts
    # (the default) and avoidance both remove most of it (inside the per-frame velocity
    # bound, a few frames cannot move the fingers apart in time).
    plain = runs['allegro, wrists on the human wrists']['inter_hand_collision_rate']
    kept = runs['allegro']['inter_hand_collision_rate']
    avoided = runs['allegro, collision avoidance']['inter_hand_collision_rate']
    assert plain > 0.0, plain
    assert kept <= 0.5 * plain and avoided <= min(0.05, 0.5 * plain), (kept, avoided, plain)
    assert runs['g1_hands']['wrist_error_median_mm'] < 5.0
    assert runs['gr1']['wrist_error_median_mm'] < 5.0
    assert 'Retargeting' in (out / 'report.md').read_text()


def test_simulation_stage_gates_every_trajectory(demo_run):
    out, report = demo_run
    runs = report['sim']['runs']
    assert set(runs) == set(report['retarget']['runs'])
    for entry in runs.values():
        assert entry['verdict'] in ('pass', 'fail')
        assert (entry['verdict'] == 'fail') == bool(entry['reasons'])
        assert (out / entry['plot']).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    video = out / runs['allegro']['video']
    assert video.stat().st_size > 10_000
    assert 'Simulation (MuJoCo)' in (out / 'report.md').read_text()


def test_generation_stage_uses_the_shipped_models(demo_run):
    out, report = demo_run
    runs = report['generate']['runs']
    assert [(r['model'], r['mode']) for r in runs] == [('diffusion', 'text'), ('ar', 'text'),
                                                      ('diffusion', 'reaction')]
    for run in runs:
        clip = BimanualMotion.load(out / run['file'])
        assert clip.num_frames == 120 and clip.texts == (run['prompt'],)
        assert np.isfinite(clip.keypoints).all()
    reaction = BimanualMotion.load(out / runs[2]['file'])
    source = BimanualMotion.load(out / report['sources']['motion']['file'])
    right = np.linalg.norm(reaction.keypoints[:, 1] - source.keypoints[:120, 1], axis=-1)
    assert right.max() < 1e-3  # the given hand is kept
    robot = report['generate']['robot']
    assert robot['verdict'] in ('pass', 'fail') and (robot['verdict'] == 'fail') == \
        bool(robot['reasons'])
    assert (out / 'generate' / 'diffusion_text.allegro.npz').is_file()
    assert 'Generation (shipped models)' in (out / 'report.md').read_text()
