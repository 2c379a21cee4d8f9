"""Build rate of the synthetic corpus (``handx data synth``).

Builds a corpus of ``--clips`` clips with ``--workers`` processes through the public API
(:func:`handx_gen.data.synthetic.build_corpus`), into a temporary folder unless ``--out`` is
given, and reports wall time, frames/s and clips/s, and the projected time for the default
training corpus (``--target-frames``, 1.2 million frames) against the budget (``--budget-s``,
15 minutes). The wall time includes starting the worker processes, as a real build does.

Run::

    .venv/bin/python benchmarks/bench_synth.py --clips 300 --workers 2 --save synth.json
    .venv/bin/python benchmarks/bench_synth.py --annotate handx_gen.annotate.x:annotate_clip
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from handx_gen.data.synthetic import SynthConfig, build_corpus, load_index, resolve_motion_types

TARGET_FRAMES = 1_200_000
BUDGET_S = 15 * 60.0


def _callable(spec: str):
    module, _, name = spec.partition(':')
    if not name:
        raise SystemExit(f'--annotate must be module:function, got {spec!r}')
    return getattr(importlib.import_module(module), name)


def run(args: argparse.Namespace) -> dict:
    config = SynthConfig() if args.config is None else SynthConfig.from_yaml(args.config)
    if args.types:
        config = dataclasses.replace(config, motion_types=tuple(args.types.split(',')))
    annotate = None if args.annotate in (None, '', 'none') else _callable(args.annotate)
    workers = args.workers or os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix='bench_synth_') as tmp:
        out = Path(args.out) if args.out else Path(tmp) / 'corpus'
        summary = build_corpus(out, args.clips, args.seed, config, workers=workers,
                               annotate=annotate, progress=not args.no_progress,
                               overwrite=args.out is not None)
        index = load_index(out)
        lengths = np.array([row.num_frames for row in index.rows])
        size_bytes = sum((out / row.file).stat().st_size for row in index.rows)
    rate = summary.frames_per_s
    projected_s = TARGET_FRAMES / rate
    return {
        'benchmark': 'synth_build',
        'clips': summary.num_clips,
        'frames': summary.num_frames,
        'workers': workers,
        'cpu_count': os.cpu_count(),
        'load_average_1min': {'before': round(load_before, 2),
                              'after': round(os.getloadavg()[0], 2)},
        'annotate': args.annotate,
        'motion_types': len(resolve_motion_types(config)),
        'wall_s': round(summary.wall_s, 3),
        'frames_per_s': round(rate, 1),
        'clips_per_s': round(summary.clips_per_s, 2),
        'clip_frames': {'mean': float(lengths.mean()), 'p5': float(np.percentile(lengths, 5)),
                        'p95': float(np.percentile(lengths, 95))},
        'bytes_per_frame': round(size_bytes / max(summary.num_frames, 1), 1),
        'split_clips': summary.split_clips,
        'target_frames': TARGET_FRAMES,
        'projected_s_for_target': round(projected_s, 1),
        'clips_for_target': int(np.ceil(TARGET_FRAMES / lengths.mean())),
        'budget_s': BUDGET_S,
        'meets_budget': bool(projected_s < BUDGET_S),
        'required_frames_per_s': round(TARGET_FRAMES / BUDGET_S, 1),
        'python': platform.python_version(),
        'numpy': np.__version__,
        'machine': platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clips', type=int, default=300, help='clips to build (default 300)')
    parser.add_argument('--workers', type=int, help='worker processes (default: CPU count)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--config', type=Path, help='YAML file of SynthConfig settings')
    parser.add_argument('--types', help='comma-separated motion types')
    parser.add_argument('--annotate', default='handx_gen.annotate.pipeline:annotate_synthetic',
                        help='module:function annotator run on every clip (default: the one '
                             '`handx data synth` uses); "none" to time motion only')
    parser.add_argument('--out', help='keep the corpus here (default: a temporary folder)')
    parser.add_argument('--save', type=Path, help='write the result as JSON here')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.save:
        args.save.write_text(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
