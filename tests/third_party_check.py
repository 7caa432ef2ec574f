"""Check an order's audit record the way a third party would: the standard library and the README only.

    python third_party_check.py https://host/api/v1/orders/12/history/ --token ACCESS_TOKEN
    python third_party_check.py history.json        # a page, `ugc history order 12 --json`, or a list
    ugc history order 12 --json | python third_party_check.py -

For every entry, oldest first, it recomputes the stream hash per the README ("Audit: the hash
chain"): SHA-256 of the previous entry's hash (32 zero bytes for version 1) and the canonical JSON
of {context, recorded_at, state, stream, topic, version}, where `state` is the entry's `payload`.
It also holds what the entry shows a person (`occurred_at`, `request_id`, the actor, every field of
`data`) to the hashed payload, so an edited line cannot hide behind an intact hash. It prints OK, or
the first mismatch, and exits 0 or 1 (2 when the input cannot be read).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

GENESIS = bytes(32)


def fetch(url: str, token: str | None) -> list[dict[str, Any]]:
    """Every entry of the paginated history at `url`, following `next` to the end."""
    entries: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        request = urllib.request.Request(next_url, headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(request, timeout=30) as answer:
            page = json.load(answer)
        entries += page["results"]
        next_url = page["next"]
    return entries


def entries_of(document: Any) -> list[dict[str, Any]]:
    """The entries of a page (`results`), of the CLI's `--as-of` output (`history`), or a bare list."""
    if isinstance(document, dict) and "history" in document:
        document = document["history"]
    if isinstance(document, dict):
        if document.get("next"):
            raise ValueError("this is one page of several: give the URL, or every entry")
        document = document["results"]
    if not isinstance(document, list):
        raise ValueError("expected a history page, the CLI's JSON, or a list of entries")
    return document


def recorded_time(text: str | None) -> str | None:
    """The recording time as the recipe hashes it: UTC, six fractional digits, `Z`."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(context: str, entry: dict[str, Any]) -> bytes:
    document = {
        "context": context,
        "recorded_at": recorded_time(entry["recorded_at"]),
        "state": entry["payload"],
        "stream": entry["stream"],
        "topic": entry["topic"],
        "version": entry["version"],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def stored_value(value: Any) -> Any:
    """A stored value as a plain one: the library writes Decimals, times and UUIDs as tagged objects."""
    if isinstance(value, dict):
        if set(value) == {"_type_", "_data_"}:
            kind, data = value["_type_"], value["_data_"]
            if kind == "decimal_str":
                return Decimal(data)
            if kind == "datetime_iso":
                return datetime.fromisoformat(data)
            return data
        return {key: stored_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [stored_value(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def shown_differs(entry: dict[str, Any]) -> str | None:
    """What the entry shows that its hashed payload does not say, if anything."""
    stored = json.loads(entry["payload"])
    named = entry["topic"].rsplit(".", 1)[-1]  # ugc.Order.Placed: OrderPlaced; ugc.Order.WorkDelivered: WorkDelivered
    if entry["type"] not in (named, f"Order{named}"):
        return f"type {entry['type']} is not the stored topic {entry['topic']}"
    occurred = datetime.fromisoformat(entry["occurred_at"].replace("Z", "+00:00"))
    if stored_value(stored.get("at")) != occurred:
        return "occurred_at differs from the payload's `at`"
    if stored.get("request_id") != entry["request_id"]:
        return "request_id differs from the payload's"
    actor = stored.get("actor")
    if isinstance(actor, str):  # version 1 stored a number (or nothing): the server derives it
        kind, _, ident = actor.partition(":")
        shown = entry["actor"]
        expected = int(ident) if kind == "user" else (ident or None)
        if (shown["kind"], shown["id"] if kind == "user" else shown["username"]) != (kind, expected):
            return "actor differs from the payload's"
    for name, value in entry["data"].items():
        if name not in stored:
            if value is None:  # a fact a later version added, upcast as unsaid for an older event
                continue
            return f"data.{name} is not in the payload"
        if stored_value(value) != stored_value(stored[name]):  # a shown number, exactly: as a Decimal
            return f"data.{name} differs from the payload's"
    return None


def check(entries: list[dict[str, Any]], context: str) -> str | None:
    """None if every entry verifies; else the first mismatch, named."""
    if not entries:
        return "no entries"
    previous = GENESIS
    for number, entry in enumerate(entries, start=1):
        where = f"version {entry.get('version')} (position {entry.get('position')})"
        if entry.get("version") != number:
            return f"entry {number}: expected version {number}, found {where}: an entry is missing or out of order"
        if entry["previous_hash"] != previous.hex():
            return f"{where}: previous_hash does not match the previous entry's hash"
        digest = hashlib.sha256(previous + canonical(context, entry)).digest()
        if entry["hash"] != digest.hex():
            return f"{where}: hash does not match the recomputed {digest.hex()}"
        differs = shown_differs(entry)
        if differs:
            return f"{where}: {differs}"
        previous = digest
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Recompute the hashes of an order's audit record (stdlib only).")
    parser.add_argument("source", help="the history URL (http[s]://...), a JSON file, or - for stdin")
    parser.add_argument("--token", help="bearer access token for the URL")
    parser.add_argument("--context", default="orders", help="the log's context, hashed in (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.source.startswith(("http://", "https://")):
            entries = fetch(args.source, args.token)
        elif args.source == "-":
            entries = entries_of(json.load(sys.stdin))
        else:
            with open(args.source, encoding="utf-8") as file:
                entries = entries_of(json.load(file))
    except (OSError, ValueError, KeyError) as error:
        print(f"cannot read the history: {error}", file=sys.stderr)
        return 2
    try:
        mismatch = check(entries, args.context)
    except (KeyError, TypeError, ValueError) as error:
        mismatch = f"malformed entry: {error!r}"
    if mismatch:
        print(f"MISMATCH: {mismatch}")
        return 1
    print(f"OK: {len(entries)} entries of stream {entries[0]['stream']}, every hash recomputed and matching")
    return 0


if __name__ == "__main__":
    sys.exit(main())
