"""Simulation speed against real time: retargeted synthetic clips played in MuJoCo.

Synthetic clips (``handx_gen.data.synthetic``, default settings: 4-12 s, two or three motion
types each; composition seeds 0..``--clips``-1, or only ``--types``) are retargeted onto the
robot (``--robot``, default the Allegro pair) and played by :func:`handx_ros.sim.simulate`
with the human motion, as ``handx sim`` runs them: physics sub-steps, command interpolation,
and every per-frame measurement (tracking, contacts, signed distances, stability, contact
fidelity). Each clip runs ``--repeats`` times after one untimed warm-up run of the first clip;
the median wall time counts. It reports per clip the real-time factor (clip duration over wall
time) and the headline measurements, and over all clips the total duration over the total
wall time, with p50 and the slowest clip. The target is at least 20x real time for the Allegro
pair. JSON with ``--save``.

Run::

    .venv/bin/python benchmarks/bench_sim.py --clips 4 --save sim.json
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from common import machine, save_report

from handx_gen.data.synthetic import SynthConfig, load_primitives, synthesize_clip
from handx_ros.retarget import retarget_motion
from handx_ros.sim.evaluate import SimConfig, simulate
from handx_ros.sim.gate import judge
from handx_ros.sim.scene import build_scene

TARGET_REALTIME = 20.0


def run(args: argparse.Namespace) -> dict:
    load_primitives()
    types = args.types.split(',') if args.types else None
    motions = [synthesize_clip(SynthConfig(), seed, seed + 1000, motion_types=types).motion
               for seed in range(args.clips)]
    start = time.perf_counter()
    scene = build_scene(args.robot)
    build_s = time.perf_counter() - start
    trajectories = [retarget_motion(motion, args.robot) for motion in motions]
    config = SimConfig()
    simulate(scene, trajectories[0], motions[0], config)  # warm-up, untimed
    clips = []
    for seed, (motion, trajectory) in enumerate(zip(motions, trajectories, strict=True)):
        walls, result = [], None
        for _ in range(args.repeats):
            result = simulate(scene, trajectory, motion, config)
            walls.append(result.wall_time_s)
        assert result is not None
        summary = result.summary()
        wall = float(np.median(walls))
        clip = {
            'seed': seed,
            'motion_types': [p.get('motion_type') for p in
                             motion.annotation.get('plan', {}).get('primitives', [])],
            'frames': trajectory.num_frames,
            'duration_s': result.duration_s,
            'wall_time_s': wall,
            'realtime_factor': result.duration_s / wall,
            'status': summary['status'],
            'joint_error_p95_rad': summary['joint_error_p95_rad'],
            'fingertip_error_p95_m': summary['fingertip_error_p95_m'],
            'wrist_error_p95_m': summary['wrist_error_p95_m'],
            'penetration_max_m': summary['penetration_max_m'],
            'command_penetration_m': summary['command_penetration_m'],
            'human_contact_events': summary.get('human_contact_events'),
            'contact_recall': summary.get('contact_recall'),
            'contact_precision': summary.get('contact_precision'),
            'gate_passed': judge(result).passed,
        }
        clips.append(clip)
        print(f'clip {seed}: {clip["frames"]:4d} frames {clip["duration_s"]:5.2f} s  '
              f'wall {wall * 1e3:7.1f} ms  {clip["realtime_factor"]:6.1f}x real time  '
              f'joint p95 {clip["joint_error_p95_rad"]:.3f} rad  '
              f'tip p95 {clip["fingertip_error_p95_m"] * 1e3:5.1f} mm  '
              f'contacts {clip["human_contact_events"]} human, recall '
              f'{clip["contact_recall"]}  gate {"pass" if clip["gate_passed"] else "fail"}',
              flush=True)
    duration = sum(c['duration_s'] for c in clips)
    wall = sum(c['wall_time_s'] for c in clips)
    factors = np.array([c['realtime_factor'] for c in clips])
    summary = {
        'realtime_factor_overall': duration / wall,
        'realtime_factor_p50': float(np.median(factors)),
        'realtime_factor_slowest_clip': float(factors.min()),
        'target_realtime_factor': TARGET_REALTIME,
        'meets_target': bool(duration / wall >= TARGET_REALTIME),
        'scene_build_s': build_s,
        'physics_timestep_s': scene.timestep_s,
    }
    print(f'overall {summary["realtime_factor_overall"]:.1f}x real time (p50 '
          f'{summary["realtime_factor_p50"]:.1f}x, slowest clip '
          f'{summary["realtime_factor_slowest_clip"]:.1f}x; target {TARGET_REALTIME:g}x); '
          f'scene built in {build_s:.2f} s')
    return {
        'benchmark': 'sim',
        'robot': args.robot,
        'clips': args.clips,
        'motion_types': types,
        'repeats': args.repeats,
        'machine': machine(),
        'summary': summary,
        'per_clip': clips,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--robot', default='allegro', help='pair or humanoid folder')
    parser.add_argument('--clips', type=int, default=4, help='synthetic clips (default 4)')
    parser.add_argument('--types', default=None,
                        help='comma-separated motion types to draw from (default: all)')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs per clip')
    parser.add_argument('--save', default=None, help='write the results as JSON here')
    args = parser.parse_args(argv)
    save_report(run(args), args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
