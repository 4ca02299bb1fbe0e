"""The cache of people, policies and profiles: fresh values come back, stale ones do not, and
the size stays bounded."""

from __future__ import annotations

from bot.cache import Expiring


def test_a_fresh_value_comes_back_and_a_stale_one_does_not() -> None:
    fresh: Expiring[str | None] = Expiring(ttl_s=60)
    assert fresh.get("alice") == (False, None)
    assert fresh.put("alice", None) is None
    assert fresh.get("alice") == (True, None)  # "nobody" is an answer too
    stale: Expiring[str] = Expiring(ttl_s=0)
    stale.put("alice", "policy-1")
    assert stale.get("alice") == (False, None)


def test_the_cache_is_dropped_when_full_but_not_for_a_key_it_holds() -> None:
    cache: Expiring[int] = Expiring(ttl_s=60, max_size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("b", 3)
    assert len(cache) == 2
    assert cache.get("a") == (True, 1)
    cache.put("c", 4)
    assert len(cache) == 1
    assert cache.get("a") == (False, None)
    assert cache.get("c") == (True, 4)
