"""Trials (spec section 6): a leading trials axis, a reset before each trial, weights carried over."""

import numpy as np
import pytest

from neurofabric.host.device import open_device
from neurofabric.host.errors import DeviceError
from neurofabric.host.golden import GoldenModel
from neurofabric.host.network import random_network


def _device(net):
    dev = open_device("golden")
    dev.load(net)
    return dev


def test_trials_equal_runs_from_the_reset_state_with_weights_carried_over():
    net = random_network(12, 8, seed=4, learn=1)
    rng = np.random.default_rng(1)
    stim = rng.random((3, 40, 8)) < 0.2
    seeds = [11, 22, 33]
    rec = _device(net).run_trials(stim, rates=np.full(8, 9000), seed=seeds, record=("v", "inputs"))
    assert rec.trials == 3 and rec.spikes.shape == (3, 40, 12) and rec.v.shape == (3, 40, 12)
    assert rec.inputs.shape == (3, 40, 8) and rec.steps == 40
    model = GoldenModel(net)
    for t in range(3):
        model.reset()
        one = model.run(stim[t], rates=np.full(8, 9000), seed=seeds[t], record=("v", "inputs"))
        assert np.array_equal(one.spikes, rec.spikes[t]) and np.array_equal(one.v, rec.v[t])
        assert np.array_equal(one.inputs, rec.inputs[t])
    assert np.array_equal(model.weights, rec.weights)
    assert not np.array_equal(rec.weights, net.weights)   # learning accumulated


def test_trials_with_one_seed_repeat_the_generated_inputs():
    net = random_network(5, 6, seed=2, learn=0)
    rec = _device(net).run_trials(None, steps=30, rates=np.stack([np.full(6, 20000)] * 4), seed=9,
                                  record=("inputs",))
    assert rec.trials == 4
    assert all(np.array_equal(rec.inputs[0], rec.inputs[t]) for t in range(4))
    assert rec.inputs[0].any()


def test_trials_batches_must_agree():
    net = random_network(5, 6, seed=2)
    dev = _device(net)
    with pytest.raises(DeviceError, match="disagree"):
        dev.run_trials(np.zeros((3, 10, 6), int), seed=[1, 2])
    with pytest.raises(DeviceError, match="how many trials"):
        dev.run_trials(None, steps=10, seed=4)
    with pytest.raises(DeviceError, match="trials, steps, m"):
        dev.run_trials(np.zeros((10, 6), int))
