#!/usr/bin/env python3
"""Seed corpora of the device and Xen fuzz targets (tests/fuzz/corpus/<target>/).

Each seed is what a well-behaved guest, driver or toolstack does, written in
the target's input format (the byte layout its LLVMFuzzerTestOneInput reads,
documented beside it), plus the hostile cases each target is about. Run from
the repository root; it rewrites the gen-* files and leaves others (inputs a
campaign found and a regression test keeps) alone.
"""
import os
import struct
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


def u8(*v):
    return bytes(x & 0xff for x in v)


def le(v, n):
    return (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "gen-" + name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------ fuzz_blk_request
IN, OUT, FLUSH, GET_ID, DISCARD, WZ = 0, 1, 4, 8, 11, 13
TYPE_IDX = {IN: 0, OUT: 1, FLUSH: 2, GET_ID: 3, DISCARD: 4, WZ: 5}


def blk_sector(s, mode=0):
    if mode == 0:
        return u8(0, s)  # sector = s % 144
    if mode == 1:
        return u8(1, s)  # capacity - (s & 15)
    return u8(2) + le(s, 8)


def blk_req(t, sector, segs, status=0, cut=0, kick=1, wild_type=None):
    """segs: list of (nsectors or raw bytes, flip); data bytes follow."""
    shape = TYPE_IDX[t] if wild_type is None else 0x80
    out = u8(shape, len(segs))
    if wild_type is not None:
        out += le(wild_type, 4)
    out += sector + le(0, 4) + u8(cut)
    dwz = t in (DISCARD, WZ)
    for seg in segs:
        n, flip, payload = seg
        if dwz:
            # (k & 3) + 1 ranges of 16 bytes
            out += u8((n - 1) | (0x80 if flip else 0))
        else:
            out += u8(0x80 if flip else 0) + u8(0, n - 1)
        writable = (t in (IN, GET_ID)) != flip
        if not writable:
            out += payload
    out += u8(status)
    if status == 1:
        out += u8(0)
    return out + u8(kick)


def dwz_ranges(ranges):
    b = b""
    for k, sec, num in ranges:
        # fill_out xors input byte i with i: pre-xor so the record holds
        # (k, num) in its first two bytes; the rest is unused.
        rec = bytes([k, num]) + bytes(14)
        b += bytes(x ^ (i & 0xff) for i, x in enumerate(rec, start=len(b)))
    return b


def data_bytes(n, seed):
    raw = bytes(((i * 31 + seed) & 0xff) for i in range(n))
    return raw


def blk():
    t = "fuzz_blk_request"
    w = data_bytes(1024, 7)
    write(t, "write-read", u8(0) + blk_req(OUT, blk_sector(3), [(2, 0, w)]) +
          blk_req(IN, blk_sector(3), [(2, 0, b"")]))
    write(t, "write-read-packed", u8(2) + blk_req(OUT, blk_sector(9), [(2, 0, w)]) +
          blk_req(IN, blk_sector(8), [(4, 0, b"")]))
    write(t, "indirect-three-segs", u8(8) + blk_req(
        OUT, blk_sector(20), [(1, 0, w[:512]), (1, 0, w[512:]), (2, 0, w)]))
    write(t, "readonly-write", u8(1) + blk_req(OUT, blk_sector(0), [(1, 0, w[:512])]) +
          blk_req(FLUSH, blk_sector(0), []))
    write(t, "get-id", u8(0) + blk_req(GET_ID, blk_sector(0), [(1, 0, b"")]))
    write(t, "get-id-short", u8(0) + blk_req(GET_ID, blk_sector(0), []))
    write(t, "flush", u8(0) + blk_req(FLUSH, blk_sector(0), []))
    write(t, "past-capacity-read", u8(0) + blk_req(IN, blk_sector(1, 1), [(4, 0, b"")]))
    write(t, "past-capacity-write", u8(0) + blk_req(OUT, blk_sector(2, 1), [(4, 0, w[:2048] + w)]))
    write(t, "huge-sector", u8(0) + blk_req(IN, blk_sector((1 << 64) - 1, 2), [(1, 0, b"")]))
    write(t, "header-split", u8(0) + blk_req(OUT, blk_sector(5), [(1, 0, w[:512])], cut=7))
    write(t, "header-short", u8(0) + blk_req(IN, blk_sector(5), [(1, 0, b"")], cut=13))
    write(t, "status-glued", u8(0) + blk_req(IN, blk_sector(5), [(1, 0, b"")], status=2))
    write(t, "status-wide", u8(0) + blk_req(IN, blk_sector(5), [(1, 0, b"")], status=1))
    write(t, "no-status", u8(0) + blk_req(OUT, blk_sector(5), [(1, 0, w[:512])], status=3))
    write(t, "write-flipped", u8(0) + blk_req(OUT, blk_sector(5), [(1, 1, b"")]))
    write(t, "unknown-type", u8(0) + blk_req(IN, blk_sector(0), [], wild_type=0x1234))
    write(t, "discard", u8(0) + blk_req(DISCARD, blk_sector(0),
                                        [(1, 0, dwz_ranges([(10, 0, 4)]))]))
    write(t, "write-zeroes", u8(0) + blk_req(WZ, blk_sector(0),
                                            [(2, 0, dwz_ranges([(12, 0, 3), (40, 0, 8)]))]))
    write(t, "write-zeroes-unmap", u8(0) + blk_req(WZ, blk_sector(0),
                                                  [(1, 0, dwz_ranges([(13, 0, 2)]))]))
    write(t, "discard-past-end", u8(0) + blk_req(DISCARD, blk_sector(0),
                                                [(1, 0, dwz_ranges([(135, 0, 9)]))]))
    write(t, "batch", u8(4) + b"".join(
        blk_req(OUT if i % 2 else IN, blk_sector(i * 9), [(1, 0, w[:512] if i % 2 else b"")], kick=0)
        for i in range(8)))
    write(t, "two-regions", u8(0x40) + blk_req(OUT, blk_sector(100), [(8, 0, w * 4)]) +
          blk_req(IN, blk_sector(100), [(8, 0, b"")]))


# ------------------------------------------------------------ fuzz_xen_ioreq
HOT = [0x070, 0x024, 0x020, 0x028, 0x030, 0x038, 0x080, 0x090, 0x0a0, 0x044,
       0x050, 0x064, 0x060, 0x0fc, 0x084, 0x100]


def mmio(reg, val, read=False, size4=True, vcpu=0):
    b = (1 if read else 0) | (2 if size4 else 0) | (vcpu << 6)
    return u8(0, b, HOT.index(reg)) + le(val, 8)


def mmio_addr(reg, off, vcpu=0):
    """A ring address register written with a shaped-memory address."""
    return u8(0x40, 2 | (vcpu << 6), HOT.index(reg), 0) + le(off, 3)


def shape(off, data):
    out = b""
    while data:
        chunk, data = data[:64], data[64:]
        out += u8(5, 0) + le(off, 3) + u8(len(chunk) - 1) + chunk
        off += len(chunk)
    return out


def split_ring_blk(desc, avail, used, hdr, buf, status, write_req=False):
    """A 3-descriptor blk request at ring slot 0, published."""
    d = struct.pack("<QIHH", hdr, 16, 1, 1)
    d += struct.pack("<QIHH", buf, 512, 1 | (0 if write_req else 2), 2)
    d += struct.pack("<QIHH", status, 1, 2, 0)
    a = struct.pack("<HHH", 0, 1, 0)
    h = struct.pack("<IIQ", 1 if write_req else 0, 0, 4)
    return shape(desc, d) + shape(avail, a) + shape(hdr, h)


def probe(with_ring=True, grant=False):
    s = mmio(0x070, 0) + mmio(0x070, 1) + mmio(0x070, 3)
    s += mmio(0x024, 1) + mmio(0x020, 0, read=True)
    s += mmio(0x028, 1) + mmio(0x020, 3 if grant else 3) + mmio(0x028, 0) + mmio(0x020, 0)
    s += mmio(0x070, 0xb) + mmio(0x070, 0, read=True)
    s += mmio(0x030, 0) + mmio(0x038, 16)
    if with_ring:
        s += mmio_addr(0x080, 0x10000) + mmio_addr(0x090, 0x11000) + mmio_addr(0x0a0, 0x12000)
        if grant:
            s += mmio_addr(0x084, 0x10000)
        s += mmio(0x044, 1)
    s += mmio(0x070, 0xf)
    return s


def pio(port, read, size_idx, count_more=False, ptr=False):
    b = (1 if read else 0) | (2 if count_more else 0) | (4 if ptr else 0) | (size_idx << 4)
    out = u8(4, b)
    if count_more:
        out += u8(15)
    out += le(port, 2)
    out += u8(0, 0, 0, 1) if ptr else le(0x12345678, 4)
    return out


def raw(typ, b, size, count, addr, data, window=True):
    out = u8(3, b | (8 if window else 0), typ) + le(size, 4) + le(count, 4)
    out += le(addr, 2) if window else le(addr, 8)
    return out + le(data, 8)


def xen_ioreq():
    t = "fuzz_xen_ioreq"
    req = split_ring_blk(0x10000, 0x11000, 0x12000, 0x13000, 0x14000, 0x15000)
    write(t, "probe", u8(0) + probe())
    write(t, "probe-request", u8(0) + probe() + req + mmio(0x050, 0) + u8(7, 1) +
          mmio(0x060, 0, read=True) + mmio(0x064, 1))
    write(t, "probe-write-request", u8(0) + probe() +
          split_ring_blk(0x10000, 0x11000, 0x12000, 0x13000, 0x14000, 0x15000, True) +
          mmio(0x050, 0))
    write(t, "probe-grant", u8(1) + probe(grant=True))
    write(t, "request-then-reset", u8(0) + probe() + req + mmio(0x050, 0) + mmio(0x070, 0))
    write(t, "config-reads", u8(0) + b"".join(
        u8(0x80, 1 | (s << 2), 0x00) + le(0x100 + off, 2)[1:] + le(0, 8)
        for s, off in ((3, 0), (4, 0), (5, 8), (7, 0x14))))
    write(t, "registers-every-width", u8(0) + b"".join(
        u8(0x80, 1 | (w << 2)) + le(off, 2) + le(0, 8)
        for off in (0, 4, 8, 0xc, 0x34, 0x60, 0xfc, 0x1fe) for w in range(5)))
    write(t, "port-io", u8(0) + pio(0x60, True, 0) + pio(0x60, False, 2) +
          pio(0xcf8, True, 2, count_more=True) + pio(0x70, True, 0, ptr=True))
    write(t, "pci-config", u8(0) + u8(4, 8 | 1) + le(0, 2) + le(0, 4))
    write(t, "data-is-ptr", u8(0) + raw(0, 1 | 4, 4, 16, 0, 0x300000) +
          raw(1, 4, 4, 16, 0, 0x3000))
    write(t, "rep-df", u8(0) + raw(1, 1 | 2, 4, 8, 0x50, 0) + raw(1, 2 | 4, 2, 3, 0x70, 0x1000))
    write(t, "bad-sizes", u8(0) + raw(1, 1, 0, 1, 0, 0) + raw(1, 1, 3, 1, 0, 0) +
          raw(1, 0, 16, 1, 0x70, 0) + raw(1, 1, 0xffffffff, 1, 0x1fc, 0))
    write(t, "outside-window", u8(0) + raw(1, 1, 4, 1, 0xfe000000 - 4, 0, window=False) +
          raw(1, 1, 4, 1, 0xfe000200, 0, window=False) + raw(1, 0, 8, 1, 0, 0, window=False))
    write(t, "odd-types", u8(0) + raw(3, 1, 4, 1, 0, 0) + raw(7, 1, 8, 1, 0, 0) +
          raw(0x7f, 0, 8, 1, 0, 0) + raw(8, 1, 8, 1, 0, 0))
    write(t, "invalidate-spurious", u8(0) + probe() + u8(6, 0) + u8(7, 0x41) +
          u8(6, 0x40) + req + mmio(0x050, 0))
    write(t, "two-vcpus", u8(0) + probe() + mmio(0x070, 0, read=True, vcpu=1) +
          req + mmio(0x050, 0, vcpu=1))
    write(t, "ring-outside-ram", u8(0) + probe(with_ring=False) +
          u8(0, 2, HOT.index(0x080)) + le(0xfffff000, 8) + mmio(0x044, 1) + mmio(0x070, 0xf) +
          mmio(0x050, 0))
    write(t, "queue-setup-after-ok", u8(0) + probe() + mmio(0x038, 8) +
          mmio_addr(0x080, 0x20000) + mmio(0x050, 7))


# ------------------------------------------------------------ fuzz_xen_config
KEYS = ["params", "mode", "type", "grant_usage", "transport", "base", "irq",
        "state", "frontend", "backend-id", "devid", "specification"]


def node(key, val, v418=False, dom=0, dev=0):
    if key == "<dir>":
        sel = len(KEYS)
    elif key == "<name>":
        sel = len(KEYS) + 1
    else:
        sel = KEYS.index(key)
    return u8(sel | (0x80 if v418 else 0), dom | (dev << 2)) + val.encode() + b"\0"


def xen_config():
    t = "fuzz_xen_config"
    lines = [
        "# dom0less: every device on its own line\n",
        "blk domid=1 base=0x2000000 irq=33 disk=/srv/guest1.img\n",
        "blk domain=guest devid=0 disk=/srv/g.img readonly\n",
        "net domid=2 base=0x2000200 irq=34 tap=vif2 mac=02:00:00:00:00:02 grant\n",
        "rng domid=3 base=0x2000400 size=0x200 irq=35 map-cache-size=0 foreign\n",
        "blk domid=0x7fef devid=65535 base=18446744073709551615 irq=1019 disk=x\n",
    ]
    for i, l in enumerate(lines):
        write(t, "line-%d" % i, u8(0) + l.encode())
    write(t, "file", u8(0) + "".join(lines).encode())
    write(t, "bad-lines", u8(0) + b"blk irq=1020 domid=1\nblk domid=-1\nblk\tdomid=1 base=\n"
          b"a-device-type-name-longer-than-thirty-one domid=1\n")
    write(t, "too-many-options", u8(0) + ("blk domid=1 " + " ".join(
        "o%d=v" % i for i in range(20)) + "\n").encode())
    nodes417 = (node("params", "/srv/disk.img") + node("mode", "r") + node("base", "33554432") +
                node("irq", "33") + node("type", "virtio,device2") + node("state", "1"))
    write(t, "watch-417", u8(1) + b"\0" + nodes417)
    write(t, "watch-417-arm", u8(3) + b"\0" + nodes417)
    write(t, "watch-417-domid", u8(5) + b"\0" + nodes417)
    write(t, "watch-417-closing", u8(1) + b"\0" + nodes417[:-3] + node("state", "5"))
    write(t, "watch-417-no-params", u8(1) + b"\0" + node("base", "1") + node("irq", "2") +
          node("state", "1"))
    cfg = b"blk domain=guest devid=0 disk=/srv/g.img base=0x2000000 irq=33\n"
    nodes418 = (node("<name>", "guest", True) + node("type", "virtio,device2", True) +
                node("transport", "mmio", True) + node("base", "0x2000000", True) +
                node("irq", "33", True) + node("grant_usage", "1", True) + node("state", "1", True))
    write(t, "watch-418", u8(1) + cfg + b"\0" + nodes418)
    write(t, "watch-418-no-line", u8(1) + b"\0" + nodes418)
    write(t, "watch-418-pci", u8(1) + cfg + b"\0" + nodes418 + node("transport", "pci", True))
    write(t, "watch-418-bad-type", u8(1) + cfg + b"\0" + node("<name>", "guest", True) +
          node("type", "virtio,devicex", True) + node("state", "1", True))
    write(t, "watch-418-huge-base", u8(1) + cfg + b"\0" + nodes418 +
          node("base", "0xffffffffffffffffff", True) + node("irq", "1020", True))
    write(t, "watch-bad-domid", u8(1) + b"\0" + node("params", "/x", dom=3) +
          node("state", "1", dom=3) + node("params", "/y", dev=3) + node("state", "1", dev=3))
    write(t, "watch-long-params", u8(1) + b"\0" + node("params", "/" + "p" * 190) +
          node("base", "1") + node("irq", "2") + node("state", "1"))


# ------------------------------------------------------------ fuzz_net_hdr
def net_frame(dst, n):
    return u8(dst, n) if n < 256 else u8(0x80 | dst) + le(n, 2)


def net_tx(hdr=None, dst=0, n=100, short=None, parts=0, cuts=(), writable=False, q=0):
    k = (1 if hdr else 0) | (2 if short is not None else 0) | (q << 4)
    out = u8(0, k)
    if hdr:
        flags, gso, hdr_len, gso_size, cs, co, nb = hdr
        out += u8(flags, gso) + le(hdr_len, 2) + le(gso_size, 2) + le(cs, 2) + u8(co) + le(nb, 2)
    out += net_frame(dst, n)
    if short is not None:
        out += u8(short)
    out += u8(parts | (0x80 if writable else 0)) + bytes(cuts)
    return out


def net_rx_post(sizes, q=0):
    out = u8(1, (len(sizes) - 1) | (q << 4))
    for s in sizes:
        out += u8({2048: 0x80, 256: 0x40}.get(s, s))
    return out


def net_in(dst=0, n=200):
    return u8(2) + net_frame(dst, n)


def net_ctrl(idx, payload=b"", kind=0, ack=0, parts=0):
    k = idx | (kind << 3)
    out = u8(3, k)
    if kind == 0:
        out += u8(len(payload) - 1) + payload
    elif kind == 2:
        out += le(len(payload), 2) + payload
    return out + u8(parts) + u8(ack)


def net():
    t = "fuzz_net_hdr"
    write(t, "tx-plain", u8(0) + net_tx())
    write(t, "tx-split-header", u8(0) + net_tx(parts=2, cuts=(5,)))
    write(t, "tx-csum", u8(0) + net_tx(hdr=(1, 0, 0, 0, 14, 6, 0)))
    write(t, "tx-csum-past-frame", u8(0) + net_tx(hdr=(1, 0, 0, 0, 190, 16, 0), n=200))
    write(t, "tx-gso-tcpv4", u8(4) + net_tx(hdr=(1, 1, 54, 1448, 34, 16, 0), n=1400))
    write(t, "tx-gso-zero-size", u8(0) + net_tx(hdr=(0, 1, 54, 0, 0, 0, 0)))
    write(t, "tx-gso-ecn-udp", u8(0) + net_tx(hdr=(0, 0x83, 42, 1000, 0, 0, 0)))
    write(t, "tx-data-valid", u8(0) + net_tx(hdr=(2, 0, 0, 0, 0, 0, 0)))
    write(t, "tx-short-header", u8(0) + net_tx(short=8))
    write(t, "tx-writable", u8(0) + net_tx(writable=True))
    write(t, "tx-num-buffers", u8(0) + net_tx(hdr=(0, 0, 0, 0, 0, 0, 0xffff)))
    write(t, "tx-packed-indirect", u8(2) + net_tx(parts=3, cuts=(4, 30)))
    write(t, "rx-one", u8(0) + net_rx_post([2048]) + net_in())
    write(t, "rx-broadcast-multicast", u8(0) + net_rx_post([2048, 2048, 2048]) +
          net_in(1) + net_in(2) + net_in(3))
    write(t, "rx-mergeable", u8(0) + net_rx_post([256, 256, 256, 256]) + net_in(0, 900))
    write(t, "rx-not-mergeable", u8(8) + net_rx_post([256, 2048]) + net_in(0, 900))
    write(t, "rx-too-small", u8(0) + net_rx_post([8, 2048]) + net_in())
    write(t, "rx-readable", u8(0) + net_rx_post([0x21]) + net_in())
    write(t, "rx-before-buffers", u8(0) + net_in() + net_in(0, 60) + net_rx_post([2048, 2048]))
    write(t, "ctrl-promisc", u8(0) + net_ctrl(0, u8(1)) + net_rx_post([2048]) + net_in(3))
    write(t, "ctrl-allmulti-nobcast", u8(0) + net_ctrl(1, u8(0)) + net_ctrl(2, u8(1)) +
          net_rx_post([2048, 2048]) + net_in(1) + net_in(2))
    write(t, "ctrl-mac-table", u8(0) + u8(3, 3 | (1 << 3)) + le(1, 4) + le(0, 4) + u8(0, 0))
    write(t, "ctrl-mac-table-huge", u8(0) + u8(3, 3 | (1 << 3) | 0x20) + le(69, 4) +
          le(0xffffffff, 4) + u8(0, 0))
    write(t, "ctrl-mac-addr", u8(0) + net_ctrl(4, u8(2, 0x11, 0x22, 0x33, 0x44, 0x56)))
    write(t, "ctrl-announce", u8(0) + net_ctrl(5, u8(0)))
    write(t, "ctrl-mq-pairs", u8(1) + net_ctrl(6, le(2, 2)) + net_tx(q=1) +
          net_rx_post([2048], q=1) + net_in())
    write(t, "ctrl-mq-pairs-zero", u8(1) + net_ctrl(6, le(0, 2)) + net_ctrl(6, le(17, 2)))
    write(t, "ctrl-offloads", u8(4) + net_ctrl(7, le(0x7, 8)))
    write(t, "ctrl-large", u8(0) + net_ctrl(0, bytes(600), kind=2))
    write(t, "ctrl-no-ack", u8(0) + net_ctrl(0, u8(1), ack=1))
    write(t, "ctrl-wide-ack", u8(0) + net_ctrl(0, u8(1), ack=3))
    write(t, "ctrl-unknown", u8(0) + u8(3, 0x80, 0x7f, 0x7f) + u8(0) + u8(1) + u8(0, 0))


if __name__ == "__main__":
    blk()
    xen_ioreq()
    xen_config()
    net()
    sys.exit(0)
