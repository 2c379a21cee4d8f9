"""``handx generate``: bimanual motion from text, or from text and a given motion.

    handx generate "Both hands clap twice." --seconds 4 --seed 0 --out clap.npz
    handx generate "The left hand waves back." --mode reaction --given right.npz --side right \
        --model ar --out reaction.npz
    handx generate --prompts prompts.txt --out clips/          # one clip per line

Writes ``handx-motion/1`` files (:class:`~handx_gen.motion.container.BimanualMotion`), the
prompt as the clip's text and the request in its annotation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from handx_gen.errors import ConfigError, ModelError

__all__ = ['register']


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``handx generate`` to the ``handx`` parser."""
    from handx_gen.models.masking import MaskMode

    parser = subparsers.add_parser(
        'generate', help='generate bimanual hand motion from text (and a given motion)',
        description='Generate a bimanual clip with the diffusion or the autoregressive model. '
                    'Modes other than text condition on --given: reaction (one hand given, '
                    '--side), inbetween (first and last --k frames), keyframes (--keyframes), '
                    'trajectory (wrist paths; diffusion only, like keyframes).')
    parser.add_argument('text', nargs='?', help='the prompt (or --prompts FILE)')
    parser.add_argument('--prompts', type=Path,
                        help='file with one prompt per line (blank lines and #-comments '
                             'skipped); --out is then a folder of NNN.npz files')
    parser.add_argument('--model', default='diffusion', choices=['diffusion', 'ar'],
                        help='generation model (default diffusion)')
    parser.add_argument('--mode', default='text', choices=[m.value for m in MaskMode],
                        help='what is given (default text: nothing)')
    parser.add_argument('--given', type=Path, help='given motion (handx-motion/1 .npz)')
    parser.add_argument('--side', help='reaction: the given hand; trajectory: the hand whose '
                                       'wrist path is given (default both)')
    parser.add_argument('--k', type=int, help='inbetween: frames given at each end')
    parser.add_argument('--keyframes', help='keyframes: comma-separated frame indices')
    parser.add_argument('--with-orient', action='store_true',
                        help='trajectory: also give the wrist orientations')
    parser.add_argument('--seconds', type=float,
                        help='clip length for text mode (default: the model maximum, 4 s)')
    parser.add_argument('--seed', type=int, default=0, help='sampling seed (default 0)')
    parser.add_argument('--guidance', type=float, help="guidance scale (default: the model's)")
    parser.add_argument('--steps', type=int, help="diffusion DDIM steps (default: the model's)")
    parser.add_argument('--temperature', type=float, default=1.0,
                        help='AR sampling temperature (default 1; 0 = greedy)')
    parser.add_argument('--top-k', type=int, help='AR top-k sampling')
    parser.add_argument('--top-p', type=float, help='AR nucleus sampling')
    parser.add_argument('--checkpoint', type=Path,
                        help='checkpoint of --model (default: the shipped small one)')
    parser.add_argument('--device', default='cpu', help='torch device (default cpu)')
    parser.add_argument('--out', type=Path, required=True,
                        help='output .npz (or folder with --prompts)')
    parser.add_argument('--json', action='store_true', help='print a JSON summary')
    parser.set_defaults(func=_generate)


def read_prompts(path: Path) -> list[str]:
    """Prompts of a file: one per line, blank lines and lines starting with ``#`` skipped.

    Raises:
        ModelError: Unreadable file or no prompts.
    """
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f'{path}: cannot read prompts ({exc})') from exc
    prompts = [line.strip() for line in lines if line.strip() and
               not line.lstrip().startswith('#')]
    if not prompts:
        raise ModelError(f'{path}: no prompts (one per line)')
    return prompts


def _frames(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise ConfigError(f'--keyframes must be comma-separated integers, got {text!r}') \
            from None


def _generate(args: argparse.Namespace) -> int:
    from handx_gen.generate import Generator
    from handx_gen.motion.container import BimanualMotion

    if (args.text is None) == (args.prompts is None):
        raise ModelError('give either a prompt or --prompts FILE')
    prompts = read_prompts(args.prompts) if args.prompts is not None else [args.text]
    given = BimanualMotion.load(args.given) if args.given is not None else None
    checkpoints = {args.model: args.checkpoint} if args.checkpoint is not None else {}
    generator = Generator(device=args.device, **checkpoints)
    options: dict[str, Any] = dict(
        model=args.model, mode=args.mode, given=given, seconds=args.seconds, side=args.side,
        k=args.k, frames=_frames(args.keyframes), include_orient=args.with_orient,
        guidance=args.guidance, steps=args.steps, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p)
    if args.prompts is not None:
        if args.out.exists() and not args.out.is_dir():
            raise ModelError(f'--out {args.out} must be a folder with --prompts')
        outputs = [args.out / f'{i:03d}.npz' for i in range(len(prompts))]
    else:
        outputs = [args.out]
    progress = None
    if len(prompts) > 1 and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=len(prompts), desc='generating', unit='clip')
    summary = []
    for index, (prompt, out) in enumerate(zip(prompts, outputs, strict=True)):
        try:
            clip = generator.generate(prompt, seed=args.seed + index, **options)
        except ModelError as exc:
            if len(prompts) > 1:
                raise ModelError(f'prompt {index + 1} ({prompt[:60]!r}): {exc}') from None
            raise
        clip.save(out)
        summary.append({'prompt': prompt, 'out': str(out), 'frames': clip.num_frames,
                        'seed': args.seed + index})
        if progress is not None:
            progress.update(1)
        elif not args.json:
            print(f'wrote {out} ({clip.num_frames} frames, {clip.duration_s:.2f} s)')
    if progress is not None:
        progress.close()
    if args.json:
        print(json.dumps({'model': args.model, 'mode': args.mode, 'clips': summary}, indent=1))
    elif progress is not None:
        print(f'wrote {len(summary)} clips to {args.out}')
    return 0
