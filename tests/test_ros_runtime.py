"""The ROS 2 runtime installs and works: JointState pub/sub between two processes."""

from __future__ import annotations

import json
import subprocess
import textwrap

from ros_env import isolated_ros_env, start_python

TOPIC = '/handx_test/joint_states'
JOINT_NAMES = ['joint_a', 'joint_b', 'joint_c']

PUBLISHER = textwrap.dedent(f"""
    import time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from sensor_msgs.msg import JointState

    rclpy.init()
    node = rclpy.create_node('handx_test_publisher')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    pub = node.create_publisher(JointState, {TOPIC!r}, qos)
    deadline = time.monotonic() + 40.0
    seq = 0
    while time.monotonic() < deadline:
        msg = JointState()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.name = {JOINT_NAMES!r}
        msg.position = [0.1 * seq, -0.2, 0.3]
        pub.publish(msg)
        seq += 1
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
""")

SUBSCRIBER = textwrap.dedent(f"""
    import json
    import time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from sensor_msgs.msg import JointState

    rclpy.init()
    node = rclpy.create_node('handx_test_subscriber')
    received = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    node.create_subscription(JointState, {TOPIC!r}, received.append, qos)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and len(received) < 3:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps([{{'name': list(m.name), 'position': list(m.position)}}
                      for m in received]))
    node.destroy_node()
    rclpy.shutdown()
""")


def test_joint_state_crosses_processes_in_isolated_domain():
    env = isolated_ros_env(seed=7)
    subscriber = start_python(SUBSCRIBER, env)
    publisher = start_python(PUBLISHER, env)
    try:
        out, err = subscriber.communicate(timeout=60)
    finally:
        publisher.kill()
        publisher.communicate()
    assert subscriber.returncode == 0, err
    messages = json.loads(out.strip().splitlines()[-1])
    assert len(messages) >= 3, f'subscriber got {len(messages)} messages; stderr: {err}'
    for message in messages:
        assert message['name'] == JOINT_NAMES
        assert message['position'][1:] == [-0.2, 0.3]
    # Messages arrive in publication order, each with its own sequence value.
    firsts = [m['position'][0] for m in messages]
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)


def test_other_domain_does_not_receive():
    """The isolation is real: a subscriber in another domain hears nothing."""
    env_pub = isolated_ros_env(seed=11)
    env_sub = dict(env_pub)
    env_sub['ROS_DOMAIN_ID'] = str((int(env_pub['ROS_DOMAIN_ID']) % 100) + 1)
    quiet_subscriber = SUBSCRIBER.replace('time.monotonic() + 30.0', 'time.monotonic() + 4.0')
    subscriber = start_python(quiet_subscriber, env_sub)
    publisher = start_python(PUBLISHER, env_pub)
    try:
        out, err = subscriber.communicate(timeout=60)
    finally:
        publisher.kill()
        publisher.communicate()
    assert subscriber.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_library_imports_do_not_load_rclpy():
    code = (
        'import sys, handx_gen, handx_ros, handx_ros.retarget, handx_ros.sim; '
        "assert 'rclpy' not in sys.modules, 'rclpy was imported'; "
        "assert not any(m.endswith('.msg') for m in sys.modules), 'a message package was imported'"
    )
    result = subprocess.run(
        [__import__('sys').executable, '-c', code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
