"""`CameraProcess`: the handle for the virtual printer's camera process (`camera_server.py`).

Synchronous and short like the rest of `VirtualPrinter`, and no thread in the caller.
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path
import select
import subprocess
import sys
import time
from typing import Any, Final

from .broker import die_with_parent
from .pki import ServerIdentity

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
TIMEOUT: Final = 30.0


class CameraProcess:
    """One camera server process: `kind` "jpeg" (port 6000) or "rtsp" (RTSPS, port 322)."""

    def __init__(
        self,
        identity: ServerIdentity,
        access_code: str,
        workdir: Path,
        kind: str = "jpeg",
        **options: Any,
    ) -> None:
        self.kind = kind
        self._workdir = workdir
        self._identity_files = 0
        chain, key = self._write_identity(identity)
        # A process started ahead (Python needs a while to import asyncio on a busy machine).
        self._process = _POOL.take()
        _POOL.refill()
        self._buffer = b""
        self._next_id = 1
        self._send(
            {
                "chain": str(chain),
                "key": str(key),
                "access_code": access_code,
                "kind": kind,
                **options,
            }
        )
        self.port: int = self._reply(None)["port"]

    def __repr__(self) -> str:
        return f"CameraProcess(kind={self.kind!r}, port={self.port})"

    def _write_identity(self, identity: ServerIdentity) -> tuple[Path, Path]:
        self._identity_files += 1
        return identity.write_server_files(self._workdir / f"camera-{self._identity_files}")

    def serve(self, identity: ServerIdentity) -> None:
        """Present another certificate chain to new connections."""
        chain, key = self._write_identity(identity)
        self.call("serve", chain=str(chain), key=str(key))

    def stats(self) -> dict[str, Any]:
        """Connections, handshakes, bytes received per connection, auth outcomes, frames."""
        result: dict[str, Any] = self.call("stats")
        return result

    def call(self, op: str, **args: Any) -> Any:
        """One control request; raises if the process refused it."""
        request_id, self._next_id = self._next_id, self._next_id + 1
        self._send({"id": request_id, "op": op, **args})
        reply = self._reply(request_id)
        if not reply.get("ok"):
            raise RuntimeError(f"camera {op}: {reply.get('error')}")
        return reply.get("result")

    def close(self) -> None:
        """End the process (it exits when its control pipe closes)."""
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.close()
            process.wait(timeout=3)
        except subprocess.TimeoutExpired, OSError:
            process.kill()
            process.wait()
        process.stdout.close()

    def _send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")
        self._process.stdin.flush()

    def _reply(self, request_id: int | None) -> dict[str, Any]:
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + TIMEOUT
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                reply: dict[str, Any] = json.loads(line)
                if reply.get("id") == request_id:
                    return reply
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, remaining))
            chunk = os.read(fd, 1 << 16) if readable else b""
            if not chunk:
                raise RuntimeError("the camera process did not answer")
            self._buffer += chunk


def _spawn() -> subprocess.Popen[bytes]:
    """A camera process that waits for its configuration on stdin."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.virtual_printer.camera_server"],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - one async-signal-safe syscall
    )


class _Pool:
    """One spare camera process."""

    def __init__(self) -> None:
        self._spare: subprocess.Popen[bytes] | None = None

    def take(self) -> subprocess.Popen[bytes]:
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            return _spawn()
        return spare

    def refill(self) -> None:
        if self._spare is None:
            self._spare = _spawn()

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            assert spare.stdin is not None
            assert spare.stdout is not None
            spare.stdin.close()
            try:
                spare.wait(timeout=3)
            except subprocess.TimeoutExpired:
                spare.kill()
                spare.wait()
            spare.stdout.close()


_POOL = _Pool()
atexit.register(_POOL.close)
