"""The memory map on the host side: global registers and memory words as the wire carries them.

The facts (register addresses, widths and access, word layouts, tables) are the
device description's (`neurofabric.contract.device`) and the protocol's table ids
(`neurofabric.contract.protocol`); this module packs and unpacks values with them.
"""

from neurofabric.contract.device import register
from neurofabric.contract.errors import LinkError
from neurofabric.contract.protocol import word_bytes

__all__ = [
    "encode_global", "decode_global", "pack_word", "unpack_word", "pack_weights", "unpack_weights",
    "words_to_bytes", "bytes_to_words",
]


def encode_global(name, value, shape):
    """The 32-bit word to write to global register `name` (signed ones as two's complement of their width).

    Raises `LinkError` naming the register when `value` is outside its range.
    """
    reg = register(name)
    bits = reg.bits(shape)
    lo, hi = reg.value_range(shape)
    value = int(value)
    if not lo <= value <= hi:
        raise LinkError(f"global register {name}={value} outside {lo} .. {hi}")
    return value & ((1 << bits) - 1)


def decode_global(name, word, shape):
    """The value of global register `name` from the word read back."""
    reg = register(name)
    bits = reg.bits(shape)
    word = int(word) & ((1 << bits) - 1)
    if reg.signed and word >> (bits - 1):
        word -= 1 << bits
    return word


def pack_word(fields, **values):
    """Pack `values` into one word by a ``(name, bits, signed)`` field list (bit 0 first).

    Every field must be given; a value outside its range raises `LinkError`
    naming the field, the value and the range."""
    missing = [name for name, _, _ in fields if name not in values]
    extra = sorted(set(values) - {name for name, _, _ in fields})
    if missing or extra:
        raise LinkError(f"word fields: missing {missing}, unexpected {extra}")
    word, offset = 0, 0
    for name, bits, is_signed in fields:
        value = int(values[name])
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            raise LinkError(f"word field {name}={value} outside {lo} .. {hi}")
        word |= (value & ((1 << bits) - 1)) << offset
        offset += bits
    return word


def unpack_word(fields, word):
    """The field values (signed ones sign-extended) of one word, as a dict."""
    out, offset, word = {}, 0, int(word)
    for name, bits, is_signed in fields:
        value = (word >> offset) & ((1 << bits) - 1)
        if is_signed and value >> (bits - 1):
            value -= 1 << bits
        out[name] = value
        offset += bits
    return out


def pack_weights(values, weight_bits):
    """One weight word: `values` (lane 0 first, signed W-bit each) side by side, lane l at bit l*W."""
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    word = 0
    for lane, value in enumerate(values):
        value = int(value)
        if not lo <= value <= hi:
            raise LinkError(f"weight {value} (lane {lane}) outside {lo} .. {hi} (W={weight_bits})")
        word |= (value & ((1 << weight_bits) - 1)) << (lane * weight_bits)
    return word


def unpack_weights(word, lanes, weight_bits):
    """The `lanes` signed weights of one weight word, lane 0 first."""
    mask, out = (1 << weight_bits) - 1, []
    for lane in range(lanes):
        value = (int(word) >> (lane * weight_bits)) & mask
        out.append(value - (1 << weight_bits) if value >> (weight_bits - 1) else value)
    return out


def words_to_bytes(words, bits):
    """Words of `bits` each as wire bytes: ceil(bits / 8) bytes per word, little-endian."""
    size = word_bytes(bits)
    out = bytearray()
    for word in words:
        word = int(word)
        if not 0 <= word < 1 << bits:
            raise LinkError(f"word {word} does not fit {bits} bits")
        out += word.to_bytes(size, "little")
    return bytes(out)


def bytes_to_words(data, bits):
    """Wire bytes back to words of `bits` each (the inverse of `words_to_bytes`)."""
    size = word_bytes(bits)
    if len(data) % size:
        raise LinkError(f"{len(data)} bytes are not a whole number of {size}-byte words")
    return [int.from_bytes(data[k:k + size], "little") for k in range(0, len(data), size)]
