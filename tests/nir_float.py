"""A float simulation of NIR graphs from NIR's equations, for tests.

Written from NIR's definitions, independently of the importer: forward Euler
at dt with spikes 0/1 per step, so per step

    CubaLIF  I <- I + (dt / tau_syn) (-I + w_in x)
             v <- v + (dt / tau_mem) (v_leak - v + r I)
    LIF      v <- v + (dt / tau) (v_leak - v + r x)
    IF       v <- v + dt r x

spike when v > v_threshold, then v <- v_reset; one step of delay on edges
leaving a spiking node; an Affine bias every step. Parameters broadcast
(numpy's rules): a node whose parameters are all scalars takes its size from
the weight matrix (or input) that feeds it.
"""

import numpy as np

PARAMETERS = {"CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
              "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
              "IF": ("r", "v_threshold", "v_reset")}


def _size(name, nodes, edges, kind):
    shapes = [np.shape(getattr(nodes[name], p)) for p in PARAMETERS[kind[name]]
              if getattr(nodes[name], p, None) is not None]
    own = int(np.prod(np.broadcast_shapes(*shapes)))
    if own > 1:
        return own
    for src, dst in edges:
        if dst == name and kind[src] in ("Linear", "Affine"):
            return np.shape(nodes[src].weight)[0]
        if dst == name and kind[src] == "Input":
            return int(np.prod(list(nodes[src].input_type.values())[0]))
    return own


def simulate(graph, dt, inputs, steps, probe=None):
    """`inputs`: {input node name: (steps, size) 0/1}. Returns {spiking node: (steps, size)}.

    `probe` (a spiking node's name): also return its membrane after each step,
    as `(spikes, v)`.
    """
    nodes, edges = graph.nodes, graph.edges
    kind = {name: type(node).__name__ for name, node in nodes.items()}
    spiking = [n for n in nodes if kind[n] in PARAMETERS]
    preds = {n: [s for s, d in edges if d == n] for n in nodes}
    size = {n: _size(n, nodes, edges, kind) for n in spiking}
    par = {n: {p: (np.broadcast_to(np.asarray(getattr(nodes[n], p), float).reshape(-1) if np.ndim(
        getattr(nodes[n], p)) else np.asarray(getattr(nodes[n], p), float), (size[n],))
        if getattr(nodes[n], p, None) is not None else np.zeros(size[n]))
        for p in PARAMETERS[kind[n]]} for n in spiking}
    for n in spiking:
        if kind[n] == "CubaLIF" and getattr(nodes[n], "w_in", None) is None:
            par[n]["w_in"] = np.ones(size[n])
    v = {n: np.zeros(size[n]) for n in spiking}
    cur = {n: np.zeros(size[n]) for n in spiking}
    last = {n: np.zeros(size[n]) for n in spiking}
    out = {n: np.zeros((steps, size[n]), np.uint8) for n in spiking}
    trace = np.zeros((steps, size[probe])) if probe else None

    def value(name, t):
        k = kind[name]
        if k == "Input":
            return inputs[name][t].astype(float)
        if name in last:
            return last[name]
        node = nodes[name]
        x = sum(value(p, t) for p in preds[name])
        y = np.asarray(node.weight, float) @ x
        if k == "Affine":
            y = y + np.asarray(node.bias, float)
        return y

    for t in range(steps):
        drive = {n: sum((value(p, t) for p in preds[n]), np.zeros(size[n])) for n in spiking}
        spikes = {}
        for n in spiking:
            p, x = par[n], drive[n]
            if kind[n] == "CubaLIF":
                cur[n] = cur[n] + dt / p["tau_syn"] * (-cur[n] + p["w_in"] * x)
                v[n] = v[n] + dt / p["tau_mem"] * (p["v_leak"] - v[n] + p["r"] * cur[n])
            elif kind[n] == "LIF":
                v[n] = v[n] + dt / p["tau"] * (p["v_leak"] - v[n] + p["r"] * x)
            else:
                v[n] = v[n] + dt * p["r"] * x
            spikes[n] = v[n] > p["v_threshold"]
            v[n] = np.where(spikes[n], p["v_reset"], v[n])
            out[n][t] = spikes[n]
            if n == probe:
                trace[t] = v[n]
        for n in spiking:
            last[n] = spikes[n].astype(float)
    return (out, trace) if probe else out
