"""Evaluation of text-conditioned hand motion.

* :mod:`handx_gen.eval.metrics`: FID, R-precision, MM-Dist, Diversity, MultiModality and the
  contact, interpenetration, articulation, coordination and plausibility metrics.
* :mod:`handx_gen.eval.evaluator`: the contrastive text-motion evaluator whose embeddings the
  standard metrics use (trained by ``training/train_evaluator.py``, shipped).
* :mod:`handx_gen.eval.evaluate`: reference sets from any folder of motion files, the
  retrieval baseline, and the table of sources by tasks (``handx eval``).
* :mod:`handx_gen.eval.prompt_set`: labelled prompt sets, prompts in people's own words with
  the contacts and finger actions they name, scored with the metrics above (the held-out
  phrasing set, ``benchmarks/bench_heldout.py``).
"""
