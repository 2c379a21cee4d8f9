"""Record ROS 2 topics to an MCAP rosbag2 bag that ``ros2 bag`` reads, and read one back.

:class:`McapRecorder` subscribes to the given topics on an existing node with ``raw=True`` (the
serialized CDR bytes go straight to the file: no deserialization cost) and writes them with
`rosbags <https://gitlab.com/ternaris/rosbags>`_' rosbag2 writer and MCAP storage plugin. The
result is what ``ros2 bag record -s mcap`` produces: a bag folder holding ``metadata.yaml`` and
``<folder name>.mcap``, the MCAP file carrying one ``ros2msg`` schema per message type (the
message definitions are read from the installed ``share/<package>/msg/*.msg`` files, as
rosbag2 does), ``cdr`` channels with the publishers' offered QoS, and rosbag2's metadata
record. ``ros2 bag info/play <folder>`` (or ``<folder>/<folder>.mcap``) and Foxglove open it.

QoS: a subscription must match every publisher of its topic. A best-effort, volatile one does
that but loses the latched ``/handx/sim_report`` (transient-local) and may drop fragments of
large reliable messages, so each topic is subscribed, as ``ros2 bag record`` does, only once its
publishers are discovered, with the strongest profile all of them offer (reliable if all are,
transient-local if all are). A later publisher that the subscription would not match (a
best-effort one on a reliable subscription) makes the recorder subscribe again with the weaker
profile (the messages of the short overlap may be recorded twice). A profile given in ``qos``
is used as is, from the start.

Each message is logged at its receive time (the middleware's reception stamp, wall clock, ns
since the epoch), the publish time field equal to it (rosbags writes one stamp).

:func:`read_mcap` reads a bag folder or a bare ``.mcap`` file (also one whose recording was
killed before :meth:`McapRecorder.close`: it is read front to back, up to where it ends) into
``rclpy`` message objects (``rclpy.serialization.deserialize_message`` with the installed
message classes), so :mod:`handx_ros.conversions` applies to them directly.

``python -m handx_ros.recorder OUTPUT`` records the demo's topics until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shutil
import signal
import struct
import sys
import threading
import time
import warnings
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo, Subscription
from rclpy.timer import Timer
from rclpy.topic_endpoint_info import TopicEndpointInfo
from rosbags.interfaces import (
    Connection,
    Nodetype,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

__all__ = [
    'BAG_VERSION',
    'HANDX_TOPICS',
    'McapRecorder',
    'demo_topics',
    'main',
    'matches_all',
    'mcap_file',
    'message_class',
    'message_typestore',
    'read_mcap',
    'subscription_qos',
    'type_name',
]

# rosbag2 metadata version 8 (Jazzy's; Kilted reads it too). Version 9 stores QoS in a form
# older rosbag2 releases cannot parse.
BAG_VERSION = 8

# Every /handx topic of the demo (DESIGN.md) and its message type.
HANDX_TOPICS: dict[str, str] = {
    '/handx/text_command': 'std_msgs/msg/String',
    '/handx/observed_hands': 'geometry_msgs/msg/PoseArray',
    '/handx/motion': 'trajectory_msgs/msg/MultiDOFJointTrajectory',
    '/handx/hand_markers': 'visualization_msgs/msg/MarkerArray',
    '/handx/robot_trajectory': 'trajectory_msgs/msg/JointTrajectory',
    '/handx/sim_report': 'diagnostic_msgs/msg/DiagnosticArray',
    '/handx/joint_commands': 'sensor_msgs/msg/JointState',
}

# Subscription history depth at least (a burst of large clips must not overwrite unread ones).
MIN_DEPTH = 100


def demo_topics(robot: str | None = None, *, diagnostics: bool = True) -> dict[str, str]:
    """The demo's topics: :data:`HANDX_TOPICS`, ``/diagnostics`` (node health counters) and,
    given a robot, its controller topic ``/<robot>/joint_trajectory``."""
    topics = dict(HANDX_TOPICS)
    if diagnostics:
        topics['/diagnostics'] = 'diagnostic_msgs/msg/DiagnosticArray'
    if robot:
        topics[f'/{robot}/joint_trajectory'] = 'trajectory_msgs/msg/JointTrajectory'
    return topics


# ---------------------------------------------------------------------------------------------
# Message types and definitions


def type_name(message_type: type | str) -> str:
    """``'pkg/msg/Name'`` of a message class (or the name itself, checked)."""
    if isinstance(message_type, str):
        parts = message_type.split('/')
        if len(parts) != 3 or parts[1] != 'msg' or not all(parts):
            raise ValueError(f'message type {message_type!r} is not of the form pkg/msg/Name')
        return message_type
    package = message_type.__module__.split('.')[0]
    if not hasattr(message_type, 'get_fields_and_field_types'):
        raise TypeError(f'{message_type!r} is not a ROS 2 message class')
    return f'{package}/msg/{message_type.__name__}'


def message_class(name: str) -> type:
    """The installed message class of ``'pkg/msg/Name'`` (``pkg.msg.Name``).

    Raises:
        ModuleNotFoundError: The package is not installed.
        AttributeError: The package has no such message.
    """
    package, _, short = type_name(name).split('/')
    module = importlib.import_module(f'{package}.msg')
    try:
        return getattr(module, short)
    except AttributeError:
        raise AttributeError(f'{package}.msg has no message {short!r}') from None


def _share_candidates(package: str) -> Iterator[Path]:
    """Folders that may be ``share/<package>``: the ament index, then the prefix the Python
    package is installed under (``<prefix>/lib/pythonX/site-packages/<package>``)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        yield Path(get_package_share_directory(package))
    except (ImportError, LookupError, OSError):  # not indexed, or no AMENT_PREFIX_PATH
        pass
    spec = importlib.util.find_spec(package)
    origins = [spec.origin] if spec is not None and spec.origin else []
    if spec is not None and spec.submodule_search_locations:
        origins += list(spec.submodule_search_locations)
    for origin in origins:
        for parent in Path(origin).resolve().parents:
            yield parent / 'share' / package
    yield Path(sys.prefix) / 'share' / package


def _installed_definition(name: str) -> str | None:
    """The text of the installed ``share/<pkg>/msg/<Name>.msg``, or None if not found."""
    package, _, short = name.split('/')
    for share in _share_candidates(package):
        path = share / 'msg' / f'{short}.msg'
        if path.is_file():
            return path.read_text(encoding='utf-8')
    return None


def _nested_types(description: tuple[Any, Any]) -> Iterator[str]:
    kind, argument = description
    if kind == Nodetype.NAME:
        yield argument
    elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        yield from _nested_types(argument[0])


def message_typestore(names: Iterable[str]) -> Typestore:
    """A rosbags typestore holding ``names`` and every type they use, parsed from the
    installed ``.msg`` files (what the publishers were built with). Where one is not
    installed, rosbags' definitions of the newest ROS 2 release are used for all.

    Raises:
        KeyError: A type that neither the installation nor rosbags knows.
    """
    names = [type_name(name) for name in names]
    store = get_typestore(Stores.EMPTY)
    pending = list(names)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        text = _installed_definition(name)
        if text is None:
            store = get_typestore(Stores.LATEST)
            missing = sorted(set(names) - set(store.fielddefs))
            if missing:
                raise KeyError(f'no message definition for {missing}: not installed '
                               f'(share/<package>/msg) and unknown to rosbags')
            return store
        types = get_types_from_msg(text, name)
        store.register(types)
        for _, description in types[name][1]:
            pending.extend(_nested_types(description))
    return store


# ---------------------------------------------------------------------------------------------
# QoS


def subscription_qos(offered: Sequence[QoSProfile]) -> QoSProfile:
    """The strongest subscription profile that matches every publisher in ``offered``:
    reliable if all publishers are, transient-local if all are, a history deep enough for
    their latched messages and for bursts (at least :data:`MIN_DEPTH`)."""
    reliable = bool(offered) and all(
        p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(
        p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    depth = max([MIN_DEPTH, *(p.depth for p in offered)])
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def matches_all(requested: QoSProfile, offered: Sequence[QoSProfile]) -> bool:
    """Whether a subscription with ``requested`` connects to every publisher in ``offered``
    (reliability and durability, the two policies :func:`subscription_qos` sets)."""
    for profile in offered:
        if (requested.reliability == ReliabilityPolicy.RELIABLE
                and profile.reliability != ReliabilityPolicy.RELIABLE):
            return False
        if (requested.durability == DurabilityPolicy.TRANSIENT_LOCAL
                and profile.durability != DurabilityPolicy.TRANSIENT_LOCAL):
            return False
    return True


def _bag_time(duration: Any) -> QosTime:
    nanoseconds = int(duration.nanoseconds)
    return QosTime(nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000)


def _bag_qos(profile: QoSProfile) -> Qos:
    """An offered profile in rosbags' form (stored in the bag, used by ``ros2 bag play``)."""
    return Qos(
        history=QosHistory[profile.history.name],
        depth=int(profile.depth),
        reliability=QosReliability[profile.reliability.name],
        durability=QosDurability[profile.durability.name],
        deadline=_bag_time(profile.deadline),
        lifespan=_bag_time(profile.lifespan),
        liveliness=QosLiveliness[profile.liveliness.name],
        liveliness_lease_duration=_bag_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


# ---------------------------------------------------------------------------------------------
# Recording


class McapRecorder:
    """Records ``topics`` seen by ``node`` into a new rosbag2 bag folder ``path`` (MCAP).

    The node must be spun (by the caller's executor): subscriptions and a discovery timer run
    on it, in a callback group of their own. Call :meth:`close` (also a context manager, and
    run on the context's shutdown) to finalize the file: until then the MCAP file has no
    index and ``metadata.yaml`` is not written (a SIGKILL loses what the writer buffers, up
    to 1 MiB of messages). Every requested topic is in the bag, those that nobody published
    with no messages.

    Args:
        node: The node to subscribe with.
        path: The bag folder to create; must not exist.
        topics: Topic name -> message class or ``'pkg/msg/Name'``.
        qos: Fixed subscription profiles for some topics (subscribed at once); the others
            adapt to their publishers (module docstring).
        discovery_period_s: How often new publishers are looked for.

    Attributes:
        counts: Messages written per topic (all requested topics, 0 until one arrives).
        resubscriptions: How many times a subscription was replaced by a weaker one.

    Raises:
        FileExistsError: ``path`` exists (a recording never overwrites).
    """

    def __init__(self, node: Node, path: str | Path, topics: Mapping[str, type | str], *,
                 qos: Mapping[str, QoSProfile] | None = None,
                 discovery_period_s: float = 0.1) -> None:
        if not topics:
            raise ValueError('no topics to record')
        unknown = sorted(set(qos or {}) - set(topics))
        if unknown:
            raise KeyError(f'QoS given for topics not recorded: {unknown}; recorded: '
                           f'{sorted(topics)}')
        self._node = node
        self._logger = node.get_logger().get_child('recorder')
        self._types = {topic: type_name(kind) for topic, kind in topics.items()}
        self._classes = {topic: kind if isinstance(kind, type) else message_class(kind)
                         for topic, kind in topics.items()}
        self._fixed_qos = dict(qos or {})
        self._typestore = message_typestore(self._types.values())
        self._lock = threading.Lock()
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'{self.path} exists; a recording never overwrites')
        self._writer: Writer | None = Writer(self.path, version=BAG_VERSION,
                                             storage_plugin=StoragePlugin.MCAP)
        try:
            self._writer.open()
        except WriterError as error:
            raise FileExistsError(str(error)) from error
        self.mcap_path = self.path / f'{self.path.name}.mcap'
        self._connections: dict[str, Connection] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._warned: set[tuple[str, str]] = set()
        self.counts: dict[str, int] = dict.fromkeys(self._types, 0)
        self.resubscriptions = 0
        self._group = MutuallyExclusiveCallbackGroup()
        self._timer: Timer | None = None
        try:
            for topic, profile in self._fixed_qos.items():
                self._subscribe(topic, profile, [])
            self._timer = node.create_timer(discovery_period_s, self._discover,
                                            callback_group=self._group)
            node.context.on_shutdown(self.close)
            self._discover()
        except BaseException:
            self._abort()
            raise

    # -- public -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._writer is None

    @property
    def subscribed(self) -> dict[str, QoSProfile]:
        """Topic -> the profile it is subscribed with now."""
        with self._lock:
            return {topic: sub.qos_profile for topic, sub in self._subscriptions.items()}

    def matched(self) -> dict[str, int]:
        """Topic -> publishers its subscription is connected to (subscribed topics only)."""
        with self._lock:
            subscriptions = dict(self._subscriptions)
        return {topic: sub.get_publisher_count() for topic, sub in subscriptions.items()}

    def close(self) -> Path:
        """Stop recording and finalize the bag (MCAP index and ``metadata.yaml``); returns the
        bag folder (what :func:`read_mcap` takes). Idempotent; messages arriving after this
        are not recorded."""
        with self._lock:
            writer, self._writer = self._writer, None
            subscriptions, self._subscriptions = list(self._subscriptions.values()), {}
        if writer is None:
            return self.path
        try:
            # Topics no publisher appeared on are listed too, with no messages.
            for topic in self._types.keys() - self._connections.keys():
                self._connections[topic] = writer.add_connection(
                    topic, self._types[topic], typestore=self._typestore)
            writer.close()
        finally:
            # After a shutdown the node may be destroyed already: destroy_* then does nothing.
            if self._timer is not None:
                self._node.destroy_timer(self._timer)
            for subscription in subscriptions:
                self._node.destroy_subscription(subscription)
        self._logger.info(f'recorded {sum(self.counts.values())} messages to {self.mcap_path}')
        return self.path

    def _abort(self) -> None:
        """Undo a construction that failed half-way: no bag is left behind."""
        with self._lock:
            writer, self._writer = self._writer, None
            subscriptions, self._subscriptions = list(self._subscriptions.values()), {}
        for subscription in subscriptions:
            self._node.destroy_subscription(subscription)
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
        if writer is not None:
            writer.abort()
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> McapRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- subscriptions ------------------------------------------------------------------------

    def _publishers(self, topic: str) -> list[TopicEndpointInfo]:
        """The topic's publishers of the recorded type (others warned about once)."""
        expected = self._types[topic]
        publishers = []
        for info in self._node.get_publishers_info_by_topic(topic):
            if info.topic_type != expected:
                self._warn_once(topic, f'type {info.topic_type}',
                                f'{topic}: a publisher of {info.topic_type} is not recorded '
                                f'(recording {expected})')
                continue
            publishers.append(info)
        return publishers

    def _discover(self) -> None:
        if self.closed:
            return
        for topic in self._types:
            if topic in self._fixed_qos:
                continue
            publishers = self._publishers(topic)
            if not publishers:
                continue
            offered = [info.qos_profile for info in publishers]
            current = self._subscriptions.get(topic)
            if current is not None and matches_all(current.qos_profile, offered):
                continue
            if current is not None:
                self.resubscriptions += 1
                self._logger.info(f'{topic}: a publisher the subscription does not match '
                                  'appeared; subscribing again with a weaker profile')
            self._check_hash(topic, publishers)
            self._subscribe(topic, subscription_qos(offered), offered)
            if current is not None:
                self._node.destroy_subscription(current)

    def _subscribe(self, topic: str, profile: QoSProfile, offered: Sequence[QoSProfile]) -> None:
        with self._lock:
            if self._writer is None:
                return
            if topic not in self._connections:
                self._connections[topic] = self._writer.add_connection(
                    topic, self._types[topic], typestore=self._typestore,
                    offered_qos_profiles=[_bag_qos(p) for p in offered])
        subscription = self._node.create_subscription(
            self._classes[topic], topic, partial(self._on_message, topic), profile,
            callback_group=self._group, raw=True,
            event_callbacks=SubscriptionEventCallbacks(
                incompatible_qos=partial(self._on_incompatible, topic)))
        with self._lock:
            closed = self._writer is None
            if not closed:
                self._subscriptions[topic] = subscription
        if closed:  # close() ran meanwhile
            self._node.destroy_subscription(subscription)
            return
        self._logger.debug(f'recording {topic} ({profile.reliability.name.lower()}, '
                           f'{profile.durability.name.lower()})')

    def _on_incompatible(self, topic: str, event: QoSRequestedIncompatibleQoSInfo) -> None:
        """A publisher the subscription cannot match: adapt now (not at the next discovery
        tick), or, for a fixed profile, say so once."""
        if topic in self._fixed_qos:
            policy = event.last_policy_kind.name.lower()
            self._warn_once(topic, f'incompatible {policy}',
                            f'{topic}: a publisher is not recorded: its QoS {policy} does not '
                            'match the fixed subscription profile')
        else:
            self._discover()

    def _check_hash(self, topic: str, publishers: Sequence[TopicEndpointInfo]) -> None:
        """Warn when a publisher's type hash differs from the recorded definition's."""
        ours = self._typestore.hash_rihs01(self._types[topic])
        for info in publishers:
            theirs = str(info.topic_type_hash)
            if theirs != 'INVALID' and theirs != ours:
                self._warn_once(topic, theirs,
                                f'{topic}: publisher type hash {theirs} differs from the '
                                f"recorded definition's {ours}; readers may misdecode it")

    def _warn_once(self, topic: str, key: str, text: str) -> None:
        if (topic, key) not in self._warned:
            self._warned.add((topic, key))
            self._logger.warning(text)

    def _on_message(self, topic: str, data: bytes, info: MessageInfo) -> None:
        stamp_ns = int(info.get('received_timestamp') or 0)
        if stamp_ns <= 0:
            stamp_ns = time.time_ns()
        with self._lock:
            if self._writer is None:
                return
            self._writer.write(self._connections[topic], stamp_ns, data)
            self.counts[topic] += 1


# ---------------------------------------------------------------------------------------------
# Reading


def mcap_file(path: str | Path) -> Path:
    """The MCAP file of a bag folder (named in its ``metadata.yaml``, else its only
    ``*.mcap``), or ``path`` itself when it is one.

    Raises:
        FileNotFoundError: No MCAP file there.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f'no bag folder or MCAP file at {path}')
    metadata = path / 'metadata.yaml'
    if metadata.is_file():
        import yaml

        info = yaml.safe_load(metadata.read_text(encoding='utf-8'))['rosbag2_bagfile_information']
        files = [path / name for name in info.get('relative_file_paths', [])]
        if len(files) == 1 and files[0].suffix == '.mcap' and files[0].is_file():
            return files[0]
    files = sorted(path.glob('*.mcap'))
    if len(files) != 1:
        raise FileNotFoundError(f'expected one .mcap file in {path}, found '
                                f'{[f.name for f in files]}')
    return files[0]


def read_mcap(path: str | Path, topics: Collection[str] | None = None
              ) -> dict[str, list[tuple[float, Any]]]:
    """Topic -> ``[(log time s, message), ...]`` in log-time order, the messages deserialized
    into ``rclpy`` message objects of the installed message packages. Every channel of the
    file is a key (with an empty list if it has no messages); ``topics`` keeps only those.

    The file is read front to back, without its index, so a recording that was killed before
    it was closed gives the messages up to where it ends (with a :class:`RuntimeWarning`).

    Args:
        path: A bag folder or an ``.mcap`` file (rosbag2-style: ``ros2msg`` schemas named
            ``pkg/msg/Name``, ``cdr`` messages).

    Raises:
        FileNotFoundError: No MCAP file at ``path``.
        ValueError: Not an MCAP file, or a channel that is not CDR-encoded ROS 2 messages.
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Footer, Header, Message, Schema
    from mcap.stream_reader import StreamReader

    wanted = None if topics is None else set(topics)
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    classes: dict[int, type] = {}
    recorded: dict[str, list[tuple[float, Any]]] = {}
    file = mcap_file(path)
    started = complete = False
    with file.open('rb') as stream:
        try:
            for record in StreamReader(stream, validate_crcs=True).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                    if wanted is None or record.topic in wanted:
                        recorded.setdefault(record.topic, [])
                elif isinstance(record, Message):
                    channel = channels[record.channel_id]
                    if wanted is not None and channel.topic not in wanted:
                        continue
                    cls = classes.get(channel.id)
                    if cls is None:
                        schema = schemas.get(channel.schema_id)
                        if channel.message_encoding != 'cdr' or schema is None:
                            raise ValueError(f'{channel.topic}: message encoding '
                                             f'{channel.message_encoding!r} is not ROS 2 CDR')
                        cls = classes[channel.id] = message_class(schema.name)
                    recorded[channel.topic].append(
                        (record.log_time * 1e-9, deserialize_message(record.data, cls)))
                elif isinstance(record, Header):
                    started = True
                elif isinstance(record, Footer):
                    complete = True
        except (McapError, struct.error) as error:  # cut short: a record ends with the file
            if not started:
                raise ValueError(f'{file} is not an MCAP file: {error!r}') from error
            problem = f'{type(error).__name__}: {error}'
        else:
            problem = 'no footer'
    if not complete:
        count = sum(len(messages) for messages in recorded.values())
        warnings.warn(f'{file} ends early (was the recording closed?) or is damaged ({problem}); '
                      f'read the {count} messages before that', RuntimeWarning, stacklevel=2)
    for messages in recorded.values():
        messages.sort(key=lambda item: item[0])  # stable: equal stamps keep file order
    return recorded


# ---------------------------------------------------------------------------------------------
# Command line


def _parse_topic(text: str) -> tuple[str, str]:
    topic, sep, kind = text.partition(':')
    if not sep or not topic.startswith('/'):
        raise argparse.ArgumentTypeError(f'{text!r} is not /topic:pkg/msg/Name')
    try:
        return topic, type_name(kind)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(args: Sequence[str] | None = None) -> int:
    """Record until Ctrl-C or SIGTERM, then finalize the bag. Prints the per-topic counts
    (JSON) on exit and, while recording, a progress line on stderr when they change."""
    parser = argparse.ArgumentParser(prog='python -m handx_ros.recorder',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('output', type=Path, help='bag folder to create')
    parser.add_argument('--topic', type=_parse_topic, action='append', default=[],
                        metavar='/TOPIC:PKG/msg/TYPE',
                        help='record this topic (repeatable); default: the demo topics')
    parser.add_argument('--robot', default=None,
                        help='with the default topics: also /<robot>/joint_trajectory')
    parser.add_argument('--progress-s', type=float, default=1.0,
                        help='seconds between progress lines (0: none)')
    options, ros_args = parser.parse_known_args(args)
    topics = dict(options.topic) if options.topic else demo_topics(options.robot)

    # Ctrl-C and SIGTERM set a flag instead of raising inside a callback (a write cut in two
    # would corrupt the chunk being written); the loop then stops and the bag is finalized.
    rclpy.init(args=ros_args, signal_handler_options=SignalHandlerOptions.NO)
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {number: signal.signal(number, stop)
                for number in (signal.SIGINT, signal.SIGTERM)}
    node = rclpy.create_node('handx_recorder')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    recorder = None
    try:
        recorder = McapRecorder(node, options.output, topics)
        shown: tuple[dict[str, int], dict[str, int]] = ({}, {})
        next_report = time.monotonic()
        while rclpy.ok() and not stopping.is_set():
            executor.spin_once(timeout_sec=0.1)
            if options.progress_s > 0 and time.monotonic() >= next_report:
                next_report = time.monotonic() + options.progress_s
                state = (dict(recorder.counts), recorder.matched())
                if state != shown:
                    shown = state
                    print(json.dumps({'counts': state[0], 'matched': state[1]}),
                          file=sys.stderr, flush=True)
    except ExternalShutdownException:
        pass
    except FileExistsError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if recorder is not None:
            recorder.close()
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    if recorder is not None:
        print(json.dumps(recorder.counts), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
