#!/usr/bin/python3
"""A TCP listener on 127.0.0.1 that counts connections for the scheduler tests.

usage: conn_counter.py PORT HOLD_MS LOG

Accepts connections, keeps each one open and silent for HOLD_MS (0: closes at once), and
appends one line per event to LOG: "open T N" / "close T N", where T is the wall-clock time
in seconds and N the number of connections open after the event. Exits after 10 minutes
in any case, so that it never outlives a crashed test by much.
"""
import asyncio
import sys
import time

port, hold_ms, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
log = open(log_path, "a", buffering=1)
open_now = 0


async def handle(reader, writer):
    global open_now
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
        open_now -= 1
        log.write(f"close {time.time():.3f} {open_now}\n")
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
    async with server:
        await asyncio.sleep(600)


asyncio.run(main())
