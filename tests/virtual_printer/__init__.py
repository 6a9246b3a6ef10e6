"""A virtual Bambu Lab printer: real TLS + MQTT on 127.0.0.1, simulated firmware.

Design (one printer = two child processes, no thread in the caller):

    client ──TLS (pki.py chain, CN = serial)──> mosquitto (broker.py) <──plain── firmware process
                 user bblp + access code          ACL: device/<serial>/*        (firmware.py +
                                                                                 sim.py)
    test / CLI ──JSON lines on the firmware's stdin/stdout──> firmware process

- `broker.py` runs a real `mosquitto` per printer: a TLS-only listener on the printer port
  (TLS 1.2, or 1.1-only for the `tls1_0_only` profile), `allow_anonymous false`, a password file
  for `bblp`, an ACL, and a private plain listener for the firmware. Stop/start/restart keep the
  ports; a new access code or a re-issued leaf restarts it (clients are dropped).
- `firmware.py` is the printer behind the broker, always a separate process: Home Assistant's
  test harness forbids leftover threads, and a process also survives broker restarts on its own
  (it reconnects every 50 ms). It publishes reports like the model does (`models.py`: X1C full
  objects; P1S/A1MINI/H2D deltas), answers pushall/get_version, acknowledges and acts on
  commands (`sim.py`), and injects faults. It is controlled through JSON lines on its stdin
  (works while the broker is down; closing the pipe ends it) or the `virtual/<serial>/control`
  topic on its own listener.
- `printer.VirtualPrinter` owns both and is the handle tests use; every call is synchronous and
  short, so it serves plain and async tests alike. A spare firmware process is kept warm so a
  test does not wait for Python to import paho.
- `fixtures.py` has the pytest fixtures; `__main__.py` is the command line used by
  `scripts/develop` and outside checks.
"""
