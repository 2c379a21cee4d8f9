"""``handx generate``: bimanual motion from text, or from text and a given motion.

    handx generate "Both hands clap twice." --seconds 4 --seed 0 --out clap.npz
    handx generate "The left hand waves back." --mode reaction --given right.npz --side right \
        --model ar --out reaction.npz
    handx generate --prompts prompts.txt --out clips/          # one clip per line
    handx generate "The left hand mirrors the right hand." --mode reaction --side right \
        --given take.npz --start 2.5 --end 20 --out reaction.npz   # part of a long take

A given motion may be of any length: what is longer than the model makes at once (4 s) is
made in overlapping windows (:mod:`handx_gen.windows`), with a progress bar on stderr.

Writes ``handx-motion/1`` files (:class:`~handx_gen.motion.container.BimanualMotion`), the
prompt as the clip's text and the request in its annotation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from handx_gen.errors import ConfigError, ModelError

__all__ = ['DEFAULT_MAX_PROMPTS', 'read_prompts', 'register']

DEFAULT_MAX_PROMPTS = 1000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``handx generate`` to the ``handx`` parser."""
    from handx_gen.models.mask_mode import MaskMode

    parser = subparsers.add_parser(
        'generate', help='generate bimanual hand motion from text (and a given motion)',
        description='Generate a bimanual clip with the diffusion or the autoregressive model. '
                    'Modes other than text condition on --given: reaction (one hand given, '
                    '--side), inbetween (first and last --k frames), keyframes (--keyframes), '
                    'trajectory (wrist paths; diffusion only, like keyframes).')
    parser.add_argument('text', nargs='?', help='the prompt (or --prompts FILE)')
    parser.add_argument('--prompts', type=Path,
                        help='file with one prompt per line (blank lines and #-comments '
                             'skipped); --out is then a folder of NNN.npz files. Every line '
                             'is checked before the first clip is made')
    parser.add_argument('--max-prompts', type=int, default=DEFAULT_MAX_PROMPTS,
                        help=f'most prompts --prompts may hold (default '
                             f'{DEFAULT_MAX_PROMPTS})')
    parser.add_argument('--model', default='diffusion', choices=['diffusion', 'ar'],
                        help='generation model (default diffusion)')
    parser.add_argument('--mode', default='text', choices=[m.value for m in MaskMode],
                        help='what is given (default text: nothing)')
    parser.add_argument('--given', type=Path,
                        help='the given motion (required by every mode but text), of any '
                             'length: a handx-motion/1 file or any source file `handx data '
                             'inspect` reads, its kind detected')
    parser.add_argument('--start', type=float, metavar='S',
                        help='use --given from this time, seconds (default: its start)')
    parser.add_argument('--end', type=float, metavar='S',
                        help='use --given up to this time, excluded, seconds (default: its '
                             'end)')
    parser.add_argument('--side', metavar='left|right',
                        help='reaction: the given hand (required); trajectory: the hand whose '
                             'wrist path is given (default: both hands); no other mode takes '
                             'it')
    parser.add_argument('--k', type=int, help='inbetween: frames given at each end (required)')
    parser.add_argument('--keyframes',
                        help='keyframes: comma-separated frame indices (required)')
    parser.add_argument('--with-orient', action='store_true',
                        help='trajectory: also give the wrist orientations')
    parser.add_argument('--seconds', type=float,
                        help='clip length in text mode (default: the longest the model makes '
                             'at once, 4 s for the shipped models; longer clips are made in '
                             'overlapping windows); other modes take the length of --given')
    parser.add_argument('--seed', type=int, default=0, help='sampling seed (default 0)')
    parser.add_argument('--guidance', type=float, help="guidance scale (default: the model's)")
    parser.add_argument('--steps', type=int, help="diffusion DDIM steps (default: the model's)")
    parser.add_argument('--temperature', type=float, default=1.0,
                        help='AR sampling temperature (default 1; 0 = greedy)')
    parser.add_argument('--top-k', type=int, help='AR top-k sampling')
    parser.add_argument('--top-p', type=float, help='AR nucleus sampling')
    parser.add_argument('--no-smoothing', action='store_true',
                        help="the models' raw output: no temporal smoothing of the generated "
                             'parts (default: smoothed, generated wrists within 1 cm per frame, '
                             'given parts exact)')
    parser.add_argument('--no-contact-guidance', action='store_true',
                        help='leave the clip as sampled: do not make the contacts between the '
                             'hands that the prompt names where the clip comes within reach of '
                             'them (default: made, by moving the generated wrists)')
    parser.add_argument('--no-separation', action='store_true',
                        help='leave the hands overlapping where the model put one into the other '
                             '(default: moved apart to a touch, by moving the generated wrists)')
    parser.add_argument('--checkpoint', type=Path,
                        help='checkpoint of --model (default: the shipped small one)')
    parser.add_argument('--text-encoder', type=Path, metavar='DIR',
                        help='text encoder folder to use instead of the one a checkpoint '
                             'names (a checkpoint may name only the installed MiniLM)')
    parser.add_argument('--device', default='cpu', help='torch device (default cpu)')
    parser.add_argument('--out', type=Path, required=True,
                        help='output .npz (or folder with --prompts)')
    parser.add_argument('--json', action='store_true', help='print a JSON summary')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar (shown on stderr when it is a terminal and there '
                             'is more than one clip or window)')
    parser.set_defaults(func=_generate)


def read_prompts(path: Path, max_prompts: int = DEFAULT_MAX_PROMPTS,
                 max_chars: int | None = None) -> list[str]:
    """Prompts of a file: one per line, blank lines and lines starting with ``#`` skipped.

    The file is read a line at a time and no further than needed: at most ``max_prompts``
    prompts of at most ``max_chars`` characters, so a huge file fails fast.

    Args:
        path: The file (UTF-8).
        max_prompts: Most prompts accepted.
        max_chars: Longest prompt accepted (default the text encoder's default limit).

    Raises:
        ModelError: Unreadable or non-UTF-8 file, no prompts, more than ``max_prompts``, or a
            line that is too long or holds no letter or digit (named by its line number).
    """
    from handx_gen.models.text_encoder import DEFAULT_MAX_CHARS

    if isinstance(max_prompts, bool) or not isinstance(max_prompts, int) or max_prompts < 1:
        raise ConfigError(f'--max-prompts must be an integer >= 1, got {max_prompts!r}')
    max_chars = DEFAULT_MAX_CHARS if max_chars is None else max_chars
    prompts = []
    try:
        with path.open(encoding='utf-8') as stream:
            for number in itertools.count(1):
                line = stream.readline(max_chars + 2)  # + 2: the newline, and one over
                if not line:
                    break
                if not line.endswith('\n') and len(line) > max_chars:
                    raise ModelError(f'{path}: line {number} is longer than {max_chars} '
                                     f'characters (the prompt limit)')
                text = line.strip()
                if not text or text.startswith('#'):
                    continue
                if len(text) > max_chars:
                    raise ModelError(f'{path}: line {number} is {len(text)} characters long; '
                                     f'the prompt limit is {max_chars}')
                if not any(ch.isalnum() for ch in text):
                    raise ModelError(f'{path}: line {number} holds no prompt text '
                                     f'({text[:40]!r}); a prompt needs letters or digits')
                if len(prompts) == max_prompts:
                    raise ModelError(f'{path}: more than {max_prompts} prompts (line '
                                     f'{number}); raise --max-prompts or split the file')
                prompts.append(text)
    except UnicodeDecodeError as exc:
        raise ModelError(f'{path}: cannot read prompts: not UTF-8 text (byte {exc.start} of '
                         f'a line)') from exc
    except OSError as exc:
        raise ModelError(f'{path}: cannot read prompts ({exc.strerror or exc})') from exc
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


# What each mode needs, as the help says: (option, its Namespace name, what it gives).
_REQUIRED = {
    'reaction': [('--given', 'given', 'the given motion'), ('--side', 'side', 'the given hand')],
    'inbetween': [('--given', 'given', 'the given motion'),
                  ('--k', 'k', 'the frames given at each end')],
    'keyframes': [('--given', 'given', 'the given motion'),
                  ('--keyframes', 'keyframes', 'the given frame indices')],
    'trajectory': [('--given', 'given', 'the given motion')],
}


def _check_mode_options(args: argparse.Namespace) -> None:
    """Refuse a mode without an option it needs, before any model is loaded."""
    for option, name, meaning in _REQUIRED.get(args.mode, []):
        if getattr(args, name) is None:
            raise ModelError(f'--mode {args.mode} needs {option} ({meaning})')
    if args.given is None:
        for option in ('--start', '--end'):
            if getattr(args, option[2:]) is not None:
                raise ModelError(f'{option} takes part of --given; there is no --given (the '
                                 f'modes but text take one)')


def _read_given(args: argparse.Namespace) -> tuple[Any, dict[str, Any] | None]:
    """The given motion of ``--given``, cut to ``--start``/``--end``, and what was taken."""
    from handx_gen.data.cli import frame_interval
    from handx_gen.data.sources import read_source

    if args.given is None:
        return None, None
    given = read_source(args.given)
    if args.start is None and args.end is None:
        return given, None
    start, stop = frame_interval(given.fps, given.num_frames, args.start, args.end)
    taken = {'path': str(args.given), 'frames': [start, stop], 'of': given.num_frames}
    return given.segment(start, stop), taken


def _generate(args: argparse.Namespace) -> int:
    from handx_gen.generate import Generator, check_given_hands
    from handx_gen.models.text_encoder import DEFAULT_MAX_CHARS, validate_prompt
    from handx_gen.outputs import check_outputs

    if (args.text is None) == (args.prompts is None):
        raise ModelError('give either a prompt or --prompts FILE')
    _check_mode_options(args)
    prompts = (read_prompts(args.prompts, args.max_prompts) if args.prompts is not None
               else [args.text])
    if args.prompts is not None:
        if args.out.exists() and not args.out.is_dir():
            raise ModelError(f'--out {args.out} must be a folder with --prompts')
        outputs = [args.out / f'{i:03d}.npz' for i in range(len(prompts))]
    else:
        outputs = [args.out]
    check_outputs([('--out', out) for out in outputs],
                  [('--given', args.given), ('--prompts', args.prompts),
                   ('--checkpoint', args.checkpoint)])
    given, taken = _read_given(args)
    if given is not None:  # a hand absent from --given cannot be kept as given: say so now
        check_given_hands(given, args.mode, args.side)
    checkpoints = {args.model: args.checkpoint} if args.checkpoint is not None else {}
    generator = Generator(device=args.device, text_encoder=args.text_encoder, **checkpoints)
    # every prompt is checked against the model's limit before the first clip is made
    loaded = generator.load(args.model)
    encoder_config = loaded.text_encoder.get('config') or {}
    max_chars = encoder_config.get('max_chars', DEFAULT_MAX_CHARS)
    for index, prompt in enumerate(prompts):
        try:
            validate_prompt(prompt, max_chars)
        except ModelError as exc:
            where = f'prompt {index + 1}' if args.prompts is not None else 'the prompt'
            raise ModelError(f'{where}: {exc}') from None
    options: dict[str, Any] = dict(
        model=args.model, mode=args.mode, given=given, seconds=args.seconds, side=args.side,
        k=args.k, frames=_frames(args.keyframes), include_orient=args.with_orient,
        guidance=args.guidance, steps=args.steps, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, smoothing=not args.no_smoothing,
        contacts=not args.no_contact_guidance, separation=not args.no_separation)
    windows = len(generator.plan(args.model, mode=args.mode, given=given,
                                 seconds=args.seconds))
    progress = None
    if windows * len(prompts) > 1 and sys.stderr.isatty() and not args.no_progress:
        from tqdm import tqdm

        progress = tqdm(total=windows * len(prompts), desc='generating',
                        unit='window' if windows > 1 else 'clip')
    summary = []
    for index, (prompt, out) in enumerate(zip(prompts, outputs, strict=True)):
        try:
            clip = generator.generate(prompt, seed=args.seed + index, **options,
                                      progress=None if progress is None
                                      else lambda done, total: progress.update(1))
        except ModelError as exc:
            if len(prompts) > 1:
                raise ModelError(f'prompt {index + 1} ({prompt[:60]!r}): {exc}') from None
            raise
        if taken is not None:
            annotation = clip.annotation or {}
            annotation['generated'] = {**annotation.get('generated', {}), 'given': taken}
            clip = clip.with_annotation(annotation)
        clip.save(out)
        summary.append({'prompt': prompt, 'out': str(out), 'frames': clip.num_frames,
                        'seed': args.seed + index, 'windows': windows})
        if progress is None and not args.json:
            print(f'wrote {out} ({clip.num_frames} frames, {clip.duration_s:.2f} s)')
    if progress is not None:
        progress.close()
    if args.json:
        print(json.dumps({'model': args.model, 'mode': args.mode, 'clips': summary}, indent=1))
    elif progress is not None:
        print(f'wrote {len(summary)} clips to {args.out}' if len(prompts) > 1 else
              f'wrote {clip.num_frames} frames ({clip.duration_s:.2f} s) to {args.out}')
    return 0
