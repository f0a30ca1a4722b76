"""neurofabric.sim."""
