"""The synthetic corpus, annotated from geometry, agrees with its own plans (issue bar: 0.9)."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.annotate.check import check_corpus
from handx_gen.annotate.pipeline import annotate_synthetic
from handx_gen.data.plan import MotionCategory
from handx_gen.data.synth_base import PRIMITIVES
from handx_gen.data.synthetic import (
    SynthConfig,
    build_corpus,
    iter_clips,
    load_primitives,
    resolve_motion_types,
)

NUM_CLIPS = 32


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp('corpus')
    summary = build_corpus(out, NUM_CLIPS, 0, SynthConfig(), workers=1, progress=False,
                           annotate=annotate_synthetic)
    assert summary.num_clips == NUM_CLIPS
    return out


def test_registry_has_at_least_30_types_in_all_three_categories():
    load_primitives()
    types = resolve_motion_types(SynthConfig())
    assert len(types) >= 30
    categories = {PRIMITIVES[name].category for name in types}
    assert categories == set(MotionCategory)


def test_every_clip_has_texts_at_every_granularity_and_features(corpus):
    for _, motion in iter_clips(corpus):
        assert len(motion.texts) >= 4 and all(text.strip() for text in motion.texts)
        granularities = {d['granularity'] for d in motion.annotation['descriptions']}
        assert granularities == {'semantic', 'interaction', 'articulation', 'request'}
        assert motion.annotation['features']['num_frames'] == motion.num_frames
        assert np.isfinite(motion.keypoints).all()


def test_contacts_and_flexion_agree_with_the_plans(corpus):
    report = check_corpus(corpus).to_dict()
    overall = report['overall']
    assert overall['contacts']['tp'] + overall['contacts']['fn'] > 20  # planned contacts
    assert overall['contacts']['precision'] >= 0.9
    assert overall['contacts']['recall'] >= 0.9
    assert overall['flexion']['agreement'] >= 0.9
