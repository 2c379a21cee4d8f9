"""Hostile command-line input: every crafted file or argument gives exit code 2 and one line
on stderr (no traceback) in bounded time, and no command writes over its own inputs."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path

import pytest
from synth_fixtures import FIXTURE_MODULES

from handx_gen.generate import WEIGHTS_DIR
from handx_ros import cli
from handx_ros.paths import robot_models_dir


def run(capsys, *argv: str) -> str:
    """Run ``handx ARGV`` in-process; assert exit 2, one stderr line, quickly; return it."""
    start = time.perf_counter()
    code = cli.main([str(a) for a in argv])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert 'Traceback' not in err
    assert elapsed < 10.0, elapsed
    return lines[0]


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo owned',))


# ------------------------------------------------------------------ YAML configs (--config/--gate)

YAML_CASES = {
    'not_utf8': b'max_gap_s: 0.1\n# \xff\xfe\xfd\n',
    'huge_int': b'max_gap_s: ' + b'9' * 5000 + b'\n',
    'deep': b'max_gap_s: ' + b'[' * 50_000 + b']' * 50_000 + b'\n',
    'a_list': b'- 1\n- 2\n',
    'a_string': b'just text\n',
}


@pytest.mark.parametrize('case', sorted(YAML_CASES))
def test_hostile_filter_config_is_one_line(tmp_path, capsys, case):
    config = tmp_path / 'filter.yaml'
    config.write_bytes(YAML_CASES[case])
    line = run(capsys, 'data', 'filter', tmp_path / 'missing.npz', '--config', config)
    assert str(config) in line


@pytest.mark.parametrize('case', sorted(YAML_CASES))
def test_hostile_gate_config_is_one_line(tmp_path, capsys, case):
    gate = tmp_path / 'gate.yaml'
    gate.write_bytes(YAML_CASES[case].replace(b'max_gap_s', b'max_penetration_m'))
    line = run(capsys, 'sim', tmp_path / 'missing.npz', '--gate', gate)
    assert str(gate) in line


def test_oversized_config_is_refused(tmp_path, capsys):
    config = tmp_path / 'filter.yaml'
    config.write_bytes(b'# ' + b'x' * (2 << 20) + b'\n')
    assert 'larger than' in run(capsys, 'data', 'filter', tmp_path / 'm.npz', '--config', config)


def test_a_wrongly_typed_config_value_is_one_line(tmp_path, capsys):
    config = tmp_path / 'retarget.yaml'
    config.write_text('objective: [1, 2]\nmax_iterations: {a: 1}\n')
    run(capsys, 'retarget', tmp_path / 'm.npz', '--out', tmp_path / 't.npz', '--config', config)


# ---------------------------------------------------------------------------------- --robot

@pytest.mark.parametrize('name', ['..', '../robot_models/allegro', '/etc', '.', '',
                                  str(robot_models_dir() / 'allegro'), 'allegro/../allegro'])
def test_robot_takes_folder_names_only(tmp_path, capsys, name):
    line = run(capsys, 'retarget', tmp_path / 'm.npz', '--out', tmp_path / 't.npz',
               '--robot', name)
    assert 'unknown robot' in line and "'allegro'" in line and "'g1_hands'" in line


def test_robots_command_takes_names_only(capsys):
    assert 'unknown robot' in run(capsys, 'robots', '../robot_models/allegro')


MALFORMED_SPECS = {
    'self_pair': 'kind: pair\nleft: evil\nright: evil\n',
    'pair_of_pairs': None,  # written below: a pair whose members are pairs
    'type_error': ('kind: humanoid\nurdf: {package: share:x, path: a.urdf}\n'
                   'hands: {left: {}, right: {}}\narm_joints: {left: 5, right: 5}\n'),
    'value_error': ('kind: hand\nurdf: {package: share:x, path: a.urdf}\n'
                    'frames: [{name: a, parent: b, xyz: [x, y, z]}]\n'),
    'locked_joints': ('kind: humanoid\nurdf: {package: share:x, path: a.urdf}\n'
                      'locked_joints: [1, 2]\n'),
    'not_utf8': None,
    'retarget_list': 'kind: pair\nleft: a\nright: b\nretarget: [1, 2]\n',
}


@pytest.mark.parametrize('case', sorted(MALFORMED_SPECS))
def test_robot_dir_with_a_malformed_spec_is_one_line(tmp_path, capsys, case):
    folder = tmp_path / 'robots' / 'evil'
    folder.mkdir(parents=True)
    spec = folder / 'robot.yaml'
    if case == 'pair_of_pairs':
        spec.write_text('kind: pair\nleft: other\nright: other\n')
        (tmp_path / 'robots' / 'other').mkdir()
        (tmp_path / 'robots' / 'other' / 'robot.yaml').write_text(
            'kind: pair\nleft: evil\nright: evil\n')
    elif case == 'not_utf8':
        spec.write_bytes(b'kind: \xff\xfe\n')
    else:
        spec.write_text(MALFORMED_SPECS[case])
    line = run(capsys, 'retarget', tmp_path / 'm.npz', '--out', tmp_path / 't.npz',
               '--robot-dir', folder)
    assert 'robot.yaml' in line


def test_robot_dir_needs_a_robot_folder(tmp_path, capsys):
    line = run(capsys, 'retarget', tmp_path / 'm.npz', '--out', tmp_path / 't.npz',
               '--robot-dir', tmp_path)
    assert 'not a robot folder' in line


def test_robot_dir_reads_a_folder_of_its_own(tmp_path):
    from handx_ros.retarget.spec import load_robot_folder

    copy = tmp_path / 'mine'
    for name in ('allegro', 'allegro_left', 'allegro_right'):
        shutil.copytree(robot_models_dir() / name, copy / name)
    spec = load_robot_folder(copy / 'allegro')
    assert spec.name == 'allegro' and spec.folder == (copy / 'allegro').resolve()
    assert spec.members == ('allegro_left', 'allegro_right')


# ------------------------------------------------------------------------------ checkpoints

@pytest.mark.parametrize('content', [b'hello world\n', b'root:x:0:0:root:/root:/bin/bash\n'
                                     b'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n'])
def test_a_text_file_as_checkpoint_is_one_line(tmp_path, capsys, content):
    checkpoint = tmp_path / 'model.pt'
    checkpoint.write_bytes(content)
    line = run(capsys, 'generate', 'clap', '--checkpoint', checkpoint,
               '--out', tmp_path / 'o.npz')
    assert 'not a checkpoint' in line
    assert not (tmp_path / 'o.npz').exists()


def test_etc_passwd_as_checkpoint_is_one_line(tmp_path, capsys):
    if not Path('/etc/passwd').is_file():
        pytest.skip('no /etc/passwd here')
    run(capsys, 'generate', 'clap', '--checkpoint', '/etc/passwd', '--out', tmp_path / 'o.npz')


def test_a_pickle_as_checkpoint_is_one_line(tmp_path, capsys):
    checkpoint = tmp_path / 'model.pt'
    checkpoint.write_bytes(pickle.dumps(_Evil()))
    run(capsys, 'generate', 'clap', '--checkpoint', checkpoint, '--out', tmp_path / 'o.npz')


def _evil_encoder_folder(folder: Path) -> Path:
    """A transformers folder whose weights are a pickle that runs a command when loaded."""
    from handx_gen.models.text_encoder import bundled_minilm_path

    folder.mkdir()
    for name in ('config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt',
                 'special_tokens_map.json'):
        shutil.copy(bundled_minilm_path() / name, folder / name)
    (folder / 'pytorch_model.bin').write_bytes(pickle.dumps(_Evil()))
    return folder


def test_a_checkpoint_may_not_name_a_text_encoder_folder(tmp_path, capsys):
    import torch

    folder = _evil_encoder_folder(tmp_path / 'evil')
    checkpoint = torch.load(WEIGHTS_DIR / 'diffusion_small.pt', weights_only=True)
    checkpoint['text_encoder'] = {**checkpoint['text_encoder'],
                                  'config': {**checkpoint['text_encoder'].get('config', {}),
                                             'path': str(folder)}}
    crafted = tmp_path / 'crafted.pt'
    torch.save(checkpoint, crafted)
    line = run(capsys, 'generate', 'clap', '--checkpoint', crafted, '--out', tmp_path / 'o.npz')
    assert 'names the text encoder folder' in line and '--text-encoder' in line
    # given explicitly, the folder is loaded, and its failure is still one line
    line = run(capsys, 'generate', 'clap', '--checkpoint', crafted, '--text-encoder', folder,
               '--out', tmp_path / 'o.npz')
    assert 'cannot load' in line
    assert not (tmp_path / 'o.npz').exists()


def test_lm_path_with_unloadable_weights_is_one_line(tmp_path, capsys):
    folder = _evil_encoder_folder(tmp_path / 'evil')
    config = json.loads((folder / 'config.json').read_text())
    (folder / 'config.json').write_text(json.dumps({**config, 'model_type': 'bert',
                                                    'is_decoder': True}))
    clip = tmp_path / 'clip.npz'
    clip.write_bytes(b'not read: the model is loaded first')
    line = run(capsys, 'annotate', clip, '--lm-path', folder)
    assert 'cannot load the language model' in line


# ----------------------------------------------------------------- outputs replacing inputs

def test_retarget_refuses_to_overwrite_its_motion(tmp_path, capsys):
    motion = tmp_path / 'a.npz'
    motion.write_bytes(b'motion')
    line = run(capsys, 'retarget', motion, '--out', motion)
    assert 'same file' in line and '--out' in line
    link = tmp_path / 'link.npz'
    os.link(motion, link)  # a hard link is the same file under another name
    assert 'same file' in run(capsys, 'retarget', motion, '--out', link)
    assert 'same file' in run(capsys, 'retarget', motion, '--out', tmp_path / 't.npz',
                              '--report', tmp_path / 't.npz')
    assert motion.read_bytes() == b'motion'


def test_sim_refuses_to_overwrite_its_trajectory(tmp_path, capsys):
    trajectory = tmp_path / 't.npz'
    trajectory.write_bytes(b'trajectory')
    line = run(capsys, 'sim', trajectory, '--report', trajectory)
    assert 'same file' in line and '--report' in line
    os.symlink(trajectory, tmp_path / 'r.json')
    assert 'same file' in run(capsys, 'sim', trajectory, '--report', tmp_path / 'r.json')
    assert trajectory.read_bytes() == b'trajectory'


def test_generate_and_data_commands_refuse_to_overwrite_inputs(tmp_path, capsys):
    given = tmp_path / 'g.npz'
    given.write_bytes(b'given')
    assert 'same file' in run(capsys, 'generate', 'clap', '--mode', 'reaction', '--given',
                              given, '--side', 'right', '--out', given)
    prompts = tmp_path / 'p'
    prompts.mkdir()
    (prompts / '000.npz').write_bytes(b'given')
    (tmp_path / 'list.txt').write_text('clap\n')
    assert 'same file' in run(capsys, 'generate', '--prompts', tmp_path / 'list.txt',
                              '--given', prompts / '000.npz', '--out', prompts)
    assert 'same file' in run(capsys, 'data', 'convert', given, given)
    assert 'same file' in run(capsys, 'mano', 'convert', given, '--out', given)
    assert given.read_bytes() == b'given'


# ----------------------------------------------------------------------------------- prompts

def test_prompts_are_bounded_before_generating(tmp_path, capsys):
    prompts = tmp_path / 'prompts.txt'
    prompts.write_text('wave the right hand\n' * 100_000)
    line = run(capsys, 'generate', '--prompts', prompts, '--out', tmp_path / 'clips')
    assert 'more than 1000 prompts' in line and '--max-prompts' in line
    line = run(capsys, 'generate', '--prompts', prompts, '--max-prompts', '10',
               '--out', tmp_path / 'clips')
    assert 'more than 10 prompts (line 11)' in line
    assert not (tmp_path / 'clips').exists()


@pytest.mark.parametrize('bad, expected', [('x' * 5000, 'line 3 is longer than 2000'),
                                           ('!!! ???', 'line 3 holds no prompt text')])
def test_every_prompt_line_is_checked_before_the_first_clip(tmp_path, capsys, bad, expected):
    prompts = tmp_path / 'prompts.txt'
    prompts.write_text(f'clap twice\n# a comment\n{bad}\nwave\n')
    line = run(capsys, 'generate', '--prompts', prompts, '--out', tmp_path / 'clips')
    assert expected in line
    assert not (tmp_path / 'clips').exists()


def test_a_prompt_file_without_newlines_is_read_a_bounded_amount(tmp_path, capsys):
    prompts = tmp_path / 'prompts.txt'
    prompts.write_text('y' * 20_000_000)
    assert 'line 1 is longer' in run(capsys, 'generate', '--prompts', prompts,
                                     '--out', tmp_path / 'clips')


# -------------------------------------------------------------------------------- data synth

def test_an_interrupted_synth_leaves_nothing_blocking(tmp_path, capsys, monkeypatch):
    from handx_gen.data import synthetic

    config = tmp_path / 'synth.yaml'
    config.write_text(f'primitive_modules: {list(FIXTURE_MODULES)}\n')
    out = tmp_path / 'corpus'
    argv = ['data', 'synth', '--clips', '3', '--out', str(out), '--workers', '1', '--config',
            str(config), '--types', 'fixture_fist,fixture_sway', '--no-progress']
    real = synthetic._ClipWriter.__call__
    calls = []

    def interrupted(self, job):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, job)

    monkeypatch.setattr(synthetic._ClipWriter, '__call__', interrupted)
    assert cli.main(argv) == 130
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['synth.yaml']  # no staging left
    monkeypatch.setattr(synthetic._ClipWriter, '__call__', real)
    assert cli.main(argv) == 0
    assert len(synthetic.load_index(out).rows) == 3
    capsys.readouterr()
