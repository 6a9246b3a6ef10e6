"""The OpenSSL error-queue guard (`printer/ssl_errors.py`); its effect is tested in test_ftps."""

from __future__ import annotations

import _ssl
import ssl
from typing import cast

import pytest

from custom_components.bambu_lan.printer import mqtt_frames, ssl_errors


def test_runs_the_step_and_finds_openssl() -> None:
    assert ssl_errors.run_clean(divmod, 7, 2) == (3, 1)
    assert ssl_errors.clear_error_queue.__name__ == "ERR_clear_error"


def test_without_an_exported_openssl_it_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ssl, "__file__", "/nonexistent/_ssl.so", raising=False)
    clear = ssl_errors._load()
    assert clear.__name__ == "<lambda>"
    clear()


class _DeadSocket:
    """A TLS socket whose peer is gone."""

    def send(self, data: bytes) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def recv(self, size: int) -> bytes:
        raise ConnectionResetError(104, "Connection reset by peer")


def test_mqtt_reads_and_writes_start_clean_and_leave_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before each read or write, and after one that failed (for the loop's other connections)."""
    cleared: list[str] = []
    monkeypatch.setattr(mqtt_frames, "clear_error_queue", lambda: cleared.append("clear"))
    framed = mqtt_frames.FramedSocket(cast(ssl.SSLSocket, _DeadSocket()))
    with pytest.raises(BrokenPipeError):
        framed.send(b"\xc0\x00")
    assert cleared == ["clear", "clear"]
    framed.pump(lambda topic, payload: None, lambda size: None, lambda: False)
    assert cleared == ["clear"] * 4
