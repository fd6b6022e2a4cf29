"""Pure signal processing and alarm logic: arrays and sample rates in, results with units out.

No I/O, no asyncio, no config parsing; never imports ``edge_agent`` or ``drivers``.
"""
