"""Tests for training/: the three scripts on a small corpus, resuming, DDP with gloo, and the
training-set reader they share (handx_gen.models.dataset)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus_helpers import build_corpus
from corpus_helpers import env as _env
from corpus_helpers import train as _train

from handx_gen.errors import ModelError
from handx_gen.models.ar import CHECKPOINT_FORMAT as AR_FORMAT
from handx_gen.models.checkpoints import load_checkpoint
from handx_gen.models.dataset import TextBank, load_clip_set, pad_frames
from handx_gen.models.diffusion import CHECKPOINT_FORMAT as DIFFUSION_FORMAT
from handx_gen.models.fsq import CHECKPOINT_FORMAT as TOKENIZER_FORMAT
from handx_gen.motion import FEATURE_LAYOUT, BimanualMotion

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT / 'training'
FRAMES = 120


@pytest.fixture(scope='module')
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-clip corpus with the shipped models' corpus settings (4 s, one motion type)."""
    return build_corpus(tmp_path_factory.mktemp('corpus') / 'c')


@pytest.fixture(scope='module')
def tokenizer_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('tok')
    _train('train_tokenizer.py', '--config', 'tokenizer_tiny', '--corpus', str(corpus),
           '--out', str(out), '--steps', '8', '--batch-size', '4')
    return out


def test_clip_set_pads_with_the_last_frame_and_caches(corpus: Path) -> None:
    clips = load_clip_set(corpus, 'train', FRAMES)
    assert clips.features.shape == (len(clips), FRAMES, FEATURE_LAYOUT.dim)
    assert clips.lengths.max() <= FRAMES
    short = int(np.argmin(clips.lengths))
    n = int(clips.lengths[short])
    assert n < FRAMES  # the corpus config makes 3-4 s clips
    np.testing.assert_array_equal(clips.features[short, n:],
                                  np.repeat(clips.features[short, n - 1:n], FRAMES - n, 0))
    assert all(len(t) == 4 for t in clips.texts)  # semantic, interaction, articulation, request
    assert (corpus / 'cache' / f'train-{FRAMES}.npz').is_file()
    again = load_clip_set(corpus, 'train', FRAMES)
    np.testing.assert_array_equal(again.features, clips.features)
    assert again.texts == clips.texts and again.description == clips.description
    # the features are those of the clip files
    row = next(r for r in json.loads((corpus / 'index.json').read_text())['clips']
               if r['split'] == 'train')
    motion = BimanualMotion.load(corpus / row['file'])
    np.testing.assert_allclose(clips.features[0, :motion.num_frames],
                               FEATURE_LAYOUT.encode(motion)[:FRAMES])
    with pytest.raises(ModelError, match='num_frames'):
        load_clip_set(corpus, 'train', 1)
    with pytest.raises(ModelError, match='no corpus|cannot read'):
        load_clip_set(corpus / 'missing', 'train')


def test_pad_frames_cuts_and_holds() -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(pad_frames(x, 2), x[:2])
    padded = pad_frames(x, 6)
    np.testing.assert_array_equal(padded[4:], np.stack([x[3], x[3]]))


class _StubEncoder:
    """The TextEncoder interface on a fixed table (no transformer)."""

    name = 'stub:table'
    dim = 4
    max_length = 8

    class config:  # noqa: N801
        batch_size = 2

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):
        from handx_gen.models.text_encoder import TextFeatures

        self.calls += 1
        lengths = [len(t.split()) for t in texts]
        tokens = torch.zeros(len(texts), max(lengths), self.dim)
        mask = torch.zeros(len(texts), max(lengths), dtype=torch.bool)
        for i, n in enumerate(lengths):
            tokens[i, :n] = float(i + 1)
            mask[i, :n] = True
        return TextFeatures(tokens, mask, torch.ones(len(texts), self.dim))


def test_text_bank_encodes_each_text_once_and_reads_its_cache(tmp_path: Path) -> None:
    encoder = _StubEncoder()
    texts = ['a b c', 'a', 'a b c', 'd e']
    bank = TextBank(encoder, texts, cache_dir=tmp_path)
    assert len(bank) == 3 and encoder.calls == 2  # 3 unique texts in batches of 2
    features = bank.features(['a', 'a b c'])
    assert features.tokens.shape == (2, 3, 4)
    assert features.attention_mask.tolist() == [[True, False, False], [True, True, True]]
    cached = _StubEncoder()
    again = TextBank(cached, texts, cache_dir=tmp_path)
    assert cached.calls == 0
    torch.testing.assert_close(again.features(['d e']).tokens, bank.features(['d e']).tokens)
    with pytest.raises(ModelError, match='not in the bank'):
        bank.features(['unknown'])


def test_tokenizer_and_ar_train_and_describe_their_data(corpus: Path, tokenizer_run: Path,
                                                        tmp_path: Path) -> None:
    tokenizer = load_checkpoint(tokenizer_run / 'model.pt', TOKENIZER_FORMAT, 'tokenizer')
    assert tokenizer['step'] == 8 and tokenizer['train']['world_size'] == 1
    assert tokenizer['data']['train']['seed'] == 3
    assert tokenizer['data']['train']['split'] == 'train'
    log = [json.loads(line) for line in (tokenizer_run / 'log.jsonl').read_text().splitlines()]
    assert any('eval' in line and 'val_keypoint_mm' in line['eval'] for line in log)
    assert all(line['fk'] > 0 and line['contact'] >= 0 for line in log if 'loss' in line)
    assert tokenizer['geometry']['contact'] == 0.1  # the tiny config's geometric losses
    _train('train_ar.py', '--config', 'ar_tiny', '--corpus', str(corpus), '--tokenizer',
           str(tokenizer_run / 'model.pt'), '--out', str(tmp_path), '--steps', '5',
           '--batch-size', '4')
    ar = load_checkpoint(tmp_path / 'model.pt', AR_FORMAT, 'AR model')
    assert ar['tokenizer']['format'] == TOKENIZER_FORMAT  # self-contained
    assert ar['text_encoder']['name'].startswith('minilm')
    assert ar['num_frames'] == FRAMES and ar['fps'] == 30.0
    assert ar['config']['codebook_size'] == 1000


def test_diffusion_resumes_to_the_same_weights(corpus: Path, tmp_path: Path) -> None:
    args = ['--config', 'diffusion_tiny', '--corpus', str(corpus), '--steps', '6',
            '--batch-size', '4']
    _train('train_diffusion.py', *args, '--out', str(tmp_path / 'straight'))
    _train('train_diffusion.py', *args, '--out', str(tmp_path / 'split'), '--until', '3')
    first = load_checkpoint(tmp_path / 'split' / 'model.pt', DIFFUSION_FORMAT, 'diffusion')
    assert first['step'] == 3
    resumed = _train('train_diffusion.py', *args, '--out', str(tmp_path / 'split'))
    assert 'resuming diffusion' in resumed.stderr and 'at step 3' in resumed.stderr
    a = load_checkpoint(tmp_path / 'straight' / 'model.pt', DIFFUSION_FORMAT, 'diffusion')
    b = load_checkpoint(tmp_path / 'split' / 'model.pt', DIFFUSION_FORMAT, 'diffusion')
    assert a['step'] == b['step'] == 6
    for key, value in a['model'].items():
        torch.testing.assert_close(b['model'][key], value, rtol=0, atol=0, msg=key)
    assert set(a['masks']['probabilities']) == {'text', 'reaction', 'inbetween', 'keyframes',
                                                'trajectory'}


def test_a_run_folder_of_another_task_is_refused(corpus: Path, tokenizer_run: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(TRAINING / 'train_diffusion.py'), '--config', 'diffusion_tiny',
         '--corpus', str(corpus), '--out', str(tokenizer_run), '--steps', '9',
         '--no-progress'], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)
    assert result.returncode == 2
    assert 'is a tokenizer run, not diffusion' in result.stderr


def test_unknown_config_names_the_valid_ones(corpus: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(TRAINING / 'train_tokenizer.py'), '--config', 'nope',
         '--corpus', str(corpus), '--out', str(tmp_path)], capture_output=True, text=True,
        env=_env(), cwd=ROOT, timeout=600)
    assert result.returncode == 2
    assert 'tokenizer_small' in result.stderr and 'diffusion_tiny' in result.stderr


def test_ddp_with_gloo_on_two_processes(corpus: Path, tmp_path: Path) -> None:
    _train('train_tokenizer.py', '--config', 'tokenizer_tiny', '--corpus', str(corpus),
           '--out', str(tmp_path), '--steps', '4', '--batch-size', '4', torchrun=2)
    checkpoint = load_checkpoint(tmp_path / 'model.pt', TOKENIZER_FORMAT, 'tokenizer')
    assert checkpoint['train']['world_size'] == 2 and checkpoint['step'] == 4
    state = torch.load(tmp_path / 'last.pt', weights_only=True)
    assert len(state['generators']) == 2  # both ranks' batch streams, for resuming
    assert not torch.equal(state['generators'][0], state['generators'][1])


def _config(path: Path, text: str) -> str:
    path.write_text(text, encoding='utf-8')
    return str(path)


def _fails(script: str, *args: str) -> str:
    """stderr of a training run that must fail with a clear error (exit status 2)."""
    result = subprocess.run([sys.executable, str(TRAINING / script), *args, '--no-progress'],
                            capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    return result.stderr


def test_diffusion_fine_tunes_from_a_checkpoint(corpus: Path, tokenizer_run: Path,
                                               tmp_path: Path) -> None:
    data = ['--corpus', str(corpus), '--batch-size', '4']
    _train('train_diffusion.py', '--config', 'diffusion_tiny', *data, '--steps', '3',
           '--out', str(tmp_path / 'base'))
    base = tmp_path / 'base' / 'model.pt'
    # At learning rate 0 a fine-tuning run keeps the weights it started from, exactly.
    frozen = _config(tmp_path / 'lr0.yaml', 'model: {preset: tiny, loss_contact: 0.3}\n'
                     'train: {steps: 2, lr: 0.0, lr_min: 0.0, warmup_steps: 1}\n')
    result = _train('train_diffusion.py', '--config', frozen, *data, '--init', str(base),
                    '--out', str(tmp_path / 'same'))
    assert 'starting from the weights of' in result.stderr
    a = load_checkpoint(base, DIFFUSION_FORMAT, 'diffusion')
    b = load_checkpoint(tmp_path / 'same' / 'model.pt', DIFFUSION_FORMAT, 'diffusion')
    assert b['step'] == 2 and b['config']['loss_contact'] == 0.3
    assert b['train']['init']['file'] == str(base) and b['train']['init']['step'] == 3
    assert b['train']['init']['train']['wall_s'] == a['train']['wall_s']  # for the README
    for key, value in a['model'].items():
        torch.testing.assert_close(b['model'][key], value, rtol=0, atol=0, msg=key)
    # Learning moves them; a resumed fine-tuning run does not read --init again.
    _train('train_diffusion.py', '--config', 'diffusion_tiny', *data, '--steps', '2',
           '--init', str(base), '--out', str(tmp_path / 'tuned'))
    c = load_checkpoint(tmp_path / 'tuned' / 'model.pt', DIFFUSION_FORMAT, 'diffusion')
    assert any(not torch.equal(c['model'][k], v) for k, v in a['model'].items())
    # Weights of another architecture, another kind of checkpoint, or no fine-tuning support.
    wide = _config(tmp_path / 'wide.yaml', 'model: {preset: tiny, d_model: 32}\n')
    assert 'do not fit' in _fails('train_diffusion.py', '--config', wide, *data, '--init',
                                  str(base), '--out', str(tmp_path / 'x'))
    assert 'this code reads' in _fails('train_diffusion.py', '--config', 'diffusion_tiny',
                                       *data, '--init', str(tokenizer_run / 'model.pt'),
                                       '--out', str(tmp_path / 'y'))
    assert 'this code reads' in _fails(
        'train_ar.py', '--config', 'ar_tiny', *data, '--tokenizer',
        str(tokenizer_run / 'model.pt'), '--init', str(base), '--out', str(tmp_path / 'z'))


def test_ar_fine_tunes_from_an_ar_checkpoint_over_its_own_tokens(
        corpus: Path, tokenizer_run: Path, tmp_path: Path) -> None:
    data = ['--corpus', str(corpus), '--batch-size', '4']
    _train('train_ar.py', '--config', 'ar_tiny', *data, '--steps', '2', '--tokenizer',
           str(tokenizer_run / 'model.pt'), '--out', str(tmp_path / 'base'))
    base = tmp_path / 'base' / 'model.pt'
    frozen = _config(tmp_path / 'lr0.yaml', 'model: {preset: tiny}\n'
                     'train: {steps: 2, lr: 0.0, lr_min: 0.0, warmup_steps: 1}\n')
    # --tokenizer may be the AR file itself: its embedded tokenizer is taken
    result = _train('train_ar.py', '--config', frozen, *data, '--init', str(base),
                    '--tokenizer', str(base), '--out', str(tmp_path / 'same'))
    assert 'starting from the weights of' in result.stderr
    a = load_checkpoint(base, AR_FORMAT, 'AR model')
    b = load_checkpoint(tmp_path / 'same' / 'model.pt', AR_FORMAT, 'AR model')
    assert b['train']['init']['file'] == str(base) and b['train']['init']['step'] == 2
    for key, value in a['model'].items():
        torch.testing.assert_close(b['model'][key], value, rtol=0, atol=0, msg=key)
    for key, value in a['tokenizer']['model'].items():
        torch.testing.assert_close(b['tokenizer']['model'][key], value, rtol=0, atol=0)
    # Over the tokens of another tokenizer: refused.
    assert 'another tokenizer' in _fails(
        'train_ar.py', '--config', 'ar_tiny', *data, '--init', str(base), '--tokenizer',
        str(_other_tokenizer(tokenizer_run, tmp_path)), '--out', str(tmp_path / 'w'))


def _other_tokenizer(tokenizer_run: Path, tmp_path: Path) -> Path:
    """The tokenizer of ``tokenizer_run`` with its first encoder weight changed."""
    checkpoint = torch.load(tokenizer_run / 'model.pt', weights_only=True)
    key = next(k for k in checkpoint['model'] if k.startswith('encoder'))
    checkpoint['model'][key] = checkpoint['model'][key] + 0.5
    path = tmp_path / 'other_tokenizer.pt'
    torch.save(checkpoint, path)
    return path


def test_tokenizer_fine_tuning_keeps_its_tokens(corpus: Path, tokenizer_run: Path,
                                                 tmp_path: Path) -> None:
    from handx_gen.models.fsq import HandTokenizer
    from handx_gen.motion.features import Normalizer

    joint = _config(tmp_path / 'joint.yaml', 'model: {preset: tiny, joint_depth: 1}\n'
                    'geometry: {fk: 0.01, contact: 0.3}\n'
                    'train: {steps: 4, lr: 2.0e-3, warmup_steps: 1}\n')
    # From an AR checkpoint too: the tokenizer inside it is taken.
    original = load_checkpoint(tokenizer_run / 'model.pt', TOKENIZER_FORMAT, 'tokenizer')
    torch.save({'format': AR_FORMAT, 'tokenizer': original}, tmp_path / 'ar.pt')
    for source in (tokenizer_run / 'model.pt', tmp_path / 'ar.pt'):
        out = tmp_path / source.stem
        _train('train_tokenizer.py', '--config', joint, '--corpus', str(corpus),
               '--batch-size', '4', '--init', str(source), '--out', str(out))
        if source.stem == 'model':  # resumed on a longer schedule: still fine-tuning
            resumed = _train('train_tokenizer.py', '--config', joint, '--corpus', str(corpus),
                             '--batch-size', '4', '--out', str(out), '--steps', '6')
            assert 'resuming tokenizer' in resumed.stderr
        tuned = load_checkpoint(out / 'model.pt', TOKENIZER_FORMAT, 'tokenizer')
        assert tuned['config']['joint_depth'] == 1
        assert tuned['train']['init']['file'] == str(source)
        assert tuned['step'] == (6 if source.stem == 'model' else 4)
        changed = {key for key, value in original['model'].items()
                   if not torch.equal(tuned['model'][key], value)}
        assert changed and not any(key.split('.')[0] in ('encoder', 'to_latent',
                                                         'hand_embedding') for key in changed)
        before = HandTokenizer.from_checkpoint(original).eval()
        after = HandTokenizer.from_checkpoint(tuned).eval()
        clips = load_clip_set(corpus, 'train', FRAMES)
        x = torch.from_numpy(Normalizer.from_state_dict(original['normalizer'])
                             .normalize(clips.features)).float()
        with torch.no_grad():
            tokens = before.encode(x)
            assert torch.equal(after.encode(x), tokens)  # an AR model trained on them still fits
            assert not torch.allclose(after.decode(tokens), before.decode(tokens))
    other = _config(tmp_path / 'other.yaml', 'model: {preset: tiny, channels: 48}\n')
    assert 'other settings' in _fails('train_tokenizer.py', '--config', other, '--corpus',
                                      str(corpus), '--init', str(tokenizer_run / 'model.pt'),
                                      '--out', str(tmp_path / 'w'))


def test_ship_lists_every_run_of_a_fine_tuned_model() -> None:
    sys.path.insert(0, str(TRAINING))
    import ship

    first = {'step': 8000, 'wall_s': 600.0}
    second = {'step': 3000, 'wall_s': 60.0, 'init': {'file': 'a.pt', 'step': 8000,
                                                     'train': first}}
    third = {'step': 10, 'wall_s': 1.0, 'init': {'file': 'b.pt', 'step': 3000,
                                                 'train': second}}
    assert [t['step'] for t in ship._chain(third)] == [8000, 3000, 10]
    assert ship._chain(first) == [first]
    assert ship._has_config('tokenizer_joint', 'small') and ship._has_config('diffusion',
                                                                             'tiny')
    assert not ship._has_config('tokenizer_joint', 'tiny')


def test_every_run_config_is_valid() -> None:
    sys.path.insert(0, str(TRAINING))
    import common

    from handx_gen.eval.evaluator import EvaluatorConfig
    from handx_gen.models.ar import ARConfig
    from handx_gen.models.diffusion import DiffusionConfig
    from handx_gen.models.fsq import FSQConfig
    from handx_gen.models.geometry import GeometryLossConfig
    from handx_gen.models.masking import MaskSamplerConfig

    kinds = {'diffusion': DiffusionConfig, 'tokenizer': FSQConfig, 'ar': ARConfig,
             'evaluator': EvaluatorConfig}
    checked = []
    for path in sorted((TRAINING / 'configs').glob('*.yaml')):
        kind = path.stem.split('_')[0]
        if kind not in kinds:
            continue  # corpus.yaml, scaling.yaml: their own readers and tests
        _, sections = common.read_run_config(str(path))
        common.model_config(kinds[kind], sections)
        common.TrainConfig.from_dict(sections.get('train'))
        MaskSamplerConfig.from_dict(sections.get('masks'))
        GeometryLossConfig.from_dict(sections.get('geometry'))
        checked.append(path.stem)
    assert {'diffusion_contacts_small', 'tokenizer_joint_small', 'ar_small'} <= set(checked)
