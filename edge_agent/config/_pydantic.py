"""The pydantic names the config models are written with: pydantic's own, or the lean stand-ins.

Which one is decided once, when this module is first imported (see :mod:`edge_agent.config.mode`). The
model modules import these names from here, never from pydantic directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_agent.config.mode import lean_models

if TYPE_CHECKING or not lean_models():
    from pydantic import (
        AfterValidator,
        BaseModel,
        BeforeValidator,
        ConfigDict,
        Discriminator,
        Field,
        Tag,
        ValidationInfo,
        ValidatorFunctionWrapHandler,
        WithJsonSchema,
        WrapValidator,
        field_validator,
        model_validator,
    )
    from pydantic_core import PydanticCustomError
else:
    from edge_agent.config._lean import (
        AfterValidator,
        BaseModel,
        BeforeValidator,
        ConfigDict,
        Discriminator,
        Field,
        PydanticCustomError,
        Tag,
        ValidationInfo,
        ValidatorFunctionWrapHandler,
        WithJsonSchema,
        WrapValidator,
        field_validator,
        model_validator,
    )

__all__ = [
    "AfterValidator",
    "BaseModel",
    "BeforeValidator",
    "ConfigDict",
    "Discriminator",
    "Field",
    "PydanticCustomError",
    "Tag",
    "ValidationInfo",
    "ValidatorFunctionWrapHandler",
    "WithJsonSchema",
    "WrapValidator",
    "field_validator",
    "model_validator",
]
