"""Stand-ins for the pydantic names the config models use, for a process that never validates a config.

With these, the model modules define plain classes: the fields are ordinary instance attributes, the
properties and methods are the models' own, and the validators are inert functions. Instances are never
built here; they arrive validated from a child process, pickled as pydantic pickles them
(:mod:`edge_agent.config.isolated`), and :meth:`BaseModel.__setstate__` takes that state as it is.
Equality and hashing follow pydantic's: same class and same field values; frozen models hash, others do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

F = TypeVar("F")

ConfigDict = dict


class PydanticCustomError(ValueError):
    """pydantic-core's custom error, for the validators' ``raise`` lines (never reached: nothing validates)."""

    def __init__(self, error_type: str, message_template: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message_template.format(**(context or {})))
        self.type = error_type
        self.context = context


class _Marker:
    """An annotation marker that only keeps what it was given (``Field(ge=1)``, ``AfterValidator(f)``...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


class Field(_Marker):
    pass


class AfterValidator(_Marker):
    pass


class BeforeValidator(_Marker):
    pass


class WrapValidator(_Marker):
    pass


class WithJsonSchema(_Marker):
    pass


class Discriminator(_Marker):
    pass


class Tag(_Marker):
    pass


class ValidationInfo:
    """Only named in validator signatures."""


class ValidatorFunctionWrapHandler:
    """Only named in validator signatures."""


def field_validator(*_fields: str, **_options: Any) -> Callable[[F], F]:
    """The validator stays an ordinary (class) method."""
    return lambda function: function


def model_validator(*, mode: str) -> Callable[[F], F]:
    """The validator stays an ordinary (class) method."""
    return lambda function: function


class BaseModel:
    """A config model without pydantic: attributes, properties and methods, filled by unpickling only.

    Nothing here reads ``self.__dict__``: CPython 3.11 keeps an instance's attributes in a compact values
    array and builds the dict object only when asked for it (64 bytes more per point, for good). The field
    names come from the first unpickled instance of each class (pydantic pickles every field, in order).
    """

    model_config: ClassVar[dict[str, Any]] = {}
    _lean_frozen: ClassVar[bool] = False
    _lean_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__()
        merged: dict[str, Any] = {}
        for base in reversed(cls.__mro__):  # pydantic merges model_config along the bases
            merged.update(base.__dict__.get("model_config", {}))
        merged.update(kwargs)
        cls.model_config = merged
        cls._lean_frozen = bool(merged.get("frozen"))
        cls.__hash__ = BaseModel._frozen_hash if cls._lean_frozen else None  # type: ignore[assignment]

    def __init__(self, **_data: Any) -> None:
        raise TypeError(
            f"{type(self).__name__}: this process holds the config models without pydantic and cannot build "
            "or validate one; load configs through edge_agent.config.isolated"
        )

    def _lean_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in type(self)._lean_fields)

    def _lean_items(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self)._lean_fields}

    def __getstate__(self) -> dict[str, Any]:
        """The state in pydantic's layout, so that a validating process can unpickle it too."""
        fields = self._lean_items()
        return {"__dict__": fields, "__pydantic_extra__": None, "__pydantic_fields_set__": set(fields),
                "__pydantic_private__": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Take the fields from pydantic's pickled state (:meth:`__getstate__` gives the same layout)."""
        fields = state["__dict__"]
        cls = type(self)
        if "_lean_fields" not in cls.__dict__:
            cls._lean_fields = tuple(fields)
        set_attr = object.__setattr__
        for name, value in fields.items():
            set_attr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._lean_frozen:
            raise TypeError(f"{type(self).__name__} is frozen: its '{name}' cannot be assigned")
        object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, BaseModel)
        return self._lean_values() == other._lean_values()

    def _frozen_hash(self) -> int:
        return hash((type(self), self._lean_values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._lean_items().items())
        return f"{type(self).__name__}({fields})"
