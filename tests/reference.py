"""A deliberately plain reading of the spec, one synapse at a time, for tests.

It shares no code with the golden model (not even `arith`): Python ints and
loops, written straight from spec sections 2 and 5, so that a vectorisation
mistake in the golden model cannot hide in both.
"""


def _sat(x, bits):
    return min(max(x, -(2 ** (bits - 1))), 2 ** (bits - 1) - 1)


def _usat(x, bits):
    return min(max(x, 0), 2 ** bits - 1)


def _trunc(p, k):
    # division by 2**k rounded toward zero
    q = abs(p) // 2 ** k
    return q if p >= 0 else -q


def _decay(x, d):
    return _trunc(x * (4096 - d), 12)


def _xorshift32(g):
    g = g ^ ((g * 2 ** 13) % 2 ** 32)
    g = g ^ (g // 2 ** 17)
    g = g ^ ((g * 2 ** 5) % 2 ** 32)
    return g


def _tr(x, kd, spiked, inc, bits, mode):
    if mode == 0:
        return _usat(_decay(x, kd) + (inc if spiked else 0), bits)
    return inc if spiked else _decay(x, kd)


class ReferenceModel:
    def __init__(self, net):
        self.n, self.m = net.n, net.m
        self.S, self.T = net.state_bits, net.trace_bits
        self.p = {name: [int(v) for v in getattr(net, name)] for name in
                  ("threshold", "v_reset", "reset_mode", "decay_mem", "decay_syn", "refractory", "bias",
                   "plastic_post", "plastic_pre")}
        self.g = {name: int(getattr(net, name)) for name in
                  ("learn", "a_plus", "a_minus", "stdp_shift", "decay_pre", "decay_post", "inc_pre",
                   "inc_post", "trace_mode", "w_min", "w_max")}
        self.w = [[int(v) for v in row] for row in net.weights]
        n, m = self.n, self.m
        self.v, self.i, self.r, self.s, self.y = [0] * n, [0] * n, [0] * n, [False] * n, [0] * n
        self.x = [0] * (m + n)
        self.seed = self.gen = 1
        self.u = [False] * m

    def set_seed(self, seed):
        self.seed = self.gen = int(seed)

    def reset(self):
        n, m = self.n, self.m
        self.v, self.i, self.r, self.s, self.y = [0] * n, [0] * n, [0] * n, [False] * n, [0] * n
        self.x = [0] * (m + n)
        self.gen = self.seed

    def step(self, inputs, rates=None):
        n, m, p, g = self.n, self.m, self.p, self.g
        # 0. generated inputs: the generator advances m times, input k spikes when
        # (g >> 16) < rate[k]; U is the union with the host's inputs.
        u = [bool(inputs[k]) for k in range(m)]
        for k in range(m):
            self.gen = _xorshift32(self.gen)
            if rates is not None and self.gen // 2 ** 16 < int(rates[k]):
                u[k] = True
        self.u = u
        delivered = u + [self.s[j] for j in range(n)]
        spiked = [False] * n
        for j in range(n):
            a = 0
            for k in range(m + n):
                if delivered[k]:
                    a += self.w[k][j]
            self.i[j] = _sat(_decay(self.i[j], p["decay_syn"][j]) + a, self.S)
            if self.r[j] > 0:
                self.r[j] -= 1
            else:
                u = _sat(_decay(self.v[j], p["decay_mem"][j]) + self.i[j] + p["bias"][j], self.S)
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
                self.x[k] = _tr(self.x[k], g["decay_pre"], delivered[k], g["inc_pre"], self.T, g["trace_mode"])
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
                self.y[j] = _tr(self.y[j], g["decay_post"], spiked[j], g["inc_post"], self.T, g["trace_mode"])
        return spiked
