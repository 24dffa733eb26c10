"""TLS for the gateway's listener: certificate and key from files, optional client CA (mTLS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["TlsError", "TlsFiles"]


class TlsError(ValueError):
    """A TLS file is missing, unreadable or not PEM; the message names it."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files: the server's chain and key, and the CA that signs client certificates.

    With ``client_ca`` set, clients must present a certificate it signed
    (mutual TLS); the handshake fails for any other client before a request
    is read.
    """

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        chain = _read_pem(self.cert, "certificate", b"CERTIFICATE")
        key = _read_pem(self.key, "private key", b"PRIVATE KEY")
        root = (
            _read_pem(self.client_ca, "client CA", b"CERTIFICATE")
            if self.client_ca is not None
            else None
        )
        return grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=root, require_client_auth=root is not None
        )

    def describe(self) -> str:
        return "mutual TLS" if self.client_ca is not None else "TLS"


def _read_pem(path: Path, what: str, marker: bytes) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN " not in data or marker not in data:
        # Never echo the file's content: it may be a key.
        raise TlsError(f"TLS {what} {path} is not a PEM file holding a {marker.decode()}")
    return data
