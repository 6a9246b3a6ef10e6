"""Clear OpenSSL's per-thread error queue around our own TLS reads and writes.

`SSL_get_error()` consults the calling thread's error queue before the connection's own
state, and CPython's `_ssl` does not empty it before `SSL_read`/`SSL_write`
(python/cpython#81891, #148594). A failed write on a connection the printer dropped leaves an
entry behind; the next read in that thread, on a healthy connection, that merely has to wait
for data is then reported as that old error (a spurious `BrokenPipeError`). Executor threads
and the event loop's thread are shared, so the FTPS steps (`run_clean`) and the MQTT reads and
writes (`mqtt_frames.py`) start with an empty queue.

No Home Assistant imports; part of the printer library.
"""

from __future__ import annotations

import _ssl
from collections.abc import Callable
import contextlib
import ctypes
from typing import Any


def _load() -> Callable[[], None]:
    # dlsym on the extension's handle also searches the libcrypto it links.
    with contextlib.suppress(AttributeError, OSError):
        function = ctypes.CDLL(_ssl.__file__).ERR_clear_error
        function.argtypes = []
        function.restype = None
        return function
    return lambda: None  # OpenSSL linked statically and not exported: nothing to reach


clear_error_queue: Callable[[], None] = _load()


def run_clean[T](func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` with this thread's OpenSSL error queue emptied first (for executors)."""
    clear_error_queue()
    return func(*args)
