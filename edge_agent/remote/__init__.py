"""Remote configuration and remote diagnostics over MQTT: the agent's side and the engineer's CLI.

Pure parts (merge patch, signing, history, audit, guard) have no network code; ``service`` wires them to
a :class:`~edge_agent.remote.service.RemoteTransport`; ``cli`` is the ``edge-agent remote`` command.
"""
