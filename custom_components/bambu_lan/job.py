"""The current job's details, read from its 3MF on the printer when a print starts.

Fetched once per job over FTPS (bounded in size), parsed in the executor, kept in memory only
(nothing is written to disk), and replaced when the next job starts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from homeassistant.core import callback

from .printer.ftps import FtpsError
from .printer.threemf import (
    MAX_FILE_BYTES,
    JobDetails,
    ThreeMFError,
    parse_3mf,
    plate_from_gcode_file,
)

if TYPE_CHECKING:
    from .coordinator import BambuCoordinator
    from .printer.state import PrinterState

_LOGGER = logging.getLogger(__name__)

ACTIVE_STATES: Final = frozenset({"PREPARE", "RUNNING", "PAUSE"})


def candidate_paths(job_name: str | None, file_name: str | None) -> list[str]:
    """Where the job's 3MF may be: the reported file, else by job name at the root or cache."""
    paths: list[str] = []
    if file_name and file_name.lower().endswith(".3mf"):
        paths.append("/" + file_name.lstrip("/"))
    if job_name:
        stem = job_name.removesuffix(".3mf").removesuffix(".gcode")
        for folder in ("", "/cache"):
            paths += [f"{folder}/{stem}.gcode.3mf", f"{folder}/{stem}.3mf"]
    return list(dict.fromkeys(paths))


class JobTracker:
    """Keeps the details of the job the printer is running (or ran last)."""

    def __init__(self, coordinator: BambuCoordinator) -> None:
        """Nothing is fetched until a print starts."""
        self._coordinator = coordinator
        self.key: tuple[str | None, str | None] | None = None
        self.details: JobDetails | None = None
        self.path: str | None = None
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def running(state: PrinterState) -> tuple[str | None, str | None] | None:
        """The job the printer works on (its name and file), None between jobs; reads only."""
        if state.gcode_state not in ACTIVE_STATES:
            return None
        return (state.job_name, state.file_name)

    @callback
    def follow(self, key: tuple[str | None, str | None] | None) -> None:
        """The printer works on `key` (see `running`): a new job starts a fetch of its 3MF."""
        if key is None or key == self.key:
            return
        self.key = key
        self.details = self.path = self.error = None
        if self._task is not None:
            self._task.cancel()
        self._task = self._coordinator.config_entry.async_create_background_task(
            self._coordinator.hass, self._async_fetch(*key), "bambu_lan job 3mf"
        )

    async def _async_fetch(self, job_name: str | None, file_name: str | None) -> None:
        ftps = self._coordinator.ftps
        for path in candidate_paths(job_name, file_name):
            try:
                data = await ftps.async_download(path, MAX_FILE_BYTES)
            except FtpsError as err:
                self.error = str(err)
                continue
            try:
                details = await self._coordinator.hass.async_add_executor_job(
                    parse_3mf, data, plate_from_gcode_file(file_name)
                )
            except ThreeMFError as err:
                _LOGGER.warning("Cannot read the job file %s: %s", path, err)
                self.error = str(err)
                break
            self.details, self.path, self.error = details, path, None
            break
        else:
            _LOGGER.debug("No 3MF found for job %s (%s): %s", job_name, file_name, self.error)
        self._coordinator.async_update_listeners()
