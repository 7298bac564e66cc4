"""bus_runtime: publish and consume events on the topology that rabbitform applies."""
