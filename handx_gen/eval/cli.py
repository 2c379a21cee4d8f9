"""``handx eval``: the metrics table of reference clips, the retrieval baseline and the
generators.

    handx eval data/corpus-s0 --out eval/table          # corpus test split, every row
    handx eval my_clips/ --reference data/corpus-s0 --sources ground_truth
    handx eval captures/ --sources ground_truth,diffusion --tasks text --limit 64
    handx eval data/corpus-s0 --heldout --tasks '' --out eval/heldout   # held-out rows only

DATA is a corpus (its ``--split``) or any folder of ``handx-motion/1`` files with texts. FID is
measured against ``--reference`` (a corpus: its train split; or a folder of clips), which is
also the retrieval baseline's database; a corpus DATA is its own reference by default.
``--heldout`` adds the rows of the held-out phrasing: retrieval and the generators on a
labelled prompt set in users' words (default the held-out set,
``benchmarks/prompts/heldout/prompts.yaml``), scored against its labels. Writes ``OUT.md`` and
``OUT.json`` with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ['register']


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``handx eval`` to the ``handx`` parser."""
    parser = subparsers.add_parser(
        'eval', help='evaluate clips or generated motion against text (FID, R-precision, '
                     'contacts, ...)',
        description=__doc__.split('\n\n')[0].replace('``', ''))
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser, default_data: Path | None = None) -> None:
    from handx_gen.eval.names import GRANULARITIES, HELDOUT_SET, SOURCES, TASKS

    parser.add_argument('data', type=Path, nargs='?' if default_data else None,
                        default=default_data,
                        help='a corpus folder or any folder of handx-motion/1 files with texts')
    parser.add_argument('--split', default='test', help='corpus split (default test)')
    parser.add_argument('--granularity', default='interaction',
                        choices=[*GRANULARITIES, 'first'],
                        help='which description is the prompt (default interaction; first: '
                             "the clip's first text)")
    parser.add_argument('--reference', type=Path,
                        help='real clips for FID and retrieval: a corpus (its train split) or '
                             'a folder (default: DATA when it is a corpus)')
    parser.add_argument('--sources', default=','.join(SOURCES),
                        help=f'rows, comma-separated (default {",".join(SOURCES)})')
    parser.add_argument('--tasks', default=','.join(TASKS),
                        help=f'tasks, comma-separated (default {",".join(TASKS)}; empty with '
                             '--heldout: only the held-out rows)')
    parser.add_argument('--heldout', type=Path, nargs='?', const=HELDOUT_SET,
                        metavar='PROMPTS',
                        help='add the held-out phrasing rows: the sources other than '
                             'ground_truth on a labelled prompt set (default the held-out '
                             'set, benchmarks/prompts/heldout/prompts.yaml)')
    parser.add_argument('--evaluator', type=Path, help='evaluator checkpoint (default shipped)')
    parser.add_argument('--diffusion', type=Path, help='diffusion checkpoint (default shipped)')
    parser.add_argument('--ar', type=Path, help='AR checkpoint (default shipped)')
    parser.add_argument('--limit', type=int,
                        help='at most this many reference clips and held-out prompts (the '
                             'first ones)')
    parser.add_argument('--repeats', type=int, default=20,
                        help='runs per embedding metric for the 95%% intervals (default 20)')
    parser.add_argument('--mm-texts', type=int, default=32,
                        help='prompts of the MultiModality check (default 32; 0 skips it)')
    parser.add_argument('--mm-samples', type=int, default=10,
                        help='clips per prompt for MultiModality (default 10)')
    parser.add_argument('--seed', type=int, default=0, help='sampling seed (default 0)')
    parser.add_argument('--out', type=Path, help='write OUT.md and OUT.json')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(',') if v.strip()]


def _reference(path: Path) -> list[Any]:
    """The reference clips: a corpus' train split, or every clip with text in a folder."""
    from handx_gen.eval.evaluate import load_clips

    clips = load_clips(path, split='train', granularity=None)
    return [c.motion for c in clips]


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    from handx_gen.eval.evaluate import EvalSettings, evaluate, load_clips, markdown_table
    from handx_gen.eval.evaluator import Evaluator
    from handx_gen.eval.metrics import EvalError
    from handx_gen.outputs import check_outputs

    if args.out is not None:
        check_outputs([('--out', args.out.with_suffix('.md')),
                       ('--out', args.out.with_suffix('.json'))],
                      [('DATA', args.data), ('--reference', args.reference),
                       ('--evaluator', args.evaluator), ('--diffusion', args.diffusion),
                       ('--ar', args.ar), ('--heldout', args.heldout)])
    sources, tasks = _names(args.sources), _names(args.tasks)
    if args.limit is not None and args.limit < 1:
        raise EvalError(f'--limit must be positive, got {args.limit}')
    if not tasks and args.heldout is None:
        raise EvalError('--tasks is empty: name a task, or give --heldout for the held-out '
                        'rows only')
    prompt_set: tuple[Any, ...] = ()
    if args.heldout is not None:
        from handx_gen.eval.prompt_set import load_prompt_set

        if not args.heldout.is_file():
            raise EvalError(f'--heldout {args.heldout}: no such prompt set')
        prompt_set = load_prompt_set(args.heldout)[:args.limit]
    settings = EvalSettings(repeats=args.repeats, mm_texts=args.mm_texts,
                            mm_samples=args.mm_samples, seed=args.seed)
    granularity = None if args.granularity == 'first' else args.granularity
    clips = load_clips(args.data, split=args.split, granularity=granularity, limit=args.limit)
    reference_path = args.reference
    if reference_path is None and (args.data / 'index.json').is_file():
        reference_path = args.data
    reference = _reference(reference_path) if reference_path is not None else None
    if reference is None and 'retrieval' in sources:
        print('handx eval: no --reference: the retrieval row and FID are left out',
              file=sys.stderr)
        sources = [s for s in sources if s != 'retrieval']
    evaluator = Evaluator(args.evaluator)
    generator = None
    if any(s in ('diffusion', 'ar') for s in sources):
        from handx_gen.generate import Generator

        generator = Generator(diffusion=args.diffusion, ar=args.ar)
    print(f'{len(clips)} clips from {args.data}' + (f', reference {len(reference)} clips from '
                                                    f'{reference_path}' if reference else ''),
          file=sys.stderr)
    report = evaluate(clips, evaluator, sources=sources, tasks=tasks, reference=reference,
                      generator=generator, settings=settings, prompt_set=prompt_set,
                      progress=not args.no_progress,
                      log=lambda line: print(line, file=sys.stderr))
    report['data'] = {'path': str(args.data), 'split': args.split,
                      'granularity': args.granularity,
                      'reference': str(reference_path) if reference_path else None}
    if args.heldout is not None:
        report['data']['heldout'] = str(args.heldout)
    table = markdown_table(report)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix('.md').write_text(table, encoding='utf-8')
        args.out.with_suffix('.json').write_text(json.dumps(report, indent=1),
                                                 encoding='utf-8')
        print(f'wrote {args.out.with_suffix(".md")} and {args.out.with_suffix(".json")}',
              file=sys.stderr)
    return 0
