"""Tests for handx_gen.windows: window plans, and a MotionStream joining windows of a stand-in
model (no network: the sampler is a function of the known frames, so what the stream gives it
and what it does with the answer are checked exactly)."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.errors import ConfigError, ModelError
from handx_gen.hand.topology import HandSide
from handx_gen.models.masking import ConditionMask
from handx_gen.motion import FEATURE_LAYOUT, BimanualMotion, FeatureGroup
from handx_gen.windows import (
    MotionStream,
    WindowSettings,
    fade_weights,
    join_step,
    plan_windows,
    window_seed,
)

FPS = 30.0


def _wave(num_frames: int, start: int = 0) -> BimanualMotion:
    """Both hands waving slowly (a smooth motion to give and to compare with)."""
    t = (start + np.arange(num_frames)) / FPS
    phase = 2.0 * np.pi * 0.4 * t[:, None, None]
    orient = np.array([[0.2, 1.5, 0.1], [0.2, -1.5, -0.1]])[None] + 0.2 * np.sin(phase)
    pose = np.zeros((num_frames, 2, 15, 3))
    pose[..., 2] = 0.4 * (0.5 + 0.5 * np.sin(phase))
    transl = np.array([[-0.17, 0.3, 1.0], [0.17, 0.3, 1.0]])[None] + 0.05 * np.sin(phase)
    return BimanualMotion.from_mano(FPS, orient, pose, transl)


def _reaction_mask(num_frames: int) -> np.ndarray:
    return ConditionMask.make('reaction', num_frames, side='right').array


class _StandIn:
    """A model that renders a motion shifted away from the known frames, as the real models
    do (they step up to 17 cm at a join): the left hand's features are those of ``truth`` plus
    ``offset``; it records what it was given."""

    def __init__(self, truth: BimanualMotion, offset: float = 0.05) -> None:
        self.features = FEATURE_LAYOUT.encode(truth).astype(np.float64)  # (T, D)
        self.offset = offset
        self.calls: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.start = 0

    def __call__(self, known: np.ndarray, mask: np.ndarray, index: int) -> np.ndarray:
        self.calls.append((index, known.copy(), mask.copy()))
        out = self.features[self.start:self.start + len(known)].copy()
        out[:, FEATURE_LAYOUT.slice(HandSide.LEFT, FeatureGroup.TRANSL)] += \
            self.offset * (index % 2)  # every other window lands elsewhere
        return out


def _run(total: int, settings: WindowSettings, window: int = 40, offset: float = 0.05
         ) -> tuple[BimanualMotion, BimanualMotion, _StandIn, tuple]:
    truth = _wave(total)
    model = _StandIn(truth, offset)
    stream = MotionStream(model, FPS, window_frames=window, settings=settings,
                          frame_mask=_reaction_mask)
    plan = plan_windows(total, window, settings.overlap_frames)
    parts = []
    for part in plan:
        model.start = part.start
        parts.append(stream.extend(part.start, part.stop, given=truth[part.start:part.stop],
                                   last=part.index == len(plan) - 1))
    return BimanualMotion.concatenate(parts), truth, model, plan


def test_plans_cover_the_clip_with_whole_overlapping_windows() -> None:
    assert plan_windows(90, 120, 30) == ((0, 0, 90),)
    plan = plan_windows(621, 120, 30)
    assert plan[0].start == 0 and plan[-1].stop == 621
    assert all(w.stop - w.start == 120 for w in plan)
    assert all(a.start < b.start <= a.stop - 30 for a, b in zip(plan, plan[1:], strict=False))
    assert [w.index for w in plan] == list(range(len(plan))) and len(plan) == 7
    for bad in [(0, 120, 30), (100, 30, 30), (100, 120, -1)]:
        with pytest.raises(ConfigError):
            plan_windows(*bad)


@pytest.mark.parametrize(('values', 'match'), [
    ({'overlap_frames': 0}, 'overlap_frames must be an integer >= 1'),
    ({'hold_frames': 30}, 'hold_frames=30 must be less than overlap_frames=30'),
    ({'window_frames': 1}, 'window_frames must be an integer >= 2'),
    ({'blend_frames': 2.5}, 'blend_frames'),
])
def test_settings_refuse_what_cannot_work(values: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        WindowSettings(**values)
    with pytest.raises(ConfigError, match='longer than the model makes'):
        WindowSettings(window_frames=200).resolve(120)


def test_windows_join_without_a_step_and_keep_the_given_hand_exactly() -> None:
    out, truth, model, plan = _run(300, WindowSettings())
    assert out.num_frames == 300
    for name in ('keypoints', 'transl', 'global_orient', 'hand_pose'):
        np.testing.assert_array_equal(getattr(out, name)[:, 1], getattr(truth, name)[:, 1])
    wrist = out.keypoints[:, 0, 0].astype(np.float64)  # the generated hand
    steps = np.linalg.norm(np.diff(wrist, axis=0), axis=-1)
    seams = [w.stop - WindowSettings().hold_frames for w in plan[:-1]]  # first kept frames
    inside = np.delete(steps, [s - 1 for s in seams])
    # the stand-in jumps 5 cm at every other join; the fade leaves less than a normal step
    assert steps[[s - 1 for s in seams]].max() < 1.5 * inside.max()
    assert steps.max() < 0.5 * 0.05
    # without the fade the jumps are there
    raw, *_ = _run(300, WindowSettings(blend_frames=0))
    raw_steps = np.linalg.norm(np.diff(raw.keypoints[:, 0, 0].astype(float), axis=0), axis=-1)
    assert raw_steps.max() > 0.04


def test_each_window_is_given_the_last_frames_kept_and_its_own_seed() -> None:
    settings = WindowSettings(context_frames=4, hold_frames=8)
    _, truth, model, plan = _run(200, settings)
    assert [index for index, _, _ in model.calls] == list(range(len(plan)))
    given_dims = _reaction_mask(1)[0]
    for (index, _, mask), part in zip(model.calls, plan, strict=True):
        np.testing.assert_array_equal(mask[:, given_dims], True)  # the given hand throughout
        context = np.flatnonzero(mask[:, ~given_dims].all(axis=1))
        if index == 0:
            assert context.size == 0
            continue
        kept_end = plan[index - 1].stop - settings.hold_frames
        np.testing.assert_array_equal(context, np.arange(kept_end - 4, kept_end) - part.start)
    assert window_seed(7, 0) == 7 and len({window_seed(7, i) for i in range(50)}) == 50


def test_context_starts_on_a_token_boundary() -> None:
    truth = _wave(80)
    model = _StandIn(truth)
    stream = MotionStream(model, FPS, window_frames=40, align=4,
                          settings=WindowSettings(context_frames=4, hold_frames=0),
                          frame_mask=_reaction_mask)
    stream.extend(0, 40, given=truth[0:40])
    model.start = 15
    new = stream.extend(15, 55, given=truth[15:55])  # 25 frames kept before: context 24-25
    assert new.num_frames == 15 and stream.end == 55
    mask = model.calls[-1][2]
    context = np.flatnonzero(mask[:, ~_reaction_mask(1)[0]].all(axis=1))
    np.testing.assert_array_equal(context, np.arange(20, 25))  # from 20, a multiple of 4


def test_a_stream_refuses_windows_out_of_order_and_restarts_after_a_gap() -> None:
    truth = _wave(200)
    model = _StandIn(truth)
    stream = MotionStream(model, FPS, window_frames=40,
                          settings=WindowSettings(hold_frames=0), frame_mask=_reaction_mask)
    assert stream.extend(0, 30, given=truth[0:30]).num_frames == 30
    with pytest.raises(ModelError, match='no frame to keep after frame 30'):
        stream.extend(0, 30, given=truth[0:30])
    with pytest.raises(ModelError, match='hold 1 to 40 frames'):
        stream.extend(30, 80, given=truth[30:80])
    with pytest.raises(ModelError, match='expected 10 at 30'):
        stream.extend(30, 40, given=truth[30:45])
    with pytest.raises(ModelError, match='mask: expected shape'):
        stream.extend(30, 40, given=truth[30:40], mask=np.zeros((3, FEATURE_LAYOUT.dim), bool))
    gap = stream.extend(100, 130, given=truth[100:130])  # after a gap: afresh, no context
    assert gap.num_frames == 30 and stream.end == 130
    assert not model.calls[-1][2][:, ~_reaction_mask(1)[0]].any()
    stream.reset()
    assert stream.end is None and stream.extend(0, 10, given=truth[0:10]).num_frames == 10


def test_join_step_reads_each_end_over_two_frames() -> None:
    before = np.array([[0.0], [1.0], [2.0], [3.0]])  # moving 1 a frame
    after = np.array([[10.0], [11.0], [12.0]])  # continues the motion 6 too far
    np.testing.assert_allclose(join_step(before, after), [-6.0])
    zigzag = np.array([[0.0], [1.0], [0.0], [1.0]])  # alternating: no heading
    np.testing.assert_allclose(join_step(zigzag, np.array([[0.0], [1.0]])), [0.5])
    weights = fade_weights(8)
    assert weights[0] > 0.95 and weights[-1] < 0.05 and np.all(np.diff(weights) < 0)
