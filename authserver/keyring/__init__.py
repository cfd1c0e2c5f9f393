"""Signing keys: storage (store), lifecycle (rotation), the process's view (keyset), signing."""

from .keyset import KeySet
from .signer import Signer

__all__ = ["KeySet", "Signer"]
