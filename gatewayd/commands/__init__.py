"""Remote commands from the cloud: JSON-RPC 2.0 requests of Thing+ over MQTT (gatewayd.commands.handler)."""
