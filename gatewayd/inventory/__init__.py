"""The inventory: the YAML file a user writes, loaded and checked into typed models."""
