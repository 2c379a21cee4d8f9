"""Tests for handx_gen.annotate.check: features against synthetic plans, with known answers."""

from __future__ import annotations

import argparse
import json

import pytest
from feature_records import bend, contact, extend, hand, record

from handx_gen.annotate import cli as annotate_cli
from handx_gen.annotate.check import (
    OVERALL,
    TRANSITION,
    CheckConfig,
    ContactScope,
    PartMatch,
    absorb_dominated,
    check_clip,
    check_corpus,
    check_records,
    flexion_curve,
    match_contacts,
    merge_contacts,
    parts_match,
    stated_contacts_found,
    temporal_iou,
)
from handx_gen.data.plan import (
    ClipPlan,
    FingerAction,
    MotionCategory,
    PlannedContact,
    PlannedFingerAction,
    PlannedPrimitive,
)
from handx_gen.errors import ConfigError
from handx_gen.hand.parts import PartRef
from handx_gen.hand.topology import Finger, HandSide
from handx_gen.motion import BimanualMotion

L, R = HandSide.LEFT, HandSide.RIGHT
T = 120


def planned(start: int, stop: int, a: str, b: str) -> PlannedContact:
    return PlannedContact(start, stop, PartRef.from_json(a), PartRef.from_json(b))


def plan(contacts=(), actions=(), primitives=None, num_frames: int = T) -> ClipPlan:
    primitives = primitives or (
        PlannedPrimitive('tap_palm', MotionCategory.BIMANUAL_CONTACT, 0, 60, 'tap'),
        PlannedPrimitive('fist', MotionCategory.SINGLE_HAND, 70, T, 'fist'),
    )
    return ClipPlan(1, 2, 30.0, num_frames, tuple(primitives), tuple(contacts), tuple(actions))


def test_temporal_iou_and_parts_rules():
    assert temporal_iou(10, 20, 10, 20) == 1.0
    assert temporal_iou(10, 20, 15, 25) == pytest.approx(5 / 15)
    assert temporal_iou(10, 20, 20, 30) == 0.0
    assert temporal_iou(5, 5, 5, 5) == 0.0
    tip, shaft = PartRef.from_json('right.index_tip'), PartRef.from_json('right.index')
    palm, other = PartRef.from_json('left.palm'), PartRef.from_json('right.middle_tip')
    assert parts_match((tip, palm), (palm, tip), PartMatch.EXACT)  # unordered
    assert parts_match((tip, palm), (palm, shaft), PartMatch.FINGER)  # same finger family
    assert not parts_match((tip, palm), (palm, shaft), PartMatch.EXACT)
    assert not parts_match((tip, palm), (palm, other), PartMatch.FINGER)  # another finger
    swapped = (PartRef.from_json('left.index_tip'), PartRef.from_json('right.palm'))
    assert not parts_match((tip, palm), swapped, PartMatch.FINGER)  # hands swapped
    back = PartRef.from_json('left.back')
    assert not parts_match((tip, palm), (tip, back), PartMatch.FINGER)  # palm is not back


def test_three_planned_two_right_one_wrong_parts():
    """3 planned contacts; detected: 2 correct, 1 with the wrong parts -> P = R = 2/3."""
    p = plan(contacts=[planned(10, 20, 'left.palm', 'right.index_tip'),
                       planned(30, 40, 'left.palm', 'right.index_tip'),
                       planned(45, 55, 'left.thumb_tip', 'right.thumb_tip')])
    f = record(T, contacts=[contact(11, 21, 'left.palm', 'right.index_tip'),  # IoU 9/11
                            contact(30, 39, 'right.index_tip', 'left.palm'),  # order swapped
                            contact(45, 55, 'left.index_tip', 'right.thumb_tip')])  # wrong
    result = check_clip(p, f)
    total = result.contact_total
    assert (total.tp, total.fp, total.fn) == (2, 1, 1)
    assert total.precision == pytest.approx(2 / 3) and total.recall == pytest.approx(2 / 3)
    assert total.f1 == pytest.approx(2 / 3)
    assert [(m.planned, m.detected) for m in result.matches] == [(0, 0), (1, 1)]
    assert result.contacts['tap_palm'].tp == 2


def test_iou_threshold_and_one_to_one_matching():
    p = plan(contacts=[planned(10, 20, 'left.palm', 'right.index_tip')])
    late = record(T, contacts=[contact(15, 25, 'left.palm', 'right.index_tip')])  # IoU 1/3
    counts = check_clip(p, late).contact_total
    assert (counts.tp, counts.fp, counts.fn) == (0, 1, 1)
    assert check_clip(p, late, CheckConfig(iou_threshold=0.3)).contact_total.tp == 1
    # Two detections could match one plan entry: the better one wins, the other is an FP.
    twice = [contact(10, 19, 'left.palm', 'right.index_tip'),
             contact(10, 20, 'left.palm', 'right.index')]
    matches = match_contacts(p.contacts, twice)
    assert [(m.planned, m.detected, m.iou) for m in matches] == [(0, 1, 1.0)]


def test_part_family_rule_and_exact_counts():
    p = plan(contacts=[planned(10, 20, 'left.palm', 'right.index_tip')])
    f = record(T, contacts=[contact(10, 20, 'left.palm', 'right.index')])  # shaft detected
    counts = check_clip(p, f).contact_total
    assert counts.tp == 1 and counts.precision == 1.0 and counts.recall == 1.0
    assert (counts.tp_exact, counts.fp_exact, counts.fn_exact) == (0, 1, 1)
    assert counts.precision_exact == 0.0
    exact = check_clip(p, f, CheckConfig(part_match=PartMatch.EXACT)).contact_total
    assert exact.tp == 0 and exact.recall == 0.0


def test_plan_entries_of_one_touch_are_merged_and_broad_contact_absorbs_fingers():
    thumbs = [planned(10, 20, 'left.thumb_tip', 'right.thumb_tip'),
              planned(12, 20, 'left.thumb', 'right.thumb_tip'),
              planned(10, 18, 'left.thumb', 'right.thumb')]
    assert len(merge_contacts(thumbs, PartMatch.FINGER)) == 1
    assert len(merge_contacts(thumbs, PartMatch.EXACT)) == 3
    f = record(T, contacts=[contact(10, 20, 'left.thumb_tip', 'right.thumb_tip')])
    counts = check_clip(plan(contacts=thumbs), f).contact_total
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 0)
    # Palms pressed together: the fingers touching meanwhile belong to the palm contact.
    press = [planned(10, 60, 'left.palm', 'right.palm'),
             planned(12, 58, 'left.index', 'right.index'),
             planned(45, 85, 'left.index_tip', 'right.palm')]  # 15 of 40 covered: kept
    kept = absorb_dominated(press, 0.5)
    assert [(c.a.to_json(), c.b.to_json()) for c in kept] == [
        ('left.palm', 'right.palm'), ('left.index_tip', 'right.palm')]
    assert len(absorb_dominated(press, 0.0)) == 3


def test_scope_and_contact_kinds():
    p = plan(contacts=[planned(10, 20, 'left.palm', 'right.index_tip')])
    f = record(T, contacts=[contact(10, 20, 'left.palm', 'right.index_tip'),
                            contact(30, 50, 'right.thumb_tip', 'right.index_tip')])
    result = check_clip(p, f)
    assert result.contact_total.precision == 0.5
    assert result.contact_kinds['between_hands'].precision == 1.0
    assert result.contact_kinds['same_hand'].fp == 1
    between = check_clip(p, f, CheckConfig(scope=ContactScope.BETWEEN_HANDS)).contact_total
    assert between.precision == 1.0 and between.recall == 1.0


def _fist_record(curves: bool):
    moves = {Finger.INDEX: [bend(70, 90, 10, 80), extend(100, 115, 80, 10)],
             Finger.MIDDLE: [bend(70, 90, 10, 80)],
             Finger.RING: [bend(70, 74, 10, 13)]}  # a 3 deg flinch
    return record(T, right=hand(R, T, moves, curves=curves))


@pytest.mark.parametrize('curves', [False, True])
def test_flexion_direction_agreement(curves):
    actions = [
        PlannedFingerAction(R, Finger.INDEX, 70, 90, FingerAction.BEND),  # agrees
        PlannedFingerAction(R, Finger.INDEX, 100, 115, FingerAction.EXTEND),  # agrees
        PlannedFingerAction(R, Finger.MIDDLE, 100, 115, FingerAction.EXTEND),  # held: wrong
        PlannedFingerAction(R, Finger.RING, 70, 75, FingerAction.BEND),  # 3 deg: too small
        PlannedFingerAction(R, Finger.LITTLE, 70, 120, FingerAction.HOLD),  # agrees
        PlannedFingerAction(R, Finger.MIDDLE, 75, 95, FingerAction.HOLD),  # it bends: wrong
        PlannedFingerAction(L, Finger.INDEX, 62, 68, FingerAction.HOLD),  # transition: agrees
    ]
    result = check_clip(plan(actions=actions), _fist_record(curves))
    fist, gap = result.flexion['fist'], result.flexion[TRANSITION]
    assert (fist.total, fist.agree) == (6, 3)
    assert fist.of(FingerAction.BEND) == 0.5 and fist.of(FingerAction.EXTEND) == 0.5
    assert fist.of(FingerAction.HOLD) == 0.5
    assert (gap.total, gap.agree) == (1, 1)
    assert result.flexion_total.agreement == pytest.approx(4 / 7)


def test_flexion_curve_from_events_matches_stored_curve():
    events_only = _fist_record(False).hand(R).finger(Finger.INDEX)
    stored = _fist_record(True).hand(R).finger(Finger.INDEX)
    a, b = flexion_curve(events_only, T), flexion_curve(stored, T)
    assert a.shape == b.shape == (T,)
    assert abs(a - b).max() < 1.0  # linear movements: the event knots give the curve


def test_report_table_json_and_config_errors():
    p = plan(contacts=[planned(10, 20, 'left.palm', 'right.index_tip'),
                       planned(30, 40, 'left.palm', 'right.index_tip'),
                       planned(45, 55, 'left.thumb_tip', 'right.thumb_tip')],
             actions=[PlannedFingerAction(R, Finger.INDEX, 70, 90, FingerAction.BEND)])
    f = record(T, right=hand(R, T, {Finger.INDEX: [bend(70, 90)]}),
               contacts=[contact(11, 21, 'left.palm', 'right.index_tip'),
                         contact(30, 39, 'left.palm', 'right.index_tip'),
                         contact(45, 55, 'left.index_tip', 'right.thumb_tip')])
    report = check_records([(p, f), (p, f)])
    assert report.clips == 2
    overall = report.contact_overall
    assert (overall.tp, overall.fp, overall.fn) == (4, 2, 2)
    table = report.to_markdown()
    assert '| motion type | planned contacts |' in table
    assert '| **overall** | 6 | 6 | 66.7% (66.7%) | 66.7% (66.7%) | 2 | 100.0% |' in table
    data = json.loads(json.dumps(report.to_dict()))
    assert data[OVERALL]['contacts']['precision'] == pytest.approx(2 / 3)
    assert data['motion_types']['fist']['flexion']['agreement'] == 1.0
    assert data['config']['iou_threshold'] == 0.5
    with pytest.raises(ConfigError, match='iou_threshold'):
        CheckConfig(iou_threshold=0.0)
    with pytest.raises(ConfigError, match='valid options'):
        CheckConfig(part_match='family')
    with pytest.raises(ConfigError, match='valid options'):
        CheckConfig(scope='both')


def test_check_corpus_cli_and_annotate_cli(tmp_path, capsys):
    """A small corpus built with the test primitives and the real annotator: check_corpus
    reads plan and features from every clip; the CLI prints the same numbers."""
    from synth_fixtures import FIXTURE_MODULES

    from handx_gen.annotate.pipeline import annotate_synthetic
    from handx_gen.data.synthetic import SynthConfig, build_corpus, iter_clips
    from handx_ros.cli import main

    config = SynthConfig(motion_types=('fixture_fist', 'fixture_sway'),
                         primitive_modules=FIXTURE_MODULES)
    corpus = tmp_path / 'corpus'
    build_corpus(corpus, 4, 0, config, workers=1, annotate=annotate_synthetic, progress=False)
    rows = list(iter_clips(corpus))
    for _, motion in rows:
        assert len(motion.texts) >= 3 and all(motion.texts)
        assert {'plan', 'features', 'descriptions'} <= set(motion.annotation)
        assert len(motion.annotation['features']['hands'][0]['fingers'][1]['flexion_deg']) \
            == motion.num_frames  # curves kept for the check
    report = check_corpus(corpus)
    assert report.clips == 4 and not report.skipped
    assert report.flexion_overall.total > 0
    assert report.flexion_overall.agreement >= 0.9
    assert main(['data', 'check-annotation', str(corpus), '--json']) == 0
    data = json.loads(capsys.readouterr().out)
    assert data['clips'] == 4
    assert data[OVERALL]['flexion']['agree'] == report.flexion_overall.agree
    assert main(['data', 'check-annotation', str(corpus)]) == 0
    assert '**overall**' in capsys.readouterr().out

    # Re-annotate one clip with another seed into a copy; the plan stays, texts change.
    first = corpus / rows[0][0].file
    out = tmp_path / 'annotated'
    parser = argparse.ArgumentParser()
    annotate_cli.register(parser.add_subparsers(dest='command'))
    args = parser.parse_args(['annotate', str(first), '--seed', '5', '--out', str(out)])
    assert args.func(args) == 0
    assert '[articulation]' in capsys.readouterr().out
    copy = BimanualMotion.load(out / first.name)
    assert copy.annotation['plan'] == rows[0][1].annotation['plan']
    assert len(copy.texts) >= 3
    # A clip without features is skipped and listed.
    bare = rows[1][1].with_annotation({'plan': rows[1][1].annotation['plan']})
    bare.save(corpus / rows[1][0].file)
    skipped = check_corpus(corpus)
    assert skipped.clips == 3 and len(skipped.skipped) == 1
    assert 'no features' in skipped.skipped[0]


def test_stated_contacts_are_found_whenever_they_happen() -> None:
    stated = [planned(10, 40, 'left.palm', 'right.palm'),
              planned(60, 90, 'right.thumb_tip', 'right.index_tip')]
    # the palms touch late (no temporal overlap), the pinch uses the index shaft: both count
    detected = [contact(100, 115, 'right.palm', 'left.palm'),
                contact(0, 20, 'right.index', 'right.thumb_tip')]
    found = stated_contacts_found(stated, detected)
    assert [ok for _, ok in found] == [True, True]
    # the exact-part rule does not accept the shaft for the tip
    found = stated_contacts_found(stated, detected, PartMatch.EXACT)
    assert [ok for _, ok in found] == [True, False]
    # another pair of parts is not the stated contact
    found = stated_contacts_found(stated, [contact(10, 40, 'left.back', 'right.palm')])
    assert [ok for _, ok in found] == [False, False]
    assert stated_contacts_found([], detected) == ()
