"""``python -m edge_agent.config [PATH]``: write the config JSON Schema (default: the committed file)."""

import sys
from pathlib import Path

from edge_agent.config.schema import SCHEMA_PATH, write_schema

write_schema(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH)
