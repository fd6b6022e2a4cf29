"""The config file's JSON Schema, for editors (``config/edge-agent.schema.json``).

Regenerate the committed file with ``python -m edge_agent.config`` (or ``make schema``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_agent.config.models import AgentConfig

SCHEMA_ID = "urn:edge-agent:config-schema:1"
SCHEMA_TITLE = "edge-agent configuration"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "edge-agent.schema.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file, with a title and ``$id``."""
    schema = AgentConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = SCHEMA_TITLE
    schema["description"] = (
        "Configuration of one edge-agent gateway: broker, buffer, southbound devices and their points, "
        "assets, alarm rules and summaries. Durations like 500ms or 10s, sizes like 256MB."
    )
    return schema


def schema_text() -> str:
    """``json_schema()`` as the committed file holds it: 2-space indent, sorted keys, trailing newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> None:
    """Write :func:`schema_text` to ``path``."""
    path.write_text(schema_text(), encoding="utf-8")
