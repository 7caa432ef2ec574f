from ugc.platform.cache import LRU


def test_the_least_recently_used_entry_is_forgotten_first() -> None:
    remembered = LRU[str, int](capacity=2)
    remembered.put("a", 1)
    remembered.put("b", 2)
    assert remembered.get("a") == 1  # "a" is now the most recently used
    remembered.put("c", 3)
    assert remembered.get("b") is None
    assert remembered.get("a") == 1 and remembered.get("c") == 3


def test_put_unless_keeps_the_entry_it_is_told_to_keep() -> None:
    kept = LRU[str, tuple[int, str]](capacity=2)
    kept.put_unless("order", (5, "at head 5"), keep=lambda current: current[0] >= 5)
    assert kept.get("order") == (5, "at head 5")  # nothing there yet: put
    kept.put_unless("order", (3, "at head 3"), keep=lambda current: current[0] >= 3)
    assert kept.get("order") == (5, "at head 5")  # a later one is there: it stays
    kept.put_unless("order", (7, "at head 7"), keep=lambda current: current[0] >= 7)
    assert kept.get("order") == (7, "at head 7")  # an older one is there: replaced
