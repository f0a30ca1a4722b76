"""PyNN's example scripts run on neurofabric with only the import changed.

`varying_poisson.py` is in PyNN's documentation (doc/examples/varying_poisson.txt): Poisson sources whose
rate a callback raises every 200 ms (the core's generator, its rates set between runs).
`update_spike_source_array.py` (PyNN's examples) does the same with regular SpikeSourceArray spikes
(host inputs, updated between runs). `simpleRandomNetwork.py` (PyNN's examples) drives IF_curr_exp cells
from SpikeSourceArray inputs through a random projection with a 1 ms delay at a 0.025 ms step (the delay
is a shift of the spike times), saves the connections and writes the recorded data. They come from PyNN
0.13.0's sources (fetched and cached as for tests/test_pynn_scenarios.py); the test changes one line of
each, checks it is the only change, and runs it as `python SCRIPT golden`.
"""

import logging
import re
import runpy
import sys

import neo
import numpy as np
import pytest

import neurofabric.pynn as sim

from .test_pynn_scenarios import pynn_sources

#: script -> (the import line as PyNN wrote it, the same line for neurofabric)
IMPORT_CHANGES = {
    "varying_poisson.py": ("from pyNN.utility import get_simulator, normalized_filename, ProgressBar",
                           "from neurofabric.pynn.utility import get_simulator, normalized_filename, ProgressBar"),
    "update_spike_source_array.py": (
        "from pyNN.utility import get_simulator, normalized_filename, ProgressBar",
        "from neurofabric.pynn.utility import get_simulator, normalized_filename, ProgressBar"),
    "simpleRandomNetwork.py": ('sim = import_module("pyNN.%s" % simulator_name)',
                               'sim = import_module("neurofabric.pynn")'),
}


@pytest.fixture
def run_example(tmp_path, monkeypatch, capsys):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(name):
        original = (pynn_sources() / "examples" / name).read_text()
        before, after = IMPORT_CHANGES[name]
        assert original.count(before) == 1
        changed = original.replace(before, after)
        diff = [(a, b) for a, b in zip(original.splitlines(), changed.splitlines()) if a != b]
        assert diff == [(before, after)] and len(original.splitlines()) == len(changed.splitlines())
        script = tmp_path / name
        script.write_text(changed)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "argv", [str(script), "golden"])
        monkeypatch.setattr(sim.simulator.state, "default_device", "golden")
        runpy.run_path(str(script), run_name="__main__")
        return capsys.readouterr().out

    yield run
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_varying_poisson_is_in_the_documentation():
    assert "examples/varying_poisson.py" in (pynn_sources() / "doc" / "examples" / "varying_poisson.txt").read_text()


def printed_counts(out):
    """The 'Actual' and 'Expected' spike counts the rate examples print (numpy 2 prints np.int64(174))."""
    line = re.search(r"Actual spike counts: (.*)", out).group(1).replace("np.int64(", "")
    actual = [int(x) for x in re.findall(r"\d+", line)]
    expected = [float(x) for x in re.findall(r"[\d.]+", re.search(r"Expected mean spike counts: (.*)", out).group(1))]
    assert expected == [0.0, 200.0, 400.0, 600.0, 800.0]
    return actual, expected


def test_varying_poisson(run_example):
    actual, expected = printed_counts(run_example("varying_poisson.py"))
    # Each interval's count is Poisson (Bernoulli per step) about its mean.
    assert actual[0] == 0
    assert all(abs(a - e) <= 4 * np.sqrt(e) for a, e in zip(actual[1:], expected[1:])), actual


def test_update_spike_source_array(run_example):
    actual, expected = printed_counts(run_example("update_spike_source_array.py"))
    # Regular spikes at random phases: a spike rounded up to an interval's end can move to the next.
    assert all(abs(a - e) <= 0.01 * e + 2 for a, e in zip(actual, expected)), actual


def test_simple_random_network(run_example, tmp_path):
    out = run_example("simpleRandomNetwork.py")
    counts = [int(line.split()[1]) for line in out.splitlines() if re.fullmatch(r"\d+ \d+", line.strip())]
    assert len(counts) == 20 and sum(counts) > 0
    written = list((tmp_path / "Results").rglob("simpleRandomNetwork_output_golden*.pkl"))
    assert len(written) == 1
    block = neo.io.PickleIO(str(written[0])).read_block()
    trains = block.segments[0].spiketrains
    assert [len(t) for t in trains] == counts
    assert block.segments[0].analogsignals[0].shape == (40001, 3)        # 1000 ms at 0.025 ms, 3 cells sampled
    connections = list((tmp_path / "Results").rglob("simpleRandomNetwork_golden*.conn"))
    rows = np.loadtxt(connections[0])
    assert rows.shape[1] == 4 and np.all(rows[:, 2] == 1.0) and np.all(rows[:, 3] == 1.0)  # i, j, weight, delay
