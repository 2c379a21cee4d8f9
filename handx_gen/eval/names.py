"""The names of the evaluation table: its sources (rows), tasks and prompt granularities.

Apart from :mod:`~handx_gen.eval.evaluate` (which loads the metrics, scipy among them) so that
the ``handx eval`` parser lists them without loading anything.
"""

from __future__ import annotations

__all__ = ['GRANULARITIES', 'SOURCES', 'TASKS']

SOURCES = ('ground_truth', 'retrieval', 'diffusion', 'ar')
TASKS = ('text', 'reaction', 'inbetween')
GRANULARITIES = ('semantic', 'interaction', 'articulation')
