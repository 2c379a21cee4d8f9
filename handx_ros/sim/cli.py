"""``handx sim``: play a robot trajectory in MuJoCo, measure it, and gate it.

::

    handx sim TRAJ.npz [--motion MOTION.npz] [--report out.json] [--plot out.png]
                       [--video out.mp4|out.gif] [--gate gate.yaml]

Prints the verdict (``pass`` or ``fail`` with every reason) and the headline numbers. Exit
code 0 when the gate passes, 3 when it fails (the report is written either way), 2 on bad
input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ['GATE_FAILED_EXIT', 'register']

GATE_FAILED_EXIT = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sim`` command to the ``handx`` parser."""
    sim = subparsers.add_parser(
        'sim', help='simulate a robot trajectory in MuJoCo and gate it',
        description='Play a handx-robot-trajectory/1 clip in MuJoCo at its frame rate, measure '
                    'tracking, contacts (which links, penetration depth, force) and stability, '
                    'compare contacts with the human clip (--motion), and judge the result '
                    'against the gate thresholds. Exit code 0: pass, 3: fail.')
    sim.add_argument('trajectory', metavar='TRAJ.npz', help='a handx-robot-trajectory/1 file')
    sim.add_argument('--motion', default=None, metavar='MOTION.npz',
                     help='the human clip it came from, for contact fidelity (a '
                          'handx-motion/1 file or any supported source file); refused when '
                          'it is not the clip the trajectory records')
    sim.add_argument('--report', default=None, metavar='JSON', help='write the report here')
    sim.add_argument('--plot', default=None, metavar='PNG',
                     help='tracking error, contact timelines and penetration plots')
    sim.add_argument('--video', default=None, metavar='MP4|GIF',
                     help='render the robot beside the human skeleton (with --motion)')
    sim.add_argument('--gate', default=None, metavar='YAML',
                     help='gate thresholds (default: the installed config/sim_gate.yaml)')
    sim.set_defaults(func=_run_sim)


def _run_sim(args: argparse.Namespace) -> int:
    from handx_gen.data.sources import read_source
    from handx_gen.outputs import check_outputs
    from handx_ros.retarget.trajectory import RobotTrajectory
    from handx_ros.sim.evaluate import simulate
    from handx_ros.sim.gate import judge, load_gate_config
    from handx_ros.sim.scene import build_scene

    check_outputs([('--report', args.report), ('--plot', args.plot), ('--video', args.video)],
                  [('TRAJ.npz', args.trajectory), ('--motion', args.motion),
                   ('--gate', args.gate)])
    gate = load_gate_config(args.gate)
    trajectory = RobotTrajectory.load(args.trajectory)
    motion = read_source(args.motion) if args.motion else None
    if motion is not None:
        trajectory.check_source(motion, f'--motion {args.motion}')
    scene = build_scene(trajectory.robot)
    result = simulate(scene, trajectory, motion)
    verdict = judge(result, gate)
    report = {'trajectory': str(args.trajectory), 'motion': args.motion,
              'verdict': 'pass' if verdict.passed else 'fail', 'reasons': list(verdict.reasons),
              'result': result.to_dict()}
    summary = result.summary()
    print(f'{args.trajectory}: {trajectory.robot}, {result.frames_simulated}/'
          f'{result.num_frames} frames, {result.realtime_factor:.0f}x real time')
    for key in ('joint_error_p95_rad', 'fingertip_error_p95_m', 'max_penetration_m',
                'penetrating_fraction', 'peak_force_n'):
        if key in summary and summary[key] is not None:
            print(f'  {key}: {summary[key]:.4g}')
    if result.fidelity is not None:
        fid = result.fidelity
        print(f'  contact events: human {len(fid.human)}, robot {len(fid.robot)}; precision '
              f'{_fmt(fid.precision)}, recall {_fmt(fid.recall)}, mean onset error '
              f'{_fmt(fid.mean_abs_onset_error_s, " s")}')
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
        print(f'report: {args.report}')
    if args.plot:
        from handx_ros.sim.plots import plot_result

        print(f'plot: {plot_result(result, args.plot, gate=gate)}')
    if args.video:
        from handx_ros.sim.evaluate import retimed_source_frames
        from handx_ros.sim.render import render_video

        path = render_video(scene.model, result.qpos_sim, args.video, trajectory.fps,
                            focus_bodies=scene.hand_body_ids,
                            motion=motion,
                            source_frames=None if motion is None
                            else retimed_source_frames(trajectory))
        print(f'video: {path}')
    if verdict.passed:
        print('gate: pass')
        return 0
    print('gate: fail', file=sys.stderr)
    for reason in verdict.reasons:
        print(f'  - {reason}', file=sys.stderr)
    return GATE_FAILED_EXIT


def _fmt(value: float | None, unit: str = '') -> str:
    return 'n/a' if value is None else f'{value:.2f}{unit}'
