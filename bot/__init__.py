"""The core of Elevate: domain, commands, use cases, ports, Graph service, store, schedulers."""
