"""A small corpus built like the shipped models' one, for the training and evaluation tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT / 'training'


def env() -> dict[str, str]:
    """Subprocess environment: offline text encoder, one thread per process."""
    return {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
            'TOKENIZERS_PARALLELISM': 'false'}


def build_corpus(out: Path, clips: int = 24, seed: int = 3) -> Path:
    """``clips`` clips with the shipped models' corpus settings (4 s, one motion type)."""
    subprocess.run([sys.executable, '-m', 'handx_ros.cli', 'data', 'synth', '--out', str(out),
                    '--clips', str(clips), '--seed', str(seed), '--workers', '1',
                    '--no-progress', '--config', str(TRAINING / 'configs' / 'corpus.yaml')],
                   check=True, capture_output=True, env=env(), cwd=ROOT, timeout=600)
    return out


def train(script: str, *args: str, torchrun: int = 0) -> subprocess.CompletedProcess:
    """Run a training script (optionally under torchrun) and check it succeeded."""
    if torchrun:
        command = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                   f'--nproc_per_node={torchrun}', str(TRAINING / script)]
    else:
        command = [sys.executable, str(TRAINING / script)]
    result = subprocess.run([*command, *args, '--no-progress'], capture_output=True, text=True,
                            env=env(), timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result
