"""WebSocket echo server with Python's websockets package (Debian's
python3-websockets, on asyncio), for the ws_echo row of
scripts/bench/compare: every message goes back as it came.

    python3 websockets_echo.py PORT
"""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    async with websockets.serve(echo, "127.0.0.1", port, compression=None,
                                max_size=2 ** 24, ping_interval=None):
        print("LISTENING %d" % port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
