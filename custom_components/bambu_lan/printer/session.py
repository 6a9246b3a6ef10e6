"""One MQTT session to one printer, driven from the asyncio event loop.

No Home Assistant imports: this module is library grade. paho-mqtt does the protocol; we own the
socket. The TCP connect and the verified TLS handshake are driven by the event loop
(`tls_connect.async_open_tls`) and paho is handed the finished socket, which is then driven with
`loop.add_reader` / `add_writer` and a `loop_misc` timer: no thread exists, nothing blocks the
loop, and closing the session aborts a connect at once, even against a peer that never answers.

The TLS context comes from `tls.py`, bound to the serial: the certificate must chain to a bundled
Bambu CA and carry CN = serial before paho sends a byte of MQTT (and so the access code).

This module holds the session's lifecycle (connect, close, reconnect with back-off, silence
watchdog, pushall rate limit, commands); `mqtt_wire.py` adapts paho to the loop, `acks.py`
matches acknowledgements to commands, and `session_api.py` holds what the owner sees (errors,
listener protocol, statistics; all of them importable from here too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from typing import Any, Final
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from .acks import PendingAcks
from .mqtt_frames import FramedSocket
from .mqtt_wire import KEEPALIVE, LoopDriver, VerifiedClient
from .session_api import (
    CannotConnect,
    CommandError,
    ConnectTimeout,
    InvalidAuth,
    SessionClosed,
    SessionError,
    SessionListener,
    SessionStats,
)
from .tls import (
    CertificateReport,
    PrinterTLSError,
    async_create_printer_context,
    async_open_tls,
    report_from_ssl,
)
from .values import decode_payload

# Also the names of session_api.py and mqtt_wire.py that this module always offered.
__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "KEEPALIVE",
    "MISC_INTERVAL",
    "PUSHALL_MIN_INTERVAL",
    "SILENCE_DROP",
    "SILENCE_NUDGE",
    "STABLE_LINK",
    "USERNAME",
    "WATCHDOG_INTERVAL",
    "CannotConnect",
    "CommandError",
    "ConnectTimeout",
    "InvalidAuth",
    "PrinterSession",
    "SessionClosed",
    "SessionError",
    "SessionListener",
    "SessionStats",
]

_LOGGER = logging.getLogger(__name__)

# The paho client under the name it had here.
_Client = VerifiedClient

USERNAME: Final = "bblp"
# Each of the TCP connect, the TLS handshake and the wait for CONNACK.
CONNECT_TIMEOUT: Final = 10.0
COMMAND_TIMEOUT: Final = 10.0
# Printers that stay connected but stop publishing exist (BambuStudio#2404): after this much
# silence we ask the printer to resume pushing, and after SILENCE_DROP we treat the link as dead.
SILENCE_NUDGE: Final = 60.0
SILENCE_DROP: Final = 90.0
WATCHDOG_INTERVAL: Final = 10.0
# paho's loop_misc sends keepalive pings and notices unanswered ones; with a 30 s keepalive a
# 5 s tick is precise enough and costs a fifth of Home Assistant MQTT's one-second tick.
MISC_INTERVAL: Final = 5.0
# P1P lags when asked for a full report too often; one pushall per five minutes at most.
PUSHALL_MIN_INTERVAL: Final = 300.0
BACKOFF_INITIAL: Final = 1.0
BACKOFF_MAX: Final = 60.0
# The back-off starts over only once a link has stayed up this long: a printer that hangs up
# right after every login is otherwise reconnected every second.
STABLE_LINK: Final = 60.0
_DEBUG_LOG_INTERVAL: Final = 60.0


class PrinterSession:
    """One verified MQTT connection to one printer, with reconnects and command acknowledgements."""

    def __init__(
        self,
        host: str,
        serial: str,
        access_code: str,
        listener: SessionListener,
        *,
        port: int = 8883,
        pinned_cert: str | None = None,
        request_state: bool = True,
    ) -> None:
        """Prepare a session; nothing connects until `async_connect`.

        request_state=False (the config flow's short validation connection) skips the automatic
        get_version + pushall after connecting, so the entry's own connection can ask instead.
        """
        self.host = host
        self.port = port
        self.serial = serial
        self._access_code = access_code
        self._pinned_cert = pinned_cert
        self._listener = listener
        self._request_state = request_state
        self._report_topic = f"device/{serial}/report"
        self._report_topic_bytes = self._report_topic.encode()
        self._request_topic = f"device/{serial}/request"
        self._loop = asyncio.get_running_loop()
        self._client: mqtt.Client | None = None
        self._wire = LoopDriver(self._loop, self._on_publish, self._on_oversized)
        self._opening: asyncio.Task[ssl.SSLSocket] | None = None
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._watchdog_timer: asyncio.TimerHandle | None = None
        self._pushall_timer: asyncio.TimerHandle | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._acks = PendingAcks(self._loop)
        self._last_pushall: float | None = None
        self._nudged = False
        self._closing = False
        self._keep_connected = False
        self._backoff = BACKOFF_INITIAL
        self._last_debug_log = 0.0
        self.connected = False
        self.certificate: CertificateReport | None = None
        self.stats = SessionStats()

    def __repr__(self) -> str:
        """Never show the access code."""
        return f"<PrinterSession {self.host}:{self.port} connected={self.connected}>"

    # --- connecting ------------------------------------------------------------------------------

    async def async_connect(self) -> CertificateReport:
        """Connect once; raise PrinterTLSError, InvalidAuth or CannotConnect on failure.

        `async_close` aborts it at any point (SessionClosed): nothing is left open.
        """
        if self._closing:
            raise SessionClosed(f"{self.host}:{self.port}: the session is closed")
        context = await async_create_printer_context(self.serial, pinned_cert=self._pinned_cert)
        client = VerifiedClient(
            CallbackAPIVersion.VERSION2,
            client_id=f"bambu_lan_{uuid.uuid4().hex[:12]}",
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        client.username_pw_set(USERNAME, self._access_code)
        # Never used to connect (the socket is verified already); should paho ever open one of
        # its own, it would verify with the same context.
        client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        connack: asyncio.Future[ReasonCode] = self._loop.create_future()
        self._connack = connack
        try:
            sock = await self._async_open(context)
            self._client = client
            self._wire.attach(client, MISC_INTERVAL)
            client.connect_over(FramedSocket(sock), self.host, self.port)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reason = await connack
        except BaseException as err:
            self._teardown_client()
            self.stats.last_error = _describe(err)
            if isinstance(err, TimeoutError):
                raise ConnectTimeout(
                    f"{self.host}:{self.port}: no MQTT answer within {CONNECT_TIMEOUT:.0f} s"
                ) from None
            raise
        finally:
            # The future holds paho's reason code, which carries a table of every code's name.
            self._connack = None
        if reason.is_failure:
            self._teardown_client()
            # CONNACK 4 (bad user name or password) and 5 (not authorised) both mean the code.
            if reason.value in (4, 5, 0x86, 0x87):
                self.stats.last_error = "invalid access code"
                raise InvalidAuth(f"{self.host}:{self.port}: the printer rejected the access code")
            self.stats.last_error = str(reason)
            raise CannotConnect(f"{self.host}:{self.port}: MQTT login refused ({reason})")
        self.certificate = report_from_ssl(sock)
        self._after_connect(client)
        return self.certificate

    async def _async_open(self, context: ssl.SSLContext) -> ssl.SSLSocket:
        """The verified TLS socket, opened in a task of its own that `async_close` cancels."""
        opening = self._loop.create_task(
            async_open_tls(context, self.host, self.port, CONNECT_TIMEOUT),
            name=f"bambu_lan connect {self.host}",
        )
        self._opening = opening
        try:
            sock = await opening
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and not task.cancelling():  # async_close cancelled it, not ours
                raise SessionClosed(f"{self.host}:{self.port}: closed while connecting") from None
            raise
        finally:
            self._opening = None
        if self._closing:  # closed just as the handshake completed: send nothing
            sock.close()
            raise SessionClosed(f"{self.host}:{self.port}: closed while connecting")
        return sock

    def _after_connect(self, client: mqtt.Client) -> None:
        self.connected = True
        self.stats.connects += 1
        self.stats.connected_since = time.monotonic()
        self.stats.last_message_monotonic = time.monotonic()
        self._nudged = False
        client.subscribe(self._report_topic)
        if self._request_state:
            self._publish({"info": {"sequence_id": self._next_seq(), "command": "get_version"}})
            self._request_pushall()
        self._schedule_watchdog()

    def _request_pushall(self) -> None:
        """Ask for the full state, but never more often than the printer tolerates."""
        now = time.monotonic()
        if self._pushall_timer is not None:
            return
        if self._last_pushall is not None and now - self._last_pushall < PUSHALL_MIN_INTERVAL:
            self._pushall_timer = self._loop.call_at(
                self._loop.time() + PUSHALL_MIN_INTERVAL - (now - self._last_pushall),
                self._deferred_pushall,
            )
            return
        self._last_pushall = now
        self._publish(
            {
                "pushing": {
                    "sequence_id": self._next_seq(),
                    "command": "pushall",
                    "version": 1,
                    "push_target": 1,
                }
            }
        )

    def request_full_state(self) -> bool:
        """Ask for a full report (pushall), at once or when the rate limit allows.

        Returns True when it was sent now, False when it waits for the rate limit. Only while
        connected (a reconnect asks by itself).
        """
        self._request_pushall()
        return self._pushall_timer is None

    def _deferred_pushall(self) -> None:
        self._pushall_timer = None
        if self.connected:
            self._request_pushall()

    def start_reconnecting(self) -> None:
        """Keep the session connected from now on: reconnect whenever the link drops.

        Not called for the config flow's validation session, which must not outlive its check.
        """
        self._keep_connected = True
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if (
            self._keep_connected
            and self._reconnect_task is None
            and not self.connected
            and not self._closing
        ):
            self._reconnect_task = self._loop.create_task(
                self._reconnect_loop(), name=f"bambu_lan reconnect {self.host}"
            )

    async def _reconnect_loop(self) -> None:
        try:
            while not self._closing:
                # Full jitter keeps a farm of printers from reconnecting in lockstep.
                await asyncio.sleep(self._backoff * (0.5 + random.random() / 2))  # noqa: S311
                # Doubled after a success too: only a link that stays up resets it.
                self._backoff = min(self._backoff * 2, BACKOFF_MAX)
                try:
                    await self.async_connect()
                except (SessionError, PrinterTLSError) as err:
                    if not self._listener.on_reconnect_failed(err):
                        return
                    continue
                self._listener.on_connected(self.certificate)  # type: ignore[arg-type]
                return
        finally:
            self._reconnect_task = None

    async def async_close(self) -> None:
        """Disconnect for good, also in the middle of a connect: no socket, timer or task is
        left behind (and there never is a thread)."""
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        if self._opening is not None:
            # The connect awaiting it raises SessionClosed; the socket is closed once it is done.
            self._opening.cancel()
            await asyncio.wait([self._opening])
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(
                SessionClosed(f"{self.host}:{self.port}: closed while logging in")
            )
        client = self._client
        if client is not None and self.connected:
            client.disconnect()
            client.loop_write()
        self._teardown_client()
        self.connected = False
        self._acks.fail_all()

    def _teardown_client(self) -> None:
        for timer in (self._watchdog_timer, self._pushall_timer):
            if timer is not None:
                timer.cancel()
        self._watchdog_timer = self._pushall_timer = None
        self._wire.detach()
        client = self._client
        if client is not None:
            self._client = None
            client.on_disconnect = None
            sock = client.socket()
            if sock is not None:
                sock.close()

    def _connection_lost(self, error: Exception | None) -> None:
        if not self.connected:
            return
        self.connected = False
        if self._closing:
            return
        since = self.stats.connected_since
        if since is not None and time.monotonic() - since >= STABLE_LINK:
            self._backoff = BACKOFF_INITIAL
        self.stats.disconnects += 1
        if error is not None:
            self.stats.last_error = _describe(error)
        self._teardown_client()
        self._acks.fail_all()
        self._listener.on_disconnected(error)
        self._schedule_reconnect()

    # --- paho callbacks (all on the loop: paho runs nothing of its own) ---------------------

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(CannotConnect(f"connection closed before login ({reason})"))
            return
        self._connection_lost(None if self._closing else ConnectionError(str(reason)))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Only a PUBLISH at QoS 1 or 2 comes through paho (the subscription asks for QoS 0).
        self._on_publish(msg.topic.encode(), msg.payload)

    def _on_publish(self, topic: bytes, payload: bytes) -> None:
        """A report (or anything else a publisher sent us) arrived."""
        self.stats.last_message_monotonic = time.monotonic()
        self._nudged = False
        if topic != self._report_topic_bytes:
            self._drop(f"topic {topic.decode(errors='replace')} is not this printer's")
            return
        message = decode_payload(payload)
        if message is None:
            self._drop(f"undecodable payload of {len(payload)} bytes")
            return
        self.stats.messages += 1
        if self._acks:
            self._acks.match(message)
        self._listener.on_report(message)

    def _on_oversized(self, size: int) -> None:
        self.stats.last_message_monotonic = time.monotonic()
        self._drop(f"packet of {size} bytes skipped (too large)")

    def _drop(self, reason: str) -> None:
        self.stats.dropped_messages += 1
        now = time.monotonic()
        if now - self._last_debug_log >= _DEBUG_LOG_INTERVAL:
            self._last_debug_log = now
            _LOGGER.debug(
                "Dropped a message from %s: %s (at most one log a minute)", self.host, reason
            )

    # --- silence watchdog ----------------------------------------------------------------------

    def _schedule_watchdog(self) -> None:
        self._watchdog_timer = self._loop.call_later(WATCHDOG_INTERVAL, self._watchdog)

    def _watchdog(self) -> None:
        self._watchdog_timer = None
        if not self.connected or self.stats.last_message_monotonic is None:
            return
        silence = time.monotonic() - self.stats.last_message_monotonic
        if silence >= SILENCE_DROP:
            _LOGGER.debug("%s silent for %.0f s; reconnecting", self.host, silence)
            self._connection_lost(TimeoutError(f"no report for {silence:.0f} s"))
            return
        if silence >= SILENCE_NUDGE and not self._nudged:
            self._nudged = True
            self._publish({"pushing": {"sequence_id": "0", "command": "start"}})
        self._schedule_watchdog()

    # --- commands --------------------------------------------------------------------------------

    def _next_seq(self) -> str:
        return self._acks.next_seq()

    def _publish(self, payload: dict[str, Any]) -> None:
        assert self._client is not None
        self._client.publish(self._request_topic, json.dumps(payload, separators=(",", ":")))

    async def async_command(
        self,
        kind: str,
        command: str,
        params: dict[str, Any] | None = None,
        *,
        ack_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Publish a command and wait for the printer's acknowledgement (same sequence_id)."""
        if not self.connected or self._client is None:
            raise CommandError(command, "not_connected")
        sequence = self._next_seq()
        future = self._acks.expect(kind, sequence, command)
        try:
            self._publish({kind: {"sequence_id": sequence, "command": command, **(params or {})}})
            async with asyncio.timeout(COMMAND_TIMEOUT if ack_timeout is None else ack_timeout):
                ack = await future
        except TimeoutError:
            raise CommandError(command, "timeout") from None
        finally:
            self._acks.discard(kind, sequence)
        result = str(ack.get("result", "success")).lower()
        if result != "success":
            raise CommandError(command, "failed", str(ack.get("reason") or ""))
        return ack


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
