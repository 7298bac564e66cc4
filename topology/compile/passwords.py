"""RabbitMQ's salted password hashes: tell whether a password changed without ever storing it.

The management API returns `password_hash` (base64 of a 4-byte salt followed by
`hash(salt + password)`) and `hashing_algorithm`. A plan compares the spec's password with that
hash, and creates or rotates a user by sending a freshly salted hash, so neither the plan nor
its saved JSON ever holds the password itself. Pure: the salt is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SHA256 = "rabbit_password_hashing_sha256"
ALGORITHMS = {
    SHA256: hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}
SALT_BYTES = 4


def fresh_salt() -> bytes:
    """A random salt, as RabbitMQ makes one for each password it hashes."""
    return os.urandom(SALT_BYTES)


def hash_password(password: str, salt: bytes, algorithm: str = SHA256) -> str:
    """The `password_hash` RabbitMQ would store for `password` with this salt."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a RabbitMQ salt is {SALT_BYTES} bytes")
    digest = ALGORITHMS[algorithm](salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def password_matches(password: str, password_hash: str, algorithm: str) -> bool:
    """True when `password` is the one behind the broker's hash; False when it differs, when the
    hash is malformed or empty (a user without a password), or the algorithm is unknown: then the
    plan rotates the password, which is always safe."""
    hasher = ALGORITHMS.get(algorithm)
    if hasher is None or not password_hash:
        return False
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except ValueError:
        return False
    salt, expected = raw[:SALT_BYTES], raw[SALT_BYTES:]
    if len(salt) != SALT_BYTES or not expected:
        return False
    return hmac.compare_digest(hasher(salt + password.encode("utf-8")).digest(), expected)
