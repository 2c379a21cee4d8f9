"""The evaluation table: ground truth, retrieval, diffusion and AR, by task, on a corpus' test
split, with the evaluator's controls; with ``--heldout``, the held-out phrasing rows.

Run (the corpus of ``make models``)::

    .venv/bin/python benchmarks/bench_generation.py --out generation_table
    .venv/bin/python benchmarks/bench_generation.py --heldout --tasks '' --out heldout_rows

Equivalent to ``handx eval data/corpus-s0 --out ...`` (same arguments, see ``--help``), plus
the machine's description in the JSON. Rows: every source for the ``text`` task, and the
generators and retrieval for ``reaction`` and ``inbetween``; with ``--heldout``, retrieval and
the generators on the held-out prompts in users' words (``benchmarks/prompts/heldout``, see
``bench_heldout.py``), scored against their labels. Columns, the contact metrics first: all
stated contacts found, contact precision/recall, interpenetrating frames, articulation,
coordination, then FID (against the train split), R-precision top-1/3, MM-Dist, Diversity,
MultiModality (mean ± 95% interval over the repeated runs), jitter and seconds per clip; a
second table holds contact order and timing, interpenetration depth, joint-limit violations
and bone-length variation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

from common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from handx_gen.errors import HandxError
    from handx_gen.eval.cli import add_arguments, run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, default_data=ROOT / 'data' / 'corpus-s0')
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f'{args.data}: no corpus; build it with `make models` (or handx data synth --out '
              f'{args.data} --clips 4000 --seed 0 --config training/configs/corpus.yaml)',
              file=sys.stderr)
        return 2
    try:
        status = run(args)
    except HandxError as exc:
        print(f'bench_generation: error: {exc}', file=sys.stderr)
        return 2
    if args.out is not None:
        path = args.out.with_suffix('.json')
        report = json.loads(path.read_text(encoding='utf-8'))
        report['machine'] = machine()
        path.write_text(json.dumps(report, indent=1), encoding='utf-8')
    return status


if __name__ == '__main__':
    sys.exit(main())
