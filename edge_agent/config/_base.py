"""Shared pieces of the config models: the strict base model, name types and multi-issue errors.

A model validator that finds several problems reports them all at once through :func:`issues_error`: one
pydantic error of type ``config_issues`` whose context carries ``(relative loc, message)`` pairs. The loader
expands it into one line per issue; plain pydantic users see the issues joined in the message.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from diagnostics.waveform_units import waveform_units
from edge_agent.config._pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PydanticCustomError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)
from edge_agent.errors import ConfigError

Loc = tuple[str | int, ...]
Issue = tuple[Loc, str]

ISSUES_ERROR_TYPE = "config_issues"


def format_loc(loc: Loc) -> str:
    """Render a field path the way users read it: ``devices[0].points[3].type``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def issues_error(issues: Sequence[Issue]) -> PydanticCustomError:
    """Bundle several problems found by one validator into one pydantic error (see module docstring)."""
    summary = "; ".join(f"{format_loc(loc)}: {msg}" if loc else msg for loc, msg in issues)
    return PydanticCustomError(ISSUES_ERROR_TYPE, "{summary}", {"summary": summary, "issues": list(issues)})


def duplicate_issues(names: Sequence[object], section: Loc, what: str) -> list[Issue]:
    """An issue for every name in ``names`` seen before, located at ``section + (index, "name")``."""
    issues: list[Issue] = []
    first: dict[str, int] = {}
    where = format_loc(section)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in first:
            issues.append(
                ((*section, i, "name"), f"duplicate {what} name '{name}' (also {where}[{first[name]}])")
            )
        first.setdefault(name, i)
    return issues


class ConfigModel(BaseModel):
    """Base of every config model: unknown keys are errors, so a typo never silently becomes a default.

    A key written with nothing after it (``devices:`` or ``points:``, which YAML reads as null) means "use the
    default" for the fields listed in ``empty_means_default``.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)
    empty_means_default: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(data.get(k, 0) is None for k in cls.empty_means_default):
            return {k: v for k, v in data.items() if not (v is None and k in cls.empty_means_default)}
        return data


ModelT = TypeVar("ModelT", bound=BaseModel)

#: One shared set per distinct set of explicitly written fields, across every compacted model (see
#: :func:`compact_model`). Weak: an entry goes with the last model using it, so configs validated and
#: dropped (refused remote pushes, replaced configs) leave nothing behind.
_SHARED_FIELDS_SETS: weakref.WeakValueDictionary[frozenset[str], set[str]] = weakref.WeakValueDictionary()


_URL_USERINFO_RE = re.compile(r"(?<=://)[^@/]*@")


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` part shown as ``***@``: config errors never echo a password."""
    return _URL_USERINFO_RE.sub("***@", url)


def waveform_unit_issues(unit: str) -> list[Issue]:
    """The config issue of a vibration waveform's ``unit`` that the analysis cannot convert (none if it can)."""
    try:
        waveform_units(unit)
    except ValueError as exc:
        return [(("unit",), str(exc))]
    return []


def compact_model(model: ModelT) -> ModelT:
    """A copy of the pydantic model ``model`` that costs about half the memory; equal to it in every way.

    For configs with thousands of points (~500 bytes less per point). pydantic-core gives every instance a
    fresh ``__dict__`` (a full hash table) and a fresh ``__pydantic_fields_set__``. The copy fills
    ``__dict__`` attribute by attribute, in field order, which lets CPython store it as a key-sharing dict
    (the keys live once in the class, each instance keeps only its values), and models with the same set
    of explicitly written fields share one set object. Values, equality, dumps and ``model_fields_set``
    stay the same. The model class must be frozen: a shared fields-set must never be added to by an
    assignment on one instance (pydantic's ``model_copy`` copies the set first).
    """
    cls = type(model)
    if not cls.model_config.get("frozen"):
        raise TypeError(f"{cls.__name__} must be frozen to be compacted")
    set_attr = object.__setattr__
    fields_set = model.__pydantic_fields_set__
    new = cls.__new__(cls)
    for name, value in model.__dict__.items():
        set_attr(new, name, value)
    set_attr(new, "__pydantic_fields_set__", _SHARED_FIELDS_SETS.setdefault(frozenset(fields_set), fields_set))
    set_attr(new, "__pydantic_extra__", model.__pydantic_extra__)
    set_attr(new, "__pydantic_private__", model.__pydantic_private__)
    return new


def _compact_item(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return compact_model(handler(value))


Compacted = WrapValidator(_compact_item)
"""Annotate a list's item type with it (``list[Annotated[Point, Compacted]]``) to compact each item as soon
as it is validated, so that a big config never holds the uncompacted and the compacted points at once."""


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1-64 letters, digits, '_', '-', '.' or ':', starting with a letter or digit"


def _check_name(value: str) -> str:
    """Check a name and intern it: the runtime keys its maps by these strings (``device/point`` keys, summary
    rows, frame layouts), and interned names are one object each however many maps hold them."""
    if not _NAME_RE.match(value):
        raise PydanticCustomError(
            "name",
            "invalid name {value}: use {rule} (no '/', spaces or MQTT wildcards)",
            {"value": repr(value), "rule": NAME_RULE},
        )
    return sys.intern(value)


Name = Annotated[
    str,
    AfterValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": NAME_PATTERN, "description": f"A name: {NAME_RULE}."}),
]
"""A device, point, asset or agent name; it becomes an MQTT topic level, hence the restricted alphabet."""

POINT_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}/[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_POINT_REF_RE = re.compile(POINT_REF_PATTERN)


def _check_point_ref(value: str) -> str:
    if not _POINT_REF_RE.match(value):
        raise PydanticCustomError(
            "point_ref",
            "invalid point reference {value}: write 'device/point' (e.g. motor-plc/speed)",
            {"value": repr(value)},
        )
    return value


PointRef = Annotated[
    str,
    AfterValidator(_check_point_ref),
    WithJsonSchema(
        {"type": "string", "pattern": POINT_REF_PATTERN, "description": "A point as 'device/point'."}
    ),
]
"""A point named from outside its device: ``device/point``."""


def _check_host(value: str) -> str:
    text = value.strip()
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not text or "://" in text or "/" in text or ":" in text or any(c.isspace() for c in text):
        raise PydanticCustomError(
            "host",
            "invalid host {value}: give a host name or IP address only (e.g. 192.168.1.10); "
            "the port goes in 'port'",
            {"value": repr(value)},
        )
    return text


Host = Annotated[str, AfterValidator(_check_host), Field(description="Host name or IP address.")]
Port = Annotated[int, Field(ge=1, le=65535, description="TCP port (1-65535).")]

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class PasswordSource(ConfigModel):
    """Where a password comes from: a file (first line) or an environment variable, never the config."""

    password_file: Path | None = Field(
        default=None,
        description="File whose first line is the password (keep it readable by the agent only).",
    )
    password_env: Annotated[str, Field(pattern=ENV_NAME_PATTERN)] | None = Field(
        default=None, description="Name of the environment variable that holds the password."
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> PasswordSource:
        if self.password_file is not None and self.password_env is not None:
            raise PydanticCustomError(
                "password_sources", "give either password_file or password_env, not both", {}
            )
        return self

    def read_password(self) -> str | None:
        """Return the password from its file or environment variable, ``None`` when none is configured.

        Raises :class:`ConfigError` when the file cannot be read or the variable is not set. The password
        itself never appears in the error.
        """
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    [f"password_file {str(self.password_file)!r}: cannot read: {exc.strerror}"]
                ) from exc
            return text.splitlines()[0] if text else ""
        if self.password_env is not None:
            if self.password_env not in os.environ:
                raise ConfigError([f"password_env: environment variable {self.password_env!r} is not set"])
            return os.environ[self.password_env]
        return None
