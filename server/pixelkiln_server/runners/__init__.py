"""Model runners: the port (messages), the runner host (model side), transports."""
