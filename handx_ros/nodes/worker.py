"""A bounded queue served by one worker thread: how a node does long work (retargeting or
simulating a clip) off its executor, so its subscriptions and timers stay responsive.

The executor thread offers items with :meth:`QueueWorker.submit` (never blocks: a full queue
answers ``False`` and the node rejects and counts the message); the worker thread hands each
item to ``handle``. Errors are the node's to report: ``on_error`` gets the item and the
exception, and the thread carries on with the next item.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ['QueueWorker']

Item = TypeVar('Item')

_STOP = object()


class QueueWorker(Generic[Item]):
    """One daemon thread working through a bounded FIFO queue.

    Args:
        name: Thread name (shows in debuggers and logs).
        handle: Does the work of one item (on the worker thread).
        on_error: Called on the worker thread with the item and the exception when ``handle``
            raises; the worker goes on with the next item.
        maxsize: Items that may wait (the one being handled not counted), >= 1.
    """

    def __init__(self, name: str, handle: Callable[[Item], None],
                 on_error: Callable[[Item, Exception], None], maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f'maxsize must be >= 1, got {maxsize}')
        self._handle = handle
        self._on_error = on_error
        self._queue: queue.Queue[object] = queue.Queue(maxsize=maxsize)
        self._busy = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Items waiting (not counting the one being handled)."""
        return self._queue.qsize()

    @property
    def busy(self) -> bool:
        """Whether an item is being handled now."""
        return self._busy.is_set()

    def submit(self, item: Item) -> bool:
        """Queue ``item``; ``False`` (and nothing queued) when the queue is full or closed."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Drop what waits, stop after the item being handled, and join the thread.

        Returns:
            Whether the thread ended within ``timeout_s`` (a daemon thread left running does
            not keep the process alive).
        """
        self._closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            self._busy.set()
            try:
                self._handle(item)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001  the thread must outlive any one item
                self._on_error(item, error)  # type: ignore[arg-type]
            finally:
                self._busy.clear()
