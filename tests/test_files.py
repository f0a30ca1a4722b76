"""Network, stimulus and recording files (spec section 6) and their checks."""

import numpy as np
import pytest

from neurofabric.host.arith import xorshift32
from neurofabric.host.device import GoldenDevice
from neurofabric.host.errors import DeviceError, NetworkError
from neurofabric.host.files import (Stimulus, convert_core_model_1, load_network, load_recording, load_stimulus,
                                    save_network, save_recording, save_stimulus)
from neurofabric.host.golden import GoldenModel
from neurofabric.host.network import random_network

#: Spec section 6's keys of a network file, word for word.
SPEC_NETWORK_KEYS = {
    "weights", "threshold", "v_reset", "reset_mode", "decay_mem", "decay_syn", "refractory", "bias",
    "plastic_post", "plastic_pre", "learn", "a_plus", "a_minus", "stdp_shift", "decay_pre", "decay_post",
    "inc_pre", "inc_post", "trace_mode", "w_min", "w_max", "state_bits", "weight_bits", "trace_bits",
    "core_model",
}
SHIFTS = {"k_mem": "decay_mem", "k_syn": "decay_syn", "k_pre": "decay_pre", "k_post": "decay_post"}


@pytest.fixture
def net():
    return random_network(6, 4, seed=3, learn=1)


def arrays_of(net):
    """The arrays of `net`'s file, as `save_network` writes them."""
    out = {k: np.array(v) for k, v in net.to_arrays().items()}
    out["core_model"] = np.array(2)
    return out


def core_model_1_arrays(net, shifts=None):
    """A core model 1 file of `net`'s sizes: decay shifts k_* (4 unless given) and no core_model."""
    arrays = {k: np.array(v) for k, v in net.to_arrays().items()}
    for shift, factor in SHIFTS.items():
        shape = np.shape(arrays.pop(factor))
        arrays[shift] = np.broadcast_to(np.asarray((shifts or {}).get(shift, 4)), shape).copy()
    return arrays


def write(tmp_path, arrays, name="net.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_network_round_trip_keeps_every_field(tmp_path, net):
    path = tmp_path / "net.npz"
    save_network(net, path)
    with np.load(path) as f:
        assert set(f.files) == SPEC_NETWORK_KEYS
        assert f["weights"].shape == (10, 6) and f["learn"].shape == () and int(f["core_model"]) == 2
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
    ("decay_mem", (1,), 4097, r"decay_mem\[1\] = 4097 .*0..4096"),
    ("decay_syn", (1,), -1, r"decay_syn\[1\] = -1 .*0..4096"),
    ("refractory", (2,), 256, r"refractory\[2\] = 256 .*0..255"),
    ("bias", (2,), 1 << 15, r"bias\[2\] = 32768"),
    ("plastic_post", (0,), 3, r"plastic_post\[0\] = 3 .*0..1"),
    ("plastic_pre", (9,), 2, r"plastic_pre\[9\] = 2 .*0..1"),
    ("learn", (), 2, r"learn = 2 .*0..1"),
    ("a_plus", (), 256, r"a_plus = 256 .*0..255"),
    ("a_minus", (), -1, r"a_minus = -1"),
    ("stdp_shift", (), 16, r"stdp_shift = 16 .*0..15"),
    ("decay_pre", (), 4097, r"decay_pre = 4097 .*0..4096"),
    ("decay_post", (), -1, r"decay_post = -1"),
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
    arrays["decay_mem"][0] = 9999
    with pytest.raises(NetworkError, match=r"net\.npz: decay_mem\[0\]"):
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


# -- core models ---------------------------------------------------------------------

def test_a_core_model_1_file_is_refused_in_one_line_naming_the_converter(tmp_path, net):
    path = write(tmp_path, core_model_1_arrays(net), "old.npz")
    with pytest.raises(NetworkError) as info:
        load_network(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: has no core_model key: it is a core model 1 network")
    assert "`neurofabric convert OLD.npz -o NEW.npz`" in text and "d = 4096 >> k (k = 31: d = 0" in text
    assert "close to, not identical with, core model 1's" in text


def test_a_file_without_core_model_is_refused_even_with_the_decay_factors(tmp_path, net):
    arrays = arrays_of(net)
    del arrays["core_model"]
    with pytest.raises(NetworkError, match=r"has no core_model key: a core model 2 network file holds "
                                           r"core_model = 2 .*neurofabric convert"):
        load_network(write(tmp_path, arrays))


@pytest.mark.parametrize("version", [0, 3, 99])
def test_a_file_of_another_core_model_is_refused_naming_it(tmp_path, net, version):
    arrays = arrays_of(net)
    arrays["core_model"] = np.array(version)
    with pytest.raises(NetworkError, match=rf"net\.npz: core_model = {version}: this neurofabric reads core "
                                           r"model 2 network files only"):
        load_network(write(tmp_path, arrays))


def test_core_model_1_named_in_the_file_is_refused_with_the_converter(tmp_path, net):
    arrays = core_model_1_arrays(net)
    arrays["core_model"] = np.array(1)
    with pytest.raises(NetworkError, match="has core_model = 1: it is a core model 1 network .*neurofabric convert"):
        load_network(write(tmp_path, arrays))


def test_core_model_2_with_core_model_1_shifts_is_refused(tmp_path, net):
    arrays = arrays_of(net)
    arrays["k_mem"] = np.full(net.n, 3)
    with pytest.raises(NetworkError, match=r"core_model = 2, but the file also holds core model 1's decay shifts "
                                           r"k_mem: .*remove them \(core model 2's decays are decay_mem\)"):
        load_network(write(tmp_path, arrays))


@pytest.mark.parametrize("value, message", [
    (np.array([2]), r"core_model: shape \(1,\) does not match the expected \(\)"),
    (np.array(2.0), "core_model: dtype float64 is not an integer type"),
    (np.array(-1), "core_model = -1 is out of range"),
])
def test_a_malformed_core_model_is_refused(tmp_path, net, value, message):
    arrays = arrays_of(net)
    arrays["core_model"] = value
    with pytest.raises(NetworkError, match=message):
        load_network(write(tmp_path, arrays))


def test_the_core_model_key_is_not_an_extra(tmp_path, net):
    save_network(net, tmp_path / "net.npz")
    back = load_network(tmp_path / "net.npz")
    assert "core_model" not in back.extras
    save_network(back, tmp_path / "again.npz")     # and it is written again
    with np.load(tmp_path / "again.npz") as f:
        assert int(f["core_model"]) == 2
    clash = net.copy()
    clash.extras["core_model"] = np.array(1)
    with pytest.raises(NetworkError, match="extras: key 'core_model'"):
        save_network(clash, tmp_path / "clash.npz")


def test_convert_maps_each_shift_to_4096_shifted_right_by_it_and_31_to_no_decay(tmp_path):
    net = random_network(32, 3, seed=5, learn=1)
    shifts = {"k_mem": np.arange(32), "k_syn": np.arange(32)[::-1], "k_pre": 31, "k_post": 0}
    arrays = core_model_1_arrays(net, shifts)
    arrays["description"] = np.array("trained in 2024")
    back, conversions = convert_core_model_1(write(tmp_path, arrays, "old.npz"))
    expect = [4096 >> k if k < 31 else 0 for k in range(32)]
    assert back.decay_mem.tolist() == expect and back.decay_syn.tolist() == expect[::-1]
    assert (back.decay_pre, back.decay_post) == (0, 4096)
    assert expect[:13] == [4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1] and set(expect[13:]) == {0}
    for name in ("weights", "threshold", "v_reset", "bias", "refractory", "plastic_pre", "plastic_post"):
        assert np.array_equal(getattr(back, name), getattr(net, name)), name
    for name in ("learn", "a_plus", "a_minus", "stdp_shift", "inc_pre", "inc_post", "w_min", "w_max"):
        assert getattr(back, name) == getattr(net, name), name
    assert str(back.extras["description"]) == "trained in 2024"
    by_field = {c.field: c for c in conversions}
    assert set(by_field) == set(SHIFTS.values())
    assert by_field["decay_mem"].lost == 18 and by_field["decay_pre"].lost == 0
    assert (3, 512, 1) in by_field["decay_mem"].pairs and by_field["decay_post"].pairs == ((0, 4096, 1),)
    assert "18 values with 13 <= k <= 30" in by_field["decay_mem"].describe()


def test_converted_decays_are_within_one_of_core_model_1s():
    from neurofabric.host.arith import decay
    x = np.arange(-5000, 5001)
    for k in range(13):
        old = x - (x >> k)          # core model 1: decay(x, k) = x - (x >> k)
        new = decay(x, 4096 >> k)
        assert np.abs(new - old).max() <= 1, k
        # not identical: core model 1 held small positive values up, core model 2 lets them decay to 0
        if k:
            assert (new != old).any(), k
    assert np.array_equal(decay(x, 0), x)   # k = 31: no decay either way


def test_a_converted_file_loads_and_runs(tmp_path, net):
    converted, _ = convert_core_model_1(write(tmp_path, core_model_1_arrays(net), "old.npz"))
    save_network(converted, tmp_path / "new.npz")
    back = load_network(tmp_path / "new.npz")
    assert back.decay_mem.tolist() == [256] * net.n
    rec = GoldenModel(back).run(np.ones((5, net.m), bool))
    assert rec.spikes.shape == (5, net.n)


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.update(core_model=np.array(2)), r"core_model = 2: not a core model 1 network, nothing to convert "
                                                 r"\(it already is"),
    (lambda a: a.update(core_model=np.array(5)), "core_model = 5: not a core model 1 network"),
    (lambda a: a.pop("k_syn"), "not a core model 1 network: missing field: k_syn"),
    (lambda a: a["k_mem"].__setitem__(2, 32), r"k_mem\[2\] = 32 is out of range: allowed 0..31 \(core model 1's"),
    (lambda a: a.update(k_pre=np.array(-1)), "k_pre = -1 is out of range: allowed 0..31"),
    (lambda a: a.update(decay_mem=np.zeros(6, int)), "holds both k_mem .* and decay_mem"),
    (lambda a: a.update(k_mem=np.zeros(5, int)), r"k_mem: shape \(5,\) does not match the expected \(6,\)"),
    (lambda a: a.update(threshold=np.full(6, 1 << 20)), r"threshold\[0\] = 1048576 is out of range"),
])
def test_convert_refuses_what_is_not_a_good_core_model_1_file(tmp_path, net, edit, message):
    arrays = core_model_1_arrays(net)
    edit(arrays)
    with pytest.raises(NetworkError, match=message) as info:
        convert_core_model_1(write(tmp_path, arrays, "old.npz"))
    assert "\n" not in str(info.value) and str(info.value).startswith(str(tmp_path / "old.npz"))


def test_convert_names_a_core_model_2_file_without_its_key(tmp_path, net):
    arrays = arrays_of(net)
    del arrays["core_model"]
    with pytest.raises(NetworkError, match="missing fields: k_mem, k_syn, k_pre, k_post .*a core model 2 network "
                                           "without its core_model key"):
        convert_core_model_1(write(tmp_path, arrays, "old.npz"))


# -- stimuli ---------------------------------------------------------------------------

def test_a_rates_only_stimulus_holds_steps_rates_and_seed_and_no_spikes(tmp_path):
    save_stimulus(None, tmp_path / "s.npz", rates=[0, 100, 65535], seed=7, steps=40)
    with np.load(tmp_path / "s.npz") as f:
        assert set(f.files) == {"steps", "rates", "seed"}
        assert f["steps"].shape == () and int(f["steps"]) == 40 and f["seed"].shape == () and int(f["seed"]) == 7
        assert f["rates"].tolist() == [0, 100, 65535]
    back = Stimulus.load(tmp_path / "s.npz", m=3)
    assert back.spikes is None and back.steps == 40 and back.seed == 7 and back.trials is None
    assert back.rates.tolist() == [0, 100, 65535] and back.m == 3
    assert Stimulus.load(tmp_path / "s.npz", steps=10).steps == 10


def test_spikes_with_rates_and_the_defaults(tmp_path):
    spikes = np.eye(4, 3, dtype=np.uint8)
    save_stimulus(spikes, tmp_path / "s.npz", rates=[5, 6, 7])
    with np.load(tmp_path / "s.npz") as f:
        assert set(f.files) == {"spikes", "rates"}
    back = Stimulus.load(tmp_path / "s.npz")
    assert back.seed is None and back.steps == 4 and np.array_equal(back.spikes, spikes.astype(bool))
    plain = Stimulus(spikes=spikes)
    assert plain.rates is None and plain.seed is None


def test_a_batch_of_trials_round_trips_with_what_varies_batched(tmp_path):
    rng = np.random.default_rng(4)
    spikes = rng.random((3, 10, 4)) < 0.2
    save_stimulus(spikes, tmp_path / "t.npz", rates=np.arange(12).reshape(3, 4), seed=[1, 2, 3])
    back = Stimulus.load(tmp_path / "t.npz", m=4)
    assert back.trials == 3 and back.steps == 10 and back.m == 4
    assert np.array_equal(back.spikes, spikes) and back.rates.shape == (3, 4) and back.seed.tolist() == [1, 2, 3]
    # a per-run value may stay unbatched: seeds alone make the batch
    save_stimulus(spikes[0], tmp_path / "seeds.npz", rates=[9, 9, 9, 9], seed=[5, 6])
    seeds = Stimulus.load(tmp_path / "seeds.npz")
    assert seeds.trials == 2 and seeds.spikes.shape == (10, 4)
    padded = Stimulus.load(tmp_path / "t.npz", steps=12)
    assert padded.spikes.shape == (3, 12, 4) and not padded.spikes[:, 10:].any()


@pytest.mark.parametrize("arrays, message", [
    ({"rates": np.array([1, 70000, 3]), "steps": np.array(5)},
     r"rates\[1\] = 70000 is out of range: allowed 0..65535 \(rate\[k\] / 65536 per step\)"),
    ({"rates": np.array([[1, 2, 3], [4, 5, -1]]), "steps": np.array(5)}, r"rates\[1, 2\] = -1 is out of range"),
    ({"rates": np.array([1.0, 2.0, 3.0]), "steps": np.array(5)}, "rates: dtype float64 is not an integer type"),
    ({"rates": np.array([1, 2, 3]), "steps": np.array(5), "seed": np.array(0)},
     r"seed = 0 is out of range: allowed 1..4294967295"),
    ({"rates": np.array([1, 2, 3]), "steps": np.array(5), "seed": np.array(1 << 32)}, r"seed = 4294967296"),
    ({"rates": np.array([[1, 2, 3]] * 2), "steps": np.array(5), "seed": np.array([4, 0])},
     r"seed\[1\] = 0 is out of range"),
    ({"rates": np.array([1, 2, 3]), "steps": np.array(-2)}, "steps = -2 is out of range: allowed 0 or more"),
    ({"rates": np.array([1, 2, 3])}, "steps is needed when there are no spikes"),
    ({"seed": np.array(3), "steps": np.array(5)}, "missing field: spikes .* or rates"),
    ({"spikes": np.zeros((2, 5, 3), int) + np.eye(3, dtype=int)[None, :1] * 2},
     r"stimulus spikes\[0, 0, 0\] = 2 is out of range: allowed 0..1"),
    ({"spikes": np.zeros((5, 3), int), "steps": np.array(6)}, "steps = 6, but the spikes have 5 steps"),
    ({"spikes": np.zeros((5, 3), int), "rates": np.zeros(4, int)},
     "spikes and rates disagree on the inputs: spikes has m = 3, rates has m = 4"),
    ({"spikes": np.zeros((2, 5, 3), int), "rates": np.zeros((3, 3), int)},
     "the trials disagree: spikes has 2, rates has 3"),
    ({"spikes": np.zeros((0, 5, 3), int)}, "a batch of trials needs at least one trial"),
    ({"rates": np.zeros((2, 2, 3), int), "steps": np.array(4)}, r"rates: shape \(2, 2, 3\) is not \(m,\) or "
                                                                r"\(trials, m\)"),
    ({"seed": np.ones((2, 2), int), "rates": np.zeros(3, int), "steps": np.array(4)},
     r"seed: shape \(2, 2\) is not \(\) or \(trials,\)"),
    ({"steps": np.array([4]), "rates": np.zeros(3, int)}, r"steps: shape \(1,\) is not \(\)"),
])
def test_bad_stimulus_fields_are_refused_naming_field_and_index(tmp_path, arrays, message):
    path = write(tmp_path, arrays, "s.npz")
    with pytest.raises(NetworkError, match=message) as info:
        Stimulus.load(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


@pytest.mark.parametrize("arrays, message", [
    ({"rates": np.zeros(4, int), "steps": np.array(3)}, r"stimulus rates: shape \(4,\) does not match \(m=3,\)"),
    ({"rates": np.zeros((2, 4), int), "steps": np.array(3)},
     r"stimulus rates: shape \(2, 4\) does not match \(trials, m=3\)"),
    ({"spikes": np.zeros((2, 5, 4), int)}, r"stimulus spikes: shape \(2, 5, 4\) does not match \(trials, steps, m=3\)"),
])
def test_a_stimulus_for_another_width_is_refused(tmp_path, arrays, message):
    with pytest.raises(NetworkError, match=message):
        Stimulus.load(write(tmp_path, arrays, "s.npz"), m=3)


def test_stimulus_shapes_are_checked_from_the_headers_before_reading(tmp_path, monkeypatch):
    from neurofabric.host import files
    path = write(tmp_path, {"rates": np.zeros((10 ** 5, 4), np.uint16), "seed": np.ones(3, np.uint32),
                            "steps": np.array(5)}, "s.npz")
    monkeypatch.setattr(files, "_read_member", lambda zf, info: pytest.fail("data read"))
    with pytest.raises(NetworkError, match="the trials disagree: rates has 100000, seed has 3"):
        Stimulus.load(path)


def test_load_stimulus_refuses_what_its_spikes_alone_would_not_run(tmp_path):
    save_stimulus(np.zeros((3, 2), np.uint8), tmp_path / "r.npz", rates=[1, 2])
    with pytest.raises(NetworkError, match="holds the stimulus generator's rates, which its spikes alone would not "
                                           r"run: load it with Stimulus.load"):
        load_stimulus(tmp_path / "r.npz")
    save_stimulus(np.zeros((4, 3, 2), np.uint8), tmp_path / "t.npz")
    with pytest.raises(NetworkError, match=r"shape \(4, 3, 2\) is a batch of trials"):
        load_stimulus(tmp_path / "t.npz")
    save_stimulus(np.ones((3, 2), np.uint8), tmp_path / "s.npz", seed=9)   # a seed without rates changes nothing
    assert load_stimulus(tmp_path / "s.npz").sum() == 6


def plain_generator(seed, rates, steps):
    """Spec section 5.0 as written: per step, per input in order, g = xorshift32(g); spike if g >> 16 < rate."""
    g, out = seed, np.zeros((steps, len(rates)), bool)
    for t in range(steps):
        for k, rate in enumerate(rates):
            g = xorshift32(g)
            out[t, k] = (g >> 16) < rate
    return out


def test_a_stimulus_runs_from_the_reset_state_with_its_rates_and_seed():
    net = random_network(6, 4, seed=3, learn=0)    # the weights stay, so a second run is the same run
    rates = [30000, 0, 65535, 1000]
    stim = Stimulus(rates=rates, seed=12345, steps=25)
    dev = GoldenDevice()
    dev.load(net)
    dev.run(np.ones((7, 4), bool), rates=[9, 9, 9, 9], seed=99)   # leaves state and a seed behind
    first = stim.run(dev, record=("inputs",))
    assert np.array_equal(first.inputs, plain_generator(12345, rates, 25))
    assert not first.inputs[:, 1].any() and first.inputs[:, 2].all()
    again = stim.run(dev, record=("inputs",))     # from the reset state, g from the seed again
    assert np.array_equal(again.inputs, first.inputs) and np.array_equal(again.spikes, first.spikes)
    default = Stimulus(rates=rates, steps=25).run(dev, record=("inputs",))
    assert np.array_equal(default.inputs, plain_generator(1, rates, 25))   # absent seed: 1


def test_host_spikes_and_generated_inputs_make_one_set(net):
    spikes = np.zeros((6, net.m), bool)
    spikes[:, 1] = True
    stim = Stimulus(spikes=spikes, rates=[0, 0, 0, 65535], seed=3)
    dev = GoldenDevice()
    dev.load(net)
    rec = stim.run(dev, record=("inputs",))
    assert rec.inputs[:, 1].all() and rec.inputs[:, 3].all() and not rec.inputs[:, [0, 2]].any()
    assert np.array_equal(rec.input_spikes.astype(bool), spikes)


def test_a_batch_of_trials_is_run_each_from_reset_with_the_weights_carried_over(net):
    rng = np.random.default_rng(8)
    spikes = rng.random((3, 15, net.m)) < 0.3
    rates = rng.integers(0, 20000, (3, net.m))
    stim = Stimulus(spikes=spikes, rates=rates, seed=[11, 22, 33])
    dev = GoldenDevice()
    dev.load(net)
    rec = stim.run(dev, record=("v", "inputs"))
    assert rec.trials == 3 and rec.spikes.shape == (3, 15, net.n) and rec.inputs.shape == (3, 15, net.m)
    model = GoldenModel(net.copy())
    for t in range(3):
        model.reset()
        one = model.run(spikes[t], rates=rates[t], seed=[11, 22, 33][t], record=("v", "inputs"))
        assert np.array_equal(rec.spikes[t], one.spikes) and np.array_equal(rec.v[t], one.v), t
        assert np.array_equal(rec.inputs[t], plain_generator([11, 22, 33][t], rates[t], 15) | spikes[t]), t
    assert np.array_equal(rec.weights, model.weights)


def test_unbatched_spikes_repeat_in_every_trial(net):
    spikes = np.zeros((5, net.m), bool)
    spikes[2] = True
    rec = Stimulus(spikes=spikes, rates=np.full(net.m, 5000), seed=[1, 2]).run(_loaded(net), record=("inputs",))
    assert rec.trials == 2 and rec.inputs[:, 2].all()
    assert not np.array_equal(rec.inputs[0], rec.inputs[1])    # different seeds, different generated inputs


def _loaded(net):
    dev = GoldenDevice()
    dev.load(net)
    return dev


def test_trials_keep_no_weight_snapshots(net):
    with pytest.raises(DeviceError, match="a run of 2 trials keeps no weight snapshots"):
        Stimulus(rates=[1, 2, 3, 4], steps=5, seed=[1, 2]).run(_loaded(net), snapshot_every=2)


# -- recordings of trials and inputs ---------------------------------------------------------

def test_a_recording_of_trials_and_inputs_round_trips(tmp_path, net):
    rec = Stimulus(rates=np.full((2, net.m), 9000), steps=12, seed=[3, 4]).run(_loaded(net),
                                                                               record=("v", "i", "inputs"))
    save_recording(rec, tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz") as f:
        assert f["spikes"].shape == (2, 12, net.n) and f["inputs"].shape == (2, 12, net.m)
        assert f["v"].shape == (2, 12, net.n) and f["weights"].shape == (net.m + net.n, net.n)
    back = load_recording(tmp_path / "r.npz")
    assert back.trials == 2 and back.steps == 12
    for key in ("spikes", "v", "i", "inputs", "input_spikes", "weights"):
        assert np.array_equal(getattr(back, key), getattr(rec, key)), key


@pytest.mark.parametrize("key, shape, message", [
    ("inputs", (12, 4), r"inputs: shape \(12, 4\) does not match the expected \(2, 12, 4\) \(a run of trials\)"),
    ("v", (2, 11, 6), r"v: shape \(2, 11, 6\) does not match the expected \(2, 12, 6\)"),
    ("spikes", (2, 12), r"spikes: shape \(2, 12\) does not match the expected \(2, 6\)"),
    ("spikes", (1, 2, 12, 6), r"spikes: shape \(1, 2, 12, 6\) does not match the expected \(steps, n\) or"),
])
def test_recording_shapes_of_trials_are_checked_from_the_headers(tmp_path, net, monkeypatch, key, shape, message):
    from neurofabric.host import files
    rec = Stimulus(rates=np.full((2, net.m), 9000), steps=12, seed=[3, 4]).run(_loaded(net), record=("v", "inputs"))
    arrays = rec.to_arrays()
    arrays[key] = np.zeros(shape, np.uint8)
    path = write(tmp_path, arrays, "r.npz")
    monkeypatch.setattr(files, "_read_member", lambda zf, info: pytest.fail("data read"))
    with pytest.raises(NetworkError, match=message):
        load_recording(path)


def test_recorded_inputs_must_be_0_or_1(tmp_path, net):
    rec = GoldenModel(net).run(np.zeros((4, net.m), bool), record=("inputs",))
    arrays = rec.to_arrays()
    arrays["inputs"] = arrays["inputs"].astype(np.int64)
    arrays["inputs"][3, 2] = 2
    with pytest.raises(NetworkError, match=r"inputs\[3, 2\] = 2 is out of range: allowed 0..1"):
        load_recording(write(tmp_path, arrays, "r.npz"))
