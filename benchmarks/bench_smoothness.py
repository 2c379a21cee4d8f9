"""Are generated clips as smooth as a person's? Jerk, wrist steps, contacts, per sampling option.

For each model (``--models``), task (``--tasks``: ``text``, ``reaction``, ``inbetween``, set up
as ``handx eval`` sets them up: reaction gives the right hand of even-numbered clips and the
left hand of odd ones, in-betweening the first and last 15 frames) and sampling option
(``--variants``, the registry :data:`VARIANTS` below), ``--clips`` held-out corpus clips are
generated through :meth:`handx_gen.Generator.generate` (seed = the clip's position in the
sample), each from its clip's interaction description and, beyond text, from the clip itself.
The sample takes the split's motion types in turn, those whose plan has a contact and those
without alternately, so a handful of clips covers claps and taps as well as hands apart.

Per row:

* **jerk**: mean jerk magnitude of the 42 keypoints, m/s^3, exactly as the evaluation computes
  it (:func:`handx_gen.eval.metrics.plausibility`, whole clip, given parts included); **gen.
  hands**: the same over the generated hands only (the reacting hand in a reaction), beside
  the given hand's own (``given hand``); the reference is the ground truth of the whole split,
  measured the same way, and the target is at most twice it;
* **wrist step**: frame-to-frame displacement of a generated wrist (steps between two given
  frames excluded), max over the clips and the mean of the clips' 99th percentiles, mm; the
  target is at most 10 mm at 30 fps;
* **penetrating frames**: share of frames whose hands overlap deeper than the evaluation's
  8 mm (:func:`handx_gen.eval.metrics.interpenetration`), mean over clips;
* **contacts**: share of the clips whose plan names a contact in which every named contact
  occurs in the generated clip (as ``benchmarks/bench_contacts.py`` checks it);
* **finger actions**: the plan's bends, extensions, spreads and pinches realised in the
  generated clip, over those stated (the evaluation's articulation score): fast finger motion
  that smoothing could flatten;
* **s/clip**: median seconds of one ``generate`` call (threads: ``--threads``).

Run (the corpus of ``make models``, or any corpus built with ``training/configs/corpus.yaml``)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_smoothness.py --corpus data/corpus-s0 \\
        --clips 8 --save smoothness.json --markdown
    .venv/bin/python benchmarks/bench_smoothness.py --variants all --models diffusion \\
        --tasks text --clips 4

``--save`` writes JSON, ``--compare`` prints the change against a saved report, ``--markdown``
prints the table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
from common import machine, save_report  # noqa: E402

from handx_gen.models.smoothing import SmoothingConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ('diffusion', 'ar')
TASKS = ('text', 'reaction', 'inbetween')
INBETWEEN_K = 15  # frames given at each end, as handx eval gives them
WRIST_STEP_TARGET_M = 0.01
JERK_TARGET_FACTOR = 2.0

# Sampling options: name -> (models it applies to, Generator.generate keyword arguments).
# 'default' is what Generator.generate does without options; the AR model has no denoising
# steps, so for it the x0 settings do nothing.
def _smoothing(cutoff_hz: float = 4.0, *, bound: bool = True, x0_steps: int | None = 0,
               final: bool = True, fingers_hz: float | None = None) -> dict[str, Any]:
    """Smoothing at ``cutoff_hz`` (the finger joints too unless ``fingers_hz``), the wrists
    bounded to 1 cm per frame or not, x0 smoothed in the last ``x0_steps`` DDIM steps."""
    return {'smoothing': SmoothingConfig(cutoff_hz=cutoff_hz, finger_cutoff_hz=fingers_hz,
                                         max_wrist_step_m=0.01 if bound else None,
                                         denoising_steps=x0_steps, final_pass=final)}


VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    'raw': (MODELS, {'smoothing': False}),
    'default': (MODELS, {}),
    'ddim-100': (('diffusion',), {'smoothing': False, 'steps': 100}),
    'ddim-25': (('diffusion',), {'smoothing': False, 'steps': 25}),
    'x0-4hz-all': (('diffusion',), _smoothing(bound=False, x0_steps=None, final=False)),
    'x0-4hz-last10': (('diffusion',), _smoothing(bound=False, x0_steps=10, final=False)),
    'final-6hz': (MODELS, _smoothing(6.0, bound=False)),
    'final-4hz': (MODELS, _smoothing(4.0, bound=False)),
    'final-3hz': (MODELS, _smoothing(3.0, bound=False)),
    'final-6hz-bound': (MODELS, _smoothing(6.0)),
    'final-4hz-bound': (MODELS, _smoothing(4.0)),
    'x0-last10+final-4hz-bound': (('diffusion',), _smoothing(4.0, x0_steps=10)),
    'x0-all+final-4hz-bound': (('diffusion',), _smoothing(4.0, x0_steps=None)),
    'x0-all+final-3hz-bound': (('diffusion',), _smoothing(3.0, x0_steps=None)),
    'final-4hz-bound-fingers-6hz': (MODELS, _smoothing(4.0, fingers_hz=6.0)),
    'ddim-25+default': (('diffusion',), {'steps': 25}),
}


def _describe(options: dict[str, Any]) -> dict[str, Any]:
    """Plain-typed options, for the JSON report."""
    return {k: v.to_dict() if isinstance(v, SmoothingConfig) else v for k, v in options.items()}


def _types_key(row: Any) -> str:
    return '+'.join(row.motion_types)


def sample_clips(corpus: Path, split: str, count: int, contacts_only: bool = False
                 ) -> tuple[list[dict], dict[str, Any]]:
    """``count`` clips of the split, motion types in turn (contact and contact-free types
    alternately, or only those with a contact), and the ground truth of the whole split as
    the reference."""
    from handx_gen.data.plan import ClipPlan
    from handx_gen.data.synthetic import iter_clips

    by_type: dict[str, list[dict]] = defaultdict(list)
    jerks, steps, p99 = [], [], []
    for row, motion in iter_clips(corpus, split):
        annotation = motion.annotation or {}
        plan = ClipPlan.from_dict(annotation['plan'])
        texts = {d['granularity']: d['text'] for d in annotation.get('descriptions', [])}
        item = {'id': row.clip_id, 'types': _types_key(row), 'plan': plan, 'motion': motion,
                'prompt': texts.get('interaction') or motion.texts[0]}
        by_type[item['types']].append(item)
        clip = clip_metrics(motion, np.zeros(motion.keypoints.shape[:2], bool))
        jerks.append(clip['jerk'])
        steps.append(clip['wrist_step_max'])
        p99.append(clip['wrist_step_p99'])
    touching = sorted(k for k, v in by_type.items() if v[0]['plan'].contacts)
    apart = sorted(k for k, v in by_type.items() if not v[0]['plan'].contacts)
    order = [k for pair in zip(touching, apart, strict=False) for k in pair]
    order += touching[len(apart):] + apart[len(touching):]
    if contacts_only:
        order = touching
    chosen: list[dict] = []
    depth = 0
    while len(chosen) < count and any(len(by_type[k]) > depth for k in order):
        chosen += [by_type[k][depth] for k in order if len(by_type[k]) > depth]
        depth += 1
    reference = {'clips': len(jerks), 'jerk': float(np.mean(jerks)),
                 'wrist_step_max_mm': 1000 * float(np.max(steps)),
                 'wrist_step_p99_mm': 1000 * float(np.mean(p99))}
    return chosen[:count], reference


def _jerk(keypoints: np.ndarray, fps: float) -> float:
    """Mean jerk magnitude of (T, ..., 3) keypoints, m/s^3 (the evaluation's definition)."""
    if keypoints.shape[0] < 4:
        return 0.0
    jerk = np.diff(keypoints.astype(np.float64), n=3, axis=0) * fps ** 3
    return float(np.linalg.norm(jerk, axis=-1).mean())


def clip_metrics(motion: Any, given: np.ndarray) -> dict[str, Any]:
    """Smoothness of one clip; ``given`` (T, 2) is true where a hand's frame is given whole."""
    from handx_gen.eval.metrics import interpenetration, plausibility

    keypoints = np.asarray(motion.keypoints, dtype=np.float64)
    generated_hands = [side for side in range(2) if not given[:, side].all()]
    given_hands = [side for side in range(2) if given[:, side].all()]
    wrist = keypoints[:, :, 0]  # (T, 2, 3)
    steps = np.linalg.norm(np.diff(wrist, axis=0), axis=-1)  # (T - 1, 2)
    generated_step = ~(given[1:] & given[:-1])  # (T - 1, 2)
    steps = steps[generated_step]
    _, penetrating = interpenetration(keypoints)
    return {
        'jerk': plausibility(motion).jitter_m_s3,
        'jerk_generated': _jerk(keypoints[:, generated_hands], motion.fps),
        'jerk_given': _jerk(keypoints[:, given_hands], motion.fps) if given_hands else None,
        'wrist_step_max': float(steps.max()) if steps.size else 0.0,
        'wrist_step_p99': float(np.percentile(steps, 99)) if steps.size else 0.0,
        'penetrating_frames': penetrating,
    }


def _condition(task: str, index: int) -> dict[str, Any]:
    if task == 'text':
        return {'mode': 'text'}
    if task == 'reaction':
        return {'mode': 'reaction', 'side': 'right' if index % 2 == 0 else 'left'}
    return {'mode': 'inbetween', 'k': INBETWEEN_K}


def _given_hands(task: str, index: int, frames: int) -> np.ndarray:
    """(T, 2) bool: hands given whole at a frame."""
    given = np.zeros((frames, 2), dtype=bool)
    if task == 'reaction':
        given[:, 1 if index % 2 == 0 else 0] = True
    elif task == 'inbetween':
        given[:INBETWEEN_K] = True
        given[frames - INBETWEEN_K:] = True
    return given


def statement_of(clip: dict) -> Any:
    """What the clip's plan states (contacts, finger actions), as the evaluation reads it."""
    from handx_gen.annotate.features import extract_features
    from handx_gen.eval.metrics import Statement

    return Statement.from_plan(clip['plan'], extract_features(clip['motion']))


def content_metrics(clip: dict, statement: Any, motion: Any) -> dict[str, Any]:
    """Whether every contact the plan names occurs in ``motion`` (``bench_contacts.py``'s
    check; ``None`` without one), and the stated finger actions realised (the evaluation's
    articulation score): what smoothing must not take away."""
    from handx_gen.annotate.check import stated_contacts_found
    from handx_gen.annotate.features import extract_features
    from handx_gen.eval.metrics import articulation_score

    features = extract_features(motion)
    contacts = None
    if clip['plan'].contacts:
        found = stated_contacts_found(clip['plan'].contacts, features.contacts)
        contacts = all(ok for _, ok in found)
    done, stated = articulation_score(statement, features)
    return {'contacts': contacts, 'actions_done': done, 'actions_stated': stated}


def summarise(rows: list[dict], seconds: list[float] | None) -> dict[str, Any]:
    with_contacts = [r for r in rows if r['contacts'] is not None]
    given = [r['jerk_given'] for r in rows if r['jerk_given'] is not None]
    out = {
        'clips': len(rows),
        'jerk': float(np.mean([r['jerk'] for r in rows])),
        'jerk_generated': float(np.mean([r['jerk_generated'] for r in rows])),
        'jerk_given': float(np.mean(given)) if given else None,
        'wrist_step_max_mm': 1000 * max(r['wrist_step_max'] for r in rows),
        'wrist_step_p99_mm': 1000 * float(np.mean([r['wrist_step_p99'] for r in rows])),
        'penetrating_frames': float(np.mean([r['penetrating_frames'] for r in rows])),
        'contact_clips': len(with_contacts),
        'contacts_agree': sum(r['contacts'] for r in with_contacts),
        'contact_agreement': (sum(r['contacts'] for r in with_contacts) / len(with_contacts)
                              if with_contacts else None),
        'actions_done': sum(r['actions_done'] for r in rows),
        'actions_stated': sum(r['actions_stated'] for r in rows),
        'per_clip': rows,
    }
    if seconds:
        out['seconds_per_clip_p50'] = float(np.median(seconds))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from handx_gen.generate import Generator

    torch.set_num_threads(args.threads)
    clips, reference = sample_clips(args.corpus, args.split, args.clips, args.contacts_only)
    print(f'{len(clips)} {args.split} clips ({", ".join(c["types"] for c in clips)}); '
          f'ground truth of all {reference["clips"]} {args.split} clips: jerk '
          f'{reference["jerk"]:.1f} m/s^3, wrist step max {reference["wrist_step_max_mm"]:.1f} '
          f'mm, p99 {reference["wrist_step_p99_mm"]:.1f} mm', flush=True)
    generator = Generator()
    report: dict[str, Any] = {
        'benchmark': 'smoothness', 'corpus': str(args.corpus), 'split': args.split,
        'threads': args.threads, 'contacts_only': args.contacts_only,
        'variants': {name: _describe(VARIANTS[name][1]) for name in args.variant_list},
        'reference': reference, 'clip_ids': [c['id'] for c in clips],
        'targets': {'jerk_m_s3': JERK_TARGET_FACTOR * reference['jerk'],
                    'wrist_step_max_mm': 1000 * WRIST_STEP_TARGET_M,
                    'penetrating_frames': 0.01},
        'rows': [],
    }
    truth = []
    statements = [statement_of(clip) for clip in clips]
    for clip, statement in zip(clips, statements, strict=True):
        motion = clip['motion']
        row = clip_metrics(motion, np.zeros((motion.num_frames, 2), bool))
        truth.append({'id': clip['id'], **row, **content_metrics(clip, statement, motion)})
    report['rows'].append({'model': 'ground truth', 'task': '-', 'variant': '-',
                           **summarise(truth, None)})
    for model in args.model_list:
        generator.load(model)
        for task in args.task_list:
            for variant in args.variant_list:
                models, options = VARIANTS[variant]
                if model not in models:
                    continue
                rows, seconds = [], []
                for index, clip in enumerate(clips):
                    motion = clip['motion']
                    given = None if task == 'text' else motion
                    start = time.perf_counter()
                    out = generator.generate(clip['prompt'], model=model, given=given,
                                             seed=index, **_condition(task, index), **options)
                    seconds.append(time.perf_counter() - start)
                    row = clip_metrics(out, _given_hands(task, index, out.num_frames))
                    rows.append({'id': clip['id'], **row,
                                 **content_metrics(clip, statements[index], out)})
                entry = {'model': model, 'task': task, 'variant': variant,
                         **summarise(rows, seconds)}
                report['rows'].append(entry)
                print(text_row(entry, report['targets']), flush=True)
    report['machine'] = machine()
    return report


def _fmt(value: Any, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def _cells(entry: dict[str, Any], targets: dict[str, Any]) -> list[str]:
    meets = entry['model'] != 'ground truth' and (
        entry['jerk'] <= targets['jerk_m_s3']
        and entry['wrist_step_max_mm'] <= targets['wrist_step_max_mm']
        and entry['penetrating_frames'] <= targets['penetrating_frames'])
    agreement = (f'{entry["contacts_agree"]}/{entry["contact_clips"]}'
                 if entry['contact_clips'] else '-')
    return [entry['model'], entry['task'], entry['variant'], _fmt(entry['jerk'], '.0f'),
            _fmt(entry['jerk_generated'], '.0f'), _fmt(entry['jerk_given'], '.0f'),
            f'{entry["wrist_step_max_mm"]:.1f} / {entry["wrist_step_p99_mm"]:.1f}',
            f'{100 * entry["penetrating_frames"]:.1f}%', agreement,
            f'{entry["actions_done"]}/{entry["actions_stated"]}',
            _fmt(entry.get('seconds_per_clip_p50'), '.2f'),
            '-' if entry['model'] == 'ground truth' else ('yes' if meets else 'no')]


HEADER = ['model', 'task', 'option', 'jerk m/s³', 'gen. hands', 'given hand',
          'wrist step max / p99 mm', 'penetrating frames', 'contacts agree',
          'finger actions', 's/clip',
          'targets met']


def text_row(entry: dict[str, Any], targets: dict[str, Any]) -> str:
    return '  '.join(f'{h}={c}' for h, c in zip(HEADER, _cells(entry, targets), strict=True))


def markdown(report: dict[str, Any]) -> str:
    """The table for the README."""
    lines = ['| ' + ' | '.join(HEADER) + ' |', '|' + '---|' * len(HEADER)]
    lines += ['| ' + ' | '.join(_cells(e, report['targets'])) + ' |' for e in report['rows']]
    return '\n'.join(lines)


def text_table(report: dict[str, Any]) -> str:
    rows = [HEADER, *(_cells(e, report['targets']) for e in report['rows'])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return '\n'.join('  '.join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     for row in rows)


COMPARED = (('jerk', '.0f'), ('wrist_step_max_mm', '.1f'), ('penetrating_frames', '.3f'),
            ('contact_agreement', '.2f'), ('actions_done', 'd'), ('seconds_per_clip_p50', '.2f'))


def compare(report: dict[str, Any], before: dict[str, Any]) -> str:
    """Per model, task and option present in both: each headline number, before -> now."""
    old = {(r['model'], r['task'], r['variant']): r for r in before.get('rows', [])}
    lines = []
    for row in report['rows']:
        prior = old.get((row['model'], row['task'], row['variant']))
        if prior is None:
            continue
        changes = [f'{name} {_fmt(prior.get(name), spec)} -> {_fmt(row.get(name), spec)}'
                   for name, spec in COMPARED]
        lines.append(f'{row["model"]} {row["task"]} {row["variant"]}: ' + ', '.join(changes))
    return '\n'.join(lines) or 'no row in common with the earlier report'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--corpus', type=Path, default=ROOT / 'data' / 'corpus-s0',
                        help='corpus folder (default data/corpus-s0, built by make models)')
    parser.add_argument('--split', default='test', choices=['test', 'val'],
                        help='held-out split (default test; tune settings on val)')
    parser.add_argument('--clips', type=int, default=8,
                        help='clips per model, task and option (default 8)')
    parser.add_argument('--contacts-only', action='store_true',
                        help='only clips whose plan names a contact (for contact agreement)')
    parser.add_argument('--models', default=','.join(MODELS),
                        help='comma-separated: diffusion, ar (default both)')
    parser.add_argument('--tasks', default=','.join(TASKS),
                        help='comma-separated: text, reaction, inbetween (default all)')
    parser.add_argument('--variants', default='raw,default',
                        help=f'comma-separated sampling options, or all: {", ".join(VARIANTS)} '
                             f'(default raw,default)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--save', default=None, help='write the report as JSON here')
    parser.add_argument('--compare', type=Path, default=None,
                        help='an earlier --save report to print the changes against')
    parser.add_argument('--markdown', action='store_true',
                        help='print the table as Markdown (for the README)')
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f'--clips must be >= 1, got {args.clips}')

    def listed(text: str, valid: Any, what: str) -> list[str]:
        items = [v.strip() for v in text.split(',') if v.strip()]
        for item in items:
            if item not in valid:
                parser.error(f'unknown {what} {item!r}; valid: {", ".join(valid)}')
        return items

    args.model_list = listed(args.models, MODELS, 'model')
    args.task_list = listed(args.tasks, TASKS, 'task')
    args.variant_list = list(VARIANTS) if args.variants.strip() == 'all' \
        else listed(args.variants, VARIANTS, 'option')
    if not (args.corpus / 'index.json').is_file():
        parser.error(f'{args.corpus} has no corpus; build it with `make models` (or handx data '
                     f'synth --out {args.corpus} --clips 4000 --seed 0 --config '
                     f'training/configs/corpus.yaml)')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(markdown(report) if args.markdown else text_table(report))
    if args.compare is not None:
        print(compare(report, json.loads(args.compare.read_text(encoding='utf-8'))))
    save_report(report, args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
