"""The ``handx`` command: subcommands listed, errors reported in one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

from handx_gen.errors import MotionError
from handx_ros import cli


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['--help'])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ['data', 'mano', 'annotate']:
        assert command in out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['no-such-command'])
    assert exit_info.value.code == 2
    assert 'invalid choice' in capsys.readouterr().err


def test_handx_error_becomes_one_line(monkeypatch, capsys):
    def register(subparsers):
        broken = subparsers.add_parser('broken')
        broken.set_defaults(func=fail)

    def fail(args):
        raise MotionError('fps must be > 0, got -1.0')

    module = types.ModuleType('handx_test_broken_cli')
    module.register = register
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(cli, 'SUBCOMMAND_MODULES', (*cli.SUBCOMMAND_MODULES, module.__name__))
    code = cli.main(['broken'])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count('\n') == 1 and 'fps must be > 0, got -1.0' in err
    assert err.startswith('handx broken: error:')


def test_console_script_runs_as_a_process(tmp_path):
    missing = tmp_path / 'missing.npz'
    result = subprocess.run(
        [sys.executable, '-m', 'handx_ros.cli', 'data', 'inspect', str(missing)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert str(missing) in result.stderr and len(result.stderr.strip().splitlines()) == 1


HEAVY_LIBRARIES = ('torch', 'transformers', 'mujoco', 'pinocchio', 'smplx', 'scipy',
                   'matplotlib', 'rclpy', 'numpy')


def test_help_of_every_command_loads_no_heavy_library():
    """``handx --help`` and every (sub)command's ``--help`` load none of the heavy libraries,
    not even numpy: they are imported by the commands that use them, so help is fast (about
    0.2 s against 3-7 s when every command's libraries loaded first)."""
    code = textwrap.dedent(f"""
        import argparse, contextlib, io, sys
        from handx_ros import cli

        def commands(parser, prefix):
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, sub in action.choices.items():
                        yield [*prefix, name]
                        yield from commands(sub, [*prefix, name])

        names = [[], *commands(cli.build_parser(), [])]
        for command in names:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    cli.main([*command, '--help'])
                except SystemExit as exit_info:
                    assert exit_info.code == 0, command
        print(len(names), sorted(m for m in {HEAVY_LIBRARIES!r} if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    count, loaded = result.stdout.strip().split(' ', 1)
    assert int(count) > 15  # handx, its commands and the nested ones (data convert, ...)
    assert loaded == '[]'


@pytest.mark.parametrize('command', [['robots'], ['robots', 'allegro'], ['--help']])
def test_closed_output_pipe_ends_quietly(command):
    """The reader of the output goes away before the command writes (``handx robots | head``
    where head is done): exit 141 as a shell reports SIGPIPE, no traceback."""
    process = subprocess.Popen([sys.executable, '-m', 'handx_ros.cli', *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the interpreter has even started: every write fails
    _, err = process.communicate(timeout=120)
    assert err == b'', err.decode()
    # argparse's help ignores a failed write and exits 0 itself
    assert process.returncode == (0 if command == ['--help'] else cli.BROKEN_PIPE_EXIT)
