"""Train the autoregressive model over interleaved left/right motion tokens.

    python training/train_ar.py --config ar_small --corpus CORPUS --tokenizer TOK.pt --out RUN
    torchrun --nproc_per_node 2 training/train_ar.py ...   # DDP, same flags

The corpus is tokenised once with the frozen tokenizer; each batch draws token sequences and
one of each clip's texts (dropped to the null text at ``model.text_dropout`` for classifier-free
guidance). ``model.pt`` embeds the tokenizer checkpoint, so it is all
:class:`handx_gen.Generator` needs.

Fine-tuning (``--init AR.pt``, e.g. on a corpus whose clips got more texts): the run starts
from that AR model's weights; ``--tokenizer`` may then be the same AR file, whose embedded
tokenizer is taken, so the tokens are those the model was trained on.
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

from handx_gen.models.ar import CHECKPOINT_FORMAT as AR_FORMAT  # noqa: E402
from handx_gen.models.ar import ARConfig, HandTokenGPT, interleave  # noqa: E402
from handx_gen.models.checkpoints import check_format, load_checkpoint  # noqa: E402
from handx_gen.models.fsq import CHECKPOINT_FORMAT as TOKENIZER_FORMAT  # noqa: E402
from handx_gen.models.fsq import HandTokenizer  # noqa: E402


@torch.no_grad()
def tokenize(tokenizer: HandTokenizer, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(N, 2, S) tokens of normalised features ``x`` (N, T, D)."""
    tokenizer.eval()
    return torch.cat([tokenizer.encode(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


class ARTask(common.Task):
    name = 'ar'

    def build(self, sections: Mapping[str, Any], train: common.TrainConfig,
              args: argparse.Namespace, d: common.Dist) -> nn.Module:
        self.train_config = train
        self.tokenizer_checkpoint = load_tokenizer(args.tokenizer)
        tokenizer = HandTokenizer.from_checkpoint(self.tokenizer_checkpoint)
        self.data = common.load_training_data(sections, args.corpus, train.num_frames, d,
                                              progress=not args.no_progress)
        common.check_normalizer(self.tokenizer_checkpoint, self.data.normalizer,
                                'the tokenizer')
        self.train_tokens = tokenize(tokenizer, self.data.train_x)  # (N, 2, S)
        self.val_tokens = tokenize(tokenizer, self.data.val_x)
        config = common.model_config(ARConfig, sections, codebook_size=tokenizer.codebook_size,
                                     text_dim=self.data.texts.dim)
        steps = self.train_tokens.shape[-1]
        if 2 * steps > config.max_tokens:
            raise common.ConfigError(f'{train.num_frames} frames make {2 * steps} tokens; the '
                                     f'model takes at most {config.max_tokens} (max_tokens)')
        self.device = d.device
        return HandTokenGPT(config).to(d.device)

    def _batch(self, generator: torch.Generator, val: bool = False):
        index, texts = self.data.draw(generator, self.train_config.batch_size, val=val)
        tokens = self.val_tokens if val else self.train_tokens
        return tokens[index].to(self.device), self.data.texts.features(texts, self.device)

    def loss(self, model: nn.Module, step: int, generator: torch.Generator):
        tokens, text = self._batch(generator)
        null = torch.rand(tokens.shape[0], generator=generator) < \
            self._config(model).text_dropout
        out = model(tokens, text, null_text=null.to(self.device))
        return out.loss, {}

    @staticmethod
    def _config(model: nn.Module) -> ARConfig:
        return (model.module if hasattr(model, 'module') else model).config

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        generator = torch.Generator().manual_seed(12345)
        tokens, text = self._batch(generator, val=True)
        out = model(tokens, text)
        accuracy = (out.logits.argmax(-1) == interleave(tokens)).float().mean()
        return {'val_loss': float(out.loss), 'val_token_accuracy': float(accuracy)}

    def initialise(self, model: nn.Module, path: Path) -> Mapping[str, Any]:
        """The weights of an AR checkpoint of the same architecture over the same tokenizer,
        trained on this corpus (the texts may differ)."""
        checkpoint = load_checkpoint(path, AR_FORMAT, 'AR model')
        what = f'AR model {path}'
        common.check_normalizer(checkpoint, self.data.normalizer, what)
        theirs = dict(checkpoint.get('tokenizer') or {}).get('model') or {}
        ours = self.tokenizer_checkpoint['model']
        if set(theirs) != set(ours) or any(not torch.equal(theirs[k].float(), ours[k].float())
                                           for k in ours if k.startswith('encoder')):
            raise common.ConfigError(f'{what} was trained on the tokens of another tokenizer '
                                     f'than --tokenizer; pass that model as --tokenizer')
        common.load_weights(model, checkpoint, what)
        return checkpoint

    def checkpoint(self, model: nn.Module, step: int) -> dict[str, Any]:
        return model.checkpoint(
            step=step, tokenizer=dict(self.tokenizer_checkpoint),
            normalizer=self.data.normalizer.state_dict(tensors=True),
            text_encoder=self.data.text_encoder, data=self.data.description(),
            fps=float(self.data.train.fps), num_frames=self.train_config.num_frames)


def load_tokenizer(path: Path) -> dict[str, Any]:
    """A tokenizer checkpoint, or the tokenizer embedded in an AR checkpoint."""
    checkpoint = load_checkpoint(path, (TOKENIZER_FORMAT, AR_FORMAT), 'tokenizer')
    if checkpoint['format'] == AR_FORMAT:
        checkpoint = check_format(checkpoint.get('tokenizer'), TOKENIZER_FORMAT,
                                  f'tokenizer inside the AR model {path}')
    return checkpoint


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_arguments(parser, 'ar_small')
    parser.add_argument('--tokenizer', type=Path, required=True,
                        help="tokenizer checkpoint (train_tokenizer.py's model.pt), or an AR "
                             'checkpoint whose embedded tokenizer is taken')
    return common.run(ARTask(), parser.parse_args())


if __name__ == '__main__':
    sys.exit(_main())
