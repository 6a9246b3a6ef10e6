"""Certificate health sensors: diagnostic entities on the printer's device.

They describe the live connection's certificate (taken after every verified (re)connect, no extra
connection) and stay available while the printer is disconnected: that is exactly when their
state (unreachable, untrusted, ...) matters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, override

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.util import dt as dt_util

from .coordinator import BambuCoordinator
from .entity import BambuEntity
from .printer.health import CertificateHealth, days_left
from .printer.tls import CertificateReport


@dataclass(frozen=True, kw_only=True)
class CertificateSensorEntityDescription(SensorEntityDescription):
    """A fact about the printer's certificate, read from the coordinator."""

    value_fn: Callable[[BambuCoordinator], str | datetime | None]
    attrs_fn: Callable[[BambuCoordinator], dict[str, Any]] | None = None


def _health(coordinator: BambuCoordinator) -> str | None:
    health = coordinator.certificate_health()
    return health.value if health is not None else None


def _health_attributes(coordinator: BambuCoordinator) -> dict[str, Any]:
    """The key facts of the last verified certificate, and of the failure if there is one."""
    attributes: dict[str, Any] = {}
    report = coordinator.certificate
    if report is not None:
        attributes |= {
            "issuer": report.issuer_path,
            "subject": report.subject_cn,
            "not_after": report.not_after.isoformat(),
            "days_left": days_left(report.not_after, dt_util.utcnow()),
            "fingerprint": report.sha256,
            "tls_version": report.tls_version,
        }
    if (error := coordinator.tls_error) is not None:
        attributes |= {
            "failure": error.kind.value,
            "failure_message": str(error),
            "presented_fingerprint": error.fingerprint,
        }
    return attributes


def _from_report(
    read: Callable[[CertificateReport], str | datetime],
) -> Callable[[BambuCoordinator], str | datetime | None]:
    def value(coordinator: BambuCoordinator) -> str | datetime | None:
        report = coordinator.certificate
        return read(report) if report is not None else None

    return value


CERTIFICATE_SENSORS: Final[tuple[CertificateSensorEntityDescription, ...]] = (
    CertificateSensorEntityDescription(
        key="certificate",
        translation_key="certificate",
        device_class=SensorDeviceClass.ENUM,
        options=[health.value for health in CertificateHealth],
        value_fn=_health,
        attrs_fn=_health_attributes,
    ),
    CertificateSensorEntityDescription(
        key="certificate_expires",
        translation_key="certificate_expires",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_from_report(lambda report: report.not_after),
    ),
    CertificateSensorEntityDescription(
        key="certificate_issuer",
        translation_key="certificate_issuer",
        value_fn=_from_report(lambda report: report.issuer_path),
    ),
    CertificateSensorEntityDescription(
        key="certificate_fingerprint",
        translation_key="certificate_fingerprint",
        entity_registry_enabled_default=False,
        value_fn=_from_report(lambda report: report.sha256),
    ),
    CertificateSensorEntityDescription(
        key="certificate_tls_version",
        translation_key="certificate_tls_version",
        entity_registry_enabled_default=False,
        value_fn=_from_report(lambda report: report.tls_version),
    ),
    CertificateSensorEntityDescription(
        key="certificate_cipher",
        translation_key="certificate_cipher",
        entity_registry_enabled_default=False,
        value_fn=_from_report(lambda report: report.cipher),
    ),
)


class CertificateSensor(BambuEntity, SensorEntity):
    """One certificate fact; available even while the printer is not."""

    entity_description: CertificateSensorEntityDescription
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    @property
    @override
    def available(self) -> bool:
        return True

    @override
    def _refresh(self) -> tuple[Any, ...]:
        value = self.entity_description.value_fn(self.coordinator)
        self._attr_native_value = value
        attrs_fn = self.entity_description.attrs_fn
        if attrs_fn is None:
            return (value,)
        attributes = attrs_fn(self.coordinator)
        self._attr_extra_state_attributes = attributes
        return (value, attributes)


def certificate_entities(coordinator: BambuCoordinator) -> list[SensorEntity]:
    """The certificate health sensors of one printer."""
    return [CertificateSensor(coordinator, description) for description in CERTIFICATE_SENSORS]
