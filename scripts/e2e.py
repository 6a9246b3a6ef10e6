"""Browser test: the real Home Assistant web UI, headless Chromium, and a virtual printer.

Run through `scripts/e2e` (it uses the project's venv). Starts a virtual X1C on
127.0.0.1:8883 (the port the integration dials) and Home Assistant on a free loopback port with
a copy of the integration that also trusts the virtual printer's test CAs (like scripts/develop;
the production code has no switch for it), creates the first user through the onboarding API,
then drives the UI with Playwright in Debian's Chromium (no browser download):

1. add the integration with an impostor's certificate (refused, the access code is not sent);
2. with a wrong access code (refused);
3. with the right one (entry created);
4. open the device page;
5. download diagnostics (certificate chain present, secrets redacted);
6. open the repair raised by a changed certificate and follow it (accept the certificate).

Screenshots go to the folder it prints (`--out`, default build/e2e); `--readme` also writes the
README's pictures (docs/screenshots/*.png, each under 150 KB). Exits non-zero on any failure,
with a `failure.png` and the end of Home Assistant's log.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
import io
import json
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeassistant.components.http.config import HTTP_STORAGE_SCHEMA  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import (  # noqa: E402
    Locator,
    Page,
    expect,
    sync_playwright,
)

from tests.virtual_printer.pki import TestCAs, generate_cas, issue_server  # noqa: E402
from tests.virtual_printer.printer import VirtualPrinter  # noqa: E402

COMPONENT = ROOT / "custom_components" / "bambu_lan"
README_SHOTS = ROOT / "docs" / "screenshots"
README_MAX_BYTES = 150_000
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PRINTER_PORT = 8883  # the integration always dials 8883
SERIAL = "00M09A350100001"
ACCESS_CODE = "12345678"
WRONG_CODE = "87654321"
USER, PASSWORD = "e2e", "e2e-password-1"
START_TIMEOUT = float(os.environ.get("BAMBU_E2E_START_TIMEOUT", "600"))
UI_TIMEOUT_MS = 60_000


class E2EError(Exception):
    """A scenario did not do what it should."""


def _say(text: str) -> None:
    print(f"==> {text}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# --- Home Assistant ------------------------------------------------------------------------------


def _build_config(config: Path, port: int, ca_dir: Path) -> None:
    """configuration.yaml and custom_components/bambu_lan as symlinks, certs + test CAs."""
    config.mkdir(parents=True)
    # Onboarding's location step would set up weather and radio integrations that need the
    # internet: mark it (and analytics) done; the user is still created through the API.
    (config / ".storage").mkdir()
    (config / ".storage" / "onboarding").write_text(
        json.dumps(
            {
                "version": 4,
                "minor_version": 1,
                "key": "onboarding",
                "data": {"done": ["core_config", "analytics"]},
            }
        )
    )
    # The HTTP settings live in storage since 2026.10 (YAML would raise a repair and a
    # confirmation dialog): store them as the confirmed ("stable") configuration.
    stable = dict(HTTP_STORAGE_SCHEMA({"server_host": ["127.0.0.1"], "server_port": port}))
    stable |= {"created_at": "2026-01-01T00:00:00+00:00", "error": None, "error_message": None}
    (config / ".storage" / "http").write_text(
        json.dumps(
            {
                "version": 2,
                "minor_version": 2,
                "key": "http",
                "data": {"stable": stable, "pending": None, "yaml_migration_done": True},
            }
        )
    )
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: Home\n  country: DE\n  language: en\n  currency: EUR\n"
        "  time_zone: UTC\n  unit_system: metric\n  latitude: 52.5\n  longitude: 13.4\n"
        "  elevation: 30\n"
        "frontend:\nconfig:\nhistory:\nlogbook:\n"
        "logger:\n  default: warning\n  logs:\n    custom_components.bambu_lan: debug\n"
    )
    target = config / "custom_components" / "bambu_lan"
    (target / "printer" / "certs").mkdir(parents=True)
    for entry in [*COMPONENT.iterdir(), *(COMPONENT / "printer").iterdir()]:
        if entry.name in {"printer", "certs", "__pycache__"}:
            continue
        (target / entry.relative_to(COMPONENT)).symlink_to(entry)
    for cert in (COMPONENT / "printer" / "certs").iterdir():
        (target / "printer" / "certs" / cert.name).symlink_to(cert)
    for pem in ca_dir.glob("*.pem"):
        shutil.copy(pem, target / "printer" / "certs" / pem.name)


class HomeAssistantProcess:
    """`hass -c CONFIG` in a subprocess, plus the few REST calls the scenarios need."""

    def __init__(self, config: Path, port: int) -> None:
        """Remember where; start() runs it."""
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.token = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start Home Assistant and wait until its HTTP API answers."""
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        log = (self.config / "hass.out").open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - our venv's hass, our arguments
            [str(Path(sys.executable).parent / "hass"), "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise E2EError(f"Home Assistant exited ({self._process.returncode})")
            with suppress(OSError, urllib.error.URLError):
                status, _ = self.request("GET", "/api/onboarding", auth=False)
                if status == 200:
                    return
            time.sleep(1)
        raise E2EError(f"Home Assistant did not answer within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """Stop Home Assistant (SIGTERM, then SIGKILL after 60 s)."""
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def log_tail(self, lines: int = 60) -> str:
        """The end of Home Assistant's own log."""
        path = self.config / "home-assistant.log"
        if not path.exists():
            path = self.config / "hass.out"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def request(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, form: bool = False
    ) -> tuple[int, Any]:
        """One HTTP request to Home Assistant: (status, decoded JSON or text)."""
        headers = {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(  # noqa: S310 - a loopback http URL we built
            self.url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as err:
            raw, status = err.read().decode(), err.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def onboard(self) -> None:
        """Create the first user and finish onboarding through its API (no clicking)."""
        client_id = f"{self.url}/"
        status, user = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": client_id,
                "name": "E2E",
                "username": USER,
                "password": PASSWORD,
                "language": "en",
            },
            auth=False,
        )
        if status != 200:
            raise E2EError(f"onboarding: creating the user failed: {status} {user}")
        status, tokens = self.request(
            "POST",
            "/auth/token",
            {"grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id},
            auth=False,
            form=True,
        )
        if status != 200:
            raise E2EError(f"onboarding: token exchange failed: {status} {tokens}")
        self.token = tokens["access_token"]
        status, answer = self.request(
            "POST",
            "/api/onboarding/integration",
            {"client_id": client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
        )
        if status != 200:
            raise E2EError(f"onboarding: the last step failed: {status} {answer}")

    def wait_running(self) -> None:
        """Wait until Home Assistant has finished starting (the frontend waits for it too)."""

        def running() -> bool:
            status, config = self.request("GET", "/api/config")
            return status == 200 and config.get("state") == "RUNNING"

        _wait(running, "Home Assistant to finish starting", timeout=START_TIMEOUT)

    def state(self, entity_id: str) -> str:
        """An entity's state ("" when it does not exist)."""
        status, answer = self.request("GET", f"/api/states/{entity_id}")
        return str(answer["state"]) if status == 200 else ""

    def entity_ids(self, suffix: str) -> list[str]:
        """Entity ids ending in `suffix`."""
        _, states = self.request("GET", "/api/states")
        return [s["entity_id"] for s in states if str(s["entity_id"]).endswith(suffix)]


# --- the browser ---------------------------------------------------------------------------------


class Shots:
    """Screenshots: numbered files in the output folder; README copies when asked."""

    def __init__(self, out: Path, readme: bool) -> None:
        """Start a fresh output folder."""
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        self.out = out
        self.readme = readme
        self.taken: list[Path] = []

    def take(self, target: Page | Locator, name: str, readme_name: str | None = None) -> None:
        """Save `target` as NN-name.png; with --readme also as a small docs/screenshots PNG."""
        path = self.out / f"{len(self.taken) + 1:02d}-{name}.png"
        target.screenshot(path=str(path), animations="disabled")
        self.taken.append(path)
        if self.readme and readme_name:
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            _small_png(path, README_SHOTS / f"{readme_name}.png")


def _small_png(source: Path, target: Path) -> None:
    """A palette PNG (UI screenshots have few colours) that fits the README's size budget."""
    image = Image.open(source).convert("RGB")
    for colors in (256, 128, 64):
        buffer = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(
            buffer, "PNG", optimize=True
        )
        if buffer.tell() < README_MAX_BYTES:
            target.write_bytes(buffer.getvalue())
            return
        image = image.resize((image.width * 9 // 10, image.height * 9 // 10), Image.LANCZOS)
    raise E2EError(f"{target.name}: cannot get under {README_MAX_BYTES} bytes")


def _dialog(page: Page) -> Locator:
    return page.locator("dialog-data-entry-flow")


def _log_in(page: Page, ha: HomeAssistantProcess) -> None:
    page.goto(ha.url)
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("log in", re.IGNORECASE)).click()
    expect(page.locator("home-assistant-main")).to_be_attached(timeout=UI_TIMEOUT_MS)


def _open_add_flow(page: Page, ha: HomeAssistantProcess) -> Locator:
    page.goto(f"{ha.url}/config/integrations/dashboard/add?domain=bambu_lan")
    # A link that starts a flow asks first.
    page.get_by_text("Do you want to set up Bambu Lab LAN?").wait_for(timeout=UI_TIMEOUT_MS)
    page.get_by_role("button", name="OK").click()
    dialog = _dialog(page)
    expect(dialog.get_by_text("Add a Bambu Lab printer")).to_be_visible(timeout=UI_TIMEOUT_MS)
    return dialog


def _fields(dialog: Locator) -> Locator:
    """The form's text inputs, in the order of the schema (host, serial, access code)."""
    return dialog.locator("input:not([type=checkbox])")


def _fill(dialog: Locator, host: str, serial: str, code: str) -> None:
    fields = _fields(dialog)
    for index, value in enumerate((host, serial, code)):
        fields.nth(index).fill(value)


def _submit(dialog: Locator) -> None:
    dialog.get_by_role("button", name="Submit").click()


def run_scenarios(
    page: Page, ha: HomeAssistantProcess, printer: VirtualPrinter, cas: TestCAs, shots: Shots
) -> None:
    """The scenarios of the module docstring, in order; raise on the first that fails."""
    _say("logging in")
    _log_in(page, ha)

    _say("scenario 1: an impostor's certificate (unknown CA, the right serial as its CN)")
    genuine = printer.identity
    printer.serve(issue_server("unknown_ca", printer.serial, cas))
    dialog = _open_add_flow(page, ha)
    shots.take(page, "add-dialog", readme_name="add-dialog")
    _fill(dialog, printer.host, printer.serial, ACCESS_CODE)
    _submit(dialog)
    expect(dialog.get_by_text("not issued by a Bambu Lab CA")).to_be_visible(timeout=UI_TIMEOUT_MS)
    shots.take(page, "flow-error-impostor", readme_name="flow-error")
    if ha.entity_ids("_certificate"):
        raise E2EError("an entry was created for the impostor")
    printer.serve(genuine)

    _say("scenario 2: a wrong access code")
    dialog = _open_add_flow(page, ha)
    _fill(dialog, printer.host, printer.serial, WRONG_CODE)
    _submit(dialog)
    expect(dialog.get_by_text("rejected the access code")).to_be_visible(timeout=UI_TIMEOUT_MS)
    shots.take(page, "flow-error-wrong-code")

    _say("scenario 3: the right access code")
    _fields(dialog).nth(2).fill(ACCESS_CODE)
    _submit(dialog)
    finish = dialog.get_by_role("button", name=re.compile("finish", re.IGNORECASE))
    expect(finish).to_be_visible(timeout=UI_TIMEOUT_MS)  # "Name and assign" the new device
    shots.take(page, "flow-created")
    finish.click()
    _wait(lambda: bool(ha.entity_ids("_print_status")), "the print status entity")

    _say("scenario 4: the device page")
    device_id = page.evaluate(
        """() => Object.values(document.querySelector('home-assistant').hass.devices)
                 .find(d => d.identifiers.some(i => i[0] === 'bambu_lan')).id"""
    )
    page.goto(f"{ha.url}/config/devices/device/{device_id}")
    expect(page.get_by_text("Print status").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("Certificate").first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(1500)  # let the cards settle
    shots.take(page, "device-page", readme_name="device-page")

    _say("scenario 5: download diagnostics")
    diagnostics_card = page.locator("ha-card", has_text="Certificate issuer").first
    diagnostics_card.scroll_into_view_if_needed()
    shots.take(diagnostics_card, "certificate-diagnostics", readme_name="certificate-diagnostics")
    diagnostics = _download_diagnostics(page, shots.out)
    _check_diagnostics(diagnostics, printer)

    _say("scenario 6: a repair (the printer presents a new certificate) followed")
    new_fingerprint = printer.reissue_cert()
    certificate = ha.entity_ids("_certificate")[0]
    _wait(lambda: ha.state(certificate) == "changed", f"{certificate} = changed", timeout=120)
    page.goto(f"{ha.url}/config/repairs")
    issue = page.get_by_text("printer certificate changed").first
    expect(issue).to_be_visible(timeout=UI_TIMEOUT_MS)
    shots.take(page, "repairs-list")
    issue.click()
    dialog = _dialog(page)
    expect(dialog.get_by_text(new_fingerprint)).to_be_visible(timeout=UI_TIMEOUT_MS)
    shots.take(page, "repair-dialog", readme_name="repair")
    _submit(dialog)
    expect(page.get_by_text("The issue is repaired")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.get_by_role("button", name="Finish").click()
    _wait(lambda: ha.state(certificate) == "valid", f"{certificate} = valid", timeout=60)
    page.goto(f"{ha.url}/config/repairs")
    expect(page.get_by_text("printer certificate changed")).to_have_count(0, timeout=UI_TIMEOUT_MS)


def _download_diagnostics(page: Page, out: Path) -> dict[str, Any]:
    # The device page's "Device info" card links it directly.
    with page.expect_download(timeout=UI_TIMEOUT_MS) as download:
        page.get_by_text("Download diagnostics").first.click()
    path = out / "diagnostics.json"
    download.value.save_as(path)
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def _check_diagnostics(diagnostics: dict[str, Any], printer: VirtualPrinter) -> None:
    text = json.dumps(diagnostics)
    if printer.access_code in text:
        raise E2EError("the access code appears in the diagnostics")
    if printer.serial in text:
        raise E2EError("the serial is not redacted in the diagnostics")
    if printer.fingerprint not in text:
        raise E2EError("the diagnostics do not show the certificate's SHA-256")
    if "**REDACTED**" not in text:
        raise E2EError("the diagnostics redact nothing")


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise E2EError(f"timed out waiting for {what}")


# --- main --------------------------------------------------------------------------------------


@contextmanager
def _printer(ca_dir: Path) -> Iterator[tuple[VirtualPrinter, TestCAs]]:
    if not _port_free(PRINTER_PORT):
        raise E2EError(f"127.0.0.1:{PRINTER_PORT} is taken (scripts/develop running?)")
    cas = generate_cas()
    cas.write_anchors(ca_dir)
    printer = VirtualPrinter(
        cas,
        serial=SERIAL,
        access_code=ACCESS_CODE,
        model="X1C",
        profile="legacy",
        port=PRINTER_PORT,
        ca_dir=ca_dir,
        time_scale=5,
        demo_print=True,
    )
    printer.start()
    try:
        yield printer, cas
    finally:
        printer.close()


def main() -> int:
    """Run every scenario; 0 when all passed."""
    parser = argparse.ArgumentParser(prog="scripts/e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "e2e")
    parser.add_argument("--readme", action="store_true", help="also refresh docs/screenshots")
    args = parser.parse_args()
    shots = Shots(args.out.resolve(), args.readme)
    _say(f"screenshots: {shots.out}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bambu-e2e-") as tmp:
        config = Path(tmp) / "config"
        ha = HomeAssistantProcess(config, _free_port())
        page: Page | None = None
        try:
            with _printer(Path(tmp) / "ca") as (printer, cas):
                _build_config(config, int(ha.url.rsplit(":", 1)[1]), Path(tmp) / "ca")
                _say(f"starting Home Assistant on {ha.url} (first start installs the frontend)")
                ha.start()
                ha.onboard()
                ha.wait_running()
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
                    )
                    context = browser.new_context(
                        viewport={"width": 1100, "height": 760}, accept_downloads=True
                    )
                    context.set_default_timeout(UI_TIMEOUT_MS)
                    page = context.new_page()
                    try:
                        run_scenarios(page, ha, printer, cas, shots)
                    except Exception:
                        with suppress(Exception):
                            page.screenshot(path=str(shots.out / "failure.png"))
                        raise
                    finally:
                        browser.close()
        except Exception as err:
            print(f"e2e: FAILED: {type(err).__name__}: {err}", file=sys.stderr)
            print(f"--- Home Assistant log (end) ---\n{ha.log_tail()}", file=sys.stderr)
            return 1
        finally:
            ha.stop()
    elapsed = time.monotonic() - started
    _say(f"all scenarios passed in {elapsed:.0f} s; {len(shots.taken)} screenshots in {shots.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
