"""The core's global registers (memory space GLOBAL), built from the device description.

`RegisterFile` holds every read-write `Register` of `contract.device.REGISTERS`
with its width, signedness and reset value, answers reads of every register
(the constants and the counters the core drives included) and carries out the
host's writes; a new register in the description is a new port here, with no
edit of this module.
"""

from amaranth.hdl import C, Module, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from neurofabric.contract.device import GLOBAL_WORD_BITS, REGISTERS

from .core_ports import CoreConfig, Reg

__all__ = ["RegisterFile"]


class RegisterFile(wiring.Component):
    """The global registers of a core of `config`.

    Ports:

    - one `Out` per read-write register, named as the register (`learn`,
      `n_used`, `period`, ...): its value, `signed(bits)` for a signed one;
    - one `In(32)` per read-only register the core drives (`steps_done`,
      `last_step_cycles`): the value a read returns;
    - `write`, `write_addr`, `write_data` (32 bits): a host write of `write_data` to the
      register at `write_addr`, in the cycle `write` is 1 (the register keeps
      the low bits; a used count, n_used or m_used, is clamped to the core's
      n or m); writes to read-only or unknown addresses change nothing;
    - `sizes_written`: 1 in a write cycle whose address is a used count (the
      core's spike list must then be rebuilt);
    - `seed_written`: 1 in a write cycle whose address is `seed` (the core then
      sets its generator state g to `write_data` as well, spec section 4);
    - `read_addr`, `read_data`: the register at `read_addr`, zero-extended to
      32 bits (signed ones as two's complement of their width), combinationally;
      0 for an unknown address.
    """

    def __init__(self, config: CoreConfig):
        self.config = config
        shape = config.shape
        ports = {
            "write": In(1),
            "write_addr": In(config.addr_bits),
            # A register word is 32 bits (the GLOBALS table): the core's wider command data
            # (its weight words) would make `data > limit` a carry chain as wide as a
            # weight word, 512 bits at 64 lanes, the ULX3S-45F's longest path.
            "write_data": In(GLOBAL_WORD_BITS),
            "sizes_written": Out(1),
            "seed_written": Out(1),
            "read_addr": In(config.addr_bits),
            "read_data": Out(GLOBAL_WORD_BITS),
        }
        for register in REGISTERS:
            if not register.read_only:
                kind = signed if register.signed else unsigned
                ports[register.name] = Out(kind(register.bits(shape)), init=register.reset_value(shape))
            elif register.constant(shape) is None:
                ports[register.name] = In(GLOBAL_WORD_BITS)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        shape = self.config.shape
        data = self.write_data
        with m.If(self.write):
            with m.Switch(self.write_addr):
                for register in REGISTERS:
                    if register.read_only:
                        continue
                    sig = getattr(self, register.name)
                    with m.Case(Reg[register.name.upper()]):
                        if register.counts:
                            limit = getattr(shape, register.counts)
                            m.d.sync += sig.eq(Mux(data > limit, limit, data))
                            m.d.comb += self.sizes_written.eq(1)
                        elif register.signed:
                            m.d.sync += sig.eq(data[:len(sig)].as_signed())
                        else:
                            m.d.sync += sig.eq(data[:len(sig)])
                        if register.name == "seed":
                            m.d.comb += self.seed_written.eq(1)
        with m.Switch(self.read_addr):
            for register in REGISTERS:
                constant = register.constant(shape)
                value = (C(constant, GLOBAL_WORD_BITS) if constant is not None
                         else getattr(self, register.name))
                with m.Case(Reg[register.name.upper()]):
                    m.d.comb += self.read_data.eq(value.as_unsigned())
        return m
