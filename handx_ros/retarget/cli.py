"""``handx robots``: list the robot folders and show one robot's joints and keypoints.

::

    handx robots [--json]          # name, kind, description, driven DoF of every folder
    handx robots NAME [--json]     # its joints (URDF and controller names, limits, mimic
                                   # coupling) and which robot frame plays each human keypoint

Joints are listed in trajectory order: a pair's left hand then its right hand; a humanoid's
left arm, right arm, left hand, right hand; each group's mimic joints follow its driven ones.
Errors are :class:`~handx_gen.errors.HandxError` subclasses; ``handx_ros.cli.main`` prints
them as one line.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handx_gen.errors import RobotModelError

if TYPE_CHECKING:  # the robot folders load numpy: imported by the commands
    from handx_ros.retarget.spec import RobotSpec

__all__ = ['reach_warnings', 'register', 'robot_details', 'robot_summaries']


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``robots`` command to the ``handx`` parser."""
    robots = subparsers.add_parser(
        'robots', help="list the retargeting robots, or show one robot's joints",
        description='Without NAME, list the robot folders (name, kind, description, driven '
                    'DoF). With NAME, print its joints (URDF name, controller name, limits, '
                    'mimic coupling) and the robot frame of each human keypoint.')
    robots.add_argument('name', nargs='?', default=None, metavar='NAME',
                        help='a robot folder, e.g. allegro, inspire_right, g1_hands or gr1')
    robots.add_argument('--json', action='store_true', help='print JSON instead of a table')
    robots.set_defaults(func=_run_robots)

    retarget = subparsers.add_parser(
        'retarget', help='retarget a motion clip onto a robot pair or humanoid',
        description='Retarget MOTION.npz (a handx-motion/1 file or any source file `handx '
                    'data inspect` reads) onto a robot folder and write a '
                    'handx-robot-trajectory/1 file: for a pair (allegro, inspire) both hands '
                    'with floating wrists (base_poses), for a humanoid (g1_hands, gr1) arms '
                    'and hands. Every frame records whether it converged; unconverged frames '
                    'are counted on stderr and in the report, never hidden, and so are the '
                    "frames where a humanoid's wrist cannot reach its target.")
    retarget.add_argument('motion', metavar='MOTION.npz',
                          help='a handx-motion/1 file or any supported source file (its kind '
                               'detected)')
    robot = retarget.add_mutually_exclusive_group()
    robot.add_argument('--robot', default=None, metavar='NAME',
                       help='name of an installed pair or humanoid folder (default allegro; '
                            'see `handx robots`); names only, never paths')
    robot.add_argument('--robot-dir', default=None, metavar='DIR',
                       help="path of a robot folder of your own (its robot.yaml; a pair's "
                            'member folders beside it)')
    retarget.add_argument('--out', required=True, metavar='TRAJ.npz',
                          help='where to write the trajectory')
    retarget.add_argument('--objective', default=None,
                          choices=['fingertip', 'keyvector', 'dexpilot'],
                          help="what to match (default: fingertip, or the robot folder's)")
    retarget.add_argument('--backend', default='handx',
                          choices=['handx', 'dex-vector', 'dex-dexpilot'],
                          help='our solver (default) or dex-retargeting for comparison')
    retarget.add_argument('--config', default=None, metavar='YAML',
                          help='retargeter settings (RetargetConfig fields) as YAML')
    retarget.add_argument('--avoid-collisions', action='store_true',
                          help="keep the two hands and each hand's own links apart (pairs; "
                               'a clap then stops short; implies --no-contact)')
    retarget.add_argument('--no-contact', action='store_true',
                          help="don't keep the hands' contacts: by default the wrists are moved "
                               'so that the robot hands touch where the human hands touch '
                               '(0.5 mm overlap) and keep clear elsewhere')
    retarget.add_argument('--report', default=None, metavar='JSON',
                          help='write metrics (errors, limits, collisions, jerk, timing)')
    retarget.add_argument('--no-retime', action='store_true',
                          help="keep the clip's timing even where it is too fast for the robot "
                               '(by default such a clip is played slower along the same joint '
                               "path, within each joint's velocity and acceleration limits)")
    retarget.add_argument('--progress', action='store_true', help='show a progress bar')
    retarget.set_defaults(func=_run_retarget)


def _mm(value: float | None) -> str:
    return '?' if value is None else f'{value * 1e3:.1f} mm'


def robot_summaries() -> list[dict[str, Any]]:
    """One entry per robot folder: ``name``, ``kind``, ``description``, ``dof`` (driven)."""
    from handx_ros.retarget.spec import available_robots, load_robot_spec

    summaries = []
    for name in available_robots():
        spec = load_robot_spec(name)
        summaries.append({'name': name, 'kind': spec.kind.value,
                          'description': spec.description, 'dof': _dof(spec)})
    return summaries


def robot_details(name: str) -> dict[str, Any]:
    """A robot's joints and keypoint maps, as plain data.

    Returns:
        ``name``, ``kind``, ``description``, ``dof``, ``members`` (a pair's folders),
        ``joints`` (each: ``group``, ``urdf_name``, ``controller_name``, ``lower``, ``upper``,
        ``mimic``: ``None`` or ``{joint, multiplier, offset}``) and ``hands`` (each: ``side``,
        ``robot``, ``base_link``, ``wrist``, ``scale``, ``keypoints``).

    Raises:
        RobotModelError: Unknown robot (the message lists the valid ones), a URDF that
            cannot be read, or a spec naming a joint the URDF lacks.
    """
    from handx_ros.retarget.spec import load_robot_spec

    spec = load_robot_spec(name)
    joints: list[dict[str, Any]] = []
    hands: list[dict[str, Any]] = []
    for group, source, driven in _groups(spec):
        joints += _joint_rows(group, source, driven)
    for hand_spec, hand in _hands(spec):
        hands.append({'side': hand.side.name.lower(), 'robot': hand_spec.name,
                      'base_link': hand.base_link, 'wrist': hand.wrist,
                      'scale': hand.scale, 'keypoints': dict(hand.keypoints)})
    return {'name': spec.name, 'kind': spec.kind.value, 'description': spec.description,
            'dof': _dof(spec), 'members': list(spec.members), 'joints': joints,
            'hands': hands}


# ----------------------------------------------------------------------------- command


def _run_retarget(args: argparse.Namespace) -> int:
    import sys

    from handx_gen.config import config_from_yaml
    from handx_gen.data.sources import read_source
    from handx_gen.outputs import check_outputs
    from handx_ros.retarget.bimanual import build_retargeter
    from handx_ros.retarget.report import trajectory_report
    from handx_ros.retarget.retargeter import RetargetConfig
    from handx_ros.retarget.spec import RobotKind, load_robot_folder, load_robot_spec

    check_outputs([('--out', args.out), ('--report', args.report)],
                  [('MOTION.npz', args.motion), ('--config', args.config)])
    config = (config_from_yaml(RetargetConfig, args.config, 'retarget') if args.config
              else RetargetConfig())
    if args.objective is not None:
        config = config.merged({'objective': args.objective})
    spec = (load_robot_folder(args.robot_dir) if args.robot_dir is not None
            else load_robot_spec('allegro' if args.robot is None else args.robot))
    motion = read_source(args.motion)
    retargeter = build_retargeter(spec, config, fps=motion.fps,
                                  avoid_collisions=args.avoid_collisions,
                                  backend=args.backend,
                                  contact=False if args.no_contact or args.avoid_collisions
                                  else None)
    retiming = None
    if args.no_retime:
        trajectory = retargeter.retarget_motion(motion, progress=args.progress)
    else:
        trajectory, retimed, retiming = retargeter.retarget_retimed(motion,
                                                                    progress=args.progress)
    trajectory = trajectory.with_source(motion, args.motion)
    report = trajectory_report(retargeter, trajectory, motion)  # frame for frame
    if retiming is not None:
        trajectory = retimed.with_source(motion, args.motion)
        report['retime'] = retiming.to_dict()
    path = trajectory.save(args.out)
    failed = report['frames'] - report['converged_frames']
    print(f'{path}: {trajectory.num_frames} frames of {spec.name} at {trajectory.fps:g} fps, '
          f'{len(trajectory.joint_names)} joints; fingertip error median '
          f'{report["fingertip_error_median_mm"]:.2f} mm, p95 '
          f'{report["fingertip_error_p95_mm"]:.2f} mm; {_collisions(report)}'
          f'{report["time_p50_ms"]:.2f} ms per frame')
    if report.get('wrist_error_median_mm') is not None:
        print(f'wrist position error median {report["wrist_error_median_mm"]:.2f} mm, max '
              f'{report["wrist_error_max_mm"]:.2f} mm')
    for note in tilt_notes(report.get('reach')):
        print(note)
    for side in trajectory.info.get('absent', []):
        what = 'arm and hand hold' if spec.kind is RobotKind.HUMANOID else 'hand holds'
        print(f'the {side} hand is absent from the clip: its robot {what} a rest pose (joints '
              f'constant, largest change {report["absent_joint_motion_rad"]:.1e} rad); contacts '
              f'between the hands are not kept')
    contact = trajectory.info.get('contact')
    if contact and contact['human_touch_frames']:
        low, high = contact['robot_distance_m_touching']
        print(f'hands touch in {contact["human_touch_frames"]} frames: the robot hands are '
              f'{_mm(low)} to {_mm(high)} apart there (negative: overlapping), the wrists moved '
              f'up to {contact["max_shift_m"] * 1e3:.1f} mm')
    lag = report.get('lag')
    if lag and lag['frames']:
        print(f'{lag["frames"]} frames lag their targets at the velocity limits (longest '
              f'{lag["longest_s"]:.2f} s from {lag["longest_start_s"]:.2f} s; fingertip residual '
              f'up to {lag["max_residual_m"] * 1e3:.1f} mm while lagging)')
    if retiming is not None and retiming.retimed:
        print(retiming.describe())
    elif retiming is not None and retiming.reason:
        print(f'warning: {retiming.describe()}', file=sys.stderr)
    if failed:
        print(f'warning: {failed} of {report["frames"]} frames did not converge (flagged in '
              "the trajectory's converged array)", file=sys.stderr)
    for warning in reach_warnings(report.get('reach'), report['frames']):
        print(f'warning: {warning}', file=sys.stderr)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
        print(f'report: {args.report}')
    return 0


def _collisions(report: dict[str, Any]) -> str:
    """The collision rates of a report for the summary line: 'self-collision 4.0% of frames,
    between hands 0.0%; ' (each hand's links with its own; the two hands). A rate above zero
    never shows as 0.0%."""
    parts = []
    for key, label in (('self_collision_rate', 'self-collision'),
                       ('inter_hand_collision_rate', 'between hands')):
        rate = report.get(key)
        if rate is not None:
            shown = '<0.1%' if 0.0 < rate < 0.0005 else f'{rate:.1%}'
            parts.append(f'{label} {shown}' + ('' if parts else ' of frames'))
    return ', '.join(parts) + '; ' if parts else ''


def tilt_notes(reach: dict[str, Any] | None) -> list[str]:
    """One line per humanoid wrist turned away from its target orientation (``info['reach']``
    with orientation errors): how far at most, when, and on how many frames."""
    lines = []
    for side in ('left', 'right'):
        hand = (reach or {}).get(side)
        if not hand or not hand.get('tilted_frames'):
            continue
        lines.append(f'the {side} wrist is turned up to '
                     f'{math.degrees(hand["max_rotation_error_rad"]):.1f} deg from its target '
                     f'orientation (at {hand["max_rotation_error_s"]:.2f} s; '
                     f'{hand["tilted_frames"]} frames beyond '
                     f'{math.degrees(reach["tilted_rad"]):.1f} deg): out of the arm\'s range, '
                     f'or traded for position (up to {math.degrees(reach["tilt_rad"]):.0f} '
                     'deg)')
    return lines


def reach_warnings(reach: dict[str, Any] | None, frames: int) -> list[str]:
    """One line per humanoid wrist that could not reach its target (``info['reach']``,
    :func:`~handx_ros.retarget.bimanual.reach_summary`); none for floating wrists."""
    lines = []
    for side in ('left', 'right'):
        hand = (reach or {}).get(side)
        if not hand or not hand['frames']:
            continue
        lines.append(f'the {side} wrist cannot reach its target on {hand["frames"]} of '
                     f'{frames} frames (up to {hand["max_error_m"] * 1e3:.1f} mm from it at '
                     f'{hand["max_error_s"]:.2f} s; tolerance '
                     f'{reach["tolerance_m"] * 1e3:.1f} mm); the simulation gate fails such a '
                     'clip')
    return lines


def _run_robots(args: argparse.Namespace) -> int:
    if args.name is None:
        summaries = robot_summaries()
        if args.json:
            print(json.dumps(summaries, indent=2))
        else:
            print(_table(['robot', 'kind', 'dof', 'description'],
                         [[s['name'], s['kind'], str(s['dof']), s['description']]
                          for s in summaries]))
        return 0
    details = robot_details(args.name)
    if args.json:
        print(json.dumps(details, indent=2))
        return 0
    print(f'{details["name"]} ({details["kind"]}, {details["dof"]} DoF): '
          f'{details["description"]}')
    if details['members']:
        print(f'members: {", ".join(details["members"])}')
    rows = []
    for joint in details['joints']:
        mimic = joint['mimic']
        coupling = (f'= {mimic["multiplier"]:g} * {mimic["joint"]} + {mimic["offset"]:g}'
                    if mimic else '')
        rows.append([joint['group'], joint['urdf_name'], joint['controller_name'],
                     f'{joint["lower"]:+.4f}', f'{joint["upper"]:+.4f}', coupling])
    print()
    print(_table(['group', 'URDF joint', 'controller', 'lower', 'upper', 'mimic'], rows))
    for hand in details['hands']:
        print()
        print(f'{hand["side"]} hand ({hand["robot"]}): base {hand["base_link"]}, wrist '
              f'{hand["wrist"]}, scale {hand["scale"]:g}')
        print(_table(['keypoint', 'robot frame'],
                     [[k, v] for k, v in hand['keypoints'].items()], indent='  '))
    return 0


def _table(header: list[str], rows: list[list[str]], indent: str = '') -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ['  '.join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
             .rstrip() for row in [header, *rows]]
    return '\n'.join(indent + line for line in lines)


# ----------------------------------------------------------------------------- joints

def _dof(spec: RobotSpec) -> int:
    return sum(len(arm) for arm in spec.arm_joints) + sum(len(h.joints) for h in spec.hands)


def _hands(spec: RobotSpec) -> list[tuple[RobotSpec, Any]]:
    """(folder spec holding the URDF, hand spec) per hand, left first."""
    from handx_ros.retarget.spec import RobotKind, load_robot_spec

    if spec.kind == RobotKind.PAIR:
        members = [load_robot_spec(m, spec.folder.parent) for m in spec.members]
        return [(member, member.hands[0]) for member in members]
    return [(spec, hand) for hand in spec.hands]


def _groups(spec: RobotSpec) -> list[tuple[str, RobotSpec, tuple[str, ...]]]:
    """(group label, folder spec holding the URDF, driven joints), in trajectory order."""
    groups = [(f'{side} arm', spec, arm)
              for side, arm in zip(('left', 'right'), spec.arm_joints, strict=False)]
    for source, hand in _hands(spec):
        groups.append((f'{hand.side.name.lower()} hand', source, hand.joints))
    return groups


def _joint_rows(group: str, source: RobotSpec, driven: tuple[str, ...]) -> list[dict]:
    from handx_ros.retarget.robot import load_urdf_model

    urdf = load_urdf_model(source)  # Pinocchio model and <mimic> tags, cached
    model = urdf.model
    limits = {}
    for joint_id in range(1, model.njoints):
        joint = model.joints[joint_id]
        if joint.nq == 1:
            limits[model.names[joint_id]] = (float(model.lowerPositionLimit[joint.idx_q]),
                                             float(model.upperPositionLimit[joint.idx_q]))
    names = list(driven) + [m.joint for m in urdf.mimics.values() if m.leader in driven]
    rows = []
    for joint in names:
        if joint not in limits:
            raise RobotModelError(f'robot {source.name!r}: joint {joint!r} is not a movable '
                                  f'joint of {urdf.path.name}; its joints: '
                                  f'{", ".join(sorted(limits))}')
        mimic = urdf.mimics.get(joint)
        rows.append({'group': group, 'urdf_name': joint,
                     'controller_name': source.controller_names.get(joint, joint),
                     'lower': limits[joint][0], 'upper': limits[joint][1],
                     'mimic': None if mimic is None else {
                         'joint': mimic.leader, 'multiplier': mimic.multiplier,
                         'offset': mimic.offset}})
    return rows
