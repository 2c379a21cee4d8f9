"""What the three training scripts share: the run config, distributed set-up, the data, the
training loop with resume, progress and logs, and checkpoint writing.

Each script (``train_diffusion.py``, ``train_tokenizer.py``, ``train_ar.py``) defines a
:class:`Task` (how to build the model, draw a batch and compute the loss) and calls
:func:`main`. The same script runs in one process or under ``torchrun`` (DDP; ``gloo`` on CPU,
``nccl`` on GPUs): every rank draws its own batches from a generator seeded by ``seed`` and its
rank, gradients are averaged, and rank 0 writes checkpoints and logs.

A run folder holds ``last.pt`` (the full training state: weights, EMA weights, optimiser, step,
random state; a run restarted with the same folder resumes from it), ``model.pt`` (the weights
to use, EMA when enabled, with config, normalisation statistics, text encoder and data
description), ``config.yaml`` (the run's settings) and ``log.jsonl`` (one line per logged step).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from handx_gen.config import config_kwargs  # noqa: E402
from handx_gen.errors import ConfigError, HandxError, ModelError  # noqa: E402
from handx_gen.models.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent / 'configs'
STATE_FORMAT = 'handx-train-state/1'


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of a run (the ``train:`` section of a run config).

    Attributes:
        steps: Optimiser steps in all.
        batch_size: Clips per step and rank.
        lr: Peak AdamW learning rate (linear warm-up, then cosine decay to ``lr_min``).
        lr_min: Final learning rate.
        warmup_steps: Steps of linear warm-up.
        weight_decay: AdamW weight decay.
        grad_clip: Gradient norm clip; 0 disables.
        ema_decay: Decay of the exponential moving average of the weights written to
            ``model.pt``; 0 writes the raw weights.
        num_frames: Frames per training clip (4 s at 30 fps).
        seed: Seed of initialisation and batches.
        log_every: Steps between log lines.
        checkpoint_every: Steps between ``last.pt`` / ``model.pt`` writes (and at the end).
        threads: Torch CPU threads per process; ``None`` keeps torch's default.
    """

    steps: int = 10_000
    batch_size: int = 64
    lr: float = 3e-4
    lr_min: float = 1e-5
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.0
    num_frames: int = 120
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ('steps', 'batch_size', 'num_frames', 'log_every', 'checkpoint_every'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f'train {name} must be a positive integer, got {value!r}')
        for name in ('lr', 'lr_min', 'weight_decay', 'grad_clip'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f'train {name} must be a non-negative number, got {value!r}')
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f'train ema_decay must be in [0, 1), got {self.ema_decay!r}')
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f'train threads must be a positive integer, got {self.threads!r}')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainConfig:
        return cls(**config_kwargs(cls, values, 'train'))

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * progress))


RUN_SECTIONS = ('model', 'train', 'masks', 'geometry', 'text_encoder', 'data')


def read_run_config(name_or_path: str) -> tuple[Path, dict[str, Any]]:
    """A run config by path, or by name in ``training/configs`` (``diffusion_small``).

    Raises:
        ConfigError: No such file, invalid YAML, or an unknown section.
    """
    path = Path(name_or_path)
    if not path.is_file():
        candidate = CONFIG_DIR / f'{name_or_path}.yaml'
        if not candidate.is_file():
            names = sorted(p.stem for p in CONFIG_DIR.glob('*.yaml'))
            raise ConfigError(f'no run config {name_or_path!r}: not a file, and not one of '
                              f'{names}')
        path = candidate
    try:
        values = yaml.safe_load(path.read_text(encoding='utf-8')) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f'{path}: cannot read the run config ({exc})') from exc
    if not isinstance(values, dict):
        raise ConfigError(f'{path}: a run config is a mapping of sections {RUN_SECTIONS}')
    unknown = [key for key in values if key not in RUN_SECTIONS]
    if unknown:
        raise ConfigError(f'{path}: unknown section {unknown[0]!r}; valid: {RUN_SECTIONS}')
    return path, values


# ============================================================================== distributed


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process' place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | None) -> Dist:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local = int(os.environ.get('LOCAL_RANK', '0'))
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    dev = torch.device(device)
    if dev.type == 'cuda':
        dev = torch.device('cuda', local)
        torch.cuda.set_device(dev)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group('nccl' if dev.type == 'cuda' else 'gloo')
    return Dist(rank, world, local, dev)


def barrier(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist

        dist.barrier()


# ============================================================================== data


@dataclasses.dataclass
class TrainingData:
    """The corpus splits, their normalisation and text features, as every task uses them."""

    train: Any  # ClipSet
    val: Any  # ClipSet
    normalizer: Any  # Normalizer fitted on the train split
    texts: Any  # TextBank of every train and val text
    text_encoder: dict[str, Any]  # TextEncoder.describe()
    train_x: torch.Tensor  # (N, T, D) normalised train features
    val_x: torch.Tensor  # (M, T, D) normalised val features

    def description(self) -> dict[str, Any]:
        """What the model was trained on (goes into its checkpoint)."""
        return {'train': self.train.description, 'val': self.val.description}

    def draw(self, generator: torch.Generator, batch_size: int, *, val: bool = False
             ) -> tuple[torch.Tensor, list[str]]:
        """Random clip indices (B,) of a split and one of each clip's texts at random."""
        clips = self.val if val else self.train
        index = torch.randint(0, len(clips), (batch_size,), generator=generator)
        picks = torch.randint(0, 1 << 30, (batch_size,), generator=generator).tolist()
        texts = [clips.texts[i][pick % len(clips.texts[i])]
                 for i, pick in zip(index.tolist(), picks, strict=True)]
        return index, texts

    def batch(self, generator: torch.Generator, batch_size: int, *, val: bool = False
              ) -> tuple[torch.Tensor, list[str]]:
        """Random clips (normalised, (B, T, D)) and one of each clip's texts at random."""
        index, texts = self.draw(generator, batch_size, val=val)
        return (self.val_x if val else self.train_x)[index], texts


def load_training_data(sections: Mapping[str, Any], corpus: Path, num_frames: int, d: Dist,
                       *, progress: bool = True) -> TrainingData:
    """Read the corpus' train and val splits (rank 0 first, so it writes the cache alone),
    fit the normaliser on train and encode every text once."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    from handx_gen.models.dataset import TextBank, load_clip_set
    from handx_gen.models.text_encoder import TextEncoder, TextEncoderConfig

    show = progress and d.main
    if not d.main:
        barrier(d)
    train = load_clip_set(corpus, 'train', num_frames, progress=show)
    val = load_clip_set(corpus, 'val', num_frames, progress=show)
    if d.main:
        barrier(d)
    train = data_subset(train, sections.get('data'))
    normalizer = train.normalizer()
    encoder_values = {'cache_size': 0, **(sections.get('text_encoder') or {})}
    encoder = TextEncoder(TextEncoderConfig.from_dict(encoder_values))
    if not d.main:
        barrier(d)  # rank 0 encodes (or reads) the texts and writes the cache first
    texts = TextBank(encoder, [t for clip in (*train.texts, *val.texts) for t in clip],
                     progress=show, cache_dir=Path(corpus) / 'cache')
    if d.main:
        barrier(d)
    description = encoder.describe()
    description['config'] = encoder.config.to_dict()
    del encoder
    train_x, val_x = (torch.from_numpy(normalizer.normalize(clips.features)).float()
                      for clips in (train, val))
    return TrainingData(train, val, normalizer, texts, description, train_x, val_x)


def data_subset(clips: Any, values: Mapping[str, Any] | None) -> Any:
    """The train clips a run's ``data:`` section asks for: ``fraction`` (in (0, 1], default
    1) of them, drawn without replacement by ``seed`` (default 0); the same fraction and seed
    give the same clips, and a smaller fraction's clips are among a larger one's."""
    values = dict(values or {})
    unknown = sorted(set(values) - {'fraction', 'seed'})
    if unknown:
        raise ConfigError(f'unknown data keys {unknown}; valid: fraction, seed')
    fraction, seed = values.get('fraction', 1.0), values.get('seed', 0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0.0 < fraction <= 1.0:
        raise ConfigError(f'data fraction must be in (0, 1], got {fraction!r}')
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f'data seed must be a non-negative integer, got {seed!r}')
    if fraction >= 1.0:
        return clips
    count = max(1, math.ceil(fraction * len(clips)))
    order = np.random.default_rng(seed).permutation(len(clips))
    subset = clips.subset(np.sort(order[:count]))
    return dataclasses.replace(subset, description={**subset.description,
                                                    'fraction': fraction, 'fraction_seed': seed})


def model_config(cls: Any, sections: Mapping[str, Any], **fixed: Any) -> Any:
    """A model config from the ``model:`` section: ``preset`` (default ``small``) plus
    overrides, then ``fixed`` values the data decides."""
    values = dict(sections.get('model') or {})
    preset = values.pop('preset', 'small')
    return cls.preset(preset, **{**values, **fixed})


# ============================================================================== the loop


class Task:
    """One kind of training: subclasses fill these in."""

    name = 'model'
    checkpoint_format = ''

    def build(self, sections: Mapping[str, Any], train: TrainConfig, args: argparse.Namespace,
              d: Dist) -> nn.Module:
        """Load data and build the model (on ``d.device``)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, step: int, generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """One batch's loss (``model`` may be DDP-wrapped: call it, not its methods)."""
        raise NotImplementedError

    def checkpoint(self, model: nn.Module, step: int) -> dict[str, Any]:
        """The usable checkpoint of ``model`` (the bare model, possibly EMA weights)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation numbers logged at each checkpoint (optional; called in eval mode
        without gradients)."""
        return {}

    def initialise(self, model: nn.Module, path: Path) -> Mapping[str, Any]:
        """Load the weights of the usable checkpoint ``path`` into ``model`` (``--init``:
        a fine-tuning run) and return that checkpoint. Tasks that support it override this."""
        raise ConfigError(f'{self.name} runs cannot start from a checkpoint (--init)')

    def fine_tune(self, model: nn.Module) -> None:
        """Prepare ``model`` for a fine-tuning run, fresh or resumed (e.g. freeze parts);
        called before the optimiser is built. Nothing by default."""


def init_record(path: Path, checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What a fine-tuning run records of the checkpoint it started from: the file, and that
    checkpoint's own training record (steps, wall time, device; nested for chains)."""
    return {'file': str(path), 'step': checkpoint.get('step'),
            'train': dict(checkpoint.get('train') or {})}


def check_normalizer(checkpoint: Mapping[str, Any], normalizer: Any, what: str) -> None:
    """A checkpoint's normalisation statistics must be those of this run's corpus.

    Raises:
        ModelError: They differ (or the checkpoint has none).
    """
    stats = checkpoint.get('normalizer') or {}
    mean, std = stats.get('mean'), stats.get('std')
    if mean is None or std is None \
            or not np.allclose(np.asarray(mean, dtype=np.float64), normalizer.mean,
                               atol=1e-5, rtol=1e-3) \
            or not np.allclose(np.asarray(std, dtype=np.float64), normalizer.std,
                               atol=1e-5, rtol=1e-3):
        raise ModelError(f'{what} was trained on another corpus (its normalisation statistics '
                         f'differ); train it on this one')


def load_weights(model: nn.Module, checkpoint: Mapping[str, Any], what: str,
                 new: Callable[[str], bool] = lambda key: False) -> None:
    """A checkpoint's weights (any float precision) into ``model``; parameters for which
    ``new`` is true may be missing from the checkpoint and keep their initial values.

    Raises:
        ModelError: Weights that do not fit the model.
    """
    weights = {k: v.float() if v.is_floating_point() else v
               for k, v in checkpoint['model'].items()}
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:
        raise ModelError(f'the weights of {what} do not fit this model: {exc}') from None
    missing = [k for k in result.missing_keys if not new(k)]
    if missing or result.unexpected_keys:
        raise ModelError(f'the weights of {what} do not fit this model: missing '
                         f'{missing[:3]}, unexpected {result.unexpected_keys[:3]}')


def add_arguments(parser: argparse.ArgumentParser, default_config: str) -> None:
    parser.add_argument('--config', default=default_config,
                        help=f'run config: a YAML file or a name in training/configs '
                             f'(default {default_config})')
    parser.add_argument('--corpus', type=Path, required=True,
                        help='corpus folder (handx data synth --out ...)')
    parser.add_argument('--out', type=Path, required=True, help='run folder')
    parser.add_argument('--steps', type=int, help='override train.steps')
    parser.add_argument('--batch-size', type=int, help='override train.batch_size')
    parser.add_argument('--device', help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    parser.add_argument('--restart', action='store_true',
                        help='start over even if the run folder holds last.pt')
    parser.add_argument('--max-minutes', type=float,
                        help='stop (with a checkpoint) after this much wall time; run again '
                             'to resume')
    parser.add_argument('--until', type=int, metavar='STEP',
                        help='stop (with a checkpoint) at this step; run again to resume '
                             '(the schedule still follows train.steps)')
    parser.add_argument('--init', type=Path, metavar='CHECKPOINT',
                        help="start from the weights of a usable checkpoint (a run's model.pt "
                             'or a shipped file): a fine-tuning run with a fresh optimiser and '
                             'schedule; not read when the run folder resumes')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, 'module') else model


def run(task: Task, args: argparse.Namespace) -> int:
    """Train ``task`` as ``args`` say; returns an exit status."""
    try:
        return _run(task, args)
    except HandxError as exc:
        print(f'{Path(sys.argv[0]).name}: error: {exc}', file=sys.stderr)
        return 2


def _run(task: Task, args: argparse.Namespace) -> int:
    config_path, sections = read_run_config(args.config)
    train_values = dict(sections.get('train') or {})
    if args.steps is not None:
        train_values['steps'] = args.steps
    if args.batch_size is not None:
        train_values['batch_size'] = args.batch_size
    train = TrainConfig.from_dict(train_values)
    if train.threads is not None:
        torch.set_num_threads(train.threads)
    d = setup_distributed(args.device)
    out: Path = args.out
    torch.manual_seed(train.seed)
    model = task.build(sections, train, args, d)
    state_path = out / 'last.pt'
    state: dict[str, Any] | None = None
    init: dict[str, Any] | None = None
    if state_path.is_file() and not args.restart:
        state = load_checkpoint(state_path, STATE_FORMAT, 'training state')
        if state['task'] != task.name:
            raise ModelError(f'{state_path} is a {state["task"]} run, not {task.name}; use '
                             f'another --out or --restart')
        init = state.get('init')
    elif args.init is not None:
        init = init_record(args.init, task.initialise(model, args.init))
        if d.main:
            print(f'{task.name}: starting from the weights of {args.init}', file=sys.stderr)
    if init is not None:  # fresh or resumed: the same parameters train
        task.fine_tune(model)
    ema = copy.deepcopy(model).eval() if train.ema_decay > 0 else None
    if ema is not None:
        ema.requires_grad_(False)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 and 'embedding' not in name else no_decay).append(param)
    optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': train.weight_decay},
                                   {'params': no_decay, 'weight_decay': 0.0}], lr=train.lr)
    generator = torch.Generator().manual_seed(train.seed * 1000 + d.rank)
    step, elapsed_before = 0, 0.0
    if state is not None:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        if ema is not None and state.get('ema') is not None:
            ema.load_state_dict(state['ema'])
        step = int(state['step'])
        elapsed_before = float(state.get('wall_s', 0.0))
        if d.rank < len(state['generators']):
            generator.set_state(state['generators'][d.rank])
            torch.set_rng_state(state['torch_rng'][d.rank])  # dropout draws from it
        if d.main:
            print(f'resuming {task.name} from {state_path} at step {step}', file=sys.stderr)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        if step == 0:
            (out / 'log.jsonl').unlink(missing_ok=True)  # a fresh run starts a fresh log
        resolved = {**sections, 'train': dataclasses.asdict(train)}
        (out / 'config.yaml').write_text(
            f'# from {config_path}\n' + yaml.safe_dump(resolved, sort_keys=False),
            encoding='utf-8')
    wrapped: nn.Module = model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            model, device_ids=[d.local_rank] if d.device.type == 'cuda' else None)

    bar = None
    if d.main and not args.no_progress and step < train.steps:
        from tqdm import tqdm

        bar = tqdm(total=train.steps, initial=step, desc=f'train {task.name}', unit='step',
                   dynamic_ncols=True)
    log_path = out / 'log.jsonl'
    started = time.perf_counter()
    totals: dict[str, float] = {}
    count = 0
    stop_reason = 'steps'

    def save() -> None:
        wall = elapsed_before + time.perf_counter() - started
        gens = _gather(generator.get_state(), d)
        torch_rng = _gather(torch.get_rng_state(), d)
        if not d.main:
            return
        usable = task.checkpoint(ema if ema is not None else model, step)
        usable['train'] = {**usable.get('train', {}), 'step': step, 'wall_s': round(wall, 1),
                           'world_size': d.world_size, 'device': d.device.type,
                           'config': dataclasses.asdict(train)}
        if init is not None:
            usable['train']['init'] = init
        save_checkpoint(usable, out / 'model.pt')
        save_checkpoint({'format': STATE_FORMAT, 'task': task.name, 'step': step,
                         'wall_s': wall, 'model': model.state_dict(),
                         'ema': ema.state_dict() if ema is not None else None,
                         'optimizer': optimizer.state_dict(), 'generators': gens,
                         'torch_rng': torch_rng, 'init': init},
                        state_path)

    model.train()
    while step < train.steps and (args.until is None or step < args.until):
        lr = train.lr_at(step)
        for group in optimizer.param_groups:
            group['lr'] = lr
        loss, parts = task.loss(wrapped, step, generator)
        if not torch.isfinite(loss):
            raise ModelError(f'{task.name}: loss became {loss.item()} at step {step}; lower '
                             f'train.lr or check the data')
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        if ema is not None:
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                    p_ema.lerp_(p, 1.0 - train.ema_decay)
        step += 1
        for key, value in {'loss': float(loss.detach()), **parts}.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        count += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f'{float(loss.detach()):.4f}', refresh=False)
        if step % train.log_every == 0 or step == train.steps:
            if d.main:
                line = {'step': step, 'lr': lr, **{k: v / count for k, v in totals.items()},
                        'wall_s': round(elapsed_before + time.perf_counter() - started, 1)}
                with log_path.open('a', encoding='utf-8') as log:
                    log.write(json.dumps(line) + '\n')
            totals, count = {}, 0
        out_of_time = args.max_minutes is not None and \
            time.perf_counter() - started > 60 * args.max_minutes
        if d.enabled and args.max_minutes is not None:
            out_of_time = _any_rank(out_of_time, d)
        until = args.until is not None and step >= args.until
        if step % train.checkpoint_every == 0 or step == train.steps or out_of_time or until:
            if d.main:
                target = _unwrap(ema if ema is not None else model)
                was = target.training
                target.eval()  # no dropout; evaluate uses its own generator
                try:
                    with torch.no_grad():
                        metrics = task.evaluate(target)
                finally:
                    target.train(was)
                if metrics:
                    with log_path.open('a', encoding='utf-8') as log:
                        log.write(json.dumps({'step': step, 'eval': metrics}) + '\n')
                    if bar is not None:
                        bar.write(f'step {step}: ' + ', '.join(f'{k} {v:.4g}'
                                                               for k, v in metrics.items()))
            save()
            barrier(d)
        if out_of_time or until:
            stop_reason = f'--max-minutes {args.max_minutes}' if out_of_time else \
                f'--until {args.until}'
            break
    if bar is not None:
        bar.close()
    if d.main:
        wall = elapsed_before + time.perf_counter() - started
        print(f'{task.name}: {step} steps ({stop_reason}), {wall / 60:.1f} min in all; wrote '
              f'{out / "model.pt"}', file=sys.stderr)
    if d.enabled:
        import torch.distributed as dist

        del wrapped  # DDP's reducer holds gloo work: release it before the group goes
        dist.barrier()  # leave together, so no rank tears down while another still talks
        dist.destroy_process_group()
    return 0


def _gather(state: torch.Tensor, d: Dist) -> list[torch.Tensor]:
    """Every rank's ``state`` (a random-generator state), on rank 0."""
    if not d.enabled:
        return [state]
    import torch.distributed as dist

    states: list[Any] = [None] * d.world_size
    dist.all_gather_object(states, state)
    return states


def _any_rank(flag: bool, d: Dist) -> bool:
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def main(task_factory: Callable[[], Task], default_config: str, description: str,
         argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser, default_config)
    args = parser.parse_args(argv)
    return run(task_factory(), args)
