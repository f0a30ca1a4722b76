"""The digits demo: spike encoding, readout, and the accuracy target on 500 held-out samples."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from neurofabric.host import digits
from neurofabric.host.cli import cli


def test_encoding_rate_is_the_pixel_intensity():
    x = np.array([[0, 1, 8, 16]])
    spikes = digits.encode(x, 32)
    assert spikes.shape == (1, 32, 4)
    assert spikes[0].sum(axis=0).tolist() == [0, 2, 16, 32]
    # evenly spread: intensity 8 spikes every other step
    assert np.diff(np.flatnonzero(spikes[0, :, 2])).tolist() == [2] * 15


def test_readout_most_spikes_then_first_spike_then_potential():
    spikes = np.zeros((3, 5, 3), np.uint8)
    spikes[0, [1, 3], 2] = 1           # neuron 2 has most spikes
    spikes[0, 0, 1] = 1
    spikes[1, 2, 0] = spikes[1, 1, 1] = 1   # tie on count: neuron 1 fired first
    v = np.array([[0, 0, 0], [0, 0, 0], [5, 9, 1]])  # sample 2 silent: highest v
    assert digits.predict(spikes, v).tolist() == [2, 1, 1]


def test_split_is_fixed_and_held_out():
    xtr, ytr, xte, yte = digits.load_split()
    assert len(xte) == 500 and len(xtr) == 1297
    again = digits.load_split()
    assert np.array_equal(again[2], xte)
    train_rows = {r.tobytes() for r in xtr}
    overlap = sum(r.tobytes() in train_rows for r in xte)
    assert overlap < 5  # the data set has a few duplicate images, no shared samples


def test_demo_digits_reaches_the_target_on_500_samples(tmp_path):
    result = CliRunner().invoke(cli, ["-q", "demo", "digits", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("test accuracy:"))
    stored = json.loads((tmp_path / "result.json").read_text())
    assert line.startswith(f"test accuracy: {stored['test_accuracy']:.3f} (500 samples)")
    assert stored["test_accuracy"] >= 0.958       # above the float classifier's 0.952
    assert f"floating point: {stored['float_accuracy']:.3f}" in line
    assert (tmp_path / "digits_network.npz").exists()
    assert "weights" in (tmp_path / "quantisation_report.txt").read_text()


@pytest.mark.rtl
def test_demo_digits_on_the_simulated_board_predicts_like_the_golden_model(tmp_path):
    result = CliRunner().invoke(cli, ["-q", "demo", "digits", "-o", str(tmp_path), "--device", "rtl",
                                      "--subset", "12"])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["device_samples"] == 12 and stored["device_agrees"] is True
    assert "on rtl: accuracy" in result.output and "identical to the golden model" in result.output
