#!/usr/bin/env python3
"""Sends Ethernet frames into a tap and checks that each comes back whole
with its MAC addresses swapped (DPDK testpmd's macswap forwarding on the
other side of virtiod).  tests/dpdk/run.sh runs it inside the namespace of
the tap.  Exit 0 when every frame came back intact, 1 otherwise."""
import os
import select
import socket
import struct
import sys
import time

ETH_TYPE = 0x88B5  # IEEE 802 local experimental: nothing else uses it


def main():
    ifname, peer, count, burst = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    peer_mac = bytes.fromhex(peer.replace(":", ""))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_TYPE))
    s.bind((ifname, ETH_TYPE))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    own = s.getsockname()[4][:6]
    sent = {}
    got = 0
    bad = 0
    sizes = [60, 64, 128, 500, 1000, 1514]
    deadline = time.monotonic() + 60
    i = 0
    while i < count:
        n = min(burst, count - i)
        for k in range(n):
            idx = i + k
            size = sizes[idx % len(sizes)]
            body = struct.pack("!I", idx) + os.urandom(size - 14 - 4)
            frame = peer_mac + own + struct.pack("!H", ETH_TYPE) + body
            sent[idx] = frame
            s.send(frame)
        i += n
        # macswap: destination and source swapped, the rest untouched
        while len(sent) > 0 and time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], 2.0)
            if not r:
                break
            f = s.recv(65536)
            if len(f) < 18 or f[:6] != own:
                continue
            idx = struct.unpack("!I", f[14:18])[0]
            want = sent.pop(idx, None)
            if want is None:
                continue
            if f != want[6:12] + want[:6] + want[12:]:
                bad += 1
            got += 1
        if sent:
            break
    print(f"frames: sent {count}, back {got}, corrupted {bad}, missing {len(sent)}")
    return 0 if got == count and bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
