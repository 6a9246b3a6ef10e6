"""The printer's storage over implicit FTPS (port 990), like the vsftpd on real printers.

Run as its own process (`python -m tests.virtual_printer.ftps`, configured with one JSON line on
stdin, answering with `{"port": N}` on stdout, exiting when stdin closes): it uses a thread per
connection, which Home Assistant's test harness would not allow in the test process.

What it does like a printer:
- TLS from the first byte with the printer's identity (TLS 1.2 only, like H2D's port 990);
  user `bblp` + access code; `PBSZ 0` / `PROT P`; passive mode only.
- **Session reuse is required**: a data connection that does not resume the control
  connection's TLS session is refused with `522 SSL connection failed: session reuse required`.
- NLST answers full paths (`/timelapse/a.mp4`) on X1/H2 and bare names (`a.mp4`) on P1/A1.
- Files live in a real directory (`root`): RETR (with REST), STOR, DELE, SIZE, NLST, LIST.

Hostile options: `delay` (seconds before every reply: a very slow server). An impostor is just
another identity (`pki` profiles `unknown_ca`, `other_serial`, ...).

Every command is appended to `log` as a JSON line, with the PASS argument replaced by whether
it was right, so tests can check which credentials a server received without storing them.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
from pathlib import Path, PurePosixPath
import socket
import socketserver
import ssl
import sys
import threading
import time
from typing import Any, Final

HOST: Final = "127.0.0.1"
CHUNK: Final = 256 * 1024
REUSE_REQUIRED: Final = "522 SSL connection failed: session reuse required"

# Models whose NLST answers full paths (the others answer bare names).
FULL_PATH_MODELS: Final = frozenset({"X1C", "H2D"})


class _Session:
    """One control connection."""

    def __init__(self, server: FtpsServer, sock: ssl.SSLSocket) -> None:
        self.server = server
        self.sock = sock
        self.file = sock.makefile("rb")
        self.user: str | None = None
        self.logged_in = False
        self.protected = False
        self.cwd = PurePosixPath("/")
        self.rest = 0
        self.passive: socket.socket | None = None

    def reply(self, line: str) -> None:
        if self.server.delay:
            time.sleep(self.server.delay)
        self.sock.sendall(line.encode() + b"\r\n")

    def run(self) -> None:
        self.reply("220 virtual printer FTPS ready")
        while line := self.file.readline(4096):
            text = line.decode(errors="replace").rstrip("\r\n")
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            self.server.record(verb, arg, self)
            handler = getattr(self, f"cmd_{verb.lower()}", None)
            if verb == "QUIT":
                self.reply("221 Goodbye.")
                return
            if handler is None:
                self.reply("502 Command not implemented.")
            elif not self.logged_in and verb not in {"USER", "PASS", "FEAT", "SYST"}:
                self.reply("530 Please login with USER and PASS.")
            else:
                handler(arg)

    # -- login -----------------------------------------------------------------------------

    def cmd_user(self, arg: str) -> None:
        self.user = arg
        self.reply("331 Please specify the password.")

    def cmd_pass(self, arg: str) -> None:
        if self.user == "bblp" and self.server.check_code(arg):
            self.logged_in = True
            self.reply("230 Login successful.")
        else:
            self.reply("530 Login incorrect.")

    def cmd_syst(self, _arg: str) -> None:
        self.reply("215 UNIX Type: L8")

    def cmd_feat(self, _arg: str) -> None:
        self.reply("211-Features:\r\n PASV\r\n PBSZ\r\n PROT\r\n REST STREAM\r\n SIZE\r\n211 End")

    def cmd_pbsz(self, _arg: str) -> None:
        self.reply("200 PBSZ set to 0.")

    def cmd_prot(self, arg: str) -> None:
        if arg.upper() != "P":
            self.reply("536 PROT P required.")
            return
        self.protected = True
        self.reply("200 PROT now Private.")

    def cmd_type(self, _arg: str) -> None:
        self.reply("200 Switching to Binary mode.")

    def cmd_noop(self, _arg: str) -> None:
        self.reply("200 NOOP ok.")

    def cmd_pwd(self, _arg: str) -> None:
        self.reply(f'257 "{self.cwd}" is the current directory')

    def cmd_cwd(self, arg: str) -> None:
        path = self.resolve(arg)
        if path is None or not path.is_dir():
            self.reply("550 Failed to change directory.")
            return
        self.cwd = PurePosixPath("/") / path.relative_to(self.server.root)
        self.reply("250 Directory successfully changed.")

    # -- files -----------------------------------------------------------------------------

    def resolve(self, arg: str) -> Path | None:
        """The local path for a remote one, or None if it would leave the root."""
        remote = self.cwd / arg if arg else self.cwd
        parts = [part for part in remote.parts if part not in {"/", "."}]
        if ".." in parts:
            return None
        return self.server.root.joinpath(*parts)

    def cmd_size(self, arg: str) -> None:
        path = self.resolve(arg)
        if path is None or not path.is_file():
            self.reply("550 Could not get file size.")
            return
        self.reply(f"213 {path.stat().st_size}")

    def cmd_dele(self, arg: str) -> None:
        path = self.resolve(arg)
        if path is None or not path.is_file():
            self.reply("550 Delete operation failed.")
            return
        path.unlink()
        self.reply("250 Delete operation successful.")

    def cmd_rest(self, arg: str) -> None:
        try:
            self.rest = max(0, int(arg))
        except ValueError:
            self.reply("501 REST requires a number.")
            return
        self.reply(f"350 Restart position accepted ({self.rest}).")

    def cmd_pasv(self, _arg: str) -> None:
        if self.passive is not None:
            self.passive.close()
        self.passive = socket.create_server((HOST, 0))
        port = self.passive.getsockname()[1]
        self.reply(f"227 Entering Passive Mode (127,0,0,1,{port >> 8},{port & 0xFF}).")

    def cmd_epsv(self, _arg: str) -> None:
        self.reply("502 EPSV not implemented.")  # printers are IPv4 only

    def _listing(self, arg: str, *, long: bool) -> list[str] | None:
        target = "" if not arg or arg.startswith("-") else arg.rsplit(" ", 1)[-1]
        directory = self.resolve(target)
        if directory is None or not directory.is_dir():
            return None
        names = sorted(entry.name for entry in directory.iterdir())
        remote = PurePosixPath("/") / directory.relative_to(self.server.root)
        if long:
            lines = []
            for name in names:
                entry = directory / name
                kind = "d" if entry.is_dir() else "-"
                stamp = time.strftime("%b %d %H:%M", time.gmtime(entry.stat().st_mtime))
                size = entry.stat().st_size
                lines.append(f"{kind}rw-r--r--    1 0        0   {size:>10} {stamp} {name}")
            return lines
        if self.server.full_paths:
            return [str(remote / name) for name in names]
        return names

    def cmd_nlst(self, arg: str) -> None:
        self._send_listing(arg, long=False)

    def cmd_list(self, arg: str) -> None:
        self._send_listing(arg, long=True)

    def _send_listing(self, arg: str, *, long: bool) -> None:
        lines = self._listing(arg, long=long)
        if lines is None:
            self._drop_passive()
            self.reply("550 Failed to open directory.")
            return
        data = self.open_data("150 Here comes the directory listing.")
        if data is None:
            return
        with contextlib.suppress(OSError):
            data.sendall("".join(f"{line}\r\n" for line in lines).encode())
        _close_data(data)
        self.reply("226 Directory send OK.")

    def cmd_retr(self, arg: str) -> None:
        path = self.resolve(arg)
        offset, self.rest = self.rest, 0
        if path is None or not path.is_file():
            self._drop_passive()
            self.reply("550 Failed to open file.")
            return
        size = path.stat().st_size
        data = self.open_data(f"150 Opening BINARY mode data connection for {arg} ({size} bytes).")
        if data is None:
            return
        try:
            with path.open("rb") as source:
                source.seek(offset)
                while chunk := source.read(CHUNK):
                    if self.server.delay:
                        time.sleep(self.server.delay)
                    data.sendall(chunk)
        except OSError:
            data.close()
            self.reply("426 Failure writing network stream.")
            return
        _close_data(data)
        self.reply("226 Transfer complete.")

    def cmd_stor(self, arg: str) -> None:
        path = self.resolve(arg)
        if path is None or not path.parent.is_dir():
            self._drop_passive()
            self.reply("553 Could not create file.")
            return
        data = self.open_data("150 Ok to send data.")
        if data is None:
            return
        partial = path.with_name(f".{path.name}.part")
        try:
            with partial.open("wb") as target:
                while chunk := data.recv(CHUNK):
                    target.write(chunk)
        except OSError:
            data.close()
            partial.unlink(missing_ok=True)
            self.reply("426 Failure reading network stream.")
            return
        _close_data(data)
        partial.replace(path)
        self.reply("226 Transfer complete.")

    # -- data connections --------------------------------------------------------------------

    def _drop_passive(self) -> None:
        if self.passive is not None:
            self.passive.close()
            self.passive = None

    def open_data(self, preliminary: str) -> ssl.SSLSocket | None:
        """Accept the passive data connection and insist that it resumes our TLS session."""
        if self.passive is None:
            self.reply("425 Use PASV first.")
            return None
        if not self.protected:
            self._drop_passive()
            self.reply("521 PROT P required.")
            return None
        listener, self.passive = self.passive, None
        with listener:
            listener.settimeout(10)
            try:
                raw, _ = listener.accept()
            except OSError:
                self.reply("425 Failed to establish connection.")
                return None
        self.reply(preliminary)
        try:
            raw.settimeout(10)
            data = self.server.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as err:
            raw.close()
            self.server.record("DATA", f"handshake failed: {err}", self)
            self.reply("522 SSL connection failed.")
            return None
        control = self.sock.session
        reused = (
            data.session_reused
            and control is not None
            and data.session is not None
            and data.session.id == control.id
        )
        self.server.record("DATA", "resumed" if reused else "new session", self)
        if not reused:
            data.close()
            self.reply(REUSE_REQUIRED)
            return None
        return data


def _close_data(data: ssl.SSLSocket) -> None:
    """Send close_notify before closing, as vsftpd does: OpenSSL forgets a session whose
    connection ends without it, and the next data connection could not resume it."""
    with contextlib.suppress(OSError, ssl.SSLError):
        data.settimeout(1)
        data.unwrap()
    data.close()


class FtpsServer(socketserver.ThreadingTCPServer):
    """Implicit FTPS on 127.0.0.1, serving `root`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        *,
        root: Path,
        chain: Path,
        key: Path,
        access_code: str,
        model: str,
        port: int = 0,
        delay: float = 0.0,
        log: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        self.full_paths = model in FULL_PATH_MODELS
        self.delay = delay
        self._code = access_code.encode()
        self._log = log
        self._log_lock = threading.Lock()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain, key)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.maximum_version = ssl.TLSVersion.TLSv1_2
        # Session ids, like vsftpd: the server can then tell *which* session a data
        # connection resumed (with tickets its own control session reads as None).
        self.context.options |= ssl.OP_NO_TICKET
        super().__init__((HOST, port), _Handler)

    def check_code(self, value: str) -> bool:
        return hmac.compare_digest(value.encode(), self._code)

    def record(self, verb: str, arg: str, session: _Session | None = None) -> None:
        if self._log is None:
            return
        if verb == "PASS":
            arg = "right" if self.check_code(arg) else "wrong"
        line = json.dumps({"verb": verb, "arg": arg, "t": time.time()})
        with self._log_lock, self._log.open("a") as out:
            out.write(line + "\n")


class _Handler(socketserver.BaseRequestHandler):
    server: FtpsServer

    def handle(self) -> None:
        raw: socket.socket = self.request
        raw.settimeout(30)
        try:
            sock = self.server.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as err:
            self.server.record("TLS", f"handshake failed: {err}")
            return
        self.server.record("TLS", "handshake ok")
        session = _Session(self.server, sock)
        with contextlib.suppress(OSError, ssl.SSLError):
            session.run()
        session._drop_passive()
        with contextlib.suppress(OSError):
            sock.close()


def main() -> int:
    """Read the configuration from stdin, serve until stdin closes."""
    config: dict[str, Any] = json.loads(sys.stdin.readline())
    server = FtpsServer(
        root=Path(config["root"]),
        chain=Path(config["chain"]),
        key=Path(config["key"]),
        access_code=config["access_code"],
        model=config["model"],
        port=config.get("port", 0),
        delay=config.get("delay", 0.0),
        log=Path(config["log"]) if config.get("log") else None,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    for _line in sys.stdin:  # control: nothing yet, EOF ends the server
        pass
    server.shutdown()
    server.server_close()
    os._exit(0)  # connection threads may be blocked in reads: do not wait for them


if __name__ == "__main__":
    sys.exit(main())
