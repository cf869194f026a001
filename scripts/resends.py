#!/usr/bin/env python3
"""Which of a TCP sender's resends were needless, and why, from two captures
taken on either side of an impairment relay (scripts/impaired.sh CAPTURE=1).

    python3 scripts/resends.py <log>.a.pcap <log>.b.pcap [--server IP:PORT]

a.pcap is the sender's side of the relay (what it sent, and the ACKs that
reached it), b.pcap the receiver's side (what got through). Only the
server's data segments are judged (the echo direction). For every
retransmission: was an earlier copy of it delivered (needless), and if so,
did the sender already hold an ACK or SACK for it when it resent (it ignored
what it knew), or not yet (it judged too early: how long after the delivered
copy it resent, against the RTT). Standard library only.
"""
import struct
import sys
from collections import defaultdict


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xA1B2C3D4:
        e, div = "<", 1e6
    elif magic == 0xD4C3B2A1:
        e, div = ">", 1e6
    elif magic == 0xA1B23C4D:
        e, div = "<", 1e9
    else:
        raise SystemExit(f"{path}: not a pcap file")
    link = struct.unpack(e + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        t = sec + frac / div
        if link == 1:
            if len(pkt) < 14 or pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
        elif link == 113:  # Linux cooked
            if len(pkt) < 16 or pkt[14:16] != b"\x08\x00":
                continue
            ip = pkt[16:]
        else:
            continue
        if len(ip) < 20 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack(">H", ip[2:4])[0]
        src = ".".join(map(str, ip[12:16]))
        dst = ".".join(map(str, ip[16:20]))
        tcp = ip[ihl:]
        if len(tcp) < 20:
            continue
        sp, dp, seq, ack = struct.unpack(">HHII", tcp[:12])
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        plen = tot - ihl - doff
        sacks = []
        opts = tcp[20:doff]
        i = 0
        while i < len(opts):
            k = opts[i]
            if k == 0:
                break
            if k == 1:
                i += 1
                continue
            if i + 1 >= len(opts):
                break
            ln = opts[i + 1]
            if ln < 2:
                break
            if k == 5:
                for j in range(i + 2, i + ln - 7, 8):
                    sacks.append(struct.unpack(">II", opts[j:j + 8]))
            i += ln
        yield t, (src, sp), (dst, dp), seq, ack, flags, plen, sacks


def after(a, b):
    return ((a - b) & 0xFFFFFFFF) > 0 and ((a - b) & 0xFFFFFFFF) < 0x80000000


def rel(x, base):
    return (x - base) & 0xFFFFFFFF


def main():
    args = sys.argv[1:]
    server = None
    if "--server" in args:
        i = args.index("--server")
        ip, port = args[i + 1].rsplit(":", 1)
        server = (ip, int(port))
        del args[i:i + 2]
    if len(args) != 2:
        raise SystemExit(__doc__)
    apath, bpath = args
    a = list(packets(apath))
    b = list(packets(bpath))
    if server is None:
        # The side that sent a SYN-ACK.
        for p in a:
            if p[5] & 0x12 == 0x12:
                server = p[1]
                break
    if server is None:
        raise SystemExit("no SYN-ACK in the sender's capture: pass --server")
    isn = {}
    for p in a:
        if p[1] == server and p[5] & 0x12 == 0x12:
            isn[p[2]] = p[3] + 1
    tx = defaultdict(list)   # conn -> [(t, seq, end)]
    acks = defaultdict(list)  # conn -> [(t, ack, sacks)]
    for t, s, d, seq, ack, fl, plen, sacks in a:
        if s == server and plen > 0 and d in isn:
            r = rel(seq, isn[d])
            tx[d].append((t, r, r + plen))
        elif d == server and s in isn and fl & 0x10:
            acks[s].append((t, rel(ack, isn[s]),
                            [(rel(l, isn[s]), rel(r_, isn[s])) for l, r_ in sacks]))
    rx = defaultdict(list)
    for t, s, d, seq, ack, fl, plen, sacks in b:
        if s == server and plen > 0 and d in isn:
            r = rel(seq, isn[d])
            rx[d].append((t, r, r + plen))
    # The relay's one-way delay: the smallest gap between a range's first
    # transmission and its first arrival (10th percentile).
    delays = []
    for c in tx:
        first_tx = {}
        for t, l, e in tx[c]:
            first_tx.setdefault((l, e), t)
        seen = set()
        for t, l, e in rx[c]:
            if (l, e) in first_tx and (l, e) not in seen:
                seen.add((l, e))
                delays.append(t - first_tx[(l, e)])
    delays.sort()
    dly = delays[len(delays) // 10] if delays else 0.0
    n = dict(resent=0, needed=0, needless=0, partial=0, again=0, first=0, knew=0,
             needless_bytes=0, lost_bytes=0)
    ages = []
    for c in tx:
        # Events in time order: arrivals at the receiver's side, and the
        # sender's transmissions judged against what had arrived by the time
        # this copy would (its send time plus the one-way delay).
        ev = [(t, 0, l, e) for t, l, e in rx[c]] + [(t + dly, 1, l, e, t) for t, l, e in tx[c]]
        ev.sort(key=lambda x: (x[0], x[1]))
        got = Ranges()
        sent = Ranges()     # sent at least once
        again = Ranges()    # resent at least once
        last_sent = {}
        ak = acks[c]
        ai = 0
        known = Ranges()    # ACKed or SACKed, as the sender had heard
        for x in ev:
            if x[1] == 0:
                got.add(x[2], x[3])
                continue
            _, _, l, e, t = x
            while ai < len(ak) and ak[ai][0] <= t:
                _, an, sb = ak[ai]
                known.add(0, an)
                for bl, br in sb:
                    if br > bl:
                        known.add(bl, br)
                ai += 1
            if sent.covered(l, e) == 0:
                sent.add(l, e)
                last_sent[(l, e)] = t
                continue
            n["resent"] += 1
            dup = got.covered(l, e)
            if dup == 0:
                n["needed"] += 1
                n["lost_bytes"] += e - l
            elif dup < e - l:
                n["partial"] += 1
                n["needless_bytes"] += dup
            else:
                n["needless"] += 1
                n["needless_bytes"] += dup
                if known.covered(l, e) == e - l:
                    n["knew"] += 1
                elif again.covered(l, e) > 0:
                    n["again"] += 1
                else:
                    n["first"] += 1
                    ages.append(t - last_sent.get((l, e), t))
            again.add(l, e)
            sent.add(l, e)
            last_sent[(l, e)] = t
    print(f"one-way delay (10th percentile of first deliveries): {dly * 1e3:.2f} ms")
    print(f"data segments sent: {sum(len(v) for v in tx.values())}, "
          f"arrived: {sum(len(v) for v in rx.values())}")
    print("resends: {resent}; needed (none of it had arrived): {needed}; partly needless: "
          "{partial}; wholly needless: {needless}".format(**n))
    print("wholly needless: the sender had heard it was ACKed or SACKed: {knew}; resent "
          "before (a new round or a probe): {again}; the first resend, judged lost too early: "
          "{first}".format(**n))
    print("bytes resent needlessly: {needless_bytes}; resent needed: {lost_bytes}".format(**n))
    if ages:
        ages.sort()
        q = lambda f: ages[min(len(ages) - 1, int(f * len(ages)))] * 1e3
        print(f"judged too early: ms since that range was last sent: p10 {q(0.1):.1f}, "
              f"p50 {q(0.5):.1f}, p90 {q(0.9):.1f} (the range's first send when the key matched)")


class Ranges:
    """Disjoint byte ranges [l, r), sorted (few: merged as they touch)."""

    def __init__(self):
        self.r = []

    def add(self, l, e):
        import bisect
        out = []
        for a, b in self.r:
            if b < l or a > e:
                out.append((a, b))
            else:
                l, e = min(l, a), max(e, b)
        out.append((l, e))
        out.sort()
        self.r = out

    def covered(self, l, e):
        c = 0
        for a, b in self.r:
            if b <= l:
                continue
            if a >= e:
                break
            c += min(b, e) - max(a, l)
        return c


if __name__ == "__main__":
    main()
