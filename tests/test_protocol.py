"""The wire format (contract/protocol.py and host/framing.py, records.py, memory_map.py): CRC, COBS, frames,
the stream decoder, spike records."""

import binascii
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurofabric.host.errors import LinkError
from neurofabric.contract.protocol import (
    CRC_SIZE, HEADER_SIZE, HELLO_REPLY_FIELDS, MAX_ENCODED_FRAME, MAX_FRAME, MAX_PAYLOAD, MEMORY_REQUEST_FIELDS,
    REPLY_FLAG, SPIKE_RECORD_FIELDS, STATUS_REPLY_FIELDS, Command, SpikeFormat, Status, cobs_max_encoded_size,
    fields_size, pack_fields, unpack_fields,
)
from neurofabric.host.framing import (
    Frame, FrameDecoder, FrameError, FrameFault, cobs_decode, cobs_encode, crc16, decode_frame, encode_frame,
    frame_body,
)
from neurofabric.host.records import decode_spikes, encode_spikes, spike_record_size

payloads = st.integers(0, MAX_PAYLOAD).flatmap(
    lambda n: st.binary(min_size=n, max_size=n)
    | st.lists(st.integers(1, 255), min_size=n, max_size=n).map(bytes))
frames = st.tuples(st.integers(0, 255), st.integers(0, 255), payloads)


def only_frames(results):
    return [r for r in results if isinstance(r, Frame)]


# -- import hygiene -------------------------------------------------------------

def test_protocol_imports_without_amaranth():
    code = ("import sys; sys.modules['amaranth'] = None\n"
            "import neurofabric.contract.protocol, neurofabric.host.memory_map, neurofabric.host.records\n"
            "import neurofabric.host.framing as p\n"
            "assert p.crc16(b'123456789') == 0x29B1\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- CRC ------------------------------------------------------------------------

def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_crc_continues():
    assert crc16(b"6789", crc16(b"12345")) == 0x29B1


@given(st.binary(max_size=300))
def test_crc_matches_independent_reference(data):
    # binascii.crc_hqx is the same polynomial, unreflected, with a given init.
    assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)


# -- COBS ------------------------------------------------------------------------

@pytest.mark.parametrize("raw,encoded", [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255)) + b"\x01"),
])
def test_cobs_known_vectors(raw, encoded):
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


def test_cobs_decodes_the_shorter_canonical_full_group():
    # Other encoders omit the final 0x01 after a full 254-byte group.
    assert cobs_decode(b"\xff" + bytes(range(1, 255))) == bytes(range(1, 255))


@given(st.binary(max_size=2 * MAX_FRAME) | st.lists(st.integers(1, 255), max_size=800).map(bytes))
@settings(max_examples=200)
def test_cobs_round_trip_no_zero_bounded(data):
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= cobs_max_encoded_size(len(data))
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x03\x11", b"\x02\x11\x00", b"\x05\x11\x00\x22\x33"])
def test_cobs_malformed_raises(bad):
    with pytest.raises(FrameError) as info:
        cobs_decode(bad)
    assert info.value.fault is FrameFault.COBS
    assert isinstance(info.value, LinkError)


# -- frames -----------------------------------------------------------------------

def test_frame_layout_by_hand():
    wire = encode_frame(Command.ECHO, 0x42, b"\x00\xab")
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    body = cobs_decode(wire[1:-1])
    assert body[:HEADER_SIZE] == bytes([0x02, 0x42, 0x02, 0x00])
    assert body[HEADER_SIZE:-CRC_SIZE] == b"\x00\xab"
    assert int.from_bytes(body[-CRC_SIZE:], "little") == crc16(body[:-CRC_SIZE])


def test_every_payload_length_round_trips():
    rng = random.Random(1)
    for n in range(MAX_PAYLOAD + 1):
        payload = bytes(rng.randrange(256) for _ in range(n)) if n % 2 else bytes(
            rng.randrange(1, 256) for _ in range(n))
        wire = encode_frame(n % 256, (7 * n) % 256, payload)
        assert len(wire) <= MAX_ENCODED_FRAME
        assert decode_frame(wire[1:-1]) == Frame(n % 256, (7 * n) % 256, payload)


@given(frames)
@settings(max_examples=200)
def test_frame_round_trip(frame):
    command, seq, payload = frame
    assert FrameDecoder().feed(encode_frame(command, seq, payload)) == [Frame(command, seq, payload)]


def test_encode_frame_refuses_out_of_range():
    with pytest.raises(LinkError, match="exceeds MAX_PAYLOAD=1024"):
        encode_frame(Command.ECHO, 0, bytes(MAX_PAYLOAD + 1))
    with pytest.raises(LinkError, match="seq=256"):
        encode_frame(Command.ECHO, 256)
    with pytest.raises(LinkError, match="command=300"):
        encode_frame(300, 0)


def test_reply_frame_properties():
    frame = decode_frame(encode_frame(Command.READ_WEIGHTS | REPLY_FLAG, 9, b"\x04")[1:-1])
    assert frame.is_reply and frame.code is Command.READ_WEIGHTS and frame.status is Status.BAD_ADDRESS
    assert not Frame(Command.HELLO, 0).is_reply and Frame(Command.HELLO, 0).status is None
    assert Frame(0x7E, 0).code == 0x7E


def test_command_and_status_codes_are_bytes_and_distinct():
    assert len({int(c) for c in Command}) == len(Command)
    assert all(0 < c < REPLY_FLAG for c in Command)
    assert len({int(s) for s in Status}) == len(Status) and Status.OK == 0


# -- single-bit errors ---------------------------------------------------------

@given(frames, st.data())
@settings(max_examples=150)
def test_every_single_bit_flip_of_the_body_is_detected(frame, data):
    body = frame_body(*frame)
    bit = data.draw(st.integers(0, 8 * len(body) - 1))
    flipped = bytearray(body)
    flipped[bit // 8] ^= 1 << (bit % 8)
    results = FrameDecoder().feed(b"\x00" + cobs_encode(bytes(flipped)) + b"\x00")
    assert len(results) == 1 and isinstance(results[0], FrameError)
    assert results[0].fault in (FrameFault.CRC, FrameFault.LENGTH, FrameFault.TOO_LONG)


def test_every_single_bit_flip_on_the_wire_costs_only_that_frame():
    # Exhaustive over every bit of a few frames: COBS code bytes included.
    rng = random.Random(5)
    follower = encode_frame(Command.STATUS, 200, b"next")
    for n in (0, 1, 7, 253, 254, 300):
        payload = bytes(rng.choice([0, rng.randrange(1, 256)]) for _ in range(n))
        original = Frame(Command.WRITE_WEIGHTS, rng.randrange(256), payload)
        wire = encode_frame(original.command, original.seq, original.payload)
        for bit in range(8, 8 * (len(wire) - 1)):       # not the delimiters
            bad = bytearray(wire)
            bad[bit // 8] ^= 1 << (bit % 8)
            results = FrameDecoder().feed(bytes(bad) + follower)
            assert only_frames(results) == [Frame(Command.STATUS, 200, b"next")], (n, bit)
            assert original not in results


# -- the stream decoder ----------------------------------------------------------

@given(st.lists(frames, min_size=1, max_size=4), st.lists(st.binary(max_size=40), min_size=5, max_size=5),
       st.randoms(use_true_random=False))
@settings(max_examples=60)
def test_garbage_between_frames_costs_no_good_frame(frame_list, garbage, rnd):
    stream = bytearray(garbage[0])
    for (command, seq, payload), junk in zip(frame_list, garbage[1:]):
        stream += encode_frame(command, seq, payload) + junk
    decoder = FrameDecoder()
    results = []
    i = 0
    while i < len(stream):                       # random chunking must not matter
        step = rnd.randint(1, 64)
        results += decoder.feed(bytes(stream[i:i + step]))
        i += step
    assert only_frames(results) == [Frame(*f) for f in frame_list]


@given(frames, frames, st.data())
@settings(max_examples=80)
def test_cut_frame_costs_only_itself(cut, good, data):
    wire = encode_frame(*cut)
    keep = data.draw(st.integers(0, len(wire) - 2))   # lose at least the trailing delimiter
    results = FrameDecoder().feed(wire[:keep] + encode_frame(*good))
    assert results[-1] == Frame(*good)
    assert only_frames(results) == [Frame(*good)]
    assert len(results) <= 2


def test_bad_crc_then_good_frame():
    body = bytearray(frame_body(Command.WRITE_PARAMS, 3, b"abc"))
    body[-1] ^= 0xFF
    results = FrameDecoder().feed(b"\x00" + cobs_encode(bytes(body)) + b"\x00"
                                  + encode_frame(Command.READ_PARAMS, 4, b"de"))
    assert [type(r) for r in results] == [FrameError, Frame]
    assert results[0].fault is FrameFault.CRC and results[1] == Frame(Command.READ_PARAMS, 4, b"de")


def test_bad_length_field_with_good_crc_is_refused():
    body = bytes([Command.ECHO, 1, 5, 0]) + b"abc"             # says 5, holds 3
    body += crc16(body).to_bytes(2, "little")
    results = FrameDecoder().feed(b"\x00" + cobs_encode(body) + b"\x00" + encode_frame(Command.ECHO, 2))
    assert results[0].fault is FrameFault.LENGTH and results[1] == Frame(Command.ECHO, 2)


def test_short_frame_refused():
    results = FrameDecoder().feed(b"\x00" + cobs_encode(b"\x01\x02\x03") + b"\x00")
    assert len(results) == 1 and results[0].fault is FrameFault.SHORT


def test_overlong_line_refused_with_bounded_buffer_then_recovers():
    decoder = FrameDecoder()
    results = []
    for _ in range(10):
        results += decoder.feed(b"\x55" * 500)
    assert results == [] and len(decoder._buffer) <= MAX_ENCODED_FRAME
    results += decoder.feed(encode_frame(Command.HELLO, 1))
    assert results[0].fault is FrameFault.TOO_LONG and results[1] == Frame(Command.HELLO, 1)


def test_body_longer_than_max_frame_refused():
    body = bytes([Command.ECHO, 0]) + (MAX_PAYLOAD + 1).to_bytes(2, "little") + bytes(MAX_PAYLOAD + 1)
    body += crc16(body).to_bytes(2, "little")
    with pytest.raises(FrameError) as info:
        decode_frame(cobs_encode(body))
    assert info.value.fault is FrameFault.TOO_LONG


def test_empty_frames_between_delimiters_are_ignored():
    assert FrameDecoder().feed(b"\x00\x00\x00" + encode_frame(Command.HELLO, 0) + b"\x00\x00") == [
        Frame(Command.HELLO, 0)]


# -- field tables ----------------------------------------------------------------

def test_fields_round_trip_and_range_errors():
    values = dict(table=2, address=0x12345678, count=513)
    packed = pack_fields(MEMORY_REQUEST_FIELDS, **values)
    assert len(packed) == fields_size(MEMORY_REQUEST_FIELDS) == 7
    assert packed == bytes([2, 0x78, 0x56, 0x34, 0x12, 0x01, 0x02])
    assert unpack_fields(MEMORY_REQUEST_FIELDS, b"\xee" + packed, offset=1) == values
    with pytest.raises(LinkError, match=r"count=65536 does not fit 2 byte\(s\)"):
        pack_fields(MEMORY_REQUEST_FIELDS, table=0, address=0, count=65536)
    with pytest.raises(LinkError, match="missing"):
        pack_fields(MEMORY_REQUEST_FIELDS, table=0)
    with pytest.raises(LinkError, match="too short"):
        unpack_fields(MEMORY_REQUEST_FIELDS, packed[:-1])


def test_reply_field_tables_fit_one_frame():
    assert 1 + fields_size(HELLO_REPLY_FIELDS) <= MAX_PAYLOAD
    assert 1 + fields_size(STATUS_REPLY_FIELDS) <= MAX_PAYLOAD
    names = [n for n, _ in HELLO_REPLY_FIELDS]
    assert {"protocol_version", "core_model_version", "n", "m", "state_bits", "weight_bits",
            "trace_bits", "lanes", "clk_hz", "baud"} <= set(names)


# -- spike records ---------------------------------------------------------------

spike_sets = st.integers(1, 700).flatmap(
    lambda count: st.tuples(st.just(count), st.sets(st.integers(0, count - 1), max_size=count)))


@given(spike_sets, st.integers(0, 2**32 - 1))
@settings(max_examples=200)
def test_spike_record_round_trip(count_spikes, step):
    count, spikes = count_spikes
    record = encode_spikes(step, spikes, count)
    assert decode_spikes(b"xx" + record + b"yy", count, offset=2) == (step, sorted(spikes), 2 + len(record))


@given(spike_sets)
@settings(max_examples=200)
def test_spike_record_takes_the_shorter_form(count_spikes):
    count, spikes = count_spikes
    record = encode_spikes(0, spikes, count)
    bitmap, addresses = (count + 7) // 8, 2 + 2 * len(spikes)
    head = fields_size(SPIKE_RECORD_FIELDS)
    assert len(record) == head + min(bitmap, addresses) == spike_record_size(spikes, count)
    assert record[4] == (SpikeFormat.ADDRESSES if addresses < bitmap else SpikeFormat.BITMAP)


def test_spike_record_examples():
    # 256 neurons: bitmap 32 bytes; 14 spikes (30 bytes) is a list, 15 (32) a bitmap (tie).
    assert encode_spikes(7, range(14), 256)[4] == SpikeFormat.ADDRESSES
    assert encode_spikes(7, range(15), 256)[4] == SpikeFormat.BITMAP
    assert encode_spikes(1, [], 256) == bytes([1, 0, 0, 0, SpikeFormat.ADDRESSES, 0, 0])
    assert encode_spikes(1, [0, 9], 16) == bytes([1, 0, 0, 0, SpikeFormat.BITMAP, 0x01, 0x02])


def test_spike_record_accepts_masks():
    mask = np.zeros(40, dtype=bool)
    mask[[3, 39]] = True
    assert encode_spikes(2, mask, 40) == encode_spikes(2, [3, 39], 40)
    assert encode_spikes(2, [j in (3, 39) for j in range(40)], 40) == encode_spikes(2, [3, 39], 40)


def test_spike_records_concatenate():
    records = [encode_spikes(s, spikes, 100) for s, spikes in enumerate([[], [5], list(range(0, 100, 2))])]
    data, offset, out = b"".join(records), 0, []
    while offset < len(data):
        step, spikes, offset = decode_spikes(data, 100, offset)
        out.append((step, spikes))
    assert out == [(0, []), (1, [5]), (2, list(range(0, 100, 2)))]


@pytest.mark.parametrize("record,message", [
    (bytes([0, 0, 0, 0, 2]), "format=2 unknown"),
    (bytes([0, 0, 0, 0, 0, 0xFF]), "bitmap truncated"),
    (bytes([0, 0, 0, 0, 0, 0, 0x80]), "sets index 15"),
    (bytes([0, 0, 0, 0, 1, 2, 0, 1, 0]), "truncated: 2 addresses"),
    (bytes([0, 0, 0, 0, 1, 2, 0, 3, 0, 1, 0]), "not ascending"),
    (bytes([0, 0, 0]), "too short"),
])
def test_spike_record_malformed(record, message):
    with pytest.raises(LinkError, match=message):
        decode_spikes(record, 12)


def test_spike_record_refuses_out_of_range_index():
    with pytest.raises(LinkError, match="outside 0 .. 9"):
        encode_spikes(0, [10], 10)


# -- protocol versions 2 and 3: RUN flags, probe and input records -------------------

from neurofabric.contract.device import (  # noqa: E402
    GLOBAL_REGISTERS, READ_ONLY_GLOBALS, CoreShape, global_register_bits, neuron_params_fields, neuron_state_fields,
)
from neurofabric.contract.protocol import (  # noqa: E402
    FAMILY_COMMANDS, PROBE_RECORD_FIELDS, PROTOCOL_VERSION, RUN_REPLY_FIELDS, RUN_REQUEST_FIELDS, TABLE_NAMES, Family,
    RunFlags, memory_family, memory_tables, probe_chunk_neurons, probe_value_bytes, table_depth, table_info, table_key,
    word_bits,
)
from neurofabric.host.memory_map import (  # noqa: E402
    bytes_to_words, decode_global, encode_global, pack_weights, pack_word, unpack_weights, unpack_word, words_to_bytes,
)
from neurofabric.host.records import decode_probe_record, encode_probe_record, encode_run_request, run_request_size  # noqa: E402


def test_version_6_field_tables():
    assert PROTOCOL_VERSION == 6
    assert RUN_REQUEST_FIELDS == (("steps", 2), ("flags", 1)) and RUN_REPLY_FIELDS == (("steps", 4),)
    assert HELLO_REPLY_FIELDS[-1] == ("build_id", 4)
    # Fields added in version 2 come last, so version-1 offsets did not move.
    assert [name for name, _ in STATUS_REPLY_FIELDS][-2:] == ["last_step_cycles", "lost_records"]
    assert Command.PROBE_RECORD == 0x22 and RunFlags.PROBE == 1
    assert fields_size(PROBE_RECORD_FIELDS) == 8
    # Version 3: the inputs of each step, the generator's rates table.
    assert Command.INPUT_RECORD == 0x23 and RunFlags.INPUTS == 2
    assert table_key("rates") == (Family.PARAMS, 3)
    # Version 4: recording a subset, RUN requests without input records.
    assert Command.SET_RECORD == 0x05 and RunFlags.SUBSET == 4 and RunFlags.GENERATED == 8
    # Version 5: the spike counters, RUNs without records.
    assert table_key("spike_counts") == (Family.STATE, 3) and RunFlags.NO_RECORDS == 0x10
    counts = table_info(Family.STATE, 3, CoreShape(n=40, m=8, state_bits=16, weight_bits=8, trace_bits=8, lanes=4))
    assert (counts.word_bits, counts.word_bytes, counts.depth) == (16, 2, 40)
    with pytest.raises(LinkError, match="no memory table 'speeds'"):
        table_key("speeds")


def test_the_generator_travels_with_the_memory_commands():
    """The rates table holds m 16-bit words; the seed register takes 1 .. 2^32-1 (never 0:
    the generator state is never 0); gen_state is read only."""
    shape = CoreShape(n=8, m=20, state_bits=16, weight_bits=8, trace_bits=8, lanes=2)
    rates = table_info(*table_key("rates"), shape)
    assert (rates.word_bits, rates.word_bytes, rates.depth, rates.name) == (16, 2, 20, "rates")
    assert (rates.read_command, rates.write_command) == (Command.READ_PARAMS, Command.WRITE_PARAMS)
    assert words_to_bytes([65535, 1], rates.word_bits) == bytes([0xFF, 0xFF, 1, 0])
    assert encode_global("seed", 1, shape) == 1 and encode_global("seed", 2**32 - 1, shape) == 0xFFFF_FFFF
    with pytest.raises(LinkError, match=r"global register seed=0 outside 1 .. 4294967295"):
        encode_global("seed", 0, shape)
    assert "gen_state" in READ_ONLY_GLOBALS and "seed" not in READ_ONLY_GLOBALS
    assert GLOBAL_REGISTERS.index("seed") < GLOBAL_REGISTERS.index("steps_done")   # writable from address 0


def test_an_input_record_is_a_spike_record_of_the_m_inputs():
    for inputs, m in (([0, 5, 19], 20), ([], 260), (list(range(0, 260, 3)), 260), ([7], 8)):
        record = encode_spikes(12, inputs, m)
        assert decode_spikes(b"\x00" + record, m, 1) == (12, inputs, 1 + len(record))
    assert encode_run_request([[1]], 8, RunFlags.PROBE | RunFlags.INPUTS)[:3] == bytes([1, 0, 3])


def test_run_request_layout():
    payload = encode_run_request([[1, 3], [], [0]], 10, RunFlags.PROBE)
    assert payload[:3] == bytes([3, 0, 1])
    offset, steps = 3, []
    for _ in range(3):
        step, spikes, offset = decode_spikes(payload, 10, offset)
        steps.append((step, spikes))
    assert offset == len(payload) == run_request_size([[1, 3], [], [0]], 10)
    assert steps == [(0, [1, 3]), (1, []), (2, [0])]
    mask = np.zeros((2, 10), bool)
    mask[1, 9] = True
    assert encode_run_request(mask, 10) == encode_run_request([[], [9]], 10)


def test_run_request_refusals():
    with pytest.raises(LinkError, match=r"flags=0x40 has unknown bits \(known: PROBE=0x01, INPUTS=0x02, "
                                         r"SUBSET=0x04, GENERATED=0x08, NO_RECORDS=0x10, BLOCKS=0x20\)"):
        encode_run_request([[]], 8, 0x40)
    for flag in (RunFlags.PROBE, RunFlags.INPUTS):
        with pytest.raises(LinkError, match="NO_RECORDS sends no records: not with PROBE or INPUTS"):
            encode_run_request([[]], 8, RunFlags.NO_RECORDS | flag)
    for flag in (RunFlags.PROBE, RunFlags.INPUTS, RunFlags.NO_RECORDS):
        with pytest.raises(LinkError, match="BLOCKS sends step records in blocks: not with PROBE, INPUTS or "
                                             "NO_RECORDS"):
            encode_run_request([[]], 8, RunFlags.BLOCKS | flag)
    with pytest.raises(LinkError, match="GENERATED: step 1 has host inputs"):
        encode_run_request([[], [3]], 8, RunFlags.GENERATED)


def test_a_run_request_of_generated_inputs_has_no_records():
    payload = encode_run_request([[]] * 500, 8, RunFlags.GENERATED | RunFlags.SUBSET)
    assert payload == bytes([500 & 0xFF, 500 >> 8, RunFlags.GENERATED | RunFlags.SUBSET])
    assert run_request_size([[]] * 500, 8, RunFlags.GENERATED) == 3 < run_request_size([[]] * 500, 8)
    with pytest.raises(LinkError, match="MAX_PAYLOAD=1024: send fewer steps"):
        encode_run_request([list(range(0, 256, 2))] * 40, 256)


@given(st.integers(2, 32).flatmap(lambda s: st.tuples(
    st.just(s), st.lists(st.tuples(st.integers(-(1 << (s - 1)), (1 << (s - 1)) - 1),
                                   st.integers(-(1 << (s - 1)), (1 << (s - 1)) - 1)), max_size=40))),
       st.integers(0, 2**32 - 1), st.integers(0, 1000))
@settings(max_examples=150)
def test_probe_record_round_trip(s_values, step, first):
    state_bits, pairs = s_values
    v, i = [a for a, _ in pairs], [b for _, b in pairs]
    body = encode_probe_record(step, first, v, i, state_bits)
    assert len(body) == fields_size(PROBE_RECORD_FIELDS) + 2 * probe_value_bytes(state_bits) * len(v)
    assert decode_probe_record(b"\x00" + body, state_bits, 1) == (step, first, v, i, 1 + len(body))


def test_probe_record_examples_and_limits():
    # S = 12: two bytes per value, sign-extended; v first, then i.
    assert encode_probe_record(7, 2, [-1], [0x7FF], 12) == bytes([7, 0, 0, 0, 2, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0x07])
    assert probe_value_bytes(16) == 2 and probe_value_bytes(17) == 3 and probe_value_bytes(8) == 1
    for state_bits in (2, 8, 12, 16, 24, 32):
        chunk = probe_chunk_neurons(state_bits)
        assert 1 + fields_size(PROBE_RECORD_FIELDS) + 2 * probe_value_bytes(state_bits) * chunk <= MAX_PAYLOAD
        assert 1 + fields_size(PROBE_RECORD_FIELDS) + 2 * probe_value_bytes(state_bits) * (chunk + 1) > MAX_PAYLOAD
    with pytest.raises(LinkError, match=r"probe value 2048 of neuron 3 outside -2048 .. 2047"):
        encode_probe_record(0, 3, [2048], [0], 12)
    with pytest.raises(LinkError, match="254 neurons exceeds 253"):
        encode_probe_record(0, 0, [0] * 254, [0] * 254, 16)
    with pytest.raises(LinkError, match="probe record truncated"):
        decode_probe_record(encode_probe_record(0, 0, [1, 2], [3, 4], 16)[:-1], 16)


# -- the memory map: tables, word widths and layouts, against the gateware's ------

CORE_CONFIGS = [dict(n=8, m=8, S=16, W=8, T=8, lanes=2), dict(n=64, m=20, S=12, W=6, T=5, lanes=4),
                dict(n=3, m=2, S=2, W=2, T=1, lanes=1), dict(n=256, m=256, S=32, W=16, T=16, lanes=8)]


def shape_of(config):
    return CoreShape(n=config.n, m=config.m, state_bits=config.S, weight_bits=config.W, trace_bits=config.T,
                     lanes=config.lanes)


@pytest.mark.parametrize("kwargs", CORE_CONFIGS)
def test_word_widths_and_depths_are_the_cores(kwargs):
    from neurofabric.hdl.core_ports import CoreConfig, Reg
    from neurofabric.hdl.link import check_word_layouts
    config = CoreConfig(**kwargs)
    shape = shape_of(config)
    check_word_layouts(config)     # the gateware's own check
    expected = {
        "globals": (32, len(Reg)), "neuron_params": (config.neuron_params_layout.size, config.n),
        "pre_mask": (1, config.sources), "post_mask": (1, config.n),
        "weights": (config.lanes * config.W, config.weight_words),
        "neuron_state": (config.neuron_state_layout.size, config.n),
        "pre_trace": (config.T, config.sources), "post_trace": (config.T, config.n),
        "rates": (16, config.m), "spike_counts": (16, config.n),
    }
    infos = memory_tables(shape)
    assert {info.name: (info.word_bits, info.depth) for info in infos} == expected
    for info in infos:
        assert word_bits(info.family, info.table, shape) == info.word_bits
        assert table_depth(info.family, info.table, shape) == info.depth
        assert info.word_bits <= config.data_bits
        assert info.word_bytes == (info.word_bits + 7) // 8
        assert info.max_read_words * info.word_bytes <= MAX_PAYLOAD - 1
        assert fields_size(MEMORY_REQUEST_FIELDS) + info.max_write_words * info.word_bytes <= MAX_PAYLOAD


@pytest.mark.parametrize("state_bits", [2, 10, 16, 32])
def test_word_layouts_are_the_cores(state_bits):
    from neurofabric.hdl.core_ports import CoreConfig, pack, unpack
    config = CoreConfig(n=4, m=4, S=state_bits, lanes=2)
    for fields, layout in ((neuron_params_fields(state_bits), config.neuron_params_layout),
                           (neuron_state_fields(state_bits), config.neuron_state_layout)):
        offset = 0
        for (name, bits, is_signed), (lname, field) in zip(fields, layout):
            assert (name, offset, bits, is_signed) == (lname, field.offset, field.width, field.shape.signed)
            offset += bits
        assert offset == layout.size and len(fields) == len(list(layout))
        rng = random.Random(state_bits)
        for _ in range(50):
            values = {name: rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) if s else rng.randrange(1 << bits)
                      for name, bits, s in fields}
            word = pack_word(fields, **values)
            assert word == pack(layout, **values)
            assert unpack_word(fields, word) == unpack(layout, word) == values


def test_global_registers_are_the_cores():
    from neurofabric.hdl.core_ports import READ_ONLY_REGS, Reg
    assert GLOBAL_REGISTERS == tuple(reg.name.lower() for reg in sorted(Reg, key=lambda r: r.value))
    assert [reg.value for reg in sorted(Reg, key=lambda r: r.value)] == list(range(len(Reg)))
    assert READ_ONLY_GLOBALS == {reg.name.lower() for reg in READ_ONLY_REGS}


def test_global_register_encoding():
    shape = CoreShape(n=8, m=6, state_bits=16, weight_bits=6, trace_bits=5, lanes=2)
    assert encode_global("w_min", -32, shape) == 0x20 and decode_global("w_min", 0x20, shape) == -32
    assert encode_global("w_max", 31, shape) == 31 and decode_global("w_max", 0xFFFF_FFDF, shape) == 31
    assert encode_global("period", 0xFFFF_FFFF, shape) == 0xFFFF_FFFF
    assert global_register_bits("inc_pre", shape) == 5 and global_register_bits("n_used", shape) == 4
    with pytest.raises(LinkError, match=r"global register w_min=-33 outside -32 .. 31"):
        encode_global("w_min", -33, shape)
    with pytest.raises(LinkError, match=r"n_used=9 outside 0 .. 8"):
        encode_global("n_used", 9, shape)
    with pytest.raises(LinkError, match="no global register 'speed'"):
        encode_global("speed", 1, shape)


def test_words_and_weights_pack():
    from neurofabric.hdl.core_ports import join_lanes, split_lanes
    rng = random.Random(3)
    for lanes, bits in ((1, 2), (2, 8), (4, 6), (8, 16)):
        values = [rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) for _ in range(lanes)]
        word = pack_weights(values, bits)
        assert word == join_lanes(values, bits) and unpack_weights(word, lanes, bits) == values
        assert split_lanes(word, lanes, bits) == values
    assert words_to_bytes([0x123456, 1], 24) == bytes([0x56, 0x34, 0x12, 1, 0, 0])
    assert bytes_to_words(bytes([0x56, 0x34, 0x12, 1, 0, 0]), 24) == [0x123456, 1]
    assert words_to_bytes([1, 0], 1) == b"\x01\x00"
    with pytest.raises(LinkError, match="weight 8 \\(lane 1\\) outside -8 .. 7"):
        pack_weights([0, 8], 4)
    with pytest.raises(LinkError, match="word 512 does not fit 9 bits"):
        words_to_bytes([512], 9)
    with pytest.raises(LinkError, match="5 bytes are not a whole number of 2-byte words"):
        bytes_to_words(b"12345", 16)
    with pytest.raises(LinkError, match=r"word field decay_mem=8192 outside 0 .. 8191"):
        pack_word(neuron_params_fields(16), threshold=0, v_reset=0, bias=0, reset_mode=0, decay_mem=8192,
                  decay_syn=0, refractory=0)
    with pytest.raises(LinkError, match=r"missing \['refractory'\]"):
        pack_word(neuron_params_fields(16), threshold=0, v_reset=0, bias=0, reset_mode=0, decay_mem=3, decay_syn=0)


def test_tables_and_families():
    assert memory_family(Command.WRITE_WEIGHTS) == (Family.WEIGHTS, True)
    assert memory_family(Command.READ_STATE) == (Family.STATE, False)
    assert memory_family(Command.RUN) is None
    assert {cmd for pair in FAMILY_COMMANDS.values() for cmd in pair} == {
        c for c in Command if 0x10 <= c <= 0x17}
    assert sorted(TABLE_NAMES) == [(Family.GLOBALS, 0), (Family.PARAMS, 0), (Family.PARAMS, 1), (Family.PARAMS, 2),
                                   (Family.PARAMS, 3), (Family.WEIGHTS, 0), (Family.STATE, 0), (Family.STATE, 1),
                                   (Family.STATE, 2), (Family.STATE, 3)]
    shape = CoreShape.from_hello(dict(n=8, m=4, state_bits=16, weight_bits=8, trace_bits=8, lanes=2, clk_hz=1))
    assert shape.weight_address(row=5, column_word=3) == 5 * 4 + 3
    info = table_info(Family.PARAMS, 1, shape)
    assert (info.name, info.read_command, info.write_command) == ("pre_mask", Command.READ_PARAMS,
                                                                   Command.WRITE_PARAMS)
    with pytest.raises(LinkError, match=r"no table 1 in WEIGHTS \(tables: \[0\]\)"):
        word_bits(Family.WEIGHTS, 1, shape)
    with pytest.raises(LinkError, match="no table 4 in STATE"):
        table_depth(Family.STATE, 4, shape)
