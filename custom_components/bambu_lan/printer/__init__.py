"""A library that talks to Bambu Lab printers on the LAN: verified TLS, the MQTT session, state.

Nothing in this package imports Home Assistant (a test enforces it); the integration's glue
around it lives one level up. Modules: `tls` (the only place TLS contexts are built, with
`chain` and `tls_errors`), `session` (one MQTT session), `state` (merged reports, with `merge`,
`fields`, `values`, `models` and `codes`), `health` (certificate verdicts) and `announce`
(UDP 2021 NOTIFY packets).
"""
