#!/usr/bin/env python3
# A wire that holds every Ethernet frame for a fixed time, both ways: the lab's stand-in for
# `tc qdisc … netem delay`, which this kernel lacks. It relays raw frames (AF_PACKET; Node has no
# raw sockets) between two interfaces of a namespace that has nothing else on them.
#   delay-line.py IF_A IF_B DELAY_MS
# The senders on both sides must checksum in software and not hand over segments larger than the
# MTU (ethtool -K … tx off tso off gso off): a raw socket passes frames as they are.
import heapq
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

a, b, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000


def port(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, 0))
    s.setblocking(False)
    return s


ports = [port(a), port(b)]
other = {ports[0]: ports[1], ports[1]: ports[0]}
held = []  # (due, order, out, frame): a heap, so frames leave in the order they came
order = 0
print("ready", flush=True)
while True:
    wait = max(0.0, held[0][0] - time.monotonic()) if held else None
    readable, _, _ = select.select(ports, [], [], wait)
    for s in readable:
        while True:
            try:
                frame, addr = s.recvfrom(65535)
            except BlockingIOError:
                break
            except OSError:  # the port went down (a cut): nothing more to read from it now
                break
            if addr[2] == PACKET_OUTGOING:  # what this wire itself sent, seen again
                continue
            order += 1
            heapq.heappush(held, (time.monotonic() + delay, order, other[s], frame))
    now = time.monotonic()
    while held and held[0][0] <= now:
        _, _, out, frame = heapq.heappop(held)
        try:
            out.send(frame)
        except OSError:
            pass  # the far side is down (a cut): the frame is lost, as on a wire
