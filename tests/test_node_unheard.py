"""A message published while nobody listens is counted and warned about, not lost silently."""

from __future__ import annotations

import pytest
from node_harness import RELIABLE, ros_harness
from std_msgs.msg import String

from handx_ros.nodes.common import Unheard

TOPIC = '/handx/test_unheard'


class _Logger:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text: str) -> None:
        self.warnings.append(text)


class _Node:
    """The node's logger recorded; its clock is the real node's."""

    def __init__(self, node) -> None:
        self._node = node
        self.logger = _Logger()

    def get_clock(self):
        return self._node.get_clock()

    def get_logger(self) -> _Logger:
        return self.logger


@pytest.fixture(scope='module')
def ros():
    with ros_harness(seed=617) as harness:
        yield harness


def test_unheard_messages_are_counted_and_warned_once_per_period(ros) -> None:
    node = _Node(ros.client)
    publisher = ros.client.create_publisher(String, TOPIC, RELIABLE)
    unheard = Unheard(node, publisher, 'the listener', throttle_s=60.0)
    for _ in range(3):
        assert unheard.publish(String(data='lost')) is False
    assert unheard.count == 3
    assert len(node.logger.warnings) == 1  # throttled
    warning = node.logger.warnings[0]
    assert TOPIC in warning and 'the listener' in warning and '(1 so far)' in warning

    received: list[str] = []
    ros.client.create_subscription(String, TOPIC, lambda m: received.append(m.data), RELIABLE)
    ros.connect(publisher)
    assert unheard.publish(String(data='heard')) is True
    assert unheard.count == 3
    ros.wait_for(lambda: received == ['heard'], 10.0, 'the heard message')
