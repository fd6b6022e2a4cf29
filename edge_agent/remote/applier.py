"""A :class:`~edge_agent.remote.contracts.ConfigApplier` that validates, applies live, then persists.

``FileConfigApplier`` owns the config file and the history: a candidate is validated with the config
loader (errors ``SOURCE:LINE: path: message``), handed to the supervisor's ``on_change`` hook (which
restarts only what changed and returns what it restarted), then written atomically to the config file and
recorded in ``data_dir/config-history``. If the hook fails, the previous config is put back live and the
outcome is ``rolled_back``; the file never holds a config that is not running.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigChangeRefused, ConfigCheckFailed, ConfigError
from edge_agent.remote.contracts import ApplyOutcome
from edge_agent.remote.history import ConfigHistory, config_hash, write_active_config
from edge_agent.remote.unconfirmed import clear_unconfirmed, mark_unconfirmed

log = logging.getLogger(__name__)

Validator = Callable[[str, str], Any]
"""``(text, source) -> config model``; raises ``ConfigError`` with one line per problem."""
ChangeHook = Callable[[Any, Any], Awaitable[list[str]]]
"""``async (old_config, new_config) -> names of the parts restarted``; raises when the change fails."""


def _default_validator(text: str, source: str) -> Any:
    from edge_agent.config.isolated import load_config_text_checked

    return load_config_text_checked(text, source)


class FileConfigApplier:
    """Keeps the running config (text, data, model), its file on disk and its history consistent."""

    def __init__(self, config_path: Path | str, history: ConfigHistory, *, validate: Validator | None = None,
                 on_change: ChangeHook | None = None, text: str | None = None, config: Any = None) -> None:
        self.config_path = Path(config_path)
        self.history = history
        self._validate = validate or _default_validator
        self._on_change = on_change
        if text is None:
            text = self.config_path.read_text(encoding="utf-8")
        self._text = text
        # The agent passes the model it already validated from this text: validating a large config twice
        # on the event loop stalls every poller for seconds at start-up.
        self._config = config if config is not None else self._validate(text, str(self.config_path))
        self._data: dict[str, Any] | None = None  # parsed when first asked for
        # While a change is on trial: the hash and validated model of the config it replaced, so that a
        # rollback needs no second validation (which could fail for reasons of its own).
        self._previous: tuple[str, Any] | None = None
        latest = history.latest()
        if latest is None or latest.hash != self._text_hash:
            history.record(text, version=None, label="", by="local", source="startup")

    @property
    def _text(self) -> str:
        # Kept compressed: a 10 000-point config is ~600 KB of YAML, read back only on a change or a dump.
        return zlib.decompress(self._packed_text).decode("utf-8", "surrogatepass")

    @_text.setter
    def _text(self, text: str) -> None:
        self._packed_text = zlib.compress(text.encode("utf-8", "surrogatepass"), 1)
        self._text_hash = config_hash(text)  # kept beside it: comparing needs no decompression

    @property
    def config(self) -> Any:
        """The validated model of the running config."""
        return self._config

    def active_text(self) -> str:
        """The YAML text of the running config."""
        return self._text

    def active_data(self) -> dict[str, Any]:
        """A private copy of the running config as plain data."""
        if self._data is None:
            self._data = _as_mapping(self._text)
        return copy.deepcopy(self._data)

    def begin_confirm(self, previous_text: str) -> None:
        """The running config is on trial (commit-confirm): if the agent stops before :meth:`end_confirm`,
        the next start goes back to ``previous_text`` (see :mod:`edge_agent.remote.unconfirmed`)."""
        mark_unconfirmed(self.history, previous_text, self._text)

    def end_confirm(self) -> None:
        """The trial ended (confirmed or rolled back)."""
        clear_unconfirmed(self.history)
        self._previous = None

    async def apply(self, text: str, source: str, by: str, version: int | None, *,
                    on_trial: bool = False) -> ApplyOutcome:
        """Validate, apply live through ``on_change``, persist; see the module docstring for failure paths.

        ``on_trial``: the change will run under commit-confirm. The unconfirmed-change marker is then made
        durable before the config file changes, so no power cut can leave the new file without it.
        """
        new_hash = config_hash(text)
        previous = self._previous
        try:  # validation of a large config is CPU work: keep the event loop free meanwhile
            if previous is not None and previous[0] == new_hash:  # back to the config the trial replaced
                new_config = previous[1]
            else:
                new_config = await asyncio.to_thread(self._validate, text, source)
        except ConfigCheckFailed as exc:
            log.warning("config change from %s could not be checked: %s", source, exc)
            return ApplyOutcome("rejected", new_hash, [str(exc)], unchecked=True,
                                message="the config could not be checked now (not a verdict on it); "
                                        "nothing changed, try again")
        except ConfigError as exc:
            return ApplyOutcome("rejected", new_hash, list(exc.errors),
                                message="invalid config; nothing changed")
        except Exception as exc:  # a loader bug must not look like an accepted config, nor crash the caller
            log.exception("config validation raised instead of reporting")
            return ApplyOutcome("rejected", new_hash, [f"{source}: cannot validate: {type(exc).__name__}: {exc}"],
                                message="the config could not be validated; nothing changed")
        if new_hash == self._text_hash:
            return ApplyOutcome("accepted", new_hash,
                                message="identical to the running config; nothing restarted")
        old_config = self._config
        restarted: list[str] = []
        if self._on_change is not None:
            try:
                restarted = await self._on_change(old_config, new_config)
            except ConfigChangeRefused as exc:  # refused before anything changed: nothing to restore
                return ApplyOutcome("rejected", new_hash, [f"{source}: {exc}"],
                                    message="refused before anything changed (some changes need a restart); "
                                            "the running config goes on")
            except Exception as exc:
                log.exception("applying the new config failed; restoring the previous one")
                await self._restore(new_config, old_config)
                return ApplyOutcome("rolled_back", new_hash, [f"apply failed: {type(exc).__name__}: {exc}"],
                                    message="the change failed while applying; the previous config runs")
        try:
            await asyncio.to_thread(self._persist, text, source, by, version, on_trial)
        except OSError as exc:
            await self._restore(new_config, old_config)
            return ApplyOutcome("rolled_back", new_hash, [f"cannot save the config: {exc}"],
                                message="the config could not be saved; the previous config runs again")
        self._previous = (self._text_hash, old_config) if on_trial else None
        self._text, self._config, self._data = text, new_config, None
        return ApplyOutcome("accepted", new_hash, restarted=restarted)

    async def _restore(self, failed: Any, previous: Any) -> None:
        if self._on_change is None:
            return
        try:
            await self._on_change(failed, previous)
        except Exception:
            log.critical("restoring the previous config failed too; the agent may be partly configured",
                         exc_info=True)

    def _persist(self, text: str, source: str, by: str, version: int | None, on_trial: bool = False) -> None:
        if on_trial:  # marker first: a stop between the two finds the file unchanged and drops the marker
            mark_unconfirmed(self.history, self._text, text)
        try:
            write_active_config(self.config_path, text)
        except OSError:
            if on_trial:
                clear_unconfirmed(self.history)
            raise
        latest = self.history.latest()
        if source == "rollback" and latest is not None:
            self.history.mark(latest, "rolled_back")  # the config being undone
        self.history.record(text, version=version, label="", by=by, source=source)


def _as_mapping(text: str) -> dict[str, Any]:
    """The running config's text as data, read exactly as the loader reads it (YAML 1.2: ``010`` stays ten
    and ``off`` stays text; a YAML 1.1 reading would change them in every patch built on it)."""
    from edge_agent.config.text import DEFAULT_MAX_BYTES, parse_config_text

    return parse_config_text(text, "<running config>", max_bytes=max(DEFAULT_MAX_BYTES, len(text.encode()) + 1))
