"""neurofabric.host."""
