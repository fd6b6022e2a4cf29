"""``edge-agent opcua-cert``: make a self-signed OPC UA client certificate and key for this gateway.

The certificate carries the application URI the OPC UA driver presents (servers check that the two match)
and the gateway's host name; give the servers' administrators the certificate file to trust.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from drivers.opcua.certs import generate_self_signed_cert
from drivers.opcua.spec import OpcUaDeviceSpec

DEFAULT_APPLICATION_URI = OpcUaDeviceSpec.__dataclass_fields__["application_uri"].default


def main(argv: list[str]) -> int:
    """Entry point of ``edge-agent opcua-cert``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="edge-agent opcua-cert", description=__doc__.splitlines()[0])
    parser.add_argument("cert", help="certificate file to write (DER, e.g. client-cert.der)")
    parser.add_argument("key", help="private key file to write (PEM, e.g. client-key.pem; mode 0600)")
    parser.add_argument("--application-uri", default=DEFAULT_APPLICATION_URI,
                        help=f"application URI (default {DEFAULT_APPLICATION_URI}, what the driver presents)")
    parser.add_argument("--hostname", default=socket.gethostname(), help="host name in the certificate")
    parser.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    for path in (Path(args.cert), Path(args.key)):
        if path.exists() and not args.force:
            print(f"edge-agent opcua-cert: {path} exists; use --force to overwrite", file=sys.stderr)
            return 2
    generate_self_signed_cert(args.cert, args.key, args.application_uri, args.hostname, days=args.days)
    print(f"wrote {args.cert} and {args.key} for {args.application_uri} ({args.hostname}), valid {args.days} days")
    return 0
