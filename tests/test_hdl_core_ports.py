"""CoreConfig validation and the layout packing helpers shared by gateware, bus models and host."""

import pytest

from neurofabric.hdl.core_ports import CoreConfig, Op, Space, join_lanes, pack, split_lanes, unpack


@pytest.mark.parametrize("kwargs,message", [
    (dict(n=6, m=4, lanes=4), "n = 6 is not a multiple of lanes = 4"),
    (dict(n=6, m=4, lanes=3), "lanes = 3 is not a power of two"),
    (dict(n=0, m=4, lanes=1), "CoreConfig.n = 0 is out of range"),
    (dict(n=4, m=4, W=17), "CoreConfig.W = 17 is out of range: allowed 2..16"),
    (dict(n=16, m=4, lanes=4, pot_banks=3), r"pot_banks = 3: allowed a power of two dividing n // lanes = 4"),
    (dict(n=16, m=4, lanes=4, pot_banks=8), r"pot_banks = 8: allowed a power of two dividing n // lanes = 4"),
    (dict(n=24, m=4, lanes=4, pot_banks=2), r"pot_banks = 2 needs 'dual' weights and n // lanes a power of two"),
    (dict(n=16, m=4, lanes=4, pot_banks=2, weight_memory="spram"), r"pot_banks = 2 needs 'dual' weights"),
])
def test_core_config_refuses_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoreConfig(**kwargs)


def test_core_config_derived_sizes_for_the_reference_core():
    cfg = CoreConfig(n=256, m=256, S=16, W=8, T=8, lanes=4)
    assert cfg.words_per_row == 64
    assert cfg.weight_words == 512 * 64
    assert cfg.acc_bits == 8 + 9 + 1      # spec: W + ceil(log2(m+n)) + 1
    assert cfg.data_bits >= 32


def test_pack_unpack_round_trip_with_signed_fields_and_enums():
    cfg = CoreConfig(n=8, m=8, S=12, W=5, T=4, lanes=4)
    word = pack(cfg.command_layout, op=Op.WRITE, space=Space.STATE, addr=5, data=123)
    assert unpack(cfg.command_layout, word) == {"op": 1, "space": 3, "addr": 5, "data": 123}
    state = pack(cfg.neuron_state_layout, v=-2048, i=2047, r=255, s=1)
    assert unpack(cfg.neuron_state_layout, state) == {"v": -2048, "i": 2047, "r": 255, "s": 1}
    with pytest.raises(KeyError, match="nope"):
        pack(cfg.neuron_state_layout, nope=1)


def test_lanes_round_trip():
    values = [-16, 15, 0, -1]
    assert split_lanes(join_lanes(values, 5), 4, 5) == values


def test_step_layouts_carry_the_input_set_request_and_input_numbers_wider_than_neurons():
    """The end record's `inputs` flag asks for U; an INPUT record names input k in `neuron`,
    which is as wide as the wider of a neuron and an input number."""
    from neurofabric.hdl.core_ports import StepEvent

    assert (StepEvent.SPIKE.value, StepEvent.PROBE.value, StepEvent.END.value, StepEvent.INPUT.value) == (0, 1, 2, 3)
    assert Space.RATE.value == 8
    for n, m in ((4, 300), (300, 4), (16, 16)):
        cfg = CoreConfig(n=n, m=m, lanes=1)
        out = cfg.step_output_layout
        assert out["neuron"].shape.width == max(cfg.neuron_bits, cfg.input_bits)
        record = unpack(out, pack(out, kind=StepEvent.INPUT, neuron=m - 1))
        assert record["kind"] == StepEvent.INPUT.value and record["neuron"] == m - 1
        step_in = cfg.step_input_layout
        assert unpack(step_in, pack(step_in, end=1, inputs=1)) == {"source": 0, "end": 1, "probe": 0, "inputs": 1}
