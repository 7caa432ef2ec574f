from ugc.platform.cache import LRU


def test_the_least_recently_used_entry_is_forgotten_first() -> None:
    remembered = LRU[str, int](capacity=2)
    remembered.put("a", 1)
    remembered.put("b", 2)
    assert remembered.get("a") == 1  # "a" is now the most recently used
    remembered.put("c", 3)
    assert remembered.get("b") is None
    assert remembered.get("a") == 1 and remembered.get("c") == 3
