"""`ugc users create|list|grant|revoke|erase`: accounts an operator manages, erasure included."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ugc.cli.common import acting_operator, confirmed
from ugc.config import Settings

if TYPE_CHECKING:
    from datetime import datetime

    from commands.accounts import AccountCommands
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

ROLE_CHOICES = ("admin", "auditor")
# Seconds an erasure waits for the read models: for the listing to show every service, portfolio item
# and creator skill of the person (to withdraw them), for the orders to show their open orders (to
# cancel them), then for their rows to be blanked (to vacuum the old versions away).
ERASE_WAIT = 30.0


def add_parsers(commands: Any) -> None:
    users = commands.add_parser("users", help="manage users")
    user_commands = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = user_commands.add_parser("create", help="register a user (the password is read from stdin)")
    create.add_argument("username", help="the new user's username")
    create.add_argument("--email", required=True, help="the user's e-mail address")
    create.add_argument("--first-name", default="", help="first name (default: empty)")
    create.add_argument("--last-name", default="", help="last name (default: empty)")
    create.add_argument(
        "--verified", action="store_true", help="mark the e-mail verified now instead of waiting for the mail's link"
    )
    create.add_argument("--role", choices=ROLE_CHOICES, action="append", default=[], help="grant a role (repeatable)")
    user_commands.add_parser("list", help="list users with their e-mail, verification and roles")
    grant = user_commands.add_parser("grant", help="grant a role to a user")
    grant.add_argument("username", help="the user's username")
    grant.add_argument("role", choices=ROLE_CHOICES, help="the role to grant")
    revoke = user_commands.add_parser("revoke", help="take a role away from a user")
    revoke.add_argument("username", help="the user's username")
    revoke.add_argument("role", choices=ROLE_CHOICES, help="the role to revoke")
    erase = user_commands.add_parser(
        "erase",
        help="erase a person's personal data for good (their data keys are destroyed; orders stay)",
        description="Destroys the data keys that seal the person's e-mail, names, phone, bio and creator "
        "profile in the log, blanks them in the read tables and ends their sessions; withdraws their services, "
        "portfolio and skills and cancels their pending and in-progress orders. Their username, orders, reviews and "
        "messages stay for the other parties and auditors. It cannot be undone.",
    )
    erase.add_argument("username", nargs="?", help="the user's username")
    erase.add_argument("--yes", action="store_true", help="do not ask: erasing cannot be undone")
    erase.add_argument(
        "--replay",
        action="store_true",
        help="after a restore: erase again everyone the erasure journal in UGC_AUDIT_DIR names "
        "and the database does not show erased",
    )
    for writing in (create, grant, revoke, erase):
        writing.set_defaults(writes=True)  # refused on a database whose restore did not finish
    users.set_defaults(run=_users)


def _users(settings: Settings, args: argparse.Namespace) -> int:
    action: str = args.action
    # A read of the users table needs none of the write side's modules below: without their imports
    # `ugc users list` takes 0.31 s instead of 0.51 s on SQLite, 0.41 s instead of 0.65 s on PostgreSQL.
    if action == "list":
        return _list_users(settings)
    from commands.accounts import AccountCommands
    from ugc.clock import SystemClock
    from ugc.errors import Conflict, NotFound
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores
    from ugc.wiring import password_hasher

    if action == "erase" and (args.replay == bool(args.username)):
        print("ugc: users erase: give a USERNAME or --replay (one of them)", file=sys.stderr)
        return 2
    if action == "erase" and not (
        args.replay
        or args.yes
        or confirmed(f"erase {args.username}'s personal data for good? type the username to confirm: ", args.username)
    ):
        print("ugc: users erase: not confirmed; nothing was erased (--yes confirms it)", file=sys.stderr)
        return 2
    password = _read_password() if action == "create" else ""
    if action == "create" and len(password) < 8:
        print("ugc: users create: the password (read from stdin) must be at least 8 characters", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    accounts = AccountCommands(stores, db, SystemClock(), hasher=password_hasher(settings))
    try:
        if action == "create":
            from api.body import checked
            from api.schemas.auth import RegisterIn
            from commands.accounts import Register

            # The rules registration over the API keeps (name characters and scripts, lengths, e-mail).
            given = {"username": args.username, "email": args.email, "password": password}
            body, problems = checked(RegisterIn, given | {"first_name": args.first_name, "last_name": args.last_name})
            if body is None:
                refused = "; ".join(f"{name}: {' '.join(texts)}" for name, texts in problems.items())
                print(f"ugc: users create: {refused}", file=sys.stderr)
                return 2
            new_user = Register(
                body.username, body.email, password, body.first_name, body.last_name, verified=args.verified
            )
            user_id = accounts.register(new_user, acting_operator()).user_id
            for role in args.role:
                accounts.grant_role(args.username, role, acting_operator())
            print(f"created user {args.username} (id {user_id}{', verified' if args.verified else ''})")
        elif action == "erase" and args.replay:
            return replay_erasures(settings, accounts, stores, db)
        elif action == "erase":
            return _erase(settings, accounts, stores, db, args.username, journaled=True)
        elif action == "grant":
            granted = accounts.grant_role(args.username, args.role, acting_operator())
            print(f"granted {args.role} to {args.username}" if granted else f"{args.username} is {args.role} already")
        else:
            revoked = accounts.revoke_role(args.username, args.role, acting_operator())
            print(f"revoked {args.role} from {args.username}" if revoked else f"{args.username} is not {args.role}")
    except NotFound:
        print(f"ugc: no user named {args.username!r}", file=sys.stderr)
        return 1
    except Conflict as error:
        what = "username" if "username" in str(error) else "e-mail"
        print(f"ugc: that {what} is already taken", file=sys.stderr)
        return 1
    finally:
        stores.close()
        db.close()
    return 0


def _erase(
    settings: Settings, accounts: AccountCommands, stores: EventStores, db: Database, username: str, *, journaled: bool
) -> int:
    """Erase one person (README: "Personal data and erasure"); `journaled`: record it in the erasure
    journal first (a replay of the journal does not record it again)."""
    from ugc.platform.erasure_journal import record_erasure

    def journal(user: int, name: str, at: datetime) -> None:
        record_erasure(settings.audit_dir, settings.audit_key, user, name, at)

    erasure = accounts.erase(username, acting_operator(), journal if journaled else None)
    done = "erased" if erasure.newly else "was erased before; finished erasing"
    print(f"{erasure.username} (id {erasure.user_id}) {done}: {erasure.keys_destroyed} data key(s) destroyed")
    ended = _end_dealings(stores, db, erasure.user_id)
    if ended is None:
        return 1
    print(f"{len(ended.services)} service(s) withdrawn")
    print(f"{len(ended.portfolio)} portfolio item(s) withdrawn")
    print(f"{len(ended.skills)} creator skill(s) withdrawn")
    print(f"{len(ended.orders)} order(s) cancelled")
    _clear_old_rows(db, erasure.positions)
    return 0


@dataclass(frozen=True)
class Ended:
    """What step 4 of an erasure ended: the ids of the services, portfolio items and creator skills it
    withdrew and of the orders it cancelled."""

    services: list[int]
    portfolio: list[int]
    skills: list[int]
    orders: list[int]

    def __bool__(self) -> bool:
        return bool(self.services or self.portfolio or self.skills or self.orders)


def _end_dealings(stores: EventStores, db: Database, user_id: int) -> Ended | None:
    """Withdraw the erased person's active services, portfolio items and creator skills and cancel their
    open orders (step 4 of an erasure); None (said on stderr) when the read models did not catch up."""
    from commands.creator_skills import CreatorSkillCommands
    from commands.erased_orders import OrdersUnseen, cancel_orders_of_erased
    from commands.portfolio import PortfolioCommands
    from commands.services import ServiceCommands
    from readmodels.creator_skills import skills_of_creator
    from readmodels.orders import cancellable_of_party
    from readmodels.portfolio import portfolio_of_creator
    from readmodels.services import active_of_creator
    from readmodels.waiting import Progress
    from ugc.clock import SystemClock
    from ugc.errors import Unavailable

    def listed(creator_profile: int, positions: dict[str, int]) -> list[int]:
        Progress().wait(db, positions, ERASE_WAIT)
        return active_of_creator(db, creator_profile)

    try:
        withdrawn = ServiceCommands(stores, db, SystemClock()).withdraw_all(user_id, acting_operator(), listed)
    except Unavailable:
        _not_caught_up("their services are not withdrawn yet")
        return None

    def shown(creator_profile: int, positions: dict[str, int]) -> list[int]:
        Progress().wait(db, positions, ERASE_WAIT)
        return [row["id"] for row in portfolio_of_creator(db, creator_profile)]

    try:
        deleted = PortfolioCommands(stores, db, SystemClock()).withdraw_all(user_id, acting_operator(), shown)
    except Unavailable:
        _not_caught_up(f"{len(withdrawn)} service(s) withdrawn, but their portfolio is not withdrawn yet")
        return None

    def skilled(creator_profile: int, positions: dict[str, int]) -> list[int]:
        Progress().wait(db, positions, ERASE_WAIT)
        return [row["id"] for row in skills_of_creator(db, creator_profile)]

    try:
        removed = CreatorSkillCommands(stores, db, SystemClock()).withdraw_all(user_id, acting_operator(), skilled)
    except Unavailable:
        _not_caught_up(
            f"{len(withdrawn)} service(s) and {len(deleted)} portfolio item(s) withdrawn, "
            "but their skills are not withdrawn yet"
        )
        return None

    def cancellable(user: int, positions: dict[str, int]) -> list[int]:
        Progress().wait(db, positions, ERASE_WAIT)
        return cancellable_of_party(db, user)

    try:
        cancelled = cancel_orders_of_erased(stores.orders, SystemClock(), user_id, acting_operator(), cancellable)
    except OrdersUnseen as unseen:
        ended = (
            f"{len(withdrawn)} service(s), {len(deleted)} portfolio item(s) and {len(removed)} creator skill(s) "
            f"withdrawn and {len(unseen.cancelled)} order(s) cancelled"
        )
        _not_caught_up(f"{ended}, but whether any other order of theirs is still open is not known")
        return None
    return Ended(withdrawn, deleted, removed, cancelled)


def _not_caught_up(what: str) -> None:
    """Say which step of an erasure waits for read models that did not catch up."""
    print(
        f"ugc: users erase: {what}: the read models did not catch up within {ERASE_WAIT:g} s "
        "(are the projections running?); run the erasure again",
        file=sys.stderr,
    )


def replay_erasures(
    settings: Settings, accounts: AccountCommands, stores: EventStores, db: Database, *, restoring: bool = False
) -> int:
    """Erase again every journaled person the database does not show erased (a restored backup from
    before their erasure), and finish the erasure of those it shows erased with services or orders
    still open or a portfolio or skills still shown (a backup taken between `User.Erased` and those steps, or
    an erasure from before they existed): README, "Backups and restores".

    Asked for by hand, UGC_AUDIT_DIR must be a directory: a mistyped one read as an empty journal and
    replayed nothing, exit 0. A restore's replay (`restoring`) finds none where the backup had none."""
    from ugc.ids import normalise
    from ugc.platform.erasure_journal import read_journal

    if not restoring and not settings.audit_dir.is_dir():
        print(
            f"ugc: users erase --replay: UGC_AUDIT_DIR {settings.audit_dir} is no directory: the erasure journal "
            "is kept there; nothing carried out",
            file=sys.stderr,
        )
        return 2
    journal = read_journal(settings.audit_dir, settings.audit_keys)
    failed = bool(journal.problems)
    for problem in journal.problems:
        print(f"ugc: users erase --replay: {problem}; not carried out", file=sys.stderr)
    replayed = finished = 0
    for entry in journal.erasures:
        found = accounts.erasure_done(entry.user)
        if found is None:  # the backup is older than the account: nothing of theirs to erase
            print(f"user {entry.user} ({entry.username}) is not in this database: nothing to erase")
        elif normalise(found[0]) != normalise(entry.username):
            failed = True
            print(
                f"ugc: users erase --replay: line {entry.line} erased user {entry.user} ({entry.username}), but "
                f"user {entry.user} here is {found[0]}: not erased; check which backup this database is",
                file=sys.stderr,
            )
        elif not found[1]:
            replayed += 1
            failed = _erase(settings, accounts, stores, db, entry.username, journaled=False) != 0 or failed
        elif (ended := _end_dealings(stores, db, entry.user)) is None:
            failed = True
        elif (profile := accounts.erase(entry.username, acting_operator()).positions) or ended:
            finished += 1
            print(
                f"{entry.username} (id {entry.user}) was erased before; finished erasing: "
                f"{len(ended.services)} service(s) withdrawn, {len(ended.orders)} order(s) cancelled, "
                f"{len(ended.portfolio)} portfolio item(s) withdrawn, {len(ended.skills)} creator skill(s) withdrawn"
                + (", creator profile marked erased" if profile else "")
            )
    print(f"{len(journal.erasures)} journaled erasure(s), {replayed} carried out again, {finished} finished")
    return 1 if failed else 0


def _clear_old_rows(db: Database, positions: Mapping[str, int]) -> None:
    """Once the read models have blanked the erased person's rows, vacuum away the rows' old versions."""
    from readmodels.waiting import Progress, wait_for
    from ugc.errors import Unavailable

    db.vacuum("idempotency_keys", "refresh_families")
    try:
        wait_for(db, Progress(), positions, ERASE_WAIT)
    except Unavailable:
        # PostgreSQL keeps a row's old versions on its pages until a vacuum; SQLite zeroes them as it goes.
        after = "autovacuum then clears the old rows" if db.dialect == "postgresql" else "SQLite zeroes the old rows"
        print(
            f"the read tables were not blanked within {ERASE_WAIT:.0f} s (are the projections running?): "
            f"they will be when the projections apply the erasure, and {after}",
            file=sys.stderr,
        )
        return
    db.vacuum("users", "creator_profiles")


def _read_password() -> str:
    """The new user's password: a prompt on a terminal, else the first line of stdin (scripts, tests)."""
    if sys.stdin.isatty():
        import getpass

        try:
            return getpass.getpass("password: ")
        except EOFError:  # Ctrl-D: no password, which the length check then refuses
            return ""
    return sys.stdin.readline().rstrip("\n")


def _list_users(settings: Settings) -> int:
    from readmodels.users import list_users
    from ugc.platform.database import Database

    db = Database(settings.database_url)
    try:
        rows = list_users(db)
    finally:
        db.close()
    print(f"{'id':>6}  {'username':<24} {'email':<36} {'verified':<8} roles")
    for row in rows:
        roles = ",".join(row["roles"]) or "-"
        verified = "yes" if row["is_verified"] else "no"
        print(f"{row['id']:>6}  {row['username']:<24} {row['email']:<36} {verified:<8} {roles}")
    print(f"{len(rows)} user(s) (as projected; `ugc serve` or `ugc project` keeps this table)")
    return 0
