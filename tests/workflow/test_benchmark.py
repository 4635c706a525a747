"""The benchmark script runs and prints every figure the README quotes (a smoke run: small
sizes, two trials). The figures are simulated time, so their order is checked, not speed."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.workflow


def test_benchmark_quick_run_prints_every_figure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "bench" / "benchmark.py")
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "benchmark", benchmark)  # dataclasses look it up
    spec.loader.exec_module(benchmark)
    assert benchmark.main(["--quick"]) == 0
    out = capsys.readouterr().out
    lags = {
        name: (float(p50), float(p95))
        for name, p50, p95 in re.findall(r"(\S+)\s+\(period.*lag p50 (\d+) s, p95 (\d+) s", out)
    }
    # Readings every 10 s find the drain sooner than readings every 60 s, and never before the
    # last message was consumed.
    assert set(lags) == {"default", "10-second"}
    assert 0 < lags["10-second"][1] < lags["default"][0]
    per_hour = dict(re.findall(r"(\S+)\s*: (\d+) history events/h", out))
    assert set(per_hour) == {"default", "10-second"} and all(int(v) > 0 for v in per_hour.values())
    assert re.search(r"a whole 1-hour drain .*: \d+ drain-loop events", out)
    assert len(re.findall(r"queues: total \d+\.\d\d", out)) == 6
    scale = re.findall(r"(ordered|unordered)\s+N=10 .*?: SUCCEEDED, .* largest state payload", out)
    assert scale == ["ordered", "unordered", "ordered"]
