"""The held-out phrasing benchmark (benchmarks/bench_heldout.py): its prompt order, its corpus
pairs and its report, with a stand-in generator that returns the paired corpus clip (so every
model row must equal the corpus clip's). No model is loaded and no timing is asserted."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from unittest import mock

import pytest


def _import_bench_heldout():
    """Import the script from benchmarks/ without leaving its folder on ``sys.path`` or its
    ``common`` module in ``sys.modules`` (training/ has a ``common`` module too)."""
    saved_path, saved_common = list(sys.path), sys.modules.pop('common', None)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
    try:
        with mock.patch.dict(os.environ):  # the script's offline default stays in it
            import bench_heldout
    finally:
        sys.path[:] = saved_path
        sys.modules.pop('common', None)
        if saved_common is not None:
            sys.modules['common'] = saved_common
    return bench_heldout


bench = _import_bench_heldout()

from handx_gen.data.synthetic import Split, split_of  # noqa: E402
from handx_gen.eval.prompt_set import load_prompt_set  # noqa: E402
from handx_gen.hand.topology import HandSide  # noqa: E402


@pytest.fixture(scope='module')
def prompts():
    return load_prompt_set(bench.HELDOUT_PROMPTS)


def test_a_limited_run_covers_every_motion_type_first(prompts) -> None:
    types = {p.motion_type for p in prompts}
    ordered = bench.order_prompts(prompts, None)
    assert sorted(p.prompt_id for p in ordered) == sorted(p.prompt_id for p in prompts)
    assert {p.motion_type for p in ordered[:len(types)]} == types
    assert len(bench.order_prompts(prompts, 5)) == 5


def test_corpus_pairs_come_from_the_test_split_led_by_the_prompts_hand(prompts) -> None:
    seeds = bench.test_split_seeds(0, 6)
    assert all(split_of(composition) is Split.TEST for composition, _ in seeds)
    assert len(set(seeds)) == 6 and seeds == bench.test_split_seeds(0, 6)
    chosen = [p for p in prompts if p.lead is HandSide.LEFT][:2] + list(prompts[:2])
    pairs = bench.corpus_pairs(chosen, 0, 'semantic')
    for pair in pairs:
        assert pair.plan.primitives[0].motion_type == pair.prompt.motion_type
        assert pair.plan.dominant is pair.prompt.lead
        assert pair.corpus_text and pair.corpus_text != pair.prompt.text


class _Replay:
    """Stands in for the Generator: the paired corpus clip for either phrasing."""

    def __init__(self, pairs) -> None:
        self.clips = {}
        for pair in pairs:
            self.clips[pair.prompt.text] = pair.motion
            self.clips[pair.corpus_text] = pair.motion

    def generate(self, text, *, model, seed):
        return self.clips[text]


def test_report_of_a_generator_that_returns_the_corpus_clips(prompts, capsys) -> None:
    args = bench.parse_args(['--limit', '4', '--models', 'ar', '--repeats', '2'])
    pairs = bench.corpus_pairs(bench.order_prompts(prompts, 4), 0, 'semantic')
    with mock.patch('handx_gen.generate.Generator', lambda **_: _Replay(pairs)):
        report = bench.run(args)
    assert report['prompts'] == 4
    assert set(report['sources']) == {bench.GROUND_TRUTH, 'ar'}
    for phrasing in ('heldout', 'corpus'):
        model = report['sources']['ar'][phrasing]
        truth = report['sources'][bench.GROUND_TRUTH][phrasing]
        for key in ('clips', 'all_contacts', 'clips_naming_contacts', 'actions_realised',
                    'actions_stated', 'mm_dist'):
            assert model[key] == truth[key], (phrasing, key)
        assert model['top3'] is None  # fewer prompts than one batch of 32
    assert report['sources']['ar']['corpus']['all_contacts_share'] == 1.0
    assert len(report['per_prompt']) == 4
    entry = report['per_prompt'][0]
    assert set(entry['results']) == {f'{bench.GROUND_TRUTH} heldout', 'ar heldout',
                                     'ar corpus'}
    text = bench.render(report, markdown=True)
    assert sum(line.startswith('|---|') for line in text.splitlines()) == 3
    assert 'top-3 held-out / corpus' in text
    assert report['prompts_file'].endswith('prompts.yaml')


def test_arguments_are_checked() -> None:
    for argv in (['--clips', '0'], ['--limit', '0'], ['--models', 'gpt']):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
