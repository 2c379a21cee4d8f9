"""Tests for handx_gen.models.text_encoder: the frozen MiniLM encoder, offline, and its cache."""

from __future__ import annotations

import os

os.environ['HF_HUB_OFFLINE'] = '1'  # before transformers is imported: nothing is fetched

import pytest  # noqa: E402
import torch  # noqa: E402

from handx_gen.errors import ConfigError, ModelError  # noqa: E402
from handx_gen.models.text_encoder import (  # noqa: E402
    TextEncoder,
    TextEncoderConfig,
    TextEncoderKind,
    bundled_minilm_path,
    validate_prompt,
)


@pytest.fixture(scope='module')
def encoder() -> TextEncoder:
    return TextEncoder(TextEncoderConfig(cache_size=8))


@pytest.fixture(autouse=True)
def _fresh_cache(encoder):
    encoder.clear_cache()


def test_bundled_weights_found_offline(encoder):
    path = bundled_minilm_path()
    assert (path / 'model.safetensors').is_file()
    assert encoder.path == path
    assert encoder.dim == 384 and encoder.name == 'minilm:all-MiniLM-L6-v2'
    assert encoder.describe()['dim'] == 384
    assert not any(p.requires_grad for p in encoder._model.parameters())
    assert not encoder._model.training


def test_shapes_mask_and_normalised_pooling(encoder):
    features = encoder.encode(['clap', 'wave the right hand slowly above the head'])
    batch, length, dim = features.tokens.shape
    assert (batch, dim) == (2, 384) and len(features) == 2
    assert features.attention_mask.shape == (2, length)
    assert features.attention_mask.dtype == torch.bool
    lengths = features.attention_mask.sum(1)
    assert lengths[0] < lengths[1] == length
    assert not features.tokens[0, lengths[0]:].any()  # zero at padding
    assert torch.allclose(features.pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert features.pooled.device.type == 'cpu' and features.tokens.dtype == torch.float32
    single = encoder.encode('clap')
    assert single.tokens.shape[0] == 1


def test_same_text_same_embedding(encoder):
    first = encoder.encode('rub the palms together').pooled
    encoder.clear_cache()
    second = encoder.encode(['rub the palms together', 'something else']).pooled[:1]
    assert torch.allclose(first, second, atol=1e-5)


def test_similar_prompts_are_closer(encoder):
    pooled = encoder.encode(['clap both hands', 'the hands clap together',
                             'point with the left index finger']).pooled
    similar = float(pooled[0] @ pooled[1])
    unrelated = float(pooled[0] @ pooled[2])
    assert similar > unrelated + 0.2


def test_cache_hit_does_not_recompute(encoder, monkeypatch):
    calls = []
    forward = encoder._forward

    def counting(texts):
        calls.append(list(texts))
        return forward(texts)

    monkeypatch.setattr(encoder, '_forward', counting)
    first = encoder.encode(['grab the cup', 'grab the cup', 'open the jar'])
    assert calls == [['grab the cup', 'open the jar']]
    second = encoder.encode(['open the jar', 'grab the cup'])
    assert len(calls) == 1 and encoder.hits == 2 and encoder.misses == 2
    assert torch.equal(second.pooled[0], first.pooled[2])
    assert torch.equal(first.pooled[0], first.pooled[1])
    encoder.encode([f'prompt number {i}' for i in range(9)])  # evicts past cache_size=8
    encoder.encode('grab the cup')
    assert calls[-1] == ['grab the cup']


def test_clip_and_t5_without_path_error_clearly(tmp_path):
    with pytest.raises(ConfigError, match='CLIP/T5 encoders need a local path'):
        TextEncoder(TextEncoderConfig(kind='clip'))
    missing = tmp_path / 'no-such-clip'
    with pytest.raises(ModelError) as info:
        TextEncoder(TextEncoderConfig.from_dict({'kind': 'clip', 'path': str(missing)}))
    assert f'no CLIP weights at {missing}' in str(info.value)
    with pytest.raises(ModelError, match='no T5 weights at'):
        TextEncoder(TextEncoderConfig(kind=TextEncoderKind.T5, path=str(tmp_path)))


@pytest.mark.parametrize('values, words', [
    ({'kind': 'bert'}, ["'bert'", "'clip'", "'minilm'", "'t5'"]),
    ({'max_length': 1}, ['max_length']),
    ({'cache_size': -1}, ['cache_size']),
    ({'device': 'toaster'}, ["'toaster'"]),
    ({'tokens': 3}, ["'tokens'", "'max_length'"]),
])
def test_bad_config_raises(values, words):
    with pytest.raises(ConfigError) as info:
        TextEncoderConfig.from_dict(values)
    for word in words:
        assert word in str(info.value)


def test_config_round_trip():
    config = TextEncoderConfig(kind='t5', path='/models/t5', max_length=32)
    assert config.kind is TextEncoderKind.T5
    assert TextEncoderConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize('prompt, words', [
    ('', ['must contain text']),
    ('   \n\t', ['must contain text']),
    ('x' * 10_000, ['10000 characters', 'limit is 2000']),
    (42, ['must be a string', 'int']),
    (None, ['must be a string']),
])
def test_bad_prompts_raise(encoder, prompt, words):
    with pytest.raises(ModelError) as info:
        encoder.encode(['fine prompt', prompt])
    assert 'prompt 1' in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_prompt_limits(encoder):
    assert validate_prompt('x' * 2000) == 'x' * 2000
    with pytest.raises(ModelError, match='2001 characters'):
        validate_prompt('x' * 2001)
    with pytest.raises(ModelError, match='at least one prompt'):
        encoder.encode([])


PROMPTS = ['Both hands clap twice.', 'The left hand grasps the right wrist.',
           'Crème brûlée über naïve café — 日本語のテキスト! ✋🤚', 'x' * 3000,
           'count on fingers ' * 40, '  spaced   out\ttabs\n',
           "don't stop; it's (fine) [ok] {yes} #1 @home 3.5cm"]


def test_plain_minilm_gives_the_features_of_transformers(encoder):
    """The plain-torch MiniLM (handx_gen.models.minilm) the encoder runs is BERT as
    transformers builds it: the same token ids (accents, CJK, emoji, truncation) and the same
    token features to float rounding."""
    import transformers

    from handx_gen.models.minilm import BertEncoder, WordPieceTokenizer

    assert isinstance(encoder._model, BertEncoder)
    assert isinstance(encoder._tokenizer, WordPieceTokenizer)
    path = bundled_minilm_path()
    reference_tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    reference = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    ours = encoder._tokenizer(PROMPTS, padding=True, truncation=True, max_length=64,
                              return_tensors='pt')
    theirs = reference_tokenizer(PROMPTS, padding=True, truncation=True, max_length=64,
                                 return_tensors='pt')
    assert torch.equal(ours['input_ids'], theirs['input_ids'])
    assert torch.equal(ours['attention_mask'], theirs['attention_mask'])
    with torch.no_grad():
        a = encoder._model(input_ids=ours['input_ids'],
                           attention_mask=ours['attention_mask']).last_hidden_state
        b = reference(input_ids=theirs['input_ids'],
                      attention_mask=theirs['attention_mask']).last_hidden_state
    real = ours['attention_mask'].bool()
    assert (a - b)[real].abs().max() < 1e-5


def test_the_default_encoder_does_not_import_transformers():
    import subprocess
    import sys

    code = ('import sys\nfrom handx_gen.models.text_encoder import TextEncoder\n'
            'TextEncoder().encode(["Both hands clap twice."])\n'
            'print("transformers" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.strip() == 'False'
