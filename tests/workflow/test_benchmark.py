"""The benchmark script runs and prints every figure the README quotes (a smoke run: 10 queues,
two trials, short drains). The figures are simulated time, so their order is checked, not
speed; the cost figures are counted from the run's own AWS calls, so they follow its readings."""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import Any

import pytest

from mq_cutover.plan import parse_plan
from tests.conftest import ROOT

pytestmark = pytest.mark.workflow


def _benchmark(monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "bench" / "benchmark.py")
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "benchmark", benchmark)  # dataclasses look it up
    spec.loader.exec_module(benchmark)
    return benchmark


def test_benchmark_plans_over_amazon_mqs_metrics_quota_read_a_bridge_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Amazon MQ's own metrics cover an ActiveMQ broker's first 1,000 destinations: the
    benchmark's larger plans read Amazon MQ from a bridge's namespace, and all of them are
    valid (Validate Plan refuses more listed queues in AWS/AmazonMQ)."""
    benchmark = _benchmark(monkeypatch)
    setting = benchmark.SETTINGS[0]
    for mode in ("ordered", "unordered"):
        for size in benchmark.SIZES:
            document = benchmark.make_plan(setting, queues=size, params=size, mode=mode)
            if mode == "unordered" and size > 1000:
                document["producers"]["batchSize"] = 100  # as the scale runs need
            plan = parse_plan(document)
            expected = "MqCutover/AmazonMq" if size > 1000 else "AWS/AmazonMQ"
            assert plan.target.metrics.namespace == expected, (mode, size)


def test_benchmark_quick_run_prints_every_figure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    benchmark = _benchmark(monkeypatch)
    assert benchmark.main(["--quick"]) == 0
    out = capsys.readouterr().out
    lags = {
        name: (float(p50), float(p95))
        for name, p50, p95 in re.findall(
            r"N=10\s+(\S+)\s+\(period.*lag p50 (\d+) s, p95 (\d+) s", out
        )
    }
    # Readings every 10 s find the drain sooner than readings every 60 s, and never before the
    # last message was consumed.
    assert set(lags) == {"default", "10-second"}
    assert 0 < lags["10-second"][1] < lags["default"][0]
    costs = {
        name: (float(total), float(ratio), float(reads), float(writes))
        for name, total, ratio, reads, writes in re.findall(
            r"N=10\s+(\S+)\s+total \$([\d.]+)/h = ([\d.]+)% of the broker "
            r"\(reads \$([\d.]+), writes \$([\d.]+),",
            out,
        )
    }
    assert set(costs) == {"default", "10-second"}
    counted = {
        name: (int(metrics), int(puts), int(distinct), int(events))
        for name, metrics, puts, distinct, events in re.findall(
            r"N=10\s+(\S+)\s+total.*\n\s+per hour: (\d+) metrics read in \d+ GetMetricData, \d+ "
            r"ListMetrics; (\d+) PutMetricData, \d+ datapoints, (\d+) distinct metrics; \d+ "
            r"transitions, (\d+) history events",
            out,
        )
    }
    assert set(counted) == {"default", "10-second"}
    for name, (metrics, puts, distinct, events) in counted.items():
        assert metrics > 0 and puts > 0 and events > 0, name
        assert 10 <= distinct < 10_000, name  # at least a series per queue, every one counted
        total, ratio, reads, writes = costs[name]
        assert reads > 0 and writes > 0 and total > reads + writes
        # (the total is printed to the cent from $0.10 up)
        assert ratio == pytest.approx(total / benchmark.BROKER_PER_HOUR * 100, abs=1.8)
    # Counted, not assumed: six times the readings ask for more metrics and more samples.
    assert counted["10-second"][0] > counted["default"][0]
    assert counted["10-second"][1] > counted["default"][1]
    long = re.search(
        r"A whole migration with a ([\d.]+)-hour drain, 10 queues .*: SUCCEEDED; (\d+) drain-loop "
        r"events, (\d+) events in the whole execution",
        out,
    )
    assert long, out
    # The drain loop's events are part of the execution's; a 20-minute drain at 1 s readings is
    # a few Check Drain calls (each reads for up to 240 s), not one call per reading.
    assert float(long[1]) == pytest.approx(1 / 3, abs=0.1)
    assert 0 < int(long[2]) < int(long[3]) < 500
    scale = re.findall(
        r"(ordered|unordered)\s+N=10 .*?: SUCCEEDED, .* largest state payload [\d.]+ KB .*"
        r"with the execution input .*variables at most [\d.]+ KB",
        out,
    )
    assert scale == ["ordered", "unordered", "ordered"]
    assert "Issue 15's targets:" in out
