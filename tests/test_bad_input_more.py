"""Bad input never costs data, continued: the demos' files, the snapshot budget on every device, NIR input.

The demos check their output folder before any work and write every file
atomically; `Device.run` refuses weight snapshots beyond the budget on every
device before anything runs (or is built); NIR files are checked from their
HDF5 metadata (declared shapes, links, kinds) before any dataset is read.
"""

import json
import os
import stat
import time

import numpy as np
import pytest

import neurofabric as nf
from neurofabric.host import demo, digits, digits_onchip, golden
from neurofabric.host.device import GoldenDevice, open_device
from neurofabric.host.errors import DeviceError, NetworkError
from neurofabric.host.files import load_network, load_recording
from neurofabric.host.safe_io import check_output_folder


def one_line(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


class Tripwire:
    """Stands in for work that takes long: reaching it means bad input was not refused first."""

    def __init__(self, what):
        self.what = what

    def __call__(self, *args, **kwargs):
        raise AssertionError(f"{self.what} started although the input was bad")


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- the output folder ----------------------------------------------------------------

def test_an_output_folder_that_is_a_regular_file_is_refused_and_kept(tmp_path):
    plain = tmp_path / "results"
    plain.write_text("keep me")
    with pytest.raises(NetworkError, match=r"demo folder '.*results' exists and is a regular file, not a "
                                           r"folder") as info:
        check_output_folder(plain, ("summary.json",), what="demo")
    one_line(info)
    assert plain.read_text() == "keep me"


def test_an_output_folder_whose_parent_is_missing_is_refused_and_nothing_is_made(tmp_path):
    with pytest.raises(NetworkError, match=r"its parent '.*typo' does not exist") as info:
        check_output_folder(tmp_path / "typo" / "run1", ("summary.json",), what="demo")
    one_line(info)
    assert list(tmp_path.iterdir()) == []
    made = check_output_folder(tmp_path / "out" / "run1", ("summary.json",), parents=True)
    assert made.is_dir()


def test_an_output_folder_is_made_when_its_parent_exists(tmp_path):
    assert check_output_folder(tmp_path / "run1", ("summary.json",)).is_dir()


def test_a_fifo_where_a_file_of_the_folder_goes_is_refused_before_the_work(tmp_path):
    os.mkfifo(tmp_path / "result.json")
    with pytest.raises(NetworkError, match=r"digits demo file '.*result\.json' is a FIFO"):
        check_output_folder(tmp_path, digits.OUTPUT_FILES, what="digits demo")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "result.json").st_mode)


# -- the pattern demo ----------------------------------------------------------------

@pytest.fixture
def no_device(monkeypatch):
    monkeypatch.setattr(demo, "open_device", Tripwire("the demo's device"))


def test_the_pattern_demo_refuses_a_file_as_its_folder_before_opening_a_device(tmp_path, no_device):
    (tmp_path / "plain").write_text("keep me")
    start = time.monotonic()
    with pytest.raises(NetworkError, match="exists and is a regular file") as info:
        demo.pattern_demo(device="golden", out_dir=tmp_path / "plain")
    one_line(info)
    assert time.monotonic() - start < 1.0
    assert (tmp_path / "plain").read_text() == "keep me"


def test_the_pattern_demo_refuses_a_folder_whose_parent_is_missing_before_opening_a_device(tmp_path, no_device):
    with pytest.raises(NetworkError, match="its parent .* does not exist") as info:
        demo.pattern_demo(device="golden", out_dir=tmp_path / "missing" / "demo")
    one_line(info)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("name", demo.OUTPUT_FILES)
def test_the_pattern_demo_refuses_a_symlink_where_any_of_its_files_goes_before_the_work(tmp_path, no_device, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / name).symlink_to(victim)
    with pytest.raises(NetworkError, match=f"demo file '.*{name}' is a symbolic link"):
        demo.pattern_demo(device="golden", out_dir=folder)
    assert (folder / name).is_symlink() and victim.read_text() == "keep me"


def test_the_pattern_demo_writes_every_file_whole_and_replaces_old_ones_atomically(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "summary.json").write_text("an old summary")
    old_inode = os.stat(folder / "summary.json").st_ino
    lines = demo.pattern_demo(device="golden", out_dir=folder, train_steps=400, test_steps=300)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["device"] == "golden" and summary["seed"] == 1
    # Replaced by a rename (a new file), not rewritten in place.
    assert os.stat(folder / "summary.json").st_ino != old_inode
    training = load_recording(folder / "training.npz")
    assert training.steps == 400 and training.weight_snapshots.shape[0] == 400 // 50
    for name in demo.PICTURES:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert leftovers(folder) == []
    assert f"wrote {folder / 'summary.json'}" in lines[-1]


# -- the digits demos -----------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_result():
    rng = np.random.default_rng(5)
    network, report = digits.digits_network(rng.normal(0, 0.3, (64, 10)), rng.normal(0, 0.1, 10),
                                            threshold=4.0, tolerance=0.5)
    return {"device": "golden", "test_accuracy": 0.5, "report": report, "network": network}


def test_the_digits_results_are_written_whole_and_the_result_is_left_as_it_was(tmp_path, digits_result):
    paths = digits.save_digits_results(digits_result, tmp_path / "digits")
    assert [p.name for p in paths] == list(digits.OUTPUT_FILES)
    assert np.array_equal(load_network(paths[0]).weights, digits_result["network"].weights)
    assert paths[1].read_text() == "\n".join(digits_result["report"].lines()) + "\n"
    assert json.loads(paths[2].read_text()) == {"device": "golden", "test_accuracy": 0.5}
    assert {"report", "network"} <= set(digits_result)
    assert leftovers(tmp_path / "digits") == []


def test_the_digits_results_refuse_a_device_node_among_them_and_write_none(tmp_path, digits_result):
    folder = tmp_path / "digits"
    folder.mkdir()
    (folder / "result.json").symlink_to("/dev/null")
    with pytest.raises(NetworkError, match="result.json' is a symbolic link"):
        digits.save_digits_results(digits_result, folder)
    # Checked before the first file is written: the network file is not there either.
    assert sorted(p.name for p in folder.iterdir()) == ["result.json"]
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.fixture(scope="module")
def onchip_result():
    return digits_onchip.onchip_digits_demo(train_samples=40, test_samples=10, epochs=1, compare_offchip=False)


def test_the_onchip_results_are_written_whole(tmp_path, onchip_result):
    paths = digits_onchip.save_onchip_results(onchip_result, tmp_path / "onchip")
    assert [p.name for p in paths] == list(digits_onchip.OUTPUT_FILES)
    assert np.array_equal(load_network(paths[0]).weights, onchip_result["network"].weights)
    assert json.loads(paths[1].read_text())["test_accuracy"] == onchip_result["test_accuracy"]
    assert leftovers(tmp_path / "onchip") == []


def test_the_onchip_results_refuse_a_fifo_among_them_and_write_none(tmp_path, onchip_result):
    os.mkfifo(tmp_path / "learning_curve.png")
    with pytest.raises(NetworkError, match="learning_curve.png' is a FIFO") as info:
        digits_onchip.save_onchip_results(onchip_result, tmp_path)
    one_line(info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learning_curve.png"]


def test_the_onchip_results_refuse_a_file_as_their_folder(tmp_path, onchip_result):
    (tmp_path / "plain").write_text("keep me")
    with pytest.raises(NetworkError, match="exists and is a regular file"):
        digits_onchip.save_onchip_results(onchip_result, tmp_path / "plain")
    assert (tmp_path / "plain").read_text() == "keep me"


# -- the snapshot budget on every device ------------------------------------------------

@pytest.fixture
def wide_net():
    # 128 x 64 weights: 64 KiB a snapshot, so 40,000 snapshots need 2.4 GiB,
    # beyond the 2 GiB budget, from a stimulus of only 2.5 MB.
    return nf.random_network(64, 64, seed=2, learn=1)


HUGE = dict(steps=40_000, snapshot_every=1)
BUDGET = r"keeps 40,000 weight snapshots of 128 x 64: 2\.4 GiB of memory, beyond the budget of 2\.0 GiB"


def test_the_golden_device_refuses_snapshots_beyond_the_budget_before_its_model_runs(wide_net, monkeypatch):
    with open_device("golden") as dev:
        dev.load(wide_net)
        monkeypatch.setattr(golden.GoldenModel, "run", Tripwire("the golden model's run"))
        with pytest.raises(DeviceError, match=BUDGET) as info:
            dev.run(np.zeros((10, wide_net.m), bool), **HUGE)
        one_line(info)


def test_the_golden_device_runs_snapshots_within_the_budget(wide_net):
    with open_device("golden") as dev:
        dev.load(wide_net)
        rec = dev.run(np.zeros((10, wide_net.m), bool), steps=100, snapshot_every=10)
    assert rec.weight_snapshots.shape == (10, 128, 64)


@pytest.mark.parametrize("kind, module, builders", [
    ("rtl", "neurofabric.sim.board", ("board_program", "build_board", "SimulatedBoard")),
    ("rtl-direct", "neurofabric.sim.rtl_device", ("core_model", "run_cocotb")),
])
def test_a_simulated_device_refuses_snapshots_beyond_the_budget_before_any_build(wide_net, monkeypatch, kind,
                                                                                module, builders):
    import importlib
    sim = importlib.import_module(module)
    for name in builders:
        monkeypatch.setattr(sim, name, Tripwire(f"{module}.{name}"))
    dev = open_device(kind)
    monkeypatch.setattr(type(dev), "_run", Tripwire(f"the {kind} run"))
    # `load` builds the board or the core for the network; the budget depends
    # only on the network's size, so the network is given as `load` leaves it.
    dev.network = wide_net
    start = time.monotonic()
    with pytest.raises(DeviceError, match=BUDGET) as info:
        dev.run(np.zeros((10, wide_net.m), bool), **HUGE)
    one_line(info)
    assert time.monotonic() - start < 2.0


def test_a_serial_device_refuses_snapshots_beyond_the_budget_before_a_run_request(monkeypatch):
    # An in-process board that speaks the protocol (tests/test_link_host.py).
    from neurofabric.contract.protocol import Command
    from neurofabric.host.serial_device import SerialDevice
    from tests.test_link_host import FakeDevice
    board = FakeDevice(n=16, m=8)
    net = nf.random_network(16, 8, seed=4)
    monkeypatch.setattr(golden, "SNAPSHOT_BUDGET_BYTES", 1 << 20)
    with SerialDevice(board, timeout=0.5) as dev:
        dev.load(net)
        with pytest.raises(DeviceError, match=r"keeps 1,000 weight snapshots of 24 x 16: 2\.9 MiB") as info:
            dev.run(np.zeros((1000, 8), bool), snapshot_every=1)
        one_line(info)
    assert board.applied[Command.RUN] == 0


def test_a_negative_snapshot_interval_is_still_a_device_error():
    with GoldenDevice() as dev:
        dev.load(nf.random_network(4, 2, seed=1))
        with pytest.raises(DeviceError, match="snapshot_every = -1 is out of range: allowed 0 or more"):
            dev.run(np.zeros((5, 2), bool), snapshot_every=-1)
        with pytest.raises(NetworkError, match="snapshot_every = 2.5 is not a whole number"):
            dev.run(np.zeros((5, 2), bool), snapshot_every=2.5)


# -- NIR input ---------------------------------------------------------------------------

def nir_file(path, m=20, n=16):
    """A NIR graph file as the nir package writes it: Input -> Linear -> CubaLIF -> Output."""
    import nir
    rng = np.random.default_rng(7)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([m])}),
        "fc": nir.Linear(weight=rng.normal(0.6, 0.4, (n, m))),
        "lif": nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 8e-3), r=np.full(n, 2.0),
                           v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n)),
        "out": nir.Output(output_type={"output": np.array([n])}),
    }, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")])
    nir.write(str(path), graph)
    return path


@pytest.fixture
def no_nir_read(monkeypatch):
    import nir
    monkeypatch.setattr(nir, "read", Tripwire("nir.read"))


def test_a_nir_file_declaring_a_huge_dataset_is_refused_before_any_data_is_read(tmp_path, no_nir_read):
    import h5py
    from neurofabric.host.nir_io import import_nir
    path = nir_file(tmp_path / "huge.nir")
    with h5py.File(path, "a") as fh:
        del fh["node/nodes/fc/weight"]
        # 2**40 float64 values (8 TiB) declared, in compressed chunks of which none is written.
        fh.create_dataset("node/nodes/fc/weight", shape=(1 << 20, 1 << 20), dtype="f8", chunks=(64, 64),
                          compression="gzip")
    assert path.stat().st_size < 100_000
    start = time.monotonic()
    with pytest.raises(NetworkError, match=r"dataset /node/nodes/fc/weight declares shape \(1048576, 1048576\) "
                                           r"of float64 \(1,099,511,627,776 values, .*\), beyond the limit of "
                                           r"268,435,456 values \(files\.MAX_FILE_VALUES\)") as info:
        import_nir(path, 1e-3)
    one_line(info)
    assert time.monotonic() - start < 1.0


def test_the_nir_limits_are_read_when_a_file_is_checked(tmp_path, monkeypatch):
    from neurofabric.host import files
    from neurofabric.host.nir_io import import_nir
    path = nir_file(tmp_path / "g.nir")
    assert import_nir(path, 1e-3)[0].m == 20
    monkeypatch.setattr(files, "MAX_FILE_VALUES", 100)   # a program may lower (or raise) the limit
    with pytest.raises(NetworkError, match="beyond the limit of 100 values"):
        import_nir(path, 1e-3)


def test_the_nir_command_refuses_the_huge_file_with_one_line_and_writes_nothing(tmp_path):
    import h5py
    from click.testing import CliRunner
    from neurofabric.host.cli import cli
    path = nir_file(tmp_path / "huge.nir")
    with h5py.File(path, "a") as fh:
        fh.create_dataset("node/metadata/padding", shape=(1 << 40,), dtype="u1", chunks=(1 << 16,),
                          compression="gzip")
    result = CliRunner().invoke(cli, ["import-nir", str(path), "--dt", "1ms", "-o", str(tmp_path / "n.npz")])
    assert result.exit_code == 3, result.output
    assert result.stderr.count("\n") == 1 and "declares shape (1099511627776,) of uint8" in result.stderr
    assert not (tmp_path / "n.npz").exists()


def test_a_fifo_as_nir_file_is_refused_without_waiting_for_a_writer(tmp_path, no_nir_read):
    import threading
    from neurofabric.host.nir_io import read_nir
    os.mkfifo(tmp_path / "g.nir")
    outcome = []

    def read():
        try:
            read_nir(tmp_path / "g.nir")
        except NetworkError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():   # let the blocked reader go before failing
        with open(tmp_path / "g.nir", "wb"):
            pass
    assert outcome == [f"NIR file {str(tmp_path / 'g.nir')!r} is not a regular file"]


@pytest.mark.parametrize("content", [b"", b"junk", bytes(range(256)) * 64, b"PK\x03\x04" + bytes(100)])
def test_a_nir_file_that_is_not_hdf5_is_one_line(tmp_path, no_nir_read, content):
    from neurofabric.host.nir_io import read_nir
    (tmp_path / "g.nir").write_bytes(content)
    with pytest.raises(NetworkError, match="cannot be read: it is not an HDF5 file, which NIR graph files are") \
            as info:
        read_nir(tmp_path / "g.nir")
    one_line(info)


def test_a_truncated_nir_file_is_one_line(tmp_path, no_nir_read):
    from neurofabric.host.nir_io import read_nir
    path = nir_file(tmp_path / "g.nir")
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(NetworkError, match="g.nir' cannot be read") as info:
        read_nir(path)
    one_line(info)


def _external_link(fh, tmp_path):
    import h5py
    os.mkfifo(tmp_path / "fifo")
    fh["node/nodes/fc/weight_elsewhere"] = h5py.ExternalLink(str(tmp_path / "fifo"), "/weight")


def _soft_link(fh, tmp_path):
    import h5py
    fh["node/nodes/again"] = h5py.SoftLink("/node/nodes/fc")


def _second_name(fh, tmp_path):
    for k in range(3):
        fh[f"node/nodes/copy{k}"] = fh["node/nodes/fc"]


def _external_storage(fh, tmp_path):
    (tmp_path / "raw.bin").write_bytes(bytes(64))
    fh.create_dataset("node/metadata/outside", shape=(8,), dtype="f8", external=[(str(tmp_path / "raw.bin"), 0, 64)])


@pytest.mark.parametrize("plant, message", [
    (_external_link, r"/node/nodes/fc/weight_elsewhere is an external link; NIR files hold no links"),
    (_soft_link, r"/node/nodes/again is a soft link; NIR files hold no links"),
    (_second_name, r"/node/nodes/copy\d is a second name of an object already in the file"),
    (_external_storage, r"dataset /node/metadata/outside keeps its data in other files"),
])
def test_a_nir_file_that_reaches_outside_itself_or_names_an_object_twice_is_refused(tmp_path, no_nir_read, plant,
                                                                                    message):
    import h5py
    from neurofabric.host.nir_io import read_nir
    path = nir_file(tmp_path / "g.nir")
    with h5py.File(path, "a") as fh:
        plant(fh, tmp_path)
    with pytest.raises(NetworkError, match=message) as info:
        read_nir(path)
    one_line(info)


@pytest.mark.parametrize("shape, message", [
    ([1 << 40], r"1,099,511,627,776 inputs and 4 neurons make"),
    ([1 << 32, 1 << 32], r"18,446,744,073,709,551,616 inputs"),   # wraps round to 0 in int64
    ([-3], r"shape \[-3\.0\] is not a list of whole numbers, 0 or more"),
    ([2.5], r"shape \[2\.5\] is not a list of whole numbers"),
])
def test_a_nir_input_declaring_a_huge_or_broken_size_is_refused_before_any_matrix(shape, message):
    import nir
    from neurofabric.host.nir_io import import_nir
    # Built without nir's type check (as `nir.read(..., type_check=False)` reads
    # older files): nothing but import_nir stands between the sizes and the matrices.
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array(shape)}),
        "lif": nir.LIF(tau=np.full(4, 8e-3), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4)),
    }, edges=[("in", "lif")], type_check=False)
    with pytest.raises(NetworkError, match=message) as info:
        import_nir(graph, 1e-3)
    one_line(info)


def test_an_input_group_far_larger_than_its_population_imports_without_an_identity_matrix():
    import nir
    from neurofabric.host.nir_io import import_nir
    m, n = 200_000, 2   # the identity of the inputs would take 320 GB
    weight = np.zeros((n, m))
    weight[0, :5] = weight[1, 5:10] = 0.3
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([m])}),
        "fc": nir.Linear(weight=weight),
        "lif": nir.LIF(tau=np.full(n, 8e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n)),
    }, edges=[("in", "fc"), ("fc", "lif")])
    net, _ = import_nir(graph, 1e-3)
    assert (net.m, net.n) == (m, n)
    assert (net.weights[:5, 0] > 0).all() and (net.weights[5:10, 1] > 0).all()
    assert not net.weights[10:m].any()
