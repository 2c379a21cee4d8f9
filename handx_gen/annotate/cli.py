"""``handx annotate``: extract features and write descriptions for motion files.

``handx annotate FILE_OR_DIR`` reads one file (``handx-motion/1`` or any source kind of
:mod:`handx_gen.data.sources`) or every ``handx-motion/1`` file under a folder, runs
:func:`~handx_gen.annotate.pipeline.annotate_motion` and either prints the texts (default),
rewrites the files (``--in-place``) or writes annotated copies (``--out DIR``, the folder
layout kept). The annotation keeps its other entries (e.g. a synthetic clip's ``'plan'``) and
gets ``'features'`` and ``'descriptions'``; the texts are replaced.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from handx_gen.errors import DataSourceError

__all__ = ['register']


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``handx annotate`` to the ``handx`` parser."""
    parser = subparsers.add_parser(
        'annotate', help='extract motion features and write text descriptions',
        description='Extract structured features (contacts, finger flexion, relations, '
                    'dynamics) from motion files and describe them at three granularities '
                    '(semantic, interaction, articulation).')
    parser.add_argument('path', type=Path, metavar='FILE_OR_DIR',
                        help='a motion or source file (.npz), or a folder of handx-motion/1 '
                             'files (searched recursively)')
    parser.add_argument('--seed', type=int, default=None,
                        help="seed of the wording (default: drawn from each clip's keypoints, "
                             'so the same clip always gets the same text)')
    parser.add_argument('--label', action='append', default=None,
                        help='action label(s) for the semantic description (repeat for a '
                             'sequence; default: the primitive labels of a synthetic plan '
                             'when the file has one)')
    parser.add_argument('--no-plan-labels', action='store_true',
                        help="do not use a synthetic plan's primitive labels")
    parser.add_argument('--keep-curves', action='store_true',
                        help='store per-frame curves (finger flexion, speed, distance) in the '
                             'feature record')
    parser.add_argument('--lm-path', type=Path, default=None,
                        help='local transformers model folder that rewrites the template '
                             'texts (never downloaded; a folder that cannot be loaded is an '
                             'error; a rewrite that drops a fact falls back to the template)')
    target = parser.add_mutually_exclusive_group()
    target.add_argument('--in-place', action='store_true',
                        help='rewrite handx-motion/1 files with the new texts and annotation')
    target.add_argument('--out', type=Path, default=None,
                        help='write annotated handx-motion/1 copies into this folder')
    parser.add_argument('--json', action='store_true',
                        help='print JSON (texts and descriptions per file) instead of text')
    parser.set_defaults(func=_annotate)


def _files(path: Path) -> tuple[Path, list[Path]]:
    """The root the relative output names start from, and the files to annotate."""
    if path.is_dir():
        files = sorted(p for p in path.rglob('*.npz') if not p.name.startswith('.'))
        if not files:
            raise DataSourceError(f'{path} holds no .npz files')
        return path, files
    if not path.exists():
        raise DataSourceError(f'{path} does not exist')
    return path.parent, [path]


def _target(out: Path, root: Path, file: Path) -> Path:
    """Where ``--out`` puts the annotated copy of ``file`` (its path under ``root`` kept)."""
    target = out / file.relative_to(root)
    return target if target.suffix == '.npz' else target.with_suffix('.npz')


def _annotate(args: argparse.Namespace) -> int:
    from handx_gen.annotate.describe import DescribeConfig
    from handx_gen.annotate.features import FeatureConfig
    from handx_gen.annotate.pipeline import annotate_motion
    from handx_gen.data.plan import ClipPlan
    from handx_gen.data.sources import SourceKind, load_source
    from handx_gen.outputs import check_outputs

    root, files = _files(args.path)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise DataSourceError(f'--out {args.out} exists and is not a directory')
    if args.out is not None:  # --in-place rewrites the inputs on purpose; --out never does
        check_outputs([('--out', _target(args.out, root, file)) for file in files],
                      [('FILE_OR_DIR', file) for file in files])
    feature_config = FeatureConfig(keep_curves=args.keep_curves)
    describe_config = DescribeConfig(lm_path=None if args.lm_path is None else str(args.lm_path))
    if args.lm_path is not None:  # loaded once now: a folder that cannot be loaded is an error
        from handx_gen.annotate.describe import load_rewriter

        load_rewriter(str(args.lm_path), describe_config.lm_max_new_tokens)
    results: list[dict[str, Any]] = []
    for file in files:
        reading = load_source(file, fill_invalid=True)
        if args.in_place and reading.kind != SourceKind.MOTION:
            raise DataSourceError(f'{file} is a {reading.kind.value} source file; --in-place '
                                  'rewrites handx-motion/1 files only (use --out)')
        motion = reading.motion
        annotation = dict(motion.annotation or {})
        label = args.label
        if label is None and not args.no_plan_labels and 'plan' in annotation:
            plan = ClipPlan.from_dict(annotation['plan'])
            label = [p.label for p in plan.primitives if p.label] or None
        texts, extra = annotate_motion(motion, seed=args.seed, label=label,
                                       feature_config=feature_config,
                                       describe_config=describe_config)
        annotated = motion.with_texts(texts).with_annotation({**annotation, **extra})
        written = None
        if args.in_place or args.out is not None:
            target = file if args.in_place else _target(args.out, root, file)
            try:
                annotated.save(target)
            except OSError as exc:
                raise DataSourceError(f'cannot write {target}: {exc.strerror or exc}') from exc
            written = str(target)
        results.append({'file': str(file), 'written': written,
                         'descriptions': extra['descriptions']})
        if not args.json:
            print(f'{file}:' + (f' -> {written}' if written else ''))
            for item in extra['descriptions']:
                print(f"  [{item['granularity']}] {item['text']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0
