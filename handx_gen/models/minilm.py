"""The MiniLM-L6 text encoder (a 6-layer BERT) in plain torch, without ``transformers``.

Importing ``transformers`` and building its BERT takes 2-3 s before the first prompt (its
modelling modules pull in much of torch, scipy and more); this module reads the same folder
(``config.json``, ``model.safetensors``, ``tokenizer.json``) with ``safetensors`` and the
Rust ``tokenizers`` library, and runs the same layers: its token features equal those of
``transformers.AutoModel`` to float rounding (``tests/test_text_encoder.py`` compares them).
:class:`~handx_gen.models.text_encoder.TextEncoder` uses it for MiniLM folders that have
these files, and ``transformers`` for everything else (CLIP, T5, other BERT layouts).

:class:`WordPieceTokenizer` and :class:`BertEncoder` answer the few calls the text encoder
makes of a ``transformers`` tokenizer and model (``tokenizer(texts, ...)``,
``model(input_ids=..., attention_mask=...).last_hidden_state``, ``model.config``).
"""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from handx_gen.errors import ModelError

__all__ = ['BertEncoder', 'WordPieceTokenizer', 'has_plain_bert']

_FILES = ('config.json', 'model.safetensors', 'tokenizer.json')


def has_plain_bert(path: Path) -> bool:
    """Whether ``path`` holds a BERT this module runs: the three files, ``model_type`` bert,
    absolute positions and GELU."""
    if not all((path / name).is_file() for name in _FILES):
        return False
    try:
        config = json.loads((path / 'config.json').read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return False
    return (isinstance(config, dict) and config.get('model_type') == 'bert'
            and config.get('position_embedding_type', 'absolute') == 'absolute'
            and config.get('hidden_act') == 'gelu')


class WordPieceTokenizer:
    """The folder's ``tokenizer.json`` (BERT's normaliser, pre-tokeniser, WordPiece and the
    ``[CLS] ... [SEP]`` template) through the ``tokenizers`` library."""

    padding_side = 'right'

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path / 'tokenizer.json'))
        self._tokenizer.no_padding()
        settings: dict[str, Any] = {}
        if (path / 'tokenizer_config.json').is_file():
            settings = json.loads((path / 'tokenizer_config.json').read_text(encoding='utf-8'))
        self.model_max_length = int(settings.get('model_max_length') or 512)
        self.pad_id = int(self._tokenizer.token_to_id(settings.get('pad_token', '[PAD]')) or 0)

    def __call__(self, texts: Sequence[str], *, max_length: int, padding: bool = True,
                 truncation: bool = True, return_tensors: str = 'pt') -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask``, (B, L) int64, padded on the right to the
        longest prompt, each at most ``max_length`` tokens (special tokens included)."""
        if not (padding and truncation and return_tensors == 'pt'):
            raise ModelError('WordPieceTokenizer pads, truncates and returns torch tensors only')
        self._tokenizer.enable_truncation(max_length)
        encodings = self._tokenizer.encode_batch(list(texts))
        length = max(len(e.ids) for e in encodings)
        ids = torch.full((len(encodings), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encodings), length), dtype=torch.long)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = torch.tensor(encoding.ids, dtype=torch.long)
            mask[row, :len(encoding.ids)] = 1
        return {'input_ids': ids, 'attention_mask': mask}


class _Dense(nn.Module):
    """``nn.Linear`` without its random initialisation (every weight is read from the
    checkpoint; initialising the encoder took a quarter of a second)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim_out, dim_in))
        self.bias = nn.Parameter(torch.empty(dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def _embedding(num: int, dim: int) -> nn.Embedding:
    return nn.Embedding(num, dim, _weight=torch.empty(num, dim))  # read, not initialised


class _Layer(nn.Module):
    """One BERT encoder layer (post-norm), parameter names as in the checkpoint."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        for name in ('query', 'key', 'value'):
            setattr(self.attention.self, name, _Dense(dim, dim))
        self.attention.output = nn.Module()
        self.attention.output.dense = _Dense(dim, dim)
        self.attention.output.LayerNorm = nn.LayerNorm(dim, eps=eps)
        self.intermediate = nn.Module()
        self.intermediate.dense = _Dense(dim, hidden)
        self.output = nn.Module()
        self.output.dense = _Dense(hidden, dim)
        self.output.LayerNorm = nn.LayerNorm(dim, eps=eps)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``h`` (B, L, d); ``keep`` (B, 1, 1, L) bool, true on real tokens."""
        attention = self.attention.self
        b, length, dim = h.shape

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, L, d) -> (B, H, L, d / H)
            return x.view(b, length, self.heads, dim // self.heads).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            heads(attention.query(h)), heads(attention.key(h)), heads(attention.value(h)),
            attn_mask=keep)  # (B, H, L, d / H)
        context = context.transpose(1, 2).reshape(b, length, dim)
        h = self.attention.output.LayerNorm(self.attention.output.dense(context) + h)
        return self.output.LayerNorm(
            self.output.dense(F.gelu(self.intermediate.dense(h))) + h)


class BertEncoder(nn.Module):
    """BERT's embeddings and encoder layers (no pooler), in eval mode."""

    def __init__(self, config: dict[str, Any], name: str = '') -> None:
        super().__init__()
        dim, eps = int(config['hidden_size']), float(config.get('layer_norm_eps', 1e-12))
        if dim % int(config['num_attention_heads']):
            raise ModelError(f'hidden_size {dim} is not a multiple of num_attention_heads '
                             f'{config["num_attention_heads"]}')
        self.config = types.SimpleNamespace(hidden_size=dim, name_or_path=name)
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = _embedding(int(config['vocab_size']), dim)
        self.embeddings.position_embeddings = _embedding(
            int(config['max_position_embeddings']), dim)
        self.embeddings.token_type_embeddings = _embedding(
            int(config.get('type_vocab_size', 2)), dim)
        self.embeddings.LayerNorm = nn.LayerNorm(dim, eps=eps)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(
            _Layer(dim, int(config['num_attention_heads']), int(config['intermediate_size']),
                   eps) for _ in range(int(config['num_hidden_layers'])))
        self.eval()

    @classmethod
    def load(cls, path: Path) -> BertEncoder:
        """The encoder of a folder :func:`has_plain_bert` accepts.

        Raises:
            ModelError: Weights missing from ``model.safetensors`` or of the wrong shape.
        """
        from safetensors.torch import load_file

        config = json.loads((path / 'config.json').read_text(encoding='utf-8'))
        model = cls(config, name=str(path))  # as transformers names a folder's model
        try:
            weights = load_file(str(path / 'model.safetensors'))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise ModelError(f'cannot read {path / "model.safetensors"} ({exc})') from exc
        weights = {key.removeprefix('bert.'): value for key, value in weights.items()}
        expected = model.state_dict()
        missing = sorted(set(expected) - set(weights))
        wrong = [key for key in expected if key in weights
                 and weights[key].shape != expected[key].shape]
        if missing or wrong:
            raise ModelError(f'{path}: not a BERT of its config.json (missing {missing[:3]}, '
                             f'wrong shape {wrong[:3]})')
        model.load_state_dict({key: weights[key] for key in expected})
        return model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> types.SimpleNamespace:
        """``last_hidden_state`` (B, L, d) of token ids (B, L) with their mask (B, L)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        emb = self.embeddings
        h = emb.LayerNorm(emb.word_embeddings(input_ids) + emb.position_embeddings(positions)
                          + emb.token_type_embeddings.weight[0])
        keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        for layer in self.encoder.layer:
            h = layer(h, keep)
        return types.SimpleNamespace(last_hidden_state=h)

