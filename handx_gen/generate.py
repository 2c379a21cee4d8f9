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
given motion: the models condition on them, and a final projection makes them exact (a hand
given whole at a frame is the given motion's there, bit for bit). Hands are sized like the
given motion's hands (or the default 18.5 cm hand for text alone).

A given motion may be of any length, and a text clip of any number of ``seconds``: what is
longer than the model makes at once (4 s) is made in overlapping windows, each continuing the
one before (:mod:`handx_gen.windows`; :meth:`Generator.plan` says which). For a given motion
that arrives over time, :meth:`Generator.stream` makes the same windows one at a time (the
generation node's reactions)::

    reaction = generator.generate(text, mode='reaction', given=take_of_20_s, side='right')
    stream = generator.stream(text, side='right')
    new_frames = stream.extend(start, stop, given=window)

A given motion may hold one hand only (``given.present``, a tracker's recording): the
reaction mode with ``side`` the hand it holds generates the absent hand, and the result holds
both. Any request that would keep an absent hand as given (a reaction with ``side`` the absent
hand, in-betweening, keyframes, both wrist paths) is refused with a :class:`ModelError` that
names the hand (:func:`check_given_hands`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from handx_gen.errors import ConfigError, ModelError, unknown_choice
from handx_gen.hand.topology import HandSide
from handx_gen.models.contact_guidance import ContactGuidanceConfig, complete_contacts
from handx_gen.models.masking import ConditionMask, MaskMode
from handx_gen.models.separation import SeparationConfig, separate_hands
from handx_gen.models.smoothing import Smoother, SmoothingConfig
from handx_gen.motion.container import BimanualMotion
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureGroup, Normalizer
from handx_gen.rates import check_clip_size
from handx_gen.windows import (
    MotionStream,
    Window,
    WindowSettings,
    plan_windows,
    window_seed,
)

__all__ = ['DEFAULT_WEIGHTS', 'Generator', 'ModelKind', 'check_given_hands',
           'default_checkpoint']

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
STREAM_MODES = (MaskMode.TEXT, MaskMode.REACTION, MaskMode.TRAJECTORY)  # the same mask each frame


def check_given_hands(given: BimanualMotion, mode: MaskMode | str,
                      side: HandSide | int | str | None = None) -> None:
    """Refuse a request that would keep a hand absent from ``given`` as given.

    The hands a mode gives: ``reaction`` the ``side`` hand; ``trajectory`` the ``side`` hand,
    or both without one; ``inbetween`` and ``keyframes`` both; ``text`` none.

    Raises:
        ModelError: A given hand is absent; the message names it and the request that
            generates it instead (a reaction given the present hand).
        ConfigError: An unknown mode or side.
    """
    mode = MaskMode.parse(mode)
    if not isinstance(given, BimanualMotion) or not given.absent_sides \
            or mode is MaskMode.TEXT:
        return
    hand = None if side is None else _hand_side(side)
    absent = given.absent_sides[0]
    kept = given.present_sides[0].name.lower()
    name = absent.name.lower()
    instead = (f"generate the {name} hand with mode 'reaction' and side {kept!r} (`handx "
               f'generate --mode reaction --side {kept}`)')
    if mode is MaskMode.REACTION:
        if hand is absent:
            raise ModelError(f'the given motion holds the {kept} hand only: its {name} hand '
                             f'is absent and cannot be the given hand of a reaction; give the '
                             f'{kept} hand (side {kept!r}, --side {kept}) and the {name} hand is '
                             f'generated')
        return
    if mode is MaskMode.TRAJECTORY and hand is not None and hand is not absent:
        return
    gives = (f'the {name} wrist path' if mode is MaskMode.TRAJECTORY and hand is absent
             else 'both hands' if mode is not MaskMode.TRAJECTORY else 'both wrist paths')
    raise ModelError(f'mode {mode.value!r} keeps {gives} of the given motion, but it holds the '
                     f'{kept} hand only (its {name} hand is absent); {instead}')


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
        window: WindowSettings | None = None,
        progress: Callable[[int, int], None] | None = None,
        smoothing: SmoothingConfig | bool | None = True,
        contacts: ContactGuidanceConfig | bool | None = True,
        separation: SeparationConfig | bool | None = True,
    ) -> BimanualMotion:
        """One clip for one prompt, of any length.

        A clip longer than the model makes at once (4 s for the shipped models) is made in
        overlapping windows, each conditioned on the end of the one before
        (:mod:`handx_gen.windows`); a clip that fits is one window, as it always was.

        Args:
            text: The prompt (1 to the encoder's ``max_chars`` characters).
            model: ``'diffusion'`` or ``'ar'``.
            mode: ``'text'``, ``'reaction'``, ``'inbetween'``, ``'keyframes'`` or
                ``'trajectory'``.
            given: The given motion (every mode but ``text``), at the model's frame rate, of
                any length; the result has its length.
            seconds: Length of a text-only clip (default: the longest the model makes in one
                window, 4 s); with ``given``, must match its length if set.
            seed: Seed of the sampling noise: the same seed gives the same motion.
            side: The given hand (reaction), or the hand whose wrist path is given
                (trajectory; ``None`` gives both).
            k: Frames given at each end (inbetween).
            frames: Given frame indices (keyframes).
            include_orient: Trajectory also gives the wrist orientations.
            guidance: Classifier-free guidance scale (default: the model's).
            steps: DDIM steps (diffusion; default: the model's).
            temperature, top_k, top_p: Token sampling (AR).
            window: How long clips are cut into windows and joined (default
                :class:`~handx_gen.windows.WindowSettings`: the model's longest clip, 1 s of
                overlap, 4 frames of context).
            progress: Called as ``progress(windows_done, windows)`` after each window.
            smoothing: Temporal smoothing of the generated parts, the given parts kept exactly
                (:mod:`~handx_gen.models.smoothing`: each denoising step's x0 of the
                diffusion model, then the decoded clip's features, with the generated wrists
                kept within a step per frame): ``True`` (default) with the default
                :class:`~handx_gen.models.smoothing.SmoothingConfig`, a config for other
                settings, ``False`` or ``None`` for the models' raw output.
            contacts: Contact completion (:mod:`~handx_gen.models.contact_guidance`): each
                contact between the hands that the prompt names is made where the clip comes
                within reach of it, by moving the generated wrists (given parts stay exact):
                ``True`` (default) with the default
                :class:`~handx_gen.models.contact_guidance.ContactGuidanceConfig`, a config
                for other settings, ``False`` or ``None`` to leave the clip as sampled.
            separation: Hand separation (:mod:`~handx_gen.models.separation`), before contact
                completion: where the hands overlap deeper than a touch (3 mm), the generated
                wrists are moved apart, eased in and out (given parts stay exact): ``True``
                (default) with the default
                :class:`~handx_gen.models.separation.SeparationConfig`, a config for other
                settings, ``False`` or ``None`` to leave the overlaps as sampled.

        Returns:
            The clip, with the prompt as its text and the request in ``annotation`` (with
            what separation and contact completion did, under ``'separation'`` and
            ``'contacts'``, when they moved a hand).

        Raises:
            ModelError: Bad prompt, given motion of the wrong shape or frame rate, a hand
                absent from the given motion that the mode would keep as given
                (:func:`check_given_hands`), a mode the model cannot serve, or a checkpoint
                that cannot be loaded.
            ConfigError: Unknown model or mode, bad sampling or window settings.
        """
        kind = ModelKind.parse(model)
        mode = MaskMode.parse(mode)
        _check_seed(seed)
        smoothing = _step_config('smoothing', smoothing, SmoothingConfig)
        contacts = _step_config('contacts', contacts, ContactGuidanceConfig)
        separation = _step_config('separation', separation, SeparationConfig)
        loaded = self.load(kind)
        text = _check_prompt(loaded, text)
        _check_model_mode(loaded, mode)
        num_frames = self._num_frames(loaded, mode, given, seconds)
        condition = ConditionMask.make(mode, num_frames, side=side, k=k, frames=frames,
                                       include_orient=include_orient)
        if given is not None:
            check_given_hands(given, mode, condition.side)
        if kind is ModelKind.AR and mode is MaskMode.INBETWEEN \
                and condition.k < loaded.downsample:
            raise ModelError(f'inbetween with k={condition.k} frames gives less than one token '
                             f'({loaded.downsample} frames) at each end; use k >= '
                             f'{loaded.downsample}')
        settings = _settings(window, WindowSettings())
        window_frames, overlap = settings.resolve(loaded.max_frames)
        plan = plan_windows(num_frames, window_frames, overlap)
        request = self._request(loaded, mode, seed, steps, guidance)
        request['condition'] = condition.to_dict()
        if len(plan) > 1:
            request['windows'] = {**dataclasses.asdict(settings), 'count': len(plan),
                                  'window_frames': window_frames}
        stream = self._stream(loaded, text, seed=seed, guidance=guidance, steps=steps,
                              temperature=temperature, top_k=top_k, top_p=top_p,
                              window_frames=window_frames, settings=settings,
                              skeletons=_skeletons(given, condition.mode, condition.side),
                              smoothing=smoothing)
        if smoothing is not None:
            request['smoothing'] = smoothing.to_dict()
        mask = condition.array  # (T, D) bool
        parts = []
        for part in plan:
            piece = None if given is None else (
                given if len(plan) == 1 else given[part.start:part.stop])
            parts.append(stream.extend(part.start, part.stop, given=piece,
                                       mask=mask[part.start:part.stop],
                                       last=part.index == len(plan) - 1))
            if progress is not None:
                progress(part.index + 1, len(plan))
        clip = BimanualMotion.concatenate(parts, texts=(text,),
                                          annotation={'generated': request})
        if contacts is None and separation is None:
            return clip
        transl = FEATURE_LAYOUT.group_mask  # a hand is given at a frame when its wrist is
        free = np.stack([~mask[:, transl([(side, FeatureGroup.TRANSL)])].any(axis=1)
                         for side in HandSide], axis=1)  # (T, 2)
        moved = clip
        if separation is not None:
            # First, so that completion makes its contacts on hands that no longer overlap
            # (it never takes them deeper than 8 mm, or than they already were).
            separated = separate_hands(moved, free=free, config=separation)
            if separated.motion is not moved:
                request['separation'] = separated.to_dict()
                moved = separated.motion
        if contacts is not None:
            completion = complete_contacts(moved, text, free=free, config=contacts)
            if completion.motion is not moved:
                request['contacts'] = completion.to_dict()
                moved = completion.motion
        if moved is clip:
            return clip
        return moved.with_annotation({'generated': request})

    def plan(
        self,
        model: ModelKind | str = ModelKind.DIFFUSION,
        *,
        mode: MaskMode | str = MaskMode.TEXT,
        given: BimanualMotion | None = None,
        seconds: float | None = None,
        window: WindowSettings | None = None,
    ) -> tuple[Window, ...]:
        """The windows :meth:`generate` makes for a request (one when the clip fits).

        Raises:
            ModelError, ConfigError: As :meth:`generate`, for these arguments.
        """
        loaded = self.load(ModelKind.parse(model))
        num_frames = self._num_frames(loaded, MaskMode.parse(mode), given, seconds)
        window_frames, overlap = _settings(window, WindowSettings()).resolve(loaded.max_frames)
        return plan_windows(num_frames, window_frames, overlap)

    def stream(
        self,
        text: str,
        *,
        model: ModelKind | str = ModelKind.DIFFUSION,
        mode: MaskMode | str = MaskMode.REACTION,
        side: HandSide | int | str | None = None,
        include_orient: bool = False,
        seed: int = 0,
        guidance: float | None = None,
        steps: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        window: WindowSettings | None = None,
        skeletons: Sequence[Any] | None = None,
        smoothing: SmoothingConfig | bool | None = True,
    ) -> MotionStream:
        """Motion for a given motion that arrives over time, a window at a time, each window
        continuing the frames made before (:class:`~handx_gen.windows.MotionStream`): the
        generation node's reaction to an observed hand.

        ::

            stream = generator.stream('The left hand mirrors the right hand.', side='right')
            new = stream.extend(0, 60, given=first_two_seconds)       # frames [0, 60)
            new = stream.extend(15, 75, given=window)                 # frames [60, 75)

        Args:
            text, model, side, include_orient, seed, guidance, steps, temperature, top_k,
                top_p: As :meth:`generate`.
            mode: One whose mask is the same at every frame: ``'reaction'`` (default),
                ``'trajectory'`` or ``'text'`` (an endless clip from text alone).
            window: ``window_frames`` is the longest window the stream takes (default the
                model's longest clip); context, hold (default 0: every frame made is kept at
                once) and blend frames as in :meth:`generate`.
            skeletons: (left, right) skeletons of the result; default fitted to the first
                window's given motion, like :meth:`generate`'s.

        Raises:
            ModelError, ConfigError: As :meth:`generate`; a mode whose mask depends on the
                clip's length (inbetween, keyframes).
        """
        kind = ModelKind.parse(model)
        mode = MaskMode.parse(mode)
        if mode not in STREAM_MODES:
            raise ModelError(f'a stream takes modes whose mask is the same at every frame '
                             f'({", ".join(m.value for m in STREAM_MODES)}), got '
                             f'{mode.value!r}')
        _check_seed(seed)
        loaded = self.load(kind)
        text = _check_prompt(loaded, text)
        _check_model_mode(loaded, mode)
        condition = ConditionMask.make(mode, 1, side=side, include_orient=include_orient)
        settings = _settings(window, WindowSettings(hold_frames=0))
        window_frames = settings.window_frames or loaded.max_frames
        if window_frames > loaded.max_frames:
            raise ConfigError(f'window_frames={window_frames} is longer than the model makes '
                              f'({loaded.max_frames} frames)')
        request = self._request(loaded, mode, seed, steps, guidance)
        request['condition'] = {**condition.to_dict(), 'num_frames': None}
        return self._stream(
            loaded, text, seed=seed, guidance=guidance, steps=steps, temperature=temperature,
            top_k=top_k, top_p=top_p, window_frames=window_frames, settings=settings,
            smoothing=_step_config('smoothing', smoothing, SmoothingConfig),
            skeletons=skeletons if skeletons is not None or mode is MaskMode.TEXT else (
                lambda given: _skeletons(given, condition.mode, condition.side)),
            frame_mask=lambda n: ConditionMask.make(
                mode, n, side=condition.side, include_orient=include_orient).array,
            annotation={'generated': request})

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
    def _request(loaded: _Loaded, mode: MaskMode, seed: int, steps: int | None,
                 guidance: float | None) -> dict[str, Any]:
        """What a result's annotation says about how it was made."""
        request = {'model': loaded.kind.value, 'mode': mode.value, 'seed': int(seed),
                   'checkpoint': str(loaded.path), 'step': loaded.step}
        if loaded.kind is ModelKind.DIFFUSION:
            request['steps'] = steps if steps is not None else loaded.model.config.sample_steps
        request['guidance'] = guidance if guidance is not None else loaded.model.config.guidance
        return request

    def _stream(self, loaded: _Loaded, text: str, *, seed: int, guidance: float | None,
                steps: int | None, temperature: float, top_k: int | None, top_p: float | None,
                window_frames: int, settings: WindowSettings, skeletons: Any,
                frame_mask: Callable[[int], np.ndarray] | None = None,
                annotation: dict[str, Any] | None = None,
                smoothing: SmoothingConfig | None = None) -> MotionStream:
        """A :class:`MotionStream` whose windows ``loaded`` samples for ``text``; each
        window smoothed as ``smoothing`` says, its known frames (given parts and the context
        kept from the window before) held exactly."""
        features = self._encoder(loaded).encode([text])
        normalizer = loaded.normalizer
        smoother = None if smoothing is None else Smoother(smoothing, fps=loaded.fps)

        def sample(known: np.ndarray, mask: np.ndarray, index: int) -> np.ndarray:
            generator = torch.Generator().manual_seed(window_seed(seed, index))
            if loaded.kind is ModelKind.DIFFUSION:
                denoising = smoother is not None and smoothing.denoising_steps != 0
                x = loaded.model.sample(
                    features, len(known), mask=torch.from_numpy(mask),
                    known=torch.from_numpy(normalizer.normalize(known)).float(), steps=steps,
                    guidance=guidance, generator=generator,
                    x0_smoother=smoother if denoising else None,
                    x0_smoothing_steps=smoothing.denoising_steps if denoising else None)[0]
            else:
                x = self._sample_ar(loaded, features, known, mask, guidance, temperature,
                                    top_k, top_p, generator)
            raw = normalizer.denormalize(x.detach().cpu().double().numpy())  # (T, D)
            if smoother is not None and smoothing.final_pass:
                raw = smoother.smooth_features(np.where(mask, known, raw), mask).features
            return raw

        return MotionStream(sample, loaded.fps, window_frames=window_frames,
                            settings=settings, align=loaded.downsample, frame_mask=frame_mask,
                            skeletons=skeletons, texts=(text,), annotation=annotation)

    @staticmethod
    def _num_frames(loaded: _Loaded, mode: MaskMode, given: BimanualMotion | None,
                    seconds: float | None) -> int:
        if given is None:
            if mode is not MaskMode.TEXT:
                raise ModelError(f'mode {mode.value!r} needs a given motion (given=..., --given)')
            if seconds is None:
                return loaded.max_frames
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                    or not math.isfinite(seconds) or seconds <= 0:
                raise ConfigError(f'seconds must be a positive number, got {seconds!r}')
            frames = int(round(seconds * loaded.fps))
            if frames < 2:
                raise ModelError(f'{seconds} s is {frames} frames at {loaded.fps:g} fps; the '
                                 f'model makes 2 frames or more')
            check_clip_size(frames, loaded.fps, what=f'a clip of {seconds} s',
                            error=ModelError)
            return frames
        if not isinstance(given, BimanualMotion):
            raise ModelError(f'given must be a BimanualMotion, got {type(given).__name__}')
        if abs(given.fps - loaded.fps) > 1e-6:
            raise ModelError(f'the given motion is at {given.fps:g} fps; the model works at '
                             f'{loaded.fps:g} fps (resample it: `handx data resample FILE '
                             f'OUT.npz --fps {loaded.fps:g}`, or motion.resample('
                             f'{loaded.fps:g}))')
        frames = given.num_frames
        if frames < 2:
            raise ModelError(f'the given motion has {frames} frame; the model takes 2 or more')
        if seconds is not None and int(round(seconds * loaded.fps)) != frames:
            raise ModelError(f'seconds={seconds} does not match the given motion '
                             f'({frames} frames, {frames / loaded.fps:g} s)')
        return frames

    @staticmethod
    def _sample_ar(loaded: _Loaded, features: Any, known: np.ndarray, mask: np.ndarray,
                   guidance: float | None, temperature: float, top_k: int | None,
                   top_p: float | None, generator: torch.Generator) -> torch.Tensor:
        """One window of the AR model: the tokens whose frames ``mask`` gives whole for their
        hand are fixed to the encoding of ``known``, the others sampled; (T, D) normalised."""
        from handx_gen.models.ar import frame_token_mask
        from handx_gen.models.dataset import pad_frames

        down = loaded.downsample
        frames = len(known)
        padded = -(-frames // down) * down
        mask_pad = pad_frames(mask, padded)  # (T', D): padding repeats the last frame
        token_mask = frame_token_mask(mask_pad, down)  # (2, S)
        device = loaded.model.device
        given_tokens = None
        if token_mask.any():
            filled = _fill_hands(known, mask)  # the encoder sees whole hands only
            known_pad = torch.from_numpy(
                pad_frames(loaded.normalizer.normalize(filled), padded)).float()[None]
            given_tokens = loaded.tokenizer.encode(known_pad.to(device))
        tokens = loaded.model.generate(features.to(device), padded // down, given=given_tokens,
                                       given_mask=token_mask[None] if given_tokens is not None
                                       else None, top_k=top_k, top_p=top_p,
                                       temperature=temperature, guidance=guidance,
                                       generator=generator)
        with torch.no_grad():
            x = loaded.tokenizer.decode(tokens)  # (1, T', D)
        return x[0, :frames]


_Step = TypeVar('_Step', SmoothingConfig, ContactGuidanceConfig, SeparationConfig)


def _step_config(name: str, value: _Step | bool | None, kind: type[_Step]) -> _Step | None:
    """A post-processing step's argument: ``True`` its defaults, ``False``/``None`` off, or
    a config of its own type."""
    if value is True:
        return kind()
    if value is False or value is None:
        return None
    if isinstance(value, kind):
        return value
    raise ConfigError(f'{name} must be true, false, None or a {kind.__name__}, got {value!r}')


def _hand_side(side: HandSide | int | str) -> HandSide:
    if isinstance(side, HandSide):
        return side
    names = [s.name.lower() for s in HandSide]
    if isinstance(side, str) and side.strip().lower() in names:
        return HandSide[side.strip().upper()]
    if isinstance(side, (int, np.integer)) and not isinstance(side, bool) and int(side) in (0, 1):
        return HandSide(int(side))
    raise ConfigError(unknown_choice('hand side', side, names))


def _settings(window: Any, default: WindowSettings) -> WindowSettings:
    if window is None:
        return default
    if not isinstance(window, WindowSettings):
        raise ConfigError(f'window must be WindowSettings, got {type(window).__name__}')
    return window


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f'seed must be a non-negative integer, got {seed!r}')


def _check_prompt(loaded: _Loaded, text: Any) -> str:
    from handx_gen.models.text_encoder import DEFAULT_MAX_CHARS, validate_prompt

    encoder_config = loaded.text_encoder.get('config') or {}
    return validate_prompt(text, encoder_config.get('max_chars', DEFAULT_MAX_CHARS))


def _check_model_mode(loaded: _Loaded, mode: MaskMode) -> None:
    if loaded.kind is ModelKind.AR and mode not in AR_MODES:
        raise ModelError(f'the AR model cannot serve mode {mode.value!r} (it fixes whole '
                         f'tokens: {", ".join(m.value for m in AR_MODES)}); use '
                         f'model="diffusion"')


def _fill_hands(known: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``known`` (T, D) with each hand's frames that are not given whole replaced by the
    nearest frame that is (where the hand has one): what a convolutional encoder should see
    around a hand's given frames, rather than whatever ``known`` holds there."""

    out = known.copy()
    rows = np.arange(len(known))
    for side in HandSide:
        dims = FEATURE_LAYOUT.group_mask((side, group) for group in FeatureGroup)
        whole = np.flatnonzero(mask[:, dims].all(axis=1))
        if 0 < len(whole) < len(known):
            nearest = whole[np.abs(whole[None, :] - rows[:, None]).argmin(axis=1)]  # (T,)
            out[:, dims] = known[nearest][:, dims]
    return out


def _skeletons(given: BimanualMotion | None, mode: MaskMode, side: HandSide | None) -> Any:
    """Hands sized like the given motion's (fitted to its keypoints, the rest wrist where the
    given parameters put it); a generated hand whose keypoints are not given mirrors the
    other; default hands without a given motion."""
    if given is None:
        return None
    from handx_gen.hand.ik import fit_skeleton
    from handx_gen.hand.skeleton import HandSkeleton

    def fitted(hand: HandSide) -> HandSkeleton:
        skeleton = fit_skeleton(given.keypoints[:, hand], hand)
        # FK puts the wrist at J_wrist_rest + transl: keep the given motion's offset (zero for
        # our skeletons, the template wrist for skeletons from real MANO files)
        wrist = np.median(given.keypoints[:, hand, 0] - given.transl[:, hand], axis=0)
        shift = wrist - skeleton.joints_rest[0]
        return HandSkeleton(hand, skeleton.joints_rest + shift, skeleton.tips_rest + shift)

    if mode is MaskMode.REACTION:
        own = fitted(side)
        other = own.mirrored()
        return (own, other) if side is HandSide.LEFT else (other, own)
    return tuple(fitted(hand) for hand in HandSide)
