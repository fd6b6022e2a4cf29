"""Simulated PLCs over one shared plant model, for tests, demos and benchmarks.

- :mod:`drivers.sim.plant`: the process (motor, pump, tank) as a pure function of time and seed;
- :mod:`drivers.sim.register_map`: the one table mapping plant values to Modbus registers;
- :mod:`drivers.sim.modbus_server`: a real Modbus TCP server over the plant, with faults on demand;
- :mod:`drivers.sim.vibration`: the machine's accelerometer signal.
"""
