"""`ugc history`, `ugc events check`, `ugc verify` and `ugc audit checkpoint`: what an auditor runs."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from ugc.cli.common import file_in_the_way, no_checkpoint_room, positive
from ugc.config import Settings
from ugc.platform.numbers import MAX_ID, natural

if TYPE_CHECKING:
    from projections.replay import NotReplayed
    from ugc.platform.log_verify import Finding
    from ugc.platform.store import EventStores

PROGRESS_EVERY = 5.0  # seconds between progress lines when stderr is no terminal


def add_parsers(commands: Any) -> None:
    history = commands.add_parser("history", help="print an aggregate's history from the event log")
    history_of = history.add_subparsers(dest="action", required=True, metavar="KIND")
    order = history_of.add_parser(
        "order",
        help="an order's audit record, oldest event first (what GET /api/v1/orders/ID/history/ answers)",
    )
    order.add_argument("id", help="the order's id")
    order.add_argument(
        "--as-of",
        metavar="VERSION|TIME",
        help="only up to the event with this version, or the last one at or before this ISO 8601 time "
        "(with its time zone); the order as it was then is shown too",
    )
    order.add_argument(
        "--json",
        action="store_true",
        help="the record as the HTTP API writes it: {count, next, previous, results}; with --as-of, "
        '{"order": <GET /api/v1/orders/ID/?as_of=>, "history": <the record>}',
    )
    history.set_defaults(run=lambda settings, args: _history(settings, args.id, args.as_of, as_json=args.json))

    events = commands.add_parser("events", help="inspect the stored log")
    events_commands = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = events_commands.add_parser(
        "check", help="decode stored events with this code and name any that no longer decode (exit 1 if any)"
    )
    scope = check.add_mutually_exclusive_group()
    scope.add_argument("--all", action="store_true", help="every stored event")
    scope.add_argument(
        "--sample",
        type=positive,
        default=1000,
        metavar="N",
        help="N random events of each application's log (default: %(default)s)",
    )
    events.set_defaults(run=lambda settings, args: _check_events(settings, None if args.all else args.sample))

    verify_ = commands.add_parser(
        "verify",
        help="recompute every hash chain, check the streams and every signed checkpoint (exit 1 if anything is wrong)",
    )
    verify_.add_argument("--json", action="store_true", help="machine-readable output")
    # A missing table of data keys is one of its findings, not a refusal to start (`verify`).
    verify_.set_defaults(run=lambda settings, args: verify(settings, as_json=args.json), checks_data_key=True)

    audit = commands.add_parser("audit", help="sign the event logs' heads")
    audit_commands = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    checkpoint = audit_commands.add_parser(
        "checkpoint", help="write a signed checkpoint of every chain's head into UGC_AUDIT_DIR"
    )
    checkpoint.set_defaults(writes=True)  # it would sign the heads of a restore not acknowledged yet
    audit.set_defaults(run=lambda settings, _: _checkpoint(settings))


def _check_events(settings: Settings, sample: int | None) -> int:
    from ugc.platform.log_check import check_log
    from ugc.platform.store import EventStores

    terminal, last = sys.stderr.isatty(), [0.0]

    def progress(done: int, total: int) -> None:
        """A line rewritten in place on a terminal; otherwise a line every few seconds, and the last."""
        if terminal:
            print(f"\rchecked {done} of {total} events", end="", file=sys.stderr)
        elif done == total or time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            print(f"checked {done} of {total} events", file=sys.stderr)

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        checked, findings = check_log(stores, sample=sample, progress=progress)
    finally:
        stores.close()
    if terminal:
        print(file=sys.stderr)
    for finding in findings:
        print(finding)
    print(
        f"{checked} events checked ({'all' if sample is None else f'a sample of up to {sample} per log'}), "
        f"{len(findings)} do not decode"
    )
    return 1 if findings else 0


def _checkpoint(settings: Settings) -> int:
    from datetime import UTC, datetime

    from ugc.platform.checkpoints import write_checkpoint
    from ugc.platform.store import EventStores

    if file_in_the_way("audit checkpoint", settings) or no_checkpoint_room("audit checkpoint", settings):
        return 2
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        path = write_checkpoint(settings.audit_dir, settings.audit_key, stores.chain_heads(), datetime.now(UTC))
    finally:
        stores.close()
    print(f"checkpoint written: {path}")
    return 0


def verify(settings: Settings, *, as_json: bool) -> int:
    import json

    from projections.rebuild_progress import RebuildProgress
    from ugc.cli.erasure_check import erasure_findings
    from ugc.platform.checkpoints_verify import check_checkpoints
    from ugc.platform.log_verify import ChainCheck
    from ugc.platform.store import EventStores

    stores = EventStores(settings.database_url, data_key=settings.data_key)
    findings: list[Finding] = []
    heads: dict[str, int] = {}  # each log's head, as verify found it when it began reading the log
    try:
        keys_lost = _data_keys_lost(stores)
        if keys_lost is not None and not as_json:
            print(keys_lost, flush=True)
        findings += [keys_lost] if keys_lost is not None else []
        checks = [ChainCheck(name, app.recorder, stores.chained(name)) for name, app in stores.applications.items()]
        for check in checks:
            stop = heads[check.context] = check.head()
            shown = RebuildProgress(f"verify {check.context}", check.events_up_to(stop), sys.stderr)
            for finding in check.run(stop, shown.advance):
                findings.append(finding)
                if not as_json:
                    print(finding, flush=True)
            shown.finish()
        checkpoints = check_checkpoints(
            settings.audit_dir, settings.audit_keys, {name: stores.chained(name) for name in stores.applications}
        )
        findings += checkpoints.findings
        past = {check.context: check.events_past for check in checks}
        unvouched = [] if as_json else checkpoints.unvouched(heads, lambda log, after, head: past[log](after, head))
        # A log without its events table has nothing to replay nor users to look up, and without the
        # data keys no account opens: their findings say so, and the replay or the look-up would fail.
        logs_there = keys_lost is None and not any("events" in check.missing for check in checks)
        erasures = erasure_findings(settings, stores) if logs_there else []
        findings += erasures
        differences = _read_model_findings(settings, stores) if logs_there else []
        if not as_json:
            for finding in differences:
                print(finding, flush=True)
        findings += differences
    finally:
        stores.close()
    events = sum(check.checked for check in checks)
    if as_json:
        report = {
            "ok": not findings,
            "events": events,
            "checkpoint": str(checkpoints.furthest) if checkpoints.furthest else None,
            "checkpoints": checkpoints.count,
            "vouched": {
                name: {"head": head, "signed": checkpoints.signed.get(name, 0)} for name, head in heads.items()
            },
            "findings": [finding.as_dict() for finding in findings],
        }
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))  # a read row's times and Decimals
    else:
        for finding in checkpoints.findings + erasures:
            print(finding)
        where = (
            f"checkpoint {checkpoints.furthest.name} (the furthest of {checkpoints.count})"
            if checkpoints.furthest
            else f"{checkpoints.count} checkpoint(s), none signed with UGC_AUDIT_KEY"
            if checkpoints.count
            else f"no checkpoint in {settings.audit_dir} yet"
            if settings.audit_dir.is_dir()
            else f"no checkpoint: UGC_AUDIT_DIR {settings.audit_dir} is a file, not a directory"
            if settings.audit_dir.exists()
            else f"no checkpoint: UGC_AUDIT_DIR {settings.audit_dir} does not exist"
        )
        for line in unvouched:
            print(line)
        print(f"{events} events verified in {len(checks)} logs, {where}: {len(findings)} finding(s)")
    return 1 if findings else 0


def _data_keys_lost(stores: EventStores) -> Finding | None:
    """The finding of a table of data keys gone from under sealed data; None when it is there (or
    nothing is sealed). A UGC_DATA_KEY that does not open the keys ends verify, as every command."""
    from ugc.platform.log_verify import Finding
    from ugc.platform.personal_data import DataKeysMissing

    if stores.data_keys is None:
        return None
    try:
        stores.data_keys.check()
    except DataKeysMissing as lost:
        return Finding("data_keys", "accounts", None, None, None, str(lost))
    return None


def _read_model_findings(settings: Settings, stores: EventStores) -> list[Finding]:
    """Every read table row that differs from a replay of the log into scratch tables, as findings."""
    from projections.compare import compare_read_models
    from projections.rebuild_progress import RebuildProgress
    from projections.registry import all_projections
    from ugc.platform.database import Database
    from ugc.platform.log_verify import Finding

    db = Database(settings.database_url)
    shown: RebuildProgress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal shown
        if shown is None:
            shown = RebuildProgress("verify read models", total, sys.stderr)
        shown.advance(done - shown.done)

    not_replayed: list[NotReplayed] = []
    try:
        differences = compare_read_models(db, stores, all_projections(settings), progress, failed=not_replayed.append)
    finally:
        if shown is not None:
            shown.finish()
        db.close()
    return [_not_replayed_finding(failure) for failure in not_replayed] + [
        Finding(
            kind="read_model",
            context=None,
            position=None,
            stream=None,
            version=None,
            what=difference.describe(),
            detail={
                "projection": difference.projection,
                "table": difference.table,
                "difference": difference.kind,
                "key": difference.key,
                "columns": {c.column: {"live": c.live, "replayed": c.replayed} for c in difference.columns},
            },
        )
        for difference in differences
    ]


def _not_replayed_finding(failure: NotReplayed) -> Finding:
    """An event (or a batch) a read model's replay could not apply, as a finding named by that event."""
    from ugc.platform.log_verify import Finding

    event = failure.event
    return Finding(
        kind="replay",
        context=failure.application,
        position=event.id if event else None,
        stream=str(event.originator_id) if event else None,
        version=event.originator_version if event else None,
        what=failure.describe(),
        detail={
            "projection": failure.projection,
            "topic": event.topic if event else None,
            "after": None if event else failure.after,
            "error": failure.reason,
        },
    )


def _history(settings: Settings, order_text: str, as_of_text: str | None, *, as_json: bool) -> int:
    """The audit record the HTTP API answers (readmodels/audit_record.py), as a table or as its JSON."""
    from api.schemas.orders import render_order
    from readmodels.audit_record import as_table, audit_record
    from readmodels.order_history import BadAsOf, events_as_of, folded, judged_on, order_events, parse_as_of
    from ugc.errors import NotFound
    from ugc.platform.encoding import dumps
    from ugc.platform.recorded_log import RecordedLog, UnreadableEvent
    from ugc.platform.store import EventStores, Orders

    order = natural(order_text)  # any id the orders' BIGINT column holds, as the API's path takes it
    if not order:
        print(
            f"ugc: history: the order id must be a whole number from 1 to {MAX_ID}, not {order_text!r}", file=sys.stderr
        )
        return 2
    try:
        as_of = None if as_of_text is None else parse_as_of(as_of_text)
    except BadAsOf as bad:
        print(f"ugc: history: --as-of {as_of_text!r}: {_AS_OF_PROBLEMS[bad.reason]}", file=sys.stderr)
        return 2
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        events = events_as_of(order_events(RecordedLog(stores, Orders.name), order), as_of)  # one read for both
        entries = audit_record(events)
        state = None if as_of is None else folded(events)
    except NotFound:
        when = "" if as_of is None else f" as of {as_of_text}"
        print(f"ugc: history: no order {order}{when}", file=sys.stderr)
        return 1
    except BadAsOf as bad:
        print(f"ugc: history: --as-of {as_of_text}: order {order} has versions 1 to {bad.latest}", file=sys.stderr)
        return 2
    except UnreadableEvent as unreadable:
        print(
            f"ugc: history: order {order}: {unreadable}: the log was changed outside the application; "
            "`ugc verify` names what",
            file=sys.stderr,
        )
        return 1
    finally:
        stores.close()
    record = {"count": len(entries), "next": None, "previous": None, "results": entries}
    shown = None if state is None or as_of is None else render_order(state, judged_on(as_of, state))
    if as_json:
        sys.stdout.buffer.write(dumps(record if shown is None else {"order": shown, "history": record}) + b"\n")
        sys.stdout.flush()
        return 0
    counted = "1 event" if len(entries) == 1 else f"{len(entries)} events"
    print(f"Order {order}: {counted}" + ("" if as_of is None else f" as of {as_of_text}"))
    print(as_table(entries))
    if shown is not None:
        print(f"\nThe order as of {as_of_text}:")
        print("\n".join(f"  {name:<20} {dumps(value).decode()}" for name, value in shown.items()))
    return 0


_AS_OF_PROBLEMS = {
    "format": "expected a version (1, 2, ...) or an ISO 8601 time such as 2026-06-15T12:00:00Z",
    "timezone": "give the time's zone, e.g. 2026-06-15T12:00:00Z",
}
