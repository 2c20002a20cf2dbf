"""The console's sections about the clouds as a whole: pure functions of the emulator's state, each
cheap with a 10,000-sensor Thing+ (counters and snapshots of faults, never a pass over points).

Each returns plain JSON (what :mod:`gatewayd.webui.events` sends when it changed). Secrets never appear:
the RCMS and loctube sections show serial numbers and device ids, the MQTT one gateway ids (not API keys).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatewayd.emulator.console.requestlog import RequestLog
from gatewayd.emulator.console.state import DaemonLink
from gatewayd.emulator.faults import CLOUDS

if TYPE_CHECKING:
    from gatewayd.emulator.loctube import LoctubeEmulator
    from gatewayd.emulator.rcms import RcmsEmulator
    from gatewayd.emulator.thingplus.mqttside import MqttSide

#: At most this many rows of RCMS routers, loctube devices and MQTT links (the page shows a card, not
#: an inventory of thousands).
ROWS_MAX = 100


def health(faults: dict[str, Any]) -> str:
    """A cloud card's colour from its faults' snapshot: ``down`` during an outage, ``faulted`` while a
    failure rate, latency or rate limit is set, ``ok`` otherwise."""
    if faults.get("outage"):
        return "down"
    if faults.get("failure_rate") or faults.get("latency_s") or faults.get("rate_limit"):
        return "faulted"
    return "ok"


def clouds_view(
    served: set[str] | frozenset[str], faults: dict[str, Any], requests: RequestLog
) -> dict[str, Any]:
    """Per cloud: served or not, its health, requests answered, refused, and counts by HTTP status."""
    return {
        cloud: {
            "served": cloud in served,
            "health": health(faults[cloud]),
            **requests.clouds[cloud].view(),
        }
        for cloud in CLOUDS
    }


def faults_view(faults: dict[str, Any], mqtt_outage: dict[str, Any] | None) -> dict[str, Any]:
    """The faults set now, per cloud (only what is set), and the MQTT broker's outage when it has one."""
    view: dict[str, Any] = {}
    for cloud in CLOUDS:
        state = faults[cloud]
        setting: dict[str, Any] = {}
        if state.get("outage"):
            setting["outage"] = state["outage"]
        if state.get("failure_rate"):
            setting["failure_rate"] = state["failure_rate"]
            setting["failure_statuses"] = state["failure_statuses"]
        if state.get("latency_s"):
            setting["latency_s"] = state["latency_s"]
        if state.get("rate_limit"):
            setting["rate_limit"] = state["rate_limit"]
        if state.get("oauth2_form_only"):
            setting["oauth2_form_only"] = True
        view[cloud] = {"set": setting, "injected": state.get("injected", {})}
    if mqtt_outage is not None and mqtt_outage.get("active"):
        view["mqtt"] = {"set": {"outage": mqtt_outage}, "injected": {}}
    return view


def points_view(total: int, rate: float) -> dict[str, Any]:
    return {"total": total, "rate": rate}


def links_view(links: list[DaemonLink]) -> list[dict[str, str]]:
    return [{"label": link.label, "url": link.url} for link in links]


def rcms_view(rcms: RcmsEmulator | None, now_ms: int) -> dict[str, Any]:
    """The routers RCMS holds: serial number, online now, group, reporting interval, latest record."""
    if rcms is None:
        return {"served": False, "routers": [], "total": 0}
    snapshot = rcms.snapshot()
    groups = snapshot["groups"]
    routers = []
    for sn in snapshot["devices"][:ROWS_MAX]:
        count = rcms.timeline.count(sn, 0, now_ms)
        last = rcms.timeline.times(sn, 0, now_ms, count - 1, count) if count else []
        record = rcms.status_record(sn, last[0]) if last else None
        data = record["data"] if record else {}
        routers.append(
            {
                "sn": sn,
                "online": rcms.is_online(sn, now_ms / 1000),
                "group": groups.get(sn),
                "interval_ms": rcms.timeline.interval_ms(sn, now_ms),
                "last_record": last[0] if last else None,
                "model": data.get("system", {}).get("device_model"),
                "rssi": data.get("cellular", {}).get("rssi"),
            }
        )
    return {
        "served": True,
        "total": len(snapshot["devices"]),
        "routers": routers,
        "rejections": snapshot["rejections"],
    }


def loctube_view(loctube: LoctubeEmulator | None, now_ms: int) -> dict[str, Any]:
    """The trackers loctube holds: id, online now, and their latest properties."""
    if loctube is None:
        return {"served": False, "devices": [], "total": 0}
    snapshot = loctube.snapshot()
    devices = []
    for device_id in snapshot["devices"][:ROWS_MAX]:
        detail = loctube.device_detail(device_id, now_ms)
        devices.append(
            {
                "id": device_id,
                "state": detail["state"]["value"],
                "time": detail["propertiesTime"],
                "properties": detail["properties"],
            }
        )
    return {
        "served": True,
        "total": len(snapshot["devices"]),
        "devices": devices,
        "tokens_active": snapshot["tokens_active"],
        "rejections": snapshot["rejections"],
    }


def mqtt_view(side: MqttSide | None) -> dict[str, Any]:
    """The MQTT broker: served or not, its counters, its outage, how many gateways are connected, and
    the first :data:`ROWS_MAX` links (connection, node status, messages and points)."""
    if side is None or side.port is None:
        return {"served": False}
    links: list[dict[str, Any]] = []
    connected = 0
    for gateway_id, link in side.links.items():
        connected += link.connected
        if len(links) < ROWS_MAX:
            links.append(
                {
                    "gateway": gateway_id,
                    "connected": link.connected,
                    "node_status": side.node_status(gateway_id),
                    "messages": link.counts.get("messages", 0),
                    "points": link.counts.get("points", 0),
                }
            )
    return {
        "served": True,
        "port": side.port,
        "known": len(side.gateways.known),
        "connected": connected,
        "counts": dict(sorted(side.counts.items())),
        "outage": side.outage.snapshot(),
        "links": links,
    }
