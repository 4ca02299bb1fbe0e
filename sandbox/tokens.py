"""RS256 signing keys, JWKS documents and token minting/verification for the sandbox."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _b64u_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class SigningKey:
    """One RSA key with a key id; ``jwk()`` is its public half as published in a JWKS."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex)
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self, **extra: Any) -> dict[str, Any]:
        """The public JWK (``kty``, ``use``, ``kid``, ``n``, ``e``) plus any extra members."""
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64u_uint(numbers.n),
            "e": _b64u_uint(numbers.e),
            **extra,
        }

    def sign(self, claims: dict[str, Any]) -> str:
        """An RS256 JWT over ``claims`` with this key's ``kid`` in the header."""
        return jwt.encode(
            claims, self.private, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"}
        )

    def verify(
        self, token: str, *, audience: str | list[str] | None, issuer: str | None = None
    ) -> dict[str, Any]:
        """Check signature, expiry, audience (and issuer when given); return the claims."""
        options = {"verify_aud": audience is not None, "verify_iss": issuer is not None}
        claims: dict[str, Any] = jwt.decode(
            token,
            self.private.public_key(),
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            options=options,  # type: ignore[arg-type]
            leeway=0,
        )
        return claims


def unverified_kid(token: str) -> str | None:
    """The ``kid`` of a JWT's header, or None when the token is not a JWT."""
    try:
        return jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
