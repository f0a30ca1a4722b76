"""The host side: network description and files, the golden model, devices, the CLI."""
