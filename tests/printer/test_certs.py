"""The bundled Bambu Lab CA certificates are exactly the ones documented in certs/README.md."""

from __future__ import annotations

import hashlib
from pathlib import Path
import re
import ssl
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
import pytest

from custom_components.bambu_lan.printer import tls

CERTS = Path(tls.__file__).parent / "certs"
BUNDLE = "bambu-ca-bundle.pem"
ROW = re.compile(
    r"^\| `(?P<file>[^`]+\.pem)` \| (?P<subject>[^|]+) \| (?P<issuer>[^|]+) \| "
    r"(?P<start>\d{4}-\d\d-\d\d) \| (?P<end>\d{4}-\d\d-\d\d) \| (?P<key>\w+) \| "
    r"(?P<ku>[^|]+) \| `(?P<sha256>[0-9a-f]{64})` \|$"
)


def _table() -> dict[str, dict[str, str]]:
    rows = {}
    for line in (CERTS / "README.md").read_text().splitlines():
        if match := ROW.match(line):
            rows[match["file"]] = match.groupdict()
    return rows


def _load(path: Path) -> list[x509.Certificate]:
    with warnings.catch_warnings(action="error"):  # e.g. a malformed serial number
        return x509.load_pem_x509_certificates(path.read_bytes())


def _sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _rfc4514_forward(name: x509.Name) -> str:
    """The README writes names CN first, as OpenSSL prints them."""
    return ",".join(rdn.rfc4514_string() for rdn in reversed(list(name.rdns))).replace("\\,", "\\,")


TABLE = _table()


def test_table_parses() -> None:
    """The README holds one row per individual certificate file."""
    assert len(TABLE) == 8
    individual = {path.name for path in CERTS.glob("*.pem")} - {BUNDLE}
    assert set(TABLE) == individual


@pytest.mark.parametrize("name", sorted(TABLE))
def test_certificate_matches_its_row(name: str) -> None:
    """Each file is one CA certificate whose fingerprint and facts match the table."""
    row = TABLE[name]
    (cert,) = _load(CERTS / name)
    assert _sha256(cert) == row["sha256"]
    assert _rfc4514_forward(cert.subject) == row["subject"].strip()
    assert _rfc4514_forward(cert.issuer) == row["issuer"].strip()
    assert cert.not_valid_before_utc.date().isoformat() == row["start"]
    assert cert.not_valid_after_utc.date().isoformat() == row["end"]
    assert row["key"] == {"RSAPublicKey": "RSA", "EllipticCurvePublicKey": "EC"}.get(
        type(cert.public_key()).__name__.removeprefix("_"), row["key"]
    )
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    try:
        cert.extensions.get_extension_for_class(x509.KeyUsage)
        has_key_usage = True
    except x509.ExtensionNotFound:
        has_key_usage = False
    assert has_key_usage == (row["ku"].strip() == "yes")


def test_bundle_is_the_individual_files() -> None:
    """bambu-ca-bundle.pem holds exactly the certificates in the table."""
    bundled = sorted(_sha256(cert) for cert in _load(CERTS / BUNDLE))
    assert bundled == sorted(row["sha256"] for row in TABLE.values())


def test_issuers_sign_what_the_table_says() -> None:
    """Each certificate verifies under the bundled certificate the table names as issuer."""
    certs = {name: _load(CERTS / name)[0] for name in TABLE}
    roots = {cert.subject: cert for cert in certs.values() if cert.subject == cert.issuer}
    for cert in certs.values():
        cert.verify_directly_issued_by(roots[cert.issuer])


def test_legacy_root_has_no_key_usage() -> None:
    """The fact that forces VERIFY_X509_STRICT off (see tls.py)."""
    (legacy,) = _load(CERTS / "bbl-ca.pem")
    with pytest.raises(x509.ExtensionNotFound):
        legacy.extensions.get_extension_for_class(x509.KeyUsage)


def test_bundled_anchors_load_into_a_printer_context() -> None:
    """The real certs directory gives a context trusting exactly the 8 bundled CAs."""
    context = tls.create_printer_context("01P00A000000000")
    anchors = sorted(
        hashlib.sha256(der).hexdigest() for der in context.get_ca_certs(binary_form=True)
    )
    assert anchors == sorted(row["sha256"] for row in TABLE.values())
    assert context.verify_mode is ssl.CERT_REQUIRED
