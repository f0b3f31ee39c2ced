"""The host side of the guest ABI: the run's context, processes, spawns, sockets, observations, probes."""
