"""``handx data`` subcommands: ``inspect``, ``filter``, ``convert``, ``slice``, ``resample``,
``synth`` and ``check-annotation``.

Every command reads any supported file (``handx-motion/1`` or a source kind, see
:mod:`handx_gen.data.sources`); errors are :class:`~handx_gen.errors.HandxError` and the
``handx`` entry point prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handx_gen.data.kinds import Direction, Placement, SourceFrame, SourceKind, UpAxis
from handx_gen.errors import ConfigError, DataSourceError
from handx_gen.outputs import check_outputs

if TYPE_CHECKING:  # the readers load numpy: imported by the commands that read
    from handx_gen.data.sources import SourceReading

__all__ = ['frame_interval', 'register']

_AXES = 'xyz'


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``handx data inspect|filter|convert|slice|resample|...`` to the ``handx`` parser."""
    data = subparsers.add_parser(
        'data', help='inspect, filter, convert, cut and resample motion data files',
        description='Inspect, filter, convert, cut and resample motion data (handx-motion/1 '
                    'files and the source kinds: ' + ', '.join(k.value for k in SourceKind)
                    + ').')
    commands = data.add_subparsers(dest='data_command', metavar='DATA_COMMAND')
    commands.required = True

    def add_source_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--kind', choices=[k.value for k in SourceKind],
                            help='source kind (default: detected from the file entries)')
        parser.add_argument('--axes', metavar='X,Y,Z',
                            help="where the file's x, y and z axes point in the world (x right, "
                                 'y forward, z up): three of '
                                 + ', '.join(d.value for d in Direction)
                                 + " (default: right,forward,up, the world's own; e.g. "
                                 'left,down,back for a camera facing the person: image x right, '
                                 'y down, depth away from the camera)')
        parser.add_argument('--up-axis', choices=[a.value for a in UpAxis],
                            help='shorthand for --axes: z is right,forward,up (the default, as '
                                 'AMASS), y is right,up,back (Y-up exports)')
        parser.add_argument('--frame', choices=[f.value for f in SourceFrame], default='world',
                            help='world (default): world positions; wrist: each hand relative '
                                 'to its own wrist, where the hands are unknown')
        parser.add_argument('--place', choices=[p.value for p in Placement],
                            help='canonical: move the wrists to the usual spots, left '
                                 '(-0.17, 0.30, 1.04), right (0.17, 0.30, 1.04) m, keeping any '
                                 'wrist motion about them (each hand on its own for --frame '
                                 'wrist, both as one for world data); none: leave them '
                                 '(default: canonical for --frame wrist, else none)')
        parser.add_argument('--side', choices=['left', 'right'],
                            help='the hand of a keypoints file of one hand, keypoints (T, 21, 3); '
                                 'the other hand is absent (a hand with no finite, non-zero '
                                 'keypoint in any frame of a two-hand file is absent too)')

    inspect = commands.add_parser('inspect', help='print frame rate, length and value ranges')
    inspect.add_argument('file', type=Path, help='motion or source file (.npz)')
    add_source_options(inspect)
    inspect.add_argument('--json', action='store_true', help='print JSON instead of text')
    inspect.set_defaults(func=_inspect)

    filt = commands.add_parser('filter', help='split a clip into clean segments')
    filt.add_argument('file', type=Path, help='motion or source file (.npz)')
    add_source_options(filt)
    filt.add_argument('--config', type=Path, help='YAML file of FilterConfig settings')
    filt.add_argument('--out', type=Path, help='write kept segments as handx-motion/1 files here')
    filt.add_argument('--json', action='store_true', help='print JSON instead of text')
    filt.set_defaults(func=_filter)

    def add_output_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument('src', type=Path, help='motion or source file (.npz)')
        parser.add_argument('out', type=Path,
                            help='output handx-motion/1 file (.npz; its folder is created)')
        add_source_options(parser)
        parser.add_argument('--fill-invalid', action='store_true',
                            help='frames with non-finite source data hold the nearest good '
                                 "frame's values (default: such a file is refused, its bad "
                                 'frames listed; `handx data filter` cuts them out instead)')

    convert = commands.add_parser('convert', help='convert a source file to handx-motion/1')
    add_output_options(convert)
    convert.set_defaults(func=_convert)

    cut = commands.add_parser(
        'slice', help='keep part of a clip: from --start to --end',
        description='Write the frames from --start (included) to --end (excluded) of a motion '
                    'or source file as handx-motion/1: in seconds, or frame numbers with '
                    '--frames.')
    add_output_options(cut)
    cut.add_argument('--start', type=float, default=None,
                     help='first time kept, seconds (frame number with --frames; default: the '
                          'start of the clip)')
    cut.add_argument('--end', type=float, default=None,
                     help='end of the part kept, excluded, seconds (frame number with '
                          '--frames; default: the end of the clip)')
    cut.add_argument('--frames', action='store_true',
                     help='--start and --end are frame numbers, not seconds')
    cut.set_defaults(func=_slice)

    resample = commands.add_parser(
        'resample', help='play a clip at another frame rate, same duration',
        description='Write a motion or source file at another frame rate as handx-motion/1, '
                    'keeping its duration (rotations slerped, keypoints re-posed; see '
                    'BimanualMotion.resample).')
    add_output_options(resample)
    resample.add_argument('--fps', type=float, required=True, help='the new frame rate')
    resample.set_defaults(func=_resample)

    synth = commands.add_parser(
        'synth', help='build a synthetic bimanual corpus',
        description='Build a synthetic corpus: clips of 2-3 motion types with smooth '
                    'transitions, one handx-motion/1 file per clip in DIR/<split>/shard-*/, '
                    'with DIR/index.json and DIR/config.yaml. Deterministic by seed, '
                    'whatever the number of workers.')
    synth.add_argument('--clips', type=int, default=5000,
                       help='number of clips (default: 5000, about 1.4 million frames at 30 fps)')
    synth.add_argument('--seed', type=int, default=0, help='corpus seed (default: 0)')
    synth.add_argument('--out', type=Path, required=True, help='corpus folder')
    synth.add_argument('--workers', type=int,
                       help='worker processes (default: the number of CPUs; 1 builds in this '
                            'process)')
    synth.add_argument('--config', type=Path, help='YAML file of SynthConfig settings')
    synth.add_argument('--types', help='comma-separated motion types to draw from (default: '
                                       "the config's, else every registered type)")
    synth.add_argument('--overwrite', action='store_true',
                       help='replace a corpus already in --out')
    synth.add_argument('--no-progress', action='store_true', help='no progress bar')
    synth.add_argument('--no-annotate', action='store_true',
                       help='skip feature extraction and text (clips keep only their plan)')
    synth.add_argument('--json', action='store_true', help='print the summary as JSON')
    synth.set_defaults(func=_synth)

    check = commands.add_parser(
        'check-annotation', help='score extracted features against synthetic plans',
        description='Compare the feature records of a synthetic corpus (annotation '
                    "'features') with the clips' plans ('plan'): event-level contact "
                    'precision and recall (temporal IoU >= 0.5, parts agree) and flexion '
                    'direction agreement per finger, per motion type and overall.')
    check.add_argument('dir', type=Path, help='corpus folder (with index.json)')
    check.add_argument('--split', choices=['train', 'val', 'test'],
                       help='check one split only (default: all clips)')
    check.add_argument('--parts', choices=['finger', 'exact'], default='finger',
                       help="part rule of the headline scores (default: finger: a finger's "
                            'tip and shaft count as one part)')
    check.add_argument('--scope', choices=['all', 'between_hands', 'same_hand'],
                       default='all', help='contacts scored (default: all)')
    check.add_argument('--json', action='store_true', help='print JSON instead of a table')
    check.set_defaults(func=_check_annotation)


def _load(args: argparse.Namespace, path: Path, *, fill_invalid: bool) -> SourceReading:
    from handx_gen.data.frames import AxesMap
    from handx_gen.data.sources import load_source

    if args.axes is not None and args.up_axis is not None:
        raise ConfigError(f'--axes {args.axes} and --up-axis {args.up_axis}: give one (--up-axis '
                          f'y is --axes right,up,back)')
    axes = None if args.axes is None else AxesMap.parse(args.axes)
    reading = load_source(path, args.kind, fill_invalid=fill_invalid, up_axis=args.up_axis,
                          axes=axes, frame=args.frame, place=args.place, side=args.side)
    if axes is not None and axes.is_reflection:
        print(f"handx data: note: --axes {axes} are left-handed, a mirror: right if the file's "
              f'axes are, else every hand becomes its mirror image', file=sys.stderr)
    for line in _absent_notes(reading, args.side):
        print(f'handx data: note: {line}', file=sys.stderr)
    return reading


def _absent_notes(reading: SourceReading, given_side: str | None) -> list[str]:
    """One line per hand absent from the whole file: which, why, and that it stays absent."""
    motion = reading.motion
    if given_side is not None:
        why = f'is not in the file (a file of the {given_side} hand, --side {given_side})'
    elif reading.kind is SourceKind.KEYPOINTS:
        why = 'has no frame with finite, not all-zero keypoints'
    else:
        why = 'is absent from the file'
    return [f'{reading.path}: the {side.name.lower()} hand {why}: it is kept absent (a one-hand '
            f'motion of {motion.hands_present()}; `handx generate --mode reaction --side '
            f'{motion.present_sides[0].name.lower()}` can add it)'
            for side in motion.absent_sides]


# A hand whose wrists all lie this close to the origin was most likely given relative to its
# wrist (wrist-centred tracker output) and read as world positions.
_AT_ORIGIN_M = 0.05


def _warn_workspace(reading: SourceReading) -> None:
    """One line on stderr per hand whose wrists leave the usual workspace
    (:func:`handx_gen.data.workspace.check_workspace`), with the likely cause."""
    import numpy as np

    from handx_gen.data.workspace import check_workspace

    wrists = np.asarray(reading.motion.keypoints[:, :, 0], dtype=np.float64)  # (T, 2, 3)
    for finding in check_workspace(reading.motion):
        if np.linalg.norm(wrists[:, finding.side], axis=-1).max() < _AT_ORIGIN_M:
            hint = 'its wrist stays at the origin: wrist-centred data? convert with --frame wrist'
        else:
            hint = 'check --axes, --frame and --place'
        print(f'handx data: warning: {reading.path}: {finding.describe()}; {hint} (README: '
              f'Conventions)', file=sys.stderr)


def _make_parent(path: Path) -> None:
    """Create the folder ``path`` is written into, as ``mkdir -p``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission
        raise DataSourceError(f'cannot create the folder of {path}: '
                              f'{exc.strerror or exc}') from exc


def _save(motion: Any, path: Path) -> None:
    try:
        motion.save(path)
    except OSError as exc:
        raise DataSourceError(f'cannot write {path}: {exc.strerror or exc}') from exc


# ---------------------------------------------------------------------------- inspect


def summarize(reading: SourceReading) -> dict[str, Any]:
    """Frame rate, length and per-hand value ranges of a reading, as plain values."""
    import numpy as np

    from handx_gen.data.workspace import check_workspace
    from handx_gen.hand.topology import TIP_KEYPOINTS

    motion = reading.motion
    keypoints = np.asarray(motion.keypoints, dtype=np.float64)  # (T, 2, 21, 3)
    hand_pose = np.asarray(motion.hand_pose)  # (T, 2, 15, 3)
    out: dict[str, Any] = {
        'file': str(reading.path),
        'kind': reading.kind.value,
        'fps': motion.fps,
        'frames': motion.num_frames,
        'duration_s': motion.duration_s,
        'invalid_frames': reading.num_invalid_frames,
        'frame_change': (None if reading.frame_change is None
                         else reading.frame_change.describe()),
        'workspace': [finding.describe() for finding in check_workspace(motion)],
        'present': [side.name.lower() for side in motion.present_sides],
        'hands': {},
    }
    if reading.ik_residual_m is not None:
        residual = reading.ik_residual_m[:, motion.present]  # (T, hands present)
        out['ik_residual_m'] = {'mean': float(residual.mean()), 'max': float(residual.max())}
    tips = list(TIP_KEYPOINTS)
    for side in motion.present_sides:  # an absent hand has no ranges
        wrist = keypoints[:, side, 0]  # (T, 3)
        tip_points = keypoints[:, side, tips]  # (T, 5, 3)
        pairwise = np.linalg.norm(tip_points[:, :, None] - tip_points[:, None], axis=-1)
        spread = pairwise.max(axis=(1, 2))  # (T,) largest fingertip-to-fingertip distance
        angle = np.degrees(np.linalg.norm(hand_pose[:, side], axis=-1))  # (T, 15)
        out['hands'][side.name.lower()] = {
            'wrist_min_m': wrist.min(axis=0).tolist(),
            'wrist_max_m': wrist.max(axis=0).tolist(),
            'fingertip_spread_m': [float(spread.min()), float(spread.max())],
            'joint_angle_deg': [float(angle.min()), float(angle.max())],
        }
    return out


def _inspect(args: argparse.Namespace) -> int:
    summary = summarize(_load(args, args.file, fill_invalid=True))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"file: {summary['file']} ({summary['kind']})")
    print(f"fps: {summary['fps']:g}")
    print(f"frames: {summary['frames']}")
    print(f"duration: {summary['duration_s']:.3f} s")
    if len(summary['present']) < 2:
        absent = 'left' if summary['present'] == ['right'] else 'right'
        print(f"hands: {summary['present'][0]} only (the {absent} hand is absent)")
    if summary['invalid_frames']:
        print(f"invalid frames (non-finite source data): {summary['invalid_frames']}")
    if summary['frame_change']:
        print(f"read with: {summary['frame_change']}")
    for finding in summary['workspace']:
        print(f'workspace: {finding}')
    if 'ik_residual_m' in summary:
        residual = summary['ik_residual_m']
        print(f"ik residual: mean {residual['mean'] * 1000:.1f} mm, "
              f"max {residual['max'] * 1000:.1f} mm")
    for name, hand in summary['hands'].items():
        print(f'{name} hand:')
        for axis, lo, hi in zip(_AXES, hand['wrist_min_m'], hand['wrist_max_m'], strict=True):
            print(f'  wrist {axis}: {lo:+.3f} .. {hi:+.3f} m')
        lo, hi = hand['fingertip_spread_m']
        print(f'  fingertip spread: {lo:.3f} .. {hi:.3f} m')
        lo, hi = hand['joint_angle_deg']
        print(f'  joint angle: {lo:.1f} .. {hi:.1f} deg')
    return 0


# ---------------------------------------------------------------------------- filter


def _filter(args: argparse.Namespace) -> int:
    from handx_gen.data.filters import FilterConfig, filter_reading

    config = FilterConfig() if args.config is None else FilterConfig.from_yaml(args.config)
    reading = _load(args, args.file, fill_invalid=True)
    _warn_workspace(reading)
    result = filter_reading(reading, config)
    written: list[str] = []
    if args.out is not None:
        if args.out.exists() and not args.out.is_dir():
            raise DataSourceError(f'--out {args.out} exists and is not a directory')
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataSourceError(f'--out {args.out}: cannot create ({exc.strerror})') from exc
        stem = args.file.name.removesuffix('.npz')
        paths = [args.out / f'{stem}_{segment.start:06d}-{segment.stop:06d}.npz'
                 for segment in result.kept]
        check_outputs([('--out', path) for path in paths],
                      [('FILE', args.file), ('--config', args.config)])
        for path, motion in zip(paths, result.kept_motions(reading.motion), strict=True):
            _save(motion, path)
            written.append(str(path))
    if args.json:
        print(json.dumps({'file': str(args.file), 'kind': reading.kind.value,
                          **result.to_dict(), 'written': written}, indent=2))
        return 0
    kept_s = sum(s.duration_s for s in result.kept)
    print(f'{args.file}: {reading.kind.value}, {result.num_frames} frames at {result.fps:g} fps; '
          f'kept {len(result.kept)} segment(s), {kept_s:.2f} s '
          f'({result.kept_fraction:.0%})')
    for segment in result.kept:
        print(f'  kept    frames {segment.start}-{segment.stop} '
              f'({segment.start_s:.2f}-{segment.stop_s:.2f} s)')
    if result.bridged_frames:
        print(f'  bridged {result.bridged_frames} frame(s) without observations in gaps of at '
              f'most {config.max_gap_s:g} s (filled by the reader)')
    for dropped in result.dropped:
        segment = dropped.segment
        reasons = ','.join(r.value for r in dropped.reasons)
        print(f'  dropped frames {segment.start}-{segment.stop} '
              f'({segment.start_s:.2f}-{segment.stop_s:.2f} s) [{reasons}] {dropped.detail}')
    for path in written:
        print(f'wrote {path}')
    return 0


# ---------------------------------------------------------------------------- convert


def _read_for_output(args: argparse.Namespace) -> SourceReading:
    """The source of a command that writes one motion file (SRC OUT), checked before any
    work: OUT is not SRC nor a folder."""
    check_outputs([('OUT', args.out)], [('SRC', args.src)])
    if args.out.is_dir():
        raise DataSourceError(f'output {args.out} is a directory; give a file name')
    reading = _load(args, args.src, fill_invalid=args.fill_invalid)
    _warn_workspace(reading)
    return reading


def _write_output(args: argparse.Namespace, reading: SourceReading, motion: Any,
                  what: str) -> None:
    _make_parent(args.out)
    _save(motion, args.out)
    filled = (f', {reading.num_invalid_frames} invalid frames filled'
              if reading.num_invalid_frames else '')
    if motion.absent_sides:
        filled += f', {motion.hands_present()} (the other hand absent)'
    moved = '' if reading.frame_change is None else f', {reading.frame_change.describe()}'
    print(f'wrote {args.out} ({what}, {motion.num_frames} frames at {motion.fps:g} fps'
          f'{filled}{moved})')


def _convert(args: argparse.Namespace) -> int:
    reading = _read_for_output(args)
    _write_output(args, reading, reading.motion, f'{reading.kind.value} -> handx-motion/1')
    return 0


# ---------------------------------------------------------------------------- slice


def _slice(args: argparse.Namespace) -> int:
    reading = _read_for_output(args)
    motion = reading.motion
    start, stop = frame_interval(motion.fps, motion.num_frames, args.start, args.end,
                                 frames=args.frames)
    _write_output(args, reading, motion.segment(start, stop),
                  f'frames {start}-{stop} of {motion.num_frames}, '
                  f'{start / motion.fps:.3f}-{stop / motion.fps:.3f} s')
    return 0


def frame_interval(fps: float, num_frames: int, start: float | None = None,
                   end: float | None = None, *, frames: bool = False) -> tuple[int, int]:
    """[start, stop) frames of ``--start``/``--end`` (seconds, or frame numbers with
    ``frames``; ``None``: the clip's start or end), for every command that takes part of a
    clip.

    Raises:
        ConfigError: A bound that is negative, not finite, not a whole frame number with
            ``frames``, or a part that is empty or beyond the clip (the message names the
            clip's length).
    """
    bounds = []
    for name, value, default in (('--start', start, 0), ('--end', end, num_frames)):
        if value is None:
            bounds.append(default)
            continue
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f'{name} must be a number >= 0, got {value:g}')
        if frames and value != int(value):
            raise ConfigError(f'{name} must be a whole frame number with --frames, got '
                              f'{value:g}')
        bounds.append(int(value) if frames else int(round(value * fps)))
    first, stop = bounds
    if not 0 <= first < stop <= num_frames:
        unit = '' if frames else ' s'
        given = ', '.join(f'{name} {value:g}{unit}' for name, value in
                          (('--start', start), ('--end', end)) if value is not None)
        raise ConfigError(f'{given}: frames [{first}, {stop}) are not a non-empty part of the '
                          f'clip, {num_frames} frames ({num_frames / fps:.3f} s at {fps:g} '
                          f'fps)')
    return first, stop


# ---------------------------------------------------------------------------- resample


def _resample(args: argparse.Namespace) -> int:
    from handx_gen.rates import check_fps

    fps = check_fps(args.fps, what='--fps', error=ConfigError)
    reading = _read_for_output(args)
    motion = reading.motion
    _write_output(args, reading, motion.resample(fps),
                  f'{motion.fps:g} -> {fps:g} fps, {motion.duration_s:.3f} s')
    return 0


# ---------------------------------------------------------------------------- synth


def _synth(args: argparse.Namespace) -> int:
    import dataclasses

    from handx_gen.data.synthetic import SynthConfig, build_corpus

    config = SynthConfig() if args.config is None else SynthConfig.from_yaml(args.config)
    if args.types is not None:
        types = tuple(t.strip() for t in args.types.split(',') if t.strip())
        if not types:
            raise ConfigError(f'--types lists no motion type: {args.types!r}')
        config = dataclasses.replace(config, motion_types=types)
    from handx_gen.annotate.pipeline import annotate_synthetic

    summary = build_corpus(args.out, args.clips, args.seed, config, workers=args.workers,
                           progress=not args.no_progress, overwrite=args.overwrite,
                           annotate=None if args.no_annotate else annotate_synthetic)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
        return 0
    minutes = summary.num_frames / config.fps / 60.0
    print(f'wrote {summary.num_clips} clips, {summary.num_frames} frames ({minutes:.1f} min at '
          f'{config.fps:g} fps) to {summary.out_dir}')
    for split, clips in summary.split_clips.items():
        print(f'  {split:5s} {clips:6d} clips {summary.split_frames[split]:9d} frames')
    print(f'rate: {summary.frames_per_s:,.0f} frames/s, {summary.clips_per_s:.1f} clips/s '
          f'({summary.wall_s:.1f} s with {summary.workers} worker(s))')
    return 0


# ---------------------------------------------------------------------------- check-annotation


def _check_annotation(args: argparse.Namespace) -> int:
    from handx_gen.annotate.check import CheckConfig, check_corpus

    report = check_corpus(args.dir, CheckConfig(part_match=args.parts, scope=args.scope),
                          split=args.split)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.to_markdown())
    return 0
