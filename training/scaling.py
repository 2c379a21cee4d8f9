"""Scaling study: diffusion models of several sizes trained on several fractions of a corpus,
each with the same budget of optimiser steps, all scored by the same evaluator.

    python training/scaling.py --corpus data/corpus-s0 --out runs/scaling
    python training/scaling.py --config my_scaling.yaml --corpus ... --out ...   # paper scale

The study config (default ``training/configs/scaling.yaml``) has the sections ``sizes``
(name -> the ``model:`` section of a diffusion run config), ``model`` (settings every size
shares), ``fractions`` (of the train split; a smaller fraction's clips are among a larger
one's), ``train`` (the ``train:`` section every cell shares: the fixed budget), ``masks`` and
``eval`` (``clips``: test prompts per cell, ``split``: where they come from, default
``test``, ``steps``: DDIM steps, ``repeats``: runs of each metric, ``guidance``).

Each cell is a normal run of ``train_diffusion.py`` in ``OUT/cells/<size>-<fraction>`` (so an
interrupted study resumes where it stopped: finished cells are kept, a cell in progress resumes
from its ``last.pt``), then generates one clip per test prompt of the first ``eval.clips``
test clips and is scored with :func:`handx_gen.eval.evaluate.embedding_metrics` (FID against
the train split, R-precision top-3, MM-Dist) and the share of contact prompts whose contacts
all occur; the same prompts' own test clips are scored alike, as the ceiling. Writes
``OUT/scaling.json``, ``OUT/scaling.md`` and ``OUT/scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

from handx_gen.errors import ConfigError, HandxError  # noqa: E402

STUDY_KEYS = ('sizes', 'fractions', 'train', 'masks', 'eval', 'model')


def read_study(path: Path) -> dict[str, Any]:
    """The study config, checked."""
    try:
        study = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f'cannot read the study config {path}: {exc}') from exc
    if not isinstance(study, dict):
        raise ConfigError(f'{path}: a study config is a mapping')
    unknown = sorted(set(study) - set(STUDY_KEYS))
    if unknown:
        raise ConfigError(f'{path}: unknown keys {unknown}; valid: {", ".join(STUDY_KEYS)}')
    sizes, fractions = study.get('sizes'), study.get('fractions')
    if not isinstance(sizes, dict) or not sizes:
        raise ConfigError(f'{path}: sizes must map names to model sections')
    if not isinstance(fractions, list) or not fractions or \
            not all(isinstance(f, (int, float)) and 0 < f <= 1 for f in fractions):
        raise ConfigError(f'{path}: fractions must be a list of numbers in (0, 1]')
    return study


def _mean(value: Any) -> float:
    """A metric's value: the mean of ``[mean, ci]``, the number itself, NaN for none."""
    if value is None:
        return float('nan')
    return float(value[0] if isinstance(value, list) else value)


def cell_name(size: str, fraction: float) -> str:
    return f'{size}-{round(100 * fraction):03d}pct'


def train_cell(study: dict[str, Any], size: str, fraction: float, corpus: Path, out: Path,
               progress: bool) -> dict[str, Any]:
    """Train one cell (resuming it when it was interrupted); returns its run facts."""
    out.mkdir(parents=True, exist_ok=True)
    run_config = {'model': {**(study.get('model') or {}), **study['sizes'][size]},
                  'train': dict(study.get('train') or {}),
                  'masks': study.get('masks') or {},
                  'data': {'fraction': float(fraction), 'seed': 0}}
    config_path = out / 'study_cell.yaml'
    config_path.write_text(yaml.safe_dump(run_config, sort_keys=False), encoding='utf-8')
    command = [sys.executable, str(ROOT / 'training' / 'train_diffusion.py'), '--config',
               str(config_path), '--corpus', str(corpus), '--out', str(out)]
    if not progress:
        command.append('--no-progress')
    if not (out / 'model.pt').is_file() or _step(out) < int(run_config['train'].get('steps', 0)):
        subprocess.run(command, check=True, cwd=ROOT)
    return {'config': run_config, 'step': _step(out)}


def _step(out: Path) -> int:
    import torch

    try:
        return int(torch.load(out / 'model.pt', map_location='cpu', weights_only=True)['step'])
    except (OSError, RuntimeError, KeyError, EOFError):
        return 0


def score_cell(model_path: Path, clips: list[Any], text_emb: Any, reference_emb: Any,
               evaluator: Any, settings: Any, eval_section: dict[str, Any],
               progress: bool) -> dict[str, Any]:
    """Generate one clip per prompt and score them."""
    import numpy as np

    from handx_gen.eval.evaluate import embedding_metrics, feature_metrics
    from handx_gen.generate import Generator

    generator = Generator(diffusion=model_path)
    loaded = generator.load('diffusion')
    params = sum(p.numel() for p in loaded.model.parameters())
    iterator: Any = enumerate(clips)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, total=len(clips), desc=f'generate {model_path.parent.name}',
                        unit='clip', leave=False)
    motions, seconds = [], []
    for i, clip in iterator:
        start = time.perf_counter()
        motions.append(generator.generate(clip.text, model='diffusion', seed=i,
                                          steps=eval_section.get('steps'),
                                          guidance=eval_section.get('guidance')))
        seconds.append(time.perf_counter() - start)
    embedding = embedding_metrics(evaluator.embed_motions(motions), text_emb, reference_emb,
                                  settings)
    contacts = feature_metrics(clips, motions)['contact_all_found']
    return {'params': int(params), 'fid': embedding['fid'], 'top3': embedding['top3'],
            'mm_dist': embedding['mm_dist'], 'contact_all_found': contacts,
            'seconds_per_clip': float(np.median(seconds))}


def plot(results: list[dict[str, Any]], truth: dict[str, Any], sizes: list[str],
         train_clips: int, path: Path) -> None:
    """FID, R-precision top-3 and contacts against training clips, one line per model
    size; the test clips themselves as a dashed line."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (('fid', 'FID vs train split (lower is better)'),
              ('top3', 'R-precision top-3 (higher is better)'),
              ('contact_all_found', 'prompts with all contacts (higher is better)'))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for size in sizes:
            cells = sorted((r for r in results if r['size'] == size), key=lambda r: r['fraction'])
            if not cells:
                continue
            x = [max(1, round(r['fraction'] * train_clips)) for r in cells]
            values = [r[key] for r in cells]
            mean = [_mean(v) for v in values]
            err = [v[1] if isinstance(v, list) else 0.0 for v in values]
            label = f'{size} ({cells[0]["params"] / 1e6:.2f} M params)'
            if any(math.isfinite(m) for m in mean):
                ax.errorbar(x, mean, yerr=err, marker='o', capsize=3, label=label)
        if math.isfinite(_mean(truth[key])):
            ax.axhline(_mean(truth[key]), color='0.4', linestyle='--', linewidth=1,
                       label='test clips (ground truth)')
        if ax.lines:
            ticks = sorted({max(1, round(r['fraction'] * train_clips)) for r in results})
            ax.set_xscale('log')
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
        else:  # e.g. R-precision with fewer prompts than one batch of 32
            ax.text(0.5, 0.5, 'not computed', ha='center', transform=ax.transAxes)
        ax.set_xlabel('training clips')
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle('Scaling: diffusion model size x training data (same step budget per cell)',
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: list[dict[str, Any]], truth: dict[str, Any], train_clips: int) -> str:
    def cell(v: Any, digits: int) -> str:
        if v is None:
            return '-'
        if isinstance(v, list):
            return f'{v[0]:.{digits}f}±{v[1]:.{digits}f}'
        return f'{v:.{digits}f}'

    lines = ['| size | params | data | clips | FID ↓ | R-prec top-3 ↑ | MM-Dist ↓ | '
             'all contacts ↑ | train min | s/clip |', '|' + '---|' * 10]
    for r in results:
        lines.append(f"| {r['size']} | {r['params'] / 1e6:.2f} M | {100 * r['fraction']:.0f}% "
                     f"| {round(r['fraction'] * train_clips)} | {cell(r['fid'], 3)} | "
                     f"{cell(r['top3'], 3)} | {cell(r['mm_dist'], 3)} | "
                     f"{cell(r['contact_all_found'], 2)} | {r['train_minutes']:.1f} | "
                     f"{r['seconds_per_clip']:.2f} |")
    lines.append(f"| ground truth | - | - | - | {cell(truth['fid'], 3)} | "
                 f"{cell(truth['top3'], 3)} | {cell(truth['mm_dist'], 3)} | "
                 f"{cell(truth['contact_all_found'], 2)} | - | - |")
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', type=Path, default=ROOT / 'training' / 'configs' /
                        'scaling.yaml', help='study config (default training/configs/'
                                             'scaling.yaml)')
    parser.add_argument('--corpus', type=Path, required=True, help='corpus folder')
    parser.add_argument('--out', type=Path, required=True, help='study folder')
    parser.add_argument('--evaluator', type=Path, help='evaluator checkpoint (default shipped)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except (HandxError, subprocess.CalledProcessError) as exc:
        print(f'scaling.py: error: {exc}', file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from handx_gen.eval.evaluate import (
        EvalSettings,
        embedding_metrics,
        feature_metrics,
        load_clips,
    )
    from handx_gen.eval.evaluator import Evaluator

    study = read_study(args.config)
    eval_section = dict(study.get('eval') or {})
    sizes = list(study['sizes'])
    fractions = [float(f) for f in study['fractions']]
    progress = not args.no_progress
    evaluator = Evaluator(args.evaluator)
    clips = load_clips(args.corpus, split=str(eval_section.get('split', 'test')),
                       limit=int(eval_section.get('clips', 128)))
    train = load_clips(args.corpus, split='train', granularity=None)
    text_emb = evaluator.embed_texts([c.text for c in clips])
    reference_emb = evaluator.embed_motions([c.motion for c in train])
    settings = EvalSettings(repeats=int(eval_section.get('repeats', 10)), mm_texts=0)
    truth_scores = embedding_metrics(evaluator.embed_motions([c.motion for c in clips]),
                                     text_emb, reference_emb, settings)
    truth = {'fid': truth_scores['fid'], 'top3': truth_scores['top3'],
             'mm_dist': truth_scores['mm_dist'],
             'contact_all_found': feature_metrics(clips, [c.motion for c in clips])[
                 'contact_all_found']}
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / 'scaling.json'
    done: dict[str, Any] = {}
    if results_path.is_file():
        saved = json.loads(results_path.read_text(encoding='utf-8'))
        done = {r['cell']: r for r in saved.get('results', [])}
    results = []
    for size in sizes:
        for fraction in fractions:
            name = cell_name(size, fraction)
            cell_dir = args.out / 'cells' / name
            steps = int((study.get('train') or {}).get('steps', 0))
            if name in done and done[name].get('step') == steps:
                results.append(done[name])
                continue
            started = time.perf_counter()
            facts = train_cell(study, size, fraction, args.corpus, cell_dir, progress)
            minutes = _train_minutes(cell_dir, (time.perf_counter() - started) / 60)
            scores = score_cell(cell_dir / 'model.pt', clips, text_emb, reference_emb,
                                evaluator, settings, eval_section, progress)
            result = {'cell': name, 'size': size, 'fraction': fraction, 'step': facts['step'],
                      'train_minutes': minutes, **scores}
            results.append(result)
            print(f"{name}: FID {_mean(result['fid']):.3f}, top-3 "
                  f"{_mean(result['top3']):.3f}, all contacts "
                  f"{_mean(result['contact_all_found']):.2f}, {minutes:.1f} min",
                  file=sys.stderr)
            _write(results_path, study, results, truth, len(train), len(clips))
    _write(results_path, study, results, truth, len(train), len(clips))
    (args.out / 'scaling.md').write_text(markdown(results, truth, len(train)), encoding='utf-8')
    plot(results, truth, sizes, len(train), args.out / 'scaling.png')
    print(markdown(results, truth, len(train)))
    print(f'wrote {args.out / "scaling.md"}, {args.out / "scaling.png"}, {results_path}',
          file=sys.stderr)
    return 0


def _train_minutes(cell_dir: Path, fallback: float) -> float:
    import torch

    try:
        saved = torch.load(cell_dir / 'model.pt', map_location='cpu', weights_only=True)
        return float(saved['train']['wall_s']) / 60
    except (OSError, RuntimeError, KeyError, EOFError, TypeError):
        return fallback


def _write(path: Path, study: dict[str, Any], results: list[dict[str, Any]],
           truth: dict[str, Any], train_clips: int, test_clips: int) -> None:
    path.write_text(json.dumps({'study': study, 'train_clips': train_clips,
                                'test_prompts': test_clips, 'ground_truth': truth,
                                'results': results}, indent=1), encoding='utf-8')


if __name__ == '__main__':
    sys.exit(main())
