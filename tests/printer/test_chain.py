"""Reading a presented chain offline: key descriptions, path building, failure details."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
import pytest

from custom_components.bambu_lan.printer import chain
from custom_components.bambu_lan.printer.tls_errors import TLSErrorKind

SERIAL = "01P00A451200123"


def _self_signed(key: object, common_name: str, *, days: int = 30) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
    )
    algorithm = (
        None
        if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else (hashes.SHA256())
    )
    return builder.sign(key, algorithm)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (ed25519.Ed25519PrivateKey.generate(), ("Ed25519", 256)),
        (ed448.Ed448PrivateKey.generate(), ("Ed448", 456)),
        (ec.generate_private_key(ec.SECP384R1()), ("EC", 384)),
    ],
)
def test_key_description(key: object, expected: tuple[str, int]) -> None:
    """Reports name the key type and size for every key a certificate can carry."""
    assert chain._key_info(_self_signed(key, SERIAL)) == expected


def test_path_stops_at_an_issuer_that_did_not_sign() -> None:
    """A CA with the right subject but another key is not taken as the issuer."""
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    impostor_ca = _self_signed(ec.generate_private_key(ec.SECP256R1()), "Same Name CA")
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, SERIAL)])
    now = datetime.now(UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(impostor_ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    assert not chain._signed_by(leaf, impostor_ca)
    assert chain._complete_path([leaf], (impostor_ca,)) == [leaf]
    # With no issuer in the path, the description falls back to the leaf's issuer name.
    assert chain._describe_path([leaf]) == "Same Name CA"


def test_plain_context_anchors_are_read_from_the_context() -> None:
    """A context not built by tls.py has its anchors read back (here: none)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert chain._context_anchors(context) == ()


def test_failure_details_without_a_chain() -> None:
    """A failure with no presented certificate still yields the error's own details."""
    details = chain._verification_failure(
        TLSErrorKind.EXPIRED,
        [],
        context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        serial=SERIAL,
        openssl_code=10,
        openssl_message="certificate has expired",
    )
    assert details["serial"] == SERIAL
    assert details["openssl_code"] == 10
    assert "certificate_cn" not in details
    assert chain._leaf_details(None, SERIAL) == {}


def test_out_of_window_falls_back_to_the_leaf() -> None:
    """When no certificate of the path is outside its window, the leaf is named."""
    leaf = _self_signed(ec.generate_private_key(ec.SECP256R1()), SERIAL)
    now = datetime.now(UTC)
    assert chain._out_of_window([leaf], TLSErrorKind.EXPIRED, now) is leaf
    assert chain._out_of_window([leaf], TLSErrorKind.NOT_YET_VALID, now) is leaf
    assert chain._out_of_window([], TLSErrorKind.EXPIRED, now) is None
    late = now + timedelta(days=400)
    assert chain._out_of_window([leaf], TLSErrorKind.EXPIRED, late) is leaf
