"""The projections' figures for `/metrics`, read from the database at each scrape (the same from
any worker, so they need no multiprocess bookkeeping)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from readmodels.tracking import ProjectionState

LABELS = ["projection", "application"]


class _States(Collector):
    def __init__(self, states: Sequence[ProjectionState]) -> None:
        self.states = states

    def collect(self) -> list[GaugeMetricFamily]:
        families = {
            "position": GaugeMetricFamily("ugc_projection_position", "Last log position applied", labels=LABELS),
            "head": GaugeMetricFamily("ugc_projection_head", "Last position of the log followed", labels=LABELS),
            "lag_events": GaugeMetricFamily("ugc_projection_lag_events", "Events not yet applied", labels=LABELS),
            "lag_seconds": GaugeMetricFamily(
                "ugc_projection_lag_seconds", "Age of the oldest event not yet applied", labels=LABELS
            ),
            "parked": GaugeMetricFamily("ugc_projection_parked_events", "Events parked for a retry", labels=LABELS),
            "postponed": GaugeMetricFamily(
                "ugc_projection_postponed_events",
                "Side effects set aside to be tried again by themselves (a greylisted recipient's mail)",
                labels=LABELS,
            ),
            "held": GaugeMetricFamily(
                "ugc_projection_lease_held", "1 while a process holds the projection's lease, else 0", labels=LABELS
            ),
            "token": GaugeMetricFamily(
                "ugc_projection_lease_token", "Fencing token: how many times the lease was acquired", labels=LABELS
            ),
            "unheld": GaugeMetricFamily(
                "ugc_projection_lease_unheld_seconds",
                "Seconds since the lease lapsed with nobody taking it (0 while held, -1 if never held)",
                labels=LABELS,
            ),
            "holder": GaugeMetricFamily(
                "ugc_projection_lease_holder", "1 for the process holding the lease", labels=[*LABELS, "holder"]
            ),
        }
        for s in self.states:
            labels = [s.projection, s.application]
            families["position"].add_metric(labels, s.position)
            families["head"].add_metric(labels, s.head)
            families["lag_events"].add_metric(labels, s.lag_events)
            families["lag_seconds"].add_metric(labels, s.lag_seconds)
            families["parked"].add_metric(labels, s.parked)
            families["postponed"].add_metric(labels, s.postponed)
            families["held"].add_metric(labels, 1 if s.holder else 0)
            families["token"].add_metric(labels, s.token)
            unheld = s.unheld_for or 0.0
            families["unheld"].add_metric(labels, -1.0 if unheld == float("inf") else unheld)
            if s.holder:
                families["holder"].add_metric([*labels, s.holder], 1)
        return list(families.values())


def projection_metrics(states: Sequence[ProjectionState]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_States(states))
    return generate_latest(registry)
