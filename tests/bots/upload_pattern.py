"""The bytes a test bot uploads for "upload N", in python: ptb_common.py sends
them and tests/integration/byob.py checks what arrived against them
(tests/bots/common.js makes the same bytes for the grammY bots)."""


def pattern(n):
    """byte i = (i * 31 + (i >> 8)) & 255, as tests/bots/common.js makes it."""
    block = bytes((i * 31 + (i >> 8)) & 255 for i in range(min(n, 65536)))
    out = bytearray()
    # (i >> 8) & 255 repeats every 65536 bytes, and so does i * 31 & 255.
    while len(out) < n:
        out += block[:n - len(out)]
    return bytes(out)
