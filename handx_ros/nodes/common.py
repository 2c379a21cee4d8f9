"""What every HandX node shares: counted, rate-limited rejections, health on ``/diagnostics``,
and a ``main`` that shuts down cleanly.

A node never dies on a bad message: it calls :meth:`Rejections.reject` with the topic and the
reason, which counts it, logs at most one line per ``throttle_s`` per topic, and the counts are
published once a second on ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``, the
standard health topic) with every other counter of the node, so tools and tests can see them.
Every subscription callback is wrapped in :meth:`Rejections.guard`: whatever a message makes
it raise (bytes that do not deserialize, a conversion's error, a bug) is counted as that
topic's rejection, and the executor goes on spinning.

A node that dies anyway (an exception out of a timer, say) ends in a halt its consumers can
see: :func:`run_node` calls the node's ``halt()``, if it has one, before the node is
destroyed (the sim node publishes a hold command: the current position, zero velocity).
"""

from __future__ import annotations

import collections
import functools
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from handx_gen.errors import HandxError, MessageError

__all__ = ['DIAGNOSTICS_TOPIC', 'Rejections', 'Unheard', 'counters_from_diagnostics', 'run_node']

DIAGNOSTICS_TOPIC = '/diagnostics'
DIAGNOSTICS_PERIOD_S = 1.0
MAX_REASON_KEYS = 100  # distinct 'topic: reason' counters kept per node


class Rejections:
    """Counted, rate-limited rejections of one node, and its health on ``/diagnostics``.

    Args:
        node: The node (its logger and clock are used).
        throttle_s: At most one log line per topic in this period.
        extra: Called at each publication for more counters (name -> number) to report.
    """

    def __init__(self, node: Node, throttle_s: float = 2.0,
                 extra: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self._node = node
        self._throttle_s = throttle_s
        self._extra = extra
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()  # 'topic: reason' -> n
        self._last_log_s: dict[str, float] = {}
        self._publisher = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                                QoSProfile(depth=10,
                                                           reliability=ReliabilityPolicy.RELIABLE))
        self._timer = node.create_timer(DIAGNOSTICS_PERIOD_S, self.publish)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def reject(self, topic: str, reason: str) -> None:
        """Count a rejected message on ``topic`` and log why (rate-limited per topic).

        Counts are kept per topic and reason (its first line); past :data:`MAX_REASON_KEYS`
        distinct ones, new reasons count under ``'<topic>: other reasons'``, so hostile input
        with ever-changing values cannot grow the counters without bound.
        """
        now = self._node.get_clock().now().nanoseconds * 1e-9
        key = f'{topic}: {_first_line(reason)}'
        with self._lock:
            if key not in self.counts and len(self.counts) >= MAX_REASON_KEYS:
                key = f'{topic}: other reasons'
            self.counts[key] += 1
            total = sum(n for k, n in self.counts.items() if k.startswith(f'{topic}: '))
            last = self._last_log_s.get(topic)
            log = last is None or now - last >= self._throttle_s
            if log:
                self._last_log_s[topic] = now
        if log:
            self._node.get_logger().warning(
                f'rejected a message on {topic} ({total} so far): {reason}')

    def guard(self, topic: str, callback: Callable[..., None]) -> Callable[..., None]:
        """``callback`` for a subscription on ``topic`` that never raises into the executor.

        A :class:`~handx_gen.errors.MessageError` it raises is rejected with its message;
        any other exception is logged with its type and rejected as ``internal error:
        <type>``. Either way the message is counted and the node goes on.
        """
        @functools.wraps(callback)
        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except MessageError as error:
                self.reject(topic, str(error))
            except Exception as error:  # noqa: BLE001  one message must not end the spin
                self._node.get_logger().error(
                    f'a message on {topic} raised unexpectedly: {error!r}')
                self.reject(topic, f'internal error: {type(error).__name__}')

        return guarded

    def publish(self) -> None:
        """Publish the counters now (also done once a second by a timer): ``rejected`` (all),
        ``rejected/<topic>: <reason>`` each, then the node's own counters."""
        status = DiagnosticStatus()
        status.name = self._node.get_fully_qualified_name()
        status.hardware_id = 'handx'
        with self._lock:
            counts = dict(self.counts)
        extra = dict(self._extra()) if self._extra is not None else {}
        status.level = DiagnosticStatus.OK
        status.message = f'{sum(counts.values())} messages rejected'
        status.values = [KeyValue(key='rejected', value=str(sum(counts.values())))]
        status.values += [KeyValue(key=f'rejected/{key}', value=str(n))
                          for key, n in sorted(counts.items())]
        status.values += [KeyValue(key=str(key), value=str(value))
                          for key, value in extra.items()]
        message = DiagnosticArray()
        message.header.stamp = self._node.get_clock().now().to_msg()
        message.status = [status]
        self._publisher.publish(message)


class Unheard:
    """Publishes on a reliable topic and counts what no subscriber was there to receive.

    A volatile publisher hands a message only to the subscriptions matched at that moment:
    one published before discovery has matched the consumer (a node just started, or not
    running at all) is gone without a trace. :meth:`publish` still publishes, and when no
    subscription was matched it counts the message (``count``, reported by the node on
    ``/diagnostics``) and logs a warning naming the topic, at most once per ``throttle_s``.
    The topics stay volatile on purpose: a latched clip would be replayed to a consumer
    that restarts, and a robot must not repeat an old motion because a node came back.

    Args:
        node: The publishing node (its logger and clock are used).
        publisher: The publisher to watch.
        consumer: Who should be listening, for the warning (``'the retargeting node'``).
        throttle_s: At most one warning in this period.
    """

    def __init__(self, node: Node, publisher: Any, consumer: str,
                 throttle_s: float = 2.0) -> None:
        self._node = node
        self._publisher = publisher
        self._consumer = consumer
        self._throttle_s = throttle_s
        self._lock = threading.Lock()
        self._last_log_s: float | None = None
        self.count = 0

    def publish(self, message: Any) -> bool:
        """Publish ``message``; False (counted, warned) when no subscription was matched."""
        heard = self._publisher.get_subscription_count() > 0
        self._publisher.publish(message)
        if heard:
            return True
        now = self._node.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            self.count += 1
            count = self.count
            log = self._last_log_s is None or now - self._last_log_s >= self._throttle_s
            if log:
                self._last_log_s = now
        if log:
            self._node.get_logger().warning(
                f'published on {self._publisher.topic_name} with no subscriber matched '
                f'({count} so far): the message is lost; is {self._consumer} running?')
        return False


def counters_from_diagnostics(message: DiagnosticArray) -> dict[str, dict[str, str]]:
    """Per node name, the key/value pairs of a ``/diagnostics`` message."""
    return {status.name: {kv.key: kv.value for kv in status.values}
            for status in message.status}


def _first_line(text: str, limit: int = 120) -> str:
    line = str(text).splitlines()[0] if str(text) else ''
    return line if len(line) <= limit else line[:limit - 3] + '...'


def _halt(node: Node | None) -> None:
    """Call ``node.halt()`` if it has one, logging (not raising) what that raises."""
    halt = getattr(node, 'halt', None)
    if node is None or halt is None:
        return
    try:
        node.get_logger().fatal('stopping on an unexpected error: halting first')
        halt()
    except Exception as error:  # noqa: BLE001  the original error is the one to raise
        node.get_logger().error(f'halting failed: {error!r}')


def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None,
             threads: int = 1) -> int:
    """Init rclpy, build the node, spin it until Ctrl-C or SIGTERM, and shut down cleanly.

    Stopping never raises inside the node: SIGINT goes to rclpy's handler, which shuts the
    context down and wakes the executor (``spin`` then ends), and on to ours, which only
    notes it; SIGTERM is turned into SIGINT. A ``KeyboardInterrupt`` raised wherever the main
    thread happens to be (a clean-up half done, a worker not yet joined) cannot occur. An
    error while building the node after a stop was asked for is part of stopping; a
    :class:`~handx_gen.errors.HandxError` before that (a bad parameter, an unknown robot: the
    node logs it) gives exit status 1.

    An exception that ends the spin unexpectedly (out of a timer, or anything a callback
    lets through) first calls the node's ``halt()`` method, if it has one, while the node
    can still publish (the sim node's final hold command), then is raised as before
    (traceback, exit status 1). A failing ``halt`` is logged and does not hide the error.

    One executor thread by default: the nodes' callbacks are short (long work runs on their
    worker threads), and rclpy's multi-threaded executor here delayed 100 Hz timer ticks and
    subscriptions by up to 0.5 s at times, where the single-threaded one keeps the streaming
    tick jitter p99 under 3.5 ms. ``threads`` > 1 gives a multi-threaded executor. Returns
    the process exit status.
    """
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        if signum == signal.SIGTERM:
            signal.raise_signal(signal.SIGINT)  # through rclpy's handler, back to this one
        stopping.set()

    # Ours first: rclpy.init installs its SIGINT handler on top and calls ours after its own.
    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=args)
    node = None
    status = 0
    executor = (SingleThreadedExecutor() if threads == 1 else
                MultiThreadedExecutor(num_threads=threads))
    spinning = False
    try:
        node = factory()
        executor.add_node(node)
        spinning = True
        executor.spin()
    except ExternalShutdownException:
        pass
    except HandxError:
        if not stopping.is_set():
            if spinning:
                _halt(node)
                raise
            status = 1  # it cannot start: the node logged why, in one line
    except Exception:
        if not stopping.is_set():
            if spinning:
                _halt(node)
            raise
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return status
