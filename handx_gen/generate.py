"""Generate bimanual motion from text, and from given motion, with the trained models.

:class:`Generator` loads the shipped ``small`` checkpoints (``handx_gen/weights/``) unless told
otherwise, the frozen text encoder they were trained with, and turns a request into a
:class:`~handx_gen.motion.container.BimanualMotion`::

    from handx_gen import Generator

    generator = Generator()
    clip = generator.generate('Both hands clap twice.', seconds=4, seed=0)
    reaction = generator.generate('The left hand grasps the right wrist.', mode='reaction',
                                  given=observed, side='right')  # right hand given
    clip.save('clap.npz')

Modes (:class:`~handx_gen.models.masking.MaskMode`): ``text`` (nothing given), ``reaction``
(one hand given, ``side``), ``inbetween`` (the first and last ``k`` frames of ``given``),
``keyframes`` (``frames`` of ``given``), ``trajectory`` (the wrist paths of ``given``). The
diffusion model serves every mode; the autoregressive model serves ``text``, ``reaction`` and
``inbetween`` by fixing the given tokens. In every mode the given parts of the result equal the
given motion: the models condition on them, and a final projection makes them exact. Hands
are sized like the given motion's hands (or the default 18.5 cm hand for text alone).
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handx_gen.errors import ConfigError, ModelError, unknown_choice
from handx_gen.hand.topology import HandSide
from handx_gen.models.masking import ConditionMask, MaskMode
from handx_gen.models.smoothing import Smoother, SmoothingConfig
from handx_gen.motion.container import BimanualMotion
from handx_gen.motion.features import FEATURE_LAYOUT, Normalizer

__all__ = ['DEFAULT_WEIGHTS', 'Generator', 'ModelKind', 'default_checkpoint']

WEIGHTS_DIR = Path(__file__).resolve().parent / 'weights'


class ModelKind(str, enum.Enum):
    """Which generation model."""

    DIFFUSION = 'diffusion'
    AR = 'ar'

    @classmethod
    def parse(cls, value: ModelKind | str) -> ModelKind:
        try:
            return cls(value.strip().lower() if isinstance(value, str) else value)
        except ValueError:
            raise ConfigError(unknown_choice('model', value, [m.value for m in cls])) from None


DEFAULT_WEIGHTS = {ModelKind.DIFFUSION: 'diffusion_small.pt', ModelKind.AR: 'ar_small.pt'}
AR_MODES = (MaskMode.TEXT, MaskMode.REACTION, MaskMode.INBETWEEN)


def default_checkpoint(kind: ModelKind | str) -> Path:
    """The shipped checkpoint of a model kind."""
    return WEIGHTS_DIR / DEFAULT_WEIGHTS[ModelKind.parse(kind)]


class _Loaded:
    """A loaded model with what it was trained with."""

    def __init__(self, kind: ModelKind, path: Path, checkpoint: Mapping[str, Any],
                 device: torch.device) -> None:
        from handx_gen.models.ar import HandTokenGPT
        from handx_gen.models.diffusion import GaussianDiffusion
        from handx_gen.models.fsq import HandTokenizer

        # the format was checked by the reader (Generator.load); from_checkpoint checks again
        self.kind, self.path = kind, path
        missing = [key for key in ('normalizer', 'fps', 'text_encoder')
                   if key not in checkpoint]
        if kind is ModelKind.AR and 'tokenizer' not in checkpoint:
            missing.append('tokenizer')
        if missing:
            raise ModelError(f'{path}: the checkpoint lacks {missing}; was it written by '
                             f'training/train_{kind.value}.py?')
        try:
            self.normalizer = Normalizer.from_state_dict(checkpoint['normalizer'])
            self.fps = float(checkpoint['fps'])
            self.text_encoder = dict(checkpoint['text_encoder'])
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelError(f'{path}: bad checkpoint entries ({exc})') from exc
        self.data = checkpoint.get('data', {})
        trained_frames = checkpoint.get('num_frames')
        self.step = checkpoint.get('step')
        if kind is ModelKind.DIFFUSION:
            self.model = GaussianDiffusion.from_checkpoint(checkpoint).to(device).eval()
            self.model.set_normalizer(self.normalizer)  # feature statistics for sampling
            self.max_frames = self.model.config.max_frames
            self.downsample = 1
        else:
            self.model = HandTokenGPT.from_checkpoint(checkpoint).to(device).eval()
            self.tokenizer = HandTokenizer.from_checkpoint(checkpoint['tokenizer']).to(
                device).eval()
            self.downsample = self.tokenizer.config.downsample
            self.max_frames = self.model.config.max_steps * self.downsample
        if isinstance(trained_frames, int) and 2 <= trained_frames < self.max_frames:
            self.max_frames = trained_frames  # the clip length it learned; no longer

    def describe(self) -> dict[str, Any]:
        return {'model': self.kind.value, 'checkpoint': str(self.path), 'step': self.step}


class Generator:
    """Text- and motion-conditioned bimanual motion generation (see the module docstring).

    Models load on first use. Not thread-safe: give each thread its own generator, or lock.
    """

    def __init__(
        self,
        *,
        diffusion: str | os.PathLike | None = None,
        ar: str | os.PathLike | None = None,
        device: str | torch.device = 'cpu',
        text_encoder: str | os.PathLike | None = None,
    ) -> None:
        """
        Args:
            diffusion: Diffusion checkpoint (``model.pt`` of ``training/train_diffusion.py``);
                default the shipped ``diffusion_small.pt``.
            ar: AR checkpoint (``model.pt`` of ``training/train_ar.py``); default the
                shipped ``ar_small.pt``.
            device: Torch device of the models and the text encoder.
            text_encoder: Folder of the text encoder weights, replacing the folder a
                checkpoint names; a checkpoint naming a folder is refused without it (only
                the installed MiniLM loads by default).

        Raises:
            ConfigError: An unknown device.
        """
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f'unknown torch device {device!r}') from exc
        self._paths = {
            ModelKind.DIFFUSION: Path(diffusion) if diffusion is not None
            else default_checkpoint(ModelKind.DIFFUSION),
            ModelKind.AR: Path(ar) if ar is not None else default_checkpoint(ModelKind.AR),
        }
        self._models: dict[ModelKind, _Loaded] = {}
        self._encoders: dict[str, Any] = {}
        self._text_encoder = None if text_encoder is None else Path(text_encoder)

    def checkpoint_path(self, model: ModelKind | str) -> Path:
        return self._paths[ModelKind.parse(model)]

    def load(self, model: ModelKind | str) -> _Loaded:
        """Load (once) and return a model with its normaliser and settings.

        Raises:
            ModelError: Missing, corrupted or wrong-version checkpoint.
        """
        from handx_gen.models.ar import CHECKPOINT_FORMAT as AR_FORMAT
        from handx_gen.models.checkpoints import load_checkpoint
        from handx_gen.models.diffusion import CHECKPOINT_FORMAT as DIFFUSION_FORMAT

        kind = ModelKind.parse(model)
        if kind not in self._models:
            path = self._paths[kind]
            if not path.is_file() and path.parent == WEIGHTS_DIR:
                raise ModelError(f'{path}: the shipped {kind.value} checkpoint is missing; '
                                 f'train it with `make models` or pass a checkpoint path')
            fmt = DIFFUSION_FORMAT if kind is ModelKind.DIFFUSION else AR_FORMAT
            checkpoint = load_checkpoint(path, fmt, f'{kind.value} model', self.device)
            self._models[kind] = _Loaded(kind, path, checkpoint, self.device)
        return self._models[kind]

    def _encoder(self, loaded: _Loaded) -> Any:
        from handx_gen.models.text_encoder import encoder_from_description

        values = dict(loaded.text_encoder.get('config') or {})
        values.pop('cache_size', None)
        key = repr(sorted(values.items()))
        if key not in self._encoders:
            self._encoders[key] = encoder_from_description(
                loaded.text_encoder, self.device, loaded.path, path=self._text_encoder)
        return self._encoders[key]

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        text: str,
        *,
        model: ModelKind | str = ModelKind.DIFFUSION,
        mode: MaskMode | str = MaskMode.TEXT,
        given: BimanualMotion | None = None,
        seconds: float | None = None,
        seed: int = 0,
        side: HandSide | int | str | None = None,
        k: int | None = None,
        frames: Sequence[int] | None = None,
        include_orient: bool = False,
        guidance: float | None = None,
        steps: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        smoothing: SmoothingConfig | bool | None = True,
    ) -> BimanualMotion:
        """One clip for one prompt.

        Args:
            text: The prompt (1 to the encoder's ``max_chars`` characters).
            model: ``'diffusion'`` or ``'ar'``.
            mode: ``'text'``, ``'reaction'``, ``'inbetween'``, ``'keyframes'`` or
                ``'trajectory'``.
            given: The given motion (every mode but ``text``), at the model's frame rate; the
                result has its length.
            seconds: Length of a text-only clip (default: the longest the model makes, 4 s);
                with ``given``, must match its length if set.
            seed: Seed of the sampling noise: the same seed gives the same motion.
            side: The given hand (reaction), or the hand whose wrist path is given
                (trajectory; ``None`` gives both).
            k: Frames given at each end (inbetween).
            frames: Given frame indices (keyframes).
            include_orient: Trajectory also gives the wrist orientations.
            guidance: Classifier-free guidance scale (default: the model's).
            steps: DDIM steps (diffusion; default: the model's).
            temperature, top_k, top_p: Token sampling (AR).
            smoothing: Temporal smoothing of the generated parts, the given parts kept exactly
                (:mod:`~handx_gen.models.smoothing`: each denoising step's x0 of the
                diffusion model, then the decoded clip's features, with the generated wrists
                kept within a step per frame): ``True`` (default) with the default
                :class:`~handx_gen.models.smoothing.SmoothingConfig`, a config for other
                settings, ``False`` or ``None`` for the models' raw output.

        Returns:
            The clip, with the prompt as its text and the request in ``annotation``.

        Raises:
            ModelError: Bad prompt, given motion of the wrong shape or frame rate, a mode the
                model cannot serve, or a checkpoint that cannot be loaded.
            ConfigError: Unknown model or mode, bad sampling settings.
        """
        from handx_gen.models.text_encoder import DEFAULT_MAX_CHARS, validate_prompt

        kind = ModelKind.parse(model)
        mode = MaskMode.parse(mode)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f'seed must be a non-negative integer, got {seed!r}')
        smoothing = _smoothing_config(smoothing)
        loaded = self.load(kind)
        encoder_config = loaded.text_encoder.get('config') or {}
        text = validate_prompt(text, encoder_config.get('max_chars', DEFAULT_MAX_CHARS))
        if kind is ModelKind.AR and mode not in AR_MODES:
            raise ModelError(f'the AR model cannot serve mode {mode.value!r} (it fixes whole '
                             f'tokens: {", ".join(m.value for m in AR_MODES)}); use '
                             f'model="diffusion"')
        num_frames = self._num_frames(loaded, mode, given, seconds)
        condition = ConditionMask.make(mode, num_frames, side=side, k=k, frames=frames,
                                       include_orient=include_orient)
        raw_known = FEATURE_LAYOUT.encode(given) if given is not None else \
            np.zeros((num_frames, FEATURE_LAYOUT.dim), np.float32)
        mask = condition.array  # (T, D) bool
        features = self._encoder(loaded).encode([text])
        generator = torch.Generator().manual_seed(int(seed))
        known = torch.from_numpy(loaded.normalizer.normalize(raw_known)).float()
        if kind is ModelKind.DIFFUSION:
            x0_smoother = None
            if smoothing is not None and smoothing.denoising_steps != 0:
                x0_smoother = Smoother(smoothing, fps=loaded.fps)
            x = loaded.model.sample(features, num_frames, mask=torch.from_numpy(mask),
                                    known=known, steps=steps, guidance=guidance,
                                    generator=generator, x0_smoother=x0_smoother,
                                    x0_smoothing_steps=None if smoothing is None
                                    else smoothing.denoising_steps)[0]
        else:
            x = self._sample_ar(loaded, features, condition, known, guidance, temperature,
                                top_k, top_p, generator)
        raw = loaded.normalizer.denormalize(x.detach().cpu().double().numpy())  # (T, D)
        raw = np.where(mask, raw_known, raw)  # given parts exactly as given
        skeletons = _skeletons(given, condition)
        request = {'model': kind.value, 'mode': mode.value, 'seed': int(seed),
                   'checkpoint': str(loaded.path), 'step': loaded.step,
                   'condition': condition.to_dict()}
        if smoothing is not None:
            request['smoothing'] = smoothing.to_dict()
            if smoothing.final_pass:
                smoothed = Smoother(smoothing, fps=loaded.fps).smooth_features(raw, mask)
                raw = smoothed.features
                request['smoothing']['wrist_step_max_m'] = smoothed.max_wrist_step_m
        if kind is ModelKind.DIFFUSION:
            request['steps'] = steps if steps is not None else loaded.model.config.sample_steps
        request['guidance'] = guidance if guidance is not None else loaded.model.config.guidance
        out = FEATURE_LAYOUT.decode(raw, loaded.fps, skeletons=skeletons)
        keypoints = out.keypoints.copy()
        if given is not None:  # hands given whole at a frame keep the given keypoints exactly
            for side in HandSide:
                whole = mask[:, _hand_dims(side)].all(axis=1)  # (T,)
                keypoints[whole, side] = given.keypoints[whole, side]
        return BimanualMotion(loaded.fps, out.global_orient, out.hand_pose, out.transl,
                              keypoints, texts=(text,), annotation={'generated': request})

    def generate_batch(self, texts: Sequence[str], *, seed: int = 0, **options: Any
                       ) -> list[BimanualMotion]:
        """One clip per prompt, prompt ``i`` with seed ``seed + i`` (so a batch reproduces
        the single calls); other options as :meth:`generate`.

        Raises:
            ModelError: No prompts, or a bad prompt (the message names its index).
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
            raise ModelError('generate_batch needs a non-empty list of prompts')
        clips = []
        for index, text in enumerate(texts):
            try:
                clips.append(self.generate(text, seed=seed + index, **options))
            except ModelError as exc:
                raise ModelError(f'prompt {index}: {exc}') from None
        return clips

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _num_frames(loaded: _Loaded, mode: MaskMode, given: BimanualMotion | None,
                    seconds: float | None) -> int:
        limit = loaded.max_frames
        if given is None:
            if mode is not MaskMode.TEXT:
                raise ModelError(f'mode {mode.value!r} needs a given motion (given=..., --given)')
            if seconds is None:
                return limit
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                    or not math.isfinite(seconds) or seconds <= 0:
                raise ConfigError(f'seconds must be a positive number, got {seconds!r}')
            frames = int(round(seconds * loaded.fps))
            if not 2 <= frames <= limit:
                raise ModelError(f'{seconds} s is {frames} frames at {loaded.fps:g} fps; the '
                                 f'model makes 2 to {limit} frames ({limit / loaded.fps:g} s)')
            return frames
        if not isinstance(given, BimanualMotion):
            raise ModelError(f'given must be a BimanualMotion, got {type(given).__name__}')
        if abs(given.fps - loaded.fps) > 1e-6:
            raise ModelError(f'the given motion is at {given.fps:g} fps; the model works at '
                             f'{loaded.fps:g} fps (resample it: `handx data resample FILE '
                             f'OUT.npz --fps {loaded.fps:g}`, or motion.resample('
                             f'{loaded.fps:g}))')
        frames = given.num_frames
        if not 2 <= frames <= limit:
            cut = (f'; cut it: `handx data slice FILE OUT.npz --end {limit / loaded.fps:g}`'
                   if frames > limit else '')
            raise ModelError(f'the given motion has {frames} frames; the model takes 2 to '
                             f'{limit} ({limit / loaded.fps:g} s at {loaded.fps:g} fps){cut}')
        if seconds is not None and int(round(seconds * loaded.fps)) != frames:
            raise ModelError(f'seconds={seconds} does not match the given motion '
                             f'({frames} frames, {frames / loaded.fps:g} s)')
        return frames

    @staticmethod
    def _sample_ar(loaded: _Loaded, features: Any, condition: ConditionMask,
                   known: torch.Tensor, guidance: float | None, temperature: float,
                   top_k: int | None, top_p: float | None,
                   generator: torch.Generator) -> torch.Tensor:
        from handx_gen.models.ar import condition_token_mask
        from handx_gen.models.dataset import pad_frames

        down = loaded.downsample
        frames = condition.num_frames
        padded = -(-frames // down) * down
        known_pad = torch.from_numpy(pad_frames(known.numpy(), padded))[None]  # (1, T', D)
        token_condition = ConditionMask.make(condition.mode, padded, side=condition.side,
                                             k=condition.k)
        token_mask = condition_token_mask(token_condition, down)  # (2, S)
        device = loaded.model.device
        given_tokens = loaded.tokenizer.encode(known_pad.to(device)) if token_mask.any() \
            else None
        tokens = loaded.model.generate(features.to(device), padded // down, given=given_tokens,
                                       given_mask=token_mask[None] if given_tokens is not None
                                       else None, top_k=top_k, top_p=top_p,
                                       temperature=temperature, guidance=guidance,
                                       generator=generator)
        with torch.no_grad():
            x = loaded.tokenizer.decode(tokens)  # (1, T', D)
        return x[0, :frames]


def _smoothing_config(value: SmoothingConfig | bool | None) -> SmoothingConfig | None:
    if value is True:
        return SmoothingConfig()
    if value is False or value is None:
        return None
    if isinstance(value, SmoothingConfig):
        return value
    raise ConfigError(f'smoothing must be true, false, None or a SmoothingConfig, got '
                      f'{value!r}')


def _hand_dims(side: HandSide) -> np.ndarray:
    """(D,) bool: the parameter groups of one hand (what decides its keypoints)."""
    from handx_gen.motion.features import FeatureGroup

    return FEATURE_LAYOUT.group_mask([(side, group) for group in (
        FeatureGroup.TRANSL, FeatureGroup.GLOBAL_ORIENT, FeatureGroup.HAND_POSE)])


def _skeletons(given: BimanualMotion | None, condition: ConditionMask) -> Any:
    """Hands sized like the given motion's (fitted to its keypoints, the rest wrist where the
    given parameters put it); a generated hand whose keypoints are not given mirrors the
    other; default hands without a given motion."""
    if given is None:
        return None
    from handx_gen.hand.ik import fit_skeleton
    from handx_gen.hand.skeleton import HandSkeleton

    def fitted(side: HandSide) -> HandSkeleton:
        skeleton = fit_skeleton(given.keypoints[:, side], side)
        # FK puts the wrist at J_wrist_rest + transl: keep the given motion's offset (zero for
        # our skeletons, the template wrist for skeletons from real MANO files)
        wrist = np.median(given.keypoints[:, side, 0] - given.transl[:, side], axis=0)
        shift = wrist - skeleton.joints_rest[0]
        return HandSkeleton(side, skeleton.joints_rest + shift, skeleton.tips_rest + shift)

    if condition.mode is MaskMode.REACTION:
        own = fitted(condition.side)
        other = own.mirrored()
        return (own, other) if condition.side is HandSide.LEFT else (other, own)
    return tuple(fitted(side) for side in HandSide)
