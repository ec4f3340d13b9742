"""Training: the engine, the task interface, checkpoints, sharding, logging, data on the device, leases."""
