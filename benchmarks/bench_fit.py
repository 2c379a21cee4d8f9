"""Fitting MANO to tracker keypoints, and filtering the fit: faithful, and judged fairly.

Clean clips of a synthetic corpus go through a hand tracker's errors
(:func:`handx_gen.data.tracker_noise.track`: 3 mm jitter per axis, depth along the camera's
view axis off by up to 20 % with a slow drift, single-frame glitches of 2-5 cm, dropouts of
1-3 frames, a hand missing for 0.3-1 s now and then; ``--wrist-centred`` also takes away
where the hands are), are written as keypoint files and read back as ``handx data convert``
reads them (:func:`handx_gen.data.sources.load_source`), then filtered as ``handx data
filter`` does (:func:`handx_gen.data.filters.filter_reading`). Per method:

* ``fit``: :func:`handx_gen.hand.fit.fit_hand` (what the reader uses): per-clip palm and
  bone lengths, fingertips first, soft joint ranges;
* ``ik``: the analytic peer it replaced, :func:`handx_gen.hand.ik.fit_skeleton` (median bone
  lengths) and :func:`handx_gen.hand.ik.inverse_kinematics` (hinge fingers), on the same
  keypoints and through the same filter.

What is measured, over the frames where a hand was observed:

* **fidelity to the source keypoints** (what the tracker reported): fingertip error, median
  and 95th percentile; pinch distance error (thumb tip to each other fingertip of the same
  hand, fitted against observed), median and 95th percentile, all frames and the frames where
  the observed pinch is under 2 cm; mean error over all 21 keypoints; fingertip error against
  the clean clip (the noise floor is the tracker's jitter);
* **anatomy**: the share of hand-frames with a joint outside its range by more than the
  filter's tolerance, and the largest sideways bend of the thumb's tip joint;
* **filter**: the share of frames kept, and of clips with at least 90 % kept;
* **implausible segments** (:class:`handx_gen.data.tracker_noise.Implausible`: a finger bent
  backwards, fingers swapped, a hand teleported (not with ``--wrist-centred``), a finger's
  keypoints zeroed): one 0.5 s segment per clip and kind, on a random hand, seen through the
  same tracker; dropped when every frame of it is dropped, named when a dropped run over it
  gives the expected reason;
* seconds of fitting per second of clip (both hands).

Deterministic by ``--seed`` (the corpus, the noise, the segments) except the times. The
corpus is built in ``--corpus`` when it holds none (``handx data synth``'s default settings:
clips of 2-3 motion types, about 9 s each). ``--save`` writes JSON, ``--markdown`` prints the
table for the README.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fit.py --corpus /tmp/fit-corpus \\
        --clips 40 --save fit.json
    .venv/bin/python benchmarks/bench_fit.py --corpus /tmp/fit-corpus --clips 40 --markdown
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy as np  # noqa: E402
from common import machine, save_report  # noqa: E402

from handx_gen.data.filters import (  # noqa: E402
    DropReason,
    FilterConfig,
    filter_motion,
    filter_reading,
)
from handx_gen.data.sources import load_source  # noqa: E402
from handx_gen.data.tracker_noise import (  # noqa: E402
    Implausible,
    TrackerNoiseConfig,
    inject_implausible,
    track,
)
from handx_gen.hand.ik import fit_skeleton, inverse_kinematics  # noqa: E402
from handx_gen.hand.limits import anatomical_bounds, pose_to_anatomical  # noqa: E402
from handx_gen.hand.topology import TIP_KEYPOINTS, HandSide  # noqa: E402
from handx_gen.motion import BimanualMotion  # noqa: E402

METHODS = ('fit', 'ik')
SEGMENT_S = 0.5
PINCH_CLOSE_M = 0.02
# The reasons that name each kind of implausible segment.
EXPECTED = {
    Implausible.BENT_BACK: {DropReason.JOINT_LIMITS},
    Implausible.SWAPPED: {DropReason.JOINT_LIMITS, DropReason.FIT_RESIDUAL},
    Implausible.TELEPORT: {DropReason.VELOCITY_SPIKE, DropReason.ACCELERATION_SPIKE},
    Implausible.ZEROED: {DropReason.FIT_RESIDUAL, DropReason.JOINT_LIMITS},
}
_THUMB_IP_ROW = 14  # thumb3 in hand_pose


def corpus_clips(folder: Path, count: int, seed: int) -> list[tuple[str, BimanualMotion]]:
    """The first ``count`` clips (index order) of the corpus in ``folder``, built there with
    the default settings when it holds none."""
    from handx_gen.data.synthetic import SynthConfig, build_corpus, load_index

    if not (folder / 'index.json').is_file():
        print(f'building a {count}-clip corpus in {folder}', file=sys.stderr, flush=True)
        build_corpus(folder, count, seed, SynthConfig(), workers=1, progress=False)
    index = load_index(folder)
    rows = index.rows[:count]
    if len(rows) < count:
        print(f'{folder} has {len(rows)} clips, fewer than --clips {count}', file=sys.stderr)
    return [(row.clip_id, BimanualMotion.load(index.path(row))) for row in rows]


def analytic_motion(reading: Any) -> tuple[BimanualMotion, tuple]:
    """The analytic peer on the reading's keypoints: median bone lengths and hinge IK, each
    hand's frames without observations filled as the reader filled them."""
    observed = reading.observed_keypoints
    filled = np.asarray(reading.motion.keypoints, dtype=np.float64).copy()
    orient, pose, transl, skeletons = [], [], [], []
    for side in HandSide:
        valid = np.isfinite(observed[:, side]).all(axis=(-2, -1))
        hand = np.where(valid[:, None, None], observed[:, side], filled[:, side])
        skeleton = fit_skeleton(observed[valid, side], side)
        result = inverse_kinematics(hand, skeleton)
        orient.append(result.global_orient)
        pose.append(result.hand_pose)
        transl.append(result.transl)
        skeletons.append(skeleton)
    motion = BimanualMotion.from_mano(reading.motion.fps, np.stack(orient, 1),
                                      np.stack(pose, 1), np.stack(transl, 1),
                                      skeletons=skeletons)
    return motion, tuple(skeletons)


def fidelity(motion: BimanualMotion, observed: np.ndarray, clean: np.ndarray,
             skeletons: tuple, tolerance: float) -> dict[str, np.ndarray]:
    """Per-sample errors of one clip's fit (observed hand-frames only)."""
    fitted = np.asarray(motion.keypoints, dtype=np.float64)
    valid = np.isfinite(observed).all(axis=(-2, -1))  # (T, 2)
    error = np.linalg.norm(fitted - observed, axis=-1)[valid]  # (n, 21)
    tips = list(TIP_KEYPOINTS)
    others = tips[1:]
    pinch_obs = np.linalg.norm(observed[..., others, :] - observed[..., [tips[0]], :],
                               axis=-1)[valid]
    pinch_fit = np.linalg.norm(fitted[..., others, :] - fitted[..., [tips[0]], :],
                               axis=-1)[valid]
    pinch_error = np.abs(pinch_fit - pinch_obs)
    lower, upper = anatomical_bounds()
    excess, thumb_ip = [], []
    for side in HandSide:
        angles = np.asarray(pose_to_anatomical(np.asarray(motion.hand_pose[:, side]),
                                               skeletons[side]))[valid[:, side]]
        excess.append(np.maximum(lower - angles, angles - upper).max(axis=(1, 2)))
        thumb_ip.append(np.abs(angles[:, _THUMB_IP_ROW, 1]))
    return {
        'tip': error[:, tips].ravel(),
        'all': error.ravel(),
        'pinch': pinch_error.ravel(),
        'pinch_close': pinch_error[pinch_obs < PINCH_CLOSE_M],
        'tip_truth': np.linalg.norm(fitted - clean, axis=-1)[valid][:, tips].ravel(),
        'out_of_range': np.concatenate(excess) > tolerance,
        'thumb_ip_sideways': np.concatenate(thumb_ip),
    }


def implausible_dropped(result: Any, frames: slice, kind: Implausible) -> tuple[bool, bool]:
    """Whether every frame of the segment was dropped, and whether a run dropped over it
    gives one of the kind's expected reasons."""
    dropped = np.zeros(result.num_frames, dtype=bool)
    named = False
    for entry in result.dropped:
        seg = entry.segment
        dropped[seg.start:seg.stop] = True
        if seg.start < frames.stop and seg.stop > frames.start:
            named |= bool(set(entry.reasons) & EXPECTED[kind])
    return bool(dropped[frames].all()), named


def run(args: argparse.Namespace) -> dict[str, Any]:
    noise = TrackerNoiseConfig(wrist_centred=args.wrist_centred)
    frame = 'wrist' if args.wrist_centred else 'world'
    filter_config = FilterConfig()
    clips = corpus_clips(args.corpus, args.clips, args.seed)
    samples: dict[str, dict[str, list]] = {m: {} for m in METHODS}
    kept = {m: [0, 0] for m in METHODS}
    clip_kept = {m: [] for m in METHODS}
    reasons = {m: {} for m in METHODS}
    # Wrist-centred keypoints cannot show where a hand is, nor a teleport.
    kinds = [kind for kind in Implausible
             if not (args.wrist_centred and kind is Implausible.TELEPORT)]
    implausible = {kind.value: {'segments': 0, 'dropped': 0, 'named': 0} for kind in kinds}
    fit_s = clip_s = 0.0
    with tempfile.TemporaryDirectory(prefix='bench_fit_') as tmp:
        path = Path(tmp) / 'tracked.npz'
        for number, (name, motion) in enumerate(clips):
            seed = [args.seed, number]
            tracked = track(motion, noise, seed=seed)
            tracked.save(path)
            start = time.perf_counter()
            reading = load_source(path, fill_invalid=True, frame=frame)
            fit_s += time.perf_counter() - start
            clip_s += motion.duration_s
            observed = reading.observed_keypoints
            clean = np.asarray(motion.keypoints, dtype=np.float64)
            if args.wrist_centred:  # the clean clip moved as the reader moved the tracked one
                clean = clean - clean[:, :, :1] + reading.frame_change.offsets_m[None, :, None]
            ik_motion, ik_skeletons = analytic_motion(reading)
            for method, fitted, skeletons in (('fit', reading.motion, reading.skeletons),
                                              ('ik', ik_motion, ik_skeletons)):
                errors = fidelity(fitted, observed, clean, skeletons,
                                  filter_config.joint_limit_tolerance_rad)
                for key, value in errors.items():
                    samples[method].setdefault(key, []).append(value)
                result = filter_motion(fitted, filter_config, observed_keypoints=observed,
                                       invalid_frames=reading.invalid_frames,
                                       skeletons=skeletons)
                frames = sum(s.num_frames for s in result.kept)
                kept[method][0] += frames
                kept[method][1] += result.num_frames
                clip_kept[method].append(result.kept_fraction)
                for entry in result.dropped:
                    for reason in entry.reasons:
                        reasons[method][reason.value] = (reasons[method].get(reason.value, 0)
                                                         + entry.segment.num_frames)
            rng = np.random.default_rng(seed + [1])
            length = max(1, round(SEGMENT_S * motion.fps))
            for kind in kinds:
                start_frame = int(rng.integers(motion.num_frames // 3,
                                               max(motion.num_frames // 3 + 1,
                                                   2 * motion.num_frames // 3 - length)))
                frames = slice(start_frame, start_frame + length)
                side = HandSide(int(rng.integers(2)))
                keypoints = inject_implausible(np.asarray(motion.keypoints), kind, side, frames)
                bad = track(motion, noise, seed=seed, keypoints=keypoints)
                bad.save(path)
                result = filter_reading(load_source(path, fill_invalid=True, frame=frame),
                                        filter_config)
                dropped, named = implausible_dropped(result, frames, kind)
                entry = implausible[kind.value]
                entry['segments'] += 1
                entry['dropped'] += int(dropped)
                entry['named'] += int(named)
            if not args.quiet:
                print(f'{number + 1}/{len(clips)} {name}: kept {clip_kept["fit"][-1]:.0%} '
                      f'(ik {clip_kept["ik"][-1]:.0%})', file=sys.stderr, flush=True)
    report: dict[str, Any] = {
        'benchmark': 'fit',
        'corpus': str(args.corpus),
        'clips': len(clips),
        'seed': args.seed,
        'wrist_centred': args.wrist_centred,
        'noise': {k: v for k, v in vars(noise).items()},
        'fit_s_per_clip_s': fit_s / max(clip_s, 1e-9),
        'methods': {},
        'implausible': implausible,
        'machine': machine(),
    }
    for method in METHODS:
        got = {key: np.concatenate(values) for key, values in samples[method].items()}
        report['methods'][method] = {
            'fingertip_error_median_mm': 1000 * float(np.median(got['tip'])),
            'fingertip_error_p95_mm': 1000 * float(np.percentile(got['tip'], 95)),
            'pinch_error_median_mm': 1000 * float(np.median(got['pinch'])),
            'pinch_error_p95_mm': 1000 * float(np.percentile(got['pinch'], 95)),
            'close_pinch_error_median_mm': 1000 * float(np.median(got['pinch_close'])),
            'close_pinch_error_p95_mm': 1000 * float(np.percentile(got['pinch_close'], 95)),
            'close_pinches': int(got['pinch_close'].size),
            'keypoint_error_mean_mm': 1000 * float(np.mean(got['all'])),
            'fingertip_error_vs_clean_median_mm': 1000 * float(np.median(got['tip_truth'])),
            'out_of_range_share': float(np.mean(got['out_of_range'])),
            'thumb_ip_sideways_max_deg': math.degrees(float(np.max(got['thumb_ip_sideways']))),
            'kept_share': kept[method][0] / max(kept[method][1], 1),
            'clips_kept_90_share': float(np.mean(np.array(clip_kept[method]) >= 0.9)),
            'dropped_frames_by_reason': dict(sorted(reasons[method].items())),
        }
    return report


ROWS = (
    ('fingertip error, median / p95 (mm)', 'fingertip_error_median_mm', 'fingertip_error_p95_mm',
     '.1f'),
    ('pinch distance error, median / p95 (mm)', 'pinch_error_median_mm', 'pinch_error_p95_mm',
     '.1f'),
    ('pinches under 2 cm: error median / p95 (mm)', 'close_pinch_error_median_mm',
     'close_pinch_error_p95_mm', '.1f'),
    ('keypoint error, mean (mm)', 'keypoint_error_mean_mm', None, '.1f'),
    ('fingertip error against the clean clip, median (mm)',
     'fingertip_error_vs_clean_median_mm', None, '.1f'),
    ('hand-frames with a joint > 0.26 rad out of range', 'out_of_range_share', None, '.1%'),
    ('thumb IP sideways, largest (deg)', 'thumb_ip_sideways_max_deg', None, '.0f'),
    ('frames kept by the filter', 'kept_share', None, '.1%'),
    ('clips with >= 90 % of frames kept', 'clips_kept_90_share', None, '.0%'),
)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for label, first, second, spec in ROWS:
        cells = [label]
        for method in METHODS:
            entry = report['methods'][method]
            text = format(entry[first], spec)
            if second is not None:
                text += ' / ' + format(entry[second], spec)
            cells.append(text)
        rows.append(cells)
    for kind, entry in report['implausible'].items():
        rows.append([f'implausible "{kind}" dropped / named (fit)',
                     f'{entry["dropped"]}/{entry["segments"]} / {entry["named"]}/'
                     f'{entry["segments"]}', ''])
    return rows


HEADER = ('measure', 'fit (fit_hand)', 'analytic IK (before)')


def markdown(report: dict[str, Any]) -> str:
    lines = ['| ' + ' | '.join(HEADER) + ' |', '|' + '---|' * len(HEADER)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in table_rows(report)]
    return '\n'.join(lines)


def text_table(report: dict[str, Any]) -> str:
    rows = [list(HEADER), *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                        strict=True))
                     for row in rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--corpus', type=Path, required=True,
                        help='corpus folder (built there with the default settings when it '
                             'holds none)')
    parser.add_argument('--clips', type=int, default=40, help='clips (default 40)')
    parser.add_argument('--seed', type=int, default=0,
                        help='corpus, noise and segment seed (default 0)')
    parser.add_argument('--wrist-centred', action='store_true',
                        help='the tracker gives each hand relative to its wrist (read with '
                             '--frame wrist)')
    parser.add_argument('--save', default=None, help='write the report as JSON here')
    parser.add_argument('--markdown', action='store_true',
                        help='print the table as Markdown (for the README)')
    parser.add_argument('--quiet', action='store_true', help='no progress lines')
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f'--clips must be >= 1, got {args.clips}')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(markdown(report) if args.markdown else text_table(report))
    save_report(report, args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
