"""PyNN's own system scenarios (test/system/scenarios of the PyNN 0.13.0 sources) against neurofabric.pynn.

The scenarios come from PyNN's source distribution: `pip download --no-deps --no-binary :all:
pyNN==0.13.0` into neurofabric's cache folder (once; later runs use the cached copy, so the suite runs
offline after the first time), checked against its published SHA-256. `NEUROFABRIC_PYNN_SDIST` may name a
local copy of the archive instead.

Every scenario test function is either run (`RUN`) or excluded by name with the reason (`EXCLUDED`);
a scenario that is in neither fails `test_every_scenario_is_run_or_excluded`. The excluded ones that
neurofabric refuses are run too, and must fail with its `UnsupportedError` for the reason given. The
scenarios that run also run on the simulated board, which must return what the golden model returns.
"""

import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

import neurofabric.pynn as sim
from neurofabric.paths import cache_dir
from neurofabric.pynn import engine as engine_module
from neurofabric.pynn.errors import UnsupportedError

VERSION = "0.13.0"
SDIST = f"pynn-{VERSION}.tar.gz"
SHA256 = "da2821e45055a88de6cf34896067eaaebcabbfdfb7883dd147353e7b78617815"
PACKAGE = "pynn_system_scenarios"

#: The scenarios that use only what the core runs.
RUN = [
    "test__simulation_control::test_reset",
    "test__simulation_control::test_reset_with_clear",
    "test__simulation_control::test_reset_with_spikes",
    "test__simulation_control::test_setup",
    "test_cell_types::test_SpikeSourcePoisson",
    "test_cell_types::test_issue511",
    "test_cell_types::test_update_SpikeSourceArray",
    "test_connection_handling::test_issue672",
    "test_electrodes::test_issue483",
    "test_parameter_handling::test_issue241",
]

#: The scenarios of RUN that run the device, but for the 10^6-step Poisson statistics: on the simulated
#: board as well. (The generator on the board is checked by tests/test_pynn_acceptance.py.)
ON_BOARD = [
    "test__simulation_control::test_reset",
    "test__simulation_control::test_reset_with_clear",
    "test__simulation_control::test_reset_with_spikes",
    "test__simulation_control::test_setup",
    "test_cell_types::test_update_SpikeSourceArray",
    "test_electrodes::test_issue483",
]

#: One simulated board for every scenario (and the acceptance script): larger than their networks, so
#: it is built once, and the unused neurons and inputs must behave as absent (spec section 1).
BOARD = {"neurons": 16, "inputs": 64}

_COND = "IF_cond_exp is not supported"
#: Scenario -> (why it is excluded, the start of neurofabric's refusal or None when it is not ours).
EXCLUDED = {
    "test__simulation_control::test_run_until": ("IF_cond_exp: conductance-based synapses", _COND),
    "test_cell_types::test_EIF_cond_alpha_isfa_ista": ("adaptive exponential neuron, conductance-based",
                                                       "EIF_cond_alpha_isfa_ista is not supported"),
    "test_cell_types::test_HH_cond_exp": ("Hodgkin-Huxley neuron", "HH_cond_exp is not supported"),
    "test_cell_types::test_SpikeSourceGamma": ("gamma process; the generator is Bernoulli per step",
                                               "SpikeSourceGamma is not supported"),
    "test_cell_types::test_SpikeSourcePoissonRefractory": ("Poisson with dead time",
                                                           "SpikeSourcePoissonRefractory is not supported"),
    "test_cell_types::test_composed_neuron_model_homogeneous_receptors": (
        "composed PointNeuron (AdExp, LIF, alpha and conductance PSRs)", "AdExp is not supported"),
    "test_connection_handling::test_connection_access_weight_and_delay": ("IF_cond_exp", _COND),
    "test_connection_handling::test_connections_attribute": ("IF_cond_exp", _COND),
    "test_connection_handling::test_issue652": ("IF_cond_exp", _COND),
    "test_connectors::test_all_to_all_static_no_self": ("IF_cond_exp", _COND),
    "test_connectors::test_all_to_all_tsodyksmarkram": ("IF_cond_exp, Tsodyks-Markram synapses", _COND),
    "test_connectors::test_fixed_number_post_no_replacement": ("IF_cond_exp", _COND),
    "test_connectors::test_fixed_number_post_with_replacement": ("IF_cond_exp", _COND),
    "test_connectors::test_fixed_number_post_with_replacement_heterogeneous_parameters": (
        "IF_cond_exp, Tsodyks-Markram synapses", _COND),
    "test_connectors::test_fixed_number_pre_no_replacement": ("IF_cond_exp", _COND),
    "test_connectors::test_fixed_number_pre_with_replacement": ("IF_cond_exp", _COND),
    "test_connectors::test_fixed_number_pre_with_replacement_heterogeneous_parameters": (
        "IF_cond_exp, Tsodyks-Markram synapses", _COND),
    "test_connectors::test_issue309": ("IF_cond_exp", _COND),
    "test_connectors::test_issue622": ("IF_cond_exp", _COND),
    "test_electrodes::test_changing_electrode": (
        "a DCSource's amplitude changed between runs: the bias is loaded with the network, with a reset",
        "the network changed after the simulation started (a DCSource's parameters"),
    "test_electrodes::test_issue165": ("IF_cond_exp", _COND),
    "test_electrodes::test_issue321": ("IF_curr_alpha, StepCurrentSource", "IF_curr_alpha is not supported"),
    "test_electrodes::test_issue437": ("IF_curr_alpha, NoisyCurrentSource", "IF_curr_alpha is not supported"),
    "test_electrodes::test_issue442": ("IF_curr_alpha, ACSource", "IF_curr_alpha is not supported"),
    "test_electrodes::test_issue445": ("ACSource", "ACSource is not supported"),
    "test_electrodes::test_issue451": (
        "a DCSource's amplitude changed between runs (and switched at 25 and 50 ms)",
        "the network changed after the simulation started (a DCSource's parameters"),
    "test_electrodes::test_issue487": ("StepCurrentSource; DCSources switched during runs",
                                       "StepCurrentSource is not supported"),
    "test_electrodes::test_issue497": ("ACSource", "ACSource is not supported"),
    "test_electrodes::test_issue512": ("StepCurrentSource", "StepCurrentSource is not supported"),
    "test_electrodes::test_issue631": ("ACSource, NoisyCurrentSource, StepCurrentSource",
                                       "ACSource is not supported"),
    "test_electrodes::test_issue759": ("StepCurrentSource", "StepCurrentSource is not supported"),
    "test_electrodes::test_issue_465_474_630": ("ACSource, NoisyCurrentSource, StepCurrentSource",
                                                "ACSource is not supported"),
    "test_electrodes::test_ticket226": ("IF_curr_alpha", "IF_curr_alpha is not supported"),
    "test_issue231::test_issue231": ("IF_cond_exp", _COND),
    "test_issue274::test_issue274": ("IF_cond_exp", _COND),
    "test_parameter_handling::test_issue302": ("IF_cond_exp", _COND),
    "test_parameter_handling::test_issue505": ("IF_cond_exp, Tsodyks-Markram synapses", _COND),
    "test_parameter_handling::test_set_synaptic_parameters_fully_connected": ("IF_cond_exp", _COND),
    "test_parameter_handling::test_set_synaptic_parameters_multiply_connected": ("IF_cond_exp", _COND),
    "test_parameter_handling::test_set_synaptic_parameters_partially_connected": ("IF_cond_exp", _COND),
    "test_procedural_api::test_ticket195": ("IF_cond_exp", _COND),
    "test_recording::test_issue259": ("off-grid spike times", "spike_precision='off_grid'"),
    "test_recording::test_issue499": ("a DCSource switched on at 20 ms, during the run",
                                      "a DCSource of 0.5 nA from 20 to 80 ms is not on for the whole run"),
    "test_recording::test_mix_procedural_and_oo": ("IF_cond_exp", _COND),
    "test_recording::test_record_vm_and_gsyn_from_assembly": ("IF_cond_exp, EIF_cond_exp_isfa_ista", _COND),
    "test_recording::test_record_with_filename": ("a DCSource switched on at 25 ms, during the run",
                                                  "a DCSource of 2.5 nA from 25 to 75 ms is not on"),
    "test_recording::test_reset_recording": ("IF_cond_exp", _COND),
    "test_recording::test_sampling_interval": ("IF_cond_exp", _COND),
    "test_scenario1::test_scenario1": ("IF_cond_exp; random initial v", _COND),
    "test_scenario1::test_scenario1a": ("IF_cond_alpha; random initial v", "IF_cond_alpha is not supported"),
    "test_scenario2::test_scenario2": ("off-grid spike times; DCSources switched during the run",
                                       "spike_precision='off_grid'"),
    "test_scenario3::test_scenario3": ("IF_cond_exp (its STDP is the core's rule, its neurons are not)", _COND),
    "test_scenario4::test_scenario4": ("EIF_cond_exp_isfa_ista, Tsodyks-Markram synapses, distance-dependent "
                                       "delays", "EIF_cond_exp_isfa_ista is not supported"),
    "test_scenario5::test_scenario5": ("multi-compartment neurons (PyNN's arbor and neuron backends; needs "
                                       "morphio and libNeuroML)", None),
    "test_synapse_types::test_simple_stochastic_synapse": ("IF_cond_exp, stochastic synapses", _COND),
    "test_ticket166::test_ticket166": ("IF_cond_exp", _COND),
}


def _sdist(folder):
    given = os.environ.get("NEUROFABRIC_PYNN_SDIST")
    if given:
        return Path(given)
    path = folder / SDIST
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as download:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                                   f"pyNN=={VERSION}", "-d", download], capture_output=True, text=True, timeout=600)
            got = Path(download) / SDIST
            if done.returncode != 0 or not got.exists():
                pytest.fail(f"PyNN {VERSION}'s source distribution is not in {folder} and pip could not download "
                            f"it ({done.stderr.strip().splitlines()[-1:] or done.returncode}); put {SDIST} there, "
                            "or name it with NEUROFABRIC_PYNN_SDIST")
            os.replace(got, path)       # whole or not at all, for test processes running side by side
    return path


#: What is taken from the archive: the scenarios, the example scripts and the documentation's list of them.
PARTS = ("test/system/scenarios/", "examples/", "doc/examples/")


def pynn_sources() -> Path:
    """PyNN 0.13.0's sources in the cache folder (the parts this suite uses), fetched and checked once."""
    folder = cache_dir() / "pynn"
    target = folder / f"pynn-{VERSION}"
    if not (target / ".complete").exists():
        archive = _sdist(folder)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        assert digest == SHA256, f"{archive}: SHA-256 {digest}, not PyNN {VERSION}'s {SHA256}"
        top = f"pynn-{VERSION}/"
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".pynn-{VERSION}-"))
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name[len(top):] if member.name.startswith(top) else None
                if (member.isfile() and name and name.startswith(PARTS) and ".." not in name.split("/")
                        and name.count("/") == next(p for p in PARTS if name.startswith(p)).count("/")):
                    path = staging / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(tar.extractfile(member).read())
        (staging / ".complete").write_text(SHA256)
        if target.exists() and not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)      # left half-made by an interrupted run
        try:
            staging.rename(target)                          # in place whole, or another process was first
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def scenarios():
    """The `pynn_system_scenarios` package: PyNN's test/system/scenarios, from the cached sdist."""
    target = pynn_sources() / "test" / "system" / "scenarios"
    spec = importlib.util.spec_from_file_location(PACKAGE, target / "__init__.py",
                                                  submodule_search_locations=[str(target)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    return target


def scenario(name):
    module, function = name.split("::")
    return getattr(importlib.import_module(f"{PACKAGE}.{module}"), function)


@pytest.fixture
def quiet_logging():
    """Some scenarios call PyNN's init_logging(debug=True); put the root logger back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_every_scenario_is_run_or_excluded(scenarios):
    found = set()
    for path in sorted(scenarios.glob("test*.py")):
        module = importlib.import_module(f"{PACKAGE}.{path.stem}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test") and function.__module__ == module.__name__:
                found.add(f"{path.stem}::{name}")
    assert not set(RUN) & set(EXCLUDED)
    assert found == set(RUN) | set(EXCLUDED), (sorted(found - set(RUN) - set(EXCLUDED)),
                                               sorted(set(RUN) | set(EXCLUDED) - found))


# PyNN's scenarios use forms PyNN itself deprecates (a cell class with a parameter dict).
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", RUN)
def test_scenario_passes(name, scenarios, tmp_path, monkeypatch, quiet_logging):
    monkeypatch.chdir(tmp_path)
    scenario(name)(sim)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", [n for n, (_, refusal) in EXCLUDED.items() if refusal])
def test_excluded_scenario_is_refused_for_its_reason(name, scenarios, tmp_path, monkeypatch, quiet_logging):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsupportedError) as info:
        scenario(name)(sim)
    assert str(info.value).startswith(EXCLUDED[name][1]) or EXCLUDED[name][1] in str(info.value)
    sim.end()


def _digests(name, device, monkeypatch):
    """Run a scenario on `device`; the digest of what the device returned in each simulation it set up."""
    engines = []
    init = engine_module.Engine.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        engines.append(self)

    monkeypatch.setattr(engine_module.Engine, "__init__", recording_init)
    monkeypatch.setattr(sim.simulator.state, "default_device", device)
    monkeypatch.setattr(sim.simulator.state, "default_device_options", BOARD if device == "rtl" else {})
    scenario(name)(sim)
    sim.end()
    monkeypatch.setattr(engine_module.Engine, "__init__", init)
    return [(engine.digest(), engine.device_runs) for engine in engines]


@pytest.mark.rtl
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ON_BOARD)
def test_scenario_on_the_simulated_board_is_the_golden_run(name, scenarios, tmp_path, monkeypatch, quiet_logging):
    monkeypatch.chdir(tmp_path)
    golden = _digests(name, "golden", monkeypatch)
    board = _digests(name, "rtl", monkeypatch)
    assert board == golden and all(runs > 0 for _, runs in golden)
