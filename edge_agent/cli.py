"""The ``edge-agent`` command line: run, check, schema, simulate, demo, analyze, remote, buffer, opcua-cert.

Each sub-command imports what it needs only when it runs, so ``edge-agent check`` stays quick and a
Modbus-only gateway never loads the OPC UA stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from edge_agent import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _print_config_errors(errors: list[str]) -> None:
    print(f"{len(errors)} error(s) in the configuration:", file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config file; print a summary (exit 0) or every error (exit 2)."""
    from edge_agent.config import config_summary, load_config
    from edge_agent.config.files import missing_files
    from edge_agent.errors import ConfigError

    path = args.config or getattr(args, "config_option", None)
    if path is None:
        print("edge-agent check: give the config file: edge-agent check CONFIG (or -c CONFIG)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        cfg = load_config(Path(path))
    except ConfigError as exc:
        _print_config_errors(exc.errors)
        return EXIT_CONFIG
    print(config_summary(cfg))
    problems = missing_files(cfg)
    if problems:
        print(f"\n{len(problems)} referenced file(s) or password variable(s) missing or unreadable here:",
              file=sys.stderr)
        for line in problems:
            print(f"  {path}: {line}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"\n{args.config}: OK")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the config file."""
    from edge_agent.config import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT and SIGTERM."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the agent until SIGINT/SIGTERM."""
    from edge_agent.config.mode import use_lean_models

    use_lean_models()  # before any config model is imported: the running agent never holds pydantic
    from edge_agent.native_heap import NativeHeap

    NativeHeap().fix_mmap_threshold()  # before the heap holds large blocks (see edge_agent.native_heap)
    from edge_agent.config.isolated import ConfigCheckFailed, load_config_checked
    from edge_agent.data_dir_lock import DataDirInUseError
    from edge_agent.errors import ConfigError
    from edge_agent.logging_setup import register_secret, setup_logging
    from edge_agent.runtime import run_agent

    path = Path(args.config)
    try:
        cfg = load_config_checked(path)
    except ConfigError as exc:
        _print_config_errors(exc.errors)
        return EXIT_CONFIG
    except ConfigCheckFailed as exc:  # not a verdict on the config: exit so that systemd tries again
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        password = cfg.mqtt.read_password()
    except ConfigError as exc:  # the field's place in the file, as every config error gives it
        _print_config_errors([f"{path}: mqtt.{error}" for error in exc.errors])
        return EXIT_CONFIG
    if password:
        register_secret(password)
    # The config's service section sets the logging; command-line flags win.
    service = cfg.service
    setup_logging(level=args.log_level or service.log_level, fmt=args.log_format or service.log_format,
                  component_levels=dict(service.component_levels))
    try:
        return asyncio.run(run_agent(cfg, path, duration_s=args.duration))
    except (DataDirInUseError, ConfigCheckFailed) as exc:  # the latter: the config restored at start-up
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve the simulated plant over Modbus TCP (and OPC UA) until interrupted."""
    from edge_agent.simulate import run_simulator

    return asyncio.run(run_simulator(args))


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulated plant + embedded broker + agent + live terminal view, all on this machine."""
    from edge_agent.data_dir_lock import DataDirInUseError
    from edge_agent.demo import run_demo
    from edge_agent.simulate import check_scenario

    try:
        check_scenario(args.scenario)
    except ValueError as exc:
        print(f"edge-agent demo: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return asyncio.run(run_demo(args))
    except DataDirInUseError as exc:  # --config naming a data directory an agent already runs on
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command that parses here (analyze/remote/buffer parse their own)."""
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error", "critical"],
                        help="log level (default: the config's service.log_level, else info)")
    parser.add_argument("--log-format", default=None, choices=["text", "json"],
                        help="log line format (default: the config's service.log_format, else text)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent")
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS (default: run until signalled)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate a config file and summarise it")
    p.add_argument("config", nargs="?", default=None, help="YAML config file")
    p.add_argument("-c", "--config", dest="config_option", default=None, metavar="CONFIG",
                   help="the same file, given as for run and buffer")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("schema", help="print the config file's JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("simulate", help="serve the simulated plant (Modbus TCP, OPC UA)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--modbus-port", type=int, default=5020, help="Modbus TCP port (default 5020)")
    p.add_argument("--opcua-port", type=int, default=None, help="also serve OPC UA on this port")
    p.add_argument("--scenario", default="healthy", help="healthy or a fault that grows over minutes")
    p.add_argument("--seed", type=int, default=1, help="random seed (reproducible runs)")
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="simulated plant + embedded broker + agent + live view")
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    p.add_argument("--config", default=None, help="config to run (default: the packaged demo config)")
    p.add_argument("--summary-interval", type=float, default=10.0,
                   help="summary interval in seconds for the demo (default 10)")
    p.add_argument("--plain", action="store_true", help="print lines instead of redrawing the screen")
    p.add_argument("--scenario", default="outer_race",
                   help="simulated fault that grows over minutes (default outer_race; healthy for none)")
    p.set_defaults(func=cmd_demo)

    # Parsed by their own modules (main() hands them over before this parser runs); listed for --help.
    for name, summary in DELEGATED_HELP.items():
        sub.add_parser(name, help=summary, add_help=False)
    return parser


DELEGATED_HELP = {
    "analyze": "vibration diagnostics of a recorded waveform file (npy, csv, wav, mat), as the agent runs them",
    "remote": "talk to a running agent over MQTT: config push/get/history, commands (see 'remote --help')",
    "buffer": "inspect the outbox on disk: stats, peek, purge (see 'buffer --help')",
    "opcua-cert": "make a self-signed OPC UA client certificate and key for this gateway",
}
DELEGATED = {
    "analyze": "edge_agent.analyze",
    "remote": "edge_agent.remote.cli",
    "buffer": "edge_agent.buffer_cli",
    "opcua-cert": "edge_agent.opcua_cert",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edge-agent`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        module = importlib.import_module(DELEGATED[argv[0]])
        return int(module.main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    from edge_agent.logging_setup import setup_logging

    setup_logging(level=args.log_level or "info", fmt=args.log_format or "text")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_FAILURE
    logging.getLogger(__name__).debug("edge-agent %s: %s", __version__, args.command)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
