"""In-process harness for node tests: a private ROS context and domain, an executor spinning
the nodes under test in a thread, and a client node that publishes and records."""

from __future__ import annotations

import os
import random
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import rclpy
from rclpy.executors import Executor, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from ros_env import isolated_ros_env

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def inflated_message(make: Callable[[int], Any], count: int) -> bytes:
    """The serialized (little-endian CDR) bytes of ``make(count)``, a message whose last field
    is a sequence of ``count`` equal elements, built from ``make(0)``, ``make(1)`` and
    ``make(2)`` without creating ``count`` Python objects (a hostile 10^6-element message in
    milliseconds; publishers take serialized bytes as they are)."""
    head, one, two = (serialize_message(make(n)) for n in (0, 1, 2))
    assert head[-4:] == struct.pack('<I', 0), 'the sequence is not the last field'
    element = len(two) - len(one)  # one element's bytes (aligned: no padding between)
    return head[:-4] + struct.pack('<I', count) + one[len(head):] + one[-element:] * (count - 1)


def undeserializable(message: Any, count: int = 6, seed: int = 0) -> list[bytes]:
    """Bytes a broken or hostile publisher might send on ``message``'s topic: truncated copies
    of its serialized form, and random bytes with and without a CDR encapsulation header
    (seeded), each checked not to deserialize as its type (so each is one rejection)."""
    data = serialize_message(message)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(count, len(data) - 1)))
    payloads = [data[:n] for n in cuts]
    def noise() -> bytes:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(8, 200)))

    payloads += [noise() for _ in range(count)]
    payloads += [b'\x00\x01\x00\x00' + noise() for _ in range(count)]  # little-endian CDR
    bad = []
    for payload in payloads:
        try:
            deserialize_message(payload, type(message))
        except Exception:  # noqa: BLE001  rclpy's RMWError
            bad.append(payload)
    assert len(bad) >= count, 'too few of the payloads fail to deserialize'
    return bad


def diagnostics_rejected(messages: list[Any], node_name: str) -> int:
    """The newest ``rejected`` count of ``node_name`` in recorded ``/diagnostics`` messages
    (-1 when none)."""
    for message in reversed(messages):
        for status in message.status:
            if status.name == node_name:
                return next(int(kv.value) for kv in status.values if kv.key == 'rejected')
    return -1


class Recorder:
    """Messages received on one topic, in arrival order, with their arrival times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[float, Any]] = []

    def __call__(self, message: Any) -> None:
        with self._lock:
            self._items.append((time.monotonic(), message))

    @property
    def messages(self) -> list[Any]:
        with self._lock:
            return [m for _, m in self._items]

    @property
    def timed(self) -> list[tuple[float, Any]]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Harness:
    """The context, the executor thread and the client node of one test module."""

    def __init__(self, context: rclpy.Context, executor: Executor) -> None:
        self.context = context
        self.executor = executor
        self.client = Node('handx_test_client', context=context)
        executor.add_node(self.client)

    def add(self, node: Node) -> Node:
        self.executor.add_node(node)
        return node

    def remove(self, node: Node) -> None:
        self.executor.remove_node(node)
        close = getattr(node, 'close', None)
        if close is not None:
            close()
        node.destroy_node()

    def publisher(self, message_type: type, topic: str, qos: QoSProfile = RELIABLE) -> Any:
        return self.client.create_publisher(message_type, topic, qos)

    def record(self, message_type: type, topic: str, qos: QoSProfile = RELIABLE) -> Recorder:
        recorder = Recorder()
        self.client.create_subscription(message_type, topic, recorder, qos)
        return recorder

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout_s: float = 20.0,
                 what: str = 'condition') -> Any:
        """Poll ``predicate`` until it is truthy (returned) or fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f'timed out after {timeout_s} s waiting for {what}')

    def connect(self, publisher: Any, timeout_s: float = 20.0) -> None:
        """Wait until ``publisher`` has a subscriber (discovery done)."""
        self.wait_for(lambda: publisher.get_subscription_count() > 0, timeout_s,
                      f'a subscriber on {publisher.topic_name}')


@contextmanager
def ros_harness(seed: int, threads: int = 1) -> Iterator[Harness]:
    """A private domain on localhost (as :func:`ros_env.isolated_ros_env`), a context and an
    executor (single-threaded, or multi-threaded with ``threads`` > 1) spinning in a daemon
    thread until the block ends.

    Single-threaded by default: rclpy's multi-threaded executor here leaves timers unserved
    for up to a second at times (the sim node's 100 Hz timer fell to 5-20 Hz for seconds).
    """
    env = isolated_ros_env(seed)
    saved = {key: os.environ.get(key) for key in
             ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOCALHOST_ONLY')}
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = env['ROS_AUTOMATIC_DISCOVERY_RANGE']
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    executor: Executor = (SingleThreadedExecutor(context=context) if threads == 1 else
                          MultiThreadedExecutor(num_threads=threads, context=context))
    thread = threading.Thread(target=executor.spin, daemon=True)
    harness = Harness(context, executor)
    thread.start()
    try:
        yield harness
    finally:
        nodes = list(executor.get_nodes())
        executor.shutdown()
        thread.join(10.0)
        for node in nodes:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
