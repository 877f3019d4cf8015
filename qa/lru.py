"""A small thread-safe least-recently-used cache for parses and embeddings that recur across questions."""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """Usage: cache = LRUCache(maxsize=256); cache.get_or_make(key, lambda: expensive(key))"""

    def __init__(self, *, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self._maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The cached value for `key`, made (outside the lock) and stored when missing."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        self.put(key, value)
        return value

    def get_or_make_many(self, keys: Sequence[K], make_batch: Callable[[list[K]], Sequence[V]]) -> list[V]:
        """The cached values for `keys`, in order; the missing ones are made in one `make_batch` call."""
        found: dict[K, V] = {}
        missing: list[K] = []
        for key in dict.fromkeys(keys):
            cached = self.get(key)
            if cached is None:
                missing.append(key)
            else:
                found[key] = cached
        if missing:
            for key, value in zip(missing, make_batch(missing), strict=True):
                found[key] = value
                self.put(key, value)
        return [found[key] for key in keys]

    def get(self, key: K) -> V | None:
        """The cached value for `key`, or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        """Store `value` under `key`, dropping the least recently used entry when full."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
