"""The OpenSSL error-queue guard (`printer/ssl_errors.py`); its effect is tested in test_ftps."""

from __future__ import annotations

import _ssl

import pytest

from custom_components.bambu_lan.printer import ssl_errors


def test_runs_the_step_and_finds_openssl() -> None:
    assert ssl_errors.run_clean(divmod, 7, 2) == (3, 1)
    assert ssl_errors.clear_error_queue.__name__ == "ERR_clear_error"


def test_without_an_exported_openssl_it_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ssl, "__file__", "/nonexistent/_ssl.so", raising=False)
    clear = ssl_errors._load()
    assert clear.__name__ == "<lambda>"
    clear()
