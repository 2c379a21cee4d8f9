"""Tests for handx_gen.eval.prompt_set and the held-out prompt set it reads
(benchmarks/prompts/heldout/prompts.yaml): the file parses, is large enough, covers every
motion type, uses only the feature vocabulary, has no duplicates and shares no text with the
corpus' templates; labels are scored as the evaluation scores plans."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from handx_gen.annotate.features import Coordination, extract_features
from handx_gen.annotate.pipeline import annotate_synthetic
from handx_gen.data.plan import FingerAction
from handx_gen.data.synthetic import SynthConfig, resolve_motion_types, synthesize_clip
from handx_gen.eval.metrics import EvalError
from handx_gen.eval.prompt_set import (
    LabelledPrompt,
    Phrasing,
    load_prompt_set,
    normalise_text,
    parse_prompt,
    score_prompt,
    verbatim_overlap,
)
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import Finger, HandSide

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / 'benchmarks' / 'prompts' / 'heldout' / 'prompts.yaml'
CORPUS_CONFIG = SynthConfig.from_yaml(ROOT / 'training' / 'configs' / 'corpus.yaml')
TYPES = resolve_motion_types(SynthConfig())
L, R = HandSide.LEFT, HandSide.RIGHT


@pytest.fixture(scope='module')
def heldout() -> tuple[LabelledPrompt, ...]:
    return load_prompt_set(HELDOUT)


# ---------------------------------------------------------------------------- the set


def test_heldout_set_parses_and_is_large_enough(heldout) -> None:
    assert len(heldout) >= 100
    ids = [p.prompt_id for p in heldout]
    assert len(set(ids)) == len(ids)
    texts = [normalise_text(p.text) for p in heldout]
    assert len(set(texts)) == len(texts)


def test_heldout_set_covers_every_motion_type(heldout) -> None:
    covered = {p.motion_type for p in heldout}
    assert set(TYPES) <= covered, sorted(set(TYPES) - covered)
    contact_types = {'clap', 'rub_palms', 'steeple', 'interlace_fingers', 'tap_palm',
                     'stroke_back', 'grasp_wrist', 'count_on_fingers', 'press_palms',
                     'heart_shape', 'frame_shape'}
    for motion_type in contact_types:
        named = [p for p in heldout if p.motion_type == motion_type and p.names_contacts]
        assert len(named) >= 5, motion_type


def test_heldout_labels_use_the_feature_vocabulary(heldout) -> None:
    for prompt in heldout:
        for a, b in prompt.contacts:
            assert isinstance(a.part, HandPart) and isinstance(b.part, HandPart)
            if a.side == b.side:  # within a hand: the thumb tip on another fingertip
                assert HandPart.THUMB_TIP in (a.part, b.part) and a.part.is_tip \
                    and b.part.is_tip, prompt.prompt_id
        for side, finger, action in prompt.finger_actions:
            assert isinstance(side, HandSide) and isinstance(finger, Finger)
            assert action in (FingerAction.BEND, FingerAction.EXTEND), prompt.prompt_id
        assert prompt.motion_type in TYPES


def test_heldout_styles_match_their_texts(heldout) -> None:
    """The phrasing tags that can be read off a text agree with it."""
    for p in heldout:
        style, text = set(p.style), p.text
        assert (Phrasing.QUESTION in style) == text.endswith('?'), p.prompt_id
        assert (Phrasing.DIGITS in style) == bool(re.search(r'\d', text)), p.prompt_id
        assert (Phrasing.SEVERAL_SENTENCES in style) == bool(
            re.search(r'[.!?]\s+\S', text)), p.prompt_id
        assert (Phrasing.SHORT in style) == (len(text.split()) <= 4), p.prompt_id
        assert (Phrasing.NO_SIDE in style) == p.either_hand, p.prompt_id
    used = {s for p in heldout for s in p.style}
    assert used == set(Phrasing), sorted(s.value for s in set(Phrasing) - used)
    assert sum(p.lead is L for p in heldout) >= 10  # left-led requests, not only right


@pytest.fixture(scope='module')
def corpus_texts() -> list[str]:
    """Texts of a small synthetic corpus made by the templates: two clips of every motion
    type (one led by each hand), every description and every primitive's label."""
    texts = []
    for index, motion_type in enumerate(TYPES):
        for left in (0.0, 1.0):
            config = dataclasses.replace(CORPUS_CONFIG, left_dominant_fraction=left)
            clip = synthesize_clip(config, 101 + index, 1_000 + 2 * index + int(left),
                                   motion_types=[motion_type], annotate=annotate_synthetic)
            texts += list(clip.motion.texts)
            texts += [p.label for p in clip.plan.primitives]
    return texts


def test_heldout_prompts_are_not_corpus_texts(heldout, corpus_texts) -> None:
    assert len(corpus_texts) >= 4 * len(TYPES)
    assert verbatim_overlap(heldout, corpus_texts) == []
    # the check itself finds a corpus text however it is capitalised and punctuated
    copied = dataclasses.replace(heldout[0], text=corpus_texts[0].upper().rstrip('.') + '!')
    assert verbatim_overlap([copied], corpus_texts) == [(copied.prompt_id, corpus_texts[0])]


def test_heldout_set_stays_out_of_training() -> None:
    """Nothing that builds training data or trains a model reads the held-out folder."""
    folders = [ROOT / 'training', ROOT / 'handx_gen' / 'models', ROOT / 'handx_gen' / 'data']
    for folder in folders:
        for path in folder.rglob('*'):
            if path.suffix in ('.py', '.yaml', '.yml', '.md'):
                assert 'heldout' not in path.read_text(encoding='utf-8'), path


# ---------------------------------------------------------------------------- parsing


def _entry(**overrides):
    return {'id': 'x', 'text': 'tap your left palm', 'type': 'tap_palm',
            'contacts': ['left.palm~right.index_tip'], **overrides}


def test_parse_prompt_expands_sides_and_finger_groups() -> None:
    prompt = parse_prompt(_entry(bend=['both.fingers'], extend=['right.thumb'],
                                 spread=['both'], coordination='alternating', lead='left',
                                 style=['short']))
    assert prompt.contacts == ((PartRef(L, HandPart.PALM), PartRef(R, HandPart.INDEX_TIP)),)
    bends = [(s, f) for s, f, a in prompt.finger_actions if a is FingerAction.BEND]
    assert len(bends) == 8 and (L, Finger.THUMB) not in bends
    assert (R, Finger.THUMB, FingerAction.EXTEND) in prompt.finger_actions
    assert prompt.spread == (L, R) and prompt.coordination is Coordination.ALTERNATING
    assert prompt.lead is L and prompt.style == (Phrasing.SHORT,)
    assert parse_prompt(_entry(bend=['right.all'])).finger_actions[0][1] is Finger.THUMB
    assert parse_prompt(prompt.to_dict()) == prompt  # the file notation round-trips


@pytest.mark.parametrize(('overrides', 'message'), [
    ({'contacts': ['left.pinky~right.palm']}, 'pinky.*valid.*little_tip'),
    ({'contacts': ['left.palm-right.palm']}, 'SIDE.PART~SIDE.PART'),
    ({'contacts': ['up.palm~right.palm']}, "side 'up'.*'left', 'right'"),
    ({'contacts': ['right.index_tip~right.middle_tip']}, 'within one hand.*thumb_tip'),
    ({'contacts': ['left.palm~left.palm']}, 'one part twice'),
    ({'contacts': ['left.palm~right.palm', 'right.palm~left.palm']}, 'twice'),
    ({'bend': ['right.pinky']}, "finger 'pinky'.*'fingers'"),
    ({'bend': ['right.index', 'right.all']}, 'given twice'),
    ({'extend': ['index']}, 'SIDE.FINGER'),
    ({'hold': ['right.index']}, "key.*'hold'"),
    ({'type': 'juggling'}, "motion type.*'juggling'.*clap"),
    ({'coordination': 'still'}, "coordination.*'still'"),
    ({'style': ['poetic']}, "style.*'poetic'"),
    ({'either_hand': 'yes'}, 'true or false'),
    ({'lead': 'both'}, "lead.*'both'"),
    ({'text': ' padded '}, 'one line'),
    ({'text': ''}, "'text' must be"),
])
def test_parse_prompt_refuses_what_is_not_vocabulary(overrides, message) -> None:
    with pytest.raises(EvalError, match=message):
        parse_prompt(_entry(**overrides), TYPES)


def test_load_prompt_set_refuses_duplicates_and_other_formats(tmp_path) -> None:
    path = tmp_path / 'prompts.yaml'
    path.write_text('format: handx-prompt-set/1\nprompts:\n'
                    '- {id: a, text: Clap twice., type: clap}\n'
                    '- {id: b, text: clap  twice, type: clap}\n', encoding='utf-8')
    with pytest.raises(EvalError, match="'a' and 'b' have the same text"):
        load_prompt_set(path, TYPES)
    path.write_text('format: handx-prompt-set/1\nprompts:\n'
                    '- {id: a, text: clap twice, type: clap}\n'
                    '- {id: a, text: clap thrice, type: clap}\n', encoding='utf-8')
    with pytest.raises(EvalError, match="id 'a' is used by entries 0 and 1"):
        load_prompt_set(path, TYPES)
    path.write_text('format: handx-prompt-set/2\nprompts: []\n', encoding='utf-8')
    with pytest.raises(EvalError, match='expected .handx-prompt-set/1'):
        load_prompt_set(path, TYPES)
    path.write_text('format: handx-prompt-set/1\nprompts:\n- {id: a, text: x, type: clap, '
                    'contacts: [left.palm~right.wrist]}\n', encoding='utf-8')
    with pytest.raises(EvalError, match='entry 0.*wrist'):
        load_prompt_set(path, TYPES)


# ---------------------------------------------------------------------------- scores


@pytest.fixture(scope='module')
def right_tap():
    """A right-led tap on the left palm (the right index fingertip taps)."""
    config = dataclasses.replace(CORPUS_CONFIG, left_dominant_fraction=0.0)
    return extract_features(synthesize_clip(config, 7, 8, motion_types=['tap_palm']).motion)


def test_labels_are_found_on_a_clip_that_does_them(right_tap) -> None:
    prompt = parse_prompt(_entry(), TYPES)
    score = score_prompt(prompt, right_tap)
    assert score.all_contacts is True and (score.contacts_found, score.contacts_stated) == (1, 1)
    assert not score.mirrored
    # the other hand's tap is not this clip's, unless the prompt leaves the hand open
    other = parse_prompt(_entry(contacts=['right.palm~left.index_tip']), TYPES)
    assert score_prompt(other, right_tap).all_contacts is False
    either = dataclasses.replace(other, either_hand=True)
    assert score_prompt(either, right_tap).all_contacts is True
    assert score_prompt(either, right_tap).mirrored
    # a contact the clip never makes, and finger actions it does not state
    missing = parse_prompt(_entry(contacts=['left.palm~right.palm',
                                            'left.back~right.index_tip']), TYPES)
    score = score_prompt(missing, right_tap)
    assert score.all_contacts is False and score.contacts_found == 0


def test_finger_labels_count_as_articulation() -> None:
    config = dataclasses.replace(CORPUS_CONFIG, left_dominant_fraction=0.0)
    fist = extract_features(synthesize_clip(config, 3, 4, motion_types=['fist']).motion)
    closes = parse_prompt({'id': 'f', 'text': 'make a fist', 'type': 'fist',
                           'bend': ['right.fingers'], 'extend': ['right.fingers']}, TYPES)
    score = score_prompt(closes, fist)
    assert score.all_contacts is None and score.actions_stated == 8
    assert score.actions_realised == 8
    wrong_hand = parse_prompt({'id': 'f', 'text': 'make a fist', 'type': 'fist',
                               'bend': ['left.fingers']}, TYPES)
    assert score_prompt(wrong_hand, fist).actions_realised == 0
    assert score_prompt(dataclasses.replace(wrong_hand, either_hand=True),
                        fist).actions_realised == 4


def test_a_palm_contact_absorbs_the_finger_contacts_it_covers() -> None:
    """The labels are read as plans are: while the palms touch, finger contacts between the
    hands are part of that contact."""
    prompt = parse_prompt(_entry(contacts=['left.palm~right.palm',
                                           'left.index_tip~right.index_tip']), TYPES)
    statement = prompt.statement(120, 30.0)
    assert [(c.a.part, c.b.part) for c in statement.contacts] == [(HandPart.PALM,
                                                                    HandPart.PALM)]
    assert statement.contacts[0].stop == 120
