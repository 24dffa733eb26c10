"""Bearer-token authentication and per-token function allow-lists.

The token file holds only SHA-256 digests of the tokens, never the tokens:
a leaked file (or a ``kubectl get secret`` of it) lets nobody in. Tokens are
random 256-bit strings made by :func:`new_token`, so a fast digest is enough;
a slow password hash would add its cost to every call and buy nothing
against a secret with that much entropy.

The file (YAML)::

    tokens:
      - name: batch-runner          # the caller's identity in logs, metrics, limits
        sha256: 9f86d08…            # hash_token(token)
        functions: [find, greyscale] # what it may call; ["*"] for everything
        kserve: false                # whether it may use the KServe v2 (Triton) API

A request carries ``authorization: Bearer <token>`` metadata. Authentication
is a server interceptor, so no servicer knows about it; the allow-list for
``Functions/Call`` needs the request's function name, so the interceptor
wraps that one handler to check it before the call runs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml

from toolmesh_gateway.interception import metadata_value, reject_handler, wrap_unary

__all__ = [
    "AuthInterceptor",
    "TokenGrant",
    "TokenStore",
    "TokenStoreError",
    "hash_token",
    "new_token",
]

#: Prefix of every token :func:`new_token` makes: recognisable in a secret scanner's rules.
TOKEN_PREFIX = "tm_"
_GRANT_KEYS = frozenset({"name", "sha256", "functions", "kserve"})


class TokenStoreError(ValueError):
    """The token file is unreadable or malformed; the message names the file and entry."""


def new_token() -> str:
    """A fresh random token (256 bits); show it once, store only :func:`hash_token` of it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What one token may do. ``name`` is safe to log; the token itself never is."""

    name: str
    digest: str
    functions: frozenset[str]
    kserve: bool = False

    def may_call(self, function: str) -> bool:
        return "*" in self.functions or function in self.functions


class TokenStore:
    """Token digests → grants; lookups compare digests in constant time."""

    def __init__(self, grants: Iterable[TokenGrant]) -> None:
        self._grants: dict[str, TokenGrant] = {}
        for grant in grants:
            if grant.digest in self._grants:
                raise TokenStoreError(
                    f"tokens {self._grants[grant.digest].name!r} and {grant.name!r} "
                    "have the same digest"
                )
            self._grants[grant.digest] = grant

    def __len__(self) -> int:
        return len(self._grants)

    def authenticate(self, token: str) -> TokenGrant | None:
        digest = hash_token(token)
        grant = self._grants.get(digest)
        # The dict lookup is by digest, so its timing reveals nothing about the token;
        # compare_digest keeps the final check constant-time as well.
        if grant is not None and hmac.compare_digest(grant.digest, digest):
            return grant
        return None

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        try:
            document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise TokenStoreError(f"{path}: cannot read the token file: {exc}") from exc
        entries = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise TokenStoreError(f"{path}: expected a list under 'tokens'")
        return cls(_grant(path, i, entry) for i, entry in enumerate(entries))

    @staticmethod
    def entry(
        name: str, token: str, functions: Iterable[str], *, kserve: bool = False
    ) -> dict[str, Any]:
        """The YAML entry for a token (its digest, never the token)."""
        return {
            "name": name,
            "sha256": hash_token(token),
            "functions": sorted(functions),
            "kserve": kserve,
        }


def _grant(path: Path, index: int, entry: object) -> TokenGrant:
    where = f"{path}: tokens[{index}]"
    if not isinstance(entry, dict):
        raise TokenStoreError(f"{where}: expected a mapping with name, sha256, functions")
    unknown = set(entry) - _GRANT_KEYS
    if unknown:
        raise TokenStoreError(f"{where}: unknown keys {sorted(unknown)}")
    name, digest, functions = entry.get("name"), entry.get("sha256"), entry.get("functions")
    if not isinstance(name, str) or not name:
        raise TokenStoreError(f"{where}: 'name' must be a non-empty string")
    if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        raise TokenStoreError(
            f"{where} ({name}): 'sha256' must be the 64-hex-digit SHA-256 of the token "
            "(a plaintext token does not belong in this file)"
        )
    if not isinstance(functions, list) or not all(isinstance(f, str) for f in functions):
        raise TokenStoreError(f"{where} ({name}): 'functions' must be a list of names or ['*']")
    kserve = entry.get("kserve", False)
    if not isinstance(kserve, bool):
        raise TokenStoreError(f"{where} ({name}): 'kserve' must be true or false")
    return TokenGrant(name, digest.lower(), frozenset(functions), kserve)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


#: Methods open without a token: load balancers and kubelets probe health unauthenticated.
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."
KSERVE_PREFIX = "/inference.GRPCInferenceService/"
CALL_METHOD = "/toolmesh.v1.Functions/Call"


def bearer_token(metadata: Mapping[str, str] | Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, if there is one."""
    value = metadata_value(metadata, "authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED without a valid token; PERMISSION_DENIED outside the token's grant."""

    def __init__(self, store: TokenStore, *, open_reflection: bool = True) -> None:
        self._store = store
        self._open = (HEALTH_PREFIX, REFLECTION_PREFIX) if open_reflection else (HEALTH_PREFIX,)

    def identify(self, details: grpc.HandlerCallDetails) -> str | None:
        """The grant name of the call's token: the client identity for admission limits."""
        token = bearer_token(details.invocation_metadata)
        grant = self._store.authenticate(token) if token is not None else None
        return grant.name if grant is not None else None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(self._open):
            return handler  # unknown methods: grpc answers UNIMPLEMENTED
        token = bearer_token(handler_call_details.invocation_metadata)
        if token is None:
            return reject_handler(
                handler,
                grpc.StatusCode.UNAUTHENTICATED,
                "missing credentials: send metadata 'authorization: Bearer <token>'",
            )
        grant = self._store.authenticate(token)
        if grant is None:
            return reject_handler(handler, grpc.StatusCode.UNAUTHENTICATED, "invalid token")
        if method.startswith(KSERVE_PREFIX) and not grant.kserve:
            return reject_handler(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {grant.name!r} may not use the KServe inference API",
            )
        if method == CALL_METHOD and "*" not in grant.functions:
            return wrap_unary(handler, _allow_list_check(grant))
        return handler


def _allow_list_check(
    grant: TokenGrant,
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]:
    async def check(request: Any, context: grpc.aio.ServicerContext) -> None:
        function = getattr(request, "function", "")
        if not grant.may_call(function):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {grant.name!r} may not call function {function!r}",
            )

    return check
