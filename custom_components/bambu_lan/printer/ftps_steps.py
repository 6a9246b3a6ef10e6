"""The blocking FTPS steps that `ftps.py` runs in the executor, one at a time.

Each opens, uses or closes an ftplib connection over the verified context from `tls.py`; none
keeps state of its own. No Home Assistant imports.
"""

from __future__ import annotations

import contextlib
import ftplib
from pathlib import Path
import socket
import ssl
from typing import BinaryIO, Final, override

USERNAME: Final = "bblp"
QUIT_TIMEOUT: Final = 2.0


class ImplicitFTPS(ftplib.FTP_TLS):
    """ftplib with TLS from the first byte, data connections that resume the control
    connection's session, and no TLS shutdown after a transfer."""

    sock: ssl.SSLSocket

    @override
    def connect(
        self,
        host: str = "",
        port: int = 0,
        timeout: float = -999,
        source_address: tuple[str, int] | None = None,
    ) -> str:
        raw = socket.create_connection((host, port), timeout)
        try:
            # The context sends and checks the serial, whatever `host` is.
            self.sock = self.context.wrap_socket(raw)
        except BaseException:
            raw.close()
            raise
        self.host, self.port, self.timeout = host, port, timeout
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    @override
    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        # Plain FTP's passive connect; the data socket is wrapped in TLS right below.
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321
        try:
            return self.context.wrap_socket(conn, session=self.sock.session), size
        except BaseException:
            conn.close()
            raise


def connect(
    context: ssl.SSLContext, host: str, port: int, access_code: str, timeout: float
) -> ImplicitFTPS:
    ftp = ImplicitFTPS(context=context, timeout=timeout)
    try:
        ftp.connect(host, port, timeout)
        ftp.login(USERNAME, access_code)
        ftp.prot_p()
        ftp.voidcmd("TYPE I")
    except BaseException:
        ftp.close()
        raise
    return ftp


def quit_politely(ftp: ImplicitFTPS) -> None:
    with contextlib.suppress(Exception):
        ftp.sock.settimeout(QUIT_TIMEOUT)
        ftp.quit()
    ftp.close()


def alive(ftp: ImplicitFTPS) -> bool:
    """Whether a kept connection still answers (one round trip)."""
    try:
        ftp.voidcmd("NOOP")
    except OSError, EOFError, ftplib.Error:
        return False
    return True


def recv_upto(conn: socket.socket, size: int) -> bytes:
    """Up to `size` bytes (fewer only at the end of the file)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size and (received := conn.recv_into(view[filled:])):
        filled += received
    del view
    del buffer[filled:]
    return bytes(buffer)


def finish(ftp: ImplicitFTPS, conn: socket.socket) -> None:
    """End a transfer: close the data connection (no TLS shutdown) and read the 226."""
    conn.close()
    ftp.voidresp()


def file_size(ftp: ImplicitFTPS, path: str) -> int:
    return int(ftp.sendcmd(f"SIZE {path}")[4:].strip())  # "213 <bytes>"; ValueError otherwise


def send_chunk(conn: socket.socket, source: BinaryIO, size: int) -> int:
    chunk = source.read(size)
    conn.sendall(chunk)
    return len(chunk)


def open_source(path: Path) -> tuple[BinaryIO, int]:
    source = path.open("rb")
    return source, path.stat().st_size
