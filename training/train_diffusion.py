"""Train the masked-conditioning motion diffusion model on a corpus.

    python training/train_diffusion.py --config diffusion_small --corpus CORPUS --out RUN
    torchrun --nproc_per_node 2 training/train_diffusion.py ...   # DDP, same flags

Every batch draws clips of the train split, one of each clip's texts, and a condition mask per
clip (text, reaction, in-betweening, keyframes, trajectory; ``masks:`` in the run config). The
run folder's ``model.pt`` is what :class:`handx_gen.Generator` loads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from handx_gen.models.checkpoints import load_checkpoint  # noqa: E402
from handx_gen.models.diffusion import (  # noqa: E402
    CHECKPOINT_FORMAT,
    DiffusionConfig,
    GaussianDiffusion,
)
from handx_gen.models.masking import MaskSamplerConfig, sample_masks  # noqa: E402


class _LossModule(nn.Module):
    """The diffusion model with its training loss as ``forward`` (what DDP wraps)."""

    def __init__(self, diffusion: GaussianDiffusion) -> None:
        super().__init__()
        self.diffusion = diffusion

    def forward(self, x0: torch.Tensor, mask: torch.Tensor, text: Any,
                generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.diffusion.training_loss(x0, mask, text, generator)


class DiffusionTask(common.Task):
    name = 'diffusion'

    def build(self, sections: Mapping[str, Any], train: common.TrainConfig,
              args: argparse.Namespace, d: common.Dist) -> nn.Module:
        self.train_config = train
        num_frames = self.train_config.num_frames
        self.data = common.load_training_data(sections, args.corpus, num_frames, d,
                                              progress=not args.no_progress)
        self.masks = MaskSamplerConfig.from_dict(sections.get('masks'))
        config = common.model_config(DiffusionConfig, sections,
                                     text_dim=self.data.texts.dim)
        if config.max_frames < num_frames:
            raise common.ConfigError(f'model max_frames {config.max_frames} < train '
                                     f'num_frames {num_frames}')
        self.device = d.device
        diffusion = GaussianDiffusion(config)
        diffusion.set_normalizer(self.data.normalizer)  # for the geometric losses
        return _LossModule(diffusion).to(d.device)

    def _batch(self, generator: torch.Generator, val: bool = False):
        x0, texts = self.data.batch(generator, self.train_config.batch_size, val=val)
        masks = sample_masks(x0.shape[0], x0.shape[1], generator, self.masks).masks
        text = self.data.texts.features(texts, self.device)
        return x0.to(self.device), masks.to(self.device), text

    def loss(self, model: nn.Module, step: int, generator: torch.Generator):
        x0, masks, text = self._batch(generator)
        total, parts = model(x0, masks, text, generator)
        return total, {k: float(v) for k, v in parts.items()}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        generator = torch.Generator().manual_seed(12345)
        x0, masks, text = self._batch(generator, val=True)
        total, parts = model(x0, masks, text, generator)
        return {'val_loss': float(total), **{f'val_{k}': float(v) for k, v in parts.items()}}

    def initialise(self, model: nn.Module, path: Path) -> Mapping[str, Any]:
        """The weights of a diffusion checkpoint of the same architecture, trained on this
        corpus (loss weights, sampling settings and masks may differ)."""
        checkpoint = load_checkpoint(path, CHECKPOINT_FORMAT, 'diffusion')
        common.check_normalizer(checkpoint, self.data.normalizer, f'diffusion model {path}')
        common.load_weights(model.diffusion, checkpoint, f'diffusion model {path}')
        return checkpoint

    def checkpoint(self, model: nn.Module, step: int) -> dict[str, Any]:
        return model.diffusion.checkpoint(
            step=step, normalizer=self.data.normalizer.state_dict(tensors=True),
            text_encoder=self.data.text_encoder, data=self.data.description(),
            fps=float(self.data.train.fps), num_frames=self.train_config.num_frames,
            masks=self.masks.to_dict())


if __name__ == '__main__':
    sys.exit(common.main(DiffusionTask, 'diffusion_small', __doc__.splitlines()[0]))
