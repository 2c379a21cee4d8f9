"""The names of the evaluation table: its sources (rows), tasks and prompt granularities.

Apart from :mod:`~handx_gen.eval.evaluate` (which loads the metrics, scipy among them) so that
the ``handx eval`` parser lists them without loading anything.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ['GRANULARITIES', 'HELDOUT', 'HELDOUT_SET', 'SOURCES', 'TASKS']

SOURCES = ('ground_truth', 'retrieval', 'diffusion', 'ar')
TASKS = ('text', 'reaction', 'inbetween')
GRANULARITIES = ('semantic', 'interaction', 'articulation')
# the task of the rows scored on a labelled prompt set (the text task, prompts in users' words)
HELDOUT = 'heldout'
# the held-out phrasing set (:mod:`~handx_gen.eval.prompt_set`), in a source checkout: it is
# not installed with the package
HELDOUT_SET = Path(__file__).resolve().parents[2] / 'benchmarks' / 'prompts' / 'heldout' / \
    'prompts.yaml'
