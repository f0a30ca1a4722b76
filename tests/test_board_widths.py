"""The simulated board builds every width the spec allows, or refuses a network before building.

State widths S <= 8 carry one byte per probed value, so a PROBE_RECORD could
hold 507 neurons; the link's firmware counts a chunk in one byte and sends
chunks of at most 254 neurons (hdl/link.py).
"""

import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.contract.model import Widths
from neurofabric.host.cli import cli
from neurofabric.host.compare import first_divergence
from neurofabric.host.errors import DeviceError


@pytest.mark.rtl
@pytest.mark.parametrize("n, m, widths", [
    (12, 6, Widths(4, 8, 8)),     # S = 4: one byte per probed value
    (260, 8, Widths(8, 6, 5)),    # S = 8 with more neurons than one chunk of probes holds
])
def test_narrow_state_widths_run_on_rtl_bit_exact_with_golden(tmp_path, n, m, widths):
    net = nf.random_network(n, m, seed=n, learn=1, widths=widths)
    rng = np.random.default_rng(n)
    stim = rng.random((60, m)) < 0.2
    rates = rng.integers(0, 12_000, m)
    nf.save_network(net, tmp_path / "n.npz")
    nf.save_stimulus(stim, tmp_path / "s.npz", rates=rates, seed=n)
    result = CliRunner().invoke(cli, ["-q", "run", str(tmp_path / "n.npz"), "--input", str(tmp_path / "s.npz"),
                                      "--device", "rtl", "-o", str(tmp_path / "r.npz"), "--record", "v,i,inputs",
                                      "--snapshot-every", "20"])
    assert result.exit_code == 0, result.output
    rec = nf.load_recording(tmp_path / "r.npz")
    want = nf.GoldenModel(net).run(stim, record=("v", "i", "inputs"), snapshot_every=20, rates=rates, seed=n)
    assert want.spikes.sum() > 0 and want.inputs.sum() > stim.sum()
    found = first_divergence(want, rec)
    assert found is None, found.describe("golden", "rtl")
    assert np.array_equal(rec.inputs, want.inputs)


@pytest.mark.parametrize("n, m, message", [
    (2, 3000, r"n = 2 neurons, m = 3000 inputs does not fit the simulated board, which rounds n and m up to "
              r"powers of two \(n = 4, m = 4096\): n=4, m=4096: the link handles n and m up to 2040"),
    (2, 70_000, r"m = 70000 inputs does not fit the simulated board.*\(n = 4, m = 131072\)"),
])
def test_a_network_too_large_for_the_board_is_refused_before_a_build(monkeypatch, n, m, message):
    import neurofabric.sim.board
    monkeypatch.setattr(neurofabric.sim.board, "board_program", lambda *a, **kw: pytest.fail("a build started"))
    net = nf.random_network(n, m, seed=1, density=0.001)
    with nf.open_device("rtl") as dev:
        with pytest.raises(DeviceError, match=message):
            dev.load(net)


def test_the_cli_refuses_a_network_too_large_for_rtl_in_one_line(tmp_path, monkeypatch):
    import neurofabric.sim.board
    monkeypatch.setattr(neurofabric.sim.board, "board_program", lambda *a, **kw: pytest.fail("a build started"))
    net = nf.random_network(2, 70_000, seed=1, density=0.0001)
    nf.save_network(net, tmp_path / "n.npz")
    nf.save_stimulus(np.zeros((3, 70_000), np.uint8), tmp_path / "s.npz")
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "n.npz"), "--input", str(tmp_path / "s.npz"),
                                      "--device", "rtl", "-o", str(tmp_path / "r.npz")])
    assert result.exit_code == DeviceError.exit_code
    assert result.stderr.count("\n") == 1 and "does not fit the simulated board" in result.stderr


def test_every_width_the_spec_allows_makes_link_firmware():
    """The link (with its firmware) elaborates at the extreme widths (S = 2..32, W = 2..16, T = 1..16)."""
    from amaranth.hdl import Fragment

    from neurofabric.contract.protocol import probe_chunk_neurons
    from neurofabric.hdl.core_ports import CoreConfig
    from neurofabric.hdl.link import Link
    for S in (2, 8, 9, 32):
        for W, T in ((2, 1), (16, 16)):
            link = Link(CoreConfig(n=16, m=8, S=S, W=W, T=T, lanes=4), clk_hz=12_000_000, baud=3_000_000)
            assert link.probe_chunk == min(254, probe_chunk_neurons(S))
            Fragment.get(link, None)
