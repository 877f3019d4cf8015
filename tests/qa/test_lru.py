"""The answerer's LRU cache: least recently used goes first, batch fills make only what is missing."""

import threading

import pytest

from qa.lru import LRUCache


def test_least_recently_used_is_dropped_first() -> None:
    cache: LRUCache[str, int] = LRUCache(maxsize=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)


def test_get_or_make_makes_once() -> None:
    cache: LRUCache[str, int] = LRUCache(maxsize=4)
    calls: list[str] = []

    def make(key: str) -> int:
        calls.append(key)
        return len(key)

    assert cache.get_or_make("abc", lambda: make("abc")) == 3
    assert cache.get_or_make("abc", lambda: make("abc")) == 3
    assert calls == ["abc"]


def test_get_or_make_many_batches_the_missing_keys_once_each() -> None:
    cache: LRUCache[str, int] = LRUCache(maxsize=8)
    cache.put("a", 1)
    batches: list[list[str]] = []

    def make_batch(keys: list[str]) -> list[int]:
        batches.append(keys)
        return [ord(k) for k in keys]

    assert cache.get_or_make_many(["b", "a", "c", "b"], make_batch) == [ord("b"), 1, ord("c"), ord("b")]
    assert batches == [["b", "c"]]
    assert cache.get_or_make_many(["c", "a"], make_batch) == [ord("c"), 1]
    assert batches == [["b", "c"]]


def test_a_batch_that_returns_the_wrong_count_is_an_error() -> None:
    cache: LRUCache[str, int] = LRUCache(maxsize=8)
    with pytest.raises(ValueError):
        cache.get_or_make_many(["a", "b"], lambda keys: [1])


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache(maxsize=0)


def test_threads_share_it_safely() -> None:
    cache: LRUCache[int, int] = LRUCache(maxsize=64)

    def work(offset: int) -> None:
        for i in range(2000):
            key = (i + offset) % 100
            assert cache.get_or_make(key, lambda key=key: key * 2) == key * 2

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 64
