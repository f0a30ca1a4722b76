"""Bad input never costs data: outputs, loaders and numbers refuse it with one-line errors.

Outputs: nothing but a regular file is replaced, never an input, never through a
planted symlink, and a write either lands whole or not at all. Loaders check
declared sizes and values before they load or cast them. Numbers: NaN, infinity,
negative time steps and non-whole integers are refused wherever they are read.
"""

import io
import logging
import math
import os
import stat
import tempfile
import threading
import time
import zipfile

import nir
import numpy as np
import pytest

import neurofabric as nf
from neurofabric.host import files, golden
from neurofabric.host.errors import BuildError, DeviceError, NetworkError
from neurofabric.host.files import (load_network, load_recording, load_stimulus, save_network,
                                    save_recording, save_stimulus)
from neurofabric.host.golden import GoldenModel
from neurofabric.host.network import random_network
from neurofabric.host.nir_io import export_nir, import_nir, write_nir
from neurofabric.host.safe_io import atomic_output, check_output_path
from neurofabric.host.units import PhysicalNetwork


@pytest.fixture
def net():
    return random_network(6, 4, seed=3, learn=1)


@pytest.fixture
def rec(net):
    return GoldenModel(net).run(np.random.default_rng(1).random((30, net.m)) < 0.4, record=("v",))


def one_line(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def savers(net, rec):
    """Every library writer, as `(name, write(path, inputs))`."""
    def plot(path, inputs):
        from neurofabric.host import plot
        plot.save(plot.raster(rec), path, inputs=inputs)
    return [
        ("network", lambda path, inputs: save_network(net, path, inputs=inputs)),
        ("stimulus", lambda path, inputs: save_stimulus(rec.input_spikes, path, inputs=inputs)),
        ("recording", lambda path, inputs: save_recording(rec, path, inputs=inputs)),
        ("nir", lambda path, inputs: write_nir(export_nir(net), path, inputs=inputs)),
        ("plot", plot),
    ]


WRITERS = ["network", "stimulus", "recording", "nir", "plot"]


def writer(net, rec, name):
    return dict(savers(net, rec))[name]


# -- outputs -----------------------------------------------------------------------

@pytest.mark.parametrize("name", WRITERS)
def test_a_fifo_as_output_is_refused_and_stays_a_fifo(tmp_path, net, rec, name):
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    with pytest.raises(NetworkError, match="is a FIFO") as info:
        writer(net, rec, name)(fifo, ())
    one_line(info)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", WRITERS)
def test_a_symlink_to_a_device_node_is_refused_and_the_device_survives(tmp_path, net, rec, name):
    link = tmp_path / "out.png"
    link.symlink_to("/dev/null")
    with pytest.raises(NetworkError, match="is a symbolic link"):
        writer(net, rec, name)(link, ())
    assert link.is_symlink() and os.readlink(link) == "/dev/null"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_symlink_to_a_regular_file_is_not_followed(tmp_path, net):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "net.npz"
    link.symlink_to(victim)
    with pytest.raises(NetworkError, match="is a symbolic link"):
        save_network(net, link)
    assert link.is_symlink() and victim.read_text() == "keep me"


def test_a_folder_as_output_is_refused(tmp_path, net):
    (tmp_path / "out.npz").mkdir()
    with pytest.raises(NetworkError, match="is a folder"):
        save_network(net, tmp_path / "out.npz")
    assert (tmp_path / "out.npz").is_dir()


def test_a_symlink_planted_at_the_old_fixed_temporary_name_redirects_nothing(tmp_path, net):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "net.npz.tmp").symlink_to(victim)
    save_network(net, tmp_path / "net.npz")
    assert victim.read_text() == "keep me"
    assert np.array_equal(load_network(tmp_path / "net.npz").weights, net.weights)


def test_a_symlink_planted_at_the_next_temporary_name_is_skipped_not_followed(tmp_path, net, monkeypatch):
    # Whatever name the temporary would take, O_EXCL refuses to open an existing
    # entry (a symlink included) and mkstemp moves on to another name.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    planted = tmp_path / ".net.npz.planted.tmp"
    planted.symlink_to(victim)
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: iter(["planted", "fresh", "other"]))
    save_network(net, tmp_path / "net.npz")
    assert victim.read_text() == "keep me" and planted.is_symlink()
    assert np.array_equal(load_network(tmp_path / "net.npz").weights, net.weights)
    assert leftovers(tmp_path) == [planted.name]


@pytest.mark.parametrize("name", WRITERS)
def test_an_input_as_output_is_refused_and_kept(tmp_path, net, rec, name):
    source = tmp_path / "net.npz"
    save_network(net, source)
    before = source.read_bytes()
    with pytest.raises(NetworkError, match="same file as the input"):
        writer(net, rec, name)(source, (tmp_path / "other.npz", source))
    assert source.read_bytes() == before


def test_a_hard_link_to_an_input_is_the_same_file(tmp_path, net, rec):
    source = tmp_path / "net.npz"
    save_network(net, source)
    os.link(source, tmp_path / "alias.npz")
    with pytest.raises(NetworkError, match="same file as the input"):
        save_recording(rec, tmp_path / "alias.npz", inputs=(source,))
    assert load_network(source).n == net.n


@pytest.mark.parametrize("name", WRITERS)
def test_a_missing_folder_is_refused_before_the_work_and_creates_nothing(tmp_path, net, rec, name):
    target = tmp_path / "no" / "out.png"
    with pytest.raises(NetworkError, match="folder .* does not exist"):
        check_output_path(target)
    with pytest.raises(NetworkError, match="does not exist"):
        writer(net, rec, name)(target, ())
    assert not (tmp_path / "no").exists()


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, net):
    path = tmp_path / "net.npz"
    save_network(net, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="cut"):
        with atomic_output(path) as fh:
            fh.write(b"half a file")
            raise RuntimeError("cut")
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_an_output_replaced_by_a_fifo_during_the_work_is_not_replaced(tmp_path):
    path = tmp_path / "out.bin"
    with pytest.raises(NetworkError, match="is a FIFO"):
        with atomic_output(path) as fh:
            fh.write(b"data")
            os.mkfifo(path)
    assert stat.S_ISFIFO(os.lstat(path).st_mode) and leftovers(tmp_path) == []


def test_outputs_get_the_mode_a_plain_open_would_give(tmp_path, net):
    save_network(net, tmp_path / "net.npz")
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    assert stat.S_IMODE(os.stat(tmp_path / "net.npz").st_mode) == stat.S_IMODE(os.stat(probe).st_mode)


def test_two_writers_racing_for_one_path_leave_one_whole_recording(tmp_path, net):
    rng = np.random.default_rng(5)
    recs = [GoldenModel(net).run(rng.random((400, net.m)) < p, record=("v", "i")) for p in (0.1, 0.7)]
    assert not np.array_equal(recs[0].spikes, recs[1].spikes)
    path = tmp_path / "rec.npz"
    errors = []

    def write(r):
        try:
            for _ in range(15):
                save_recording(r, path)
        except Exception as exc:  # reported below, the thread must not die silently
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(r,)) for r in recs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    back = load_recording(path)
    assert any(np.array_equal(back.spikes, r.spikes) and np.array_equal(back.v, r.v) for r in recs)
    assert leftovers(tmp_path) == []


def test_a_plot_in_an_unknown_format_is_refused_before_writing(tmp_path, rec):
    from neurofabric.host import plot
    with pytest.raises(NetworkError, match="format 'xyz' is not supported; allowed: .*png"):
        plot.save(plot.raster(rec), tmp_path / "r.xyz")
    assert list(tmp_path.iterdir()) == []


def test_a_plot_is_written_in_the_format_of_its_suffix(tmp_path, rec):
    from neurofabric.host import plot
    plot.save(plot.raster(rec), tmp_path / "r.svg")
    plot.save(plot.raster(rec), tmp_path / "r.png")
    assert b"<svg" in (tmp_path / "r.svg").read_bytes()[:500]
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_a_build_report_is_not_written_through_a_symlink(tmp_path):
    from neurofabric.boards import base
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "report.json").symlink_to(victim)
    with pytest.raises(BuildError, match="build report .* is a symbolic link"):
        base._write_report(tmp_path, {"board": "x"})
    assert victim.read_text() == "keep me"
    (tmp_path / "report.json").unlink()
    base._write_report(tmp_path, {"board": "x"})
    assert '"board": "x"' in (tmp_path / "report.json").read_text()


# -- loaders -------------------------------------------------------------------------

def arrays_of(net):
    """The arrays of `net`'s network file, as `save_network` writes them."""
    return {**{k: np.array(v) for k, v in net.to_arrays().items()}, "core_model": np.array(2)}


def write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def fake_member(shape, descr="<i8", data=b""):
    """A .npy member whose header declares `shape` and whose data is `data` (usually far less)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


@pytest.mark.parametrize("value", [2 ** 63, 2 ** 64 - 1])
def test_a_uint64_weight_beyond_int64_is_refused_not_wrapped(tmp_path, net, value):
    arrays = arrays_of(net)
    weights = arrays["weights"].astype(np.uint64) * 0
    weights[2, 1] = value
    arrays["weights"] = weights
    with pytest.raises(NetworkError, match=rf"weights\[2, 1\] = {value} is out of range") as info:
        load_network(write_npz(tmp_path / "n.npz", arrays))
    one_line(info)


def test_a_uint64_weight_in_a_recording_is_refused_not_wrapped(tmp_path, rec):
    arrays = rec.to_arrays()
    arrays["weights"] = np.abs(arrays["weights"]).astype(np.uint64)
    arrays["weights"][0, 0] = 2 ** 64 - 1
    with pytest.raises(NetworkError, match=rf"weights\[0, 0\] = {2 ** 64 - 1} is out of range"):
        load_recording(write_npz(tmp_path / "r.npz", arrays))


@pytest.mark.parametrize("key, value", [("spikes", 2 ** 40), ("input_spikes", -(2 ** 63)),
                                        ("snapshot_steps", -1)])
def test_int64_extremes_into_narrow_recording_fields_are_refused(tmp_path, net, key, value):
    rec = GoldenModel(net).run(np.zeros((10, net.m), bool), snapshot_every=5)
    arrays = rec.to_arrays()
    arrays[key] = arrays[key].astype(np.int64)
    arrays[key].reshape(-1)[0] = value
    with pytest.raises(NetworkError, match=rf"{key}\[0(, 0)?\] = {value} is out of range"):
        load_recording(write_npz(tmp_path / "r.npz", arrays))


@pytest.mark.parametrize("loader, member", [(load_network, "weights"), (load_stimulus, "spikes"),
                                            (load_recording, "spikes"), (load_network, "notes")])
def test_a_huge_declared_size_is_refused_from_the_header_at_once(tmp_path, loader, member):
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{member}.npy", fake_member((10 ** 6, 10 ** 6)))
    start = time.perf_counter()
    with pytest.raises(NetworkError, match=r"declares shape \(1000000, 1000000\) .* beyond the limit") as info:
        loader(path)
    assert time.perf_counter() - start < 0.5
    one_line(info)


def test_a_small_file_of_compressed_zeros_declaring_gigabytes_is_refused_before_reading(tmp_path):
    # A few hundred kilobytes that would decompress to more than the limit: the
    # header check refuses it without inflating it.
    path = tmp_path / "bomb.npz"
    rows = files.MAX_FILE_VALUES // 1024 + 1
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("spikes.npy", "w", force_zip64=True) as member:
            member.write(fake_member((rows, 1024), "|u1"))
            chunk = bytes(1 << 22)
            for _ in range(rows * 1024 // len(chunk)):
                member.write(chunk)
            member.write(bytes(rows * 1024 % len(chunk)))
    assert path.stat().st_size < 1 << 20
    start = time.perf_counter()
    with pytest.raises(NetworkError, match="beyond the limit"):
        load_stimulus(path)
    assert time.perf_counter() - start < 0.5


def test_a_member_declaring_more_data_than_it_holds_is_refused(tmp_path):
    path = tmp_path / "s.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("spikes.npy", fake_member((100, 4), "|u1", bytes(10)))
    with pytest.raises(NetworkError, match="more data than it holds"):
        load_stimulus(path)


def test_declared_shapes_that_do_not_fit_the_weights_are_refused_from_the_headers(tmp_path, net, monkeypatch):
    arrays = arrays_of(net)
    arrays["threshold"] = np.zeros(10 ** 6, np.int64)
    path = write_npz(tmp_path / "n.npz", arrays)
    read = []
    monkeypatch.setattr(files, "_read_member", lambda zf, info: read.append(info.filename))
    with pytest.raises(NetworkError, match=r"threshold: shape \(1000000,\) does not match the expected \(6,\)"):
        load_network(path)
    assert read == []


def test_recording_shapes_are_checked_from_the_headers(tmp_path, rec, monkeypatch):
    arrays = rec.to_arrays()
    arrays["v"] = np.zeros((rec.steps + 1, rec.spikes.shape[1]), np.int64)
    path = write_npz(tmp_path / "r.npz", arrays)
    monkeypatch.setattr(files, "_read_member", lambda zf, info: pytest.fail("data read"))
    with pytest.raises(NetworkError, match=r"v: shape \(31, 6\) does not match the expected \(30, 6\)"):
        load_recording(path)


def test_object_arrays_are_refused_in_any_field(tmp_path, net):
    arrays = arrays_of(net)
    arrays["weights"] = arrays["weights"].astype(object)
    with pytest.raises(NetworkError, match="member 'weights': object arrays are refused"):
        load_network(write_npz(tmp_path / "n.npz", arrays))


def test_a_member_that_is_not_an_array_is_one_line(tmp_path, net):
    path = write_npz(tmp_path / "n.npz", arrays_of(net))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.txt", b"free text, not a .npy array")
    with pytest.raises(NetworkError, match="member 'notes.txt': not a .npy array") as info:
        load_network(path)
    one_line(info)


@pytest.mark.parametrize("extras", [
    {"group_names": np.array(["a", "b"]), "group_kinds": np.array(["inputs"]),
     "group_starts": np.array([0]), "group_sizes": np.array([4])},
    {"group_names": np.array(["a"]), "group_kinds": np.array(["neurons"]),
     "group_starts": np.array([3]), "group_sizes": np.array([40])},
    {"group_names": np.array(["a"])},
])
def test_a_malformed_group_description_is_dropped_with_a_warning(tmp_path, net, extras, caplog):
    arrays = {**arrays_of(net), **extras, "description": np.array("kept")}
    with caplog.at_level(logging.WARNING, logger="neurofabric.host.files"):
        back = load_network(write_npz(tmp_path / "n.npz", arrays))
    assert not any(k.startswith("group_") for k in back.extras)
    assert str(back.extras["description"]) == "kept"
    assert "ignoring the group description" in caplog.text


def test_a_well_formed_group_description_is_kept(tmp_path):
    b = nf.NetworkBuilder()
    b.add_neurons(3, "exc", threshold=5)
    path = tmp_path / "n.npz"
    save_network(b.build(), path)
    assert list(load_network(path).extras["group_names"]) == ["exc"]


@pytest.mark.parametrize("report", [np.array("not json"), np.array('{"dt": 1}'), np.array([1, 2])])
def test_an_unreadable_quantisation_report_is_dropped_with_a_warning(tmp_path, net, report, caplog):
    arrays = {**arrays_of(net), "quantisation_report": report}
    with caplog.at_level(logging.WARNING, logger="neurofabric.host.files"):
        back = load_network(write_npz(tmp_path / "n.npz", arrays))
    assert "quantisation_report" not in back.extras and "quantisation_report" in caplog.text


@pytest.mark.parametrize("dt", [np.nan, np.inf, -1e-3, 0.0, np.array([1e-3, 2e-3]), np.array("1ms")])
def test_a_network_file_with_a_bad_dt_is_refused(tmp_path, net, dt):
    arrays = {**arrays_of(net), "dt": np.array(dt)}
    with pytest.raises(NetworkError, match="dt = .* is not a time step") as info:
        load_network(write_npz(tmp_path / "n.npz", arrays))
    one_line(info)


def test_a_fifo_as_input_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "net.npz"
    os.mkfifo(fifo)
    with pytest.raises(NetworkError, match="is not a regular file"):
        load_network(fifo)
    with pytest.raises(NetworkError, match="is not a regular file"):
        nf.import_nir(fifo, dt=1e-3)


# -- numbers -------------------------------------------------------------------------

def small_graph(**lif):
    params = dict(tau_syn=np.full(2, 2e-3), tau_mem=np.full(2, 8e-3), r=np.ones(2), v_leak=np.zeros(2),
                  v_threshold=np.ones(2), v_reset=np.zeros(2), w_in=np.ones(2))
    params.update(lif)
    nodes = {"in": nir.Input(input_type={"input": np.array([3])}),
             "fc": nir.Linear(weight=np.full((2, 3), 0.5)),
             "lif": nir.CubaLIF(**params),
             "out": nir.Output(output_type={"output": np.array([2])})}
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")])


@pytest.mark.parametrize("tolerance", [math.nan, math.inf, -0.1, "ten"])
def test_a_tolerance_that_is_not_a_finite_number_is_refused(tolerance):
    with pytest.raises(NetworkError, match="tolerance = .*(out of range|not a number)"):
        import_nir(small_graph(), dt=1e-3, tolerance=tolerance)


def test_a_nan_tolerance_would_have_passed_a_parameter_far_off():
    # 4096 * dt / tau = 1.4 steps: a decay factor of 1, 4.096 s realised, 40% off
    graph = small_graph(tau_mem=np.full(2, 4.096 / 1.4))
    with pytest.raises(NetworkError, match="beyond the tolerance of 10%"):
        import_nir(graph, dt=1e-3, tolerance=0.1)
    with pytest.raises(NetworkError, match="tolerance = nan"):
        PhysicalNetwork(1e-3).compile(tolerance=math.nan)


@pytest.mark.parametrize("dt", [math.inf, math.nan, -1e-3, 0.0, "fast"])
def test_a_time_step_that_is_not_positive_and_finite_is_refused_everywhere(net, dt):
    with pytest.raises(NetworkError, match="dt = ") as info:
        export_nir(net, dt=dt)
    one_line(info)
    with pytest.raises(NetworkError, match="dt = "):
        import_nir(small_graph(), dt=dt)
    with pytest.raises(NetworkError, match="dt = "):
        PhysicalNetwork(dt)


def test_export_with_a_good_dt_writes_finite_positive_time_constants(tmp_path, net):
    write_nir(export_nir(net, dt=5e-4), tmp_path / "n.nir")
    lif = nir.read(str(tmp_path / "n.nir")).nodes["neurons"]
    assert np.isfinite(lif.tau_mem).all() and (lif.tau_mem > 0).all()


@pytest.mark.parametrize("field, value, message", [
    ("v_threshold", np.array([1.0, np.inf]), r"v_threshold\[1\] = inf is infinite"),
    ("v_threshold", np.array([np.nan, 1.0]), "v_threshold holds NaN"),
    ("tau_mem", np.array([8e-3, np.nan]), "tau_mem holds NaN"),
    ("tau_mem", np.array([8e-3, -np.inf]), r"tau_mem\[1\] = -inf is infinite"),
    ("r", np.array([np.inf, 1.0]), r"r\[0\] = inf is infinite"),
    ("v_leak", np.array([-np.inf, 0.0]), r"v_leak\[0\] = -inf is infinite"),
    ("w_in", np.array([1.0, np.nan]), "w_in holds NaN"),
    ("v_reset", np.array([np.inf, 0.0]), r"v_reset\[0\] = inf is infinite"),
])
def test_nan_and_inf_in_nir_parameters_are_refused(field, value, message):
    with pytest.raises(NetworkError, match=message):
        import_nir(small_graph(**{field: value}), dt=1e-3)


def test_an_infinite_time_constant_still_means_no_decay():
    net, _ = import_nir(small_graph(tau_mem=np.full(2, np.inf)), dt=1e-3)
    assert net.decay_mem.tolist() == [0, 0]


@pytest.mark.parametrize("weight", [np.inf, np.nan])
def test_nan_and_inf_weights_and_biases_are_refused(weight):
    graph = small_graph()
    graph.nodes["fc"] = nir.Affine(weight=np.full((2, 3), 0.5), bias=np.array([0.0, weight]))
    with pytest.raises(NetworkError, match="NIR node 'fc': bias holds NaN or infinity"):
        import_nir(graph, dt=1e-3)
    graph.nodes["fc"] = nir.Linear(weight=np.array([[0.5, weight, 0.5], [0.5, 0.5, 0.5]]))
    with pytest.raises(NetworkError, match="NIR node 'fc': weight holds NaN or infinity"):
        import_nir(graph, dt=1e-3)


def test_nan_and_inf_weights_of_a_physical_network_are_refused():
    phys = PhysicalNetwork(1e-3)
    phys.add_inputs(2, "in")
    phys.add_population("p", 2, tau_mem=8e-3, tau_syn=2e-3)
    with pytest.raises(NetworkError, match="weights hold NaN or infinity"):
        phys.connect("in", "p", np.array([[1.0, np.inf], [0.0, 1.0]]))


@pytest.mark.parametrize("params, message", [
    (dict(refractory=-1e-3), r"refractory\[0\] = -0.001 s is negative"),
    (dict(refractory=np.inf), r"refractory\[0\] = inf is infinite"),
    (dict(scale=np.nan), "scale = nan is not a number"),
    (dict(scale=-2.0), "scale = -2 is out of range"),
])
def test_physical_parameters_out_of_their_domain_are_refused(params, message):
    phys = PhysicalNetwork(1e-3)
    with pytest.raises(NetworkError, match=message):
        phys.add_population("p", 2, tau_mem=8e-3, tau_syn=2e-3, **params)
        phys.compile()


@pytest.mark.parametrize("size", [2.5, math.nan, 0, "3"])
def test_physical_sizes_must_be_whole_numbers(size):
    with pytest.raises(NetworkError, match="is out of range: allowed a whole number, 1 or more"):
        PhysicalNetwork(1e-3).add_inputs(size, "x")


# -- the builder -----------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    (300.7, r"threshold \(group 'exc'\) = 300.7 is not a whole number"),
    (math.nan, r"threshold \(group 'exc'\) = nan is not a number"),
    (math.inf, r"threshold \(group 'exc'\) = inf is infinite"),
    ([10, 20.5], r"threshold\[1\] \(group 'exc', neuron 1\) = 20.5 is not a whole number"),
    (40000, r"threshold \(group 'exc'\) = 40000 is out of range: allowed -32768..32767"),
    ([1, 99999], r"threshold\[1\] \(group 'exc', neuron 1\) = 99999 is out of range"),
    (np.array([1, 2 ** 63], np.uint64), r"threshold\[1\] \(group 'exc', neuron 1\) = 9223372036854775808 is out"),
])
def test_the_builder_refuses_float_and_out_of_range_parameters_when_given(value, message):
    b = nf.NetworkBuilder()
    with pytest.raises(NetworkError, match=message) as info:
        b.add_neurons(2, "exc", threshold=value)
    one_line(info)
    assert b.neuron_groups == []


def test_the_builder_takes_whole_floats_as_integers():
    b = nf.NetworkBuilder()
    i = b.add_inputs(2.0, "in")
    exc = b.add_neurons(3.0, "exc", threshold=300.0, decay_mem=np.array([4.0, 5.0, 6.0]))
    b.connect(i, exc, weights=2.0)
    b.set_learning(a_plus=32.0, stdp_shift=6)
    net = b.build()
    assert net.threshold.tolist() == [300] * 3 and net.decay_mem.tolist() == [4, 5, 6]
    assert (net.weights[:2] == 2).all() and net.a_plus == 32 and net.weights.dtype == np.int64


@pytest.mark.parametrize("widths", [dict(state_bits=0), dict(weight_bits=0), dict(trace_bits=0),
                                    dict(state_bits=40), dict(weight_bits=8.5)])
def test_the_builder_refuses_width_0_and_widths_out_of_range(widths):
    with pytest.raises(NetworkError, match=f"{next(iter(widths))}"):
        nf.NetworkBuilder(**widths)


def test_the_builder_width_keywords_override_the_given_widths():
    b = nf.NetworkBuilder(nf.Widths(12, 6, 5), weight_bits=4)
    assert b.widths == nf.Widths(12, 4, 5)


@pytest.mark.parametrize("call, message", [
    (lambda b, i, e: b.connect(i, e, weights=1.5), "weights must be integers"),
    (lambda b, i, e: b.connect(i, e, weights=np.nan), "weights must be integers"),
    (lambda b, i, e: b.connect(i, e, weights=200), r"in->exc: weight = 200 is out of range: allowed -128..127"),
    (lambda b, i, e: b.connect(i, e, weights=np.full((2, 3), 2 ** 63, np.uint64)), "is out of range"),
    (lambda b, i, e: b.connect(i, e, rule="random", p=0.5, weights=(0.5, 3)), "weights must be integers"),
    (lambda b, i, e: b.connect(i, e, rule="random", p=0.5, weights=(0, 300)), "300 is out of range"),
    (lambda b, i, e: b.connect(i, e, rule="random", p=math.nan, weights=1), "probability p"),
    (lambda b, i, e: b.connect(i, e, rule="sparse", pairs=[(0, 1, 2.5)]), "weights must be integers"),
    (lambda b, i, e: b.connect(i, e, rule="sparse", pairs=[(0.5, 1, 2)]), "is not a whole number"),
    (lambda b, i, e: b.set_learning(a_plus=300), "a_plus = 300 is out of range: allowed 0..255"),
    (lambda b, i, e: b.set_learning(stdp_shift=2.5), "stdp_shift = 2.5 is not a whole number"),
    (lambda b, i, e: b.set_learning(learn=2), "learn = 2 is out of range"),
    (lambda b, i, e: b.add_neurons(2.5, threshold=1), "number of neurons = 2.5 is out of range"),
    (lambda b, i, e: b.add_neurons(2, threshold=1, decay_mem=4097),
     r"decay_mem \(group 'neurons1'\) = 4097 is out of range"),
])
def test_builder_values_are_checked_when_given(call, message):
    b = nf.NetworkBuilder()
    i = b.add_inputs(2, "in")
    e = b.add_neurons(3, "exc", threshold=10)
    with pytest.raises(NetworkError, match=message) as info:
        call(b, i, e)
    one_line(info)


# -- devices re-check what they load -----------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda n: n.threshold.__setitem__(0, 10 ** 6), r"threshold\[0\] = 1000000 is out of range"),
    (lambda n: n.weights.__setitem__((1, 1), 500), r"weights\[1, 1\] = 500 is out of range"),
    (lambda n: setattr(n, "learn", 7), "learn = 7 is out of range"),
    (lambda n: setattr(n, "decay_mem", n.decay_mem[:2]), r"decay_mem: shape \(2,\) does not match"),
    (lambda n: setattr(n, "bias", n.bias.astype(float) + 0.5), "bias: dtype float64 is not an integer type"),
    (lambda n: (setattr(n, "w_min", 10), setattr(n, "w_max", 5)), "w_min = 10 is greater than w_max = 5"),
])
def test_an_edited_network_is_refused_by_every_golden_entry_point(net, edit, message):
    edit(net)
    with nf.open_device("golden") as dev:
        with pytest.raises(NetworkError, match=message) as info:
            dev.load(net)
        one_line(info)
        assert dev.network is None
    with pytest.raises(NetworkError, match=message):
        GoldenModel(net)


def test_loading_something_that_is_not_a_network_is_a_device_error():
    with nf.open_device("golden") as dev, pytest.raises(DeviceError, match="dict is not a Network"):
        dev.load({"weights": np.zeros((2, 2))})


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=2.5), "steps = 2.5 is not a whole number"),
    (dict(steps=math.nan), "steps = nan is not a number"),
    (dict(snapshot_every=2.5), "snapshot_every = 2.5 is not a whole number"),
])
def test_run_counts_must_be_whole_numbers(net, kwargs, message):
    with pytest.raises(NetworkError, match=message):
        GoldenModel(net).run(np.zeros((4, net.m), bool), **kwargs)


def test_weight_snapshots_beyond_the_budget_are_refused_with_the_figure(net, monkeypatch):
    monkeypatch.setattr(golden, "SNAPSHOT_BUDGET_BYTES", 1 << 20)
    # 10 x 6 weights of 8 bytes = 480 bytes a snapshot; 5,000 snapshots = 2.3 MiB.
    with pytest.raises(DeviceError, match=r"snapshot_every = 1 over 5,000 steps keeps 5,000 weight snapshots "
                                          r"of 10 x 6: 2\.3 MiB of memory, beyond the budget of 1\.0 MiB; "
                                          r"take fewer snapshots \(a larger snapshot_every\)"):
        GoldenModel(net).run(np.zeros((5000, net.m), bool), snapshot_every=1)
    assert GoldenModel(net).run(np.zeros((5000, net.m), bool), snapshot_every=10).weight_snapshots.shape[0] == 500


def test_weight_snapshots_past_the_warning_figure_are_logged(net, monkeypatch, caplog):
    monkeypatch.setattr(golden, "SNAPSHOT_WARN_BYTES", 1 << 10)
    with caplog.at_level(logging.WARNING, logger="neurofabric.host.golden"):
        GoldenModel(net).run(np.zeros((100, net.m), bool), snapshot_every=1)
    assert "keeps 100 weight snapshots of 10 x 6: 0.0 MiB" in caplog.text
