"""Actuators: what the cloud switches with ``controlActuator`` (Thing+ over MQTT).

* :mod:`gatewayd.actuators.targets`: how a target switches: ``simulate``, ``command`` (argv, no shell),
  ``http`` (a request over the daemon's session); :mod:`gatewayd.actuators.modbustarget`: ``modbus``
  (a coil or holding register, on the sensors' shared Modbus links).
* :mod:`gatewayd.actuators.runner`: one actuator's commands (on with a duration, off, blink), a new
  command cancelling the running one, and its state.
* :mod:`gatewayd.actuators.actuatorset`: every actuator of the inventory, their statuses, their stop.
"""
