"""RTSP messages and authentication (RFC 2326 framing, RFC 2617/7616 Digest, Basic).

Small and bounded on purpose: the relay (`rtsp_relay.py`) parses only the control messages of
an RTSP session (a few hundred bytes each); media bytes are never looked at.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
import hashlib
import re
import secrets
from typing import Final

MAX_HEAD: Final = 16 * 1024
MAX_BODY: Final = 64 * 1024

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


class RtspProtocolError(Exception):
    """A message that is not RTSP, or larger than the bounds."""


@dataclass
class RtspMessage:
    """One RTSP request or response: start line, headers in order, body."""

    start: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """The first header of that name (case-insensitive)."""
        wanted = name.casefold()
        return next((value for key, value in self.headers if key.casefold() == wanted), None)

    def get_all(self, name: str) -> list[str]:
        """Every header of that name (case-insensitive), in order."""
        wanted = name.casefold()
        return [value for key, value in self.headers if key.casefold() == wanted]

    def remove(self, name: str) -> None:
        """Drop every header of that name."""
        wanted = name.casefold()
        self.headers = [(key, value) for key, value in self.headers if key.casefold() != wanted]

    def set(self, name: str, value: str) -> None:
        """Replace the header (or add it)."""
        self.remove(name)
        self.headers.append((name, value))

    @property
    def status(self) -> int | None:
        """The status code of a response (None for a request)."""
        parts = self.start.split(" ", 2)
        if len(parts) >= 2 and parts[0].startswith("RTSP/") and parts[1].isdigit():
            return int(parts[1])
        return None

    def encode(self) -> bytes:
        """The message on the wire (Content-Length follows the body)."""
        if self.body or self.get("Content-Length") is not None:
            self.set("Content-Length", str(len(self.body)))
        head = "".join(f"{key}: {value}\r\n" for key, value in self.headers)
        return f"{self.start}\r\n{head}\r\n".encode() + self.body


async def read_message(reader: asyncio.StreamReader, first: bytes = b"") -> RtspMessage | None:
    """Read one message (None at a clean end of stream). `first`: bytes already consumed."""
    try:
        head = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial and not first:
            return None
        raise RtspProtocolError("the stream ended inside a message") from err
    except asyncio.LimitOverrunError as err:
        raise RtspProtocolError("RTSP headers too large") from err
    if len(head) > MAX_HEAD:
        raise RtspProtocolError("RTSP headers too large")
    lines = head.decode("utf-8", "replace").split("\r\n")
    message = RtspMessage(lines[0])
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise RtspProtocolError("malformed RTSP header")
        message.headers.append((name.strip(), value.strip()))
    length_text = message.get("Content-Length") or "0"
    if not length_text.isdigit() or int(length_text) > MAX_BODY:
        raise RtspProtocolError("bad RTSP Content-Length")
    if length := int(length_text):
        message.body = await reader.readexactly(length)
    return message


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """`Digest realm="x", nonce="y"` -> ("digest", {"realm": "x", "nonce": "y"})."""
    scheme, _, rest = value.strip().partition(" ")
    params = {}
    for match in _PARAM.finditer(rest):
        raw = match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[match.group(1).casefold()] = raw
    return scheme.casefold(), params


def _md5(text: str) -> str:
    # MD5 is what RFC 2617 Digest (and the printers' live555 server) uses; not our choice.
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class Credentials:
    """Answers a server's 401 challenge, then authorises every later request.

    Digest (RFC 2617 / 7616, MD5 and MD5-sess, with or without qop=auth) is preferred over
    Basic when the server offers both.
    """

    def __init__(self, username: str, password: str) -> None:
        """Hold the credentials; nothing is computed until a challenge arrives."""
        self._username = username
        self._password = password
        self._scheme: str | None = None
        self._params: dict[str, str] = {}
        self._nc = 0

    def __repr__(self) -> str:  # the password stays out of reprs
        return f"Credentials(scheme={self._scheme!r})"

    @property
    def scheme(self) -> str | None:
        """ "digest", "basic", or None before any challenge."""
        return self._scheme

    def accept_challenge(self, challenges: list[str]) -> bool:
        """Take the best supported challenge of a 401; False if none is supported."""
        parsed = [parse_challenge(value) for value in challenges]
        for wanted in ("digest", "basic"):
            for scheme, params in parsed:
                if scheme != wanted:
                    continue
                algorithm = params.get("algorithm", "MD5").upper()
                if scheme == "digest" and (
                    "nonce" not in params or algorithm not in {"MD5", "MD5-SESS"}
                ):
                    continue
                self._scheme, self._params, self._nc = scheme, params, 0
                return True
        return False

    def authorization(self, method: str, uri: str) -> str | None:
        """The Authorization header for one request (None before a challenge)."""
        if self._scheme == "basic":
            token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            return f"Basic {token}"
        if self._scheme != "digest":
            return None
        params = self._params
        realm, nonce = params.get("realm", ""), params["nonce"]
        algorithm = params.get("algorithm", "MD5")
        ha1 = _md5(f"{self._username}:{realm}:{self._password}")
        cnonce = secrets.token_hex(8)
        if algorithm.upper() == "MD5-SESS":
            ha1 = _md5(f"{ha1}:{nonce}:{cnonce}")
        ha2 = _md5(f"{method}:{uri}")
        qops = [qop.strip() for qop in params.get("qop", "").split(",") if qop.strip()]
        fields = [
            f'username="{self._username}"',
            f'realm="{realm}"',
            f'nonce="{nonce}"',
            f'uri="{uri}"',
        ]
        if "auth" in qops:
            self._nc += 1
            nc = f"{self._nc:08x}"
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            if algorithm.upper() == "MD5-SESS":
                fields.append(f'cnonce="{cnonce}"')
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "algorithm" in params:
            fields.append(f"algorithm={algorithm}")
        if "opaque" in params:
            fields.append(f'opaque="{params["opaque"]}"')
        return "Digest " + ", ".join(fields)
