"""neurofabric"""
