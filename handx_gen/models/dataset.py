"""Training sets: a corpus split as fixed-length feature clips with their texts, and the text
feature bank.

:func:`load_clip_set` reads every clip of a corpus split (:mod:`handx_gen.data.synthetic`
layout: ``index.json`` and one ``handx-motion/1`` file per clip), encodes it with the feature
layout and brings it to ``num_frames`` frames: shorter clips are held at their last frame (the
motion ends and stays still, which the text still describes), longer ones keep their first
``num_frames`` frames. The result is cached beside the corpus (``cache/``), keyed by the
corpus index's hash, so later runs start in a second.

:class:`TextBank` encodes every unique text once with the frozen encoder and keeps the token
features in float16 (the training-time embedding cache); :meth:`TextBank.features` pads a batch
of them into :class:`~handx_gen.models.text_encoder.TextFeatures`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handx_gen.errors import ModelError
from handx_gen.models.text_encoder import TextEncoder, TextFeatures
from handx_gen.motion.features import FEATURE_LAYOUT, Normalizer

__all__ = ['CACHE_FORMAT', 'ClipSet', 'TextBank', 'load_clip_set', 'pad_frames']

CACHE_FORMAT = 'handx-clip-set/1'
CACHE_DIR = 'cache'


def pad_frames(features: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, D) features brought to ``num_frames``: the last frame repeated, or the first
    ``num_frames`` kept."""
    if features.shape[0] >= num_frames:
        return features[:num_frames]
    tail = np.repeat(features[-1:], num_frames - features.shape[0], axis=0)
    return np.concatenate([features, tail], axis=0)


@dataclasses.dataclass(frozen=True)
class ClipSet:
    """A corpus split as equal-length feature clips.

    Attributes:
        features: (N, T, D) float32 raw (not normalised) features.
        lengths: (N,) frames of each clip before padding or cutting.
        texts: Each clip's descriptions (at least one).
        clip_ids: Each clip's id in the corpus.
        fps: Frame rate of every clip.
        description: What the set is: corpus folder, seed, split, counts, the index hash.
    """

    features: np.ndarray
    lengths: np.ndarray
    texts: tuple[tuple[str, ...], ...]
    clip_ids: tuple[str, ...]
    fps: float
    description: dict[str, Any]

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[1])

    def normalizer(self) -> Normalizer:
        """Mean and std over the real (unpadded) frames of every clip."""
        return Normalizer.fit(f[:max(1, min(int(n), self.num_frames))]
                              for f, n in zip(self.features, self.lengths, strict=True))

    def subset(self, indices: Sequence[int]) -> ClipSet:
        """The clips at ``indices``, in that order (e.g. a fraction of the data)."""
        idx = np.asarray(indices, dtype=np.int64)
        description = {**self.description, 'clips': int(idx.size),
                       'subset_of': self.description.get('clips')}
        return ClipSet(self.features[idx], self.lengths[idx],
                       tuple(self.texts[i] for i in idx), tuple(self.clip_ids[i] for i in idx),
                       self.fps, description)


def _index_hash(corpus_dir: Path) -> str:
    return hashlib.sha256((corpus_dir / 'index.json').read_bytes()).hexdigest()


def load_clip_set(corpus_dir: str | os.PathLike, split: str, num_frames: int = 120, *,
                  cache: bool = True, progress: bool = False) -> ClipSet:
    """Read a corpus split as a :class:`ClipSet` (from the cache when it is current).

    Args:
        corpus_dir: The corpus folder.
        split: ``'train'``, ``'val'`` or ``'test'``.
        num_frames: Frames per clip.
        cache: Read and write ``corpus_dir/cache/``.
        progress: Show a progress bar while encoding.

    Raises:
        ModelError: No corpus, an empty split, clips of different frame rates or without text.
    """
    from handx_gen.data.synthetic import Split, load_index
    from handx_gen.errors import SynthesisError
    from handx_gen.motion.container import BimanualMotion

    corpus_dir = Path(corpus_dir)
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
        raise ModelError(f'num_frames must be an integer >= 2, got {num_frames!r}')
    try:
        index = load_index(corpus_dir)
        rows = index.split(split)
    except (SynthesisError, ValueError) as exc:
        raise ModelError(f'cannot read split {split!r} of {corpus_dir}: {exc}') from exc
    if not rows:
        raise ModelError(f'{corpus_dir}: split {Split(split).value!r} has no clips')
    digest = _index_hash(corpus_dir)
    stem = corpus_dir / CACHE_DIR / f'{Split(split).value}-{num_frames}'
    if cache:
        cached = _read_cache(stem, digest)
        if cached is not None:
            return cached

    features = np.empty((len(rows), num_frames, FEATURE_LAYOUT.dim), dtype=np.float32)
    lengths = np.empty(len(rows), dtype=np.int64)
    texts, ids = [], []
    iterator: Iterable[Any] = rows
    if progress:
        from tqdm import tqdm
        iterator = tqdm(rows, desc=f'encoding {Split(split).value} clips', unit='clip')
    for i, row in enumerate(iterator):
        motion = BimanualMotion.load(index.path(row))
        if abs(motion.fps - index.fps) > 1e-6:
            raise ModelError(f'{index.path(row)}: {motion.fps} fps, the corpus is at '
                             f'{index.fps} fps')
        if not motion.texts:
            raise ModelError(f'{index.path(row)}: the clip has no text; annotate the corpus '
                             f'first (handx annotate)')
        features[i] = pad_frames(FEATURE_LAYOUT.encode(motion), num_frames)
        lengths[i] = motion.num_frames
        texts.append(tuple(motion.texts))
        ids.append(row.clip_id)
    description = {'corpus': str(corpus_dir), 'seed': index.seed, 'split': Split(split).value,
                   'clips': len(rows), 'frames': int(lengths.sum()), 'fps': index.fps,
                   'num_frames': num_frames, 'index_sha256': digest,
                   'motion_types': list(index.motion_types)}
    clip_set = ClipSet(features, lengths, tuple(texts), tuple(ids), index.fps, description)
    if cache:
        _write_cache(stem, clip_set)
    return clip_set


def _read_cache(stem: Path, digest: str) -> ClipSet | None:
    meta_path, array_path = stem.with_suffix('.json'), stem.with_suffix('.npz')
    try:
        meta = json.loads(meta_path.read_text(encoding='utf-8'))
        if meta.get('format') != CACHE_FORMAT or meta['description']['index_sha256'] != digest:
            return None
        with np.load(array_path) as arrays:
            features, lengths = arrays['features'], arrays['lengths']
        texts = tuple(tuple(t) for t in meta['texts'])
        if features.shape[0] != len(texts):
            return None
        return ClipSet(features, lengths, texts, tuple(meta['clip_ids']), float(meta['fps']),
                       meta['description'])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, stale or damaged: rebuilt by the caller


def _write_cache(stem: Path, clip_set: ClipSet) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.with_name(f'.{stem.name}.{os.getpid()}.npz')
    np.savez(tmp, features=clip_set.features, lengths=clip_set.lengths)
    os.replace(tmp, stem.with_suffix('.npz'))
    meta = {'format': CACHE_FORMAT, 'fps': clip_set.fps, 'clip_ids': list(clip_set.clip_ids),
            'texts': [list(t) for t in clip_set.texts], 'description': clip_set.description}
    tmp_meta = stem.with_name(f'.{stem.name}.{os.getpid()}.json')
    tmp_meta.write_text(json.dumps(meta), encoding='utf-8')
    os.replace(tmp_meta, stem.with_suffix('.json'))


class TextBank:
    """Features of a fixed set of texts, each encoded once.

    Token features are kept in float16 (L_i, d) per text, the pooled vector in float32.
    """

    def __init__(self, encoder: TextEncoder, texts: Iterable[str], *,
                 progress: bool = False, cache_dir: str | os.PathLike | None = None) -> None:
        """Encode ``texts`` (or read them from ``cache_dir``, where a bank of the same encoder
        and the same texts was saved before; a new one is saved there)."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            raise ModelError('a text bank needs at least one text')
        self.dim = encoder.dim
        self._tokens: dict[str, torch.Tensor] = {}
        self._pooled: dict[str, torch.Tensor] = {}
        path = None
        if cache_dir is not None:
            key = hashlib.sha256('\n'.join([encoder.name, str(encoder.max_length), *unique])
                                 .encode('utf-8')).hexdigest()[:16]
            path = Path(cache_dir) / f'texts-{key}.pt'
            if self._read(path, unique):
                return
        chunk = encoder.config.batch_size
        starts = range(0, len(unique), chunk)
        if progress:
            from tqdm import tqdm
            starts = tqdm(starts, desc='encoding texts', unit='batch')
        for start in starts:
            texts_chunk = unique[start:start + chunk]
            features = encoder.encode(texts_chunk)
            lengths = features.attention_mask.sum(1).tolist()
            for row, (text, length) in enumerate(zip(texts_chunk, lengths, strict=True)):
                self._tokens[text] = features.tokens[row, :length].cpu().half()
                self._pooled[text] = features.pooled[row].cpu().float()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
            torch.save({'format': CACHE_FORMAT, 'texts': unique,
                        'tokens': [self._tokens[t] for t in unique],
                        'pooled': torch.stack([self._pooled[t] for t in unique])}, tmp)
            os.replace(tmp, path)

    def _read(self, path: Path, unique: list[str]) -> bool:
        try:
            saved = torch.load(path, weights_only=True)
            if saved.get('format') != CACHE_FORMAT or saved['texts'] != unique:
                return False
            for text, tokens, pooled in zip(unique, saved['tokens'], saved['pooled'],
                                            strict=True):
                self._tokens[text] = tokens
                self._pooled[text] = pooled
            return True
        except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError):
            self._tokens.clear()
            self._pooled.clear()
            return False

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, text: object) -> bool:
        return text in self._tokens

    def features(self, texts: Sequence[str], device: torch.device | str = 'cpu'
                 ) -> TextFeatures:
        """Padded :class:`TextFeatures` of ``texts`` (each must be in the bank)."""
        missing = [t for t in texts if t not in self._tokens]
        if missing:
            raise ModelError(f'{len(missing)} text(s) not in the bank, e.g. {missing[0][:80]!r}')
        length = max(self._tokens[t].shape[0] for t in texts)
        tokens = torch.zeros(len(texts), length, self.dim)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for row, text in enumerate(texts):
            hidden = self._tokens[text]
            tokens[row, :hidden.shape[0]] = hidden.float()
            mask[row, :hidden.shape[0]] = True
        pooled = torch.stack([self._pooled[t] for t in texts])
        return TextFeatures(tokens.to(device), mask.to(device), pooled.to(device))
