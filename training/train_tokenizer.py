"""Train the per-hand FSQ motion tokenizer (the first stage of the autoregressive model).

    python training/train_tokenizer.py --config tokenizer_small --corpus CORPUS --out RUN
    torchrun --nproc_per_node 2 training/train_tokenizer.py ...   # DDP, same flags

The run folder's ``model.pt`` is the tokenizer ``train_ar.py --tokenizer`` takes. Validation
logs the keypoint reconstruction error in millimetres and the share of the codebook in use.

    python training/train_tokenizer.py --config tokenizer_joint_small --init TOK.pt ...

fine-tunes a trained tokenizer (``TOK.pt``, or an AR checkpoint, whose embedded tokenizer is
taken) with its encoder frozen: its tokens stay exactly as they were, so an AR model trained
on them keeps working, while the decoder (and a new bimanual stage, ``model.joint_depth``)
learns. ``tokenizer_joint_small`` adds the bimanual stage with a contact-consistency loss.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from handx_gen.hand.topology import HandSide  # noqa: E402
from handx_gen.models.checkpoints import check_format, load_checkpoint  # noqa: E402
from handx_gen.models.fsq import CHECKPOINT_FORMAT, FSQConfig, HandTokenizer  # noqa: E402
from handx_gen.models.geometry import GeometryLossConfig, geometric_losses  # noqa: E402
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureGroup  # noqa: E402


class TokenizerTask(common.Task):
    name = 'tokenizer'

    def build(self, sections: Mapping[str, Any], train: common.TrainConfig,
              args: argparse.Namespace, d: common.Dist) -> nn.Module:
        self.train_config = train
        self.data = common.load_training_data(sections, args.corpus, train.num_frames, d,
                                              progress=not args.no_progress)
        config = common.model_config(FSQConfig, sections)
        self.geometry = GeometryLossConfig.from_dict(sections.get('geometry'))
        norm = self.data.normalizer
        self.mean = torch.tensor(norm.mean, dtype=torch.float32, device=d.device)
        self.std = torch.tensor(norm.std, dtype=torch.float32, device=d.device)
        if train.num_frames % config.downsample:
            raise common.ConfigError(f'train num_frames {train.num_frames} must be a multiple '
                                     f'of the tokenizer downsample {config.downsample}')
        self.device = d.device
        return HandTokenizer(config).to(d.device)

    def loss(self, model: nn.Module, step: int, generator: torch.Generator):
        x, _ = self.data.batch(generator, self.train_config.batch_size)
        x = x.to(self.device)
        out = model(x)
        parts = {'reconstruction': float(out.reconstruction_loss.detach()),
                 'velocity': float(out.velocity_loss.detach())}
        loss = out.loss
        geometry = self.geometry
        if geometry.enabled:  # positions matter: fingertips that touch must stay touching
            fk, contact = geometric_losses(out.reconstruction * self.std + self.mean,
                                           x * self.std + self.mean, geometry.sigma_m,
                                           geometry.range_m)
            loss = loss + geometry.fk * fk + geometry.contact * contact
            parts.update(fk=float(fk.detach()), contact=float(contact.detach()))
        return loss, parts

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Keypoint error (mm, wrist-relative, after de-normalising) and codebook use on up
        to 256 validation clips."""
        x = self.data.val_x[:256].to(self.device)
        out = model(x)
        norm = self.data.normalizer
        real = norm.denormalize(x.cpu().double()).numpy()
        rec = norm.denormalize(out.reconstruction.cpu().double()).numpy()
        errors = []
        for side in HandSide:
            cut = FEATURE_LAYOUT.slice(side, FeatureGroup.KEYPOINTS)
            diff = (real[..., cut] - rec[..., cut]).reshape(*real.shape[:2], -1, 3)
            errors.append(((diff ** 2).sum(-1) ** 0.5).mean())
        used = torch.unique(out.tokens).numel() / model.codebook_size
        return {'val_loss': float(out.loss), 'val_keypoint_mm': 1000 * float(sum(errors) / 2),
                'codebook_used': float(used)}

    def initialise(self, model: nn.Module, path: Path) -> Mapping[str, Any]:
        """Weights of a tokenizer checkpoint, or of the tokenizer inside an AR checkpoint
        (:meth:`fine_tune` then freezes what makes the tokens). The bimanual stage may be
        new; every other setting must match."""
        from handx_gen.models.ar import CHECKPOINT_FORMAT as AR_FORMAT

        checkpoint = load_checkpoint(path, (CHECKPOINT_FORMAT, AR_FORMAT), 'tokenizer')
        if checkpoint['format'] == AR_FORMAT:
            checkpoint = check_format(checkpoint.get('tokenizer'), CHECKPOINT_FORMAT,
                                      'tokenizer inside the AR')
        what = f'tokenizer {path}'
        common.check_normalizer(checkpoint, self.data.normalizer, what)
        theirs = {**FSQConfig().to_dict(), **dict(checkpoint.get('config') or {}),
                  'joint_depth': model.config.joint_depth}
        if FSQConfig.from_dict(theirs) != model.config:
            raise common.ConfigError(f'{what} has other settings than the model of this run '
                                     f'(only joint_depth may differ): {checkpoint["config"]}')
        common.load_weights(model, checkpoint, what, new=lambda key: key.startswith('joint.'))
        return checkpoint

    def fine_tune(self, model: nn.Module) -> None:
        """Freeze what makes the tokens: encoder, latent projection, hand embedding."""
        for module in (model.encoder, model.to_latent, model.hand_embedding):
            module.requires_grad_(False)

    def checkpoint(self, model: nn.Module, step: int) -> dict[str, Any]:
        return model.checkpoint(
            step=step, normalizer=self.data.normalizer.state_dict(tensors=True),
            data=self.data.description(), fps=float(self.data.train.fps),
            geometry=dataclasses.asdict(self.geometry))


if __name__ == '__main__':
    sys.exit(common.main(TokenizerTask, 'tokenizer_small', __doc__.splitlines()[0]))
