#!/usr/bin/python3
"""A TCP listener on 127.0.0.1 that counts connections for the scheduler tests.

usage: conn_counter.py PORT HOLD_MS LOG

Accepts connections, keeps each one open and silent for HOLD_MS (0: closes at once), and
appends one line per event to LOG: "open T N" / "close T N", where T is the wall-clock time
in seconds and N the number of connections open after the event. Exits after 10 minutes
in any case, so that it never outlives a crashed test by much.

A client that closes one connection and opens the next at once can have both events handled
in one turn of the event loop, the accept first: before it counts a new connection, the
counter looks at every connection it holds and counts those the client has already closed
(end of stream waiting to be read) as closed, so that "open now" is what the client really
holds.
"""
import asyncio
import os
import socket
import sys
import time

port, hold_ms, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
log = open(log_path, "a", buffering=1)
open_now = 0
held = []  # [fd, reader, closed] per connection still held


def close_one(c):
    global open_now
    if not c[2]:
        c[2] = True
        open_now -= 1
        log.write(f"close {time.time():.3f} {open_now}\n")


def peer_closed(c):
    if c[1].at_eof():
        return True
    try:
        with socket.socket(fileno=os.dup(c[0])) as s:
            return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


async def handle(reader, writer):
    global open_now
    for c in held:
        if not c[2] and peer_closed(c):
            close_one(c)
    me = [writer.get_extra_info("socket").fileno(), reader, False]
    held.append(me)
    open_now += 1
    log.write(f"open {time.time():.3f} {open_now}\n")
    try:
        if hold_ms > 0:
            try:
                await asyncio.wait_for(reader.read(65536), timeout=hold_ms / 1000)
                # The client sent something (a ClientHello): stay silent until the hold ends
                # or the client gives up.
                await asyncio.wait_for(reader.read(), timeout=hold_ms / 1000)
            except asyncio.TimeoutError:
                pass
    except (ConnectionError, OSError):
        pass
    finally:
        close_one(me)
        held.remove(me)
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
    async with server:
        await asyncio.sleep(600)


asyncio.run(main())
