"""Figures for Prometheus: what the state holds, read at each scrape, and what the
daemon counted as it ran."""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..domain.outbox import State
from ..domain.ports import Store
from ..usecases import Controller, Deps


class Metrics:
    def __init__(self, store: Store):
        self.registry = CollectorRegistry(auto_describe=True)
        self.ticks = Counter("mentorship_ticks", "Daemon ticks, by outcome", ["outcome"], registry=self.registry)
        self.tick_seconds = Histogram(
            "mentorship_tick_duration_seconds",
            "How long a tick took",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.errors = Counter(
            "mentorship_errors", "Problems met (mail, calendar, mailbox, the tick itself), by kind", ["kind"], registry=self.registry
        )
        for outcome in ("ok", "failed"):
            self.ticks.labels(outcome)
        self.registry.register(_StateCollector(store))

    def tick_done(self, seconds: float, ok: bool) -> None:
        self.ticks.labels("ok" if ok else "failed").inc()
        self.tick_seconds.observe(seconds)

    def log_handler(self) -> logging.Handler:
        """Counts every warning and error the daemon logs, by its event name."""
        return _ErrorCounter(self.errors)


class _ErrorCounter(logging.Handler):
    def __init__(self, errors: Counter):
        super().__init__(level=logging.WARNING)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.labels(getattr(record, "event", "log")).inc()


class _StateCollector(Collector):
    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[Metric]:
        counts = Tally[State]()
        for of_pair in self.store.message_counts().values():
            counts.update(of_pair)
        messages = GaugeMetricFamily("mentorship_messages", "Emails by state", labels=["state"])
        for state in State:
            messages.add_metric([state.value], counts.get(state, 0))
        yield messages
        yield GaugeMetricFamily("mentorship_pending_requests", "Requests waiting for the daemon", value=len(self.store.pending_requests()))
        last = self.store.last_tick()
        yield GaugeMetricFamily(
            "mentorship_last_tick_timestamp_seconds", "When the daemon last finished a tick", value=last.timestamp() if last else 0
        )


class ByCohort(Collector):
    """Every cohort's figures in one scrape (`run --cohorts`), each labelled with its
    cohort: the states' own, and the ticks this replica ran for each."""

    def __init__(self, registries: Callable[[], Mapping[str, CollectorRegistry]]):
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for cohort, registry in self.registries().items():
            for family in registry.collect():
                into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type, family.unit))
                for sample in family.samples:
                    into.add_sample(sample.name, {"cohort": cohort, **sample.labels}, sample.value, sample.timestamp, sample.exemplar)
        yield from merged.values()


class MeteredController(Controller):
    """The daemon's controller, timing each tick for /metrics."""

    def __init__(self, deps: Deps, metrics: Metrics, *, poll: timedelta = timedelta(minutes=5)):
        super().__init__(deps, poll=poll)
        self.metrics = metrics

    def tick(self, now: datetime) -> datetime | None:
        began, ok = time.monotonic(), False
        try:
            next_due = super().tick(now)
            ok = True
            return next_due
        finally:
            self.metrics.tick_done(time.monotonic() - began, ok)
