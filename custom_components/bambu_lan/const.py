"""Constants shared by the integration's modules."""

from collections.abc import Mapping
from typing import Any, Final

DOMAIN: Final = "bambu_lan"
MANUFACTURER: Final = "Bambu Lab"

# Config entry data keys (the config flow's form fields use the same names).
CONF_HOST: Final = "host"
CONF_SERIAL: Final = "serial"
CONF_ACCESS_CODE: Final = "access_code"
# SHA-256 (hex) of the printer's leaf certificate seen when the entry was created or last accepted.
CONF_CERT_FINGERPRINT: Final = "cert_fingerprint"
# PEM of one explicitly pinned leaf certificate (only for a printer whose issuer we do not ship).
CONF_PINNED_CERT: Final = "pinned_cert"

# True once the printer's chain verified against the bundled Bambu Lab CAs (the entry was created
# or reconfigured without a pin). Such a printer is never downgraded to a pin: a certificate from
# another issuer is then an impostor until the user removes and re-adds the printer.
CONF_CA_VERIFIED: Final = "ca_verified"

MQTT_PORT: Final = 8883

# Nozzle ids in `device.extruder.info` (and the `T` of G-code): 0 is the right nozzle, 1 the left.
RIGHT_NOZZLE: Final = 0
LEFT_NOZZLE: Final = 1


def is_ca_verified(data: Mapping[str, Any], options: Mapping[str, Any]) -> bool:
    """Whether a bundled CA has proven this printer's identity (see CONF_CA_VERIFIED).

    An entry not migrated yet counts as proven unless it is pinned: before 1.2 an entry without
    a pin could only be created once its chain verified against the bundled CAs.
    """
    return bool(data.get(CONF_CA_VERIFIED, not options.get(CONF_PINNED_CERT)))
