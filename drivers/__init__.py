"""Southbound I/O: protocol drivers and simulated PLCs.

Drivers know their protocol and nothing about MQTT, alarms or config files. They never import
``edge_agent`` or ``diagnostics``.
"""
