"""Sizes read from serialized messages before they are deserialized.

Deserializing a message builds one Python object per element while holding the GIL: a
hostile ``JointTrajectory`` of a million empty points takes seconds, during which no timer of
the node ticks and no other callback runs. The nodes subscribe to their large topics raw
(``raw=True``: the callback gets the CDR bytes) and first read how many elements the message
declares with :func:`sequence_length`, which costs microseconds; a message that declares too
many is rejected there, and the rest is deserialized on a worker thread or, if small, at
once, through :func:`deserialize`: bytes that are not a whole message of the type (truncated,
random) are a :class:`~handx_gen.errors.MessageError` like any other bad message, never the
``RMWError`` that would end the executor's spin.

Layout (XCDR1, OMG DDS-XTypes 7.4.3; what every ROS 2 RMW writes): a 4-byte encapsulation
header (``00 01`` little endian, ``00 00`` big endian), then the fields in order, each aligned
to its own size relative to the end of that header; a string is a ``uint32`` length (with the
terminating NUL) and its bytes, a sequence a ``uint32`` count and its elements. Every message
read here starts with a ``std_msgs/Header`` (``int32 sec``, ``uint32 nanosec``,
``string frame_id``), then ``string[]`` fields (``joint_names``), then the sequence counted.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, TypeVar

from rclpy.serialization import deserialize_message

from handx_gen.errors import MessageError

__all__ = ['CdrHeader', 'deserialize', 'read_header', 'sequence_length']

Message = TypeVar('Message')

_ENCAPSULATION = {b'\x00\x00': '>', b'\x00\x01': '<'}  # CDR big / little endian


@dataclasses.dataclass(frozen=True)
class CdrHeader:
    """The ``std_msgs/Header`` at the start of a serialized message, and where it ends.

    Attributes:
        order: ``'<'`` (little endian) or ``'>'`` (big endian), for :mod:`struct` and NumPy.
        body: The bytes after the 4-byte encapsulation header (offsets count from here).
        sec: Stamp seconds.
        nanosec: Stamp nanoseconds.
        frame_id: The frame id.
        end: Offset in ``body`` just after the frame id.
    """

    order: str
    body: memoryview
    sec: int
    nanosec: int
    frame_id: str
    end: int

    def uint32(self, offset: int, what: str = 'message') -> tuple[int, int]:
        """The ``uint32`` at ``offset`` (aligned to 4 first) and the offset after it.

        Raises:
            MessageError: Truncated there.
        """
        return _uint32(self.body, offset, self.order, what)


def read_header(data: bytes, *, what: str = 'message') -> CdrHeader:
    """The header of a serialized message that starts with a ``std_msgs/Header``.

    Raises:
        MessageError: Not XCDR1, or truncated inside the header.
    """
    view = _bytes_view(data)
    order = _ENCAPSULATION.get(bytes(view[:2]))
    if order is None:
        raise MessageError(f'{what}: not a CDR-encoded message (encapsulation '
                           f'{bytes(view[:2]).hex() or "missing"})')
    body = view[4:]
    if len(body) < 8:
        raise MessageError(f'{what}: truncated after {len(view)} bytes')
    sec, nanosec = struct.unpack_from(f'{order}iI', body, 0)
    length, start = _uint32(body, 8, order, what)
    end = _skip_string(body, 8, order, what)
    frame_id = bytes(body[start:end]).rstrip(b'\x00').decode('utf-8', errors='replace')
    return CdrHeader(order, body, sec, nanosec, frame_id, end)


def sequence_length(data: bytes, *, string_arrays: int = 0, what: str = 'message',
                    most: int | None = None) -> int:
    """The element count of the first sequence after the header and ``string_arrays``
    ``string[]`` fields of a serialized message (``points`` of a ``JointTrajectory`` or
    ``MultiDOFJointTrajectory`` with ``string_arrays=1``, ``poses`` of a ``PoseArray`` with
    0), read without deserializing.

    Args:
        most: If given, a count above it is an error (``"<what>: expected at most <most>
            points"``).

    Raises:
        MessageError: Not XCDR1, truncated before the count, or more than ``most`` elements.
    """
    header = read_header(data, what=what)
    body, order, offset = header.body, header.order, header.end
    for _ in range(string_arrays):
        count, offset = _uint32(body, offset, order, what)
        if count > len(body):  # each string takes at least 4 bytes: a lie about the count
            raise MessageError(f'{what}: declares {count} strings in {len(body)} bytes')
        for _ in range(count):
            offset = _skip_string(body, offset, order, what)
    count, _ = _uint32(body, offset, order, what)
    if most is not None and count > most:
        raise MessageError(f'{what}: expected at most {most} points, got {count}')
    return count


def deserialize(data: bytes, message_type: type[Message], *, what: str = 'message'
                ) -> Message:
    """``data`` deserialized as ``message_type``.

    Raises:
        MessageError: The bytes are not a whole message of that type (rclpy raises
            ``RMWError``, "failed to deserialize ROS message", for a truncated one; the
            message names the type and the size).
    """
    try:
        return deserialize_message(data, message_type)
    except Exception as error:  # noqa: BLE001  RMWError, or whatever the type support raises
        raise MessageError(f'{what}: cannot deserialize {len(data)} bytes as '
                           f'{_type_name(message_type)} ({type(error).__name__})') from None


def _type_name(message_type: Any) -> str:
    module = getattr(message_type, '__module__', '').split('.')[0]
    return f'{module}/{message_type.__name__}' if module else message_type.__name__


def _bytes_view(data: bytes | bytearray | memoryview) -> memoryview:
    """A byte view of ``data`` (no copy)."""
    return memoryview(data).cast('B')


def _uint32(body: memoryview, offset: int, order: str, what: str) -> tuple[int, int]:
    offset = (offset + 3) & ~3  # aligned to 4
    if offset + 4 > len(body):
        raise MessageError(f'{what}: truncated after {len(body) + 4} bytes')
    return struct.unpack_from(f'{order}I', body, offset)[0], offset + 4


def _skip_string(body: memoryview, offset: int, order: str, what: str) -> int:
    length, offset = _uint32(body, offset, order, what)
    if offset + length > len(body):
        raise MessageError(f'{what}: truncated inside a string of {length} bytes')
    return offset + length
