#!/usr/bin/env python3
"""Checks a journal payload's disk image from dom0, independently of the payload's code.

Record `seq` (1, 2, ...) is block k = (seq-1) % RING + 1, at byte k*B (B: the block size; RING:
the journal's ring of blocks, after which it overwrites its oldest records). Little-endian:
  0..8 b"XJRNL001" | 8..16 seq | 16..24 k*B | 24..B-8 the word W repeated | B-8..B CRC-32
  (zlib.crc32) of bytes 0..B-8, as a 64-bit number
W = splitmix64(seq): x = seq + 0x9E3779B97F4A7C15; x = (x ^ x>>30) * 0xBF58476D1CE4E5B9;
x = (x ^ x>>27) * 0x94D049BB133111EB; W = x ^ x>>31 (all mod 2^64).

usage: journal-check.py IMAGE BLOCK_SIZE RING ACKED [CHECKNAME]
Every record the ring still holds up to ACKED (the highest `JOURNAL ack` the guest printed),
max(1, ACKED-RING+1)..ACKED, must be present and intact, or overwritten by a later record of
the ring, intact (written after the last acknowledgement the console shows: a write the guest
had in flight, or one it had not yet acknowledged when it was saved or destroyed). Prints one line: XLAB-CHECK CHECKNAME PASS|FAIL 0 <detail>; exit status 0 if PASS.
"""
import struct
import sys
import zlib

M = (1 << 64) - 1
MAGIC = b"XJRNL001"


def splitmix64(seq):
    x = (seq + 0x9E3779B97F4A7C15) & M
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M
    return x ^ (x >> 31)


def expected(seq, k, b):
    body = MAGIC + struct.pack("<QQ", seq, k * b) + struct.pack("<Q", splitmix64(seq)) * ((b - 32) // 8)
    return body + struct.pack("<Q", zlib.crc32(body))


def why_bad(blk, seq, k, b):
    """The first thing wrong with block `blk` as record `seq` (it is not the expected bytes)."""
    if len(blk) < b or blk[:8] != MAGIC:
        return "missing"
    got_seq, got_pos = struct.unpack_from("<QQ", blk, 8)
    if got_seq != seq:
        return "holds record %d" % got_seq
    if got_pos != k * b:
        return "wrong position %d" % got_pos
    if struct.unpack_from("<Q", blk, b - 8)[0] != zlib.crc32(blk[:b - 8]):
        return "checksum mismatch"
    return "contents differ"


def main():
    path, b, ring, acked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    name = sys.argv[5] if len(sys.argv) > 5 else "journal-image"
    with open(path, "rb") as f:
        img = f.read()
    block = lambda seq: (seq - 1) % ring + 1
    first = max(1, acked - ring + 1)
    bad = []
    superseded = 0
    for seq in range(first, acked + 1):
        k = block(seq)
        blk = img[k * b:(k + 1) * b]
        if blk == expected(seq, k, b):
            continue
        later = struct.unpack_from("<Q", blk, 8)[0] if len(blk) == b else 0
        if later > seq and (later - seq) % ring == 0 and blk == expected(later, k, b):
            superseded += 1
            continue
        bad.append((seq, why_bad(blk, seq, k, b)))
    # Records beyond the last acknowledged one may or may not be there (written, not yet
    # acknowledged when the guest stopped): counted, not required.
    extra = 0
    seq = acked + 1
    while extra < ring - 1 and (block(seq) + 1) * b <= len(img) and img[block(seq) * b:(block(seq) + 1) * b] == expected(seq, block(seq), b):
        extra += 1
        seq += 1
    held = acked - first + 1
    if bad:
        worst = ", ".join("seq %d %s" % x for x in bad[:3])
        print("XLAB-CHECK %s FAIL 0 %d of the %d acknowledged records the ring holds lost or damaged in %s: %s" % (name, len(bad), held, path, worst))
        return 1
    print("XLAB-CHECK %s PASS 0 records %d..%d (all %d acknowledged that the ring of %d holds) intact in %s (%d overwritten by later records, intact), %d more written after the last acknowledgement" % (name, first, acked, held, ring, path, superseded, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
