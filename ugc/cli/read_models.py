"""`ugc rebuild` and `ugc projections status|retry|skip`: the operator's hands on the read models."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ugc.cli.common import positive
from ugc.config import Settings


def add_parsers(commands: Any) -> None:
    rebuild = commands.add_parser(
        "rebuild", help="replay read models into new tables beside the live ones, then switch to them (blue/green)"
    )
    rebuild.add_argument("names", nargs="*", help="read-model projection names (default: every read model)")
    rebuild.set_defaults(run=lambda settings, args: _rebuild(settings, args.names), writes=True)

    projections = commands.add_parser("projections", help="see where projections stand; retry or skip parked events")
    sub = projections.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = sub.add_parser("status", help="per projection: position, head, lag, parked events, lease holder")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    retry = sub.add_parser("retry", help="re-apply the parked events of a projection (after fixing the cause)")
    retry.add_argument("name", help="the projection, as `status` names it")
    skip = sub.add_parser("skip", help="give up on the event at POSITION: the projection never applies it")
    skip.add_argument("name", help="the projection, as `status` names it")
    skip.add_argument("position", type=positive, help="the event's position in its log (notification id)")
    skip.add_argument("--log", help="the application log of POSITION (needed when the projection follows several)")
    for writing in (retry, skip):
        writing.set_defaults(writes=True)  # refused on a database whose restore did not finish
    projections.set_defaults(run=_projections)


def _rebuild(settings: Settings, names: Sequence[str]) -> int:
    """Blue/green: new tables built beside the live ones and switched in at the end (the API keeps serving)."""
    from projections.bluegreen import RebuildRunning, rebuild
    from projections.operations import events_after
    from projections.rebuild_progress import RebuildProgress
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner
    from readmodels.waiting import Progress
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        projections = all_projections(settings)
        known = {p.name: p for p in projections if p.read_model}
        side_effects = [name for name in names if name not in known and name in {p.name for p in projections}]
        if side_effects:
            print(f"ugc: {', '.join(side_effects)}: side effects (mail, pushes) are never replayed", file=sys.stderr)
            return 2
        unknown = [name for name in names if name not in known]
        if unknown:
            print(f"ugc: unknown projection(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        ProjectionRunner(db, stores, projections, Progress()).register()
        chosen = [known[name] for name in dict.fromkeys(names or known)]
        total = sum(events_after(stores, application, 0) for p in chosen for application in p.applications)
        label = ", ".join(p.name for p in chosen) if len(chosen) <= 3 else f"{len(chosen)} read models"
        shown = RebuildProgress(label, total, sys.stderr)
        try:
            positions = rebuild(db, stores, chosen, advanced=shown.advance)
        except RebuildRunning as error:
            print(f"ugc: {error}", file=sys.stderr)
            return 1
        finally:
            shown.close()
        shown.finish()
        for projection in chosen:
            at = ", ".join(f"{app} {positions[(projection.name, app)]}" for app in projection.applications)
            print(f"rebuilt {projection.name} (switched at {at})")
    finally:
        stores.close()
        db.close()
    return 0


def _projections(settings: Settings, args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import math

    from projections import operations
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner
    from readmodels.waiting import Progress
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        known = {p.name: p for p in all_projections(settings, stores=stores)}
        ProjectionRunner(db, stores, list(known.values()), Progress()).register()  # every one is listed
        if args.action == "status":
            states = operations.status(db, stores)
            if args.json:
                # A time never known (a lease never held, an event that does not decode) is null: JSON
                # has no Infinity, and json.dumps would write it all the same.
                rows = [{k: None if v == math.inf else v for k, v in dataclasses.asdict(s).items()} for s in states]
                print(json.dumps(rows, default=str, allow_nan=False))
            else:
                print("\n".join([operations.render(states), *operations.parked_errors(db, states)]))
            return 0
        projection = known.get(args.name)
        if projection is None:
            print(f"ugc: unknown projection {args.name!r}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        if args.action == "retry":
            retried = operations.retry(db, stores, projection)
            if not retried.applied and not retried.failed:
                print(f"nothing parked for {args.name}")
            for application, position in retried.applied:
                print(f"applied {application} {position}")
            for application, position, error in retried.failed:
                print(f"still failing {application} {position}: {error}")
            return 1 if retried.failed else 0
        logs = ", ".join(projection.applications)
        if args.log is not None and args.log not in projection.applications:
            print(f"ugc: {args.name} follows no log {args.log!r}; --log is one of: {logs}", file=sys.stderr)
            return 2
        if args.log is None and len(projection.applications) > 1:
            print(f"ugc: {args.name} follows several logs: give --log, one of: {logs}", file=sys.stderr)
            return 2
        chosen: str = args.log or projection.applications[0]
        try:
            operations.skip(db, stores, projection, chosen, args.position)
        except operations.NotSkippable as refused:
            print(f"ugc: {refused}", file=sys.stderr)
            return 2
        print(f"{args.name} will not apply event {args.position} of {chosen}")
        return 0
    finally:
        stores.close()
        db.close()
