"""Tests for handx_gen.data.synthetic: clips, composition, splits, the corpus and its command.

The builder is exercised on the three small motion types of :mod:`synth_fixtures`; one test
builds a few clips over the real registry when its modules exist.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from synth_fixtures import (
    FIXTURE_MODULES,
    FIXTURE_TYPES,
    HALF_GAP_M,
    TOUCH_HALF_GAP_M,
    fixture_annotate,
)

from handx_gen.data.filters import filter_motion
from handx_gen.data.plan import ClipPlan, FingerAction
from handx_gen.data.synthetic import (
    CORPUS_FORMAT,
    Split,
    SynthConfig,
    SynthesisError,
    _hand_distance,  # the builder's own measures of the hands' surface distance
    _penetration,
    build_corpus,
    clip_seeds,
    iter_clips,
    load_index,
    load_primitives,
    resolve_motion_types,
    split_of,
    synthesize_clip,
)
from handx_gen.errors import ConfigError
from handx_gen.hand.limits import limit_violation, pose_to_anatomical
from handx_gen.hand.skeleton import DEFAULT_HAND_LENGTH_M, default_skeleton
from handx_gen.hand.topology import FINGER_MANO_JOINTS, HandSide
from handx_gen.motion import BimanualMotion
from handx_ros.cli import main

CONFIG = SynthConfig(motion_types=FIXTURE_TYPES, primitive_modules=FIXTURE_MODULES)


def _clip(index: int, seed: int = 0, config: SynthConfig = CONFIG):
    composition_seed, clip_seed = clip_seeds(seed, index, config.clips_per_composition)
    return synthesize_clip(config, composition_seed, clip_seed)


@pytest.fixture(scope='module')
def clips():
    return [_clip(index) for index in range(12)]


# ---------------------------------------------------------------------------- config


def test_config_yaml_round_trip_and_unknown_keys(tmp_path):
    path = tmp_path / 'synth.yaml'
    path.write_text(CONFIG.to_yaml())
    assert SynthConfig.from_yaml(path) == CONFIG
    path.write_text('fps: 30\nclip_length: 8\n')
    with pytest.raises(ConfigError, match="unknown synth config key 'clip_length'.*'fps'"):
        SynthConfig.from_yaml(path)
    path.write_text('split_fractions: {train: 0.9, val: 0.1, test: 0.0}\n')
    assert SynthConfig.from_yaml(path).split_fractions == (0.9, 0.1, 0.0)


@pytest.mark.parametrize('values, match', [
    ({'fps': 0}, 'fps'),
    ({'tempo': [1.25, 0.8]}, 'low <= high'),
    ({'repetitions': [1, 2.5]}, 'int'),
    ({'split_fractions': [0.8, 0.1]}, 'three fractions'),
    ({'split_fractions': [0.8, 0.3, 0.1]}, 'sum to 1'),
    ({'split_fractions': {'train': 0.9, 'dev': 0.1}}, "unknown split 'dev'"),
    ({'motion_types': [3]}, 'list of names'),
])
def test_config_rejects_bad_values(values, match):
    with pytest.raises(ConfigError, match=match):
        SynthConfig.from_dict(values)


def test_unknown_motion_type_lists_the_registered_ones():
    config = dataclasses.replace(CONFIG, motion_types=('fixture_clap', 'no_such_type'))
    with pytest.raises(ConfigError, match="'no_such_type'.*'fixture_clap'"):
        synthesize_clip(config, 1, 2)


# ---------------------------------------------------------------------------- clips


def test_same_seeds_same_clip_other_seeds_other_clip():
    a, b = _clip(5), _clip(5)
    for field in ('global_orient', 'hand_pose', 'transl', 'keypoints'):
        np.testing.assert_array_equal(getattr(a.motion, field), getattr(b.motion, field))
    assert a.motion.annotation == b.motion.annotation
    other = _clip(5, seed=1)
    assert other.plan.seed != a.plan.seed
    assert not np.array_equal(other.motion.keypoints[:10], a.motion.keypoints[:10]) or \
        other.motion.num_frames != a.motion.num_frames


def test_clip_layout_and_plan(clips):
    low, high = CONFIG.primitives_per_clip
    for clip in clips:
        plan, motion = clip.plan, clip.motion
        assert ClipPlan.from_dict(motion.annotation['plan']) == plan
        assert plan.num_frames == motion.num_frames <= CONFIG.clip_duration_s[1] * CONFIG.fps
        assert low <= len(plan.primitives) <= high
        assert plan.primitives[0].start == 0
        for before, after in zip(plan.primitives[:-1], plan.primitives[1:], strict=True):
            gap_s = (after.start - before.stop) / CONFIG.fps
            assert CONFIG.transition_s[0] - 0.05 <= gap_s  # a transition between primitives
            assert before.motion_type != after.motion_type
        assert plan.primitives[-1].stop <= plan.num_frames
        for entry in (*plan.contacts, *plan.finger_actions):
            assert 0 <= entry.start < entry.stop <= plan.num_frames
        for contact in plan.contacts:  # each contact inside its primitive
            assert any(p.start <= contact.start and contact.stop <= p.stop
                       for p in plan.primitives if p.motion_type == 'fixture_clap')
        scale = plan.hand_scale * DEFAULT_HAND_LENGTH_M
        assert 0.165 - 1e-9 <= scale <= 0.205 + 1e-9


def test_plan_frames_follow_the_motion(clips):
    """Shifted (and time-warped) contact frames are the frames where the hands meet."""
    checked = 0
    for clip in clips:
        wrist_gap = np.abs(np.diff(clip.motion.keypoints[:, :, 0, 0], axis=1))[:, 0]  # (T,)
        for contact in clip.plan.contacts:
            np.testing.assert_allclose(wrist_gap[contact.start:contact.stop],
                                       2 * TOUCH_HALF_GAP_M, atol=2e-3)
            checked += 1
        for primitive in clip.plan.primitives:
            if primitive.motion_type == 'fixture_clap':  # starts and ends with hands open
                amplitude = primitive.params['amplitude']
                for frame in (primitive.start, primitive.stop - 1):
                    assert wrist_gap[frame] == pytest.approx(2 * HALF_GAP_M * amplitude,
                                                             abs=1e-6)
    assert checked > 3


def test_finger_actions_follow_the_motion(clips):
    """Bend / extend entries (the primitives' and the transitions') match the flexion."""
    for clip in clips:
        skeletons = [default_skeleton(side, clip.plan.hand_scale * DEFAULT_HAND_LENGTH_M)
                     for side in HandSide]
        flexion = {}
        for side in HandSide:
            pose = clip.motion.hand_pose[:, side]
            flexion[side] = pose_to_anatomical(pose, skeletons[side])[..., 0]  # (T, 15)
        for action in clip.plan.finger_actions:
            rows = [j - 1 for j in FINGER_MANO_JOINTS[action.finger]]
            total = flexion[action.side][:, rows].sum(axis=1)
            change = total[action.stop - 1] - total[action.start]
            if action.action is FingerAction.BEND:
                assert change > 0.3
            elif action.action is FingerAction.EXTEND:
                assert change < -0.3


def test_clips_are_clean(clips):
    """Within the joint limits, no hand overlap deeper than 5 mm, the filters keep >= 95%."""
    for clip in clips:
        motion = clip.motion
        hand_length = clip.plan.hand_scale * DEFAULT_HAND_LENGTH_M
        skeletons = [default_skeleton(side, hand_length) for side in HandSide]
        for side in HandSide:
            assert np.max(limit_violation(motion.hand_pose[:, side], skeletons[side])) < 1e-6
        assert _penetration(motion.keypoints.astype(np.float64)).max() <= 0.005
        result = filter_motion(motion, skeletons=skeletons)
        assert result.kept_fraction >= 0.95, [d.detail for d in result.dropped]


def test_transitions_are_smooth(clips):
    """No speed or acceleration jump at the joins: peaks stay like the primitives' own."""
    for clip in clips:
        keypoints = clip.motion.keypoints.astype(np.float64)
        speed = np.linalg.norm(np.diff(keypoints, axis=0), axis=-1) * CONFIG.fps  # (T-1,2,21)
        accel = np.linalg.norm(np.diff(keypoints, 2, axis=0), axis=-1) * CONFIG.fps**2
        assert speed.max() < 2.0
        assert accel.max() < 60.0


def test_transitions_part_touching_hands():
    """Into and out of touching hands: the hands separate first and never overlap."""
    config = dataclasses.replace(CONFIG, motion_types=('fixture_touch', 'fixture_fist'),
                                 primitives_per_clip=(3, 3), clip_duration_s=(1.0, 20.0))
    checked = 0
    for index in range(0, 12, 4):
        clip = _clip(index, config=config)
        distance = _hand_distance(clip.motion.keypoints.astype(np.float64))
        assert distance.min() >= -0.005
        primitives = clip.plan.primitives
        for before, after in zip(primitives[:-1], primitives[1:], strict=True):
            if 'fixture_touch' not in (before.motion_type, after.motion_type):
                continue
            ends = (distance[before.stop - 1], distance[after.start])
            assert min(ends) < config.transition_clearance_m  # starts or ends touching
            middle = distance[before.stop:after.start]
            assert middle.min() >= min(ends) - 0.001
            assert middle.max() > config.transition_clearance_m  # they part in between
            checked += 1
        assert filter_motion(clip.motion).kept_fraction >= 0.95
    assert checked >= 3


def test_handedness_and_hand_size_vary():
    plans = [_clip(index).plan for index in range(60)]
    dominant = [p.dominant for p in plans]
    assert 1 <= dominant.count(HandSide.LEFT) <= 20
    scales = np.array([p.hand_scale for p in plans])
    assert 0.02 < scales.std() < 0.09


def test_long_clips_drop_or_cut():
    config = dataclasses.replace(CONFIG, clip_duration_s=(1.0, 3.0))
    for index in range(6):
        plan = _clip(index, config=config).plan
        assert plan.num_frames <= 90
        # The third primitive is never used; a clip still too long is cut.
        assert 1 <= len(plan.primitives) <= 2
        assert plan.primitives[-1].params.get('cut', False) == (plan.num_frames == 90)
        for entry in (*plan.primitives, *plan.contacts, *plan.finger_actions):
            assert 0 <= entry.start < entry.stop <= plan.num_frames


def test_annotate_callback_adds_texts_and_entries():
    composition_seed, clip_seed = clip_seeds(0, 3)
    clip = synthesize_clip(CONFIG, composition_seed, clip_seed, annotate=fixture_annotate)
    assert clip.motion.texts == (', then '.join(p.motion_type for p in clip.plan.primitives),)
    assert set(clip.motion.annotation) == {'plan', 'features'}

    def bad(motion, plan):
        return (), {'plan': 1}

    with pytest.raises(SynthesisError, match="'plan'"):
        synthesize_clip(CONFIG, composition_seed, clip_seed, annotate=bad)


# ---------------------------------------------------------------------------- splits


def test_splits_by_composition_seed():
    seen: dict[int, Split] = {}
    counts = dict.fromkeys(Split, 0)
    for index in range(4000):
        composition_seed, clip_seed = clip_seeds(7, index, 4)
        split = split_of(composition_seed)
        assert seen.setdefault(composition_seed, split) is split
        counts[split] += 1
        if index % 4:
            assert composition_seed == clip_seeds(7, index - 1, 4)[0]
    assert len(seen) == 1000
    assert 0.75 < counts[Split.TRAIN] / 4000 < 0.85
    assert 0.06 < counts[Split.VAL] / 4000 < 0.14
    assert split_of(123, (0.0, 0.0, 1.0)) is Split.TEST


# ---------------------------------------------------------------------------- corpus


def _read_corpus(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file()}


def test_corpus_is_deterministic_and_consistent(tmp_path):
    config = dataclasses.replace(CONFIG, clips_per_shard=5)
    one = build_corpus(tmp_path / 'one', 12, 3, config, workers=1, progress=False,
                       annotate=fixture_annotate)
    two = build_corpus(tmp_path / 'two', 12, 3, config, workers=2, progress=False,
                       annotate=fixture_annotate)
    files_one, files_two = _read_corpus(tmp_path / 'one'), _read_corpus(tmp_path / 'two')
    assert files_one == files_two  # byte-identical, whatever the number of workers
    assert one.num_frames == two.num_frames > 0 and two.workers == 2

    index = load_index(tmp_path / 'two')
    raw = json.loads((tmp_path / 'two' / 'index.json').read_text())
    assert raw['format'] == CORPUS_FORMAT and raw['num_frames'] == index.num_frames
    assert [row.index for row in index.rows] == list(range(12))
    assert sorted(files_two) == sorted(['config.yaml', 'index.json']
                                       + [row.file for row in index.rows])
    assert SynthConfig.from_yaml(tmp_path / 'two' / 'config.yaml') == dataclasses.replace(
        config, motion_types=tuple(sorted(FIXTURE_TYPES)))
    splits: dict[int, str] = {}
    for row, motion in iter_clips(tmp_path / 'two'):
        assert row.file.startswith(f'{row.split.value}/shard-{row.index // 5:05d}/')
        assert isinstance(motion, BimanualMotion) and motion.num_frames == row.num_frames
        plan = ClipPlan.from_dict(motion.annotation['plan'])
        assert (plan.seed, plan.composition_seed) == (row.seed, row.composition_seed)
        assert tuple(p.motion_type for p in plan.primitives) == row.motion_types
        assert motion.texts and motion.annotation['features']['frames'] == row.num_frames
        assert splits.setdefault(row.composition_seed, row.split.value) == row.split.value
    assert sum(len(index.split(s)) for s in Split) == 12


def test_corpus_folder_is_not_overwritten_by_accident(tmp_path):
    build_corpus(tmp_path, 2, 0, CONFIG, workers=1, progress=False)
    with pytest.raises(SynthesisError, match='already holds a corpus'):
        build_corpus(tmp_path, 2, 0, CONFIG, workers=1, progress=False)
    summary = build_corpus(tmp_path, 1, 1, CONFIG, workers=1, progress=False, overwrite=True)
    assert summary.num_clips == 1
    assert len(list(tmp_path.rglob('*.npz'))) == 1
    with pytest.raises(SynthesisError, match='no corpus'):
        load_index(tmp_path / 'missing')


def test_cli_synth(tmp_path, capsys):
    config = tmp_path / 'synth.yaml'
    config.write_text(f'primitive_modules: {list(FIXTURE_MODULES)}\n')
    out = tmp_path / 'corpus'
    code = main(['data', 'synth', '--clips', '3', '--seed', '4', '--out', str(out),
                 '--workers', '1', '--config', str(config), '--types',
                 'fixture_fist,fixture_sway', '--no-progress'])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'wrote 3 clips' in printed and 'frames/s' in printed and 'clips/s' in printed
    index = load_index(out)
    assert {t for row in index.rows for t in row.motion_types} <= {'fixture_fist',
                                                                     'fixture_sway'}
    code = main(['data', 'synth', '--clips', '3', '--out', str(out), '--workers', '1',
                 '--types', 'nope', '--config', str(config)])
    assert code == 2
    assert "unknown motion type 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- real registry

def test_real_registry_clips(tmp_path):
    config = SynthConfig()
    assert set(resolve_motion_types(config)) >= {'clap', 'fist', 'wave'}
    summary = build_corpus(tmp_path, 6, 0, config, workers=1, progress=False)
    assert summary.num_clips == 6
    for row, motion in iter_clips(tmp_path):
        plan = ClipPlan.from_dict(motion.annotation['plan'])
        assert tuple(p.motion_type for p in plan.primitives) == row.motion_types
        skeletons = [default_skeleton(side, plan.hand_scale * DEFAULT_HAND_LENGTH_M)
                     for side in HandSide]
        assert filter_motion(motion, skeletons=skeletons).kept_fraction >= 0.95
        assert _penetration(motion.keypoints.astype(np.float64)).max() <= 0.005


def test_default_types_come_from_the_configured_modules_only():
    """Fixture types registered in this process are not drawn by a default config."""
    load_primitives(FIXTURE_MODULES)
    default_types = resolve_motion_types(SynthConfig())
    assert not set(FIXTURE_TYPES) & set(default_types)
    assert {'clap', 'fist', 'wave'} <= set(default_types)


def test_worker_start_up_failure_is_raised_not_retried(tmp_path):
    """A type the worker processes cannot register fails the build with that error."""
    config = SynthConfig(motion_types=FIXTURE_TYPES[:1])  # worker imports default modules only
    with pytest.raises(ConfigError, match='unknown motion type'):
        build_corpus(tmp_path, 4, 0, config, workers=2, progress=False)


def test_a_touch_held_across_a_boundary_is_one_planned_contact():
    """Two planned contacts of one pair with the parts still touching between them join."""
    from handx_gen.data.plan import PlannedContact
    from handx_gen.data.synthetic import _bridge_contacts
    from handx_gen.hand.parts import HandPart, PartRef

    palms = (PartRef(HandSide.LEFT, HandPart.PALM), PartRef(HandSide.RIGHT, HandPart.PALM))
    clip = synthesize_clip(SynthConfig(motion_types=('press_palms',)), 3, 3)
    first = next(c for c in clip.plan.contacts if {c.a, c.b} == set(palms))
    middle = (first.start + first.stop) // 2
    halves = [PlannedContact(first.start, middle - 2, *palms),
              PlannedContact(middle + 2, first.stop, *palms)]
    keypoints = clip.motion.keypoints
    assert _bridge_contacts(halves, keypoints) == (PlannedContact(first.start, first.stop,
                                                                  *palms),)
    # Apart in between (the hands are far before the press starts): kept as two contacts.
    early = [PlannedContact(0, 2, *palms), PlannedContact(first.start, first.stop, *palms)]
    assert len(_bridge_contacts(early, keypoints)) == 2
