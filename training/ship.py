"""Build the shipped generation models from nothing: corpus, tokenizer, AR model, diffusion model.

    make models                      # = .venv/bin/python training/ship.py
    python training/ship.py --size tiny --clips 200     # a quick trial run

1. The synthetic corpus: ``handx data synth --out data/corpus-s0 --clips 4000 --seed 0
   --config training/configs/corpus.yaml`` (skipped when that corpus is already there).
2. ``train_tokenizer.py`` and ``train_diffusion.py`` side by side, one CPU thread each (the
   models are small: two single-threaded runs use two cores better than one run on both);
   after the tokenizer, its bimanual decoder stage (``tokenizer_joint_<size>``, ``--init``,
   encoder frozen, two cosine cycles), then ``train_ar.py`` on it (the tokens are those of the
   plain tokenizer), beside the diffusion run's second cosine cycle (:data:`SECOND_CYCLE`)
   and its contact fine-tuning (``diffusion_contacts_<size>``, ``--init``, two cosine
   cycles); last, both models' users' register fine-tuning (``diffusion_request_<size>``,
   ``ar_request_<size>``, ``--init``: the corpus' request texts, how people phrase what they
   ask for). The fine-tuning stages run where their configs exist (``small``). Run folders
   under ``runs/``; an interrupted run resumes where it stopped when this is run again.
3. ``train_evaluator.py`` (the text-motion evaluator of ``handx eval``) on the same corpus
   once the others are done.
4. The usable weights (``model.pt``, EMA for the diffusion model) in float16 into
   ``handx_gen/weights/{diffusion,ar,evaluator}_<size>.pt`` (the AR file embeds its
   tokenizer), and ``handx_gen/weights/README.md`` with the corpus, the steps and the wall
   times.

``--evaluator-only`` trains (or resumes) and exports the evaluator alone.

With ``--device cuda`` the runs use the GPU (and all CPU threads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WEIGHTS = ROOT / 'handx_gen' / 'weights'
# Runs that, once finished at their config's steps, are resumed with this many steps in all:
# the cosine schedule then continues from the same fraction of the longer run (a warm restart
# at about half the peak learning rate, decaying to the minimum again). The shipped small
# models were trained so. Diffusion: on 120 validation prompts its contact agreement went from
# 42.5% at 4,000 steps to 52.5% at 8,000 (benchmarks/bench_contacts.py --split val --limit
# 120). Bimanual tokenizer stage: on 100 validation prompts the AR model's went from 59% at
# 2,000 steps to the figure in handx_gen/weights/README.md at 4,000. Contact fine-tuning of
# the diffusion model: see the figures of the README's contact table (3,000 and 6,000 steps).
SECOND_CYCLE = {('diffusion', 'small'): 8000, ('tokenizer_joint', 'small'): 4000,
                ('diffusion_contacts', 'small'): 6000}


def _run(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    print('+ ' + ' '.join(command), flush=True)
    return subprocess.Popen(command, env=env, cwd=ROOT)


def _chain(train: dict) -> list[dict]:
    """Training records of a model, first run first: fine-tuning runs record the checkpoint
    they started from (``train['init']``)."""
    records = [train]
    while isinstance(records[0].get('init'), dict):
        records.insert(0, {'step': records[0]['init']['step'], **records[0]['init']['train']})
    return records


def _second_cycle(train, script: str, name: str, size: str, *extra: str) -> None:
    """Resume the finished run ``name`` on the longer schedule of :data:`SECOND_CYCLE`."""
    if (name, size) in SECOND_CYCLE:
        _wait(train(script, name, *extra, '--steps', str(SECOND_CYCLE[name, size])))


def _has_config(name: str, size: str) -> bool:
    """Whether training/configs has the run config ``<name>_<size>``."""
    return (ROOT / 'training' / 'configs' / f'{name}_{size}.yaml').is_file()


def _wait(*processes: subprocess.Popen) -> None:
    codes = [p.wait() for p in processes]
    if any(codes):
        raise SystemExit(f'ship: a training run failed (exit codes {codes})')


EVALUATOR_HEADING = '## Evaluator'


def _evaluator_section() -> str:
    """The README's evaluator section as it is now (kept when the generators are exported)."""
    path = WEIGHTS / 'README.md'
    text = path.read_text(encoding='utf-8') if path.is_file() else ''
    return text[text.index(EVALUATOR_HEADING):] if EVALUATOR_HEADING in text else ''


def export_evaluator(runs: Path, size: str, command: str) -> list[Path]:
    """The evaluator run's weights in float16 into handx_gen/weights, and its README section."""
    import torch

    from handx_gen.eval.evaluator import EVALUATOR_FORMAT
    from handx_gen.models.checkpoints import half_precision, load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(runs / f'evaluator_{size}' / 'model.pt', EVALUATOR_FORMAT,
                                 'evaluator')
    out = save_checkpoint(half_precision(checkpoint), WEIGHTS / f'evaluator_{size}.pt')
    train, data = checkpoint['train'], checkpoint['data']['train']
    params = sum(v.numel() for v in checkpoint['model'].values()
                 if torch.is_tensor(v) and v.is_floating_point())
    section = '\n'.join([
        EVALUATOR_HEADING, '',
        f'`{out.name}` ({out.stat().st_size / 2**20:.1f} MiB, {params / 1e6:.2f} M parameters): '
        f'the contrastive text-motion evaluator of `handx eval`, built by `{command}`. '
        f'Trained {train["step"]:,} steps in {train["wall_s"] / 60:.1f} min '
        f'({train["world_size"]} x {train["device"]}) on the train split of the corpus of seed '
        f'{data["seed"]} ({data["clips"]} clips, every description of each), never on '
        f'generated motion; config `training/configs/evaluator_{size}.yaml`.', ''])
    path = WEIGHTS / 'README.md'
    text = path.read_text(encoding='utf-8') if path.is_file() else '# Shipped models\n'
    head = text.split(EVALUATOR_HEADING)[0].rstrip('\n')
    path.write_text(f'{head}\n\n{section}', encoding='utf-8')
    print(json.dumps([str(out), str(path)], indent=1))
    return [out, path]


def export(runs: Path, size: str, corpus: Path, command: str) -> list[Path]:
    """Half-precision copies of the runs' weights into handx_gen/weights, with a README."""
    import torch

    from handx_gen.models.ar import CHECKPOINT_FORMAT as AR_FORMAT
    from handx_gen.models.checkpoints import half_precision, load_checkpoint, save_checkpoint
    from handx_gen.models.diffusion import CHECKPOINT_FORMAT as DIFFUSION_FORMAT

    written = []
    rows = []
    for name, fmt in (('diffusion', DIFFUSION_FORMAT), ('ar', AR_FORMAT)):
        # the last stage that ran: the users' register fine-tuning, the contact fine-tuning
        # (diffusion), the model's own run
        stages = [f'{name}_request_{size}', *([f'diffusion_contacts_{size}']
                                              if name == 'diffusion' else []), f'{name}_{size}']
        run = next((runs / stage for stage in stages if (runs / stage / 'model.pt').is_file()),
                   runs / f'{name}_{size}')
        checkpoint = load_checkpoint(run / 'model.pt', fmt, name)
        out = WEIGHTS / f'{name}_{size}.pt'
        save_checkpoint(half_precision(checkpoint), out)
        written.append(out)
        rows.append((name, checkpoint, out))
        if name == 'ar':
            rows.append(('tokenizer (inside ar)', checkpoint['tokenizer'], out))
    data = rows[0][1]['data']['train']
    lines = [
        '# Shipped generation models',
        '',
        f'Built by `{command}` (training/ship.py): corpus, then the runs, then this folder.',
        '',
        f'Corpus: synthetic, seed {data["seed"]}, '
        f'{data["clips"]} train clips ({data["frames"]:,} frames at {data["fps"]:g} fps), '
        f'settings `training/configs/corpus.yaml` (one motion type per clip, 3-4 s, held to '
        f'{data["num_frames"]} frames); validation and test splits held out by composition.',
        '',
        '| model | steps | wall time | processes x device | parameters | file |',
        '|---|---|---|---|---|---|',
    ]
    for name, checkpoint, out in rows:
        train = checkpoint['train']
        chain = _chain(train)
        params = sum(v.numel() for v in checkpoint['model'].values()
                     if torch.is_tensor(v) and v.is_floating_point())
        steps = ' + '.join(f'{t["step"]:,}' for t in chain)
        wall = ' + '.join(f'{t["wall_s"] / 60:.1f}' for t in chain)
        lines.append(f'| {name} | {steps} | {wall} min | '
                     f'{train["world_size"]} x {train["device"]} | {params / 1e6:.2f} M | '
                     f'`{out.name}` ({out.stat().st_size / 2**20:.1f} MiB) |')
    fine_tuned = len(_chain(rows[0][1]['train'])) > 1
    for (name, cycle_size), steps in SECOND_CYCLE.items():
        if cycle_size != size or (name == 'diffusion_contacts' and not fine_tuned):
            continue
        if name == 'diffusion_contacts':
            lines += ['', f'The diffusion model was then fine-tuned from the weights of '
                      f'diffusion_{size} (`--init`): `diffusion_contacts_{size}.yaml`, with a '
                      'heavier contact-consistency loss and more text-only masks.']
        lines += ['', f"The {name}_{size} run went to its config's steps, then was "
                  f'resumed to {steps:,} steps in all (a second cosine cycle; '
                  '`SECOND_CYCLE` in training/ship.py).']
    if any((runs / f'{n}_request_{size}' / 'model.pt').is_file() for n in ('diffusion', 'ar')):
        lines += ['', "Both models were then fine-tuned on the same corpus with its users' "
                  f'register texts (`diffusion_request_{size}.yaml`, `ar_request_{size}.yaml`, '
                  '`--init`): a short cycle at a low learning rate, so the text side learns '
                  'how people phrase requests.']
    if len(_chain(rows[-1][1]['train'])) > 1:
        lines += ['', f'The tokenizer got a bimanual decoder stage after its own run '
                  f'(`tokenizer_joint_{size}.yaml`, `--init`): its encoder frozen, so the '
                  'tokens, and the AR model trained on them, are unchanged; the decoder sees '
                  'both hands and places them relative to each other.']
    lines += ['', 'Steps and wall times of a fine-tuned model: its first run + the runs that '
              'continued it.', '',
              'Weights are stored in float16 (loaded as float32); the diffusion weights '
              'are the exponential moving average.', '',
              'Training configs: `training/configs/{diffusion,tokenizer,ar}_' + size + '.yaml`'
              + (f', `diffusion_contacts_{size}.yaml`, `tokenizer_joint_{size}.yaml`'
                 if _has_config('tokenizer_joint', size) else '')
              + (f', `diffusion_request_{size}.yaml`, `ar_request_{size}.yaml`'
                 if _has_config('ar_request', size) else '')
              + '; logs were in `runs/*/log.jsonl`.', '']
    evaluator = _evaluator_section()
    if evaluator:
        lines += [evaluator.rstrip('\n'), '']
    (WEIGHTS / 'README.md').write_text('\n'.join(lines), encoding='utf-8')
    written.append(WEIGHTS / 'README.md')
    print(json.dumps([str(p) for p in written], indent=1))
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='small', choices=['tiny', 'small', 'base'])
    parser.add_argument('--clips', type=int, default=4000, help='corpus clips (default 4000)')
    parser.add_argument('--seed', type=int, default=0, help='corpus seed (default 0)')
    parser.add_argument('--corpus', type=Path, help='corpus folder (default data/corpus-s<seed>)')
    parser.add_argument('--runs', type=Path, default=ROOT / 'runs', help='run folders')
    parser.add_argument('--device', help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--export-only', action='store_true',
                        help='only copy finished runs into handx_gen/weights')
    parser.add_argument('--evaluator-only', action='store_true',
                        help='only train (or resume) and export the evaluator')
    args = parser.parse_args()
    corpus = args.corpus or ROOT / 'data' / f'corpus-s{args.seed}'
    command = 'make models' if (args.size, args.clips, args.seed) == ('small', 4000, 0) else \
        f'python training/ship.py --size {args.size} --clips {args.clips} --seed {args.seed}'
    if args.evaluator_only:
        command = 'python training/ship.py --evaluator-only' if command == 'make models' \
            else f'{command} --evaluator-only'
    if args.export_only:
        export(args.runs, args.size, corpus, command)
        export_evaluator(args.runs, args.size, command)
        return 0
    python = sys.executable
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    started = time.perf_counter()
    if not (corpus / 'index.json').is_file():
        _wait(_run([python, '-m', 'handx_ros.cli', 'data', 'synth', '--out', str(corpus),
                    '--clips', str(args.clips), '--seed', str(args.seed), '--config',
                    str(ROOT / 'training' / 'configs' / 'corpus.yaml')], env))
    single = {**env, 'OMP_NUM_THREADS': '1'} if args.device in (None, 'cpu') else env
    device = ['--device', args.device] if args.device else []

    def train(script: str, name: str, *extra: str) -> subprocess.Popen:
        return _run([python, str(ROOT / 'training' / script), '--config',
                     f'{name}_{args.size}', '--corpus', str(corpus), '--out',
                     str(args.runs / f'{name}_{args.size}'), *device, *extra], single)

    if args.evaluator_only:
        _wait(train('train_evaluator.py', 'evaluator'))
        export_evaluator(args.runs, args.size, command)
        return 0
    # one progress bar (the diffusion run, the longest); the others log to their folders
    tokenizer = train('train_tokenizer.py', 'tokenizer', '--no-progress')
    diffusion = train('train_diffusion.py', 'diffusion')
    _wait(tokenizer)
    tokens_from = args.runs / f'tokenizer_{args.size}' / 'model.pt'
    if _has_config('tokenizer_joint', args.size):  # the bimanual decoder stage, same tokens
        _wait(train('train_tokenizer.py', 'tokenizer_joint', '--no-progress', '--init',
                    str(tokens_from)))
        _second_cycle(train, 'train_tokenizer.py', 'tokenizer_joint', args.size,
                      '--no-progress')
        tokens_from = args.runs / f'tokenizer_joint_{args.size}' / 'model.pt'
    ar = train('train_ar.py', 'ar', '--no-progress', '--tokenizer', str(tokens_from))
    _wait(diffusion)
    _second_cycle(train, 'train_diffusion.py', 'diffusion', args.size)
    if _has_config('diffusion_contacts', args.size):  # third cycle: contact fine-tuning
        _wait(train('train_diffusion.py', 'diffusion_contacts', '--init',
                    str(args.runs / f'diffusion_{args.size}' / 'model.pt')))
        _second_cycle(train, 'train_diffusion.py', 'diffusion_contacts', args.size)
    if _has_config('diffusion_request', args.size):  # the users' register fine-tuning
        last = 'diffusion_contacts' if _has_config('diffusion_contacts', args.size) \
            else 'diffusion'
        diffusion = train('train_diffusion.py', 'diffusion_request', '--init',
                          str(args.runs / f'{last}_{args.size}' / 'model.pt'))
    _wait(ar)
    if _has_config('ar_request', args.size):
        ar_file = str(args.runs / f'ar_{args.size}' / 'model.pt')
        _wait(train('train_ar.py', 'ar_request', '--no-progress', '--init', ar_file,
                    '--tokenizer', ar_file))
    _wait(diffusion)
    export(args.runs, args.size, corpus, command)
    _wait(train('train_evaluator.py', 'evaluator', '--no-progress'))
    export_evaluator(args.runs, args.size, command)
    print(f'ship: done in {(time.perf_counter() - started) / 60:.1f} min', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
