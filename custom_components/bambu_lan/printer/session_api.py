"""What a printer session's owner sees: its errors, the listener it calls, its statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .tls import CertificateReport


class SessionError(Exception):
    """Base class of the session's errors (messages never contain the access code)."""


class CannotConnect(SessionError):
    """The MQTT login did not complete for a reason other than a rejected access code."""


class ConnectTimeout(CannotConnect):
    """The TLS connection opened but the printer did not answer the MQTT login in time."""


class SessionClosed(CannotConnect):
    """The session was closed (unload, shutdown) while it was connecting."""


class InvalidAuth(SessionError):
    """The printer rejected the access code (CONNACK 5, not authorised)."""


class CommandError(SessionError):
    """A command was refused by the printer, timed out, or could not be sent."""

    def __init__(self, command: str, kind: str, reason: str = "") -> None:
        """Describe the failure: kind is one of failed, timeout, not_connected."""
        super().__init__(f"{command}: {kind}{f' ({reason})' if reason else ''}")
        self.command = command
        self.kind = kind
        self.reason = reason


class SessionListener(Protocol):
    """What the session tells its owner (all called on the event loop)."""

    def on_report(self, message: dict[str, Any]) -> None:
        """A decoded report from the printer's report topic."""

    def on_connected(self, certificate: CertificateReport) -> None:
        """The session is (re)connected and logged in; the certificate is the live one."""

    def on_disconnected(self, error: Exception | None) -> None:
        """The link dropped (or a reconnect attempt failed with error)."""

    def on_reconnect_failed(self, error: Exception) -> bool:
        """A reconnect attempt failed; return False to stop retrying (e.g. bad access code)."""


@dataclass
class SessionStats:
    """Counters for diagnostics."""

    connects: int = 0
    disconnects: int = 0
    messages: int = 0
    dropped_messages: int = 0
    last_error: str | None = None
    last_message_monotonic: float | None = None
    connected_since: float | None = None
