"""Spike, probe and RUN records on the host side (docs/protocol.md, "Spike records", "RUN").

A step's input record (INPUT_RECORD) is a spike record of the m inputs:
`encode_spikes(step, inputs, m)` / `decode_spikes(data, m)`. A STEP_BLOCK holds
the bitmaps of several steps: `encode_step_block` / `decode_step_block`.

Their layouts (`SPIKE_RECORD_FIELDS`, `PROBE_RECORD_FIELDS`, `RUN_REQUEST_FIELDS`)
are the protocol's (`neurofabric.contract.protocol`); this module encodes and
decodes them.
"""

import numpy as np

from neurofabric.contract.errors import LinkError
from neurofabric.contract.protocol import (
    MAX_PAYLOAD, PROBE_RECORD_FIELDS, RUN_REQUEST_FIELDS, SPIKE_ADDRESS_BYTES, SPIKE_RECORD_FIELDS, STEP_BLOCK_FIELDS,
    RunFlags, SpikeFormat, block_steps, fields_size, pack_fields, probe_chunk_neurons, probe_value_bytes,
    unpack_fields,
)

__all__ = [
    "encode_spikes", "decode_spikes", "spike_record_size", "encode_run_request", "run_request_size",
    "encode_probe_record", "decode_probe_record", "encode_bitmap", "encode_step_block", "decode_step_block",
    "block_span",
]


def _bitmap_size(count):
    return (count + 7) // 8


def encode_bitmap(indices, count):
    """The bitmap of `count` bits (bit j % 8 of byte j // 8) with the bits of `indices` set: a
    spike record's bitmap body, and SET_RECORD's payload. The indices must be in 0 .. count-1."""
    bitmap = bytearray(_bitmap_size(count))
    for j in indices:
        bitmap[j // 8] |= 1 << (j % 8)
    return bytes(bitmap)


def spike_record_size(spikes, count):
    """Bytes of the record `encode_spikes` makes for `len(spikes)` spikes of `count`."""
    k = len(spikes)
    body = min(_bitmap_size(count), SPIKE_ADDRESS_BYTES * (1 + k))
    return fields_size(SPIKE_RECORD_FIELDS) + body


def encode_spikes(step, spikes, count):
    """Encode one step's spikes as a record: step (u32), format (u8), body.

    `spikes` is an iterable of indices in ``0 .. count-1`` (or a sequence of
    `count` bools, or a boolean numpy array). The body is a bitmap or an address list,
    whichever is shorter; on a tie the bitmap.
    """
    if not 0 < count <= 1 << (8 * SPIKE_ADDRESS_BYTES):
        raise LinkError(f"spike record count={count} outside 1 .. {1 << 8 * SPIKE_ADDRESS_BYTES}")
    if getattr(getattr(spikes, "dtype", None), "kind", None) == "b":
        spikes = spikes.nonzero()[0]
    spikes = list(spikes)
    if spikes and all(isinstance(s, bool) for s in spikes):
        if len(spikes) != count:
            raise LinkError(f"spike mask has {len(spikes)} entries, count is {count}")
        spikes = [j for j, s in enumerate(spikes) if s]
    indices = sorted(set(int(j) for j in spikes))
    if indices and not (0 <= indices[0] and indices[-1] < count):
        raise LinkError(f"spike index outside 0 .. {count - 1}: {indices[0] if indices[0] < 0 else indices[-1]}")
    bitmap_size = _bitmap_size(count)
    list_size = SPIKE_ADDRESS_BYTES * (1 + len(indices))
    if list_size < bitmap_size:
        body = len(indices).to_bytes(SPIKE_ADDRESS_BYTES, "little") + b"".join(
            j.to_bytes(SPIKE_ADDRESS_BYTES, "little") for j in indices)
        fmt = SpikeFormat.ADDRESSES
    else:
        body = encode_bitmap(indices, count)
        fmt = SpikeFormat.BITMAP
    return pack_fields(SPIKE_RECORD_FIELDS, step=step, format=fmt) + body


def decode_spikes(data, count, offset=0):
    """Decode the spike record at `offset`: returns ``(step, indices, next_offset)``.

    `indices` is the ascending list of spiking indices. Raises `LinkError` on a
    truncated record, an unknown format, a set bitmap bit past `count`, or an
    address list that is unsorted or out of range.
    """
    head = unpack_fields(SPIKE_RECORD_FIELDS, data, offset)
    offset += fields_size(SPIKE_RECORD_FIELDS)
    if head["format"] == SpikeFormat.BITMAP:
        size = _bitmap_size(count)
        bitmap = data[offset:offset + size]
        if len(bitmap) < size:
            raise LinkError(f"spike bitmap truncated: {len(bitmap)} of {size} bytes")
        indices = [8 * b + i for b, byte in enumerate(bitmap) for i in range(8) if byte >> i & 1]
        if indices and indices[-1] >= count:
            raise LinkError(f"spike bitmap sets index {indices[-1]}, count is {count}")
        return head["step"], indices, offset + size
    if head["format"] == SpikeFormat.ADDRESSES:
        if len(data) - offset < SPIKE_ADDRESS_BYTES:
            raise LinkError("spike address list truncated before its length")
        k = int.from_bytes(data[offset:offset + SPIKE_ADDRESS_BYTES], "little")
        offset += SPIKE_ADDRESS_BYTES
        end = offset + k * SPIKE_ADDRESS_BYTES
        if len(data) < end:
            raise LinkError(f"spike address list truncated: {k} addresses announced")
        indices = [int.from_bytes(data[i:i + SPIKE_ADDRESS_BYTES], "little")
                   for i in range(offset, end, SPIKE_ADDRESS_BYTES)]
        if any(a >= b for a, b in zip(indices, indices[1:])) or (indices and indices[-1] >= count):
            raise LinkError(f"spike address list not ascending within 0 .. {count - 1}")
        return head["step"], indices, end
    raise LinkError(f"spike record format={head['format']} unknown (0 bitmap, 1 addresses)")


def encode_step_block(step, rows, count, nbytes):
    """The payload of a STEP_BLOCK after its status byte: `STEP_BLOCK_FIELDS`, then per
    row (the spikes of one step, indices below ``8 * nbytes`` and `count`) its bitmap of
    `nbytes` bytes."""
    rows = [_spike_indices(row, count) for row in rows]
    if not 1 <= len(rows) <= block_steps(nbytes):
        raise LinkError(f"a STEP_BLOCK holds 1 .. {block_steps(nbytes)} steps of {nbytes} bytes, not {len(rows)}")
    body = bytearray()
    for row in rows:
        if row and (row[0] < 0 or row[-1] >= min(count, 8 * nbytes)):
            raise LinkError(f"spike index outside 0 .. {min(count, 8 * nbytes) - 1} in a block of {nbytes} bytes")
        body += encode_bitmap(row, 8 * nbytes)
    return pack_fields(STEP_BLOCK_FIELDS, step=step, steps=len(rows), bytes=nbytes) + bytes(body)


def block_span(count, neurons=None):
    """Bitmap bytes of one step in a STEP_BLOCK: ceil(count / 8) for every neuron, or
    for a SUBSET run with the SET_RECORD mask of `neurons` its bytes up to the highest
    recorded neuron's (at least 1), as the device sends them."""
    if neurons is None:
        return _bitmap_size(count)
    neurons = [int(k) for k in neurons]
    return max(neurons) // 8 + 1 if neurons else 1


def decode_step_block(data, count, offset=0):
    """Decode the STEP_BLOCK body at `offset`: returns ``(step, rows, next_offset)``,
    `rows` the ascending spike indices of each step in turn. Raises `LinkError` on a
    truncated block, no steps, a span longer than ceil(count / 8) bytes or a set bit
    past `count`."""
    head = unpack_fields(STEP_BLOCK_FIELDS, data, offset)
    offset += fields_size(STEP_BLOCK_FIELDS)
    steps, nbytes = head["steps"], head["bytes"]
    if not steps or not 1 <= nbytes <= _bitmap_size(count):
        raise LinkError(f"STEP_BLOCK of {steps} steps of {nbytes} bytes (a step has 1 .. {_bitmap_size(count)})")
    end = offset + steps * nbytes
    if len(data) < end:
        raise LinkError(f"STEP_BLOCK truncated: {len(data) - offset} of {steps * nbytes} bitmap bytes")
    bits = np.unpackbits(np.frombuffer(bytes(data[offset:end]), np.uint8), bitorder="little").reshape(steps, -1)
    if bits[:, count:].any():
        raise LinkError(f"STEP_BLOCK sets a neuron >= {count}")
    return head["step"], [np.flatnonzero(row).tolist() for row in bits], end


def _spike_indices(spikes, count):
    if getattr(getattr(spikes, "dtype", None), "kind", None) == "b":
        return [int(j) for j in spikes.nonzero()[0]]
    spikes = list(spikes)
    if spikes and all(isinstance(s, bool) for s in spikes):
        return [j for j, s in enumerate(spikes) if s]
    return sorted(set(int(j) for j in spikes))


# -- RUN requests -------------------------------------------------------------

def run_request_size(stimulus, m, flags=0):
    """Payload bytes of the RUN request `encode_run_request` makes for `stimulus`."""
    if int(flags) & RunFlags.GENERATED:
        return fields_size(RUN_REQUEST_FIELDS)
    return fields_size(RUN_REQUEST_FIELDS) + sum(spike_record_size(_spike_indices(row, m), m) for row in stimulus)


def encode_run_request(stimulus, m, flags=0):
    """The payload of one RUN request: steps, flags, one input spike record per step.

    `stimulus` is a sequence of steps, each the spiking input indices (or a
    bool row of `m`); the records' step fields count from 0. Raises
    `LinkError` when the request would exceed `MAX_PAYLOAD` (split the
    stimulus into several requests) or a flag is unknown. With
    `RunFlags.GENERATED` the request holds no records (every step must be
    empty: the inputs come from the stimulus generator alone); `RunFlags.NO_RECORDS`
    goes with neither PROBE nor INPUTS.
    """
    flags = int(flags)
    known = 0
    for flag in RunFlags:
        known |= int(flag)
    if flags & ~known:
        names = ", ".join(f"{flag.name}=0x{int(flag):02X}" for flag in RunFlags)
        raise LinkError(f"RUN flags=0x{flags:02X} has unknown bits (known: {names})")
    if flags & RunFlags.NO_RECORDS and flags & (RunFlags.PROBE | RunFlags.INPUTS):
        raise LinkError("RUN flag NO_RECORDS sends no records: not with PROBE or INPUTS")
    if flags & RunFlags.BLOCKS and flags & (RunFlags.PROBE | RunFlags.INPUTS | RunFlags.NO_RECORDS):
        raise LinkError("RUN flag BLOCKS sends step records in blocks: not with PROBE, INPUTS or NO_RECORDS")
    rows = [_spike_indices(row, m) for row in stimulus]
    if flags & RunFlags.GENERATED:
        busy = next((t for t, row in enumerate(rows) if len(row)), None)
        if busy is not None:
            raise LinkError(f"RUN flag GENERATED: step {busy} has host inputs; a request without input records "
                            "needs every step empty")
        return pack_fields(RUN_REQUEST_FIELDS, steps=len(rows), flags=flags)
    payload = pack_fields(RUN_REQUEST_FIELDS, steps=len(rows), flags=flags) + b"".join(
        encode_spikes(t, row, m) for t, row in enumerate(rows))
    if len(payload) > MAX_PAYLOAD:
        raise LinkError(f"RUN request of {len(rows)} steps takes {len(payload)} bytes, more than "
                        f"MAX_PAYLOAD={MAX_PAYLOAD}: send fewer steps per request")
    return payload


# -- probe records -------------------------------------------------------------


def encode_probe_record(step, first, v, i, state_bits):
    """The body of a PROBE_RECORD (after the status byte) for neurons first .. first+len(v)-1."""
    v, i = [int(x) for x in v], [int(x) for x in i]
    if len(v) != len(i):
        raise LinkError(f"probe record: {len(v)} v values but {len(i)} i values")
    if len(v) > probe_chunk_neurons(state_bits):
        raise LinkError(f"probe record of {len(v)} neurons exceeds {probe_chunk_neurons(state_bits)} per record")
    size = probe_value_bytes(state_bits)
    lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1
    out = bytearray(pack_fields(PROBE_RECORD_FIELDS, step=step, first=first, count=len(v)))
    for name, a, b in zip(range(len(v)), v, i):
        for value in (a, b):
            if not lo <= value <= hi:
                raise LinkError(f"probe value {value} of neuron {first + name} outside {lo} .. {hi} (S={state_bits})")
            out += value.to_bytes(size, "little", signed=True)
    return bytes(out)


def decode_probe_record(data, state_bits, offset=0):
    """Decode a PROBE_RECORD body at `offset`: returns ``(step, first, v, i, next_offset)``."""
    head = unpack_fields(PROBE_RECORD_FIELDS, data, offset)
    offset += fields_size(PROBE_RECORD_FIELDS)
    size = probe_value_bytes(state_bits)
    end = offset + 2 * size * head["count"]
    if len(data) < end:
        raise LinkError(f"probe record truncated: {head['count']} neurons need {end - offset} bytes, "
                        f"{len(data) - offset} there")
    values = [int.from_bytes(data[k:k + size], "little", signed=True) for k in range(offset, end, size)]
    return head["step"], head["first"], values[0::2], values[1::2], end
