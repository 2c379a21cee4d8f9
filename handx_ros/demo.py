"""``make demo``: run the HandX pipeline end to end on shipped defaults.

Until the ROS node graph exists, the demo runs the longest part of the pipeline that does: the
training-data front end. It composes a 10 s bimanual clip in MANO space from anatomical joint
angles (open hand, fist, pointing; wrists approaching and turning), then writes the same motion
as each kind of source the data pipeline reads:

* ``handx-motion/1`` (the project's own file),
* a MANO-parameter sequence (as ARCTIC/InterHand-style exports provide),
* an AMASS-style SMPL-H file (body in T-pose, the clip's finger articulation),
* a 21-keypoint hand-tracker stream with 2 mm noise, a 0.3 s dropout and a one-frame glitch,

reads every one back through the source readers (the SMPL-H file through the 52-joint layout,
the tracker stream through skeleton fitting and IK), filters them, writes the kept segments and
a report (``report.json``, ``report.md``) with a figure (``demo.png``): hand skeletons over time
and the filter's decisions on the tracker stream.

Then it builds a small synthetic corpus (``handx data synth``: 2-3 motion types per clip, 31
types), annotates every clip from its geometry (features, then text at three granularities) and
checks the annotation against the generator's plans (``handx data check-annotation``); the
report shows the check and a few clips' descriptions.

Last, it retargets the clip onto the bimanual Allegro pair (with and without collision
avoidance) and onto two humanoids, the Unitree G1 with Dex3 hands and the Fourier GR1 with
Inspire hands (``handx retarget``), writing the ``handx-robot-trajectory/1`` files and their
metrics (fingertip and wrist errors, convergence, collisions, time per frame). Each trajectory
is then played in MuJoCo (``handx sim``) and judged by the gate (``config/sim_gate.yaml``): the
report lists the verdict with every reason, ``sim/`` holds the plots and a video of the first
trajectory beside the human skeleton.

Then the shipped generation models make motion (``handx generate``): a clip from text with the
diffusion and the autoregressive model, and a reaction (the demo clip's right hand given, the
left hand generated). The contacts of each generated clip are extracted like the corpus'; the
diffusion clip is retargeted onto the Allegro pair and gated in MuJoCo: text to robot.

Run: ``python -m handx_ros.demo --out demo_output`` (``make demo`` does).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from handx_gen.data import SourceKind, filter_reading, load_source
from handx_gen.data.smplh import NUM_SMPLH_JOINTS
from handx_gen.errors import HandxError
from handx_gen.hand import (
    KEYPOINT_PARENTS,
    Finger,
    HandSide,
    anatomical_to_pose,
    axis_angle_to_matrix,
    default_skeleton,
    finger_keypoints,
    matrix_to_axis_angle,
)
from handx_gen.hand.limits import POSE_JOINT_NAMES
from handx_gen.motion import BimanualMotion

FPS = 30.0
DURATION_S = 10.0
TABLE_HEIGHT_M = 1.0
TRACKER_NOISE_M = 0.002
DROPOUT_S = (6.5, 6.8)
GLITCH_S = 3.0
GLITCH_M = 0.10


def _angles(**flexion_deg: float) -> np.ndarray:
    """Anatomical angles (15, 3) from per-joint flexion in degrees; everything else zero."""
    angles = np.zeros((15, 3))
    for name, degrees in flexion_deg.items():
        angles[POSE_JOINT_NAMES.index(name), 0] = math.radians(degrees)
    return angles


def _finger_curl(fingers: Sequence[str], mcp: float, pip: float, dip: float) -> dict[str, float]:
    curl: dict[str, float] = {}
    for finger in fingers:
        curl.update({f'{finger}1': mcp, f'{finger}2': pip, f'{finger}3': dip})
    return curl


OPEN = _angles()
FIST = _angles(**_finger_curl(['index', 'middle', 'ring', 'little'], 80.0, 95.0, 60.0),
               thumb1=30.0, thumb2=40.0, thumb3=50.0)
POINT = _angles(**_finger_curl(['middle', 'ring', 'little'], 80.0, 95.0, 60.0),
                thumb1=30.0, thumb2=40.0, thumb3=40.0)
# (time s, left angles, right angles): the hands alternate, then both make a fist.
KEYPOSES = [
    (0.0, OPEN, OPEN), (1.5, FIST, OPEN), (3.0, OPEN, FIST), (4.5, POINT, POINT),
    (6.0, OPEN, OPEN), (7.5, FIST, FIST), (9.0, OPEN, OPEN), (DURATION_S, OPEN, OPEN),
]


def _minimum_jerk(s: np.ndarray) -> np.ndarray:
    """The minimum-jerk time profile on [0, 1]: zero velocity and acceleration at both ends."""
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def compose_clip() -> BimanualMotion:
    """The demo clip: keyposes blended with minimum-jerk profiles, wrists moving and turning."""
    times = np.arange(int(DURATION_S * FPS)) / FPS
    angles = np.zeros((times.size, 2, 15, 3))
    key_times = [k[0] for k in KEYPOSES]
    for index, t in enumerate(times):
        seg = min(np.searchsorted(key_times, t, side='right') - 1, len(KEYPOSES) - 2)
        (t0, *pose0), (t1, *pose1) = KEYPOSES[seg], KEYPOSES[seg + 1]
        w = _minimum_jerk(np.clip((t - t0) / (t1 - t0), 0.0, 1.0))
        for side in HandSide:
            angles[index, side] = (1 - w) * pose0[side] + w * pose1[side]
    hand_pose = np.stack(
        [anatomical_to_pose(angles[:, side], default_skeleton(side)) for side in HandSide], 1)
    # Wrists: palms face each other with the fingers forward (+y), thumbs up. In the canonical
    # frame the left hand's fingers point +x and the right hand's -x, palms -y: a quarter turn
    # about z (+90 deg left, -90 deg right, mirror images) brings them there. The hands
    # approach and part twice and turn about the forearm (the rest finger axis, x) by up to
    # 35 degrees; mirroring keeps that turn's axis-angle the same on both hands.
    phase = 2 * math.pi * times / (DURATION_S / 2)
    gap = 0.12 + 0.04 * np.cos(phase)  # wrist distance from the midline, metres
    transl = np.zeros((times.size, 2, 3))
    transl[:, HandSide.LEFT, 0] = -gap
    transl[:, HandSide.RIGHT, 0] = gap
    transl[:, :, 1] = 0.30 + 0.03 * np.sin(phase)[:, None]
    transl[:, :, 2] = TABLE_HEIGHT_M + 0.05 * np.sin(phase / 2)[:, None]
    turn = np.zeros((times.size, 3))
    turn[:, 0] = math.radians(35.0) * np.sin(phase / 2)
    global_orient = np.zeros((times.size, 2, 3))
    for side, quarter in [(HandSide.LEFT, math.pi / 2), (HandSide.RIGHT, -math.pi / 2)]:
        R_world_hand = axis_angle_to_matrix(np.array([0.0, 0.0, quarter])) @ \
            axis_angle_to_matrix(turn)  # (T, 3, 3)
        global_orient[:, side] = matrix_to_axis_angle(R_world_hand)
    text = 'the hands alternate making a fist, both point, then both make a fist'
    return BimanualMotion.from_mano(FPS, global_orient, hand_pose, transl, texts=(text,))


def write_sources(motion: BimanualMotion, folder: Path, seed: int) -> dict[SourceKind, Path]:
    """Write ``motion`` as every source kind the readers support."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {SourceKind.MOTION: motion.save(folder / 'clip.handx.npz')}
    paths[SourceKind.MANO] = folder / 'clip.mano.npz'
    np.savez(paths[SourceKind.MANO], fps=motion.fps, global_orient=motion.global_orient,
             hand_pose=motion.hand_pose, transl=motion.transl)
    # AMASS-style SMPL-H: a standing body in T-pose (Z-up world: +90 deg about x on the root),
    # the clip's finger articulation on both hands.
    poses = np.zeros((motion.num_frames, NUM_SMPLH_JOINTS, 3))
    poses[:, 0] = [math.pi / 2, 0.0, 0.0]
    poses[:, 22:37] = motion.hand_pose[:, HandSide.LEFT]
    poses[:, 37:52] = motion.hand_pose[:, HandSide.RIGHT]
    trans = np.zeros((motion.num_frames, 3))
    trans[:, 2] = 0.95
    paths[SourceKind.AMASS_SMPLH] = folder / 'clip.smplh.npz'
    np.savez(paths[SourceKind.AMASS_SMPLH], poses=poses.reshape(motion.num_frames, -1),
             trans=trans, mocap_framerate=motion.fps, betas=np.zeros(16))
    # A hand tracker's output: noise, a dropout (NaN) and a one-frame glitch.
    rng = np.random.default_rng(seed)
    keypoints = motion.keypoints.astype(np.float64)
    keypoints = keypoints + rng.normal(scale=TRACKER_NOISE_M, size=keypoints.shape)
    keypoints[int(DROPOUT_S[0] * FPS):int(DROPOUT_S[1] * FPS)] = np.nan
    keypoints[int(GLITCH_S * FPS), HandSide.RIGHT] += [0.0, 0.0, GLITCH_M]
    paths[SourceKind.KEYPOINTS] = folder / 'clip.tracker.npz'
    np.savez(paths[SourceKind.KEYPOINTS], fps=motion.fps, keypoints=keypoints.astype(np.float32))
    return paths


def run(out: Path, seed: int = 0, corpus_clips: int = 40) -> dict:
    """Run the demo, writing everything below ``out``; returns the report."""
    out.mkdir(parents=True, exist_ok=True)
    motion = compose_clip()
    paths = write_sources(motion, out / 'sources', seed)
    report: dict = {'clip': {'fps': motion.fps, 'frames': motion.num_frames,
                             'duration_s': motion.duration_s, 'text': motion.texts[0]},
                    'sources': {}}
    results = {}
    for kind, path in paths.items():
        reading = load_source(path, kind, fill_invalid=True)
        result = filter_reading(reading)
        results[kind] = (reading, result)
        kept_files = []
        for index, kept in enumerate(result.kept_motions(reading.motion)):
            kept_path = out / 'kept' / f'{path.name.split(".")[1]}_{index}.npz'
            kept_files.append(str(kept.save(kept_path).relative_to(out)))
        entry = {
            'file': str(path.relative_to(out)),
            'frames': reading.motion.num_frames,
            'invalid_frames': reading.num_invalid_frames,
            'hand_pose_error_rad': float(
                np.abs(reading.motion.hand_pose - motion.hand_pose).max()),
            'kept_fraction': result.kept_fraction,
            'filter': result.to_dict(),
            'kept_files': kept_files,
        }
        if kind is not SourceKind.AMASS_SMPLH:  # the body places the wrists elsewhere
            valid = ~reading.invalid_frames
            entry['keypoint_error_m'] = float(np.linalg.norm(
                reading.motion.keypoints[valid] - motion.keypoints[valid], axis=-1).mean())
        if reading.ik_residual_m is not None:
            entry['ik_residual_m_median'] = float(np.median(reading.ik_residual_m))
        report['sources'][kind.value] = entry
    report['corpus'] = _corpus_stage(out / 'corpus', seed, corpus_clips)
    report['retarget'] = _retarget_stage(motion, out / 'retarget')
    report['sim'] = _sim_stage(motion, out, report['retarget']['runs'])
    report['generate'] = _generation_stage(motion, out, seed)
    (out / 'report.json').write_text(json.dumps(report, indent=2))
    (out / 'report.md').write_text(_markdown(report) + report['corpus']['markdown']
                                   + report['retarget']['markdown'] + report['sim']['markdown']
                                   + report['generate']['markdown'])
    _plot(motion, results[SourceKind.KEYPOINTS][1], out / 'demo.png')
    return report


def _corpus_stage(folder: Path, seed: int, num_clips: int) -> dict:
    """Synthesize, annotate and check a small corpus; returns its part of the report."""
    from handx_gen.annotate.check import check_corpus
    from handx_gen.annotate.pipeline import annotate_synthetic
    from handx_gen.data.synthetic import SynthConfig, build_corpus, iter_clips

    summary = build_corpus(folder, num_clips, seed, SynthConfig(), progress=True,
                           overwrite=True, annotate=annotate_synthetic)
    check = check_corpus(folder)
    examples = []
    for row, motion in iter_clips(folder):
        examples.append({'file': row.file, 'motion_types': list(row.motion_types),
                         'texts': list(motion.texts)})
        if len(examples) == 3:
            break
    lines = ['', '## Synthetic corpus, annotated from geometry', '',
             f'{summary.num_clips} clips, {summary.num_frames} frames in {summary.wall_s:.1f} s '
             f'({summary.frames_per_s:,.0f} frames/s with {summary.workers} worker(s)).', '']
    for example in examples:
        lines.append(f"**{example['file']}** ({' + '.join(example['motion_types'])}):")
        lines.extend(f'- {text}' for text in example['texts'])
        lines.append('')
    check_dict = check.to_dict()
    return {'clips': summary.num_clips, 'frames': summary.num_frames,
            'frames_per_s': summary.frames_per_s, 'check': check_dict['overall'],
            'examples': examples,
            'markdown': '\n'.join(lines) + '\n' + check.to_markdown() + '\n'}


def _retarget_stage(motion: BimanualMotion, folder: Path) -> dict:
    """Retarget the clip onto the Allegro pair (contacts kept, the default; the wrists left on
    the human wrists; collision avoidance) and the G1 and GR1 humanoids; write the
    trajectories and their metrics."""
    from handx_ros.retarget.bimanual import build_retargeter
    from handx_ros.retarget.report import trajectory_report

    runs = {}
    lines = ['', '## Retargeting (Pinocchio)', '',
             '| robot | frames converged | fingertip error median / p95 (mm) | wrist error '
             'median (mm) | inter-hand penetrating frames | ms per frame (p50) |',
             '|---|---|---|---|---|---|']
    for label, robot, avoid, contact in (
            ('allegro', 'allegro', False, None),
            ('allegro, wrists on the human wrists', 'allegro', False, False),
            ('allegro, collision avoidance', 'allegro', True, None),
            ('g1_hands', 'g1_hands', False, None), ('gr1', 'gr1', False, None)):
        retargeter = build_retargeter(robot, fps=motion.fps, avoid_collisions=avoid,
                                      contact=contact)
        trajectory = retargeter.retarget_motion(motion, progress=True)
        name = label.replace(', collision avoidance', '_avoid').replace(
            ', wrists on the human wrists', '_plain')
        path = trajectory.save(folder / f'{name}.npz')
        entry = trajectory_report(retargeter, trajectory, motion)
        entry['file'] = str(path.relative_to(folder.parent))
        runs[label] = entry
        inter = entry.get('inter_hand_collision_rate')
        wrist = entry.get('wrist_error_median_mm')
        lines.append(
            f"| {label} | {entry['converged_frames']}/{entry['frames']} | "
            f"{entry['fingertip_error_median_mm']:.1f} / {entry['fingertip_error_p95_mm']:.1f} | "
            f"{'-' if wrist is None else f'{wrist:.2f}'} | "
            f"{'-' if inter is None else f'{100 * inter:.0f}%'} | {entry['time_p50_ms']:.2f} |")
    return {'runs': runs, 'markdown': '\n'.join(lines) + '\n'}


def _sim_stage(motion: BimanualMotion, out: Path, runs: dict) -> dict:
    """Play each retargeted trajectory in MuJoCo, gate it, plot it; render the first."""
    from handx_ros.retarget.trajectory import RobotTrajectory
    from handx_ros.sim import build_scene, judge, load_gate_config, simulate
    from handx_ros.sim.plots import plot_result
    from handx_ros.sim.render import render_video

    gate = load_gate_config()
    results = {}
    reasons: list[str] = []
    lines = ['', '## Simulation (MuJoCo) and gate', '',
             '| trajectory | verdict | contact events human / robot (recall) | deepest '
             'penetration (mm) | joint error p95 (rad) | real time |', '|---|---|---|---|---|---|']
    for index, (label, run) in enumerate(runs.items()):
        trajectory = RobotTrajectory.load(out / run['file'])
        scene = build_scene(trajectory.robot)
        result = simulate(scene, trajectory, motion)
        verdict = judge(result, gate)
        name = Path(run['file']).stem
        plot = plot_result(result, out / 'sim' / f'{name}.png', gate=gate, title=label)
        entry = {'verdict': 'pass' if verdict.passed else 'fail',
                 'reasons': list(verdict.reasons), 'plot': str(plot.relative_to(out)),
                 'summary': result.summary()}
        if index == 0:
            video = render_video(scene.model, result.qpos_sim, out / 'sim' / f'{name}.mp4',
                                 trajectory.fps, motion=motion,
                                 focus_bodies=scene.hand_body_ids)
            entry['video'] = str(video.relative_to(out))
        results[label] = entry
        fid = result.fidelity
        recall = '-' if fid is None or fid.recall is None else f'{fid.recall:.2f}'
        events = '-' if fid is None else f'{len(fid.human)} / {len(fid.robot)} ({recall})'
        lines.append(f'| {label} | {entry["verdict"]} | {events} | '
                     f'{1e3 * float(result.penetration_m.max()):.1f} | '
                     f'{float(np.percentile(result.joint_error_rad, 95)):.3f} | '
                     f'{result.realtime_factor:.0f}x |')
        reasons.extend(f'- {label}: {reason}' for reason in verdict.reasons)
    if reasons:
        lines += ['', 'Gate reasons:', '', *reasons]
    return {'runs': results, 'markdown': '\n'.join(lines) + '\n'}


GENERATION_PROMPT = 'The hands move towards each other, then the palms strike together twice.'
REACTION_PROMPT = 'The left hand reaches over and grasps the right wrist.'


def _generation_stage(motion: BimanualMotion, out: Path, seed: int) -> dict:
    """Generate with the shipped models (text, and a reaction to the demo clip's right hand),
    extract the generated contacts, and take the diffusion clip to the robot and the gate."""
    import time

    from handx_gen.annotate.features import extract_features
    from handx_gen.generate import Generator
    from handx_ros.retarget.bimanual import build_retargeter
    from handx_ros.sim import build_scene, judge, load_gate_config, simulate

    folder = out / 'generate'
    generator = Generator()
    given = motion.segment(0, 120)
    requests = (('diffusion', 'text', GENERATION_PROMPT, {}),
                ('ar', 'text', GENERATION_PROMPT, {}),
                ('diffusion', 'reaction', REACTION_PROMPT, {'given': given, 'side': 'right'}))
    runs = []
    lines = ['', '## Generation (shipped models)', '',
             '| model | mode | prompt | seconds | contacts in the generated clip |',
             '|---|---|---|---|---|']
    for model, mode, prompt, options in requests:
        start = time.perf_counter()
        clip = generator.generate(prompt, model=model, mode=mode, seed=seed, **options)
        seconds = time.perf_counter() - start
        path = clip.save(folder / f'{model}_{mode}.npz')
        contacts = sorted({f'{c.a.to_json()}-{c.b.to_json()}'
                           for c in extract_features(clip).contacts})
        runs.append({'model': model, 'mode': mode, 'prompt': prompt, 'file':
                     str(path.relative_to(out)), 'seconds': seconds, 'contacts': contacts})
        lines.append(f'| {model} | {mode} | {prompt} | {seconds:.2f} | '
                     f'{", ".join(contacts) or "none"} |')
    clip = BimanualMotion.load(out / runs[0]['file'])
    trajectory = build_retargeter('allegro', fps=clip.fps).retarget_motion(clip)
    trajectory.save(folder / 'diffusion_text.allegro.npz')
    result = simulate(build_scene('allegro'), trajectory, clip)
    verdict = judge(result, load_gate_config())
    robot = {'robot': 'allegro', 'verdict': 'pass' if verdict.passed else 'fail',
             'reasons': list(verdict.reasons), 'summary': result.summary()}
    lines += ['', f'The diffusion clip on the Allegro pair: gate **{robot["verdict"]}**'
              + ('.' if verdict.passed else ': ' + '; '.join(verdict.reasons[:3]))]
    return {'runs': runs, 'robot': robot, 'markdown': '\n'.join(lines) + '\n'}


def _markdown(report: dict) -> str:
    lines = [
        '# HandX demo: data pipeline', '',
        f"Clip: {report['clip']['frames']} frames at {report['clip']['fps']:g} fps "
        f"({report['clip']['duration_s']:g} s): {report['clip']['text']}.", '',
        '| source | invalid frames | keypoint error (mm) | max hand-pose error (rad) '
        '| kept | dropped (reasons) |',
        '|---|---|---|---|---|---|',
    ]
    for kind, entry in report['sources'].items():
        error = entry.get('keypoint_error_m')
        dropped = '; '.join(
            f"{d['start_s']:.2f}-{d['start_s'] + d['duration_s']:.2f} s "
            f"({', '.join(d['reasons'])})" for d in entry['filter']['dropped']) or '-'
        lines.append(
            f"| {kind} | {entry['invalid_frames']} | "
            f"{'-' if error is None else f'{1000 * error:.2f}'} | "
            f"{entry['hand_pose_error_rad']:.2e} | {100 * entry['kept_fraction']:.0f}% | "
            f'{dropped} |')
    return '\n'.join(lines) + '\n'


def _plot(motion: BimanualMotion, tracker_result, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    times_s = [0.0, 1.5, 3.0, 4.5, 7.5]
    fig = plt.figure(figsize=(13, 6.5))
    grid = fig.add_gridspec(2, len(times_s), height_ratios=[1.4, 1.0])
    colors = {Finger.THUMB: 'tab:red', Finger.INDEX: 'tab:orange', Finger.MIDDLE: 'tab:green',
              Finger.RING: 'tab:blue', Finger.LITTLE: 'tab:purple'}
    for column, t in enumerate(times_s):
        ax = fig.add_subplot(grid[0, column], projection='3d')
        frame = motion.keypoints[min(int(t * FPS), motion.num_frames - 1)]
        for side in HandSide:
            for kp, parent in enumerate(KEYPOINT_PARENTS):
                if parent < 0:
                    continue
                finger = next(f for f in Finger if kp in finger_keypoints(f))
                bone = frame[side, [parent, kp]]  # (2, 3)
                ax.plot(bone[:, 0], bone[:, 1], bone[:, 2], color=colors[finger], lw=2)
            ax.scatter(*frame[side, 0], color='k', s=12)
        centre = motion.keypoints[:, :, 0].reshape(-1, 3).mean(axis=0)
        half = 0.17
        ax.set(xlim=(centre[0] - half, centre[0] + half), ylim=(centre[1] - 0.05,
               centre[1] + 2 * half - 0.05), zlim=(centre[2] - half, centre[2] + half))
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=20, azim=-60)
        ax.set_title(f't = {t:.1f} s')
        ax.set_xlabel('x (m)')
        ax.set_ylabel('y (m)')
        ax.tick_params(labelsize=7)
    ax = fig.add_subplot(grid[1, :])
    reasons = list(tracker_result.flags)
    t_axis = np.arange(tracker_result.num_frames) / tracker_result.fps
    for row, reason in enumerate(reasons):
        flagged = tracker_result.flags[reason]
        ax.fill_between(t_axis, row + 0.1, row + 0.9, where=flagged, step='mid',
                        color='tab:red')
    for segment in tracker_result.kept:
        ax.axvspan(segment.start_s, segment.stop_s, color='tab:green', alpha=0.15)
    ax.set_yticks(np.arange(len(reasons)) + 0.5, [r.value for r in reasons])
    ax.set_xlim(0, t_axis[-1])
    ax.set_xlabel('time (s)')
    ax.set_title('tracker stream: frames flagged per criterion (red), kept segments (green)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=Path('demo_output'), help='output folder')
    parser.add_argument('--seed', type=int, default=0, help='seed of the noise and the corpus')
    parser.add_argument('--corpus-clips', type=int, default=40,
                        help='clips of the synthetic corpus stage (default 40)')
    args = parser.parse_args(argv)
    try:
        report = run(args.out, args.seed, args.corpus_clips)
    except HandxError as error:
        print(f'demo: error: {error}', file=sys.stderr)
        return 2
    print((args.out / 'report.md').read_text())
    print(f'demo: wrote {args.out}/report.json, report.md, demo.png, sources/, kept/, corpus/, '
          'retarget/, sim/ and generate/')
    return 0 if report['sources'] else 1


if __name__ == '__main__':
    sys.exit(main())
