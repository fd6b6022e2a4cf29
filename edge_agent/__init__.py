"""edge-agent: the gateway service (config, scheduling, pipeline, outbox, publisher, remote, CLI)."""

__version__ = "0.1.0"
