"""neurofabric.boards."""
