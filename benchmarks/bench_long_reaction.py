"""Reactions to a 20 s hand: seams between windows, and whether the reacting hand moves.

Synthesizes ``--takes`` 20-21 s takes (5-6 motion types each, ``handx data synth``'s composer
with longer clips, seeded), gives each hand of each take in turn, and has each model generate
the other hand's reaction through :meth:`handx_gen.Generator.generate` (overlapping windows,
:mod:`handx_gen.windows`). Per model it reports:

* the seams: the reacting wrist's step into the first frame each later window keeps, against
  the steps inside the windows (max, p99), in millimetres a frame;
* the reacting hand's motion: wrist path (m), fingertip motion (the mean distance of the
  fingertips, in the palm's frame, from their mean place, mm), and the share of frames where
  neither the wrist nor a fingertip moves 0.5 mm (held still), against the take's own other
  hand;
* that the given hand is the given motion's, bit for bit, and the seconds per take.

``--context`` sets the frames of context each window is given (default the library's, 4);
``--context 22`` gives each window all the frames it shares with what was kept (what the
windows did first), which held the AR model's hand still.

Run::

    .venv/bin/python benchmarks/bench_long_reaction.py --takes 3 --save long_reaction.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import machine, save_report  # noqa: E402

from handx_gen import Generator  # noqa: E402
from handx_gen.data.synthetic import SynthConfig, clip_seeds, synthesize_clip  # noqa: E402
from handx_gen.eval.metrics import palm_frame_tips  # noqa: E402
from handx_gen.hand.topology import HandSide  # noqa: E402
from handx_gen.windows import WindowSettings  # noqa: E402

PROMPT = 'The {other} hand mirrors the {given} hand.'
STILL_M = 5e-4


def hand_motion(keypoints: np.ndarray) -> dict:
    """Wrist path, fingertip motion and the share of frames held still, of (T, 21, 3)."""
    wrist_steps = np.linalg.norm(np.diff(keypoints[:, 0].astype(np.float64), axis=0), axis=-1)
    tips = palm_frame_tips(keypoints)
    tip_steps = np.linalg.norm(np.diff(tips, axis=0), axis=-1).max(axis=1)
    return {'wrist_path_m': float(wrist_steps.sum()),
            'fingertip_motion_mm': float(
                1e3 * np.linalg.norm(tips - tips.mean(axis=0), axis=-1).mean()),
            'still_share': float(((wrist_steps < STILL_M) & (tip_steps < STILL_M)).mean())}


def seams(keypoints: np.ndarray, plan: tuple, hold: int) -> dict:
    """The reacting wrist's steps into each later window's first kept frame, and inside."""
    steps = np.linalg.norm(np.diff(keypoints[:, 0].astype(np.float64), axis=0), axis=-1)
    into = [w.stop - hold - 1 for w in plan[:-1]]
    inside = np.delete(steps, into)
    return {'seam_max_mm': float(1e3 * steps[into].max()),
            'seam_mean_mm': float(1e3 * steps[into].mean()),
            'inside_max_mm': float(1e3 * inside.max()),
            'inside_p99_mm': float(1e3 * np.percentile(inside, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--takes', type=int, default=3)
    parser.add_argument('--seed', type=int, default=1, help='synthesis seed (default 1)')
    parser.add_argument('--models', default='diffusion,ar')
    parser.add_argument('--steps', type=int, help="diffusion DDIM steps (default the model's)")
    parser.add_argument('--context', type=int, help='context frames per window')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--save', help='write the report as JSON')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = WindowSettings() if args.context is None else \
        WindowSettings(context_frames=args.context)
    config = SynthConfig(clip_duration_s=(20.0, 21.0), primitives_per_clip=(5, 6))
    generator = Generator()
    rows: dict[str, list[dict]] = {'take': []}
    for index in range(args.takes):
        take = synthesize_clip(config, *clip_seeds(args.seed, index)).motion
        for given in HandSide:
            other = given.other
            rows['take'].append(hand_motion(take.keypoints[:, other]))
            text = PROMPT.format(other=other.name.lower(), given=given.name.lower())
            for model in args.models.split(','):
                options = {'steps': args.steps} if model == 'diffusion' and args.steps else {}
                start = time.perf_counter()
                out = generator.generate(text, model=model, mode='reaction', given=take,
                                         side=given, seed=index, window=settings, **options)
                seconds = time.perf_counter() - start
                plan = generator.plan(model, mode='reaction', given=take, window=settings)
                exact = all(np.array_equal(getattr(out, name)[:, given],
                                           getattr(take, name)[:, given])
                            for name in ('keypoints', 'transl', 'global_orient', 'hand_pose'))
                rows.setdefault(model, []).append({
                    **hand_motion(out.keypoints[:, other]),
                    **seams(out.keypoints[:, other], plan, settings.hold_frames),
                    'given_exact': exact, 'seconds': seconds, 'windows': len(plan),
                    'frames': take.num_frames})
    report = {'settings': vars(args), 'window': dataclasses.asdict(settings)}
    for name, entries in rows.items():
        summary = {key: float(np.mean([e[key] for e in entries])) for key in entries[0]
                   if key != 'given_exact'}
        if name != 'take':
            summary['seam_max_mm'] = max(e['seam_max_mm'] for e in entries)
            summary['inside_max_mm'] = max(e['inside_max_mm'] for e in entries)
            summary['given_exact'] = all(e['given_exact'] for e in entries)
            summary['fingertip_motion_mm_min'] = min(e['fingertip_motion_mm'] for e in entries)
        report[name] = {'mean': summary, 'per_reaction': entries}
        print(f'{name:9s} ' + ', '.join(
            f'{key} {value:.3g}' if isinstance(value, float) else f'{key} {value}'
            for key, value in summary.items()))
    report['machine'] = machine()
    save_report(report, args.save)


if __name__ == '__main__':
    main()
