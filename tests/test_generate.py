"""Tests for handx_gen.generate (the Generator), `handx generate`, and the shipped checkpoints.

Most tests use small untrained checkpoints written here (what is tested is the plumbing:
conditioning, exactness of the given parts, seeds, errors); the last ones load the shipped
models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from handx_gen.errors import ConfigError, ModelError
from handx_gen.eval.metrics import palm_frame_tips
from handx_gen.generate import DEFAULT_WEIGHTS, Generator, ModelKind, default_checkpoint
from handx_gen.hand.topology import HandSide
from handx_gen.models.ar import ARConfig, HandTokenGPT
from handx_gen.models.checkpoints import half_precision, save_checkpoint
from handx_gen.models.diffusion import DiffusionConfig, GaussianDiffusion
from handx_gen.models.fsq import FSQConfig, HandTokenizer
from handx_gen.models.masking import ConditionMask
from handx_gen.models.text_encoder import TextEncoderConfig
from handx_gen.motion import FEATURE_LAYOUT, BimanualMotion, FeatureGroup, Normalizer
from handx_gen.windows import WindowSettings
from handx_ros import cli

FPS = 30.0
FRAMES = 40
PROMPT = 'Both hands clap twice.'


def _motion(seed: int, num_frames: int = FRAMES, fps: float = FPS,
            mano_like: bool = False) -> BimanualMotion:
    """Smooth random MANO parameters, hands of a random size (not the default one);
    ``mano_like``: skeletons as real MANO files give them (the rest wrist away from the
    origin, joints not where the default hand has them)."""
    from handx_gen.hand.skeleton import HandSkeleton, default_skeleton

    rng = np.random.default_rng(seed)
    phase = np.linspace(0.0, np.pi, num_frames)[:, None, None]
    orient = rng.uniform(-1, 1, (1, 2, 3)) + 0.3 * np.sin(phase + rng.uniform(0, 3, (1, 2, 3)))
    pose = rng.uniform(-0.3, 0.3, (1, 2, 45)) + 0.3 * np.sin(phase + rng.uniform(0, 3, (1, 2,
                                                                                      45)))
    transl = np.array([[-0.15, 0.0, 1.0], [0.15, 0.0, 1.0]])[None] \
        + 0.05 * np.sin(phase + rng.uniform(0, 3, (1, 2, 3)))
    scale = rng.uniform(0.9, 1.1)
    skeletons = [default_skeleton(side).scaled(scale) for side in HandSide]
    if mano_like:
        skeletons = [HandSkeleton(s.side, s.joints_rest + offset + noise[:16],
                                  s.tips_rest + offset + noise[16:])
                     for s, offset, noise in zip(
                         skeletons, ([-0.09, 0.006, 0.006], [0.09, 0.006, 0.006]),
                         rng.normal(0.0, 0.004, (2, 21, 3)), strict=True)]
    return BimanualMotion.from_mano(fps, orient, pose.reshape(num_frames, 2, 15, 3), transl,
                                    skeletons=skeletons)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained tiny diffusion and AR checkpoints with everything the Generator reads."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp('ckpt')
    normalizer = Normalizer.fit([FEATURE_LAYOUT.encode(_motion(s)) for s in range(4)])
    encoder = {'name': 'minilm:all-MiniLM-L6-v2', 'kind': 'minilm', 'dim': 384,
               'max_length': 64, 'config': TextEncoderConfig().to_dict()}
    extra = {'normalizer': normalizer.state_dict(tensors=True), 'fps': FPS,
             'text_encoder': encoder, 'num_frames': FRAMES, 'step': 0,
             'data': {'train': {'corpus': 'none (test)'}}}
    diffusion = GaussianDiffusion(DiffusionConfig.preset('tiny', max_frames=FRAMES,
                                                         sample_steps=4))
    tokenizer = HandTokenizer(FSQConfig.preset('tiny'))
    ar = HandTokenGPT(ARConfig.preset('tiny', max_tokens=2 * FRAMES // 4))
    paths = {'diffusion': folder / 'diffusion.pt', 'ar': folder / 'ar.pt'}
    save_checkpoint(diffusion.checkpoint(**extra), paths['diffusion'])
    save_checkpoint(half_precision(ar.checkpoint(tokenizer=tokenizer.checkpoint(), **extra)),
                    paths['ar'])
    return paths


@pytest.fixture(scope='module')
def generator(checkpoints: dict[str, Path]) -> Generator:
    return Generator(diffusion=checkpoints['diffusion'], ar=checkpoints['ar'])


@pytest.fixture(scope='module')
def given() -> BimanualMotion:
    return _motion(7)


MODES = [
    ('diffusion', 'reaction', {'side': 'left'}),
    ('diffusion', 'reaction', {'side': 'right'}),
    ('diffusion', 'inbetween', {'k': 6}),
    ('diffusion', 'keyframes', {'frames': [0, 13, 39]}),
    ('diffusion', 'trajectory', {'include_orient': True}),
    ('diffusion', 'trajectory', {'side': 'right'}),
    ('ar', 'reaction', {'side': 'right'}),
    ('ar', 'reaction', {'side': 'left'}),
    ('ar', 'inbetween', {'k': 9}),
]


@pytest.mark.parametrize(('model', 'mode', 'options'), MODES)
def test_given_parts_match_within_a_millimetre(generator: Generator, given: BimanualMotion,
                                               model: str, mode: str, options: dict) -> None:
    out = generator.generate(PROMPT, model=model, mode=mode, given=given, seed=3, **options)
    assert out.num_frames == given.num_frames and out.fps == given.fps
    mask = ConditionMask.make(mode, given.num_frames, **options).array
    checked = 0
    for side in HandSide:
        pose = mask[:, FEATURE_LAYOUT.slice(side, FeatureGroup.HAND_POSE)].all(1)
        orient = mask[:, FEATURE_LAYOUT.slice(side, FeatureGroup.GLOBAL_ORIENT)].all(1)
        transl = mask[:, FEATURE_LAYOUT.slice(side, FeatureGroup.TRANSL)].all(1)
        full = pose & orient & transl  # every keypoint of the hand is given at these frames
        error = np.linalg.norm(out.keypoints[full, side] - given.keypoints[full, side], axis=-1)
        assert error.size == 0 or error.max() < 1e-3
        wrist = orient & transl  # the wrist keypoint follows from these two
        error = np.linalg.norm(out.keypoints[wrist, side, 0] - given.keypoints[wrist, side, 0],
                               axis=-1)
        assert error.size == 0 or error.max() < 1e-3
        np.testing.assert_allclose(out.transl[transl, side], given.transl[transl, side],
                                   atol=1e-6)
        checked += int(transl.sum())
    assert checked > 0
    generated = ~mask.all(1)
    assert generated.any()  # something was generated, and it is not the given motion
    assert not np.allclose(out.keypoints[generated], given.keypoints[generated], atol=1e-3)
    assert out.annotation['generated']['mode'] == mode
    assert out.texts == (PROMPT,)


@pytest.mark.parametrize(('model', 'mode', 'options'), [
    ('diffusion', 'reaction', {'side': 'left'}), ('ar', 'inbetween', {'k': 8}),
    ('diffusion', 'keyframes', {'frames': [2, 30]})])
def test_given_keypoints_are_kept_for_hands_unlike_the_default(generator: Generator, model: str,
                                                               mode: str, options: dict) -> None:
    given = _motion(9, mano_like=True)
    out = generator.generate(PROMPT, model=model, mode=mode, given=given, **options)
    mask = ConditionMask.make(mode, given.num_frames, **options).array
    for side in HandSide:
        whole = mask[:, FEATURE_LAYOUT.slice(side, FeatureGroup.HAND_POSE)].all(1)
        error = np.linalg.norm(out.keypoints[whole, side] - given.keypoints[whole, side], axis=-1)
        assert error.size == 0 or error.max() < 1e-3
    # the generated frames' wrists sit where the given skeleton puts them
    free = ~mask[:, FEATURE_LAYOUT.slice(HandSide.RIGHT, FeatureGroup.TRANSL)].all(1)
    offset = out.keypoints[free, 1, 0] - out.transl[free, 1]
    np.testing.assert_allclose(offset, np.broadcast_to([0.09, 0.006, 0.006], offset.shape),
                               atol=0.02)


def test_trajectory_keeps_the_given_wrist_path(generator: Generator) -> None:
    given = _motion(10, mano_like=True)
    out = generator.generate(PROMPT, mode='trajectory', given=given, side='right')
    error = np.linalg.norm(out.keypoints[:, 1, 0] - given.keypoints[:, 1, 0], axis=-1)
    assert error.max() < 1e-3  # the wrist keypoint follows from the given translation


def test_reaction_sizes_the_generated_hand_like_the_given_one(generator: Generator,
                                                              given: BimanualMotion) -> None:
    out = generator.generate(PROMPT, mode='reaction', given=given, side='left')
    bones = [np.linalg.norm(m.keypoints[0, :, 12] - m.keypoints[0, :, 0], axis=-1)
             for m in (out, given)]  # wrist to middle fingertip is the hand length proxy
    middle = [np.linalg.norm(np.diff(m.keypoints[0, :, [0, 9, 10, 11, 12]], axis=0),
                             axis=-1).sum(0) for m in (out, given)]
    assert np.allclose(middle[0], middle[1], rtol=1e-6)  # both hands as long as the given's
    assert bones[0].shape == (2,)


@pytest.mark.parametrize('model', ['diffusion', 'ar'])
def test_same_seed_same_motion(generator: Generator, model: str) -> None:
    a = generator.generate(PROMPT, model=model, seed=11, seconds=1.2)
    b = generator.generate(PROMPT, model=model, seed=11, seconds=1.2)
    c = generator.generate(PROMPT, model=model, seed=12, seconds=1.2)
    assert a.num_frames == 36
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert not np.allclose(a.keypoints, c.keypoints)


def test_batch_reproduces_single_calls(generator: Generator) -> None:
    batch = generator.generate_batch([PROMPT, 'The right hand waves.'], seed=5, seconds=1.0)
    single = generator.generate('The right hand waves.', seed=6, seconds=1.0)
    np.testing.assert_array_equal(batch[1].keypoints, single.keypoints)
    with pytest.raises(ModelError, match='prompt 1'):
        generator.generate_batch([PROMPT, ''], seconds=1.0)
    with pytest.raises(ModelError, match='non-empty list'):
        generator.generate_batch([])


@pytest.mark.parametrize(('kwargs', 'error', 'match'), [
    ({'text': ''}, ModelError, 'must contain text'),
    ({'text': '   '}, ModelError, 'must contain text'),
    ({'text': 'x' * 10_000}, ModelError, '10000 characters'),
    ({'text': 42}, ModelError, 'string'),
    ({'mode': 'dance'}, ConfigError, "'dance'.*'inbetween'.*'reaction'"),
    ({'model': 'gan'}, ConfigError, "'gan'.*'diffusion'"),
    ({'mode': 'reaction'}, ModelError, 'needs a given motion'),
    ({'seconds': 0}, ConfigError, 'positive'),
    ({'seconds': 0.01}, ModelError, '2 frames or more'),
    ({'seconds': 4000}, ModelError, 'at most 108000'),
    ({'window': {'overlap_frames': 3}}, ConfigError, 'WindowSettings'),
    ({'seed': -1}, ConfigError, 'seed'),
    ({'model': 'ar', 'mode': 'keyframes', 'frames': [1]}, ModelError, 'cannot serve'),
])
def test_bad_requests_are_clear_errors(generator: Generator, given: BimanualMotion,
                                       kwargs: dict, error: type, match: str) -> None:
    kwargs = {'text': PROMPT, **kwargs}
    if kwargs.get('model') == 'ar' and kwargs.get('mode') == 'keyframes':
        kwargs['given'] = given
    text = kwargs.pop('text')
    with pytest.raises(error, match=match):
        generator.generate(text, **kwargs)


def test_given_motion_of_the_wrong_rate_length_or_type(generator: Generator) -> None:
    with pytest.raises(ModelError, match='60 fps.*30 fps.*`handx data resample FILE OUT.npz '
                                         '--fps 30`'):
        generator.generate(PROMPT, mode='reaction', side='left', given=_motion(1, fps=60.0))
    with pytest.raises(ModelError, match='1 frame; the model takes 2 or more'):
        generator.generate(PROMPT, mode='reaction', side='left', given=_motion(1, 1))
    with pytest.raises(ModelError, match='does not match'):
        generator.generate(PROMPT, mode='inbetween', k=3, given=_motion(1), seconds=3.0)
    with pytest.raises(ModelError, match='BimanualMotion'):
        generator.generate(PROMPT, mode='reaction', side='left',
                           given=np.zeros((FRAMES, 2, 21, 3)))
    with pytest.raises(ConfigError, match='side'):
        generator.generate(PROMPT, mode='reaction', given=_motion(1))


def _right_hand_only(seed: int) -> BimanualMotion:
    motion = _motion(seed)
    return BimanualMotion(motion.fps, motion.global_orient, motion.hand_pose, motion.transl,
                          motion.keypoints, present=[False, True])


@pytest.mark.parametrize('model', ['diffusion', 'ar'])
def test_a_reaction_to_one_hand_generates_the_absent_hand(generator: Generator,
                                                          model: str) -> None:
    given = _right_hand_only(12)
    out = generator.generate(PROMPT, model=model, mode='reaction', given=given, side='right',
                             seed=2)
    np.testing.assert_array_equal(out.present, [True, True])
    np.testing.assert_array_equal(out.keypoints[:, 1], given.keypoints[:, 1])
    assert not np.allclose(out.keypoints[:, 0], given.keypoints[:, 0], atol=0.01)  # not the
    # rest hand kept: the left hand was generated
    out = generator.generate(PROMPT, mode='trajectory', given=given, side='right', seed=2)
    assert np.linalg.norm(out.keypoints[:, 1, 0] - given.keypoints[:, 1, 0], axis=-1).max() \
        < 1e-3


@pytest.mark.parametrize(('options', 'match'), [
    ({'mode': 'reaction', 'side': 'left'}, 'its left hand is absent and cannot be the given '
                                           'hand of a reaction; give the right hand'),
    ({'mode': 'inbetween', 'k': 3}, "mode 'inbetween' keeps both hands of the given motion, "
                                    "but it holds the right hand only"),
    ({'mode': 'keyframes', 'frames': [0, 5]}, "mode 'keyframes' keeps both hands"),
    ({'mode': 'trajectory'}, "mode 'trajectory' keeps both wrist paths"),
    ({'mode': 'trajectory', 'side': 'left'}, 'keeps the left wrist path'),
])
def test_keeping_an_absent_hand_as_given_is_refused(generator: Generator, options: dict,
                                                    match: str) -> None:
    with pytest.raises(ModelError, match=match) as caught:
        generator.generate(PROMPT, given=_right_hand_only(12), **options)
    if options['mode'] != 'reaction':
        assert "mode 'reaction' and side 'right'" in str(caught.value)


def test_cli_refuses_an_absent_given_hand_before_loading_a_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _right_hand_only(3).save(tmp_path / 'right.npz')
    code = cli.main(['generate', PROMPT, '--mode', 'reaction', '--given',
                     str(tmp_path / 'right.npz'), '--side', 'left', '--checkpoint',
                     str(tmp_path / 'missing.pt'), '--out', str(tmp_path / 'out.npz')])
    out, err = capsys.readouterr()
    assert code == 2 and out == ''
    assert err.count('\n') == 1 and 'its left hand is absent' in err and '--side right' in err
    assert not (tmp_path / 'out.npz').exists()


def test_bad_checkpoints_are_clear_errors(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    raw = checkpoints['diffusion'].read_bytes()
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(raw[:len(raw) // 2])
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint at all' * 50)
    old = tmp_path / 'old.pt'
    checkpoint = torch.load(checkpoints['diffusion'], weights_only=True)
    save_checkpoint({**checkpoint, 'format': 'handx-diffusion/0'}, old)
    cases = [
        (Generator(diffusion=corrupt), 'diffusion', 'corrupted, truncated'),
        (Generator(diffusion=garbage), 'diffusion', 'corrupted, truncated'),
        (Generator(diffusion=old), 'diffusion', "'handx-diffusion/0'.*'handx-diffusion/1'"),
        (Generator(ar=checkpoints['diffusion']), 'ar', "'handx-diffusion/1'.*'handx-ar/1'"),
        (Generator(diffusion=tmp_path / 'missing.pt'), 'diffusion', 'file not found'),
    ]
    for generator, model, match in cases:
        with pytest.raises(ModelError, match=match):
            generator.generate(PROMPT, model=model)
    lacking = tmp_path / 'lacking.pt'
    save_checkpoint({k: v for k, v in checkpoint.items() if k != 'normalizer'}, lacking)
    with pytest.raises(ModelError, match="lacks \\['normalizer'\\]"):
        Generator(diffusion=lacking).generate(PROMPT)
    with pytest.raises(ConfigError, match='device'):
        Generator(device='warp-drive')


def test_cli_writes_clips_and_reports_errors(checkpoints: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / 'clip.npz'
    code = cli.main(['generate', PROMPT, '--checkpoint', str(checkpoints['diffusion']),
                     '--seconds', '1', '--seed', '2', '--out', str(out)])
    assert code == 0
    clip = BimanualMotion.load(out)
    assert clip.num_frames == 30 and clip.texts == (PROMPT,)
    assert 'smoothing' in clip.annotation['generated']
    raw = tmp_path / 'raw.npz'
    assert cli.main(['generate', PROMPT, '--checkpoint', str(checkpoints['diffusion']),
                     '--seconds', '1', '--seed', '2', '--no-smoothing', '--out', str(raw)]) == 0
    unsmoothed = BimanualMotion.load(raw)
    assert 'smoothing' not in unsmoothed.annotation['generated']
    assert not np.allclose(unsmoothed.keypoints, clip.keypoints)
    reaction = tmp_path / 'reaction.npz'
    given = tmp_path / 'given.npz'
    _motion(4).save(given)
    assert cli.main(['generate', 'The left hand answers.', '--model', 'ar', '--checkpoint',
                     str(checkpoints['ar']), '--mode', 'reaction', '--side', 'right',
                     '--given', str(given), '--out', str(reaction)]) == 0
    np.testing.assert_allclose(BimanualMotion.load(reaction).keypoints[:, 1],
                               BimanualMotion.load(given).keypoints[:, 1], atol=1e-3)
    # --given reads any source file, as `handx data inspect`: here per-hand MANO parameters
    source = tmp_path / 'given_mano.npz'
    observed = _motion(4)
    np.savez(source, fps=np.array(observed.fps), global_orient=observed.global_orient,
             hand_pose=observed.hand_pose, transl=observed.transl)
    assert cli.main(['generate', 'The left hand answers.', '--model', 'ar', '--checkpoint',
                     str(checkpoints['ar']), '--mode', 'reaction', '--side', 'right',
                     '--given', str(source), '--out', str(reaction)]) == 0
    assert BimanualMotion.load(reaction).num_frames == observed.num_frames
    prompts = tmp_path / 'prompts.txt'
    prompts.write_text('# warm-up\nBoth hands clap.\n\nThe right hand waves.\n')
    capsys.readouterr()
    assert cli.main(['generate', '--prompts', str(prompts), '--checkpoint',
                     str(checkpoints['diffusion']), '--seconds', '1', '--out',
                     str(tmp_path / 'many'), '--json']) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [c['prompt'] for c in summary['clips']] == ['Both hands clap.',
                                                       'The right hand waves.']
    assert sorted(p.name for p in (tmp_path / 'many').iterdir()) == ['000.npz', '001.npz']
    assert cli.main(['generate', '', '--checkpoint', str(checkpoints['diffusion']),
                     '--out', str(out)]) == 2
    assert 'must contain text' in capsys.readouterr().err
    assert cli.main(['generate', 'x', '--mode', 'keyframes', '--keyframes', '1,a',
                     '--given', str(given), '--checkpoint', str(checkpoints['diffusion']),
                     '--out', str(out)]) == 2
    assert 'comma-separated integers' in capsys.readouterr().err


def test_cli_help_says_what_each_mode_needs_and_the_cli_holds_to_it(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli.main(['generate', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert 'reaction: the given hand (required); trajectory: the hand whose wrist path is ' \
           'given (default: both hands)' in text
    assert 'inbetween: frames given at each end (required)' in text
    assert 'keyframes: comma-separated frame indices (required)' in text
    given = tmp_path / 'given.npz'
    _motion(4).save(given)
    for mode, options, needs in [('reaction', ['--given', str(given)], '--side'),
                                 ('inbetween', ['--given', str(given)], '--k'),
                                 ('keyframes', ['--given', str(given)], '--keyframes'),
                                 ('trajectory', [], '--given')]:
        code = cli.main(['generate', 'Both hands clap.', '--mode', mode, *options, '--out',
                         str(tmp_path / 'out.npz'), '--checkpoint', str(tmp_path / 'none.pt')])
        err = capsys.readouterr().err
        assert code == 2 and f'--mode {mode} needs {needs} (' in err, err  # before any loading


def test_cli_prompts_file_loads_the_model_and_text_encoder_once(
        checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from handx_gen.models import checkpoints as checkpoint_module
    from handx_gen.models import text_encoder

    loads: list[str] = []

    def counting(name: str, real):
        def counted(*args, **kwargs):
            loads.append(name)
            return real(*args, **kwargs)
        return counted

    for module, name in [(checkpoint_module, 'load_checkpoint'),
                         (text_encoder, 'encoder_from_description')]:
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    prompts = tmp_path / 'prompts.txt'
    prompts.write_text('Both hands clap.\nThe right hand waves.\nThe left hand makes a fist.\n')
    assert cli.main(['generate', '--prompts', str(prompts), '--checkpoint',
                     str(checkpoints['diffusion']), '--seconds', '0.5', '--out',
                     str(tmp_path / 'many')]) == 0
    assert len(list((tmp_path / 'many').iterdir())) == 3
    assert sorted(loads) == ['encoder_from_description', 'load_checkpoint']


# ---------------------------------------------------------------------- long motion

LONG = 20 * int(FPS)  # a 20 s given motion; the test models make 40 frames at once


def _same_hand(a: BimanualMotion, b: BimanualMotion, side: int) -> None:
    for name in ('keypoints', 'transl', 'global_orient', 'hand_pose'):
        np.testing.assert_array_equal(getattr(a, name)[:, side], getattr(b, name)[:, side])


@pytest.mark.parametrize('model', ['diffusion', 'ar'])
def test_a_twenty_second_hand_gets_a_twenty_second_reaction(generator: Generator,
                                                            model: str) -> None:
    given = _motion(21, LONG)
    calls: list[tuple[int, int]] = []
    out = generator.generate(PROMPT, model=model, mode='reaction', given=given, side='left',
                             seed=4, progress=lambda done, total: calls.append((done, total)))
    plan = generator.plan(model, mode='reaction', given=given)
    assert out.num_frames == LONG and len(plan) > 10
    assert calls == [(i + 1, len(plan)) for i in range(len(plan))]
    _same_hand(out, given, 0)  # the given hand, bit for bit
    assert np.isfinite(out.keypoints).all()
    windows = out.annotation['generated']['windows']
    assert windows['count'] == len(plan) and windows['window_frames'] == FRAMES
    again = generator.generate(PROMPT, model=model, mode='reaction', given=given, side='left',
                               seed=4)
    np.testing.assert_array_equal(out.keypoints, again.keypoints)


def test_long_inbetween_and_text_clips_are_made_in_windows(generator: Generator) -> None:
    given = _motion(22, 150)
    out = generator.generate(PROMPT, mode='inbetween', given=given, k=6)
    assert out.num_frames == 150
    for part in (slice(0, 6), slice(144, 150)):
        np.testing.assert_array_equal(out.keypoints[part], given.keypoints[part])
        np.testing.assert_array_equal(out.hand_pose[part], given.hand_pose[part])
    clip = generator.generate(PROMPT, model='ar', seconds=5.0)
    assert clip.num_frames == 150 and clip.annotation['generated']['windows']['count'] > 1


def test_a_stream_continues_an_endless_given_hand(generator: Generator) -> None:
    given = _motion(23, 100)
    stream = generator.stream(PROMPT, side='right', seed=2)
    first = stream.extend(0, 30, given=given[0:30])
    second = stream.extend(15, 45, given=given[15:45])  # frames [30, 45) are new
    assert (first.num_frames, second.num_frames, stream.end) == (30, 15, 45)
    _same_hand(BimanualMotion.concatenate([first, second]), given[0:45], 1)
    with pytest.raises(ModelError, match='keyframes'):
        generator.stream(PROMPT, mode='keyframes')
    with pytest.raises(ConfigError, match='longer than the model makes'):
        generator.stream(PROMPT, side='right', window=WindowSettings(window_frames=90))


def test_cli_reacts_to_a_long_file_and_takes_part_of_it(checkpoints: dict[str, Path],
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    given_path = tmp_path / 'take.npz'
    given = _motion(24, LONG)
    given.save(given_path)
    out = tmp_path / 'reaction.npz'
    base = ['generate', 'The left hand answers.', '--model', 'ar', '--checkpoint',
            str(checkpoints['ar']), '--mode', 'reaction', '--side', 'right', '--given',
            str(given_path), '--out', str(out)]
    assert cli.main(base) == 0
    reaction = BimanualMotion.load(out)
    assert reaction.num_frames == LONG
    _same_hand(reaction, BimanualMotion.load(given_path), 1)
    capsys.readouterr()
    assert cli.main([*base, '--start', '2', '--end', '12.5', '--json']) == 0
    summary = json.loads(capsys.readouterr().out)
    part = BimanualMotion.load(out)
    assert part.num_frames == summary['clips'][0]['frames'] == 315  # frames [60, 375)
    _same_hand(part, BimanualMotion.load(given_path)[60:375], 1)
    assert part.annotation['generated']['given']['frames'] == [60, 375]
    assert cli.main([*base, '--start', '19']) == 0  # to the end: 30 frames, one window
    assert BimanualMotion.load(out).num_frames == 30
    for options, message in [
            (['--start', '15', '--end', '30'], 'frames [450, 900) are not a non-empty part of '
                                               'the clip, 600 frames (20.000 s at 30 fps)'),
            (['--start', '5', '--end', '5'], 'frames [150, 150) are not a non-empty part'),
            (['--start', '-1'], '--start must be a number >= 0'),
            (['--end', 'nan'], '--end must be a number >= 0')]:
        assert cli.main([*base, *options]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(['generate', PROMPT, '--start', '1', '--out', str(out)]) == 2
    assert '--start takes part of --given; there is no --given' in capsys.readouterr().err


# ---------------------------------------------------------------------- shipped models


def test_shipped_checkpoints_are_small_and_describe_their_data() -> None:
    total = 0
    for kind in ModelKind:
        path = default_checkpoint(kind)
        assert path.name == DEFAULT_WEIGHTS[kind]
        total += path.stat().st_size
        checkpoint = torch.load(path, weights_only=True)
        train = checkpoint['data']['train']
        assert train['seed'] == 0 and train['split'] == 'train' and train['clips'] > 1000
        assert checkpoint['train']['wall_s'] > 0 and checkpoint['step'] > 0
        assert checkpoint['text_encoder']['name'] == 'minilm:all-MiniLM-L6-v2'
    assert total <= 30 * 1024 * 1024


@pytest.mark.parametrize('model', ['diffusion', 'ar'])
def test_shipped_models_generate_a_four_second_clip(model: str) -> None:
    clip = Generator().generate(PROMPT, model=model, seed=0)
    assert clip.num_frames == 120 and clip.fps == 30.0
    assert np.isfinite(clip.keypoints).all()
    # two hands of a plausible size in front of the body, not collapsed or exploded
    span = np.ptp(clip.keypoints.reshape(-1, 3), axis=0)
    assert 0.05 < span.max() < 1.5


@pytest.mark.parametrize('model', ['diffusion', 'ar'])
def test_shipped_models_join_windows_and_keep_the_reacting_hand_moving(model: str) -> None:
    """A 20 s take, the left hand given: the windows join without a jump and the right hand
    keeps moving (the AR model held it still for the whole take when each window was given
    a second of context: its fingers moved 2-3 mm)."""
    from handx_gen.data.synthetic import SynthConfig, clip_seeds, synthesize_clip

    config = SynthConfig(clip_duration_s=(20.0, 21.0), primitives_per_clip=(5, 6))
    given = synthesize_clip(config, *clip_seeds(1, 1)).motion[:600]
    generator = Generator()
    out = generator.generate('The right hand mirrors the left hand.', model=model,
                             mode='reaction', given=given, side='left', seed=0,
                             **({'steps': 5} if model == 'diffusion' else {}))
    assert out.num_frames == 600
    _same_hand(out, given, 0)
    plan = generator.plan(model, mode='reaction', given=given)
    seams = [w.stop - WindowSettings().hold_frames - 1 for w in plan[:-1]]  # steps into them
    steps = np.linalg.norm(np.diff(out.keypoints[:, 1, 0].astype(np.float64), axis=0), axis=-1)
    inside = np.delete(steps, seams)
    assert steps[seams].max() <= max(1.5 * inside.max(), 0.01), (steps[seams], inside.max())
    tips = palm_frame_tips(out.keypoints[:, 1])
    assert np.linalg.norm(tips - tips.mean(axis=0), axis=-1).mean() > 0.01


@pytest.mark.parametrize(('model', 'mode', 'options'), [
    ('diffusion', 'text', {}), ('ar', 'reaction', {'side': 'right'}),
    ('diffusion', 'inbetween', {'k': 10})])
def test_contact_guidance_makes_the_named_contact_and_keeps_the_given_parts(
        generator: Generator, given: BimanualMotion, model: str, mode: str,
        options: dict) -> None:
    from handx_gen.annotate.surface import hand_surface, part_distance
    from handx_gen.hand.parts import HandPart
    from handx_gen.models.contact_guidance import ContactGuidanceConfig

    text = 'The right index fingertip touches the left palm.'
    request = dict(model=model, mode=mode, given=None if mode == 'text' else given, seed=5,
                   seconds=None if mode != 'text' else given.num_frames / given.fps, **options)
    plain = generator.generate(text, contacts=False, **request)
    reach = ContactGuidanceConfig(max_reach_m=2.0, max_penetration_m=1.0,  # always reached
                                  max_step_m=1.0)  # eased in over min_ease_frames
    guided = generator.generate(text, contacts=reach, **request)
    made = guided.annotation['generated']['contacts']
    assert made['stated'] == ['left.palm~right.index_tip'] and made['completed'] == [True]
    frame = made['frames'][0]
    surfaces = [hand_surface(guided.keypoints[:, s], s) for s in HandSide]
    gap = part_distance(surfaces[0], HandPart.PALM, surfaces[1], HandPart.INDEX_TIP).distance
    assert gap[frame] <= reach.target_gap_m + 1e-3
    np.testing.assert_array_equal(guided.hand_pose, plain.hand_pose)  # only wrists move
    mask = ConditionMask.make(mode, plain.num_frames, **options).array
    for side in HandSide:
        given_wrist = mask[:, FEATURE_LAYOUT.slice(side, FeatureGroup.TRANSL)].any(1)
        np.testing.assert_array_equal(guided.transl[given_wrist, side],
                                      plain.transl[given_wrist, side])
    assert not np.allclose(guided.transl, plain.transl)
    default = generator.generate(text, **request)  # on by default, default reach
    assert ('contacts' in default.annotation['generated']) != \
        np.array_equal(default.keypoints, plain.keypoints)


@pytest.mark.parametrize(('model', 'mode', 'options'), [
    ('diffusion', 'text', {}), ('ar', 'reaction', {'side': 'right'})])
def test_separation_is_the_library_step_and_keeps_the_given_parts(
        generator: Generator, given: BimanualMotion, model: str, mode: str,
        options: dict) -> None:
    from handx_gen.models.separation import SeparationConfig, separate_hands

    text = 'The hands press their palms together.'
    request = dict(model=model, mode=mode, given=None if mode == 'text' else given, seed=3,
                   seconds=None if mode != 'text' else given.num_frames / given.fps,
                   contacts=False, **options)
    plain = generator.generate(text, separation=False, **request)
    config = SeparationConfig(max_depth_m=1e-4)  # any overlap at all is moved apart
    separated = generator.generate(text, separation=config, **request)
    mask = ConditionMask.make(mode, plain.num_frames, **options).array
    free = np.stack([~mask[:, FEATURE_LAYOUT.slice(side, FeatureGroup.TRANSL)].any(1)
                     for side in HandSide], axis=1)
    expected = separate_hands(plain, free=free, config=config)
    np.testing.assert_allclose(separated.keypoints, expected.motion.keypoints, atol=1e-6)
    recorded = separated.annotation['generated'].get('separation')
    assert (recorded is not None) == (expected.motion is not plain)
    if recorded is not None:
        assert recorded == expected.to_dict()
    for side in HandSide:
        np.testing.assert_array_equal(separated.transl[~free[:, side], side],
                                      plain.transl[~free[:, side], side])
    with pytest.raises(ConfigError, match='separation must be'):
        generator.generate(text, separation='yes', **request)
