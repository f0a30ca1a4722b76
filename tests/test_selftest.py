"""`neurofabric selftest` on the simulated board."""

from click.testing import CliRunner

from neurofabric.host.cli import cli


def test_selftest_passes_on_the_simulated_board():
    result = CliRunner().invoke(cli, ["selftest", "--device", "rtl", "--steps", "120"])
    assert result.exit_code == 0, result.output
    lines = [l for l in result.output.splitlines() if l.startswith(("PASS", "FAIL"))]
    assert [l.split(":")[0] for l in lines] == ["PASS  handshake", "PASS  echo", "PASS  network", "PASS  weights",
                                               "PASS  link counters"]
    assert "equal to the golden model at every step" in result.output
    assert result.output.rstrip().endswith("selftest passed: 5 checks on rtl")


def test_selftest_needs_a_board():
    result = CliRunner().invoke(cli, ["selftest", "--device", "golden"])
    assert result.exit_code == 4 and "selftest checks a board and its link" in result.stderr
