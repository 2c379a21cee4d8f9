"""Train the text-motion evaluator (contrastive motion and text encoders) on a corpus.

    python training/train_evaluator.py --config evaluator_small --corpus CORPUS --out RUN

Every batch draws clips of the train split and one of each clip's texts; the loss pulls each
clip towards its text and away from the batch's other texts (same texts are all positives).
Never trained on generated motion. At each checkpoint the validation split is scored:
R-precision top-1/3 in batches of 32 (each clip with its first text) and the mean distance of
a clip to its text. The run folder's ``model.pt`` is what
:class:`handx_gen.eval.evaluator.Evaluator` loads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from handx_gen.eval.evaluator import EvaluatorConfig, TextMotionModel  # noqa: E402
from handx_gen.eval.metrics import matching_distance, r_precision  # noqa: E402


class EvaluatorTask(common.Task):
    name = 'evaluator'

    def build(self, sections: Mapping[str, Any], train: common.TrainConfig,
              args: argparse.Namespace, d: common.Dist) -> nn.Module:
        self.train_config = train
        self.data = common.load_training_data(sections, args.corpus, train.num_frames, d,
                                              progress=not args.no_progress)
        config = common.model_config(EvaluatorConfig, sections, text_dim=self.data.texts.dim,
                                     max_frames=train.num_frames)
        self.device = d.device
        return TextMotionModel(config).to(d.device)

    def loss(self, model: nn.Module, step: int, generator: torch.Generator):
        x, texts = self.data.batch(generator, self.train_config.batch_size)
        same = torch.tensor([[a == b for b in texts] for a in texts], device=self.device)
        loss = model(x.to(self.device), self.data.texts.features(texts, self.device), same)
        return loss, {}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        val = self.data.val
        count = len(val) - len(val) % 32
        if count < 32:
            return {}
        texts = [t[0] for t in val.texts[:count]]
        motion = torch.cat([model.motion(self.data.val_x[i:i + 256].to(self.device))
                            for i in range(0, count, 256)]).cpu().numpy()
        text = torch.cat([model.text(self.data.texts.features(texts[i:i + 256], self.device))
                          for i in range(0, count, 256)]).cpu().numpy()
        top = r_precision(motion[:count], text, rng=np.random.default_rng(0))
        return {'val_top1': float(top[0]), 'val_top3': float(top[2]),
                'val_mm_dist': matching_distance(motion[:count], text),
                'temperature': float(torch.exp(-model.log_scale))}

    def checkpoint(self, model: nn.Module, step: int) -> dict[str, Any]:
        return model.checkpoint(
            step=step, normalizer=self.data.normalizer.state_dict(tensors=True),
            text_encoder=self.data.text_encoder, data=self.data.description(),
            fps=float(self.data.train.fps))


if __name__ == '__main__':
    sys.exit(common.main(EvaluatorTask, 'evaluator_small', __doc__.splitlines()[0]))
