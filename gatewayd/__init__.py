"""gatewayd: a Thing+ Open API Gateway for edge boxes, with RCMS and loctube polling."""

__version__ = "0.1.0"
