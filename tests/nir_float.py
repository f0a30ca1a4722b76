"""A float simulation of NIR graphs with the semantics neurofabric imports, for tests.

Written from the semantics in words (forward Euler at dt, spikes 0/1 per
step, one step of delay on edges leaving a spiking node, Affine bias every
step), independently of the importer.
"""

import numpy as np


def simulate(graph, dt, inputs, steps):
    """`inputs`: {input node name: (steps, size) 0/1}. Returns {spiking node: (steps, size)}."""
    nodes, edges = graph.nodes, graph.edges
    kind = {name: type(node).__name__ for name, node in nodes.items()}
    spiking = [n for n in nodes if kind[n] in ("LIF", "CubaLIF", "IF")]
    preds = {n: [s for s, d in edges if d == n] for n in nodes}
    size = {n: np.asarray(nodes[n].v_threshold).size for n in spiking}
    v = {n: np.zeros(size[n]) for n in spiking}
    cur = {n: np.zeros(size[n]) for n in spiking}
    last = {n: np.zeros(size[n]) for n in spiking}
    out = {n: np.zeros((steps, size[n]), np.uint8) for n in spiking}

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
            node, x = nodes[n], drive[n]
            if kind[n] == "CubaLIF":
                cur[n] = cur[n] - dt / np.asarray(node.tau_syn) * cur[n] + np.asarray(node.w_in) * x
                v[n] = v[n] + dt / np.asarray(node.tau_mem) * (np.asarray(node.v_leak) - v[n]
                                                                + np.asarray(node.r) * cur[n])
            elif kind[n] == "LIF":
                v[n] = v[n] + dt / np.asarray(node.tau) * (np.asarray(node.v_leak) - v[n] + np.asarray(node.r) * x)
            else:
                v[n] = v[n] + dt * np.asarray(node.r) * x
            spikes[n] = v[n] > np.asarray(node.v_threshold)
            reset = np.zeros(size[n]) if node.v_reset is None else np.asarray(node.v_reset, float)
            v[n] = np.where(spikes[n], reset, v[n])
            out[n][t] = spikes[n]
        for n in spiking:
            last[n] = spikes[n].astype(float)
    return out
