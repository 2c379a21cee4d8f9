"""Retargeting speed and accuracy: ours against dex-retargeting, same clips, same hands.

Synthetic clips (``handx_gen.data.synthetic``, seeds 0..``--clips``-1) are retargeted onto the
bimanual Allegro pair (``--robot``, a pair folder) by:

* ``handx-fingertip`` / ``handx-keyvector`` / ``handx-dexpilot``: ours, one objective each;
* ``handx-pair``: ours as ``handx retarget`` runs it, the two hands together
  (:class:`~handx_ros.retarget.PairRetargeter`, fingertip objective) with the hands' contacts
  kept (:mod:`handx_ros.retarget.contact`); the human hands' distance is computed once per
  clip and its cost spread over the clip's frames;
* ``dex-vector`` / ``dex-dexpilot``: dex-retargeting 0.5.0, two retargeters (left, right)
  configured from the same robot folders (same links, scale and wrist frame), its output
  filter off (``low_pass_alpha=None``) so both sides are compared unfiltered.

Every method sees the same wrist-frame keypoints. Per bimanual frame (both hands) it reports
p50/p95/p99 wall time, and per method the fingertip error at robot scale (distance between
each robot fingertip and the scaled human fingertip in the base frame; median, p95; and
the median again with the joints clipped to their limits, as a robot would execute them),
joint-limit violations (count beyond 1e-9 rad, and the largest), non-converged frames (ours)
or NLopt failures (dex) and normalised jerk. The first ``--warmup`` frames of each clip are
solved but not timed; the methods take turns clip by clip, in alternating order. It prints
the time ratio dex-vector / handx-fingertip and the fingertip-error comparison, and writes
JSON with ``--save``.

Run::

    .venv/bin/python benchmarks/bench_retarget.py --clips 4 --save retarget.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# dex-retargeting evaluates its loss with torch; on tiny tensors torch's thread pool only
# competes for the cores (measured here: dex 2.2 ms per bimanual frame with one thread, 2.9 ms
# with the default), so both methods run single-threaded unless the caller says otherwise.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy as np  # noqa: E402
from common import machine, save_report  # noqa: E402

from handx_gen.data.synthetic import SynthConfig, synthesize_clip  # noqa: E402
from handx_gen.hand.topology import KEYPOINT_NAMES  # noqa: E402
from handx_ros.retarget import metrics  # noqa: E402
from handx_ros.retarget.frames import keypoints_in_wrist_frame, wrist_poses_from_motion  # noqa: E402
from handx_ros.retarget.retargeter import HandRetargeter, Objective, RetargetConfig  # noqa: E402
from handx_ros.retarget.spec import RobotKind, load_robot_spec  # noqa: E402

EXTRA_CONFIG: dict = {}
OURS = {'handx-fingertip': Objective.FINGERTIP, 'handx-keyvector': Objective.KEYVECTOR,
        'handx-dexpilot': Objective.DEXPILOT}
DEX = {'dex-vector': 'vector', 'dex-dexpilot': 'dexpilot'}


def _clips(count: int, frames: int | None) -> tuple[list[np.ndarray], list[tuple]]:
    """Wrist-frame keypoints (T, 2, 21, 3) of ``count`` synthetic clips, and per clip the
    world keypoints and wrist frames (for the pair)."""
    clips, world = [], []
    for seed in range(count):
        motion = synthesize_clip(SynthConfig(), seed, seed + 1000).motion
        if frames:
            motion = motion[:frames]
        R, p = wrist_poses_from_motion(motion)
        clips.append(keypoints_in_wrist_frame(motion.keypoints, R, p))
        world.append((np.asarray(motion.keypoints, dtype=np.float64), R, p))
    return clips, world


class _Pair:
    """The pair retargeter behind the per-hand interface of the loop below."""

    def __init__(self, pair) -> None:
        from handx_ros.retarget import PairRetargeter

        self.pair = PairRetargeter(pair)
        self.human = self.palms = np.zeros(0)
        self.split = len(self.pair.hands[0].joint_names)

    def reset(self) -> None:
        self.pair.reset()

    def start_clip(self, world: tuple) -> float:
        """The clip's human hand and palm distances in one batch, as ``handx retarget`` takes
        them; returns its time."""
        start = time.perf_counter()
        self.human = self.pair.contact.human_distance(world[0])
        self.palms = self.pair.contact.palm_distance(world[0], self.pair._palm_within_m)
        return time.perf_counter() - start


def _build(method: str, members):
    if method in OURS:
        config = RetargetConfig(objective=OURS[method], **EXTRA_CONFIG)
        return [HandRetargeter(member, None, config) for member in members]
    from handx_ros.retarget.dex_backend import DexHandRetargeter

    return [DexHandRetargeter(member, member.hands[0].side, DEX[method], low_pass_alpha=None)
            for member in members]


def run(args: argparse.Namespace) -> dict:
    pair = load_robot_spec(args.robot)
    if pair.kind != RobotKind.PAIR:
        raise SystemExit(f'--robot must be a pair folder, got {args.robot!r} ({pair.kind.value})')
    members = [load_robot_spec(name, pair.folder.parent) for name in pair.members]
    clips, world = _clips(args.clips, args.frames)
    methods = args.methods.split(',') if args.methods else [*OURS, 'handx-pair', *DEX]
    reference = [HandRetargeter(member) for member in members]  # FK and targets
    builders = {method: [_Pair(pair)] if method == 'handx-pair' else _build(method, members)
                for method in methods}
    times = {method: [] for method in methods}
    qpos = {method: [] for method in methods}  # per clip: (T, 2, n)
    flagged = dict.fromkeys(methods, 0)
    for kp, scene in zip(clips, world, strict=True):
        for hands in builders.values():
            for hand in hands:
                hand.reset()
        clip_q = {method: [] for method in methods}
        # Each method runs the whole clip in turn, as it would in use (a per-frame interleave
        # would leave every method's caches cold); the order alternates from clip to clip.
        order = list(builders.items())
        if len(clip_q) and len(qpos[methods[0]]) % 2:
            order.reverse()
        for method, hands in order:
            pair = hands[0] if method == 'handx-pair' else None
            shared = pair.start_clip(scene) / kp.shape[0] if pair else 0.0
            for t in range(kp.shape[0]):
                start = time.perf_counter()
                if pair is not None:
                    both = pair.pair.step(scene[0][t], scene[1][t], scene[2][t],
                                          human_distance_m=float(pair.human[t]),
                                          human_palm_m=float(pair.palms[t]))
                    frame = [both.qpos[:pair.split], both.qpos[pair.split:]]
                    failed = [not c for c in both.converged]
                else:
                    results = [hand.step(kp[t, side]) for side, hand in enumerate(hands)]
                    frame = [result.qpos for result in results]
                    failed = [(not r.converged) if method in OURS else r.solver_failed
                              for r in results]
                elapsed = time.perf_counter() - start + shared
                if t >= args.warmup:
                    times[method].append(elapsed)
                clip_q[method].append(frame)
                flagged[method] += sum(bool(f) for f in failed)
        for method in methods:
            qpos[method].append(np.array(clip_q[method]))
    results = {}
    for method in methods:
        tip_errors, clipped_errors, violations, max_violation, jerks = [], [], 0, 0.0, []
        for kp, q_clip in zip(clips, qpos[method], strict=True):
            for side, ref in enumerate(reference):
                q = q_clip[:, side]
                violation = metrics.joint_limit_violation(q, ref.lower, ref.upper)
                violations += int(np.count_nonzero(violation > 1e-9))
                max_violation = max(max_violation, float(violation.max()))
                jerks.append(float(np.median(metrics.normalised_jerk(q, 30.0))))
                tips = list(ref.hand.fingertips)
                index = [KEYPOINT_NAMES.index(k) for k in tips]
                q_clipped = np.clip(q, ref.lower, ref.upper)  # what a robot would execute
                for t in range(q.shape[0]):
                    target = ref.human_targets(kp[t, side])
                    for errors, q_t in ((tip_errors, q[t]), (clipped_errors, q_clipped[t])):
                        robot = ref.robot_keypoints(q_t)
                        errors.extend(np.linalg.norm(robot[k] - target[i])
                                      for k, i in zip(tips, index, strict=True))
        tip_errors = np.array(tip_errors)
        results[method] = {
            'time_per_bimanual_frame': metrics.timing_summary(np.array(times[method])),
            'fingertip_error_median_mm': float(np.median(tip_errors) * 1e3),
            'fingertip_error_p95_mm': float(np.percentile(tip_errors, 95) * 1e3),
            'fingertip_error_median_mm_within_limits': float(np.median(clipped_errors) * 1e3),
            'limit_violations': violations,
            'max_limit_violation_rad': max_violation,
            'flagged_frames': flagged[method],
            'normalised_jerk_median': float(np.median(jerks)),
        }
        r = results[method]
        print(f'{method:16s} p50 {r["time_per_bimanual_frame"]["p50_ms"]:7.3f} ms  '
              f'p95 {r["time_per_bimanual_frame"]["p95_ms"]:7.3f} ms  '
              f'tip err median {r["fingertip_error_median_mm"]:6.2f} mm  '
              f'p95 {r["fingertip_error_p95_mm"]:6.2f} mm  '
              f'(clipped to limits: median {r["fingertip_error_median_mm_within_limits"]:.3f})  '
              f'limit violations {r["limit_violations"]} (max {r["max_limit_violation_rad"]:.2e})'
              f'  flagged {r["flagged_frames"]}', flush=True)
    summary = {}
    if 'handx-fingertip' in results and 'dex-vector' in results:
        ours, dex = results['handx-fingertip'], results['dex-vector']
        ratio = dex['time_per_bimanual_frame']['p50_ms'] / ours['time_per_bimanual_frame'][
            'p50_ms']
        summary = {
            'speedup_p50_dex_vector_over_handx_fingertip': ratio,
            'fingertip_error_median_mm': {'handx-fingertip': ours['fingertip_error_median_mm'],
                                          'dex-vector': dex['fingertip_error_median_mm']},
            'fingertip_error_median_mm_within_limits': {
                'handx-fingertip': ours['fingertip_error_median_mm_within_limits'],
                'dex-vector': dex['fingertip_error_median_mm_within_limits']},
        }
        print(f'p50 time per bimanual frame: dex-vector / handx-fingertip = {ratio:.1f}x; '
              f'median fingertip error {ours["fingertip_error_median_mm"]:.2f} mm (ours) vs '
              f'{dex["fingertip_error_median_mm"]:.2f} mm (dex); within the joint limits '
              f'{ours["fingertip_error_median_mm_within_limits"]:.3f} mm vs '
              f'{dex["fingertip_error_median_mm_within_limits"]:.3f} mm')
    return {
        'benchmark': 'retarget',
        'robot': args.robot,
        'clips': args.clips,
        'frames': int(sum(c.shape[0] for c in clips)),
        'warmup_frames_per_clip': args.warmup,
        'omp_num_threads': os.environ.get('OMP_NUM_THREADS'),
        'machine': machine(),
        'methods': results,
        'summary': summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--robot', default='allegro', help='pair folder (default allegro)')
    parser.add_argument('--clips', type=int, default=4, help='synthetic clips (default 4)')
    parser.add_argument('--frames', type=int, default=None, help='frames per clip at most')
    parser.add_argument('--warmup', type=int, default=5, help='untimed frames per clip')
    parser.add_argument('--methods', default=None,
                        help=f'comma-separated subset of '
                             f'{",".join([*OURS, "handx-pair", *DEX])}')
    parser.add_argument('--save', default=None, help='write the results as JSON here')
    args = parser.parse_args(argv)
    save_report(run(args), args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
