"""A long computation on a thread of its own, with progress and cancel, for a page that must stay live.

    task = Task("key", lambda progress, cancel: work(progress=progress, cancel=cancel))
    task.fraction, task.seconds          # while it runs
    task.cancel()                        # sets the event `work` checks (refine.refine raises Cancelled)
    task.finished.wait(0.25); task.result / task.error

The Compare page keeps one in the session while a refined encode runs, so a rerun (another
widget, the Cancel button) finds it again instead of starting over; nothing in it is shared
between sessions.
"""
from __future__ import annotations

import threading
import time


class Task:
    """`work(progress, cancel)` on a daemon thread: `progress(done, total)` is recorded here,
    `cancel` is a threading.Event; the return value lands in `result`, an exception in `error`."""

    def __init__(self, key: str, work, clock=time.monotonic):
        self.key = key
        self.done, self.total = 0, 0
        self.result, self.error = None, None
        self.finished = threading.Event()
        self._cancel = threading.Event()
        self._clock = clock
        self._t0 = clock()
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True, name=f"task {key[:40]}")
        self._thread.start()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _run(self, work) -> None:
        try:
            self.result = work(self._progress, self._cancel)
        except BaseException as e:  # noqa: BLE001  (handed to the page, which shows it)
            self.error = e
        finally:
            self.finished.set()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def seconds(self) -> float:
        return self._clock() - self._t0
