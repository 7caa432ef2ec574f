"""`ugc verify`'s check of the erasure journal against the database (README: "Personal data and erasure").

The journal is evidence kept outside the database and signed with UGC_AUDIT_KEY, as the checkpoints
are: a line edited or forged by whoever can write the directory no longer carries the signature. A
person it names whom the database does not show erased is an erasure undone: a restore of a backup
taken before it, not followed by `ugc users erase --replay`, or a destroyed data key put back into
the keys table, which no chain covers (or an erasure interrupted, or under way as verify reads).
A person it names whom the database shows erased with answers kept for their keys, or services,
portfolio items, skills or orders still open, is an erasure interrupted after `User.Erased`
(`erasure_leftovers`).
The other way round, a person whose keys an erasure destroyed (their tombstones) and whom no line
names is an erasure the journal lost: its line deleted, or the erasure run with another
UGC_AUDIT_DIR. Every erasure is journaled before its first key goes, so nothing under way is one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ugc.config import Settings
from ugc.platform.log_verify import Finding
from ugc.platform.store import EventStores

if TYPE_CHECKING:
    from commands.accounts import AccountCommands

KIND = "erasure"


def erasure_findings(settings: Settings, stores: EventStores) -> list[Finding]:
    """Every journal line that is not a signed erasure, every journaled person not erased here or erased
    with something still to end (`erasure_leftovers`), and every person erased here whom the journal does not name."""
    from commands.accounts import AccountCommands
    from ugc.cli.erasure_leftovers import left_undone
    from ugc.clock import SystemClock
    from ugc.ids import normalise
    from ugc.platform.database import Database
    from ugc.platform.erasure_journal import read_journal
    from ugc.wiring import password_hasher

    journal = read_journal(settings.audit_dir, settings.audit_keys)
    findings = [Finding(KIND, None, None, None, None, problem) for problem in journal.problems]
    db = Database(settings.database_url)
    try:
        accounts = AccountCommands(stores, db, SystemClock(), hasher=password_hasher(settings))
        findings += _unjournaled(accounts, journal.named)
        for entry in journal.erasures:
            found = accounts.erasure_done(entry.user)
            erased = f"user {entry.user} ({entry.username}), erased by line {entry.line} at {entry.erased_at},"
            if found is None:  # a database restored from before the account: nothing of theirs here
                continue
            if normalise(found[0]) != normalise(entry.username):
                what = f"{erased} is {found[0]} in this database: the journal is of another deployment, or edited"
            elif not found[1]:
                what = (
                    f"{erased} is not erased in the database (their User.Erased missing, or a data key of theirs "
                    "live again): a restore not followed by `ugc users erase --replay`, an erasure interrupted, "
                    "or a destroyed key put back; `ugc users erase --replay` erases them again"
                )
            elif undone := left_undone(stores, db, entry.user):
                what = (
                    f"{erased} still has {'; '.join(undone)}: an erasure interrupted before its end "
                    f"(or an order stored as it ran); `ugc users erase {found[0]} --yes` finishes it"
                )
            else:
                continue
            findings.append(Finding(KIND, "accounts", None, None, None, what))
    finally:
        db.close()
    return findings


def _unjournaled(accounts: AccountCommands, journaled: frozenset[int]) -> list[Finding]:
    """A finding for each person the database shows erased whom no journal line names (a line that is
    not signed with the key names them still, and is a finding of its own)."""
    findings = []
    for user in accounts.erased_users():
        if user in journaled:
            continue
        found = accounts.erasure_done(user)
        username = "?" if found is None else found[0]
        what = (
            f"user {user} ({username}) is erased in this database, but the erasure journal holds no line for "
            "them (deleted from it, or the erasure run with another UGC_AUDIT_DIR): restoring a backup taken "
            "before it would undo it, and `ugc users erase --replay` would not redo it; "
            f"`ugc users erase {username} --yes` journals it again"
        )
        findings.append(Finding(KIND, "accounts", None, None, None, what))
    return findings
