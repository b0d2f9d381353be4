#!/usr/bin/env python3
"""dom0's side of the network scenarios (written apart from the guest's code): numbered UDP
datagrams to a guest's echo port, checked, and a steady stream of them whose replies give the
downtime of a save/restore, checkpoint or migration the way Clark et al. measured it: from
outside, as the longest gap between replies.

  net-probe.py exchange IP PORT COUNT NAME     COUNT datagrams one at a time; each must come
                                               back, intact, within 1 s (one XLAB-CHECK line)
  net-probe.py stream IP PORT INTERVAL_MS LOG  a datagram every INTERVAL_MS until SIGTERM;
                                               every send and reply logged with its time
                                               (PORT "icmp": ICMP echo requests instead, for
                                               guests without a UDP echo, e.g. Linux)
  net-probe.py throughput IP PORT SECONDS SIZE NAME
                                               SIZE-byte datagrams, 16 outstanding at a time,
                                               for SECONDS: echoes a second, MB/s both ways
                                               and the round-trip times (XLAB-INFO lines)
  net-probe.py analyse LOG T0 T1 NAME          LOG's stream around an operation from T0 to T1
                                               (time.time()): the longest gap between replies
                                               (the downtime), the loss inside the window, and
                                               none lost outside it (one XLAB-CHECK line)
"""
import os
import signal
import socket
import sys
import time


def check(name, ok, secs, detail):
    print(f"XLAB-CHECK {name} {'PASS' if ok else 'FAIL'} {secs:.2f} {detail}", flush=True)


def exchange(ip, port, count, name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    t0 = time.time()
    lost, bad, rtts = [], 0, []
    for seq in range(1, count + 1):
        msg = f"{name} {seq} {os.urandom(8).hex()}".encode()
        sent = time.time()
        s.sendto(msg, (ip, port))
        while True:
            try:
                data, addr = s.recvfrom(2048)
            except socket.timeout:
                lost.append(seq)
                break
            if data == msg and addr[0] == ip:
                rtts.append(time.time() - sent)
                break
            bad += 1  # a late echo of an earlier datagram, or garbage: not this one
    rtts.sort()
    med = rtts[len(rtts) // 2] * 1000 if rtts else 0
    ok = not lost and len(rtts) == count
    p99 = rtts[min(len(rtts) - 1, len(rtts) * 99 // 100)] * 1000 if rtts else 0
    print(f"XLAB-INFO udp-rtt {name} {med:.3f} {p99:.3f}", flush=True)
    check(name, ok, time.time() - t0, f"{len(rtts)}/{count} datagrams echoed intact, lost {lost[:10]}, other replies {bad}, median rtt {med:.2f} ms")
    return ok


def throughput(ip, port, seconds, size, name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    window, seq, outstanding, rtts, lost = 16, 0, {}, [], 0
    pad = os.urandom(max(0, size - 16))
    t0 = time.time()
    end = t0 + seconds
    while time.time() < end or outstanding:
        while len(outstanding) < window and time.time() < end:
            seq += 1
            outstanding[seq] = time.time()
            s.sendto(seq.to_bytes(8, "big") + bytes(8) + pad, (ip, port))
        try:
            data = s.recv(65536)
        except socket.timeout:
            lost += len(outstanding)  # the rest of the window is not coming back
            outstanding.clear()
            continue
        q = int.from_bytes(data[:8], "big")
        sent = outstanding.pop(q, None)
        if sent is not None and len(data) == size:
            rtts.append(time.time() - sent)
    secs = time.time() - t0
    rtts.sort()
    n = len(rtts)
    med = rtts[n // 2] * 1000 if n else 0
    p99 = rtts[min(n - 1, n * 99 // 100)] * 1000 if n else 0
    print(f"XLAB-INFO udp-throughput {name} {n / secs:.0f} {n * size / secs / 1e6:.3f}", flush=True)
    print(f"XLAB-INFO udp-rtt-loaded {name} {med:.3f} {p99:.3f}", flush=True)
    check(name, n > 0, secs, f"{n} echoes of {size} bytes in {secs:.1f} s ({n / secs:.0f}/s, {n * size / secs / 1e6:.2f} MB/s each way), {lost} lost, rtt median {med:.2f} ms, p99 {p99:.2f} ms")
    return n > 0


def inet_checksum(b):
    if len(b) % 2:
        b += b"\0"
    total = sum(int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Icmp:
    """ICMP echo requests through a raw socket (dom0 runs as root)."""

    def __init__(self, ip):
        self.ip, self.ident = ip, os.getpid() & 0xFFFF
        self.s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.s.setblocking(False)

    def send(self, seq):
        body = b"xshim-probe"
        hdr = bytes([8, 0, 0, 0]) + self.ident.to_bytes(2, "big") + (seq & 0xFFFF).to_bytes(2, "big")
        c = inet_checksum(hdr + body)
        self.s.sendto(hdr[:2] + c.to_bytes(2, "big") + hdr[4:] + body, (self.ip, 0))

    def recv(self):
        """The sequence number of an echo reply to us, None for other packets; raises
        BlockingIOError when nothing is waiting."""
        data, addr = self.s.recvfrom(2048)
        ihl = (data[0] & 15) * 4
        icmp = data[ihl:]
        if addr[0] == self.ip and len(icmp) >= 8 and icmp[0] == 0 and int.from_bytes(icmp[4:6], "big") == self.ident:
            return int.from_bytes(icmp[6:8], "big")
        return None


class Udp:
    def __init__(self, ip, port):
        self.ip, self.port = ip, port
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.setblocking(False)

    def send(self, seq):
        self.s.sendto(f"stream {seq}".encode(), (self.ip, self.port))

    def recv(self):
        parts = self.s.recv(2048).split()
        if len(parts) == 2 and parts[0] == b"stream":
            return int(parts[1])
        return None


def stream(ip, port, interval_ms, log):
    probe = Icmp(ip) if port == "icmp" else Udp(ip, int(port))
    out = open(log, "w", buffering=1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    seq, nxt = 0, time.time()
    while not stop:
        now = time.time()
        if now >= nxt:
            seq += 1
            try:
                probe.send(seq)
                out.write(f"S {seq} {now:.6f}\n")
            except OSError as e:  # no route for a moment: counted as sent and lost
                out.write(f"S {seq} {now:.6f} {e.errno}\n")
            nxt += interval_ms / 1000.0
            if nxt < now:
                nxt = now + interval_ms / 1000.0
        while True:
            try:
                got = probe.recv()
            except BlockingIOError:
                break
            except OSError:  # e.g. ICMP unreachable reported on the UDP socket
                continue
            if got is not None:
                out.write(f"R {got} {time.time():.6f}\n")
        time.sleep(min(0.002, max(0.0, nxt - time.time())))
    out.close()


def analyse(log, t0, t1, name):
    sent, recv = {}, {}
    for line in open(log):
        f = line.split()
        if len(f) >= 3 and f[0] in ("S", "R"):
            (sent if f[0] == "S" else recv).setdefault(int(f[1]), float(f[2]))
    if not sent:
        check(name, False, 0, "no datagrams were sent")
        return False
    times = sorted(recv.values())
    first, last = min(sent.values()), max(sent.values())
    # The longest time without a reply, from the stream's start to its end.
    edges = [first] + times + [last]
    gap, at = 0.0, first
    for a, b in zip(edges, edges[1:]):
        if b - a > gap:
            gap, at = b - a, a
    # The window: the operation, and the downtime it caused (until the first reply after it).
    after = [t for t in times if t >= t1]
    w1 = max(t1, after[0]) if after else last
    lost_in = [q for q, t in sent.items() if q not in recv and t0 <= t <= w1]
    # Replies in flight when the stream stopped are not losses.
    lost_out = [q for q, t in sent.items() if q not in recv and not (t0 <= t <= w1) and t < last - 1.0]
    ok = not lost_out and bool(after)
    detail = (f"downtime {gap * 1000:.0f} ms (longest gap between replies, from {at - t0:+.2f} s of the operation); "
              f"{len(sent)} sent every {1000 * (last - first) / max(1, len(sent) - 1):.0f} ms, {len(recv)} echoed; "
              f"lost in the window {len(lost_in)}, lost outside it {len(lost_out)} {lost_out[:5]}")
    if not after:
        detail += "; no reply after the operation"
    check(name, ok, t1 - t0, detail)
    print(f"XLAB-INFO downtime {name} {gap * 1000:.1f}", flush=True)
    return ok


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    a = sys.argv[2:]
    if cmd == "exchange" and len(a) == 4:
        sys.exit(0 if exchange(a[0], int(a[1]), int(a[2]), a[3]) else 1)
    if cmd == "throughput" and len(a) == 5:
        sys.exit(0 if throughput(a[0], int(a[1]), float(a[2]), int(a[3]), a[4]) else 1)
    if cmd == "stream" and len(a) == 4:
        stream(a[0], a[1], int(a[2]), a[3])
        sys.exit(0)
    if cmd == "analyse" and len(a) == 4:
        sys.exit(0 if analyse(a[0], float(a[1]), float(a[2]), a[3]) else 1)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
