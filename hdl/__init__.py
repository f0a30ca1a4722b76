"""neurofabric.hdl."""
