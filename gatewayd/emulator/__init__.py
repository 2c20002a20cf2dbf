"""Emulated Thing+, RCMS and loctube clouds on one aiohttp app, with fault injection.

Used by ``gatewayd emulator``, ``gatewayd demo`` and the integration tests. Every check is written from
the vendors' documents (``shared/specs``), never from gatewayd's own clients.
"""

from gatewayd.emulator.app import Emulator, EmulatorServer, build_app, serve_forever
from gatewayd.emulator.faults import Faults, RateLimit

__all__ = ["Emulator", "EmulatorServer", "Faults", "RateLimit", "build_app", "serve_forever"]
