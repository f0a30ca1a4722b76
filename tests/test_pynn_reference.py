"""A floating-point reference for PyNN's IF_curr_exp with pair STDP, and checks of it.

`simulate` is forward Euler at the time step of the PyNN model itself (its
parameters in ms, mV, nA, nF, its float weights), with the order of events of
spec section 5: a step's inputs and the previous step's neuron spikes raise
the synaptic current, the membrane integrates the new current, a neuron
fires when it reaches the threshold, then the traces and weights learn
(depression at a delivered pre spike with the post trace of the step before,
potentiation at a post spike with the pre trace just updated). Nothing in it
is quantised: the core's integers are what it is compared with
(tests/test_pynn_acceptance.py). The tests here hold it to the equations.
"""

import math

import numpy as np
import pytest


def simulate(inputs, w_in, w_rec, cell, dt, rule=None, plastic=None):
    """Spikes `(steps, n)` and the final input weights of one IF_curr_exp population.

    `inputs` `(steps, m)` 0/1 (input k spikes in step t); `w_in` `(m, n)` and
    `w_rec` `(n, n)` weights in nA (negative: inhibitory; `w_rec[i, j]` from
    neuron i to j, delivered the step after i spikes); `cell` the PyNN
    parameters (`tau_syn` the one synaptic time constant); `rule` the
    `SpikePairRule` and `AdditiveWeightDependence` parameters for `w_in`
    (all-pairs traces, weight change `w_max * A * trace`, clamped to
    `[w_min, w_max]`) for the inputs `plastic` (bool `(m,)`, default all), or
    None for static weights.
    """
    steps, m = inputs.shape
    n = w_in.shape[1]
    w_in = np.array(w_in, dtype=float)
    plastic = np.ones(m, bool) if plastic is None else np.asarray(plastic, bool)
    p = {k: np.broadcast_to(np.asarray(cell[k], float), (n,)) for k in
         ("tau_m", "cm", "v_rest", "v_thresh", "v_reset", "tau_syn", "tau_refrac")}
    i_offset = np.broadcast_to(np.asarray(cell.get("i_offset", 0.0), float), (n,))
    refractory = np.round(p["tau_refrac"] / dt).astype(int)
    resistance = p["tau_m"] / p["cm"]
    v = p["v_rest"].copy()
    current = np.zeros(n)
    counter = np.zeros(n, int)
    fired = np.zeros(n, bool)
    pre_trace, post_trace = np.zeros(m), np.zeros(n)
    out = np.zeros((steps, n), bool)
    for t in range(steps):
        delivered = inputs[t].astype(bool)
        current = current * (1 - dt / p["tau_syn"]) + w_in[delivered].sum(0) + w_rec[fired].sum(0)
        integrating = counter == 0
        counter = np.where(integrating, counter, counter - 1)
        u = v + dt / p["tau_m"] * (p["v_rest"] - v + resistance * (current + i_offset))
        fired = integrating & (u >= p["v_thresh"])
        v = np.where(integrating, np.where(fired, p["v_reset"], u), v)
        counter = np.where(fired, refractory, counter)
        out[t] = fired
        if rule is not None:
            pre_trace = pre_trace * (1 - dt / rule["tau_plus"]) + delivered
            learned = w_in.copy()
            learned[delivered] -= rule["w_max"] * rule["A_minus"] * post_trace[None, :]
            learned[:, fired] += rule["w_max"] * rule["A_plus"] * pre_trace[:, None]
            w_in[plastic] = np.clip(learned[plastic], rule["w_min"], rule["w_max"])
            post_trace = post_trace * (1 - dt / rule["tau_minus"]) + fired
    return out, w_in


def simulate_exact(inputs, w_in, w_rec, cell, dt, rule=None):
    """As `simulate`, but integrated exactly between steps, in NEST's order (iaf_psc_exp, stdp_synapse).

    The membrane takes the exact propagators of the exponential current (`exp(-dt / tau)`), with the
    current as it was at the start of the step; the step's spikes then enter the current, so an input
    moves the membrane from the next step on; traces decay by `exp(-dt / tau)`. Static `w_rec`, plastic
    `w_in` (all of it), no i_offset.
    """
    steps, m = inputs.shape
    n = w_in.shape[1]
    w_in = np.array(w_in, dtype=float)
    tau_m, tau_s, cm = (float(cell[k]) for k in ("tau_m", "tau_syn", "cm"))
    decay_m, decay_s = math.exp(-dt / tau_m), math.exp(-dt / tau_s)
    from_current = tau_s * tau_m / (cm * (tau_m - tau_s)) * (decay_m - decay_s)
    refractory = int(round(cell["tau_refrac"] / dt))
    v = np.full(n, float(cell["v_rest"]))
    current = np.zeros(n)
    counter = np.zeros(n, int)
    fired = np.zeros(n, bool)
    pre_trace, post_trace = np.zeros(m), np.zeros(n)
    out = np.zeros((steps, n), bool)
    for t in range(steps):
        delivered = inputs[t].astype(bool)
        integrating = counter == 0
        u = cell["v_rest"] + (v - cell["v_rest"]) * decay_m + from_current * current
        counter = np.where(integrating, counter, counter - 1)
        fired_now = integrating & (u >= cell["v_thresh"])
        v = np.where(integrating, np.where(fired_now, cell["v_reset"], u), v)
        counter = np.where(fired_now, refractory, counter)
        current = current * decay_s + w_in[delivered].sum(0) + w_rec[fired].sum(0)
        fired = fired_now
        out[t] = fired
        if rule is not None:
            pre_trace = pre_trace * math.exp(-dt / rule["tau_plus"]) + delivered
            w_in[delivered] -= rule["w_max"] * rule["A_minus"] * post_trace[None, :]
            w_in[:, fired] += rule["w_max"] * rule["A_plus"] * pre_trace[:, None]
            np.clip(w_in, rule["w_min"], rule["w_max"], out=w_in)
            post_trace = post_trace * math.exp(-dt / rule["tau_minus"]) + fired
    return out, w_in


CELL = dict(tau_m=20.0, cm=1.0, v_rest=-65.0, v_thresh=-55.0, v_reset=-65.0, tau_syn=5.0, tau_refrac=0.0)


def test_the_exact_integration_gives_the_analytic_psp():
    # One 3 nA spike: v(t) - v_rest = I0 / cm * tau_s tau_m / (tau_m - tau_s) (e^-t/tau_m - e^-t/tau_s),
    # sampled one step after the spike enters the current. The threshold brackets its peak.
    dt = 0.1
    t = np.arange(1, 2000) * dt
    psp = 3.0 * 5.0 * 20.0 / (20.0 - 5.0) * (np.exp(-t / 20.0) - np.exp(-t / 5.0))
    inputs = np.zeros((2000, 1), bool)
    inputs[0, 0] = True
    for offset, fires in ((-1e-9, True), (1e-9, False)):
        cell = dict(CELL, v_thresh=-65.0 + psp.max() + offset)
        spikes, _ = simulate_exact(inputs, np.full((1, 1), 3.0), np.zeros((1, 1)), cell, dt)
        assert spikes.any() == fires
        if fires:
            assert np.flatnonzero(spikes[:, 0])[0] == int(np.argmax(psp)) + 1


def test_a_constant_current_fires_with_the_euler_period():
    # v_n - v_inf = (v_0 - v_inf) (1 - dt/tau)^n with v_inf = v_rest + R I: the first step at or
    # above threshold, then the same period after each reset.
    dt, current = 0.1, 0.6
    cell = dict(CELL, i_offset=current)
    spikes, _ = simulate(np.zeros((2000, 0), bool), np.zeros((0, 1)), np.zeros((1, 1)), cell, dt)
    v_inf = -65.0 + 20.0 * current
    steps = math.ceil(math.log((v_inf + 55.0) / (v_inf + 65.0)) / math.log(1 - dt / 20.0))
    times = np.flatnonzero(spikes[:, 0])
    assert times[0] == steps - 1 and np.all(np.diff(times) == steps)


def test_below_rheobase_never_fires_and_rests_at_v_inf():
    cell = dict(CELL, i_offset=0.49)        # v_inf = -55.2 mV, under the threshold
    spikes, _ = simulate(np.zeros((5000, 0), bool), np.zeros((0, 1)), np.zeros((1, 1)), cell, 0.1)
    assert not spikes.any()


def test_one_input_spike_gives_the_euler_psp_peak():
    # A 3 nA spike into tau_syn = 5 ms: I_n = 3 (1 - dt/5)^n, v follows with R = 20 MOhm. The
    # reference's membrane is not returned, so the threshold is placed around the analytic peak.
    dt = 1.0
    current = 3.0 * (1 - dt / 5.0) ** np.arange(200)
    v = np.zeros(201)
    for n in range(200):
        v[n + 1] = v[n] + dt / 20.0 * (-v[n] + 20.0 * current[n])
    peak = v.max()
    inputs = np.zeros((200, 1), bool)
    inputs[0, 0] = True
    for offset, fires in ((-1e-6, True), (1e-6, False)):
        cell = dict(CELL, v_thresh=-65.0 + peak + offset)
        spikes, _ = simulate(inputs, np.full((1, 1), 3.0), np.zeros((1, 1)), cell, dt)
        assert spikes.any() == fires


def test_refractory_steps_hold_the_membrane():
    cell = dict(CELL, i_offset=2.0, tau_refrac=5.0)
    spikes, _ = simulate(np.zeros((400, 0), bool), np.zeros((0, 1)), np.zeros((1, 1)), cell, 1.0)
    times = np.flatnonzero(spikes[:, 0])
    free, _ = simulate(np.zeros((400, 0), bool), np.zeros((0, 1)), np.zeros((1, 1)), dict(cell, tau_refrac=0.0), 1.0)
    assert np.all(np.diff(times) == np.diff(np.flatnonzero(free[:, 0]))[0] + 5)


def test_inhibition_arrives_one_step_after_the_spike():
    # Neuron 0 is driven to fire in step 0; its inhibition of neuron 1 acts in step 1: an input that
    # alone makes neuron 1 fire does so in step 0, and not in step 1.
    w_in = np.array([[100.0, 0.0], [0.0, 100.0]])
    w_rec = np.array([[0.0, -200.0], [0.0, 0.0]])
    cell = dict(CELL, tau_syn=1.0)          # the current lasts one step
    for step, fires in ((0, True), (1, False)):
        inputs = np.zeros((3, 2), bool)
        inputs[0, 0] = True
        inputs[step, 1] = True
        spikes, _ = simulate(inputs, w_in, w_rec, cell, 1.0)
        assert spikes[0, 0] and spikes[step, 1] == fires
        alone, _ = simulate(inputs, w_in, np.zeros((2, 2)), cell, 1.0)
        assert alone[step, 1]


@pytest.mark.parametrize("lag", [1, 3, 6])
def test_pair_rule_potentiates_and_depresses_by_the_trace(lag):
    # Pre spikes at step 0, the post neuron (driven by a second, static input) at `lag`: LTP of
    # w_max * A_plus * (1 - dt/tau_plus)**lag. Post first, then pre: LTD with the post trace.
    rule = dict(tau_plus=10.0, tau_minus=15.0, A_plus=0.01, A_minus=0.02, w_min=0.0, w_max=2.0)
    cell = dict(CELL, tau_syn=1.0)
    w0 = np.array([[0.5], [100.0]])
    inputs = np.zeros((lag + 2, 2), bool)
    inputs[0, 0] = True
    inputs[lag, 1] = True
    spikes, w = simulate(inputs, w0, np.zeros((1, 1)), cell, 1.0, rule, plastic=[True, False])
    assert spikes[lag, 0] and spikes.sum() == 1
    assert w[0, 0] == pytest.approx(0.5 + 2.0 * 0.01 * (1 - 1 / 10.0) ** lag)
    inputs = np.zeros((lag + 2, 2), bool)
    inputs[0, 1] = True
    inputs[lag, 0] = True
    spikes, w = simulate(inputs, w0, np.zeros((1, 1)), cell, 1.0, rule, plastic=[True, False])
    assert spikes[0, 0] and spikes.sum() == 1
    assert w[0, 0] == pytest.approx(0.5 - 2.0 * 0.02 * (1 - 1 / 15.0) ** (lag - 1))
