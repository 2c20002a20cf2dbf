"""Test helpers defined once: free ports, waiting for a condition, fake clocks, test inventories.

Plain modules, imported by name (``from tests.helpers.clocks import FakeClock``), so a test file shows
where each helper comes from; fixtures stay in the conftest files.
"""
