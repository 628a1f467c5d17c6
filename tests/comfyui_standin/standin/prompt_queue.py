"""The prompt queue, the running prompt and the history (ComfyUI's execution.PromptQueue).

Items are `(number, prompt_id, prompt, extra_data, outputs_to_execute)`, run lowest number first.
Every change of the queue (put, take, done, clear, delete) calls `on_change`, which the server turns
into a `status` broadcast. History entries keep their first position when a prompt id is reused.
"""

from __future__ import annotations

import copy
import heapq
import threading
from collections.abc import Callable
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

QueueItem = tuple[Any, str, dict[str, Any], dict[str, Any], list[str]]


class PromptQueue:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._mutex = threading.RLock()
        self._not_empty = threading.Condition(self._mutex)
        self._task_counter = 0
        self._queue: list[QueueItem] = []
        self._running: dict[int, QueueItem] = {}
        self._history: dict[str, dict[str, Any]] = {}
        self._flags: dict[str, Any] = {}

    def put(self, item: QueueItem) -> None:
        with self._mutex:
            heapq.heappush(self._queue, item)
            self._on_change()
            self._not_empty.notify()

    def get(self, timeout: float | None = None) -> tuple[QueueItem, int] | None:
        """The next item and its task id; None when `timeout` passed, or a flag was set, with nothing queued.

        As in ComfyUI, a flag set by `POST /free` only wakes a waiting worker: a prompt queued before it
        wakes is taken first, and the worker reads the flags after running it.
        """
        with self._not_empty:
            while not self._queue:
                self._not_empty.wait(timeout=timeout)
                if timeout is not None and not self._queue:
                    return None
            item = heapq.heappop(self._queue)
            task_id = self._task_counter
            self._running[task_id] = copy.deepcopy(item)
            self._task_counter += 1
            self._on_change()
            return item, task_id

    def task_done(self, task_id: int, history_result: dict[str, Any], status: dict[str, Any]) -> None:
        with self._mutex:
            item = self._running.pop(task_id)
            if len(self._history) > MAXIMUM_HISTORY_SIZE:
                self._history.pop(next(iter(self._history)))
            for key in SENSITIVE_EXTRA_DATA_KEYS:
                item[3].pop(key, None)
            self._history[item[1]] = {
                "prompt": item,
                "outputs": {},
                "status": copy.deepcopy(status),
                **history_result,
            }
            self._on_change()

    def current(self) -> tuple[list[QueueItem], list[QueueItem]]:
        """(running, pending) as they are now."""
        with self._mutex:
            return list(self._running.values()), list(self._queue)

    def tasks_remaining(self) -> int:
        with self._mutex:
            return len(self._queue) + len(self._running)

    def wipe_queue(self) -> None:
        with self._mutex:
            self._queue = []
            self._on_change()

    def delete_queue_item(self, matches: Callable[[QueueItem], bool]) -> bool:
        with self._mutex:
            for index, item in enumerate(self._queue):
                if matches(item):
                    if len(self._queue) == 1:
                        self.wipe_queue()
                    else:
                        self._queue.pop(index)
                        heapq.heapify(self._queue)
                    self._on_change()
                    return True
        return False

    def history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        """All entries (the last `max_items` unless `offset` is given), or `prompt_id`'s ({} if none)."""
        with self._mutex:
            if prompt_id is not None:
                entry = self._history.get(prompt_id)
                return {prompt_id: copy.deepcopy(entry)} if entry is not None else {}
            if offset < 0 and max_items is not None:
                offset = len(self._history) - max_items
            out = {}
            for index, (key, entry) in enumerate(self._history.items()):
                if index >= offset:
                    out[key] = entry
                    if max_items is not None and len(out) >= max_items:
                        break
            return copy.deepcopy(out)

    def wipe_history(self) -> None:
        with self._mutex:
            self._history = {}

    def delete_history_item(self, prompt_id: str) -> None:
        with self._mutex:
            self._history.pop(prompt_id, None)

    def set_flag(self, name: str, value: Any) -> None:
        with self._mutex:
            self._flags[name] = value
            self._not_empty.notify()

    def take_flags(self) -> dict[str, Any]:
        with self._mutex:
            flags, self._flags = self._flags, {}
            return flags
