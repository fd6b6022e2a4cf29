"""Config text to plain data: the YAML reading every config path shares, without validation (no pydantic).

The running agent reads its own config text here when it builds a remote merge patch, so this module stays
free of the validating loader (see :mod:`edge_agent.config.mode`).
"""

from __future__ import annotations

from typing import Any

from edge_agent.config.yaml_source import YamlDocument, YamlSourceError, parse_yaml
from edge_agent.errors import ConfigError

DEFAULT_MAX_BYTES = 1_000_000


def parse_config_text(
    text: str, source: str = "<string>", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict[str, Any]:
    """Parse YAML ``text`` into plain data exactly as ``load_config_text`` reads it, without validating.

    Use it wherever config text becomes data (merge patches, rewriting): the same YAML 1.2 scalars, alias and
    size guards and duplicate-key errors. Raises ConfigError for text that is not a YAML mapping.
    """
    return dict(parse_config_document(text, source, max_bytes).data)


def parse_config_document(text: str, source: str, max_bytes: int) -> YamlDocument:
    """The parsed document of config ``text`` (data and line lookup); ConfigError unless it is a mapping."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise ConfigError(
            [f"{source}: the config is {size} bytes, larger than the limit of {max_bytes} bytes"]
        )
    try:
        document = parse_yaml(text)
    except YamlSourceError as exc:
        raise ConfigError([line_prefix(source, line) + msg for line, msg in exc.errors]) from None
    data = document.data
    if data is None:
        raise ConfigError(
            [f"{source}:1: the config is empty; it needs at least the sections 'agent' and 'mqtt'"]
        )
    if not isinstance(data, dict):
        raise ConfigError(
            [
                f"{source}:{document.line(())}: the top level must be a mapping of sections "
                f"({', '.join(config_sections())}), not {kind_of(data)}"
            ]
        )
    return document


def config_sections() -> tuple[str, ...]:
    """The top-level sections of a config, in the models' order."""
    from edge_agent.config.models import AgentConfig

    return tuple(AgentConfig.__annotations__)


def kind_of(value: object) -> str:
    """What a YAML value is, in a user's words ("a list", "text", "a number"...)."""
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def line_prefix(source: str, line: int | None) -> str:
    """``FILE:LINE: `` (or ``FILE: `` without a line), the start of every config error."""
    return f"{source}:{line}: " if line is not None else f"{source}: "
