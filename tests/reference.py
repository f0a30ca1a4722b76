"""A deliberately plain reading of the spec, one synapse at a time, for tests.

It shares no code with the golden model (not even `arith`): Python ints and
loops, written straight from spec sections 2 and 5, so that a vectorisation
mistake in the golden model cannot hide in both.
"""


def _sat(x, bits):
    return min(max(x, -(2 ** (bits - 1))), 2 ** (bits - 1) - 1)


def _usat(x, bits):
    return min(max(x, 0), 2 ** bits - 1)


def _decay(x, k):
    if k == 31:
        return x
    return x - (x // 2 ** k)  # floor division: the arithmetic shift


def _tr(x, kd, spiked, inc, bits, mode):
    if mode == 0:
        return _usat(_decay(x, kd) + (inc if spiked else 0), bits)
    return inc if spiked else _decay(x, kd)


class ReferenceModel:
    def __init__(self, net):
        self.n, self.m = net.n, net.m
        self.S, self.T = net.state_bits, net.trace_bits
        self.p = {name: [int(v) for v in getattr(net, name)] for name in
                  ("threshold", "v_reset", "reset_mode", "k_mem", "k_syn", "refractory", "bias",
                   "plastic_post", "plastic_pre")}
        self.g = {name: int(getattr(net, name)) for name in
                  ("learn", "a_plus", "a_minus", "stdp_shift", "k_pre", "k_post", "inc_pre",
                   "inc_post", "trace_mode", "w_min", "w_max")}
        self.w = [[int(v) for v in row] for row in net.weights]
        n, m = self.n, self.m
        self.v, self.i, self.r, self.s, self.y = [0] * n, [0] * n, [0] * n, [False] * n, [0] * n
        self.x = [0] * (m + n)

    def step(self, inputs):
        n, m, p, g = self.n, self.m, self.p, self.g
        delivered = [bool(inputs[k]) for k in range(m)] + [self.s[j] for j in range(n)]
        spiked = [False] * n
        for j in range(n):
            a = 0
            for k in range(m + n):
                if delivered[k]:
                    a += self.w[k][j]
            self.i[j] = _sat(_decay(self.i[j], p["k_syn"][j]) + a, self.S)
            if self.r[j] > 0:
                self.r[j] -= 1
            else:
                u = _sat(_decay(self.v[j], p["k_mem"][j]) + self.i[j] + p["bias"][j], self.S)
                if u >= p["threshold"][j]:
                    spiked[j] = True
                    if p["reset_mode"][j] == 0:
                        self.v[j] = p["v_reset"][j]
                    else:
                        self.v[j] = _sat(u - p["threshold"][j], self.S)
                    self.r[j] = p["refractory"][j]
                else:
                    self.v[j] = u
        self.s = spiked
        if g["learn"]:
            for k in range(m + n):
                self.x[k] = _tr(self.x[k], g["k_pre"], delivered[k], g["inc_pre"], self.T, g["trace_mode"])
            for k in range(m + n):
                for j in range(n):
                    if not (p["plastic_pre"][k] and p["plastic_post"][j]):
                        continue
                    w = self.w[k][j]
                    visited = False
                    if delivered[k]:
                        w = w - (g["a_minus"] * self.y[j]) // 2 ** g["stdp_shift"]
                        w = min(max(w, g["w_min"]), g["w_max"])
                        visited = True
                    if spiked[j]:
                        w = w + (g["a_plus"] * self.x[k]) // 2 ** g["stdp_shift"]
                        w = min(max(w, g["w_min"]), g["w_max"])
                        visited = True
                    if visited:
                        self.w[k][j] = w
            for j in range(n):
                self.y[j] = _tr(self.y[j], g["k_post"], spiked[j], g["inc_post"], self.T, g["trace_mode"])
        return spiked
