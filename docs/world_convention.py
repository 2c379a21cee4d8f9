"""Draw ``docs/world_convention.png``: the world axes, a body and where the hands sit.

Also measures where the synthetic corpus puts the wrists, the numbers behind
:data:`handx_gen.data.workspace.CANONICAL_WRIST_M` and ``CORPUS_RANGE_M`` (see that module):
the first ``--clips`` clips of the default corpus (seed 0), both hands pooled with each left
wrist mirrored onto the right side (x -> -x), printed as JSON (median and 0.1 / 99.9
percentiles, metres). The picture shows those wrists, the canonical spots and the workspace
boxes, three views of one standing person.

Usage (about a minute at the default 300 clips on one core):
    python docs/world_convention.py [--clips 300] [--out docs/world_convention.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from handx_gen.data.synthetic import SynthConfig, clip_seeds, synthesize_clip  # noqa: E402
from handx_gen.data.workspace import (  # noqa: E402
    CANONICAL_WRIST_M,
    CORPUS_RANGE_M,
    WORKSPACE,
)

LEFT_COLOUR, RIGHT_COLOUR = '#1f6fb4', '#c8402d'

# A standing person about 1.75 m tall, facing +y, as (x, y, z) points, metres. Drawn only.
_HEAD_CENTRE, _HEAD_RADIUS = np.array([0.0, 0.0, 1.63]), 0.10
_SHOULDER, _HIP = np.array([0.20, 0.0, 1.43]), np.array([0.11, 0.0, 0.93])
_ELBOW = np.array([0.23, 0.02, 1.13])
_FOOT = np.array([0.11, 0.05, 0.0])
_TORSO_DEPTH = 0.11  # chest front and back, y


def measure(num_clips: int) -> np.ndarray:
    """(T, 2, 3) wrists of the first ``num_clips`` clips of the default corpus (seed 0)."""
    config = SynthConfig()
    wrists = []
    for index in range(num_clips):
        clip = synthesize_clip(config, *clip_seeds(0, index, config.clips_per_composition))
        wrists.append(np.asarray(clip.motion.keypoints[:, :, 0], dtype=np.float64))
    return np.concatenate(wrists)


def summary(wrists: np.ndarray) -> dict[str, object]:
    """Median and 0.1 / 99.9 percentiles of the pooled, mirrored wrists (lateral, forward,
    up)."""
    mirrored = (wrists * [[[-1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]).reshape(-1, 3)
    low, high = np.percentile(mirrored, [0.1, 99.9], axis=0)
    return {'frames': int(wrists.shape[0]),
            'median_m': np.round(np.median(mirrored, axis=0), 3).tolist(),
            'percentile_0.1_m': np.round(low, 3).tolist(),
            'percentile_99.9_m': np.round(high, 3).tolist()}


def _body(ax: plt.Axes, u: int, v: int) -> None:
    """The person projected on world axes ``u`` (horizontal) and ``v`` (vertical)."""
    style = {'color': '0.55', 'lw': 2.0, 'solid_capstyle': 'round'}
    head = _HEAD_CENTRE[[u, v]]
    ax.add_patch(plt.Circle(head, _HEAD_RADIUS, fill=False, color='0.55', lw=2.0))
    for sign in (-1.0, 1.0):
        mirror = np.array([sign, 1.0, 1.0])
        shoulder, hip, elbow, foot = (p * mirror for p in (_SHOULDER, _HIP, _ELBOW, _FOOT))
        wrist = CANONICAL_WRIST_M[int(sign > 0)]
        for a, b in ((shoulder, elbow), (elbow, wrist), (hip, foot)):
            ax.plot([a[u], b[u]], [a[v], b[v]], **style)
    if v == 1:  # from above: the shoulders' ellipse
        ax.add_patch(matplotlib.patches.Ellipse((0.0, 0.0), 2 * _SHOULDER[0] + 0.08,
                                                2 * _TORSO_DEPTH, fill=False, color='0.55',
                                                lw=2.0))
        return
    if u == 0:  # from behind: a trapezoid torso
        corners = [_SHOULDER * [-1, 1, 1], _SHOULDER, _HIP, _HIP * [-1, 1, 1]]
    else:  # from the side: the chest's depth
        corners = [[0, -_TORSO_DEPTH, _SHOULDER[2]], [0, _TORSO_DEPTH, _SHOULDER[2]],
                   [0, _TORSO_DEPTH * 0.8, _HIP[2]], [0, -_TORSO_DEPTH * 0.8, _HIP[2]]]
    corners = np.array(corners, dtype=np.float64)[:, [u, v]]
    ax.add_patch(plt.Polygon(corners, closed=True, fill=False, color='0.55', lw=2.0))


def _axes_arrows(ax: plt.Axes, u: int, v: int, origin: tuple[float, float]) -> None:
    names = ('x right', 'y forward', 'z up')
    for axis, (dx, dy) in ((u, (0.3, 0.0)), (v, (0.0, 0.3))):
        ax.annotate('', xy=(origin[0] + dx, origin[1] + dy), xytext=origin,
                    arrowprops={'arrowstyle': '->', 'lw': 1.6, 'color': 'k'})
        ax.text(origin[0] + dx * 1.08 + (0.0 if dx else 0.03),
                origin[1] + dy * 1.08 + (0.0 if dy else -0.07),
                names[axis], fontsize=8, ha='left' if dx else 'left', va='center')


def draw(wrists: np.ndarray, out: Path) -> None:
    views = (('seen from behind', 0, 2, (-0.75, 0.75), (0.0, 1.85)),
             ('seen from the right', 1, 2, (-0.45, 1.05), (0.0, 1.85)),
             ('seen from above', 0, 1, (-0.75, 0.75), (-0.35, 1.0)))
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.2))
    rng = np.random.default_rng(0)
    shown = wrists[rng.choice(len(wrists), size=min(1200, len(wrists)), replace=False)]
    for ax, (title, u, v, xlim, ylim) in zip(axes, views, strict=True):
        _body(ax, u, v)
        for side, colour, name in ((0, LEFT_COLOUR, 'left'), (1, RIGHT_COLOUR, 'right')):
            ax.scatter(shown[:, side, u], shown[:, side, v], s=2, color=colour, alpha=0.12,
                       lw=0, rasterized=True)
            for (lo, hi), dashes in (((WORKSPACE.lower_m[side], WORKSPACE.upper_m[side]), '--'),
                                     ((CORPUS_RANGE_M[side, 0], CORPUS_RANGE_M[side, 1]), '-')):
                ax.add_patch(plt.Rectangle((lo[u], lo[v]), hi[u] - lo[u], hi[v] - lo[v],
                                           fill=False, ls=dashes, lw=0.9, color=colour,
                                           alpha=0.8))
            spot = CANONICAL_WRIST_M[side]
            ax.plot(spot[u], spot[v], 'o', ms=7, mfc='white', mec=colour, mew=2.0)
            if v == 2 and u == 0:
                sign = 1.0 if side else -1.0
                ax.text(spot[u] + 0.2 * sign, spot[v] - 0.2, f'{name} wrist\n({spot[0]:+.2f}, '
                        f'{spot[1]:.2f}, {spot[2]:.2f})', color=colour, fontsize=7,
                        ha='center', va='top')
        _axes_arrows(ax, u, v, (xlim[0] + 0.08, ylim[0] + 0.1))
        ax.set_title(title, fontsize=10)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect('equal')
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.2)
    fig.suptitle('World frame (metres): x right, y forward, z up; the person stands at the '
                 'origin facing +y, left hand first\ndots: corpus wrists; circles: canonical '
                 'wrist spots; solid boxes: corpus range; dashed boxes: workspace (a warning '
                 'outside)', fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out, dpi=85, pil_kwargs={'optimize': True})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clips', type=int, default=300, help='corpus clips measured')
    parser.add_argument('--out', type=Path, default=Path(__file__).with_suffix('.png'))
    args = parser.parse_args()
    wrists = measure(args.clips)
    print(json.dumps(summary(wrists)))
    draw(wrists, args.out)
    print(f'wrote {args.out} ({args.out.stat().st_size / 1000:.0f} kB)')


if __name__ == '__main__':
    main()
