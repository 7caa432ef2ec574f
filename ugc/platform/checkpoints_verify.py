"""`ugc verify`'s check of the signed checkpoints against the chains as they stand.

A checkpoint signs each log's head (position and link) at a moment; the chains must still hold every
link signed, and no chain may end before a head signed. What no checkpoint vouches for yet (events past
the furthest signed head) is reported too: a cut or a consistent rewrite there would not show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ugc.platform.chain import ChainedLog
from ugc.platform.checkpoints import PREFIX, file_name, read_checkpoint
from ugc.platform.dialect import no_such_table
from ugc.platform.log_verify import UNREADABLE, Finding


@dataclass(frozen=True)
class CheckpointsChecked:
    """What `check_checkpoints` read: how many files, the furthest (its signed heads the highest), its
    findings, and per context the furthest position any of them signed (absent: none signed one)."""

    count: int
    furthest: Path | None
    findings: list[Finding]
    signed: dict[str, int]

    def unvouched(self, heads: Mapping[str, int], count: Callable[[str, int, int], int | None]) -> list[str]:
        """A line per log holding events past the furthest signed head: what no checkpoint vouches for.

        Those events can be cut off, or rewritten with the chain recomputed (it needs no key), without
        a trace; only a checkpoint signed later, or one kept elsewhere, would show it. `count(context,
        signed, head)` says how many events lie past `signed` up to `head` (None when it cannot tell): the
        positions alone mislead, as a restore moves a log's next position far on (a gap of 10^14 that
        holds no event: `restore_floors.py`)."""
        lines = []
        for context, head in heads.items():
            signed = self.signed.get(context, 0)
            if head > signed:
                span = f"position {head}" if head == signed + 1 else f"positions {signed + 1}-{head}"
                since = f"the furthest signed head is {signed}" if signed else "none signed a head of this log"
                events = count(context, signed, head)
                what = f"{span} yet ({since})"
                if events is not None:
                    what = f"the last {_events(events)} yet ({span}; {since})"
                lines.append(f"{context}: no checkpoint vouches for {what}: a cut or a rewrite there would not show")
        return lines


def _events(count: int) -> str:
    return "event" if count == 1 else f"{count:,} events"


def check_checkpoints(directory: Path, keys: tuple[str, ...], chains: Mapping[str, ChainedLog]) -> CheckpointsChecked:
    """Every checkpoint in `directory` against the chains now: its signature, each link it signed
    still at its position, and no chain's head behind any head it signed.

    Every one, not the one named latest: the names follow the clock of the process that wrote them,
    and one written while that clock ran fast sorted after those signed since and hid, behind its
    older heads, the log cut off below theirs. What a checkpoint signs is what orders them. Each
    distinct (context, position) is looked up once: the checkpoints of a quiet log repeat one head.
    """
    paths = sorted(directory.glob(f"{PREFIX}*.json")) if directory.is_dir() else []
    findings: list[Finding] = []
    # Per context, per signed position, each link signed there and the first checkpoint that did.
    signed: dict[str, dict[int, dict[bytes, Path]]] = {}
    furthest: tuple[int, Path] | None = None
    for path in paths:
        try:
            checkpoint = read_checkpoint(path, keys)
        except ValueError as error:
            findings.append(Finding("checkpoint", None, None, None, None, str(error)))
            continue
        if not checkpoint.signed:
            what = f"{path.name}: the signature does not match UGC_AUDIT_KEY (altered, or signed with another key)"
            findings.append(Finding("checkpoint", None, None, None, None, what))
            continue
        if path.name != file_name(checkpoint.written_at):
            what = (
                f"{path.name} signs the time {checkpoint.written_at}, which names another file: renamed, or "
                "overwritten with another checkpoint (a newer one rolled back to an older one's content?)"
            )
            findings.append(Finding("checkpoint", None, None, None, None, what))
        for context, head in checkpoint.heads.items():
            if context not in chains:
                findings.append(
                    Finding("checkpoint", context, None, None, None, f"{path.name} names an unknown context")
                )
            elif head.position:
                signed.setdefault(context, {}).setdefault(head.position, {}).setdefault(head.link, path)
        reach = sum(head.position for head in checkpoint.heads.values())
        if furthest is None or reach >= furthest[0]:
            furthest = (reach, path)
    for context, positions in signed.items():
        findings += _signed_heads_found(context, chains[context], positions)
    furthest_signed = {context: max(positions) for context, positions in signed.items()}
    return CheckpointsChecked(len(paths), furthest[1] if furthest else None, findings, furthest_signed)


def _signed_heads_found(
    context: str, chain: ChainedLog, positions: Mapping[int, Mapping[bytes, Path]]
) -> list[Finding]:
    try:
        head = chain.chain_head()
    except UNREADABLE as error:  # named where it is by the chain's check
        what = f"the chain's last row does not read ({error}): the signed heads were not checked against it"
        return [Finding("checkpoint", context, None, None, None, what)]
    except Exception as error:
        if not no_such_table(error):
            raise
        what = "the log's chain table is missing: the signed heads were not checked against it"
        return [Finding("checkpoint", context, None, None, None, what)]
    reached = head.position if head else 0
    furthest = max(positions)
    findings = []
    if reached < furthest:
        # Named once, at the furthest head signed: a cut end is one finding, not one per checkpoint.
        what = (
            f"the chain's head ({reached}) is behind the head signed in {min(positions[furthest].values()).name} "
            f"({furthest}): events were cut off the end of the log, or the database was restored from a backup "
            "taken before that checkpoint (after a deliberate restore, move the checkpoints signed since the backup "
            'out of UGC_AUDIT_DIR before serving: README, "Backups and restores")'
        )
        findings.append(Finding("checkpoint", context, furthest, None, None, what))
    for position in sorted(position for position in positions if position <= reached):
        try:
            rows = chain.chain_rows(position, position, 1)
        except UNREADABLE as error:
            first = min(positions[position].values()).name
            what = f"the chain row at the position signed in {first} does not read ({error})"
            findings.append(Finding("checkpoint", context, position, None, None, what))
            continue
        if not rows:
            first = min(positions[position].values()).name
            what = f"no chain row at the position signed in {first}: it was deleted"
            findings.append(Finding("checkpoint", context, position, None, None, what))
            continue
        differing = sorted(path for link, path in positions[position].items() if link != rows[0].link)
        for path in differing:
            findings.append(
                Finding(
                    "checkpoint",
                    context,
                    position,
                    str(rows[0].stream),
                    rows[0].version,
                    f"the link at this position differs from the one signed in {path.name}: "
                    "the log up to here was rewritten",
                )
            )
        if differing:  # every later link chains from this one: the first that differs says where
            break
    return findings
