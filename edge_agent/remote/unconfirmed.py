"""An unconfirmed config change survives no restart: like a router's "commit confirmed", a change still in
its commit-confirm window when the agent stops (a stop, a crash, a power cut) is undone at the next start.

While a change is being confirmed, ``DATA_DIR/config-history/unconfirmed.json`` holds the previous config's
text and the hash of the change. At start-up, if the marker is there and the config file still holds that
change, the file gets the previous text back (recorded in the history as a rollback) before anything runs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edge_agent.remote.atomic_file import write_atomic
from edge_agent.remote.history import ConfigHistory, config_hash, write_active_config

log = logging.getLogger(__name__)

MARKER_NAME = "unconfirmed.json"


def marker_path(history: ConfigHistory) -> Path:
    """Where the marker of ``history``'s data directory lives."""
    return history.directory / MARKER_NAME


def mark_unconfirmed(history: ConfigHistory, previous_text: str, new_text: str) -> None:
    """Record that ``new_text`` runs unconfirmed and ``previous_text`` is what to go back to (durable)."""
    history.directory.mkdir(parents=True, exist_ok=True)
    body = {"previous_text": previous_text, "unconfirmed_hash": config_hash(new_text)}
    write_atomic(marker_path(history), json.dumps(body).encode("utf-8"), mode=0o640)


def clear_unconfirmed(history: ConfigHistory) -> None:
    """The change was confirmed or rolled back: nothing to undo at the next start."""
    marker_path(history).unlink(missing_ok=True)


def undo_unconfirmed(config_path: Path, history: ConfigHistory) -> bool:
    """At start-up: put the previous config back if the agent stopped while a change was unconfirmed.

    Returns True when the config file was rewritten (the caller loads it again). A marker whose change is not
    what the file holds (the file was edited since) or that cannot be read is dropped with a warning.
    """
    path = marker_path(history)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        previous_text, unconfirmed_hash = str(body["previous_text"]), str(body["unconfirmed_hash"])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("unconfirmed-change marker %s unreadable (%s); ignored", path, exc)
        path.unlink(missing_ok=True)
        return False
    current = config_path.read_text(encoding="utf-8")
    if config_hash(current) == config_hash(previous_text):  # stopped between the marker and the file write
        log.info("a config change was stopped before it reached %s; nothing to undo", config_path)
        path.unlink(missing_ok=True)
        return False
    if config_hash(current) != unconfirmed_hash:
        log.warning("a config change was left unconfirmed, but %s has been edited since; keeping the file",
                    config_path)
        path.unlink(missing_ok=True)
        return False
    write_active_config(config_path, previous_text)
    latest = history.latest()
    if latest is not None and latest.hash == unconfirmed_hash:
        history.mark(latest, "rolled_back")
    history.record(previous_text, version=None, label="", by="start-up", source="rollback")
    path.unlink(missing_ok=True)
    log.warning("the agent stopped while config %s was still unconfirmed: rolled back to the previous config "
                "(%s) before starting", unconfirmed_hash, config_hash(previous_text))
    return True
