"""Model backends, one file each, found by name through :mod:`.registry`."""
