"""Operating a gateway: the ops HTTP server, one-shot API commands, outbox tools."""
