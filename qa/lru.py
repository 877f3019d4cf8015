"""A thread-safe least-recently-used cache for parses and embeddings that recur across questions.

The eviction is cachetools' `LRUCache`; this adds the lock (cachetools' caches are not thread-safe) and
the get-or-make calls the answerer uses, including a batch one, so that the missing values of several keys
are made in one call (one spaCy `pipe`, one embedding batch).
"""

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

import cachetools

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


class LRUCache(Generic[K, V]):
    """Usage: cache = LRUCache(maxsize=256); cache.get_or_make(key, lambda: expensive(key))"""

    def __init__(self, *, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self._items: cachetools.LRUCache[K, V] = cachetools.LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The cached value for `key`, made (outside the lock) and stored when missing."""
        with self._lock:
            value = self._items.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        made = make()
        self.put(key, made)
        return made

    def get_or_make_many(self, keys: Sequence[K], make_batch: Callable[[list[K]], Sequence[V]]) -> list[V]:
        """The cached values for `keys`, in order; the missing ones are made in one `make_batch` call."""
        found: dict[K, V] = {}
        missing: list[K] = []
        with self._lock:
            for key in dict.fromkeys(keys):
                value = self._items.get(key, _MISSING)
                if value is _MISSING:
                    missing.append(key)
                else:
                    found[key] = value  # type: ignore[assignment]
        if missing:
            made = make_batch(missing)
            with self._lock:
                for key, value in zip(missing, made, strict=True):
                    found[key] = value
                    self._items[key] = value
        return [found[key] for key in keys]

    def get(self, key: K) -> V | None:
        """The cached value for `key`, or None."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        """Store `value` under `key`, dropping the least recently used entry when full."""
        with self._lock:
            self._items[key] = value

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
