"""Do generated clips show the contacts their prompts name? Shipped models vs ground truth.

For every held-out test clip of the synthetic corpus whose plan has a contact (hands touching
each other, or fingers of one hand touching), the clip's description at one granularity
(default ``interaction``, the one that states contacts) is the prompt. Each model generates a
clip from it (seed = the clip's position in the list); the features of the generated clip are
extracted exactly as for the corpus (:func:`handx_gen.annotate.features.extract_features`), and
the prompt *agrees* when every contact of the plan (merged per finger, palm and back, see
:func:`handx_gen.annotate.check.stated_contacts_found`) occurs somewhere in the clip. The
ground-truth clips go through the same check (their own keypoints, the same extraction).

Run (the corpus of ``make models``; built here when missing)::

    .venv/bin/python benchmarks/bench_contacts.py --corpus data/corpus-s0 --save contacts.json

``--types tap_palm,clap`` keeps the clips of those motion types; ``--no-contact-guidance``
scores the clips without contact completion (:mod:`handx_gen.models.contact_guidance`),
``--no-separation`` without hand separation (:mod:`handx_gen.models.separation`); each row
also gives the interpenetration of the hands (share of frames deeper than 8 mm, mean depth
there, over all frames of the clips).

Prints agreement per model with a 95% Wilson interval, per motion type, and the time per clip.
The ``tokenizer`` row encodes and decodes each ground-truth clip with the AR model's tokenizer:
the most the AR model can reach, as it only writes tokens.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from common import machine, save_report, wilson  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'training'))


def prompts(corpus: Path, granularity: str, limit: int | None, split: str = 'test',
            types: frozenset[str] | None = None) -> list[dict]:
    """Held-out clips whose plan names a contact: prompt, plan and the clip (of a motion
    type in ``types`` when given)."""
    from handx_gen.data.plan import ClipPlan
    from handx_gen.data.synthetic import iter_clips

    rows = []
    for row, motion in iter_clips(corpus, split):
        if types is not None and not types & set(row.motion_types):
            continue
        annotation = motion.annotation or {}
        plan = ClipPlan.from_dict(annotation['plan'])
        if not plan.contacts:
            continue
        texts = {d['granularity']: d['text'] for d in annotation.get('descriptions', [])}
        rows.append({'id': row.clip_id, 'types': row.motion_types, 'prompt': texts[granularity],
                     'plan': plan, 'motion': motion})
        if limit is not None and len(rows) >= limit:
            break
    return rows


def round_trip(generator, motion):
    """``motion`` encoded and decoded by the AR model's tokenizer (hands sized as given)."""
    import torch

    from handx_gen.hand.ik import fit_skeleton
    from handx_gen.hand.topology import HandSide
    from handx_gen.models.dataset import pad_frames
    from handx_gen.motion.features import FEATURE_LAYOUT

    loaded = generator.load('ar')
    frames = motion.num_frames
    padded = -(-frames // loaded.downsample) * loaded.downsample
    raw = pad_frames(FEATURE_LAYOUT.encode(motion), padded)
    x = torch.from_numpy(loaded.normalizer.normalize(raw)).float()[None]
    with torch.no_grad():
        rec = loaded.tokenizer.decode(loaded.tokenizer.encode(x))[0, :frames]
    rec = loaded.normalizer.denormalize(rec.double().numpy())
    skeletons = [fit_skeleton(motion.keypoints[:, side], side) for side in HandSide]
    return FEATURE_LAYOUT.decode(rec, motion.fps, skeletons=skeletons)


def agreement(plan, motion) -> tuple[bool, int, int]:
    """(all stated contacts found, found, stated) for one clip."""
    from handx_gen.annotate.check import stated_contacts_found
    from handx_gen.annotate.features import extract_features

    found = stated_contacts_found(plan.contacts, extract_features(motion).contacts)
    hits = sum(ok for _, ok in found)
    return hits == len(found), hits, len(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--corpus', type=Path, default=ROOT / 'data' / 'corpus-s0',
                        help='corpus folder (default data/corpus-s0, built by make models)')
    parser.add_argument('--granularity', default='interaction',
                        choices=['semantic', 'interaction', 'articulation'])
    parser.add_argument('--models', default='diffusion,ar,tokenizer',
                        help='comma-separated: diffusion, ar, tokenizer (round trip of the '
                             "ground truth through the AR model's tokenizer)")
    parser.add_argument('--limit', type=int, help='at most this many prompts')
    parser.add_argument('--types', help='comma-separated motion types: only clips of these')
    parser.add_argument('--split', default='test', choices=['test', 'val'],
                        help='held-out split (default test; tune settings on val)')
    parser.add_argument('--guidance', type=float, help="guidance scale (default: the model's)")
    parser.add_argument('--steps', type=int, help="diffusion DDIM steps (default: the model's)")
    parser.add_argument('--temperature', type=float, help='AR sampling temperature')
    parser.add_argument('--top-k', type=int, help='AR top-k')
    parser.add_argument('--top-p', type=float, help='AR nucleus sampling')
    parser.add_argument('--diffusion', type=Path, help='diffusion checkpoint (default shipped)')
    parser.add_argument('--ar', type=Path, help='AR checkpoint (default shipped)')
    parser.add_argument('--no-contact-guidance', action='store_true',
                        help='clips as sampled, without completing the contacts the prompt '
                             'names (default: completed, as Generator.generate does)')
    parser.add_argument('--no-separation', action='store_true',
                        help='clips without moving the hands apart where they overlap deeper '
                             'than a touch (default: separated, as Generator.generate does)')
    parser.add_argument('--save', help='write the report as JSON')
    args = parser.parse_args()

    import torch

    from handx_gen.eval.metrics import interpenetration
    from handx_gen.generate import Generator

    if not (args.corpus / 'index.json').is_file():
        print(f'{args.corpus} has no corpus; build it with `make models` (or handx data synth '
              f'--out {args.corpus} --clips 4000 --seed 0 --config '
              f'training/configs/corpus.yaml)', file=sys.stderr)
        return 2
    types = None if not args.types else frozenset(
        t.strip() for t in args.types.split(',') if t.strip())
    rows = prompts(args.corpus, args.granularity, args.limit, args.split, types)
    print(f'{len(rows)} {args.split} prompts that name a contact '
          f'({args.granularity} descriptions)')
    generator = Generator(diffusion=args.diffusion, ar=args.ar)
    report = {'corpus': str(args.corpus), 'split': args.split,
              'granularity': args.granularity, 'guidance': args.guidance,
              'steps': args.steps, 'temperature': args.temperature, 'top_k': args.top_k,
              'top_p': args.top_p, 'contact_guidance': not args.no_contact_guidance,
              'separation': not args.no_separation,
              'prompts': len(rows), 'threads': torch.get_num_threads(), 'results': {}}
    sources = ['ground_truth', *[m.strip() for m in args.models.split(',') if m.strip()]]
    for source in sources:
        agree = 0
        hits = stated = 0
        per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        seconds = []
        deep_frames = frames = 0
        deep_depth = 0.0
        for index, row in enumerate(rows):
            if source == 'ground_truth':
                clip = row['motion']
            elif source == 'tokenizer':
                clip = round_trip(generator, row['motion'])
            else:
                start = time.perf_counter()
                options = {'guidance': args.guidance,
                           'contacts': not args.no_contact_guidance,
                           'separation': not args.no_separation}
                if source == 'diffusion':
                    options['steps'] = args.steps
                else:
                    options.update(top_k=args.top_k, top_p=args.top_p)
                    if args.temperature is not None:
                        options['temperature'] = args.temperature
                clip = generator.generate(row['prompt'], model=source, seed=index, **options)
                seconds.append(time.perf_counter() - start)
            ok, h, n = agreement(row['plan'], clip)
            depth, share = interpenetration(clip.keypoints)
            deep = int(round(share * clip.num_frames))
            deep_frames += deep
            deep_depth += depth * deep
            frames += clip.num_frames
            agree += ok
            hits += h
            stated += n
            key = '+'.join(row['types'])
            per_type[key][0] += ok
            per_type[key][1] += 1
        low, high = wilson(agree, len(rows))
        result = {'agreement': agree / max(1, len(rows)), 'agree': agree, 'prompts': len(rows),
                  'ci95': [low, high], 'contacts_found': hits, 'contacts_stated': stated,
                  'per_type': {k: {'agree': a, 'prompts': n}
                               for k, (a, n) in sorted(per_type.items())},
                  'interpenetration_frames': deep_frames / max(1, frames),
                  'interpenetration_depth_m': deep_depth / max(1, deep_frames)}
        if seconds:
            seconds.sort()
            result['seconds_per_clip_p50'] = seconds[len(seconds) // 2]
        report['results'][source] = result
        timing = f', {result["seconds_per_clip_p50"]:.2f} s/clip p50' if seconds else ''
        share = 100 * agree / max(1, len(rows))
        print(f'{source:>13}: {agree}/{len(rows)} prompts agree = {share:.1f}% '
              f'(95% CI {100 * low:.1f}-{100 * high:.1f}%); contacts found {hits}/{stated}'
              f'{timing}; interpenetration {100 * result["interpenetration_frames"]:.2f}% '
              f'of frames, {1000 * result["interpenetration_depth_m"]:.2f} mm')
    print('per motion type (agree/prompts):')
    for key in sorted(report['results']['ground_truth']['per_type']):
        cells = [f"{report['results'][s]['per_type'][key]['agree']}/"
                 f"{report['results'][s]['per_type'][key]['prompts']}" for s in sources]
        print(f'  {key:>22}: ' + '  '.join(f'{s} {c}' for s, c in zip(sources, cells,
                                                                     strict=True)))
    report['machine'] = machine()
    save_report(report, args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
