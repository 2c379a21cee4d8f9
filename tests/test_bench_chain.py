"""The chain benchmark (benchmarks/bench_chain.py): its core on one clip, its noise model, its
prompts and its report's fields. No timing is asserted."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest


def _import_bench_chain():
    """Import the script from benchmarks/ without leaving its folder on ``sys.path`` or its
    ``common`` module in ``sys.modules`` (training/ has a ``common`` module too)."""
    saved_path, saved_common = list(sys.path), sys.modules.pop('common', None)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
    try:
        with mock.patch.dict(os.environ):  # the script's thread and offline defaults stay in it
            import bench_chain
    finally:
        sys.path[:] = saved_path
        sys.modules.pop('common', None)
        if saved_common is not None:
            sys.modules['common'] = saved_common
    return bench_chain


bench_chain = _import_bench_chain()

from handx_gen.data.synthetic import SynthConfig, synthesize_clip  # noqa: E402
from handx_ros.retarget import RobotTrajectory, wrist_poses_from_motion  # noqa: E402

CELL_FIELDS = {
    'clips', 'gate_passed', 'gate_pass_rate', 'gate_failures', 'human_contact_events',
    'robot_contact_events', 'contact_recall', 'contact_precision', 'velocity_ratio_max',
    'velocity_ratio_median', 'velocity_ratio_joint', 'fingertip_error_median_mm',
    'fingertip_error_p95_mm', 'sim_fingertip_error_p95_mm_median', 'converged_fraction',
    'retime_factor_max', 'retime_factor_mean', 'retimed_clips', 'retarget_ms_per_frame_p50',
    'retarget_ms_per_frame_p95', 'clips_without_contact', 'gate_passed_without_contact',
    'clips_with_contact', 'gate_passed_with_contact',
}
CLIP_FIELDS = {
    'cell', 'name', 'prompt', 'frames', 'trajectory_frames', 'gate_passed', 'gate_failures',
    'gate_reasons', 'human_contact_events', 'robot_contact_events', 'human_events_reproduced',
    'robot_events_matched', 'velocity_ratio_max', 'velocity_ratio_joint',
    'sim_fingertip_error_p95_m', 'converged_fraction', 'retime_factor', 'retime_source',
    'retarget_wall_ms_per_frame',
}


@pytest.fixture(scope='module')
def clip():
    return synthesize_clip(SynthConfig(), 3, 1003).motion


def test_one_tracker_clip_on_allegro_has_every_field(tmp_path):
    args = bench_chain.parse_args(['--clips', '1', '--robots', 'allegro', '--cells', 'b',
                                   '--corpus', str(tmp_path / 'corpus'), '--quiet'])
    report = bench_chain.run(args)
    assert set(report['robots']) == {'allegro'}
    assert report['cells'] == {'b': 'tracker'}
    cell = report['robots']['allegro']['cells']['b']
    assert set(cell) == CELL_FIELDS
    assert cell['clips'] == 1
    assert 0.0 <= cell['gate_pass_rate'] <= 1.0
    assert cell['gate_passed'] + min(1, sum(cell['gate_failures'].values())) == 1
    assert cell['velocity_ratio_max'] > 0.0
    assert cell['fingertip_error_median_mm'] > 0.0
    assert cell['retime_factor_max'] >= 1.0 - 1e-9
    assert cell['retarget_ms_per_frame_p50'] > 0.0
    (row,) = report['robots']['allegro']['per_clip']
    assert CLIP_FIELDS <= set(row)
    assert row['gate_passed'] == (not row['gate_failures'])
    for key in ('gate', 'machine', 'tracker_noise', 'corpus', 'seed'):
        assert key in report
    table = bench_chain.markdown(report)
    assert table.count('\n') == 2 and '| allegro | b tracker | 1 |' in table
    assert 'allegro b: gate_pass_rate' in bench_chain.compare(report, report)


def test_tracker_noise_is_seeded_and_keeps_the_container_consistent(clip):
    noisy = bench_chain.tracker_noise(clip, np.random.default_rng(0))
    again = bench_chain.tracker_noise(clip, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy.keypoints, again.keypoints)
    offset = noisy.keypoints.astype(np.float64) - clip.keypoints
    assert 0.0015 < np.median(np.abs(offset)) < 0.0025  # 0.67 sigma for 3 mm jitter
    # Wrist poses as retargeting reads them: the noisy wrist, and the transl moved with it.
    _, p = wrist_poses_from_motion(noisy)
    np.testing.assert_allclose(p, noisy.keypoints[:, :, 0], atol=1e-6)
    np.testing.assert_allclose(noisy.transl - clip.transl,
                               noisy.keypoints[:, :, 0] - clip.keypoints[:, :, 0], atol=1e-6)
    np.testing.assert_array_equal(noisy.hand_pose, clip.hand_pose)
    # Without noise, the fitted wrist frames are the MANO orientation (a rigid palm).
    clean = bench_chain.tracker_noise(clip, np.random.default_rng(0), sigma_m=0.0,
                                      glitch_rate_hz=0.0)
    R_clean, _ = wrist_poses_from_motion(clean)
    R_clip, _ = wrist_poses_from_motion(clip)
    np.testing.assert_allclose(R_clean, R_clip, atol=1e-3)


def test_glitches_move_a_whole_hand_for_one_frame(clip):
    noisy = bench_chain.tracker_noise(clip, np.random.default_rng(1), sigma_m=0.0,
                                      glitch_rate_hz=clip.fps)  # every frame glitches
    shift = np.linalg.norm(noisy.keypoints - clip.keypoints, axis=-1)  # (T, 2, 21)
    assert np.all(shift > 0.02 - 1e-4) and np.all(shift < 0.05 + 1e-4)
    np.testing.assert_allclose(shift, shift[:, :, :1].repeat(21, axis=2), atol=1e-5)


def test_user_prompts_are_many_distinct_and_not_comments():
    prompts = bench_chain.load_user_prompts()
    assert len(prompts) >= 20
    assert len(set(p.lower() for p in prompts)) == len(prompts)
    assert not any(p.startswith('#') for p in prompts)


def test_retime_factor_reads_info_else_durations(clip):
    qpos = np.zeros((clip.num_frames, 1))
    plain = RobotTrajectory(robot='allegro', fps=clip.fps, joint_names=('j',), qpos=qpos)
    assert bench_chain.retime_factor(plain, clip) == (pytest.approx(1.0), 'duration')
    slower = RobotTrajectory(robot='allegro', fps=clip.fps, joint_names=('j',),
                             qpos=np.zeros((2 * clip.num_frames, 1)))
    assert bench_chain.retime_factor(slower, clip) == (pytest.approx(2.0), 'duration')
    told = RobotTrajectory(robot='allegro', fps=clip.fps, joint_names=('j',), qpos=qpos,
                           info={'retime': {'factor': 1.5}})
    assert bench_chain.retime_factor(told, clip) == (1.5, 'info')


def test_cells_parse_by_letter_or_name():
    assert bench_chain.Cell.parse_list('a, tracker,user_prompts') == [
        bench_chain.Cell.CORPUS, bench_chain.Cell.TRACKER, bench_chain.Cell.USER_PROMPTS]
    assert bench_chain.Cell.parse_list('e,contact_prompts') == [
        bench_chain.Cell.CONTACT_PROMPTS] * 2
    with pytest.raises(SystemExit, match='unknown cell'):
        bench_chain.Cell.parse_list('f')


def test_contact_prompts_ask_for_touching_hands_in_both_phrasings():
    prompts = bench_chain.load_user_prompts(bench_chain.CONTACT_PROMPTS)
    assert len(prompts) >= 16 and len(set(prompts)) == len(prompts)
    corpus_style = [p for p in prompts if p[0].isupper() and p.endswith('.')]
    assert 6 <= len(corpus_style) <= len(prompts) - 6  # both registers
    users = set(bench_chain.load_user_prompts())
    assert not users & set(corpus_style)


def test_corpus_sample_takes_every_motion_type_before_a_second(tmp_path):
    from handx_gen.data.synthetic import load_index

    folder = bench_chain.corpus_dir(tmp_path / 'corpus', 0, 0, 6)
    index = load_index(folder)
    types = {tuple(r.motion_types) for r in index.rows}
    sample = bench_chain.corpus_sample(folder, len(types))
    rows = {r.clip_id: r for r in index.rows}
    assert len({tuple(rows[name].motion_types) for name, _, _ in sample}) == len(types)
    assert len(bench_chain.corpus_sample(folder, 1000)) == len(
        {r.composition_seed for r in index.rows})
