"""Held-out phrasing: do the models do what people's own words ask, as well as corpus texts?

The prompts are the held-out set (``benchmarks/prompts/heldout/prompts.yaml``: written by
hand in users' phrasing, never produced by the corpus templates, never used for training or
tuning), each labelled with the contacts, finger actions, spreads and bimanual pattern it
names (:mod:`handx_gen.eval.prompt_set`). Each prompt is paired with a clip of its motion type
from the synthetic corpus builder, made as the corpus' test split is (the settings of
``training/configs/corpus.yaml``, the composition seeds a corpus of ``--seed`` puts in its
test split, the prompt's lead hand); that clip's description (``--granularity``, default
``semantic``) is the same request in the corpus' phrasing. Each model (``--models``) generates
from both (seed: the clip's position, the same for both phrasings), and:

* **held-out labels**: the clip's features are extracted as the annotation does
  (:func:`~handx_gen.annotate.features.extract_features`) and scored against the prompt's
  labels (:func:`~handx_gen.eval.prompt_set.score_prompt`, the evaluation's contact and
  articulation metrics): the share of clips in which every named contact occurs (target 80%),
  the share of named finger actions realised (target 0.8), the named pattern; per motion type
  and per phrasing style;
* **corpus phrasing**: the clips generated from the corpus descriptions, scored against the
  paired clip's plan as ``handx eval`` does;
* **R-precision** (top-1 and top-3, the shipped evaluator, batches of 32, the mean of
  ``--repeats`` reshuffles with its 95% interval, :func:`~handx_gen.eval.evaluate.
  embedding_metrics`) of each set: generated clips against the prompts they came from. The
  done-when of the held-out work: held-out top-3 within 10% of corpus-phrasing top-3.

The paired corpus clips themselves are the reference row (*corpus clip*): scored against the
held-out labels (the clip's counts, order and pattern are drawn, so not every label holds for
it) and ranked against the held-out prompts and their own descriptions.

Run (here, about 10 minutes with ``--limit 64``, two R-precision batches)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_heldout.py --limit 64 \\
        --save heldout.json --markdown

``--limit N`` takes the first N prompts after ordering them one motion type at a time (so a
short run covers every type; within a type in an order drawn by ``--seed``), ``--clips K``
generates K clips per prompt (seeds in turn).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from common import machine, save_report, wilson  # noqa: E402

from handx_gen.eval.names import HELDOUT_SET as HELDOUT_PROMPTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS_CONFIG = ROOT / 'training' / 'configs' / 'corpus.yaml'
MODELS = ('diffusion', 'ar')
GROUND_TRUTH = 'corpus clip'
TARGET_ALL_CONTACTS = 0.8
TARGET_ACTIONS = 0.8
TARGET_TOP3_RATIO = 0.9


@dataclasses.dataclass(frozen=True)
class Pair:
    """A held-out prompt and a corpus clip of its motion type."""

    prompt: Any  # LabelledPrompt
    motion: Any  # BimanualMotion, the corpus clip
    plan: Any  # ClipPlan
    features: Any  # MotionFeatures of the corpus clip
    corpus_text: str  # its description at the chosen granularity


def order_prompts(prompts: Sequence[Any], limit: int | None, seed: int = 0) -> list[Any]:
    """The prompts one motion type at a time (types in order of first appearance, each
    type's prompts shuffled by ``seed``, so that a short run mixes the phrasings as the file
    does), the first ``limit`` of them."""
    import random

    by_type: dict[str, list[Any]] = defaultdict(list)
    for prompt in prompts:
        by_type[prompt.motion_type].append(prompt)
    queues = list(by_type.values())
    rng = random.Random(seed)
    for queue in queues:
        rng.shuffle(queue)
    out: list[Any] = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out if limit is None else out[:limit]


def test_split_seeds(seed: int, count: int) -> list[tuple[int, int]]:
    """(composition seed, clip seed) of the first clip of the first ``count`` compositions
    that a corpus built with ``seed`` puts in its test split."""
    from handx_gen.data.synthetic import Split, clip_seeds, split_of

    out = []
    composition = 0
    while len(out) < count:
        seeds = clip_seeds(seed, 4 * composition)
        if split_of(seeds[0]) is Split.TEST:
            out.append(seeds)
        composition += 1
    return out


def corpus_pairs(prompts: Sequence[Any], seed: int, granularity: str) -> list[Pair]:
    """A corpus clip of each prompt's motion type, led by the prompt's lead hand."""
    from handx_gen.annotate.features import MotionFeatures
    from handx_gen.annotate.pipeline import annotate_synthetic
    from handx_gen.data.synthetic import SynthConfig, synthesize_clip
    from handx_gen.hand.topology import HandSide

    config = SynthConfig.from_yaml(CORPUS_CONFIG)
    pairs = []
    for prompt, (composition, clip_seed) in zip(prompts, test_split_seeds(seed, len(prompts)),
                                                strict=True):
        left = prompt.lead is HandSide.LEFT
        clip = synthesize_clip(dataclasses.replace(config,
                                                   left_dominant_fraction=float(left)),
                               composition, clip_seed, motion_types=[prompt.motion_type],
                               annotate=annotate_synthetic)
        annotation = clip.motion.annotation or {}
        texts = {d['granularity']: d['text'] for d in annotation.get('descriptions', [])}
        pairs.append(Pair(prompt, clip.motion, clip.plan,
                          MotionFeatures.from_dict(annotation['features']),
                          texts[granularity]))
    return pairs


def plan_score(pair: Pair, features: Any) -> Any:
    """A clip's features against the paired corpus clip's plan, as ``handx eval`` states it
    (contacts and bends from the plan, spread and pattern from the corpus clip)."""
    from handx_gen.eval.metrics import (
        Statement,
        articulation_score,
        contact_score,
        coordination_realised,
    )
    from handx_gen.eval.prompt_set import PromptScore

    statement = Statement.from_plan(pair.plan, pair.features)
    contacts = contact_score(statement, features)
    realised, stated = articulation_score(statement, features)
    return PromptScore(contacts.stated, contacts.found, stated, realised,
                       coordination_realised(statement, features))


def summarise(scores: Sequence[Any]) -> dict[str, Any]:
    """All-contacts share (with its Wilson interval), finger actions and pattern over
    clips."""
    named = [s for s in scores if s.all_contacts is not None]
    agree = sum(bool(s.all_contacts) for s in named)
    low, high = wilson(agree, len(named))
    stated = sum(s.actions_stated for s in scores)
    realised = sum(s.actions_realised for s in scores)
    patterns = [s.coordination for s in scores if s.coordination is not None]
    return {
        'clips': len(scores), 'clips_naming_contacts': len(named), 'all_contacts': agree,
        'all_contacts_share': agree / len(named) if named else None,
        'all_contacts_ci95': [low, high] if named else None,
        'contacts_stated': sum(s.contacts_stated for s in scores),
        'contacts_found': sum(s.contacts_found for s in scores),
        'actions_stated': stated, 'actions_realised': realised,
        'actions_share': realised / stated if stated else None,
        'coordination_named': len(patterns), 'coordination_realised': sum(patterns),
    }


def r_precision(evaluator: Any, motions: Sequence[Any], texts: Sequence[str],
                repeats: int, seed: int) -> dict[str, Any]:
    """R-precision top-1..3 and MM-Dist, ``[mean, ci95]`` (``None`` under one batch)."""
    from handx_gen.eval.evaluate import EvalSettings, embedding_metrics

    settings = EvalSettings(repeats=repeats, seed=seed, mm_texts=0)
    metrics = embedding_metrics(evaluator.embed_motions(motions), evaluator.embed_texts(texts),
                                None, settings)
    return {k: metrics[k] for k in ('top1', 'top2', 'top3', 'mm_dist')}


def generate(generator: Any, model: str, texts: Sequence[str], seeds: Sequence[int],
             label: str) -> tuple[list[Any], list[float]]:
    """One clip per (text, seed), and the seconds each took."""
    clips, seconds = [], []
    started = time.perf_counter()
    for i, (text, seed) in enumerate(zip(texts, seeds, strict=True)):
        start = time.perf_counter()
        clips.append(generator.generate(text, model=model, seed=seed))
        seconds.append(time.perf_counter() - start)
        if (i + 1) % 16 == 0 or i + 1 == len(texts):
            print(f'  {label}: {i + 1}/{len(texts)} clips, '
                  f'{time.perf_counter() - started:.0f} s', file=sys.stderr, flush=True)
    return clips, seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from handx_gen.annotate.features import extract_features
    from handx_gen.eval.evaluator import Evaluator
    from handx_gen.eval.prompt_set import load_prompt_set, score_prompt
    from handx_gen.generate import Generator

    started = time.perf_counter()
    prompts = order_prompts(load_prompt_set(args.prompts), args.limit, args.seed)
    pairs = corpus_pairs(prompts, args.seed, args.granularity)
    print(f'{len(pairs)} held-out prompts ({len({p.motion_type for p in prompts})} motion '
          f'types), {args.clips} clip(s) each; corpus clips built in '
          f'{time.perf_counter() - started:.0f} s', file=sys.stderr, flush=True)
    # clip k of prompt i: seed i * clips + k, the same for both phrasings
    rows = [(pair, args.seed + i * args.clips + k) for i, pair in enumerate(pairs)
            for k in range(args.clips)]
    heldout_texts = [pair.prompt.text for pair, _ in rows]
    corpus_texts = [pair.corpus_text for pair, _ in rows]
    seeds = [seed for _, seed in rows]
    evaluator = Evaluator()
    generator = Generator(diffusion=args.diffusion, ar=args.ar)

    sources: dict[str, dict[str, Any]] = {}
    per_prompt: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    references = [pair.motion for pair, _ in rows]
    truth = [score_prompt(pair.prompt, pair.features) for pair, _ in rows]
    sources[GROUND_TRUTH] = {
        'heldout': {**summarise(truth), **r_precision(evaluator, references, heldout_texts,
                                                      args.repeats, args.seed)},
        'corpus': {**summarise([plan_score(pair, pair.features) for pair, _ in rows]),
                   **r_precision(evaluator, references, corpus_texts, args.repeats,
                                 args.seed)},
    }
    scores: dict[str, dict[str, list[Any]]] = {GROUND_TRUTH: {'heldout': truth}}
    for model in args.model_list:
        sources[model] = {}
        scores[model] = {}
        for phrasing, texts in (('heldout', heldout_texts), ('corpus', corpus_texts)):
            clips, seconds = generate(generator, model, texts, seeds, f'{model} {phrasing}')
            features = [extract_features(clip) for clip in clips]
            if phrasing == 'heldout':
                got = [score_prompt(pair.prompt, f) for (pair, _), f in zip(rows, features,
                                                                              strict=True)]
            else:
                got = [plan_score(pair, f) for (pair, _), f in zip(rows, features, strict=True)]
            scores[model][phrasing] = got
            seconds.sort()
            sources[model][phrasing] = {**summarise(got), **r_precision(
                evaluator, clips, texts, args.repeats, args.seed),
                'seconds_per_clip_p50': seconds[len(seconds) // 2]}
    for source, by_phrasing in scores.items():
        for phrasing, got in by_phrasing.items():
            for (pair, seed), score in zip(rows, got, strict=True):
                per_prompt[pair.prompt.prompt_id].setdefault(f'{source} {phrasing}', []).append(
                    {'seed': seed, **score.to_dict()})

    report = {
        'prompts_file': str(args.prompts), 'prompts': len(pairs), 'clips_per_prompt': args.clips,
        'seed': args.seed, 'granularity': args.granularity, 'repeats': args.repeats,
        'models': args.model_list, 'threads': torch.get_num_threads(),
        'targets': {'all_contacts': TARGET_ALL_CONTACTS, 'actions': TARGET_ACTIONS,
                    'top3_heldout_over_corpus': TARGET_TOP3_RATIO},
        'sources': sources,
        'per_type': _grouped(rows, scores, lambda pair: [pair.prompt.motion_type]),
        'per_style': _grouped(rows, scores, lambda pair: [s.value for s in pair.prompt.style]),
        'per_prompt': [{'id': pair.prompt.prompt_id, 'text': pair.prompt.text,
                        'type': pair.prompt.motion_type, 'corpus_text': pair.corpus_text,
                        'labels': pair.prompt.to_dict(),
                        'results': per_prompt[pair.prompt.prompt_id]} for pair in pairs],
        'seconds': time.perf_counter() - started,
        'evaluator': evaluator.describe()['checkpoint'],
    }
    return report


def _grouped(rows: Sequence[tuple[Pair, int]], scores: dict[str, dict[str, list[Any]]],
             keys: Any) -> dict[str, dict[str, Any]]:
    """Summaries per group (a prompt may be in several), per source and phrasing."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, (pair, _) in enumerate(rows):
        for key in keys(pair):
            members[key].append(index)
    return {key: {f'{source} {phrasing}': summarise([got[i] for i in indices])
                  for source, by_phrasing in scores.items()
                  for phrasing, got in by_phrasing.items()}
            for key, indices in sorted(members.items())}


# ============================================================================ tables


def _share(summary: dict[str, Any]) -> str:
    if not summary.get('clips_naming_contacts'):
        return '-'
    low, high = summary['all_contacts_ci95']
    return (f"{100 * summary['all_contacts_share']:.0f}% ({summary['all_contacts']}/"
            f"{summary['clips_naming_contacts']}; {100 * low:.0f}-{100 * high:.0f})")


def _actions(summary: dict[str, Any]) -> str:
    if not summary.get('actions_stated'):
        return '-'
    return (f"{summary['actions_share']:.2f} ({summary['actions_realised']}/"
            f"{summary['actions_stated']})")


def _pattern(summary: dict[str, Any]) -> str:
    if not summary.get('coordination_named'):
        return '-'
    return f"{summary['coordination_realised']}/{summary['coordination_named']}"


def _top(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    return '-' if value is None else f'{value[0]:.3f}±{value[1]:.3f}'


def _ratio(heldout: dict[str, Any], corpus: dict[str, Any]) -> str:
    a, b = heldout.get('top3'), corpus.get('top3')
    return '-' if a is None or b is None or b[0] == 0 else f'{a[0] / b[0]:.2f}'


def tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the three tables."""
    granularity = report['granularity']
    sources = list(report['sources'])
    head = ['source', 'held-out: all named contacts (95% CI)', 'finger actions realised',
            'pattern', 'R-prec top-1', 'top-3', f'corpus phrasing ({granularity}): all '
            'contacts', 'finger actions', 'top-1', 'top-3', 'top-3 held-out / corpus']
    rows = []
    for source in sources:
        h, c = report['sources'][source]['heldout'], report['sources'][source]['corpus']
        rows.append([source, _share(h), _actions(h), _pattern(h), _top(h, 'top1'),
                     _top(h, 'top3'), _share(c), _actions(c), _top(c, 'top1'),
                     _top(c, 'top3'), _ratio(h, c)])
    models = [s for s in sources if s != GROUND_TRUTH]
    type_head = ['motion type', 'prompts', GROUND_TRUTH] + [
        f'{m} {p}' for m in models for p in ('held-out', 'corpus')]
    type_rows = []
    for key, entry in report['per_type'].items():
        gt = entry[f'{GROUND_TRUTH} heldout']
        if not gt['clips_naming_contacts']:
            continue
        type_rows.append([key, str(gt['clips']), _fraction(gt)] + [
            _fraction(entry[f'{m} {p}']) for m in models for p in ('heldout', 'corpus')])
    style_head = ['phrasing', 'prompts'] + [f'{m} {what}' for m in models
                                            for what in ('contacts', 'fingers')]
    style_rows = []
    for key, entry in report['per_style'].items():
        first = entry[f'{GROUND_TRUTH} heldout']
        style_rows.append([key, str(first['clips'])] + [
            cell for m in models for cell in (_fraction(entry[f'{m} heldout']),
                                              _actions(entry[f'{m} heldout']))])
    return [('Held-out phrasing against corpus phrasing', head, rows),
            ('Every named contact, per motion type (prompts that name one)', type_head,
             type_rows),
            ('Held-out prompts by phrasing', style_head, style_rows)]


def _fraction(summary: dict[str, Any]) -> str:
    named = summary['clips_naming_contacts']
    return '-' if not named else f"{summary['all_contacts']}/{named}"


def worst(report: dict[str, Any], count: int = 12) -> list[str]:
    """The held-out prompts the models realise least of (contacts found and finger actions
    realised over those named, summed over the models)."""
    models = [s for s in report['sources'] if s != GROUND_TRUTH]
    ranked = []
    for entry in report['per_prompt']:
        done = named = 0
        for model in models:
            for result in entry['results'].get(f'{model} heldout', []):
                done += result['contacts_found'] + result['actions_realised']
                named += result['contacts_stated'] + result['actions_stated']
        if named:
            ranked.append((done / named, entry['id'], entry['text']))
    ranked.sort()
    return [f'{share:.2f}  {pid}: {text}' for share, pid, text in ranked[:count]]


def render(report: dict[str, Any], markdown: bool) -> str:
    out = []
    for title, head, rows in tables(report):
        out.append(f'{title}:')
        if markdown:
            out += ['', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
            out += ['| ' + ' | '.join(row) + ' |' for row in rows]
        else:
            widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
            out += ['  '.join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                    for r in [head, *rows]]
        out.append('')
    out.append('Least realised held-out prompts (share of named contacts and finger actions, '
               'all models):')
    out += worst(report)
    return '\n'.join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--prompts', type=Path, default=HELDOUT_PROMPTS,
                        help='labelled prompt set (default the held-out set)')
    parser.add_argument('--limit', type=int, help='at most this many prompts, one motion '
                        'type at a time')
    parser.add_argument('--clips', type=int, default=1, help='clips per prompt (default 1)')
    parser.add_argument('--models', default=','.join(MODELS),
                        help='comma-separated: diffusion, ar (default both)')
    parser.add_argument('--granularity', default='semantic',
                        choices=['semantic', 'interaction', 'articulation'],
                        help='which description of the paired corpus clip is the corpus '
                             'phrasing (default semantic, the one that names the action)')
    parser.add_argument('--seed', type=int, default=0,
                        help="corpus and generation seed (default 0, the shipped corpus' "
                             'test compositions)')
    parser.add_argument('--repeats', type=int, default=20,
                        help='R-precision runs (reshuffled batches; default 20)')
    parser.add_argument('--diffusion', type=Path, help='diffusion checkpoint (default shipped)')
    parser.add_argument('--ar', type=Path, help='AR checkpoint (default shipped)')
    parser.add_argument('--save', help='write the report as JSON here')
    parser.add_argument('--markdown', action='store_true',
                        help='print the tables as Markdown (for the README)')
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f'--clips must be >= 1, got {args.clips}')
    if args.limit is not None and args.limit < 1:
        parser.error(f'--limit must be >= 1, got {args.limit}')
    if args.repeats < 1:
        parser.error(f'--repeats must be >= 1, got {args.repeats}')
    args.model_list = [m.strip().lower() for m in args.models.split(',') if m.strip()]
    unknown = [m for m in args.model_list if m not in MODELS]
    if unknown or not args.model_list:
        parser.error(f'unknown model {unknown[0] if unknown else ""!r}; valid: '
                     f'{", ".join(MODELS)}')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    report['machine'] = machine()
    print(render(report, args.markdown))
    save_report(report, args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
