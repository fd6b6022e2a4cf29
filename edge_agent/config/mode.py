"""How this process defines the config models: validating (pydantic) or lean (plain classes).

``edge-agent run`` switches to lean models before anything imports them. Its config is then validated by a
short-lived child process (:mod:`edge_agent.config.isolated`), and the agent keeps only the result, unpickled
into the lean classes: the same classes, fields, properties and methods, the same equality, but no pydantic
in memory (pydantic and the model classes' validators cost ~10 MB of a gateway's resident memory).

Every other command (check, demo, analyze, tests) validates in process with pydantic, the default.
"""

from __future__ import annotations

import sys

_LEAN = False
_MODELS_MODULE = "edge_agent.config._pydantic"


def use_lean_models() -> bool:
    """Define the config models without pydantic in this process, if they are not defined yet.

    Returns whether the models are lean: ``False`` when they were already imported the validating way (an
    in-process test, say), which stays correct, only heavier.
    """
    global _LEAN
    if _MODELS_MODULE not in sys.modules:
        _LEAN = True
    return _LEAN


def lean_models() -> bool:
    """Whether this process defines the config models without pydantic (see :func:`use_lean_models`)."""
    return _LEAN
