"""The caller's own `users` row, waited for while the read model catches up with the accounts log.

A token is checked against the accounts log (`commands/standing.py`), the row is read from the
`users` read model: after a start or a restore, or with the projector of `UGC_PROJECTIONS=external`
behind, a user the log has may not be in the read model yet. Such a caller is not signed out with
401: the read model is waited for up to the log's head, as a command's read-your-writes wait does
(UGC_READ_YOUR_WRITES_TIMEOUT, then 503 with Retry-After). A miss is rare, so only a miss reads the
log; a found row costs the one query it always did.
"""

from __future__ import annotations

import logging

from eventsourcing.utils import get_topic

from api import errors
from api.services import Services
from commands.saving import Appended, stored_so_far
from readmodels.users import get_user
from ugc.accounts import User
from ugc.platform.dialect import Row

log = logging.getLogger(__name__)

# The event that puts a user's row in `users`: only the read models that handle it are waited for.
_ROW_MADE_BY = frozenset({get_topic(User.Registered)})


async def own_user(s: Services, user_id: int) -> Row:
    """The caller's row; 401 if the accounts log no longer has them (or they were erased), 503 if the
    read model does not show them within the read-your-writes timeout."""
    row = await s.run(get_user, s.db, user_id)
    if row is not None:
        return row
    # The standing `guarded` used may be one kept in memory: ask the log itself before waiting.
    if await s.run(s.standings.load, user_id) is None:
        raise errors.unauthorized("invalid_token")
    head = await s.run(stored_so_far, s.accounts.app)
    s.progress.nudge()
    required = Appended(head, dict.fromkeys(head, _ROW_MADE_BY))
    await s.progress.wait_async(s.db, required, s.settings.read_your_writes_timeout)
    row = await s.run(get_user, s.db, user_id)
    if row is None:
        # Reached without the row: no read model follows the log yet (no runner ever ran on this
        # database), or the event that makes the row was parked (`ugc projections status`).
        log.warning("user %s is in the accounts log but not in the users read model", user_id)
        raise errors.unavailable("read_model_lagging")
    return row
