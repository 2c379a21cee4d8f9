"""MCAP recording (handx_ros/recorder.py): a bag that ROS 2 bag tools and other readers accept.

One ROS scenario, in an isolated domain: a publisher process latches a sim report, then the
recorder (``python -m handx_ros.recorder``) starts and must still get it; a best-effort
publisher appears later on a reliable topic and the recorder must re-subscribe to hear both;
after the messages arrive the recorder gets SIGTERM and must leave a finalized bag. The bag is
then read three ways: our reader (rclpy messages), the ``mcap`` reader with ``mcap_ros2``
decoding from the schemas stored in the file (so the message definitions are right), and
rosbags' rosbag2 reader (the folder's ``metadata.yaml``, as ``ros2 bag`` reads it).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ros_env import isolated_ros_env

from handx_ros import recorder
from handx_ros.recorder import (
    HANDX_TOPICS,
    McapRecorder,
    demo_topics,
    matches_all,
    message_class,
    message_typestore,
    read_mcap,
    subscription_qos,
    type_name,
)

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
N = 20  # messages per topic from the main publishers
LATE = 7  # messages from the publisher that appears later
JOINTS = ['left/j0', 'left/j1', 'right/j0']
TOPICS = {
    '/handx/text_command': 'std_msgs/msg/String',
    '/handx/observed_hands': 'geometry_msgs/msg/PoseArray',
    '/handx/sim_report': 'diagnostic_msgs/msg/DiagnosticArray',
    '/handx/joint_commands': 'sensor_msgs/msg/JointState',
}
EXPECTED_COUNTS = {'/handx/text_command': N, '/handx/observed_hands': N,
                   '/handx/sim_report': 1, '/handx/joint_commands': N + LATE}

PUBLISHER = textwrap.dedent(f"""
    import sys
    import rclpy
    from rclpy.qos import (DurabilityPolicy, QoSProfile, ReliabilityPolicy,
                           qos_profile_sensor_data)
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import Pose, PoseArray
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node('recorder_test_publisher')
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    text = node.create_publisher(String, '/handx/text_command', reliable)
    hands = node.create_publisher(PoseArray, '/handx/observed_hands', qos_profile_sensor_data)
    report = node.create_publisher(DiagnosticArray, '/handx/sim_report', latched)
    commands = node.create_publisher(JointState, '/handx/joint_commands', reliable)

    status = DiagnosticStatus(name='handx/sim_gate', hardware_id='allegro', message='pass',
                              values=[KeyValue(key='passed', value='true'),
                                      KeyValue(key='motion_stamp', value='12.5')])
    message = DiagnosticArray(status=[status])
    message.header.stamp.sec = 12
    report.publish(message)  # before the recorder exists: only latching delivers it
    print('latched', flush=True)

    sys.stdin.readline()
    late = node.create_publisher(JointState, '/handx/joint_commands', qos_profile_sensor_data)
    print('late', flush=True)

    sys.stdin.readline()
    for i in range({N}):
        text.publish(String(data=f'prompt {{i}}'))
        poses = PoseArray()
        poses.header.frame_id = 'world'
        poses.poses = [Pose() for _ in range(42)]
        poses.poses[5].position.x = float(i)
        poses.poses[5].position.y = -0.25
        hands.publish(poses)
        commands.publish(JointState(name={JOINTS!r}, position=[0.5 * i, -1.0, 2.0]))
        if i < {LATE}:
            late.publish(JointState(name={JOINTS!r}, position=[-100.0 - i, 0.0, 0.0]))
        rclpy.spin_once(node, timeout_sec=0.01)
    print('sent', flush=True)
    sys.stdin.readline()  # until the test closes stdin: the latched publisher stays
    node.destroy_node()
    rclpy.shutdown()
""")


class Lines:
    """The lines a process writes to one stream, read on a thread, waited for with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(line.rstrip('\n'))
        self._queue.put(None)

    def wait_for(self, accept: Callable[[str], bool], timeout_s: float, what: str) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if accept(line):
                return line
        raise AssertionError(f'timed out waiting for {what}; got:\n' + '\n'.join(self.lines))


    def drain(self, timeout_s: float) -> list[str]:
        """All remaining lines, once the stream has ended."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return self.lines


def progress(line: str) -> dict[str, Any] | None:
    """A progress line of the recorder (JSON with counts and matched publishers)."""
    if not line.startswith('{'):
        return None
    state = json.loads(line)
    return state if 'counts' in state else None


def progress_where(check: Callable[[dict[str, Any]], bool]) -> Callable[[str], bool]:
    def accept(line: str) -> bool:
        state = progress(line)
        return state is not None and check(state)
    return accept


@pytest.fixture(scope='module')
def recording(tmp_path_factory) -> dict[str, Any]:
    """Run the scenario once; returns the bag path, timings and the processes' output."""
    bag = tmp_path_factory.mktemp('rec') / 'demo_bag'
    env = isolated_ros_env(seed=31)
    publisher = subprocess.Popen([sys.executable, '-c', PUBLISHER], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
    rec = None
    try:
        published = Lines(publisher.stdout)
        published.wait_for(lambda line: line == 'latched', 60, 'the latched report')
        start_s = time.time()
        topic_args = [f'--topic={topic}:{kind}' for topic, kind in TOPICS.items()]
        rec = subprocess.Popen(
            [sys.executable, '-m', 'handx_ros.recorder', str(bag), *topic_args,
             '--progress-s', '0.2'],
            env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        status = Lines(rec.stderr)
        status.wait_for(progress_where(lambda s: s['matched'].keys() == TOPICS.keys()
                                       and min(s['matched'].values()) >= 1
                                       and s['counts']['/handx/sim_report'] == 1),
                        60, 'the recorder to match every publisher and get the latched report')
        publisher.stdin.write('late\n')
        publisher.stdin.flush()
        published.wait_for(lambda line: line == 'late', 30, 'the late publisher')
        status.wait_for(progress_where(lambda s: s['matched']['/handx/joint_commands'] == 2),
                        30, 'the recorder to re-subscribe to the late best-effort publisher')
        publisher.stdin.write('send\n')
        publisher.stdin.flush()
        published.wait_for(lambda line: line == 'sent', 30, 'the messages to be sent')
        status.wait_for(progress_where(lambda s: s['counts'] == EXPECTED_COUNTS), 30,
                        f'the recorder to count {EXPECTED_COUNTS}')
        end_s = time.time()
        rec.send_signal(signal.SIGTERM)
        out = rec.stdout.read()
        rec.wait(timeout=30)
        status.drain(timeout_s=10)
        return {'bag': bag, 'start_s': start_s, 'end_s': end_s, 'returncode': rec.returncode,
                'stdout': out, 'status': status}
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        publisher.stdin.close()
        try:
            publisher.wait(timeout=20)
        except subprocess.TimeoutExpired:
            publisher.kill()
            publisher.wait()


def test_recorder_exits_cleanly_on_sigterm_with_final_counts(recording):
    assert recording['returncode'] == 0, recording['status'].lines
    counts = json.loads(recording['stdout'].strip().splitlines()[-1])
    assert counts == EXPECTED_COUNTS
    bag: Path = recording['bag']
    assert sorted(p.name for p in bag.iterdir()) == ['demo_bag.mcap', 'metadata.yaml']
    # No publisher type hash differed from the recorded definitions.
    assert not [line for line in recording['status'].lines if 'type hash' in line]


def test_read_mcap_round_trips_values_in_log_time_order(recording):
    data = read_mcap(recording['bag'])
    assert {topic: len(messages) for topic, messages in data.items()} == EXPECTED_COUNTS
    stamps = [t for messages in data.values() for t, _ in messages]
    # Log time is the receive time: wall clock, while the recorder ran.
    assert recording['start_s'] - 1.0 <= min(stamps) <= max(stamps) <= recording['end_s'] + 1.0
    for messages in data.values():
        times = [t for t, _ in messages]
        assert times == sorted(times)

    assert [m.data for _, m in data['/handx/text_command']] == [f'prompt {i}' for i in range(N)]
    hands = [m for _, m in data['/handx/observed_hands']]
    assert all(type(m).__name__ == 'PoseArray' and len(m.poses) == 42 for m in hands)
    assert sorted(m.poses[5].position.x for m in hands) == [float(i) for i in range(N)]
    assert all(m.poses[5].position.y == -0.25 and m.header.frame_id == 'world' for m in hands)

    (_, report), = data['/handx/sim_report']
    assert report.header.stamp.sec == 12
    assert report.status[0].name == 'handx/sim_gate'
    assert {kv.key: kv.value for kv in report.status[0].values} == {
        'passed': 'true', 'motion_stamp': '12.5'}
    # The latched report was published before the recorder started, and was logged first.
    assert data['/handx/sim_report'][0][0] <= min(t for t, _ in data['/handx/joint_commands'])

    commands = [m for _, m in data['/handx/joint_commands']]
    assert all(list(m.name) == JOINTS for m in commands)
    firsts = sorted(m.position[0] for m in commands)
    assert firsts == sorted([0.5 * i for i in range(N)] + [-100.0 - i for i in range(LATE)])

    only = read_mcap(recording['bag'].parent / 'demo_bag' / 'demo_bag.mcap',
                     topics=['/handx/sim_report'])
    assert list(only) == ['/handx/sim_report'] and len(only['/handx/sim_report']) == 1


def test_read_mcap_reads_a_recording_that_was_not_closed(recording, tmp_path):
    """A recorder killed before close() leaves no index or footer: the messages written
    before the end are still read, with a warning."""
    data = (recording['bag'] / 'demo_bag.mcap').read_bytes()
    truncated = tmp_path / 'killed.mcap'
    truncated.write_bytes(data[:-200])  # the footer and part of the summary gone
    with pytest.warns(RuntimeWarning, match='ends early'):
        messages = read_mcap(truncated)
    assert {topic: len(m) for topic, m in messages.items()} == EXPECTED_COUNTS
    truncated.write_bytes(b'not an mcap file')
    with pytest.raises(ValueError, match='not an MCAP file'):
        read_mcap(truncated)
    for end in (len(data) // 2, 100):  # within the (single) chunk
        truncated.write_bytes(data[:end])
        with pytest.warns(RuntimeWarning, match='ends early'):
            messages = read_mcap(truncated)
        assert all(len(m) <= EXPECTED_COUNTS[topic] for topic, m in messages.items())


def test_mcap_reader_decodes_with_the_stored_schemas(recording):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path = recording['bag'] / 'demo_bag.mcap'
    with path.open('rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        summary = reader.get_summary()
        assert header.profile == 'ros2'
        schemas = {s.id: s for s in summary.schemas.values()}
        assert {s.encoding for s in schemas.values()} == {'ros2msg'}
        channels = {c.topic: c for c in summary.channels.values()}
        assert {topic: schemas[c.schema_id].name for topic, c in channels.items()} == TOPICS
        assert {c.message_encoding for c in channels.values()} == {'cdr'}
        counts = summary.statistics.channel_message_counts
        assert {topic: counts[c.id] for topic, c in channels.items()} == EXPECTED_COUNTS
        # The offered QoS goes with each channel, as rosbag2 stores it (ros2 bag play uses it):
        # the report's publisher was transient-local (durability 1).
        offered = yaml.safe_load(channels['/handx/sim_report'].metadata['offered_qos_profiles'])
        assert [p['durability'] for p in offered] == [1]
        assert [m.name for m in reader.iter_metadata()] == ['rosbag2']

        decoded: dict[str, list[Any]] = {}
        for _, channel, _, message in reader.iter_decoded_messages():
            decoded.setdefault(channel.topic, []).append(message)
    assert [m.data for m in decoded['/handx/text_command']] == [f'prompt {i}' for i in range(N)]
    assert sorted(m.position[0] for m in decoded['/handx/joint_commands']) == sorted(
        [0.5 * i for i in range(N)] + [-100.0 - i for i in range(LATE)])
    assert sorted(m.poses[5].position.x for m in decoded['/handx/observed_hands']) == [
        float(i) for i in range(N)]
    report, = decoded['/handx/sim_report']
    assert report.status[0].hardware_id == 'allegro'


def test_rosbag2_metadata_and_rosbags_reader_agree(recording):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    bag: Path = recording['bag']
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == recorder.BAG_VERSION
    assert info['storage_identifier'] == 'mcap'
    assert info['relative_file_paths'] == ['demo_bag.mcap']
    assert info['message_count'] == sum(EXPECTED_COUNTS.values())
    assert {t['topic_metadata']['name']: t['message_count']
            for t in info['topics_with_message_count']} == EXPECTED_COUNTS
    assert {t['topic_metadata']['name']: t['topic_metadata']['type']
            for t in info['topics_with_message_count']} == TOPICS

    store = get_typestore(Stores.LATEST)
    with Reader(bag) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == TOPICS
        assert reader.message_count == sum(EXPECTED_COUNTS.values())
        texts = [store.deserialize_cdr(raw, c.msgtype).data
                 for c, _, raw in reader.messages()
                 if c.topic == '/handx/text_command']
    assert texts == [f'prompt {i}' for i in range(N)]


CLIENT = textwrap.dedent("""
    import json, sys, time
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from handx_ros.recorder import McapRecorder

    rclpy.init()
    node = rclpy.create_node('recorder_test_client')
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    prompts = node.create_publisher(String, '/handx/text_command', reliable)
    recorder = McapRecorder(node, sys.argv[1],
                            {'/handx/text_command': String,
                             '/handx/joint_commands': 'sensor_msgs/msg/JointState'},
                            qos={'/handx/text_command': reliable})
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + 30
    while prompts.get_subscription_count() < 1 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    for i in range(5):
        prompts.publish(String(data=f'p{i}'))
    while recorder.counts['/handx/text_command'] < 5 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    state = {'counts': dict(recorder.counts), 'subscribed': sorted(recorder.subscribed)}
    rclpy.shutdown()  # finalizes the recording through the context's shutdown callbacks
    state['closed'] = recorder.closed
    state['path'] = str(recorder.close())  # idempotent, returns the bag folder
    print(json.dumps(state))
""")


def test_recorder_in_a_client_records_its_own_prompts_and_closes_on_shutdown(tmp_path):
    """The demo's use: the client node records what it publishes itself; a fixed QoS topic is
    subscribed at once; a topic nobody publishes is still listed; rclpy.shutdown() without
    close() leaves a finalized bag."""
    bag = tmp_path / 'client_bag'
    result = subprocess.run([sys.executable, '-c', CLIENT, str(bag)], cwd=ROOT,
                            env=isolated_ros_env(seed=34), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state == {'counts': {'/handx/text_command': 5, '/handx/joint_commands': 0},
                     'subscribed': ['/handx/text_command'], 'closed': True, 'path': str(bag)}
    data = read_mcap(bag)
    assert [m.data for _, m in data['/handx/text_command']] == [f'p{i}' for i in range(5)]
    assert data['/handx/joint_commands'] == []
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert {t['topic_metadata']['name']: t['message_count']
            for t in info['topics_with_message_count']} == state['counts']


def test_recorder_refuses_to_overwrite(tmp_path):
    existing = tmp_path / 'bag'
    existing.mkdir()
    result = subprocess.run(
        [sys.executable, '-m', 'handx_ros.recorder', str(existing), '--progress-s', '0'],
        env=isolated_ros_env(seed=32), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f'error: {existing} exists' in result.stderr
    assert list(existing.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Pieces that need no ROS traffic


def test_subscription_qos_matches_every_publisher():
    from rclpy.qos import (
        DurabilityPolicy,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_sensor_data,
    )

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    profile = subscription_qos([latched])
    assert profile.reliability == ReliabilityPolicy.RELIABLE
    assert profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert profile.depth == 500
    profile = subscription_qos([latched, reliable])
    assert profile.reliability == ReliabilityPolicy.RELIABLE
    assert profile.durability == DurabilityPolicy.VOLATILE
    assert profile.depth == 500
    profile = subscription_qos([reliable, qos_profile_sensor_data])
    assert profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert profile.depth == recorder.MIN_DEPTH
    for offered in ([latched], [latched, reliable], [reliable, qos_profile_sensor_data]):
        assert matches_all(subscription_qos(offered), offered)
    assert not matches_all(subscription_qos([latched]), [reliable])
    assert not matches_all(subscription_qos([reliable]), [qos_profile_sensor_data])


def test_message_types_resolve_and_definitions_match_the_installed_hashes():
    from sensor_msgs.msg import JointState

    assert type_name(JointState) == 'sensor_msgs/msg/JointState'
    assert message_class('sensor_msgs/msg/JointState') is JointState
    for bad in ('sensor_msgs/JointState', 'sensor_msgs/srv/X', ''):
        with pytest.raises(ValueError, match='pkg/msg/Name'):
            type_name(bad)
    with pytest.raises(AttributeError, match='NoSuchMessage'):
        message_class('sensor_msgs/msg/NoSuchMessage')
    with pytest.raises(TypeError):
        type_name(dict)

    topics = demo_topics('allegro')
    assert set(HANDX_TOPICS) < set(topics) and '/allegro/joint_trajectory' in topics
    store = message_typestore(topics.values())
    share = Path(sys.prefix) / 'share'
    for name in set(topics.values()):
        package, _, short = name.split('/')
        described = json.loads((share / package / 'msg' / f'{short}.json').read_text())
        hashes = {h['type_name']: h['hash_string'] for h in described['type_hashes']}
        # Every type the message uses, and the message itself, hash as the installed ones.
        for used, expected in hashes.items():
            assert store.hash_rihs01(used) == expected, used


def test_recorder_rejects_bad_arguments_before_touching_the_node(tmp_path):
    with pytest.raises(ValueError, match='no topics'):
        McapRecorder(None, tmp_path / 'a', {})  # type: ignore[arg-type]
    with pytest.raises(KeyError, match='/other'):
        McapRecorder(None, tmp_path / 'a', {'/x': 'std_msgs/msg/String'},  # type: ignore[arg-type]
                     qos={'/other': None})  # type: ignore[dict-item]
    assert not (tmp_path / 'a').exists()
