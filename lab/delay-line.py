#!/usr/bin/env python3
# A wire that holds every Ethernet frame for a fixed time, both ways: the lab's stand-in for
# `tc qdisc … netem delay`, which this kernel lacks. It relays raw frames (AF_PACKET; Node has no
# raw sockets) between two interfaces of a namespace that has nothing else on them.
#   delay-line.py IF_A IF_B
# It starts muted (discarding what it reads: a bridge may still join the two) and takes commands
# on stdin, a line each, answering each on stdout once done, so the lab can swap a bridge for it
# and back, and change the delay, and never drop what is in flight:
#   MS    relay with this delay from now on            → "delay MS"
#   mute  relay what it holds (and what comes meanwhile) at once, then discard → "muted"
# stdin closed, it exits.
# The senders on both sides must checksum in software and not hand over segments larger than the
# MTU (ethtool -K … tx off tso off gso off): a raw socket passes frames as they are.
import collections
import os
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def port(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, 0))
    s.setblocking(False)
    return s


def say(line):
    print(line, flush=True)


ports = [port(sys.argv[1]), port(sys.argv[2])]
other = {ports[0]: ports[1], ports[1]: ports[0]}
control = sys.stdin.fileno()
commands = b""
delay = None  # None: muted
muting = False  # "mute" asked: muted once what it holds has left
# (due, out, frame), first in first out: a shorter delay never lets a frame overtake an older one.
held = collections.deque()
say("ready")
while True:
    wait = max(0.0, held[0][0] - time.monotonic()) if held else None
    readable, _, _ = select.select([*ports, control], [], [], wait)
    if control in readable:
        chunk = os.read(control, 256)
        if not chunk:
            sys.exit(0)
        commands += chunk
        while b"\n" in commands:
            line, commands = commands.split(b"\n", 1)
            command = line.decode().strip()
            if command == "mute":
                delay, muting = 0.0, True
            else:
                delay, muting = float(command) / 1000, False
                say(f"delay {command}")
    for s in readable:
        if s is control:
            continue
        while True:
            try:
                frame, addr = s.recvfrom(65535)
            except BlockingIOError:
                break
            except OSError:  # the port went down (a cut): nothing more to read from it now
                break
            if addr[2] == PACKET_OUTGOING or delay is None:  # its own frames seen again; muted
                continue
            due = time.monotonic() + delay
            held.append((max(due, held[-1][0]) if held else due, other[s], frame))
    now = time.monotonic()
    while held and held[0][0] <= now:
        _, out, frame = held.popleft()
        try:
            out.send(frame)
        except OSError:
            pass  # the far side is down (a cut): the frame is lost, as on a wire
    if muting and not held:
        delay, muting = None, False
        say("muted")
