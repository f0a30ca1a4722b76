"""Network, stimulus and recording files (spec section 6) and their checks."""

import numpy as np
import pytest

from neurofabric.host.errors import NetworkError
from neurofabric.host.files import (load_network, load_recording, load_stimulus, save_network,
                                    save_recording, save_stimulus)
from neurofabric.host.golden import GoldenModel
from neurofabric.host.network import random_network

SPEC_NETWORK_KEYS = {
    "weights", "threshold", "v_reset", "reset_mode", "k_mem", "k_syn", "refractory", "bias",
    "plastic_post", "plastic_pre", "learn", "a_plus", "a_minus", "stdp_shift", "k_pre", "k_post",
    "inc_pre", "inc_post", "trace_mode", "w_min", "w_max", "state_bits", "weight_bits", "trace_bits",
}


@pytest.fixture
def net():
    return random_network(6, 4, seed=3, learn=1)


def arrays_of(net):
    return {k: np.array(v) for k, v in net.to_arrays().items()}


def write(tmp_path, arrays, name="net.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_network_round_trip_keeps_every_field(tmp_path, net):
    path = tmp_path / "net.npz"
    save_network(net, path)
    with np.load(path) as f:
        assert SPEC_NETWORK_KEYS <= set(f.files)
        assert f["weights"].shape == (10, 6) and f["learn"].shape == ()
    back = load_network(path)
    for key, value in net.to_arrays().items():
        assert np.array_equal(getattr(back, key, None) if key not in back.extras else back.extras[key],
                              value) or np.array_equal(back.to_arrays()[key], value), key


def test_unknown_keys_are_kept_as_extras_and_ignored_by_the_model(tmp_path, net):
    arrays = arrays_of(net)
    arrays["description"] = np.array("two layers")
    back = load_network(write(tmp_path, arrays))
    assert str(back.extras["description"]) == "two layers"


def test_narrow_integer_dtypes_are_accepted(tmp_path, net):
    arrays = arrays_of(net)
    arrays["weights"] = arrays["weights"].astype(np.int8)
    arrays["plastic_pre"] = arrays["plastic_pre"].astype(bool)
    assert np.array_equal(load_network(write(tmp_path, arrays)).weights, net.weights)


@pytest.mark.parametrize("field, index, value, message", [
    ("weights", (2, 1), 128, r"weights\[2, 1\] = 128 is out of range: allowed -128..127"),
    ("threshold", (3,), 40000, r"threshold\[3\] = 40000 is out of range: allowed -32768..32767"),
    ("v_reset", (0,), -32769, r"v_reset\[0\] = -32769 .*-32768..32767"),
    ("reset_mode", (5,), 2, r"reset_mode\[5\] = 2 .*0..1"),
    ("k_mem", (1,), 32, r"k_mem\[1\] = 32 .*0..31"),
    ("k_syn", (1,), -1, r"k_syn\[1\] = -1 .*0..31"),
    ("refractory", (2,), 256, r"refractory\[2\] = 256 .*0..255"),
    ("bias", (2,), 1 << 15, r"bias\[2\] = 32768"),
    ("plastic_post", (0,), 3, r"plastic_post\[0\] = 3 .*0..1"),
    ("plastic_pre", (9,), 2, r"plastic_pre\[9\] = 2 .*0..1"),
    ("learn", (), 2, r"learn = 2 .*0..1"),
    ("a_plus", (), 256, r"a_plus = 256 .*0..255"),
    ("a_minus", (), -1, r"a_minus = -1"),
    ("stdp_shift", (), 16, r"stdp_shift = 16 .*0..15"),
    ("k_pre", (), 40, r"k_pre = 40 .*0..31"),
    ("k_post", (), 40, r"k_post = 40"),
    ("inc_pre", (), 256, r"inc_pre = 256 .*0..255 \(unsigned 8-bit, trace_bits\)"),
    ("inc_post", (), -1, r"inc_post = -1"),
    ("trace_mode", (), 2, r"trace_mode = 2"),
    ("w_min", (), -129, r"w_min = -129 .*-128..127"),
    ("w_max", (), 128, r"w_max = 128"),
    ("state_bits", (), 64, r"state_bits = 64 .*2..32"),
    ("weight_bits", (), 1, r"weight_bits = 1 .*2..16"),
    ("trace_bits", (), 0, r"trace_bits = 0 .*1..16"),
])
def test_out_of_range_values_name_field_index_and_range(tmp_path, net, field, index, value, message):
    arrays = arrays_of(net)
    arr = arrays[field].astype(np.int64)
    arr[index] = value
    arrays[field] = arr
    with pytest.raises(NetworkError, match=message):
        load_network(write(tmp_path, arrays))


def test_error_names_the_file(tmp_path, net):
    arrays = arrays_of(net)
    arrays["k_mem"][0] = 99
    with pytest.raises(NetworkError, match=r"net\.npz: k_mem\[0\]"):
        load_network(write(tmp_path, arrays))


def test_ranges_follow_the_widths(tmp_path, net):
    arrays = arrays_of(net)
    arrays["weight_bits"] = np.array(4)
    with pytest.raises(NetworkError, match=r"weights\[\d+, \d+\] = -?\d+ is out of range: allowed -8..7 "
                                           r"\(signed 4-bit, weight_bits\)"):
        load_network(write(tmp_path, arrays))


def test_w_min_above_w_max_is_refused(tmp_path, net):
    arrays = arrays_of(net)
    arrays["w_min"], arrays["w_max"] = np.array(10), np.array(5)
    with pytest.raises(NetworkError, match="w_min = 10 is greater than w_max = 5"):
        load_network(write(tmp_path, arrays))


def test_sizes_come_from_the_weights(tmp_path, net):
    arrays = arrays_of(net)
    arrays["weights"] = np.zeros((10, 5), np.int64)
    with pytest.raises(NetworkError, match=r"threshold: shape \(6,\) does not match the expected \(5,\) "
                                           r"\(n = 5 neurons and m = 5 inputs"):
        load_network(write(tmp_path, arrays))


@pytest.mark.parametrize("field, shape", [("weights", (4, 6)), ("weights", (60,)),
                                          ("threshold", (5,)), ("plastic_pre", (6,)),
                                          ("learn", (1,)), ("bias", (6, 1))])
def test_wrong_shapes_are_refused(tmp_path, net, field, shape):
    arrays = arrays_of(net)
    arrays[field] = np.zeros(shape, np.int64)
    with pytest.raises(NetworkError, match=rf"{field}: shape"):
        load_network(write(tmp_path, arrays))


def test_missing_fields_are_listed(tmp_path, net):
    arrays = arrays_of(net)
    del arrays["bias"], arrays["trace_bits"]
    with pytest.raises(NetworkError, match="missing fields: bias, trace_bits"):
        load_network(write(tmp_path, arrays))


def test_float_arrays_are_refused(tmp_path, net):
    arrays = arrays_of(net)
    arrays["threshold"] = arrays["threshold"].astype(float)
    with pytest.raises(NetworkError, match="threshold: dtype float64 is not an integer type"):
        load_network(write(tmp_path, arrays))


def test_truncated_file_is_a_clear_error(tmp_path, net):
    path = tmp_path / "net.npz"
    save_network(net, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NetworkError, match="is not a readable NumPy .npz archive"):
        load_network(path)


@pytest.mark.parametrize("content", [b"", b"hello world", b"PK\x03\x04garbage"])
def test_non_npz_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "net.npz"
    path.write_bytes(content)
    with pytest.raises(NetworkError, match="not a readable NumPy .npz archive"):
        load_network(path)


def test_pickled_object_arrays_are_refused(tmp_path, net):
    arrays = arrays_of(net)
    arrays["names"] = np.array([{"a": 1}], dtype=object)
    path = write(tmp_path, arrays)
    with pytest.raises(NetworkError, match="not a readable NumPy .npz archive"):
        load_network(path)


def test_single_npy_file_is_refused(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(NetworkError, match="single .npy array"):
        load_network(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(NetworkError, match="does not exist"):
        load_network(tmp_path / "nope.npz")
    with pytest.raises(NetworkError, match="is a folder"):
        load_network(tmp_path)


def test_stimulus_round_trip_and_checks(tmp_path):
    spikes = (np.random.default_rng(0).random((7, 4)) < 0.3).astype(np.uint8)
    save_stimulus(spikes, tmp_path / "s.npz")
    back = load_stimulus(tmp_path / "s.npz", m=4)
    assert back.dtype == bool and np.array_equal(back, spikes.astype(bool))
    assert load_stimulus(tmp_path / "s.npz", m=4, steps=10)[7:].sum() == 0
    assert load_stimulus(tmp_path / "s.npz", m=4, steps=3).shape == (3, 4)
    with pytest.raises(NetworkError, match=r"shape \(7, 4\) does not match \(steps, m=5\)"):
        load_stimulus(tmp_path / "s.npz", m=5)


@pytest.mark.parametrize("arrays, message", [
    ({"spikes": np.array([[0, 2]])}, r"spikes\[0, 1\] = 2 is out of range: allowed 0..1"),
    ({"spikes": np.array([0, 1])}, r"shape \(2,\) is not \(steps, m\)"),
    ({"spikes": np.array([[0.0, 1.0]])}, "dtype float64 is not an integer type"),
    ({"input": np.array([[0, 1]])}, "missing field: spikes"),
])
def test_bad_stimuli_are_refused(tmp_path, arrays, message):
    with pytest.raises(NetworkError, match=message):
        load_stimulus(write(tmp_path, arrays, "s.npz"), m=2)


def test_recording_round_trip(tmp_path, net):
    rng = np.random.default_rng(1)
    rec = GoldenModel(net).run(rng.random((20, net.m)) < 0.4, record=("v", "i"), snapshot_every=5)
    save_recording(rec, tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz") as f:
        assert {"spikes", "weights", "v", "i"} <= set(f.files)
        assert f["spikes"].shape == (20, net.n) and f["v"].shape == (20, net.n)
        assert f["weights"].shape == (net.m + net.n, net.n)
    back = load_recording(tmp_path / "r.npz")
    for key in ("spikes", "weights", "v", "i", "input_spikes", "weight_snapshots"):
        assert np.array_equal(getattr(back, key), getattr(rec, key)), key


def test_write_into_missing_folder_is_a_clear_error(tmp_path, net):
    with pytest.raises(NetworkError, match="does not exist"):
        save_network(net, tmp_path / "no" / "net.npz")
