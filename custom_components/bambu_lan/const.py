"""Constants shared by the integration's modules."""

from typing import Final

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

MQTT_PORT: Final = 8883

# Nozzle ids in `device.extruder.info` (and the `T` of G-code): 0 is the right nozzle, 1 the left.
RIGHT_NOZZLE: Final = 0
LEFT_NOZZLE: Final = 1
