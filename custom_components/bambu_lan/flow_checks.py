"""Network checks of a config flow that closing the flow's dialog stops at once.

Home Assistant does not cancel a step that is still running when its flow is removed: against an
address that never answers, a check would hold its connection until its own timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import AbortFlow

from .const import DOMAIN


class FlowChecks:
    """The checks one flow is running, so that removing the flow can cancel them."""

    def __init__(self) -> None:
        """Nothing running yet."""
        self._tasks: set[asyncio.Task[Any]] = set()

    async def async_run[T](self, hass: HomeAssistant, check: Coroutine[Any, Any, T]) -> T:
        """Run `check`; if the flow is removed meanwhile, abort the step with flow_closed."""
        task = hass.async_create_task(check, f"{DOMAIN} flow check", eager_start=True)
        self._tasks.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            step = asyncio.current_task()
            if step is not None and step.cancelling():  # the step itself is being cancelled
                raise
            raise AbortFlow("flow_closed") from None
        finally:
            self._tasks.discard(task)

    def cancel_all(self) -> None:
        """The flow was closed or finished: stop any check still connecting."""
        for task in self._tasks:
            task.cancel()
