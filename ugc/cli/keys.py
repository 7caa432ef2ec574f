"""`ugc keys rewrap`: UGC_DATA_KEY rotated, with the deployment stopped (README: "Rotating the keys")."""

from __future__ import annotations

import sys
from typing import Any

from ugc.config import Settings


def add_parsers(commands: Any) -> None:
    keys = commands.add_parser("keys", help="rotate the keys kept outside the database")
    key_commands = keys.add_subparsers(dest="action", required=True, metavar="COMMAND")
    rewrap = key_commands.add_parser(
        "rewrap",
        help="re-wrap every personal-data key from UGC_DATA_KEY_PREVIOUS to UGC_DATA_KEY (deployment stopped)",
        description="Re-wraps every person's data key, and the canary, from the key of UGC_DATA_KEY_PREVIOUS "
        "that wraps them now to UGC_DATA_KEY, in one transaction. Refused while any server, projector or "
        "other command uses the database. Run again, it finds the keys wrapped with UGC_DATA_KEY and does "
        "nothing. Erased people's destroyed keys stay destroyed.",
    )
    # It opens the keys with the previous key itself: the start's check with UGC_DATA_KEY would refuse.
    rewrap.set_defaults(run=lambda settings, args: _rewrap(settings), checks_data_key=True)


def _rewrap(settings: Settings) -> int:
    from ugc.platform.data_key_rotation import RewrapRefused, rewrap
    from ugc.platform.serving_lock import alone
    from ugc.platform.store import EventStores

    if not settings.previous_data_keys:
        print(
            "ugc: keys rewrap: UGC_DATA_KEY_PREVIOUS must name the key the data keys are wrapped with now",
            file=sys.stderr,
        )
        return 2
    refused = RewrapRefused(
        "a ugc server, projector or another command (or any other session) uses the database: stop the deployment first"
    )
    try:
        with alone(settings.database_url, refused):
            stores = EventStores(settings.database_url)
            try:
                assert stores.data_keys is not None  # a database URL always has a keys table
                done = rewrap(stores.data_keys, settings.data_key, settings.previous_data_keys)
            finally:
                stores.close()
    except RewrapRefused as error:
        print(f"ugc: keys rewrap: {error}", file=sys.stderr)
        return 2
    if done.keys:
        print(f"re-wrapped {done.keys} data keys with UGC_DATA_KEY: remove UGC_DATA_KEY_PREVIOUS")
    else:
        print("the data keys are wrapped with UGC_DATA_KEY already: nothing to do")
    return 0
