"""End-to-end tests: gatewayd's real cloud clients against the real emulator over loopback HTTP."""
