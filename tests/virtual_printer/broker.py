"""A real mosquitto broker that serves one printer's MQTT over the printer's TLS identity.

Two listeners on 127.0.0.1, one password file and one ACL (`per_listener_settings false`):
- the printer port: TLS only, chain and key from a `pki.ServerIdentity`; user `bblp` with the
  access code may use `device/<serial>/report` and `device/<serial>/request`, nothing else;
- a private plain port for the firmware process (user `firmware`, random password).

TLS versions: printers speak TLS 1.2 (P2S firmware ignores a 1.3 ClientHello), so the broker is
capped at 1.2 through an OpenSSL config file (mosquitto 2.0 can only set a floor). Mosquitto 2.0
cannot serve TLS 1.0 at all, so the `tls1_0_only` profile gets a TLS 1.1-only listener with
security level 0: to a client whose floor is 1.2 that is the same failure (no shared version).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import TYPE_CHECKING, Final, Self

if TYPE_CHECKING:
    from .pki import ServerIdentity

HOST: Final = "127.0.0.1"
FIRMWARE_USER: Final = "firmware"
MOSQUITTO: Final = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD: Final = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
START_TIMEOUT: Final = 10.0

_OPENSSL_CONF = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_section
[ssl_section]
system_default = system_default_section
[system_default_section]
MinProtocol = {min_protocol}
MaxProtocol = {max_protocol}
CipherString = {ciphers}
"""


class BrokerError(RuntimeError):
    """The broker did not start (the message carries the end of its log)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: have the kernel stop this child when its parent dies (no orphans)."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Broker:
    """One mosquitto process; start/stop/restart keep the same ports."""

    def __init__(
        self,
        identity: ServerIdentity | None,
        serial: str,
        access_code: str,
        *,
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        check_secret(access_code)
        self.identity = identity
        self.serial = serial
        self._access_code = access_code
        self.port = port or 0
        self.firmware_port = 0
        self.firmware_password = secrets.token_hex(16)
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="virtual-broker-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._fixed_port = port is not None and port != 0

    def __repr__(self) -> str:  # never shows the access code
        return f"Broker(serial={self.serial!r}, port={self.port}, running={self.running})"

    @property
    def running(self) -> bool:
        """Whether the mosquitto process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """Mosquitto's log (connections, TLS failures, auth refusals)."""
        return self.workdir / "mosquitto.log"

    def reserve_ports(self) -> None:
        """Choose the ports now (the firmware can be told its port before the broker runs)."""
        if not self.port:
            self.port = free_port()
        if not self.firmware_port:
            self.firmware_port = free_port()

    def start(self) -> Self:
        """Start mosquitto and return once both listeners accept connections."""
        if self.running:
            return self
        for attempt in range(3):
            self.reserve_ports()
            try:
                self._start_once()
            except BrokerError:
                # Another process may have taken a port between our probe and mosquitto's
                # bind. Only ports we picked, and never served on, may be picked again.
                if self._fixed_port or attempt == 2:
                    raise
                self.port = 0
                self.firmware_port = 0
            else:
                self._fixed_port = True  # restarts must come back where clients expect us
                break
        return self

    def _start_once(self) -> None:
        if self.identity is None:
            raise BrokerError("no server identity to serve")
        # Readiness is "the port accepts connections": that must not be someone else's socket.
        for port in (self.port, self.firmware_port):
            if port_open(port):
                raise BrokerError(f"port {port} on {HOST} is already in use")
        self._write_files()
        log = self.log_path.open("ab")
        with log:
            started_at = log.tell()
            self._process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.workdir / "mosquitto.conf")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OPENSSL_CONF": str(self.workdir / "openssl.cnf")},
                # own process group: a terminal's Ctrl-C reaches only us, and we stop them
                process_group=0,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - calls one async-signal-safe syscall
            )
        self._wait_until_listening(started_at)

    def stop(self) -> None:
        """Stop mosquitto (clients see their connection drop)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # mosquitto closes its listening sockets on exit; make sure the ports are free again
        deadline = time.monotonic() + 2
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop and start on the same ports: every client is dropped."""
        self.stop()
        self.start()

    def set_access_code(self, access_code: str) -> None:
        """Change the `bblp` password; restart so existing sessions must log in again."""
        check_secret(access_code)
        self._access_code = access_code
        if self.running:
            self.restart()

    def set_identity(self, identity: ServerIdentity) -> None:
        """Serve a new certificate chain (e.g. a re-issued leaf); restarts a running broker."""
        self.identity = identity
        if self.running:
            self.restart()

    def close(self) -> None:
        """Stop and delete the working directory (if it was created here)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def logins(self) -> int:
        """How many MQTT logins as `bblp` reached this broker, accepted or refused.

        Each one carried an access code: a test of an impostor asserts that this stays 0. Read
        from mosquitto's log file, which it flushes line by line (unlike its stdout).
        """
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        accepted = text.count("u'bblp')")
        # A refused login does not name its user; the firmware's own login never fails.
        refused = text.count("disconnected, not authorised.")
        return accepted + refused

    def log_tail(self, lines: int = 20) -> str:
        """The end of mosquitto's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- files ------------------------------------------------------------------------------------

    def _write_files(self) -> None:
        workdir = self.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        for stale in workdir.glob("*.pem"):  # a re-issued identity replaces the old files
            stale.unlink()
        assert self.identity is not None
        chain, key = self.identity.write_server_files(workdir)
        self._write_passwords(workdir / "passwd")
        (workdir / "acl").write_text(self._acl())
        (workdir / "openssl.cnf").write_text(self._openssl_conf())
        (workdir / "mosquitto.conf").write_text(self._config(chain, key))

    def _write_passwords(self, path: Path) -> None:
        # Written in clear text, then hashed in place by mosquitto_passwd -U: the secret never
        # appears on a command line.
        path.write_text(f"bblp:{self._access_code}\n{FIRMWARE_USER}:{self.firmware_password}\n")
        path.chmod(0o600)
        subprocess.run(
            [MOSQUITTO_PASSWD, "-U", str(path)], check=True, capture_output=True, timeout=10
        )

    def _acl(self) -> str:
        serial = self.serial
        # mosquitto 2.0 grants every SUBSCRIBE and applies `read` when delivering: a client
        # subscribed to another serial's topics simply never receives anything.
        return (
            "user bblp\n"
            f"topic read device/{serial}/report\n"
            f"topic write device/{serial}/request\n"
            f"\nuser {FIRMWARE_USER}\n"
            "topic readwrite #\n"
        )

    def _openssl_conf(self) -> str:
        assert self.identity is not None
        if self.identity.tls_max == "TLSv1":
            return _OPENSSL_CONF.format(
                min_protocol="TLSv1", max_protocol="TLSv1.1", ciphers="DEFAULT:@SECLEVEL=0"
            )
        return _OPENSSL_CONF.format(
            min_protocol="TLSv1.2",
            max_protocol=self.identity.tls_max,
            ciphers="DEFAULT:@SECLEVEL=2",
        )

    def _config(self, chain: Path, key: Path) -> str:
        legacy = self.identity is not None and self.identity.tls_max == "TLSv1"
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {self.workdir / 'passwd'}",
            f"acl_file {self.workdir / 'acl'}",
            "persistence false",
            f"log_dest file {self.workdir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
            "",
            f"listener {self.port} {HOST}",
            f"cafile {chain}",
            f"certfile {chain}",
            f"keyfile {key}",
            f"tls_version {'tlsv1.1' if legacy else 'tlsv1.2'}",
            "",
            f"listener {self.firmware_port} {HOST}",
        ]
        if os.geteuid() == 0:  # otherwise mosquitto drops to its own user and cannot read us
            lines.insert(0, "user root")
        return "\n".join(lines) + "\n"

    def _wait_until_listening(self, log_offset: int) -> None:
        # An open port alone may be another process's socket that won the race for it while our
        # mosquitto failed to bind and is still exiting: also wait for mosquitto's own word that
        # every listener is open ("... running"), and give up at its first error.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                break
            with self.log_path.open("rb") as log:
                log.seek(log_offset)
                said = log.read()
            if b"Error:" in said:
                break
            if b" running" in said and port_open(self.port) and port_open(self.firmware_port):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not start on port {self.port}:\n{self.log_tail()}")


def check_secret(value: str) -> None:
    """Reject access codes the password file cannot hold (it is line and colon based)."""
    if not value or any(char in value for char in ":\n\r"):
        raise ValueError("the access code must be non-empty, without ':' or line breaks")
