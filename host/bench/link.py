"""The link section: bytes on the wire of the real host code (`LinkClient`,
`SerialDevice`, the protocol's encoders) against an in-process device that
answers every request: payload efficiency, the time to load a weight matrix
and the streaming limit at each board's baud rate."""

import numpy as np

from ..serial_device import DEFAULT_CHECKPOINT_STEPS
from .plan import REFERENCE_ACTIVITY, workload_network

__all__ = ["ROUND_TRIP_S", "SLOW_ROUND_TRIP_S", "LINK_CASES", "RECORDED_NEURONS", "link_costs",
           "stream_steps_per_s", "firmware_cycles_per_step", "bench_link", "end_to_end"]


def _wire_meter(shape, clk_hz, baud, activity, seed, blocks=True):
    """An in-process device behind a `Transport` that answers every request OK
    (HELLO with `shape`, a STEP_RECORD per RUN step with `activity` of the n
    neurons spiking, of those SET_RECORD named alone when the RUN has SUBSET, none
    with NO_RECORDS, STEP_BLOCKs with BLOCKS, which without `blocks` it refuses as a
    build without step blocks does; a read with as many zero words as it asks for) and
    logs every frame both ways as
    ``(direction, command, payload bytes, data bytes, wire bytes)``; data bytes
    are the payload without its protocol fields (the memory request's table,
    address and count; RUN's steps and flags; a reply's status byte)."""
    from ..transport import Transport
    from neurofabric.contract.protocol import (
        HELLO_REPLY_FIELDS, MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, PROTOCOL_VERSION, REPLY_FLAG, RUN_REPLY_FIELDS,
        RUN_REQUEST_FIELDS, STATUS_REPLY_FIELDS, Command, RunFlags, Status, block_steps, fields_size,
        memory_family, pack_fields, table_info, unpack_fields,
    )
    from ..framing import FrameDecoder, encode_frame
    from ..records import block_span, encode_spikes, encode_step_block
    from neurofabric.contract.model import CORE_MODEL_VERSION

    class WireMeter(Transport):
        name = "wire meter"

        def __init__(self):
            self.log = []
            self.step = 0
            self._decoder = FrameDecoder()
            self._out = bytearray()
            self._rng = np.random.default_rng(seed)
            self.record = np.ones(shape.n, bool)

        def write(self, data):
            for frame in self._decoder.feed(data):
                payload = frame.payload
                skip = {Command.RUN: fields_size(RUN_REQUEST_FIELDS)}.get(frame.code, 0)
                if memory_family(frame.code) is not None:
                    skip = fields_size(MEMORY_REQUEST_FIELDS)
                self.log.append(("out", frame.code, len(payload), len(payload) - skip,
                                 len(encode_frame(frame.code, frame.seq, payload))))
                self._answer(frame.code, frame.seq, payload)

        def _reply(self, command, seq, body=b"", data=None, status=Status.OK):
            payload = bytes([status]) + body
            wire = encode_frame(int(command) | REPLY_FLAG, seq, payload)
            self.log.append(("in", command, len(payload), len(body) if data is None else data, len(wire)))
            self._out += wire

        def _answer(self, command, seq, payload):
            if command == Command.HELLO:
                self._reply(command, seq, pack_fields(
                    HELLO_REPLY_FIELDS, protocol_version=PROTOCOL_VERSION, core_model_version=CORE_MODEL_VERSION,
                    n=shape.n, m=shape.m, state_bits=shape.state_bits, weight_bits=shape.weight_bits,
                    trace_bits=shape.trace_bits, lanes=shape.lanes, clk_hz=clk_hz, baud=baud,
                    max_payload=MAX_PAYLOAD, build_id=0))
            elif command == Command.STATUS:
                self._reply(command, seq, pack_fields(
                    STATUS_REPLY_FIELDS, running=0, step=self.step, uart_framing_errors=0, uart_overruns=0,
                    crc_errors=0, format_errors=0, dropped_frames=0, last_step_cycles=0, lost_records=0))
            elif command == Command.SET_RECORD:
                bits = np.unpackbits(np.frombuffer(payload, np.uint8), bitorder="little")[:shape.n]
                self.record = bits.astype(bool)
                self._reply(command, seq)
            elif command == Command.RUN:
                fields = unpack_fields(RUN_REQUEST_FIELDS, payload)
                steps, subset = fields["steps"], fields["flags"] & RunFlags.SUBSET
                if fields["flags"] & RunFlags.BLOCKS and not blocks:
                    self._reply(command, seq, status=Status.BAD_VALUE)
                    return
                span = block_span(shape.n, np.flatnonzero(self.record) if subset else None)
                block = []
                for t in range(steps):
                    spiking = self._rng.random(shape.n) < activity
                    spikes = np.flatnonzero(spiking & self.record if subset else spiking)
                    if fields["flags"] & RunFlags.BLOCKS:
                        block.append(spikes)
                        if len(block) == block_steps(span) or t == steps - 1:
                            self._reply(Command.STEP_BLOCK, seq,
                                        encode_step_block(self.step + 1 - len(block), block, shape.n, span))
                            block = []
                    elif not fields["flags"] & RunFlags.NO_RECORDS:
                        self._reply(Command.STEP_RECORD, seq, encode_spikes(self.step, spikes, shape.n))
                    self.step += 1
                self._reply(command, seq, pack_fields(RUN_REPLY_FIELDS, steps=steps), data=0)
            elif command == Command.RESET_STATE:
                self.step = 0
                self._reply(command, seq)
            elif memory_family(command) is not None and not memory_family(command)[1]:     # a read
                request = unpack_fields(MEMORY_REQUEST_FIELDS, payload)
                info = table_info(memory_family(command)[0], request["table"], shape)
                self._reply(command, seq, bytes(request["count"] * info.word_bytes))
            else:  # writes: OK with no data
                self._reply(command, seq)

        def read(self, timeout):
            out, self._out = bytes(self._out), bytearray()
            return out

        def close(self):
            pass

    return WireMeter()


def _tally(log, commands, direction=None):
    """Sum frames, payload, data and wire bytes of the logged frames of `commands`."""
    rows = [r for r in log if r[1] in commands and (direction is None or r[0] == direction)]
    frames, payload, data, wire = len(rows), sum(r[2] for r in rows), sum(r[3] for r in rows), sum(r[4] for r in rows)
    return {"frames": frames, "payload_bytes": payload, "data_bytes": data, "wire_bytes": wire,
            "efficiency": data / wire if wire else 0.0}


def link_costs(shape, activities, steps, seed=1, clk_hz=12_000_000, baud=3_000_000, weights=None,
               reference_activity=None, blocks=True):
    """Wire bytes of loading a full weight matrix (`weights`, `(m + n, n)`;
    default random), of loading a whole network, and of streaming `steps`
    steps at each activity, for a core of `shape` (a `protocol.CoreShape`),
    through the real `LinkClient` and `SerialDevice`.

    Efficiency is data bytes over wire bytes: the weights' bytes, or the spike
    records, over everything the UART carries for them (delimiters, COBS,
    header, CRC and the request fields).

    With `reference_activity`, also ``reference_streams``: at that activity, the
    stream of host inputs (``full_raster``) and of inputs left to the stimulus
    generator (``generated``: RUN requests without input records), each with every
    neuron's spikes coming back, and of generated inputs with `RECORDED_NEURONS`
    neurons recorded on the device (``generated_32``: SET_RECORD, RUNs with SUBSET),
    and of generated inputs with only the spike counts of all n neurons coming back
    (``generated_counts``: RUNs with NO_RECORDS, the device's spike counters read as
    `SerialDevice` reads them, before the run and after every span of its default
    `checkpoint_steps`). `blocks`: the device has step blocks (`CoreConfig.step_blocks`),
    which the host then uses where they pay (`LinkClient.run`).
    """
    from ...hdl.core_ports import CoreConfig
    from ..link import LinkClient
    from neurofabric.contract.protocol import Command
    from ..memory_map import pack_weights
    from ..serial_device import SerialDevice

    rng = np.random.default_rng(seed)
    out = {"shape": {"n": shape.n, "m": shape.m, "lanes": shape.lanes, "S": shape.state_bits,
                     "W": shape.weight_bits, "T": shape.trace_bits}}

    # A full weight matrix: (m + n) rows of n / lanes words, random weights.
    meter = _wire_meter(shape, clk_hz, baud, 0.0, seed)
    client = LinkClient(meter)
    client.hello()
    meter.log.clear()
    W = shape.weight_bits
    if weights is None:
        weights = rng.integers(-(1 << (W - 1)), 1 << (W - 1), size=(shape.m + shape.n, shape.n))
    words = [pack_weights(row[c * shape.lanes:(c + 1) * shape.lanes], W)
             for row in weights for c in range(shape.n // shape.lanes)]
    client.write_weights(0, words)
    load = _tally(meter.log, {Command.WRITE_WEIGHTS}, "out")
    replies = _tally(meter.log, {Command.WRITE_WEIGHTS}, "in")
    load.update(weights=int(weights.size), reply_wire_bytes=replies["wire_bytes"],
                total_wire_bytes=load["wire_bytes"] + replies["wire_bytes"])
    out["weight_load"] = load

    # A whole network as SerialDevice.load writes it: registers, parameters, masks, weights, reset.
    config = CoreConfig(n=shape.n, m=shape.m, S=shape.state_bits, W=shape.weight_bits, T=shape.trace_bits,
                        lanes=shape.lanes)
    meter = _wire_meter(shape, clk_hz, baud, 0.0, seed)
    device = SerialDevice(meter, kind="wire meter")
    meter.log.clear()
    device.load(workload_network(config, REFERENCE_ACTIVITY, 1, seed))
    sent, got = _tally(meter.log, set(Command), "out"), _tally(meter.log, set(Command), "in")
    out["network_load"] = {"frames": sent["frames"], "data_bytes": sent["data_bytes"],
                           "wire_bytes": sent["wire_bytes"], "reply_wire_bytes": got["wire_bytes"],
                           "total_wire_bytes": sent["wire_bytes"] + got["wire_bytes"],
                           "efficiency": sent["efficiency"]}

    # Spike streams: inputs at `activity` in RUN requests, the same activity in the step records.
    def stream(activity, host_inputs=True, recorded=None, counts=False):
        meter = _wire_meter(shape, clk_hz, baud, activity, seed, blocks)
        client = LinkClient(meter)
        client.hello()
        client.status()  # the step counter, as SerialDevice.run learns it
        client.has_blocks()  # asked once a session: not counted
        if recorded:
            client.set_record(range(min(recorded, shape.n)))      # once per network: not counted
        meter.log.clear()
        stimulus = [np.flatnonzero(row) if host_inputs else () for row in rng.random((steps, shape.m)) < activity]
        if counts:
            client.run_counts(stimulus, 0, shape.n, span=COUNT_SPAN_STEPS)
        else:
            for _ in client.run(stimulus, subset=bool(recorded)):
                pass
        inputs = _tally(meter.log, {Command.RUN}, "out")
        records = _tally(meter.log, {Command.STEP_RECORD, Command.STEP_BLOCK, COUNTS_READ}, "in")
        everything = _tally(meter.log, {Command.RUN, Command.STEP_RECORD, Command.STEP_BLOCK, COUNTS_READ})
        per_step = lambda t: {"data_bytes": t["data_bytes"] / steps, "wire_bytes": t["wire_bytes"] / steps,  # noqa: E731
                              "efficiency": t["efficiency"], "frames": t["frames"]}
        reads = _tally(meter.log, {COUNTS_READ}, "out")["frames"]
        return {"activity": activity, "steps": steps, "run_requests": inputs["frames"],
                "exchanges": inputs["frames"] + reads,
                "input": per_step(inputs), "output": per_step(records), "both": per_step(everything)}

    out["spike_stream"] = [stream(activity) for activity in activities]
    if reference_activity is not None:
        out["reference_streams"] = {
            "activity": reference_activity, "full_raster": stream(reference_activity),
            "generated": stream(reference_activity, host_inputs=False),
            "generated_32": stream(reference_activity, host_inputs=False, recorded=RECORDED_NEURONS),
            "generated_counts": stream(reference_activity, host_inputs=False, counts=True)}
    return out


#: The USB round trip that each exchange of the stop-and-wait link waits for, besides its bytes:
#: about 1 ms at best through an FTDI bridge; 16 ms is the bridges' default latency timer on Linux.
ROUND_TRIP_S = 1e-3
SLOW_ROUND_TRIP_S = 16e-3

#: Neurons recorded on the device in the link case ``generated_32``.
RECORDED_NEURONS = 32


def _counts_read():
    from neurofabric.contract.protocol import FAMILY_COMMANDS, table_key
    return FAMILY_COMMANDS[table_key("spike_counts")[0]][0]


#: The command that reads the spike counters, and the steps between two reads in the link case
#: ``generated_counts`` (`SerialDevice`'s default `checkpoint_steps`).
COUNTS_READ = _counts_read()
COUNT_SPAN_STEPS = DEFAULT_CHECKPOINT_STEPS

#: The link cases of `boards.B.link.steps_per_s`: what goes out and what comes back.
LINK_CASES = {
    "full_raster": "inputs from the host, every neuron's spikes back",
    "generated": "inputs from the stimulus generator (RUN requests without input records), every neuron's spikes "
                 "back",
    "generated_32": f"inputs from the stimulus generator, the spikes of {RECORDED_NEURONS} neurons recorded on the "
                    "device (neurons 0 .. 31) back",
    "generated_counts": "inputs from the stimulus generator, no records (NO_RECORDS): every neuron's spike count "
                        f"read from the device before the run and every {COUNT_SPAN_STEPS} steps",
}


def firmware_cycles_per_step(n, m, case, activity, clk_hz=50_000_000, steps=48, seed=1, record_filter=True,
                             step_blocks=True):
    """Cycles per step that the link's firmware (hdl/link.py, on the controller's
    instruction-set simulator, hdl/mcu_sim.py) takes for a RUN of link case `case`
    on a core of n neurons and m inputs, `activity` of the neurons spiking (and of
    the inputs, in ``full_raster``): taking the inputs, feeding them, taking each
    spike from the core and sending each step record. The core's own time is left
    out (its records are there at once) and so is the UART's (the sender never
    waits): this is the firmware's limit, beside the core's and the wire's. `record_filter`
    is `CoreConfig.record_filter` (the link's gateware drops the spikes not recorded),
    `step_blocks` `CoreConfig.step_blocks` (the RUNs then ask for STEP_BLOCKs where
    `LinkClient.run` would). A RUN request holds 8 steps of host inputs (a full raster of
    8 steps fits one frame) or all the steps of generated ones."""
    from ...hdl.core_ports import CoreConfig, Reg, Space
    from ...hdl.mcu_sim import LinkPorts, McuSim, link_firmware
    from neurofabric.contract.protocol import Command, RunFlags
    from ..link import BLOCK_BREAK_EVEN
    from ..records import block_span, encode_bitmap, encode_run_request

    class RandomCore:
        def __init__(self):
            self.rng = np.random.default_rng(seed)

        def step(self, sources):
            return np.flatnonzero(self.rng.random(n) < activity).tolist()

    # The firmware's RUN path depends on n, m and the record filter alone.
    config = CoreConfig(n=n, m=m, lanes=1, record_filter=record_filter, step_blocks=step_blocks)
    _, words, data, data_depth = link_firmware(config, clk_hz=clk_hz, baud=3_000_000)
    ports = LinkPorts(config, core=RandomCore())
    ports.memory[(Space.GLOBAL.value, Reg.N_USED.value)] = n
    sim = McuSim(words, data, data_depth, ports)
    rng = np.random.default_rng(seed + 1)
    flags = 0 if case == "full_raster" else RunFlags.GENERATED
    if case == "generated_32":
        ports.request(Command.SET_RECORD, 1, encode_bitmap(range(min(RECORDED_NEURONS, n)), n))
        sim.run(until=ports.quiet, cycles=sim.cycles + 10_000_000)
        flags |= RunFlags.SUBSET
    if case == "generated_counts":
        flags |= RunFlags.NO_RECORDS
    span = block_span(n, range(min(RECORDED_NEURONS, n)) if case == "generated_32" else None)
    if step_blocks and case != "generated_counts" and span <= BLOCK_BREAK_EVEN:
        flags |= RunFlags.BLOCKS
    chunk = 8 if case == "full_raster" else steps
    start = sim.cycles
    for first in range(0, steps, chunk):
        stimulus = ([np.flatnonzero(rng.random(m) < activity).tolist() for _ in range(chunk)]
                    if case == "full_raster" else [[]] * chunk)
        ports.request(Command.RUN, 2 + first // chunk, encode_run_request(stimulus, m, flags))
        sim.run(until=ports.quiet, cycles=sim.cycles + 1_000_000_000)
        if not ports.quiet():
            raise RuntimeError(f"the link firmware did not finish a RUN of {chunk} steps")
    return (sim.cycles - start) / steps


def stream_steps_per_s(stream, baud, round_trip_s):
    """Steps per second of a stop-and-wait stream: every RUN request, its step records and its reply
    (and the reads of the spike counters, in ``generated_counts``) follow each other on the line
    (10 bits per byte, 8N1), and each exchange also waits one USB round trip."""
    exchanges = stream.get("exchanges", stream["run_requests"])
    seconds = stream["both"]["wire_bytes"] * 10 / baud + exchanges * round_trip_s / stream["steps"]
    return 1.0 / seconds


def bench_link(plan, say):
    """Link efficiency for the reference core, and per board: weight load time and streaming limit."""
    from ...boards import BOARDS
    from neurofabric.contract.device import CoreShape
    ref = plan.reference
    shape = CoreShape(ref.n, ref.m, 16, 8, 8, ref.lanes)
    say(f"link: the reference core (n = {ref.n}, m = {ref.m}, {ref.lanes} lanes) through LinkClient and the "
        "protocol encoders")
    activity = plan.reference_activity
    link = link_costs(shape, plan.link_activities, plan.link_steps, reference_activity=activity)
    per_board = {}
    costs = {(ref.n, ref.m, ref.lanes, True): link}  # boards with the reference core's shape reuse its figures
    firmware = {}                   # (n, m, record filter, step blocks) -> cycles per step per case
    bits_per_byte = 10  # 8N1
    for board in BOARDS.values():
        shape = CoreShape(board.neurons, board.inputs, 16, 8, 8, board.lanes)
        key = (board.neurons, board.inputs, board.lanes, board.step_blocks)
        if key not in costs:
            say(f"link: n = {board.neurons}, m = {board.inputs}, {board.lanes} lanes"
                + ("" if board.step_blocks else ", no step blocks"))
            costs[key] = link_costs(shape, plan.link_activities, plan.link_steps, reference_activity=activity,
                                    blocks=board.step_blocks)
        c = costs[key]
        fkey = (board.neurons, board.inputs, board.record_filter, board.step_blocks)
        if fkey not in firmware:
            say(f"link: the firmware's cycles per step, n = {board.neurons}, m = {board.inputs}"
                + ("" if board.record_filter else ", no record filter")
                + ("" if board.step_blocks else ", no step blocks") + " (instruction-set simulator)")
            firmware[fkey] = {case: firmware_cycles_per_step(board.neurons, board.inputs, case, activity,
                                                             record_filter=board.record_filter,
                                                             step_blocks=board.step_blocks)
                              for case in LINK_CASES}
        cycles = dict(firmware[fkey])
        streams = dict(c["reference_streams"])
        if not board.spike_counters:
            # No counters on the device: the host counts from every neuron's records.
            streams["generated_counts"] = streams["generated"]
            cycles["generated_counts"] = cycles["generated"]
        per_board[board.name] = {
            "baud": board.baud, "neurons": board.neurons, "inputs": board.inputs, "lanes": board.lanes,
            "weight_load_s": c["weight_load"]["total_wire_bytes"] * bits_per_byte / board.baud,
            "weight_load_frames": c["weight_load"]["frames"],
            "network_load_s": c["network_load"]["total_wire_bytes"] * bits_per_byte / board.baud,
            "network_load_frames": c["network_load"]["frames"],
            # Stop and wait: a RUN request, its step records and its reply follow each other on the line.
            "streaming_steps_per_second": [
                {"activity": s["activity"],
                 "steps_per_second": board.baud / (bits_per_byte * s["both"]["wire_bytes"])}
                for s in c["spike_stream"]],
            # The same with a USB round trip per RUN exchange, at the reference activity, per link case.
            "activity": activity,
            "round_trip_s": plan.round_trip_s,
            "steps_per_s": {case: stream_steps_per_s(streams[case], board.baud, plan.round_trip_s)
                            for case in LINK_CASES},
            "slow_round_trip_s": SLOW_ROUND_TRIP_S,
            "steps_per_s_at_slow_round_trip": {
                case: stream_steps_per_s(streams[case], board.baud, SLOW_ROUND_TRIP_S) for case in LINK_CASES},
            "run_requests_per_1000_steps": {
                case: 1000 * streams[case]["run_requests"] / streams[case]["steps"] for case in LINK_CASES},
            "wire_bytes_per_step": {case: streams[case]["both"]["wire_bytes"] for case in LINK_CASES},
            # Whether the device counts spikes itself (`generated_counts` without records).
            "spike_counters": board.spike_counters,
            "record_filter": board.record_filter, "step_blocks": board.step_blocks,
            # What the link's firmware takes per step, and the steps per second that allows at the board's clock.
            "firmware_cycles_per_step": cycles,
            "firmware_steps_per_s": {case: board.clk_hz / cycles[case] for case in LINK_CASES},
        }
    link["boards"] = per_board
    return link


#: The link case that `end_to_end` judges a board by.
END_TO_END_CASE = "generated_32"


def end_to_end(results):
    """Per board with both figures: `boards.B.link` (the link's steps per second from the link
    section) and `boards.B.end_to_end.steps_per_s`, the lowest of the core's steps per second,
    the wire's in case ``generated_32`` and the firmware's in that case (`bound_by` says which),
    and `boards.B.end_to_end_vs_golden` (that over the golden model's steps per second)."""
    link_boards = (results.get("link") or {}).get("boards") or {}
    for name, b in (results.get("boards") or {}).items():
        link = link_boards.get(name)
        if not link or "steps_per_s" not in link:
            continue
        b["link"] = {key: link[key] for key in ("activity", "round_trip_s", "steps_per_s", "slow_round_trip_s",
                                                "steps_per_s_at_slow_round_trip", "wire_bytes_per_step",
                                                "firmware_cycles_per_step", "firmware_steps_per_s") if key in link}
        core, golden = b.get("core"), b.get("golden")
        if not core or not golden:
            continue
        limits = {"link": link["steps_per_s"][END_TO_END_CASE]}
        if "firmware_steps_per_s" in link:
            limits["firmware"] = link["firmware_steps_per_s"][END_TO_END_CASE]
        steps, bound = {}, {}
        for k in ("learn_off", "learn_on"):
            bound[k], steps[k] = min({"core": core["steps_per_s"][k], **limits}.items(), key=lambda kv: kv[1])
        b["end_to_end"] = {"steps_per_s": steps, "link_case": END_TO_END_CASE, "bound_by": bound}
        b["end_to_end_vs_golden"] = {k: steps[k] / golden["steps_per_s"][k] for k in steps}
    return results
