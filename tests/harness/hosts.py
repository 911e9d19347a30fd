"""Host entries as a stack file gives them, each with a well-formed SSH host key. No Pulumi."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def host_key(name: str) -> str:
    """A well-formed ed25519 SSH host key, the same for a name every time (seeded by it)."""
    seed = hashlib.sha256(name.encode()).digest()
    public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH,
                               serialization.PublicFormat.OpenSSH).decode()


def host(name: str, address: str, **extra: Any) -> dict[str, Any]:
    """A host entry as a stack file gives it, with its SSH host key."""
    return {"name": name, "address": address, "hostKey": host_key(name), **extra}
