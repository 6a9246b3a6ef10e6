"""Camera figures for `scripts/bench` (imported by bench.py; not a test: nothing asserts).

- `camera_jpeg_cpu_us_per_frame`: CPU of this thread (TLS decryption, frame parsing, handing the
  frame to a viewer) per 1280x720 JPEG frame from the virtual printer's port-6000 server.
- `rtsp_relay_cpu_percent_per_mbit`: CPU of this thread, in percent of one core, per Mbit/s that
  the relay copies from the virtual printer's RTSPS endpoint (TLS) to an ffmpeg viewer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
import tempfile
import time
from typing import Any

from custom_components.bambu_lan.printer.camera import JpegCamera
from custom_components.bambu_lan.printer.rtsp_relay import RtspRelay
from tests.virtual_printer.camera import CameraProcess
from tests.virtual_printer.pki import issue_server

CODE = "B3nchC0d"
P1_SERIAL = "01P09A000000099"
X1_SERIAL = "00M09A000000099"


async def bench_jpeg(cas: Any, frames: int, line: Any) -> None:
    """Frames per CPU time on the port-6000 path."""
    identity = issue_server("legacy", P1_SERIAL, cas)
    with tempfile.TemporaryDirectory() as work:
        server = CameraProcess(identity, CODE, Path(work), fps=100, size=(1280, 720), noise=True)
        camera = JpegCamera("127.0.0.1", P1_SERIAL, CODE, port=server.port)
        try:
            first = await camera.async_get_frame()
            count = 0
            start = time.thread_time()
            async for _frame in camera.frames():
                count += 1
                if count == frames:
                    break
            cpu = time.thread_time() - start
        finally:
            await camera.async_close()
            server.close()
    line("camera_jpeg_cpu_us_per_frame", cpu / count * 1e6, "µs")
    line("camera_jpeg_frame_kib", len(first) / 1024, "KiB")


async def bench_relay(cas: Any, seconds: float, line: Any) -> None:
    """CPU per Mbit/s of the relay, with ffmpeg as the viewer (another process)."""
    identity = issue_server("legacy", X1_SERIAL, cas)
    with tempfile.TemporaryDirectory() as work:
        server = CameraProcess(identity, CODE, Path(work), kind="rtsp", fps=400)
        relay = RtspRelay("127.0.0.1", X1_SERIAL, CODE, port=server.port)
        await relay.async_start()
        viewer = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "quiet", "-rtsp_transport", "tcp",
            "-i", relay.url, "-c", "copy", "-f", "null", "-",
        )  # fmt: skip
        try:
            async with asyncio.timeout(30):
                while relay.bytes_relayed < 1_000_000:  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.1)
            cpu0, bytes0, wall0 = time.thread_time(), relay.bytes_relayed, time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, bytes1, wall1 = time.thread_time(), relay.bytes_relayed, time.monotonic()
        finally:
            viewer.kill()
            await viewer.wait()
            await relay.async_stop()
            server.close()
    wall = wall1 - wall0
    mbit_per_s = (bytes1 - bytes0) * 8 / 1e6 / wall
    cpu_percent = (cpu1 - cpu0) / wall * 100
    line("rtsp_relay_mbit_per_s", mbit_per_s, "Mbit/s")
    line("rtsp_relay_cpu_percent_per_mbit", cpu_percent / mbit_per_s, "%")
