"""`neurofabric run --device rtl` writes the same recording as `--device golden`, with the
stimulus generator's rates and seed from the stimulus file and the inputs recorded."""

import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.host.cli import cli

pytestmark = pytest.mark.rtl


@pytest.mark.parametrize("seed, learn", [(21, 1), (22, 0), (23, 1)])
def test_run_on_rtl_equals_golden(tmp_path, seed, learn):
    rng = np.random.default_rng(seed)
    # Sizes that round up to one core (n = 16, m = 8): one Verilator build for all.
    n, m = int(rng.integers(9, 17)), int(rng.integers(5, 9))
    net = nf.random_network(n, m, seed=seed, learn=learn)
    nf.save_network(net, tmp_path / "n.npz")
    rates = rng.integers(0, 15_000, m)
    nf.save_stimulus(rng.random((80, m)) < 0.15, tmp_path / "s.npz", rates=rates, seed=int(rng.integers(1, 1 << 32)))
    recs = {}
    for device in ("golden", "rtl"):
        out = tmp_path / f"{device}.npz"
        result = CliRunner().invoke(cli, ["-q", "run", str(tmp_path / "n.npz"), "--input", str(tmp_path / "s.npz"),
                                          "--device", device, "-o", str(out), "--record", "v,i,inputs",
                                          "--snapshot-every", "20"])
        assert result.exit_code == 0, result.output
        recs[device] = nf.load_recording(out)
    golden, rtl = recs["golden"], recs["rtl"]
    assert golden.spikes.sum() > 0 and golden.inputs.sum() > golden.input_spikes.sum()
    for key in ("spikes", "v", "i", "inputs", "weights", "weight_snapshots"):
        assert np.array_equal(getattr(golden, key), getattr(rtl, key)), key
    if learn:
        assert not np.array_equal(golden.weights, net.weights)
