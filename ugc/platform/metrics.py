"""Prometheus metrics every layer may record: appends, version conflicts, read-your-writes waits,
projection batches. `/metrics` (api/routes/meta.py) renders them, with the projections' positions
read from the database at each scrape.

Several server processes (`ugc serve --workers N`) share one `PROMETHEUS_MULTIPROC_DIR`, set by
`ugc serve` before the workers start; prometheus-client then keeps each process's values in files
there and `/metrics` in any worker adds them up; the supervisor folds the files of workers that ended
(`ugc/platform/metrics_files.py`). Only counters and histograms are recorded here
(they add up across processes); the projections' gauges are read from the database per scrape.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from ugc.platform import metrics_files

APPENDS = Counter("ugc_appends_total", "Transactions that appended events, per context", ["context"])
VERSION_CONFLICTS = Counter(
    "ugc_version_conflicts_total", "Appends refused because another writer appended first, per context", ["context"]
)
WAIT_SECONDS = Histogram(
    "ugc_read_your_writes_wait_seconds",
    "How long a command waited for its read models",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
WAIT_TIMEOUTS = Counter("ugc_read_your_writes_timeouts_total", "Commands answered 503 because read models lagged")
BATCH_SECONDS = Histogram(
    "ugc_projection_batch_seconds", "Duration of a projection batch (read, apply, commit), per log", ["application"]
)
PROJECTION_FAILURES = Counter(
    "ugc_projection_failures_total", "Failed projection batches, per projection", ["projection"]
)
JOB_FAILURES = Counter(
    "ugc_scheduled_job_failures_total",
    "Failed runs of the projection leader's periodic jobs (auto-completion, audit checkpoints, sweeping), per job",
    ["job"],
)


def render() -> bytes:
    """This process's metrics, or every process's when they share PROMETHEUS_MULTIPROC_DIR."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        with metrics_files.reading(Path(directory)):  # the ended workers' files folded before or after
            return generate_latest(registry)
    return generate_latest()
