"""Generation speed on this CPU: a bimanual clip from text, diffusion and AR models.

Times the models of ``handx_gen.models`` at a preset size (default ``small``) through their
public API: the diffusion model's DDIM sampling at its default step count with classifier-free
guidance, and the AR model's token generation (KV cache, top-k/top-p, guidance) plus the FSQ
tokenizer's decoding. The text features come from the real frozen MiniLM encoder, encoded
once before timing (the encoder is timed separately, per prompt, cached and uncached).
Weights are random: speed does not depend on training. One warm-up run first, then
``--repeats`` timed runs; p50/p95/max in milliseconds; JSON with ``--save``.

With ``--shipped`` it times the shipped checkpoints end to end instead, through
:class:`handx_gen.Generator` (prompt in, decoded :class:`BimanualMotion` with forward-kinematics
keypoints out), a new seed per run.

Run::

    .venv/bin/python benchmarks/bench_generation_speed.py --seconds 4 --save generation_speed.json
    .venv/bin/python benchmarks/bench_generation_speed.py --shipped --save generation_shipped.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import machine, save_report  # noqa: E402

from handx_gen.models import (  # noqa: E402
    ARConfig,
    DiffusionConfig,
    FSQConfig,
    GaussianDiffusion,
    HandTokenGPT,
    HandTokenizer,
    TextEncoder,
    TextEncoderConfig,
)

PROMPT = 'both hands clap twice in front of the chest'


def _timed(run, repeats: int) -> dict:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return {'p50_ms': float(np.median(ms)), 'p95_ms': float(np.percentile(ms, 95)),
            'max_ms': float(ms.max()), 'repeats': repeats}


def run_shipped(args: argparse.Namespace) -> dict:
    from handx_gen.generate import Generator

    torch.set_num_threads(args.threads)
    generator = Generator()
    results = {}
    for model in ('diffusion', 'ar'):
        seeds = iter(range(1000))
        results[model] = _timed(lambda m=model, s=seeds: generator.generate(
            PROMPT, model=m, seconds=args.seconds, seed=next(s)), args.repeats)
        loaded = generator.load(model)
        results[model]['checkpoint'] = str(loaded.path)
        r = results[model]
        print(f'{model:10s} {args.seconds:g} s clip, shipped, end to end: p50 '
              f'{r["p50_ms"]:.0f} ms, p95 {r["p95_ms"]:.0f} ms', flush=True)
    return {'benchmark': 'generation_speed_shipped', 'seconds': args.seconds,
            'threads': args.threads, 'machine': machine(), 'results': results}


def run(args: argparse.Namespace) -> dict:
    if args.shipped:
        return run_shipped(args)
    torch.set_num_threads(args.threads)
    frames = int(round(args.seconds * args.fps))
    frames -= frames % 4  # the tokenizer downsamples by 4
    encoder = TextEncoder(TextEncoderConfig())
    text = encoder.encode([PROMPT])
    results = {'text_encoder_cached': _timed(lambda: encoder.encode([PROMPT]), args.repeats)}
    prompts = iter(f'{PROMPT} ({i})' for i in range(10 * args.repeats + 10))
    results['text_encoder_uncached'] = _timed(lambda: encoder.encode([next(prompts)]),
                                              args.repeats)

    torch.manual_seed(0)
    diffusion = GaussianDiffusion(DiffusionConfig.preset(args.size)).eval()
    generator = torch.Generator().manual_seed(0)
    results['diffusion'] = _timed(
        lambda: diffusion.sample(text, frames, generator=generator), args.repeats)
    results['diffusion']['steps'] = diffusion.config.sample_steps

    tokenizer = HandTokenizer(FSQConfig.preset(args.size)).eval()
    gpt = HandTokenGPT(ARConfig.preset(args.size)).eval()
    steps = frames // tokenizer.config.downsample

    def ar_clip() -> None:
        with torch.no_grad():
            tokens = gpt.generate(text, steps, top_k=50, top_p=0.95, generator=generator)
            tokenizer.decode(tokens)

    results['ar'] = _timed(ar_clip, args.repeats)
    results['ar']['tokens'] = 2 * steps
    for name in ('diffusion', 'ar'):
        r = results[name]
        print(f'{name:10s} {args.seconds:g} s clip ({frames} frames): p50 {r["p50_ms"]:.0f} ms, '
              f'p95 {r["p95_ms"]:.0f} ms', flush=True)
    for name in ('text_encoder_cached', 'text_encoder_uncached'):
        print(f'{name:22s} p50 {results[name]["p50_ms"]:.2f} ms')
    return {'benchmark': 'generation_speed', 'size': args.size, 'seconds': args.seconds,
            'frames': frames, 'threads': args.threads, 'machine': machine(),
            'results': results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', default='small', choices=['tiny', 'small', 'base'])
    parser.add_argument('--seconds', type=float, default=4.0, help='clip length (default 4)')
    parser.add_argument('--fps', type=float, default=30.0)
    parser.add_argument('--threads', type=int, default=os.cpu_count() or 1,
                        help='torch threads (default: all cores)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs (default 5)')
    parser.add_argument('--shipped', action='store_true',
                        help='time the shipped checkpoints through handx_gen.Generator')
    parser.add_argument('--save', default=None, help='write the results as JSON here')
    args = parser.parse_args(argv)
    save_report(run(args), args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
