"""The wire format of host/protocol.py: CRC, COBS, frames, the stream decoder, spike records."""

import binascii
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurofabric.host.errors import LinkError
from neurofabric.host.protocol import (
    CRC_SIZE, HEADER_SIZE, HELLO_REPLY_FIELDS, MAX_ENCODED_FRAME, MAX_FRAME, MAX_PAYLOAD,
    MEMORY_REQUEST_FIELDS, REPLY_FLAG, SPIKE_RECORD_FIELDS, STATUS_REPLY_FIELDS, Command,
    Frame, FrameDecoder, FrameError, FrameFault, SpikeFormat, Status, cobs_decode,
    cobs_encode, cobs_max_encoded_size, crc16, decode_frame, decode_spikes, encode_frame,
    encode_spikes, fields_size, frame_body, pack_fields, spike_record_size, unpack_fields,
)

payloads = st.integers(0, MAX_PAYLOAD).flatmap(
    lambda n: st.binary(min_size=n, max_size=n)
    | st.lists(st.integers(1, 255), min_size=n, max_size=n).map(bytes))
frames = st.tuples(st.integers(0, 255), st.integers(0, 255), payloads)


def only_frames(results):
    return [r for r in results if isinstance(r, Frame)]


# -- import hygiene -------------------------------------------------------------

def test_protocol_imports_without_amaranth():
    code = ("import sys; sys.modules['amaranth'] = None\n"
            "import neurofabric.host.protocol as p\n"
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
