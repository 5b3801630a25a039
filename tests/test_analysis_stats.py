"""``asgispy.analysis.stats`` over a session from a real uvicorn: the time series the dashboard
plots, and the percentile method at its edges."""

from __future__ import annotations

from itertools import pairwise

import pytest

import asgispy
from asgispy.analysis.stats import Percentiles, compare, nearest_rank, series, table, total
from asgispy.model.connection import Connection
from tests.stats_sessions import record

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def conns(tmp_path_factory: pytest.TempPathFactory) -> list[Connection]:
    return asgispy.load(record(tmp_path_factory.mktemp("analysis-stats") / "s.json")).connections


def test_every_request_falls_in_the_bucket_of_its_start(conns: list[Connection]) -> None:
    requests = [c for c in conns if c.type != "lifespan"]
    for width in (None, 0.001, 0.5, 3600.0):
        buckets = series(conns, width=width)
        assert sum(b.requests for b in buckets) == len(requests)
        assert sum(b.errors for b in buckets) == sum(c.outcome == "exception" for c in requests)
        for a, b in pairwise(buckets):
            assert b.start == pytest.approx(a.start + a.width)  # no gaps between buckets
        for conn in requests:
            (home,) = [b for b in buckets if b.start <= conn.started < b.start + b.width]
            assert home.requests >= 1
    assert len(series(conns, buckets=40)) <= 40
    assert series([c for c in conns if c.type == "lifespan"]) == []


def test_nearest_rank_is_a_measured_value() -> None:
    assert nearest_rank([], 50) is None
    assert nearest_rank([0.25], 99) == 0.25
    values = [i / 100 for i in range(1, 101)]  # 0.01 .. 1.00
    assert nearest_rank(values, 50) == 0.5 and nearest_rank(values, 90) == 0.9
    assert nearest_rank(values, 99) == 0.99 and nearest_rank(values, 100) == 1.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # not 2.5: no interpolation
    assert Percentiles.of([3.0, 1.0, 2.0]) == Percentiles(2.0, 3.0, 3.0, 3.0)


def test_comparing_a_table_with_itself_changes_nothing(conns: list[Connection]) -> None:
    groups = table(conns)
    changes = compare(groups, groups)
    assert [c.key for c in changes] == [g.key for g in groups]
    for change in changes:
        doc = change.document()
        assert doc["change"]["count"] == 0 and doc["change"]["errors"] == 0
        if change.before is not None and change.before.duration.p50:
            assert doc["change"]["duration"]["p50"] == 0 and doc["change"]["duration_ratio"]["p50"] == 1
    assert total(conns).count == sum(g.count for g in groups)


def test_series_never_loses_the_first_connection_to_float_rounding() -> None:
    # An epoch start whose floor to the bucket width rounds above it went to the last bucket.
    from types import SimpleNamespace

    from asgispy.analysis import stats

    for first in (1733590000.3, 1733590000.7, 1765112345.1):
        conns = [
            SimpleNamespace(type="http", started=first + dt, status=200, outcome="completed")
            for dt in (0.0, 0.0, 3.95)
        ]
        buckets = stats.series(conns, buckets=40)  # type: ignore[arg-type]
        assert buckets[0].requests == 2 and buckets[-1].requests == 1
        assert len(buckets) <= 40
