"""A small in-process cache of values that go stale (people, their policies, their profiles)."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

V = TypeVar("V")


class Expiring(Generic[V]):
    """Values kept ``ttl_s`` seconds.  At ``max_size`` entries the whole cache is dropped: a
    plain bound for caches keyed by person, refilled on the next lookups."""

    def __init__(self, ttl_s: float, max_size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._items: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> tuple[bool, V | None]:
        """``(True, value)`` while ``key``'s value is fresh, else ``(False, None)``."""
        hit = self._items.get(key)
        if hit is None or time.monotonic() - hit[0] >= self.ttl_s:
            return False, None
        return True, hit[1]

    def put(self, key: str, value: V) -> V:
        """Keep ``value`` for ``key`` from now on; returns it."""
        if len(self._items) >= self.max_size and key not in self._items:
            self._items.clear()
        self._items[key] = (time.monotonic(), value)
        return value

    def __len__(self) -> int:
        return len(self._items)
