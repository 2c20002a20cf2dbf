"""Fleets: many simulated gateways from one inventory template, in one process, sharded over machines."""
