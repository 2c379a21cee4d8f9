"""Evaluate motion against text: the clips of a folder, or generated from their texts.

A *reference set* is read by :func:`load_clips` from either a corpus (``index.json``, one
split, default ``test``) or any folder of ``handx-motion/1`` files with texts (searched
recursively), so real captures are evaluated the same way as the synthetic corpus.

For each *source* and *task* one row of metrics is computed (:func:`evaluate`):

* sources: ``ground_truth`` (the reference clips as they are), ``retrieval`` (the training
  clip whose text is nearest to the prompt, by the frozen text encoder's pooled embedding),
  ``diffusion`` and ``ar`` (the generators; default the shipped checkpoints);
* tasks: ``text`` (the prompt only), ``reaction`` (one hand of the reference given, the
  other generated; even clips give the right hand, odd the left) and ``inbetween`` (the
  first and last ``k`` frames given). For ``ground_truth`` every task is the same clip; for
  ``retrieval`` the given parts of the reference replace the retrieved clip's.

Each row holds the embedding metrics of :mod:`handx_gen.eval.metrics` (FID against the
reference distribution, R-precision, MM-Dist, Diversity, MultiModality for generators in the
text task), each the mean over ``repeats`` runs with a 95% interval (runs redraw the batches
and pairs, and resample the clips with replacement for FID and MM-Dist), and the feature
metrics: contact precision/recall, the share of prompts with all stated contacts, contact
order and timing, interpenetration, articulation, coordination, plausibility; plus seconds
per clip. What is stated comes from a clip's synthesis plan when it has one, otherwise from
the features of the reference clip.

Rows of the *held-out phrasing* (task ``heldout``, given a labelled prompt set such as the
held-out set of :mod:`handx_gen.eval.prompt_set`): the text task with prompts in users' own
words instead of the reference clips' texts, for retrieval and the generators (a prompt has
no clip of its own, so no ``ground_truth`` row). The embedding metrics rank the clips against
those prompts (FID still against the reference distribution); the feature metrics score each
clip against its prompt's labels (:func:`~handx_gen.eval.prompt_set.score_prompt`), which name
contacts, finger actions and a pattern but not every touch nor when, so contact precision,
order and timing are left out.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handx_gen.eval.metrics import (
    EvalError,
    Statement,
    articulation_score,
    contact_score,
    coordination_realised,
    diversity,
    frechet_distance,
    interpenetration,
    matching_distance,
    mean_ci,
    multimodality,
    plausibility,
    r_precision,
)
from handx_gen.eval.names import GRANULARITIES, HELDOUT, SOURCES, TASKS

__all__ = ['HELDOUT', 'SOURCES', 'TASKS', 'EvalClip', 'EvalSettings', 'Retrieval', 'evaluate',
           'feature_metrics', 'embedding_metrics', 'load_clips', 'markdown_table',
           'prompt_set_metrics', 'random_motion']


@dataclasses.dataclass(frozen=True)
class EvalClip:
    """One reference clip: its motion, the text it is evaluated with, and its synthesis plan
    when it has one."""

    clip_id: str
    motion: Any  # BimanualMotion
    text: str
    plan: Any = None  # ClipPlan | None


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How the metrics are computed.

    Attributes:
        repeats: Runs of each embedding metric (for the confidence intervals).
        batch_size: R-precision batch (32 as in text-to-motion work).
        diversity_pairs: Pairs per Diversity run.
        mm_texts: Prompts of the MultiModality check (generators, text task).
        mm_samples: Clips per prompt for MultiModality.
        mm_pairs: Pairs per prompt for MultiModality.
        inbetween_k: Frames given at each end in the inbetween task.
        seed: Seed of sampling and of the metric runs.
    """

    repeats: int = 20
    batch_size: int = 32
    diversity_pairs: int = 300
    mm_texts: int = 32
    mm_samples: int = 10
    mm_pairs: int = 10
    inbetween_k: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            low = 0 if f.name in ('seed', 'mm_texts') else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise EvalError(f'{f.name} must be an integer >= {low}, got {value!r}')
        if self.mm_texts and self.mm_samples < 2:
            raise EvalError('mm_samples must be at least 2 (pairs of clips per prompt)')


# ============================================================================ reading


def _text_of(motion: Any, granularity: str | None) -> str | None:
    if granularity is not None:
        for d in (motion.annotation or {}).get('descriptions', []):
            if d.get('granularity') == granularity and d.get('text'):
                return str(d['text'])
    return motion.texts[0] if motion.texts else None


def _plan_of(motion: Any) -> Any:
    from handx_gen.data.plan import ClipPlan

    plan = (motion.annotation or {}).get('plan')
    if plan is None:
        return None
    try:
        return ClipPlan.from_dict(plan)
    except (KeyError, TypeError, ValueError):
        return None  # a damaged plan: what is stated comes from the clip's features


def load_clips(path: str | os.PathLike, *, split: str = 'test', granularity: str | None =
               'interaction', limit: int | None = None) -> list[EvalClip]:
    """Reference clips with their texts.

    Args:
        path: A corpus folder (its ``split``) or any folder of ``handx-motion/1`` ``.npz``
            files (recursively; ``split`` is then ignored).
        split: Corpus split.
        granularity: Which description is the clip's text where the annotation has several
            (``semantic``, ``interaction``, ``articulation``); otherwise, or ``None``, the
            clip's first text.
        limit: At most this many clips (the first ones).

    Raises:
        EvalError: No such folder, files that are not motion files, or no clip with a text.
    """
    from handx_gen.errors import HandxError
    from handx_gen.motion.container import BimanualMotion

    path = Path(path)
    if granularity is not None and granularity not in GRANULARITIES:
        raise EvalError(f'granularity must be one of {", ".join(GRANULARITIES)} or None, got '
                        f'{granularity!r}')
    if not path.is_dir():
        raise EvalError(f'{path}: not a folder of clips')
    clips: list[EvalClip] = []
    without_text = 0
    if (path / 'index.json').is_file():
        from handx_gen.data.synthetic import iter_clips

        try:
            items = ((row.clip_id, motion) for row, motion in iter_clips(path, split))
            for clip_id, motion in items:
                text = _text_of(motion, granularity)
                if text is None:
                    without_text += 1
                    continue
                clips.append(EvalClip(clip_id, motion, text, _plan_of(motion)))
                if limit is not None and len(clips) >= limit:
                    break
        except (HandxError, ValueError) as exc:
            raise EvalError(f'cannot read split {split!r} of {path}: {exc}') from exc
    else:
        files = sorted(p for p in path.rglob('*.npz') if 'cache' not in p.parts)
        for file in files:
            try:
                motion = BimanualMotion.load(file)
            except HandxError as exc:
                raise EvalError(f'{file}: not a handx-motion/1 file ({exc})') from exc
            text = _text_of(motion, granularity)
            if text is None:
                without_text += 1
                continue
            clips.append(EvalClip(str(file.relative_to(path).with_suffix('')), motion, text,
                                  _plan_of(motion)))
            if limit is not None and len(clips) >= limit:
                break
    if not clips and not without_text and (path / 'index.json').is_file():
        raise EvalError(f'{path}: split {split!r} has no clips')
    if not clips:
        raise EvalError(f'{path}: no clips with a text to evaluate'
                        + (f' ({without_text} without text)' if without_text else ''))
    return clips


# ============================================================================ sources


class Retrieval:
    """The retrieval baseline: for a prompt, the reference clip whose text is nearest by
    cosine similarity of the frozen text encoder's pooled embeddings (every text of every
    clip is a candidate)."""

    def __init__(self, clips: Sequence[Any], encoder: Any,
                 cache_dir: str | os.PathLike | None = None) -> None:
        from handx_gen.models.dataset import TextBank

        self.clips = list(clips)  # BimanualMotion with texts
        texts = [t for clip in self.clips for t in clip.texts]
        owner = [i for i, clip in enumerate(self.clips) for _ in clip.texts]
        if not texts:
            raise EvalError('the retrieval baseline needs clips with texts')
        self.encoder = encoder
        bank = TextBank(encoder, texts, cache_dir=cache_dir)
        pooled = bank.features(list(dict.fromkeys(texts))).pooled.numpy()
        index = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        self._keys = _unit(pooled[[index[t] for t in texts]])
        self._owner = np.asarray(owner)

    def nearest(self, text: str) -> Any:
        query = _unit(self.encoder.encode([text]).pooled.cpu().numpy())
        return self.clips[int(self._owner[int(np.argmax(self._keys @ query[0]))])]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _condition(task: str, index: int, settings: EvalSettings) -> dict[str, Any]:
    if task == 'text':
        return {'mode': 'text'}
    if task == 'reaction':
        return {'mode': 'reaction', 'side': 'right' if index % 2 == 0 else 'left'}
    if task == 'inbetween':
        return {'mode': 'inbetween', 'k': settings.inbetween_k}
    raise EvalError(f'unknown task {task!r}; choose from {", ".join(TASKS)}')


def _paste(retrieved: Any, given: Any, condition: dict[str, Any]) -> Any:
    """``retrieved`` brought to ``given``'s length, with the parts the condition gives taken
    from ``given`` (hands sized as the generator sizes them)."""
    from handx_gen.generate import _skeletons
    from handx_gen.models.dataset import pad_frames
    from handx_gen.models.masking import ConditionMask
    from handx_gen.motion.features import FEATURE_LAYOUT

    frames = given.num_frames
    if abs(retrieved.fps - given.fps) > 1e-6:
        retrieved = retrieved.resample(given.fps)
    options = {k: v for k, v in condition.items() if k != 'mode'}
    mask = ConditionMask.make(condition['mode'], frames, **options)
    raw = np.where(mask.array, FEATURE_LAYOUT.encode(given),
                   pad_frames(FEATURE_LAYOUT.encode(retrieved), frames))
    return FEATURE_LAYOUT.decode(raw, given.fps, skeletons=_skeletons(given, mask.mode, mask.side),
                                 texts=given.texts)


def random_motion(like: Any, normalizer: Any, rng: np.random.Generator) -> Any:
    """A control clip: features drawn from the training distribution's per-feature mean and
    spread independently per frame (no structure, no text), decoded to a motion of
    ``like``'s length and rate."""
    from handx_gen.motion.features import FEATURE_LAYOUT

    noise = rng.standard_normal((like.num_frames, FEATURE_LAYOUT.dim))
    return FEATURE_LAYOUT.decode(normalizer.denormalize(noise), like.fps)


def produce(source: str, clips: Sequence[EvalClip], task: str, settings: EvalSettings, *,
            generator: Any = None, retrieval: Retrieval | None = None,
            progress: bool = False) -> tuple[list[Any], list[float]]:
    """The clips of one row, in the order of ``clips``, and the seconds each took."""
    out, seconds = [], []
    iterator: Any = enumerate(clips)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, total=len(clips), desc=f'{source} {task}', unit='clip',
                        leave=False)
    for index, clip in iterator:
        condition = _condition(task, index, settings)
        start = time.perf_counter()
        if source == 'ground_truth':
            motion = clip.motion
        elif source == 'retrieval':
            if retrieval is None:
                raise EvalError('the retrieval row needs training clips (--reference)')
            motion = retrieval.nearest(clip.text)
            if task != 'text':
                motion = _paste(motion, clip.motion, condition)
        elif source in ('diffusion', 'ar'):
            given = None if task == 'text' else clip.motion
            motion = generator.generate(clip.text, model=source, given=given,
                                        seed=settings.seed + index, **condition)
        else:
            raise EvalError(f'unknown source {source!r}; choose from {", ".join(SOURCES)}')
        seconds.append(time.perf_counter() - start)
        out.append(motion)
    return out, seconds


# ============================================================================ metrics


def embedding_metrics(motion: np.ndarray, text: np.ndarray, reference: np.ndarray | None,
                      settings: EvalSettings, groups: np.ndarray | None = None
                      ) -> dict[str, Any]:
    """FID (against ``reference``), R-precision top-1/2/3, MM-Dist, Diversity and
    MultiModality (``groups``: (texts, samples, E)), each ``[mean, ci95 half-width]`` over
    ``settings.repeats`` runs; ``None`` where not computable (too few clips, no reference,
    no groups)."""
    n = len(motion)
    runs: dict[str, list[float]] = {k: [] for k in ('fid', 'top1', 'top2', 'top3', 'mm_dist',
                                                    'diversity', 'multimodality')}
    for r in range(settings.repeats):
        rng = np.random.default_rng(settings.seed * 7919 + r)
        sample = rng.integers(0, n, n) if settings.repeats > 1 else np.arange(n)
        if reference is not None and n >= 2:
            runs['fid'].append(frechet_distance(motion[sample], reference))
        if n >= settings.batch_size:
            top = r_precision(motion, text, batch_size=settings.batch_size, rng=rng)
            for k in range(3):
                runs[f'top{k + 1}'].append(float(top[k]))
        runs['mm_dist'].append(matching_distance(motion[sample], text[sample]))
        if n >= 2:
            runs['diversity'].append(diversity(motion, settings.diversity_pairs, rng))
        if groups is not None:
            runs['multimodality'].append(multimodality(groups, settings.mm_pairs, rng))
    return {k: (list(mean_ci(v)) if v else None) for k, v in runs.items()}


def feature_metrics(clips: Sequence[EvalClip], motions: Sequence[Any],
                    progress: bool = False, label: str = 'features') -> dict[str, Any]:
    """Contact, interpenetration, articulation, coordination and plausibility metrics of
    ``motions`` (clip ``i`` made for ``clips[i]``), averaged over clips."""
    from handx_gen.annotate.features import extract_features

    stated = detected = found = correct = pairs = ordered = 0
    with_contacts = all_found = 0
    timing: list[float] = []
    art_done = art_stated = 0
    coord = []
    physical = []
    iterator: Any = zip(clips, motions, strict=True)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, total=len(clips), desc=label, unit='clip', leave=False)
    reference_cache: dict[str, Any] = {}
    for clip, motion in iterator:
        features = extract_features(motion)
        statement = _statement(clip, reference_cache)
        score = contact_score(statement, features)
        if score.stated:
            with_contacts += 1
            all_found += score.all_found
            stated += score.stated
            found += score.found
            if score.timing_error_s is not None:
                timing.append(score.timing_error_s)
            pairs += score.order_pairs
            ordered += score.order_correct
        detected += score.detected
        correct += score.correct
        done, total = articulation_score(statement, features)
        art_done += done
        art_stated += total
        c = coordination_realised(statement, features)
        if c is not None:
            coord.append(c)
        physical.append(_physical(motion))

    return _feature_row(
        contact_precision=_ratio(correct, detected),
        contact_recall=_ratio(found, stated),
        contact_all_found=_ratio(all_found, with_contacts),
        prompts_with_contacts=with_contacts,
        contact_order=_ratio(ordered, pairs),
        contact_timing_error_s=float(np.mean(timing)) if timing else None,
        articulation=_ratio(art_done, art_stated),
        coordination=float(np.mean(coord)) if coord else None,
        **_physical_summary(physical))


def prompt_set_metrics(prompts: Sequence[Any], motions: Sequence[Any],
                       progress: bool = False, label: str = 'held-out features'
                       ) -> dict[str, Any]:
    """The keys of :func:`feature_metrics` for ``motions`` (clip ``i`` made from
    ``prompts[i]``, a :class:`~handx_gen.eval.prompt_set.LabelledPrompt`) scored against the
    prompts' labels: contact recall, the share of prompts naming a contact whose named
    contacts all occur, finger actions realised (articulation), the named pattern
    (coordination), and the clips' interpenetration and plausibility. Contact precision,
    order and timing are ``None``: the labels do not name every touch, nor when."""
    from handx_gen.annotate.features import extract_features
    from handx_gen.eval.prompt_set import score_prompt

    stated = found = with_contacts = all_found = art_done = art_stated = 0
    coord = []
    physical = []
    iterator: Any = zip(prompts, motions, strict=True)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, total=len(prompts), desc=label, unit='clip', leave=False)
    for prompt, motion in iterator:
        score = score_prompt(prompt, extract_features(motion))
        if score.contacts_stated:
            with_contacts += 1
            all_found += bool(score.all_contacts)
            stated += score.contacts_stated
            found += score.contacts_found
        art_done += score.actions_realised
        art_stated += score.actions_stated
        if score.coordination is not None:
            coord.append(score.coordination)
        physical.append(_physical(motion))
    return _feature_row(
        contact_precision=None,
        contact_recall=_ratio(found, stated),
        contact_all_found=_ratio(all_found, with_contacts),
        prompts_with_contacts=with_contacts,
        contact_order=None,
        contact_timing_error_s=None,
        articulation=_ratio(art_done, art_stated),
        coordination=float(np.mean(coord)) if coord else None,
        **_physical_summary(physical))


# the feature metrics of a row, in the order of the JSON report
_FEATURE_KEYS = ('contact_precision', 'contact_recall', 'contact_all_found',
                 'prompts_with_contacts', 'contact_order', 'contact_timing_error_s',
                 'penetration_depth_mm', 'penetration_frequency', 'articulation', 'coordination',
                 'limit_violation_rate', 'jitter_m_s3', 'bone_length_cv')


def _feature_row(**values: Any) -> dict[str, Any]:
    """``values`` in the order of :data:`_FEATURE_KEYS` (every key, no other)."""
    if set(values) != set(_FEATURE_KEYS):
        raise EvalError(f'feature metrics {sorted(values)} are not {sorted(_FEATURE_KEYS)}')
    return {key: values[key] for key in _FEATURE_KEYS}


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _physical(motion: Any) -> tuple[float, float, Any]:
    """(interpenetration depth in metres, share of interpenetrating frames, plausibility) of
    one clip."""
    depth, frequency = interpenetration(motion.keypoints)
    return depth, frequency, plausibility(motion)


def _physical_summary(physical: Sequence[tuple[float, float, Any]]) -> dict[str, float]:
    """Means over clips of what :func:`_physical` gives."""
    depth, frequency, plaus = zip(*physical, strict=True)
    return {
        'penetration_depth_mm': 1000 * float(np.mean(depth)),
        'penetration_frequency': float(np.mean(frequency)),
        'limit_violation_rate': float(np.mean([p.limit_violation_rate for p in plaus])),
        'jitter_m_s3': float(np.mean([p.jitter_m_s3 for p in plaus])),
        'bone_length_cv': float(np.mean([p.bone_length_cv for p in plaus])),
    }


def _statement(clip: EvalClip, cache: dict[str, Any]) -> Statement:
    from handx_gen.annotate.features import extract_features

    if clip.clip_id not in cache:
        reference = extract_features(clip.motion)
        cache[clip.clip_id] = Statement.from_plan(clip.plan, reference) \
            if clip.plan is not None else Statement.from_features(reference)
    return cache[clip.clip_id]


# ============================================================================ the table


def evaluate(clips: Sequence[EvalClip], evaluator: Any, *, sources: Sequence[str] = SOURCES,
             tasks: Sequence[str] = TASKS, reference: Sequence[Any] | None = None,
             generator: Any = None, settings: EvalSettings | None = None,
             prompt_set: Sequence[Any] = (), progress: bool = False,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every (source, task) row, then the held-out phrasing rows.

    Args:
        clips: The reference clips and their prompts.
        evaluator: A :class:`~handx_gen.eval.evaluator.Evaluator`.
        sources: Rows to compute (see :data:`SOURCES`).
        tasks: Tasks per source (see :data:`TASKS`).
        reference: Real clips (with texts) for FID and retrieval, e.g. a corpus' train split;
            ``None`` leaves FID and the retrieval row out.
        generator: A :class:`~handx_gen.generate.Generator` for the model rows.
        settings: How metrics are computed.
        prompt_set: Labelled prompts (:class:`~handx_gen.eval.prompt_set.LabelledPrompt`):
            one row of task :data:`HELDOUT` per source other than ``ground_truth``, one clip
            per prompt (seed ``settings.seed`` plus its position, as in the text task).
        progress: Progress bars.
        log: Called with one line per finished row.

    Returns:
        ``{'rows': [...], 'controls': {...}, 'settings': {...}, 'clips': N}``, and
        ``'heldout_prompts'`` (their number) with a ``prompt_set``.
    """
    settings = settings or EvalSettings()
    unknown = [s for s in sources if s not in SOURCES] + [t for t in tasks if t not in TASKS]
    if unknown:
        raise EvalError(f'unknown sources or tasks {unknown}; sources: {", ".join(SOURCES)}; '
                        f'tasks: {", ".join(TASKS)}')
    if any(s in ('diffusion', 'ar') for s in sources) and generator is None:
        raise EvalError('the model rows need a generator')
    if prompt_set and all(s == 'ground_truth' for s in sources):
        raise EvalError('the held-out phrasing rows need a source other than ground_truth '
                        f'(retrieval, diffusion, ar), got {list(sources)}')
    texts = [c.text for c in clips]
    text_emb = evaluator.embed_texts(texts)
    reference_emb = evaluator.embed_motions(reference) if reference else None
    retrieval = None
    if 'retrieval' in sources:
        if not reference:
            raise EvalError('the retrieval row needs reference clips with texts')
        retrieval = Retrieval(reference, evaluator.text_encoder())
    rows = []
    for source in sources:
        for task in tasks:
            if source == 'ground_truth' and task != 'text':
                continue  # the same clips in every task
            motions, seconds = produce(source, clips, task, settings, generator=generator,
                                       retrieval=retrieval, progress=progress)
            groups = None
            if source in ('diffusion', 'ar') and task == 'text' and settings.mm_texts:
                groups = _multimodality_groups(source, clips, evaluator, generator, settings,
                                               progress)
            row = {'source': source, 'task': task, 'clips': len(motions),
                   **embedding_metrics(evaluator.embed_motions(motions), text_emb,
                                       reference_emb, settings, groups),
                   **feature_metrics(clips, motions, progress, f'{source} {task} features'),
                   'seconds_per_clip': float(np.median(seconds)) if source != 'ground_truth'
                   else None}
            rows.append(row)
            if log is not None:
                log(_summary(row))
    if prompt_set:
        prompt_clips = [EvalClip(p.prompt_id, None, p.text) for p in prompt_set]
        prompt_emb = evaluator.embed_texts([p.text for p in prompt_set])
        for source in sources:
            if source == 'ground_truth':
                continue  # a prompt of the set has no clip of its own
            motions, seconds = produce(source, prompt_clips, 'text', settings,
                                       generator=generator, retrieval=retrieval,
                                       progress=progress)
            row = {'source': source, 'task': HELDOUT, 'clips': len(motions),
                   **embedding_metrics(evaluator.embed_motions(motions), prompt_emb,
                                       reference_emb, settings),
                   **prompt_set_metrics(prompt_set, motions, progress,
                                        f'{source} {HELDOUT} features'),
                   'seconds_per_clip': float(np.median(seconds))}
            rows.append(row)
            if log is not None:
                log(_summary(row))
    controls = _controls(clips, evaluator, text_emb, reference_emb, settings)
    report = {'clips': len(clips), 'rows': rows, 'controls': controls,
              'settings': dataclasses.asdict(settings), 'evaluator': evaluator.describe()}
    if prompt_set:
        report['heldout_prompts'] = len(prompt_set)
    return report


def _multimodality_groups(source: str, clips: Sequence[EvalClip], evaluator: Any,
                          generator: Any, settings: EvalSettings, progress: bool) -> np.ndarray:
    """(texts, samples, E) embeddings of several clips per prompt (the first ``mm_texts``
    prompts, seeds after the row's)."""
    count = min(settings.mm_texts, len(clips))
    iterator: Any = range(count)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc=f'{source} multimodality', unit='prompt', leave=False)
    groups = []
    for i in iterator:
        seeds = [settings.seed + len(clips) + i * settings.mm_samples + s
                 for s in range(settings.mm_samples)]
        motions = [generator.generate(clips[i].text, model=source, seed=s) for s in seeds]
        groups.append(evaluator.embed_motions(motions))
    return np.stack(groups)


def _controls(clips: Sequence[EvalClip], evaluator: Any, text_emb: np.ndarray,
              reference_emb: np.ndarray | None, settings: EvalSettings) -> dict[str, Any]:
    """Sanity checks of the evaluator: reference clips with shuffled texts (R-precision at
    chance), and unstructured random motion (FID far above the reference clips')."""
    motion_emb = evaluator.embed_motions([c.motion for c in clips])
    rng = np.random.default_rng(settings.seed + 1)
    shuffled = text_emb[rng.permutation(len(text_emb))]
    out: dict[str, Any] = {}
    if len(clips) >= settings.batch_size:
        out['shuffled_text_top3'] = float(r_precision(
            motion_emb, shuffled, batch_size=settings.batch_size, rng=rng)[2])
        out['chance_top3'] = 3 / settings.batch_size
    if reference_emb is not None:
        noise = [random_motion(c.motion, evaluator.normalizer, rng) for c in clips]
        out['fid_random_motion'] = frechet_distance(evaluator.embed_motions(noise),
                                                    reference_emb)
        out['fid_reference_clips'] = frechet_distance(motion_emb, reference_emb)
    return out


def _fmt(value: Any, digits: int = 3, scale: float = 1.0) -> str:
    if value is None:
        return '-'
    if isinstance(value, list):
        mean, half = value
        if mean is None or (isinstance(mean, float) and math.isnan(mean)):
            return '-'
        return f'{scale * mean:.{digits}f}±{scale * half:.{digits}f}'
    return f'{scale * value:.{digits}f}'


def _summary(row: dict[str, Any]) -> str:
    return (f"{row['source']:>12} {row['task']:>9}: FID {_fmt(row['fid'])}, top-3 "
            f"{_fmt(row['top3'])}, MM-Dist {_fmt(row['mm_dist'])}, contacts all found "
            f"{_fmt(row['contact_all_found'])}, {_fmt(row['seconds_per_clip'], 2)} s/clip")


def _contact_pr(row: dict[str, Any]) -> str:
    return f"{_fmt(row['contact_precision'], 2)} / {_fmt(row['contact_recall'], 2)}"


# (header, JSON key or a function of the row, digits): the contact metrics first, then the
# embedding metrics, smoothness and speed
_COLUMNS: tuple[tuple[str, Any, int], ...] = (
    ('all contacts ↑', 'contact_all_found', 2), ('contact P / R ↑', _contact_pr, 2),
    ('penetrating frames ↓', 'penetration_frequency', 3),
    ('articulation ↑', 'articulation', 2), ('coordination ↑', 'coordination', 2),
    ('FID ↓', 'fid', 3), ('R-prec top-1 ↑', 'top1', 3), ('top-3 ↑', 'top3', 3),
    ('MM-Dist ↓', 'mm_dist', 3), ('Diversity', 'diversity', 3),
    ('MModality', 'multimodality', 3), ('jitter m/s³', 'jitter_m_s3', 0),
    ('s/clip', 'seconds_per_clip', 2),
)
# the second table: what the first leaves out
_MORE_COLUMNS: tuple[tuple[str, Any, int], ...] = (
    ('contact order ↑', 'contact_order', 2), ('timing err s ↓', 'contact_timing_error_s', 2),
    ('penetration depth mm ↓', 'penetration_depth_mm', 1),
    ('limit viol. ↓', 'limit_violation_rate', 3), ('bone CV ↓', 'bone_length_cv', 4),
    ('R-prec top-2 ↑', 'top2', 3),
)
_SOURCE_LABELS = {'ground_truth': 'ground truth', 'retrieval': 'retrieval',
                  'diffusion': 'diffusion', 'ar': 'AR'}
_TASK_LABELS = {**{t: t for t in TASKS}, HELDOUT: 'held-out phrasing'}


def _ordered(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by task (text, reaction, inbetween, then the held-out phrasing), each task's by
    source (ground truth, retrieval, diffusion, AR)."""
    tasks, sources = (*TASKS, HELDOUT), SOURCES

    def key(row: dict[str, Any]) -> tuple[int, int]:
        task, source = row['task'], row['source']
        return (tasks.index(task) if task in tasks else len(tasks),
                sources.index(source) if source in sources else len(sources))

    return sorted(rows, key=key)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Any, int]]
           ) -> list[str]:
    lines = ['| source | task | ' + ' | '.join(c[0] for c in columns) + ' |',
             '|' + '---|' * (len(columns) + 2)]
    for row in rows:
        source = _SOURCE_LABELS.get(row['source'], row['source'])
        task = '-' if row['source'] == 'ground_truth' else _TASK_LABELS.get(row['task'],
                                                                              row['task'])
        cells = [key(row) if callable(key) else _fmt(row.get(key), digits)
                 for _, key, digits in columns]
        lines.append(f'| {source} | {task} | ' + ' | '.join(cells) + ' |')
    return lines


def markdown_table(report: dict[str, Any]) -> str:
    """The rows as Markdown: the headline table (contact metrics first, then FID,
    R-precision, MM-Dist, Diversity, MultiModality as mean±95% CI, jitter and seconds per
    clip), a second table of the other metrics, a note on the held-out phrasing rows and the
    evaluator's controls. The ground truth is the same clip in every task (task ``-``)."""
    rows = _ordered(report['rows'])
    lines = _table(rows, _COLUMNS)
    lines += ['', 'More metrics:', '']
    lines += _table(rows, _MORE_COLUMNS)
    prompts = report.get('heldout_prompts')
    if prompts:
        lines.append('')
        lines.append(f"Held-out phrasing: {prompts} prompts of a labelled set in users' "
                     'words, one clip each, scored against their labels (contacts, finger '
                     'actions as articulation, pattern as coordination; contact precision, '
                     'order and timing: -) and ranked against the prompts; FID of '
                     f'{prompts} clips (the other rows: {report["clips"]}) against the same '
                     'reference.')
    controls = report.get('controls') or {}
    if controls:
        lines.append('')
        lines.append('Controls: ' + ', '.join(f'{k} {_fmt(v)}' for k, v in controls.items()))
    return '\n'.join(lines) + '\n'
