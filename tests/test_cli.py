"""The ``handx`` command: subcommands listed, errors reported in one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
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
