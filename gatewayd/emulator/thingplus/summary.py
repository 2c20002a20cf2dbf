"""The emulated Thing+ in a line per gateway: ``GET /_emulator/state?summary=gateways``.

Why beside the whole state: with a fleet of 1,000 gateways x 10 sensors the whole state lists every
sensor and finds each one's latest point (a pass over every point received), megabytes a poll; a test
or an operator watching a fleet wants per gateway what arrived. This is one pass over the sensors
(counts of lists, never the points themselves), and the totals count every point received, also those
of gateways deleted since.
"""

from __future__ import annotations

from typing import Any

from gatewayd.emulator.thingplus.model import status_view
from gatewayd.emulator.thingplus.state import ThingPlusState


def gateways_summary(state: ThingPlusState) -> dict[str, Any]:
    """The knobs and request counts of the whole state, totals, and per gateway: its devices, sensors,
    points, sensor and gateway statuses received, when its last point arrived, its latest status."""
    gateways = []
    for gateway_id, gateway in state.gateways.items():
        sensors = [sensor["id"] for sensor in state.sensors.of(gateway_id)]
        histories = [state.points.get(sensor_id) for sensor_id in sensors]
        statuses = state.gateway_statuses.get(gateway_id)
        gateways.append(
            {
                "id": gateway_id,
                "name": gateway["name"],
                "reportInterval": gateway["reportInterval"],
                "devices": state.devices.count_of(gateway_id),
                "sensors": len(sensors),
                "points": sum(len(h) for h in histories if h),
                "last_point_received": max((h[-1].received for h in histories if h), default=None),
                "sensor_statuses": sum(len(state.sensor_statuses.get(s, ())) for s in sensors),
                "statuses": len(statuses) if statuses else 0,
                "latest_status": status_view(statuses),
            }
        )
    return {
        "report_interval_ms": state.report_interval_ms,
        "series_limits": state.series_limits(),
        "requests": dict(state.requests),
        "rejections": dict(state.rejections),
        "totals": {
            "gateways": len(state.gateways),
            "devices": len(state.devices),
            "sensors": len(state.sensors),
            "points": sum(len(points) for points in state.points.values()),
        },
        "gateways": gateways,
    }
