"""PSK key encryption with Fernet; several comma-separated keys (newest first) allow rotation."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .exceptions import EncryptionError

KEY_VARIABLE = "CARDLINK_ENCRYPTION_KEY"


class PSKCipher:
    """Encrypts PSK keys under the newest key and decrypts under any configured key."""

    def __init__(self, keys: str | None) -> None:
        if not keys or not keys.strip():
            raise EncryptionError(f"{KEY_VARIABLE} not set")
        fernets = []
        for position, key in enumerate(part.strip() for part in keys.split(",")):
            if not key:
                continue
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise EncryptionError(
                    f"{KEY_VARIABLE} key #{position + 1} is malformed: expected a url-safe "
                    "base64 32-byte Fernet key (Fernet.generate_key())"
                ) from None
        if not fernets:
            raise EncryptionError(f"{KEY_VARIABLE} not set")
        self._fernet = MultiFernet(fernets)
        self._newest = fernets[0]
        self.key_count = len(fernets)

    def encrypt(self, plaintext: bytes) -> str:
        """Fernet token (ASCII) for ``plaintext``, under the newest key."""
        if not isinstance(plaintext, bytes | bytearray) or not plaintext:
            raise EncryptionError("PSK key must be non-empty bytes")
        return self._fernet.encrypt(bytes(plaintext)).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        """The plaintext of ``token``; ``EncryptionError`` if no configured key opens it."""
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError, AttributeError):
            raise EncryptionError("Invalid key or corrupted data") from None

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the newest key (checked to decrypt first)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError, AttributeError):
            raise EncryptionError("Invalid key or corrupted data") from None

    def is_current(self, token: str) -> bool:
        """True if ``token`` already opens with the newest key."""
        try:
            self._newest.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def __repr__(self) -> str:
        return f"PSKCipher(keys={self.key_count}, <hidden>)"
