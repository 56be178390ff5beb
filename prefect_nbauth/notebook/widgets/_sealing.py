"""Sealing a secret in the page for this kernel: no secret crosses a comm message in clear.

A comm message is not ours once it leaves the page: a kernel started with ``--debug``
logs the content of every message it receives, and so may the Jupyter server or a
proxy that logs websocket frames. So the login form's secret boxes never send what
was typed; they send it *sealed* for the one kernel that made the form:

* the kernel makes an RSA key pair per form (:class:`SealingKey`, 2048 bits) and
  gives the page its public half (a synced trait: a public key is public);
* the page (``secret_input.js``, WebCrypto's ``crypto.subtle``, nothing to install)
  draws a fresh AES-256-GCM key, encrypts the value with it, and encrypts that key
  with RSA-OAEP (SHA-256). A secret can be longer than RSA-OAEP alone carries
  (190 bytes for this key; a gateway's JWT is often 800), hence the one-time AES key;
* the kernel opens it with the private half, which never leaves this process and is
  dropped when the form closes (:meth:`SealingKey.drop`).

What a message carries (``SEALED_FIELDS``, all base64)::

    {"scheme": "RSA-OAEP-256+A256GCM", "key": RSA-OAEP(aes_key), "iv": 12 bytes,
     "data": AES-GCM(value, additional data = SCHEME)}

:func:`seal_for` does what the page does, from the public key alone: for scripts and
tests (:func:`prefect_nbauth.testing.widgets.type_secret`).
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..._secrets import Secret

__all__ = ["SCHEME", "SEALED_FIELDS", "SealingKey", "seal_for"]

SCHEME = "RSA-OAEP-256+A256GCM"
SEALED_FIELDS = ("scheme", "key", "iv", "data")
KEY_BITS = 2048
#: A sealed value larger than this is refused unopened (a secret is a few KB at most).
MAX_SEALED_CHARS = 64_000


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class SealingKey:
    """The key pair of one form: the page seals with :attr:`public_spki`, only this object opens.

    ``repr`` shows neither half. After :meth:`drop` nothing can be opened any more.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._private: rsa.RSAPrivateKey | None = rsa.generate_private_key(public_exponent=65537,
                                                                           key_size=KEY_BITS)
        der = self._private.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        #: The public half, SubjectPublicKeyInfo DER in base64 (what ``crypto.subtle.importKey("spki")`` takes).
        self.public_spki = base64.b64encode(der).decode("ascii")

    @property
    def dropped(self) -> bool:
        return self._private is None

    def open(self, sealed: Any) -> Secret | None:
        """The value inside ``sealed`` (a message's dict), or None if it is not one this key opens.

        Never raises and never says why (a malformed message, another key, a dropped
        key all look the same), so nothing of the message ends up in an exception or a log.
        """
        with self._lock:
            private = self._private
        if private is None or not isinstance(sealed, dict) or sealed.get("scheme") != SCHEME:
            return None
        try:
            parts = {}
            for name in SEALED_FIELDS[1:]:
                text = sealed.get(name)
                if not isinstance(text, str) or len(text) > MAX_SEALED_CHARS:
                    return None
                parts[name] = base64.b64decode(text, validate=True)
            aes_key = private.decrypt(parts["key"], _oaep())
            plain = AESGCM(aes_key).decrypt(parts["iv"], parts["data"], SCHEME.encode("ascii"))
            return Secret(plain.decode("utf-8"))
        except (ValueError, InvalidTag, binascii.Error, UnicodeDecodeError, TypeError):
            return None

    def drop(self) -> None:
        """Forget the private half: what was sealed for it can no longer be opened."""
        with self._lock:
            self._private = None

    def __repr__(self) -> str:
        return f"<SealingKey RSA-{KEY_BITS}{' dropped' if self.dropped else ''}>"


def seal_for(public_spki: str, value: str) -> dict[str, str]:
    """Seal ``value`` for the holder of ``public_spki``, exactly as the page does."""
    public = serialization.load_der_public_key(base64.b64decode(public_spki))
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    aes_key = AESGCM.generate_key(bit_length=256)
    iv = os.urandom(12)
    data = AESGCM(aes_key).encrypt(iv, value.encode("utf-8"), SCHEME.encode("ascii"))

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return {"scheme": SCHEME, "key": b64(public.encrypt(aes_key, _oaep())), "iv": b64(iv), "data": b64(data)}
