#!/usr/bin/env python3
"""Checks a journal payload's disk image from dom0, independently of the payload's code.

Record `seq` (1, 2, ...) is the block at byte seq*B (B: the block size). Little-endian:
  0..8 b"XJRNL001" | 8..16 seq | 16..24 seq*B | 24..B-8 filler | B-8..B FNV-1a 64 of 0..B-8
filler byte i = ((seq*0x9E3779B97F4A7C15 mod 2^64) XOR (i*0xBF58476D1CE4E5B9 mod 2^64)) >> 56.

usage: journal-check.py IMAGE BLOCK_SIZE ACKED [CHECKNAME]
Every record 1..ACKED (the highest `JOURNAL ack` the guest printed) must be present and
intact. Prints one line: XLAB-CHECK CHECKNAME PASS|FAIL 0 <detail>; exit status 0 if PASS.
"""
import struct
import sys

M = (1 << 64) - 1
MAGIC = b"XJRNL001"


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & M
    return h


def expected_filler(seq, b):
    s = (seq * 0x9E3779B97F4A7C15) & M
    return bytes((((s ^ ((i * 0xBF58476D1CE4E5B9) & M)) >> 56) & 0xFF) for i in range(24, b - 8))


def check(img, seq, b):
    blk = img[seq * b:(seq + 1) * b]
    if len(blk) < b or blk[:8] != MAGIC:
        return "missing"
    got_seq, got_pos = struct.unpack_from("<QQ", blk, 8)
    if got_seq != seq:
        return "holds record %d" % got_seq
    if got_pos != seq * b:
        return "wrong position %d" % got_pos
    if struct.unpack_from("<Q", blk, b - 8)[0] != fnv1a64(blk[:b - 8]):
        return "checksum mismatch"
    if blk[24:b - 8] != expected_filler(seq, b):
        return "contents differ"
    return None


def main():
    path, b, acked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    name = sys.argv[4] if len(sys.argv) > 4 else "journal-image"
    with open(path, "rb") as f:
        img = f.read()
    bad = []
    for seq in range(1, acked + 1):
        why = check(img, seq, b)
        if why:
            bad.append((seq, why))
    # Records beyond the last acknowledged one may or may not be there (written, not yet
    # acknowledged when the guest stopped): count them, they are not required.
    extra = 0
    seq = acked + 1
    while (seq + 1) * b <= len(img) and check(img, seq, b) is None:
        extra += 1
        seq += 1
    if bad:
        first = ", ".join("seq %d %s" % x for x in bad[:3])
        print("XLAB-CHECK %s FAIL 0 %d of %d acknowledged records lost or damaged in %s: %s" % (name, len(bad), acked, path, first))
        return 1
    print("XLAB-CHECK %s PASS 0 all %d acknowledged records intact in %s (%d more written after the last acknowledgement)" % (name, acked, path, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
