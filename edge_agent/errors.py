"""The agent's exception tree. Library errors are converted at the boundary with ``raise ... from``."""


class EdgeAgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(EdgeAgentError):
    """The configuration is invalid; ``errors`` holds one line per problem (``FILE:LINE: path: msg``)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class ConfigCheckFailed(EdgeAgentError):
    """The config could not be checked (its validation process could not run or died): it is neither valid
    nor invalid; try again later."""


class ConfigChangeRefused(EdgeAgentError):
    """A valid config that cannot replace the running one live (e.g. a new agent id or data directory); the
    running config was not touched."""


class PublishError(EdgeAgentError):
    """The broker refused or could not be reached."""


class OutboxError(EdgeAgentError):
    """The durable store failed (disk full, corrupt database)."""
