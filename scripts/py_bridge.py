#!/usr/bin/env python3
"""The design serial-bridge started from, as a reference for scripts/bench.

pyserial-asyncio opens both ports; one pending readline() per port; asyncio.wait
with FIRST_COMPLETED takes whichever line arrives first and writes it to the other
port. The pending read of the other port is kept, not cancelled, so nothing is lost.

    python3 scripts/py_bridge.py PORT_A PORT_B [--baud N]
"""

import argparse
import asyncio
import signal

import serial_asyncio


async def bridge(path_a, path_b, baud):
    reader_a, writer_a = await serial_asyncio.open_serial_connection(url=path_a, baudrate=baud)
    reader_b, writer_b = await serial_asyncio.open_serial_connection(url=path_b, baudrate=baud)
    peers = {reader_a: writer_b, reader_b: writer_a}
    pending = {asyncio.ensure_future(r.readline()): r for r in peers}
    try:
        await forward(peers, pending)
    finally:
        for task in pending:
            task.cancel()


async def forward(peers, pending):
    while True:
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            reader = pending.pop(task)
            line = task.result()
            if not line:
                return
            writer = peers[reader]
            writer.write(line)
            await writer.drain()
            pending[asyncio.ensure_future(reader.readline())] = reader


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--baud", type=int, default=9600)
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    task = loop.create_task(bridge(args.a, args.b, args.baud))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass


if __name__ == "__main__":
    main()
