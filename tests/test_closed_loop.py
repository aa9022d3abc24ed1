"""The closed loop past saturation: clients beyond what the engine admits wait for a batch slot."""

import json

import pytest
from specs_fixtures import h100, llama8b

from planner.cli import main
from planner.engine.knobs import Knobs
from planner.engine.offline import batch_cap
from planner.engine.roofline import ServingConfig, replica_params
from planner.engine.scenario import LengthDist
from planner.engine.serving import Workload, concurrency_point, offline_point

STATS = ("p50", "p90", "p99")


def predict(capsys, clients: int) -> dict:
    argv = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--input-len", "100", "--output-len", "100",
            "--concurrency", str(clients), "--format", "json"]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_ten_thousand_clients_queue_for_slots(capsys):
    # by hand: the engine admits max_num_seqs = 1,024 and serves X req/s (the offline maximum,
    # ~120-150 req/s depending on the shipped calibration); the other ~9,000 clients queue, so a
    # request takes 10,000 / X ~ 70-80 s end to end (Little's law), nearly all of it waiting for a
    # slot, i.e. in TTFT; its TPOT is the full batch's. It used to say 2.9 s.
    got = predict(capsys, 10_000)
    x = got["requests_per_s"]
    assert got["e2e_ms"]["mean"] / 1e3 == pytest.approx(10_000 / x, rel=0.01)
    assert got["e2e_ms"]["mean"] > 30_000
    assert got["ttft_ms"]["mean"] == pytest.approx(got["e2e_ms"]["mean"], rel=0.2)  # the same order: the wait
    assert got["batch"] == pytest.approx(got["max_seqs"])
    offline = json.loads((main(["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--input-len", "100",
                                "--output-len", "100", "--offline", "--format", "json"]), capsys.readouterr().out)[1])
    assert x == pytest.approx(offline["requests_per_s"], rel=0.01)
    assert got["tpot_ms"]["mean"] == pytest.approx(offline["tpot_ms"]["mean"], rel=0.01)
    for name in ("ttft_ms", "tpot_ms", "e2e_ms"):
        assert got[name]["p50"] <= got[name]["p90"] <= got[name]["p99"]
    assert got["e2e_ms"]["p50"] / 1e3 == pytest.approx(10_000 / x, rel=0.05)
    assert "wait" in got["note"]


def test_more_clients_wait_longer(capsys):
    few, many = predict(capsys, 1_024), predict(capsys, 100_000)
    assert many["e2e_ms"]["mean"] > 50 * few["e2e_ms"]["mean"]
    assert many["e2e_ms"]["mean"] / 1e3 == pytest.approx(100_000 / many["requests_per_s"], rel=1e-6)
    assert many["tpot_ms"]["mean"] == pytest.approx(few["tpot_ms"]["mean"], rel=0.05)


def _replica(max_seqs=64):
    return replica_params(llama8b(), h100(), ServingConfig(max_num_seqs=max_seqs), Knobs())


@pytest.mark.parametrize(("prompt", "output"), [(1000.0, 128.0), (100.0, 100.0), (2000.0, 16.0)])
def test_closed_loop_is_continuous_and_keeps_littles_law(prompt, output):
    # through the open loop's last fixed point, the blend and the full batch (at 64-80 clients
    # here), four more clients move every figure by about what four more clients cost: the
    # throughput never falls, E2E's mean rises by at most 4 / X (Little's law, plus a little where
    # the batch still grows) and TTFT by no more than that
    p = _replica()
    wl = Workload(LengthDist(kind="fixed", mean=prompt), LengthDist(kind="exponential", mean=output))
    means = {n: concurrency_point(p, wl, n, detailed=False) for n in range(8, 200, 4)}
    ns = sorted(means)
    for n, pt in means.items():
        assert pt.stable and pt.batch <= batch_cap(p, wl) + 1e-9
        assert pt.requests_per_s * pt.e2e_mean_s == pytest.approx(n, rel=1e-3)
    for lo, hi in zip(ns, ns[1:]):
        a, b = means[lo], means[hi]
        assert b.requests_per_s >= a.requests_per_s * (1 - 1e-6)
        assert 0 <= b.e2e_mean_s - a.e2e_mean_s <= 1.5 * (hi - lo) / b.requests_per_s, (lo, hi)
        assert -0.01 * a.ttft_mean_s <= b.ttft_mean_s - a.ttft_mean_s <= 1.5 * (hi - lo) / b.requests_per_s, (lo, hi)
    for n in (ns[0], 64, 72, 80, ns[-1]):
        pt = concurrency_point(p, wl, n)
        for dist in (pt.ttft_s, pt.tpot_s, pt.e2e_s):
            assert 0 < dist["p50"] <= dist["p90"] <= dist["p99"], n
    full = concurrency_point(p, wl, ns[-1])
    assert "wait" in full.note
    assert full.batch == pytest.approx(offline_point(p, wl).batch)
    assert full.e2e_s["mean"] == pytest.approx(ns[-1] / full.requests_per_s, rel=1e-9)
    assert full.tpot_s["mean"] == pytest.approx(offline_point(p, wl).tpot_mean_s * offline_point(p, wl).requests_per_s
                                                / full.requests_per_s, rel=2e-3)
