"""What one ``handx generate`` call costs beyond the model's own sampling.

Two measurements, each in fresh processes (a CLI call pays every import and load once):

* **Wall time** of ``python -m handx_ros.cli generate PROMPT --model M --out FILE``, per
  model, ``--repeats`` calls, p50 and max.
* **Phases**, timed inside one process doing what the command does, in its order: the
  ``handx`` parser (every subcommand registered), ``import torch``, the
  generation library, the checkpoint, the text encoder (and the prompt's features), the
  model's sampling and decoding (``generate`` with everything loaded: the model's own time),
  writing the file, and what is left of the process's time (Python's start and exit). The
  overhead is the wall time less the model's own time. With ``--transformers`` it also times
  loading the same MiniLM through ``transformers`` (what the text encoder did before it ran in
  plain torch), in processes of its own, for comparison.

Run::

    .venv/bin/python benchmarks/bench_generate_cli.py --repeats 5 --save generate_cli.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, save_report

ROOT = Path(__file__).resolve().parents[1]
PROMPT = 'Both hands clap twice.'

PHASES = r"""
import sys, time
start = time.perf_counter()
marks = {}
def mark(name):
    marks[name] = time.perf_counter()
import handx_ros.cli
handx_ros.cli.build_parser()
mark('parser')
import torch
torch.set_num_threads(THREADS)
mark('import torch')
from handx_gen.generate import Generator
mark('import generation library')
generator = Generator()
loaded = generator.load(MODEL)
mark('checkpoint load')
generator._encoder(loaded).encode([PROMPT])
mark('text encoder load and prompt')
clip = generator.generate(PROMPT, model=MODEL, seed=0)
mark('model: sampling and decoding')
clip.save(OUT)
mark('write file')
last, out = start, {}
for name, value in marks.items():
    out[name], last = value - last, value
print(json.dumps(out))
import gc
gc.freeze()  # as the handx command does before its process ends
"""


REFERENCE = r"""
import time
import torch
torch.set_num_threads(THREADS)
from handx_gen.models.text_encoder import bundled_minilm_path
start = time.perf_counter()
import transformers
path = bundled_minilm_path()
transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
transformers.AutoModel.from_pretrained(path, local_files_only=True)
print(time.perf_counter() - start)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS=os.environ.get(
        'OMP_NUM_THREADS', '1'))
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), env.get('PYTHONPATH')]))
    return env


def wall(model: str, repeats: int, out: Path) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, '-m', 'handx_ros.cli', 'generate', PROMPT, '--model',
                        model, '--out', str(out)], check=True, capture_output=True,
                       env=_env(), cwd=ROOT)
        times.append(time.perf_counter() - start)
    return {'p50_s': float(np.median(times)), 'max_s': float(np.max(times)),
            'repeats': repeats}


def phases(model: str, out: Path, threads: int) -> dict:
    code = (f'import json\nMODEL = {model!r}\nPROMPT = {PROMPT!r}\nOUT = {str(out)!r}\n'
            f'THREADS = {threads}\n' + PHASES)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                            text=True, env=_env(), cwd=ROOT)
    total = time.perf_counter() - start
    timed = json.loads(result.stdout.strip().splitlines()[-1])
    timed['python start and exit'] = total - sum(timed.values())
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', default='ar,diffusion')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--transformers', action='store_true',
                        help='also time the MiniLM through transformers, for comparison')
    parser.add_argument('--save', help='write the report as JSON')
    args = parser.parse_args()
    report: dict = {'prompt': PROMPT, 'models': {}}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / 'clip.npz'
        for model in args.models.split(','):
            runs = [phases(model, out, args.threads) for _ in range(args.repeats)]
            median = {name: float(np.median([r[name] for r in runs])) for name in runs[0]}
            entry = {'phases_p50_s': median, 'wall': wall(model, args.repeats, out)}
            entry['overhead_p50_s'] = entry['wall']['p50_s'] \
                - median['model: sampling and decoding']
            report['models'][model] = entry
            print(f'{model}: wall p50 {entry["wall"]["p50_s"]:.2f} s (max '
                  f'{entry["wall"]["max_s"]:.2f}), overhead beyond the model '
                  f'{entry["overhead_p50_s"]:.2f} s')
            for name, value in median.items():
                print(f'  {name:48s} {value:6.3f} s')
    if args.transformers:
        times = [float(subprocess.run(
            [sys.executable, '-c', f'THREADS = {args.threads}\n' + REFERENCE], check=True,
            capture_output=True, text=True, env=_env(), cwd=ROOT).stdout.split()[-1])
            for _ in range(args.repeats)]
        report['transformers_minilm_load_p50_s'] = float(np.median(times))
        print(f'for comparison, the MiniLM through transformers (import, tokenizer, model): '
              f'{np.median(times):.2f} s p50')
    report['machine'] = machine()
    save_report(report, args.save)


if __name__ == '__main__':
    main()
