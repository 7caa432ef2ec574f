"""Whether a user counts as erased: `User.Erased` is stored, or an erasure destroyed their data keys.

`ugc users erase` destroys the keys first and stores `User.Erased` after (`commands/accounts.py`
`erase`, on purpose: their tombstones refuse anything new sealed for the person). An erasure killed
in between left someone whose personal data was shredded yet whose account read as live: they
signed in, refreshed and were served on their tokens until an operator erased again. So wherever the
system decides who someone is, the tombstones count as much as the event.
"""

from __future__ import annotations

from ugc.accounts import User
from ugc.platform.personal_data import DataKeys


def counts_as_erased(user: User, keys: DataKeys | None) -> bool:
    """`user` erased, or their keys destroyed by an erasure not finished (one read of the keys' table,
    only for a user whose `User.Erased` is not stored; a store with no keys erases nobody)."""
    return bool(user.erased) or (keys is not None and keys.erased(user.number))
