"""Command line: run one virtual printer until SIGINT/SIGTERM.

    python -m tests.virtual_printer [--serial S] --access-code C --port P \
        --profile legacy --model X1C --ca-out DIR [--demo-print] [--time-scale X]

Writes the CA certificates a client must trust into DIR (PEM files), then prints exactly one
line, `READY 127.0.0.1 <port> <serial> <access code>`, on stdout once the printer accepts
connections. Everything else goes to stderr. On SIGINT/SIGTERM it stops the broker and the
firmware, removes its temporary files and exits 0.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
import signal
import sys
import time

from .broker import BrokerError
from .firmware import FIRMWARE_USER
from .models import MODELS, default_serial
from .pki import PROFILES, generate_cas
from .printer import FirmwareError, VirtualPrinter

_LOGGER = logging.getLogger("virtual_printer")

DEFAULT_SERIAL_INDEX = 350100001  # X1C: 00M09A350100001; the prefix follows --model
DEFAULT_ACCESS_CODE = "12345678"
DEFAULT_PORT = 8883


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.virtual_printer",
        description="A Bambu Lab printer on 127.0.0.1: real TLS + MQTT, simulated firmware.",
    )
    parser.add_argument(
        "--serial", type=str.upper, help="default: the model's prefix + 09A350100001"
    )
    parser.add_argument("--access-code", default=DEFAULT_ACCESS_CODE)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--profile", choices=PROFILES, default="legacy")
    parser.add_argument("--model", choices=MODELS, type=str.upper, default="X1C")
    parser.add_argument("--ca-out", type=Path, required=True, help="where to write the CA PEMs")
    parser.add_argument("--demo-print", action="store_true", help="start a print job at once")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="simulated seconds per real second"
    )
    parser.add_argument("--push-interval", type=float, default=1.0, help="seconds")
    parser.add_argument("--no-ams", action="store_true", help="a printer without AMS units")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def cli_default_serial(model: str) -> str:
    """The serial used without --serial: the model's prefix, so model detection agrees."""
    return default_serial(model, DEFAULT_SERIAL_INDEX)


def main(argv: list[str] | None = None) -> int:
    """Run the printer; return the exit code."""
    args = _parser().parse_args(argv)
    args.serial = args.serial or cli_default_serial(args.model)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="virtual printer: %(message)s",
        stream=sys.stderr,
    )
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    cas = generate_cas()
    cas.write_anchors(args.ca_out)
    printer = VirtualPrinter(
        cas,
        serial=args.serial,
        access_code=args.access_code,
        model=args.model,
        profile=args.profile,
        port=args.port or None,
        ca_dir=args.ca_out,
        time_scale=args.time_scale,
        push_interval=args.push_interval,
        demo_print=args.demo_print,
        ams=not args.no_ams,
    )
    try:
        printer.start()
    except (BrokerError, FirmwareError) as err:
        _LOGGER.error("%s", err)
        return 1
    try:
        _announce(printer)
        while not stop:
            if not printer.broker.running:
                _LOGGER.error("mosquitto exited unexpectedly:\n%s", printer.broker_log())
                return 1
            time.sleep(0.1)
    finally:
        printer.close()
    return 0


def _announce(printer: VirtualPrinter) -> None:
    """Details on stderr, then the one READY line on stdout (outside checks wait for it)."""
    _LOGGER.info(
        "%s (%s profile) serial %s on %s:%d, leaf SHA-256 %s",
        printer.model,
        printer.profile,
        printer.serial,
        printer.host,
        printer.port,
        printer.fingerprint,
    )
    _LOGGER.info(
        "firmware control: mosquitto_pub -h %s -p %d -u %s -P %s -t virtual/%s/control "
        '-m \'{"op": "fault", "name": "silent"}\'',
        printer.host,
        printer.broker.firmware_port,
        FIRMWARE_USER,
        printer.broker.firmware_password,
        printer.serial,
    )
    print(f"READY {printer.host} {printer.port} {printer.serial} {printer.access_code}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
