"""Tests for the evaluator (training, loading, embedding), reading reference sets from any
folder of motion files, the retrieval baseline, the table of sources by tasks and
``handx eval``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from corpus_helpers import build_corpus, train

from handx_gen.errors import ModelError
from handx_gen.eval.evaluate import (
    HELDOUT,
    EvalSettings,
    Retrieval,
    evaluate,
    load_clips,
    markdown_table,
    prompt_set_metrics,
)
from handx_gen.eval.evaluator import EVALUATOR_FORMAT, Evaluator, EvaluatorConfig
from handx_gen.eval.metrics import EvalError
from handx_gen.eval.names import HELDOUT_SET
from handx_gen.eval.prompt_set import load_prompt_set
from handx_gen.generate import Generator, default_checkpoint
from handx_gen.models.checkpoints import load_checkpoint
from handx_gen.motion import BimanualMotion


@pytest.fixture(scope='module')
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(tmp_path_factory.mktemp('corpus') / 'c', clips=24, seed=3)


@pytest.fixture(scope='module')
def evaluator_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('evaluator')
    config = tmp_path_factory.mktemp('cfg') / 'half.yaml'
    config.write_text(yaml.safe_dump({'model': {'preset': 'tiny'},
                                      'train': {'steps': 6, 'batch_size': 4,
                                                'checkpoint_every': 3},
                                      'data': {'fraction': 0.5, 'seed': 1}}))
    train('train_evaluator.py', '--config', str(config), '--corpus', str(corpus), '--out',
          str(out))
    return out


def test_evaluator_trains_on_a_fraction_and_describes_its_data(corpus: Path,
                                                               evaluator_run: Path) -> None:
    checkpoint = load_checkpoint(evaluator_run / 'model.pt', EVALUATOR_FORMAT, 'evaluator')
    assert checkpoint['step'] == 6
    train_data = checkpoint['data']['train']
    assert train_data['fraction'] == 0.5 and train_data['subset_of'] > train_data['clips']
    assert train_data['clips'] == -(-train_data['subset_of'] // 2)
    assert checkpoint['text_encoder']['name'].startswith('minilm')
    lines = [json.loads(line) for line in (evaluator_run / 'log.jsonl').read_text().splitlines()]
    assert any('loss' in line for line in lines)


def test_evaluator_embeds_clips_and_texts_as_unit_vectors(corpus: Path,
                                                          evaluator_run: Path) -> None:
    evaluator = Evaluator(evaluator_run / 'model.pt')
    clips = load_clips(corpus, split='train', limit=5)
    motion = evaluator.embed_motions([c.motion for c in clips])
    text = evaluator.embed_texts([c.text for c in clips])
    assert motion.shape == text.shape == (5, EvaluatorConfig.preset('tiny').embed_dim)
    np.testing.assert_allclose(np.linalg.norm(motion, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    # a clip at another frame rate is resampled to the evaluator's; a short one is held
    slow = clips[0].motion.resample(15.0)
    again = evaluator.embed_motions([slow, clips[0].motion[:40]])
    assert np.isfinite(again).all()
    assert evaluator.describe()['data']['train']['clips'] > 0


def test_evaluator_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match='not found'):
        Evaluator(tmp_path / 'missing.pt')
    broken = tmp_path / 'broken.pt'
    broken.write_bytes(b'not a checkpoint')
    with pytest.raises(ModelError, match='corrupted'):
        Evaluator(broken)
    with pytest.raises(ModelError, match="this code reads 'handx-evaluator/1'"):
        Evaluator(default_checkpoint('diffusion'))
    stale = tmp_path / 'stale.pt'
    checkpoint = torch.load(Evaluator().path, weights_only=True)
    torch.save({**checkpoint, 'format': 'handx-evaluator/0'}, stale)
    with pytest.raises(ModelError, match='handx-evaluator/0'):
        Evaluator(stale)


def test_the_shipped_evaluator_loads_and_says_what_it_was_trained_on() -> None:
    evaluator = Evaluator()
    data = evaluator.describe()['data']['train']
    assert data['seed'] == 0 and data['split'] == 'train' and data['clips'] > 3000
    assert Path(evaluator.path).stat().st_size < 5_000_000


def _clip(seed: int, text: str | None, frames: int = 30) -> BimanualMotion:
    rng = np.random.default_rng(seed)
    orient = np.tile(np.radians([[0.0, 0.0, 90.0], [0.0, 0.0, -90.0]]), (frames, 1, 1))
    pose = rng.normal(0, 0.1, (frames, 2, 15, 3))
    transl = np.tile([[-0.15, 0.3, 1.0], [0.15, 0.3, 1.0]], (frames, 1, 1))
    return BimanualMotion.from_mano(30.0, orient, pose, transl, texts=() if text is None
                                    else (text,))


def test_load_clips_reads_any_folder_of_motion_files(tmp_path: Path) -> None:
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    _clip(0, 'the hands clap').save(tmp_path / 'a' / 'one.npz')
    _clip(1, 'the left hand waves').save(tmp_path / 'a' / 'b' / 'two.npz')
    _clip(2, None).save(tmp_path / 'three.npz')  # no text: not evaluated
    clips = load_clips(tmp_path)
    assert [c.clip_id for c in clips] == ['a/b/two', 'a/one']
    assert [c.text for c in clips] == ['the left hand waves', 'the hands clap']
    assert all(c.plan is None for c in clips)
    assert len(load_clips(tmp_path, limit=1)) == 1
    np.savez(tmp_path / 'bad.npz', x=np.zeros(3))
    with pytest.raises(EvalError, match='bad.npz: not a handx-motion/1 file'):
        load_clips(tmp_path)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(EvalError, match='no clips with a text'):
        load_clips(empty)
    with pytest.raises(EvalError, match='not a folder'):
        load_clips(tmp_path / 'missing')
    with pytest.raises(EvalError, match='granularity'):
        load_clips(tmp_path, granularity='poetic')


def test_load_clips_of_an_empty_corpus_split(corpus: Path) -> None:
    with pytest.raises(EvalError, match="split 'test' has no clips"):
        load_clips(corpus, split='test')  # 24 clips of seed 3: none fell in test
    assert len(load_clips(corpus, split='val')) >= 1


def test_retrieval_returns_the_clip_of_the_nearest_text() -> None:
    from handx_gen.models.text_encoder import TextEncoder

    texts = ['both hands clap three times', 'the left hand waves hello',
             'the right hand makes a tight fist']
    clips = [_clip(i, t) for i, t in enumerate(texts)]
    retrieval = Retrieval(clips, TextEncoder())
    assert retrieval.nearest('a hello wave with the left hand') is clips[1]
    assert retrieval.nearest('clap your hands') is clips[0]


def test_the_table_of_every_source_and_task(corpus: Path, evaluator_run: Path) -> None:
    evaluator = Evaluator(evaluator_run / 'model.pt')
    clips = load_clips(corpus, split='train', limit=3)
    reference = [c.motion for c in load_clips(corpus, split='val', granularity=None)]
    settings = EvalSettings(repeats=2, mm_texts=1, mm_samples=2, inbetween_k=10)
    lines: list[str] = []
    report = evaluate(clips, evaluator, tasks=('text', 'reaction'), reference=reference,
                      generator=Generator(), settings=settings, log=lines.append)
    rows = {(r['source'], r['task']): r for r in report['rows']}
    assert set(rows) == {('ground_truth', 'text'), ('retrieval', 'text'),
                         ('retrieval', 'reaction'), ('diffusion', 'text'),
                         ('diffusion', 'reaction'), ('ar', 'text'), ('ar', 'reaction')}
    assert len(lines) == 7
    for key, row in rows.items():
        assert row['clips'] == 3
        assert row['fid'][0] >= 0 and row['mm_dist'][0] >= 0
        assert row['top3'] is None  # fewer clips than one R-precision batch
        assert 0.0 <= row['penetration_frequency'] <= 1.0
        assert row['bone_length_cv'] >= 0.0
        assert (row['seconds_per_clip'] is None) == (key[0] == 'ground_truth')
        assert (row['multimodality'] is not None) == (key in (('diffusion', 'text'),
                                                              ('ar', 'text')))
    # the ground truth contains every contact its plan states
    truth = rows[('ground_truth', 'text')]
    assert truth['contact_recall'] in (None, 1.0)
    controls = report['controls']  # judged with the shipped evaluator below
    assert np.isfinite([controls['fid_random_motion'], controls['fid_reference_clips']]).all()
    table = markdown_table(report)
    head, *body = _table_lines(table)
    # the contact metrics first, then the embedding metrics, smoothness and speed
    assert head == ['source', 'task', 'all contacts ↑', 'contact P / R ↑',
                    'penetrating frames ↓', 'articulation ↑', 'coordination ↑', 'FID ↓',
                    'R-prec top-1 ↑', 'top-3 ↑', 'MM-Dist ↓', 'Diversity', 'MModality',
                    'jitter m/s³', 's/clip']
    # rows by task, then by source; the ground truth once, for every task
    assert [tuple(r[:2]) for r in body] == [
        ('ground truth', '-'), ('retrieval', 'text'), ('diffusion', 'text'), ('AR', 'text'),
        ('retrieval', 'reaction'), ('diffusion', 'reaction'), ('AR', 'reaction')]
    ar = dict(zip(head, body[3], strict=True))
    row = rows[('ar', 'text')]
    assert ar['all contacts ↑'] == _cell(row['contact_all_found'], 2)
    assert ar['contact P / R ↑'] == (f"{_cell(row['contact_precision'], 2)} / "
                                     f"{_cell(row['contact_recall'], 2)}")
    assert ar['penetrating frames ↓'] == f"{row['penetration_frequency']:.3f}"
    assert ar['FID ↓'] == f"{row['fid'][0]:.3f}±{row['fid'][1]:.3f}"
    assert ar['MModality'] == f"{row['multimodality'][0]:.3f}±{row['multimodality'][1]:.3f}"
    assert ar['s/clip'] == f"{row['seconds_per_clip']:.2f}"
    # the second table: the metrics the first leaves out, for the same rows
    more_head, *more = _table_lines(table.split('More metrics:')[1])
    assert 'contact order ↑' in more_head and 'bone CV ↓' in more_head
    assert [r[:2] for r in more] == [r[:2] for r in body]
    assert 'Controls:' in table and 'Held-out phrasing' not in table


def _table_lines(text: str) -> list[list[str]]:
    """The cells of the first Markdown table in ``text`` (header, then rows)."""
    lines = text.strip().split('\n\n')[0].splitlines()
    assert lines[1].startswith('|---|')
    return [[c.strip() for c in line.strip('|').split('|')] for line in [lines[0], *lines[2:]]]


def _cell(value: float | None, digits: int) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


class _PerPrompt:
    """Stands in for the Generator: a fixed clip per prompt text; records the seeds."""

    def __init__(self, clips: dict[str, BimanualMotion]) -> None:
        self.clips, self.calls = clips, []

    def generate(self, text: str, *, model: str, seed: int, **_: object) -> BimanualMotion:
        self.calls.append((text, model, seed))
        return self.clips[text]


def _synthetic(motion_type: str) -> BimanualMotion:
    from handx_gen.data.synthetic import SynthConfig, synthesize_clip

    config = SynthConfig.from_yaml(Path(__file__).resolve().parents[1] / 'training' / 'configs'
                                   / 'corpus.yaml')
    return synthesize_clip(config, 0, 0, motion_types=[motion_type]).motion


@pytest.fixture(scope='module')
def clap_prompts() -> tuple:
    """Two held-out prompts that name the palms touching, a clap clip and a wave clip."""
    prompts = [p for p in load_prompt_set(HELDOUT_SET) if p.motion_type == 'clap'][:2]
    return prompts, _synthetic('clap'), _synthetic('wave')


def test_prompt_set_metrics_score_clips_against_the_prompts_labels(clap_prompts) -> None:
    prompts, clap, wave = clap_prompts
    assert all(p.names_contacts for p in prompts)
    both = prompt_set_metrics(prompts, [clap, clap])
    assert both['contact_all_found'] == 1.0 and both['contact_recall'] == 1.0
    half = prompt_set_metrics(prompts, [clap, wave])  # a wave: the palms never meet
    assert half['contact_all_found'] == 0.5 and half['prompts_with_contacts'] == 2
    none = prompt_set_metrics(prompts, [wave, wave])
    assert none['contact_all_found'] == 0.0 and none['contact_recall'] == 0.0
    # the labels do not say every touch nor when: no precision, order or timing
    assert half['contact_precision'] is None and half['contact_order'] is None
    assert half['contact_timing_error_s'] is None
    # the same keys, in the same order, as the reference clips' rows
    from handx_gen.eval.evaluate import EvalClip, feature_metrics

    assert list(half) == list(feature_metrics([EvalClip('clap', clap, prompts[0].text)],
                                              [clap]))
    # the physical metrics are the clips' own, averaged
    assert half['jitter_m_s3'] == pytest.approx((both['jitter_m_s3'] + none['jitter_m_s3']) / 2)


def test_the_held_out_phrasing_rows(corpus: Path, evaluator_run: Path, clap_prompts) -> None:
    prompts, clap, wave = clap_prompts
    evaluator = Evaluator(evaluator_run / 'model.pt')
    clips = load_clips(corpus, split='train', limit=3)
    reference = [c.motion for c in load_clips(corpus, split='val', granularity=None)]
    generator = _PerPrompt({prompts[0].text: clap, prompts[1].text: wave})
    settings = EvalSettings(repeats=2, seed=5)
    report = evaluate(clips, evaluator, sources=('ground_truth', 'retrieval', 'ar'),
                      tasks=(), reference=reference, generator=generator, settings=settings,
                      prompt_set=prompts)
    rows = {(r['source'], r['task']): r for r in report['rows']}
    # no task: only the held-out rows, and none for the ground truth (a prompt has no clip)
    assert set(rows) == {('retrieval', HELDOUT), ('ar', HELDOUT)}
    assert report['heldout_prompts'] == 2 and report['clips'] == 3
    # the generator gets the prompts' texts, one seed per prompt as in the text task
    assert generator.calls == [(prompts[0].text, 'ar', 5), (prompts[1].text, 'ar', 6)]
    ar = rows[('ar', HELDOUT)]
    assert ar['clips'] == 2 and ar['contact_all_found'] == 0.5
    assert ar['fid'][0] >= 0 and ar['top3'] is None and ar['multimodality'] is None
    assert ar['seconds_per_clip'] is not None
    expected = prompt_set_metrics(prompts, [clap, wave])
    assert {k: ar[k] for k in expected} == expected
    table = markdown_table(report)
    head, *body = _table_lines(table)
    assert [r[:2] for r in body] == [['retrieval', 'held-out phrasing'],
                                     ['AR', 'held-out phrasing']]
    cells = dict(zip(head, body[1], strict=True))
    assert cells['all contacts ↑'] == '0.50' and cells['contact P / R ↑'] == '- / 0.50'
    assert 'Held-out phrasing: 2 prompts' in table
    with pytest.raises(EvalError, match='held-out phrasing rows need a source'):
        evaluate(clips, evaluator, sources=('ground_truth',), tasks=(), reference=reference,
                 prompt_set=prompts)


def test_the_shipped_evaluator_tells_motion_from_noise_and_matches_texts(corpus: Path) -> None:
    from handx_gen.eval.evaluate import _controls

    evaluator = Evaluator()
    clips = load_clips(corpus, split='train', granularity='semantic')
    half = len(clips) // 2
    reference = evaluator.embed_motions([c.motion for c in clips[half:]])
    settings = EvalSettings(batch_size=8)
    texts = evaluator.embed_texts([c.text for c in clips[:half]])
    controls = _controls(clips[:half], evaluator, texts, reference, settings)
    # a dozen clips of a handful of motion types: FIDs are large, noise still the larger
    assert controls['fid_random_motion'] > controls['fid_reference_clips']
    from handx_gen.eval.metrics import r_precision

    motion = evaluator.embed_motions([c.motion for c in clips[:half]])
    own = r_precision(motion, texts, batch_size=8)[2]
    assert own > controls['shuffled_text_top3']


def test_evaluate_refuses_unknown_rows_and_missing_parts(corpus: Path,
                                                         evaluator_run: Path) -> None:
    evaluator = Evaluator(evaluator_run / 'model.pt')
    clips = load_clips(corpus, split='train', limit=2)
    with pytest.raises(EvalError, match='unknown sources or tasks'):
        evaluate(clips, evaluator, sources=('oracle',))
    with pytest.raises(EvalError, match='need a generator'):
        evaluate(clips, evaluator, sources=('ar',))
    with pytest.raises(EvalError, match='needs reference clips'):
        evaluate(clips, evaluator, sources=('retrieval',))
    with pytest.raises(EvalError, match='repeats'):
        EvalSettings(repeats=0)


def test_handx_eval_on_a_folder_of_generated_clips(corpus: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    from handx_ros.cli import main

    folder = tmp_path / 'generated'
    folder.mkdir()
    generator = Generator()
    for i, prompt in enumerate(['Both hands clap twice.', 'The right hand makes a fist.']):
        generator.generate(prompt, model='ar', seed=i).save(folder / f'{i}.npz')
    out = tmp_path / 'report' / 'table'
    assert main(['eval', str(folder), '--reference', str(corpus), '--sources',
                 'ground_truth', '--repeats', '2', '--no-progress', '--out', str(out)]) == 0
    report = json.loads(out.with_suffix('.json').read_text())
    assert report['clips'] == 2 and report['data']['reference'] == str(corpus)
    (row,) = report['rows']
    assert row['source'] == 'ground_truth' and row['fid'][0] > 0
    assert out.with_suffix('.md').read_text().startswith('| source | task |')
    assert '| ground truth | - |' in capsys.readouterr().out
    # --heldout with no task: the held-out rows only, from the prompt set given
    prompts = tmp_path / 'prompts.yaml'
    prompts.write_text(yaml.safe_dump({'format': 'handx-prompt-set/1', 'prompts': [
        {'id': 'c1', 'text': 'clap twice', 'type': 'clap',
         'contacts': ['left.palm~right.palm']},
        {'id': 'f1', 'text': 'make a fist with your right hand', 'type': 'fist',
         'bend': ['right.all']}]}))
    assert main(['eval', str(folder), '--reference', str(corpus), '--sources', 'retrieval',
                 '--tasks', '', '--heldout', str(prompts), '--repeats', '2', '--no-progress',
                 '--out', str(out)]) == 0
    report = json.loads(out.with_suffix('.json').read_text())
    assert [(r['source'], r['task'], r['clips']) for r in report['rows']] == [
        ('retrieval', 'heldout', 2)]
    assert report['data']['heldout'] == str(prompts) and report['heldout_prompts'] == 2
    assert '| retrieval | held-out phrasing |' in out.with_suffix('.md').read_text()
    capsys.readouterr()
    assert main(['eval', str(folder), '--tasks', '', '--no-progress']) == 2
    assert 'give --heldout' in capsys.readouterr().err
    assert main(['eval', str(folder), '--heldout', str(tmp_path / 'none.yaml'),
                 '--no-progress']) == 2
    assert 'no such prompt set' in capsys.readouterr().err
    # bad input: a clear error and exit status 2
    assert main(['eval', str(tmp_path / 'nothing')]) == 2
    assert 'not a folder of clips' in capsys.readouterr().err
    assert main(['eval', str(folder), '--sources', 'oracle', '--no-progress']) == 2
    assert 'unknown sources' in capsys.readouterr().err


def test_scaling_study_trains_scores_plots_and_resumes(corpus: Path, evaluator_run: Path,
                                                       tmp_path: Path) -> None:
    import subprocess
    import sys

    from corpus_helpers import ROOT, env

    study = {'model': {'loss_fk': 0.01},
             'sizes': {'a': {'preset': 'tiny', 'd_model': 32},
                       'b': {'preset': 'tiny'}},
             'fractions': [0.5, 1.0],
             'train': {'steps': 3, 'batch_size': 4, 'checkpoint_every': 3},
             'eval': {'clips': 3, 'split': 'val', 'steps': 2, 'repeats': 2}}
    config = tmp_path / 'study.yaml'
    config.write_text(yaml.safe_dump(study))
    out = tmp_path / 'study'
    command = [sys.executable, str(ROOT / 'training' / 'scaling.py'), '--config', str(config),
               '--corpus', str(corpus), '--out', str(out), '--evaluator',
               str(evaluator_run / 'model.pt'), '--no-progress']
    first = subprocess.run(command, capture_output=True, text=True, env=env(), cwd=ROOT,
                           timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((out / 'scaling.json').read_text())
    cells = {(r['size'], r['fraction']): r for r in report['results']}
    assert set(cells) == {('a', 0.5), ('a', 1.0), ('b', 0.5), ('b', 1.0)}
    assert cells[('a', 1.0)]['params'] < cells[('b', 1.0)]['params']
    for row in cells.values():
        assert row['step'] == 3 and row['fid'][0] >= 0
    half = torch.load(out / 'cells' / 'a-050pct' / 'model.pt', weights_only=True)
    assert half['data']['train']['fraction'] == 0.5
    assert (out / 'scaling.png').stat().st_size > 10_000
    assert (out / 'scaling.md').read_text().count('\n| ') == 5  # 4 cells, ground truth
    assert 'ground_truth' in report
    # run again: every cell is done, nothing is trained or scored again
    stamp = (out / 'cells' / 'b-100pct' / 'model.pt').stat().st_mtime_ns
    second = subprocess.run(command, capture_output=True, text=True, env=env(), cwd=ROOT,
                            timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (out / 'cells' / 'b-100pct' / 'model.pt').stat().st_mtime_ns == stamp
    assert json.loads((out / 'scaling.json').read_text())['results'] == report['results']
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump({**study, 'fractions': [0.0]}))
    third = subprocess.run([*command[:3], str(bad), *command[4:]], capture_output=True,
                           text=True, env=env(), cwd=ROOT, timeout=300)
    assert third.returncode == 2 and 'fractions must be' in third.stderr
