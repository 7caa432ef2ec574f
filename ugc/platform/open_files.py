"""The process's limit of open files, raised before serving to what the system allows it.

Every connection a server holds is an open file: each client's socket, each connection to the
database, each file being uploaded or sent. Hosts often start a service with a soft limit of 1,024
(systemd's default, and that of many container runtimes) under a hard limit hundreds of times larger.
Past about a thousand clients at once (bench/overload.py sends 2,000), `accept()` fails with
EMFILE and asyncio stops accepting for a second each time: every new client waits, `/healthz`'s
probe too, and the requests already in cannot open the database connections they need. A process
may raise its own soft limit up to the hard one; `ugc serve` does so before it starts its workers,
which inherit it. The hard limit is the operator's to set (`LimitNOFILE=`, `ulimits:`).
"""

from __future__ import annotations

import resource

# Where the hard limit is "unlimited" (not on Linux, where `fs.nr_open` bounds it).
CEILING = 1 << 20


def raise_to_hard_limit() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard one (at most CEILING); (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # a system that caps it lower than it says (macOS: OPEN_MAX)
        return soft, soft
    return soft, target
