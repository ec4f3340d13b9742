"""Training: the engine, the task interface, a workdir's files, checkpoints, sharding, logging, data on the device, leases."""
