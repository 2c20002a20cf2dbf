"""Emulated Thing+, RCMS and loctube clouds on one aiohttp app, with fault injection.

Used by ``gatewayd emulator``, ``gatewayd demo`` and the integration tests. Every check is written from
the vendors' documents (``shared/specs``) and, where they are silent or the real servers answer otherwise,
from what the real servers do (README: "where it follows the real ..."); never from gatewayd's own
clients, so a client that passes here is neither refused there nor let through here for what they refuse.
"""

from gatewayd.emulator.app import Emulator, EmulatorServer, build_app, serve_forever
from gatewayd.emulator.faults import Faults, RateLimit

__all__ = ["Emulator", "EmulatorServer", "Faults", "RateLimit", "build_app", "serve_forever"]
