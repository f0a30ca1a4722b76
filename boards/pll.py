"""Clock multipliers: PLL parameters computed for the requested core clock.

iCE40: SB_PLL40_CORE (the iCE40 LP/HX/UP PLL), ECP5: EHXPLLL. The search
follows the data-sheet limits (the same ones `icepll` and `ecppll` use) and
returns the achievable frequency nearest the request; the board reports the
frequency actually produced, never the requested one.
"""

from dataclasses import dataclass

from amaranth import ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

from neurofabric.contract.errors import BuildError

__all__ = ["ICE40PLL", "ECP5PLL", "ice40_pll_params", "ecp5_pll_params"]


@dataclass(frozen=True)
class ICE40PLLParams:
    divr: int
    divf: int
    divq: int
    filter_range: int
    f_out: float


def ice40_pll_params(f_in, f_want):
    """DIVR/DIVF/DIVQ for SB_PLL40 (PFD 10..133 MHz, VCO 533..1066 MHz)."""
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                if best is None or abs(f_out - f_want) < abs(best.f_out - f_want):
                    filt = next(i + 1 for i, lim in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, 1e12))
                                if f_pfd < lim)
                    best = ICE40PLLParams(divr, divf, divq, filt, f_out)
    if best is None:
        raise BuildError(f"no iCE40 PLL setting makes {f_want / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    return best


@dataclass(frozen=True)
class ECP5PLLParams:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_out: float


def ecp5_pll_params(f_in, f_want):
    """CLKI/CLKFB/CLKOP dividers for EHXPLLL (PFD 3.125..400 MHz, VCO 400..800 MHz)."""
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if 400e6 <= f_vco <= 800e6:
                    if best is None or abs(f_out - f_want) < abs(best.f_out - f_want):
                        best = ECP5PLLParams(clki_div, clkfb_div, clkop_div, f_out)
                    break
    if best is None:
        raise BuildError(f"no ECP5 PLL setting makes {f_want / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    return best


class ICE40PLL(Elaboratable):
    """Drive the `sync` domain (defined by the parent) from an SB_PLL40_CORE, held in reset until lock."""

    def __init__(self, clk_in, f_in, f_want):
        self.clk_in, self.params = clk_in, ice40_pll_params(f_in, f_want)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        clk_out, locked = Signal(), Signal()
        m.submodules.pll = Instance(
            "SB_PLL40_CORE",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=p.divr, p_DIVF=p.divf, p_DIVQ=p.divq,
            p_FILTER_RANGE=p.filter_range,
            i_REFERENCECLK=self.clk_in, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clk_out)
        m.submodules.rst = ResetSynchronizer(~locked, domain="sync")
        return m


class ECP5PLL(Elaboratable):
    """Drive the `sync` domain (defined by the parent) from an EHXPLLL, held in reset until lock."""

    def __init__(self, clk_in, f_in, f_want):
        self.clk_in, self.f_in, self.params = clk_in, f_in, ecp5_pll_params(f_in, f_want)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        clk_out, locked = Signal(), Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{p.f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.clkop_div,
            p_CLKOP_CPHASE=p.clkop_div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p.clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=self.clk_in, i_CLKFB=clk_out, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clk_out)
        m.submodules.rst = ResetSynchronizer(~locked, domain="sync")
        return m
