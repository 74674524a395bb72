"""Google credentials by reference, and when a token is due for refresh (pure policy).

What a run is given is always a *reference* (``sources.gdrive_credentials``: a file path;
``sources.gdrive_token_env``: the name of an environment variable; else
``GOOGLE_APPLICATION_CREDENTIALS``), never the secret itself, since settings are stored
in the ledger. The file a reference names is read here and nowhere else:

* a **service-account key** (JSON, ``"type": "service_account"``, as the Cloud console
  downloads it): each token is bought with a JWT signed RS256 with its private key
  (``cryptography``, the ``docmill[gdrive]`` extra), ``grant_type`` jwt-bearer, at the
  token endpoint; ``sources.gdrive_subject`` impersonates a user (domain-wide delegation);
* an **authorized-user file** (JSON, ``"type": "authorized_user"``, as
  ``gcloud auth application-default login`` writes it): refresh-token grant, no crypto;
* an **access token** (a file holding only the token, or the variable named by
  ``sources.gdrive_token_env``, e.g. from ``gcloud auth print-access-token``): used as it
  is and read again when the API answers 401 (a wrapper may have refreshed it).

Exchanged tokens are refreshed *before* they expire (:func:`refresh_due`): a quarter of
their lifetime, at most five minutes, ahead. Every secret value (the key, its PEM lines,
client secret, refresh token, each access token) is listed by :meth:`secrets` so the
client can scrub it from any message.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from docmill.settings import SourceSettings
from docmill.sources.backend import BackendError

REFRESH_MARGIN_S = 300.0  # refresh at most this long before expiry ...
REFRESH_SHARE = 0.25  # ... and at most a quarter of the token's lifetime before
JWT_LIFETIME_S = 3600  # Google accepts assertions valid for at most an hour
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and its life, in the client's clock's seconds."""

    value: str = field(repr=False)
    issued_at: float
    expires_at: float = math.inf  # unknown (a token given as is)


def refresh_due(token: AccessToken | None, now: float) -> bool:
    """A token must be fetched (none yet) or refreshed (close to expiry): pure."""
    if token is None:
        return True
    if math.isinf(token.expires_at):
        return False
    lifetime = max(0.0, token.expires_at - token.issued_at)
    margin = min(REFRESH_MARGIN_S, lifetime * REFRESH_SHARE)
    return now >= token.expires_at - margin


class Credentials(Protocol):
    """What the client needs from a credential, whatever its kind."""

    @property
    def describe(self) -> str:
        """Safe to show: the kind and a public name (never a secret)."""
        ...

    def token_form(self, epoch: float, token_url: str, scope: str) -> dict[str, str] | None:
        """The form to POST to the token endpoint (``epoch``: the wall clock, for a JWT's
        claims); None: no exchange (a token as is)."""
        ...

    def given_token(self) -> str:
        """The token as given (read again from its reference each call)."""
        ...

    def secrets(self) -> list[str]: ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _missing_crypto(exc: ImportError) -> BackendError:
    return BackendError(
        f"service-account keys need the cryptography package ({exc.name or exc}): "
        "pip install 'docmill[gdrive]'"
    )


class ServiceAccountKey:
    """A service account's key file: tokens bought with signed JWTs."""

    def __init__(self, info: Mapping[str, Any], subject: str = "") -> None:
        try:
            self.client_email = str(info["client_email"])
            self._pem = str(info["private_key"])
        except KeyError as exc:
            raise BackendError(f"the service-account key file has no {exc.args[0]}") from None
        self.key_id = str(info.get("private_key_id") or "")
        self.subject = subject
        self._key: Any = None

    @property
    def describe(self) -> str:
        who = f"service account {self.client_email}"
        return f"{who} as {self.subject}" if self.subject else who

    def _signer(self) -> Any:
        if self._key is None:
            try:
                from cryptography.hazmat.primitives import serialization
            except ImportError as exc:
                raise _missing_crypto(exc) from None
            try:
                self._key = serialization.load_pem_private_key(self._pem.encode(), password=None)
            except (ValueError, TypeError):
                raise BackendError(
                    f"the private key of {self.describe} cannot be read (not an unencrypted "
                    "PEM RSA key)"
                ) from None
        return self._key

    def assertion(self, now_epoch: float, token_url: str, scope: str) -> str:
        """The JWT (RS256) the token endpoint exchanges for an access token."""
        try:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
        except ImportError as exc:
            raise _missing_crypto(exc) from None
        header = {"alg": "RS256", "typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        issued = int(now_epoch)
        claims: dict[str, Any] = {
            "iss": self.client_email, "scope": scope, "aud": token_url,
            "iat": issued, "exp": issued + JWT_LIFETIME_S,
        }
        if self.subject:
            claims["sub"] = self.subject
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._signer().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def token_form(self, epoch: float, token_url: str, scope: str) -> dict[str, str] | None:
        return {"grant_type": JWT_BEARER, "assertion": self.assertion(epoch, token_url, scope)}

    def given_token(self) -> str:  # pragma: no cover - never called for an exchange
        raise BackendError("a service account has no token of its own")

    def secrets(self) -> list[str]:
        lines = [line for line in self._pem.splitlines() if len(line) >= 16 and "-----" not in line]
        return [self._pem, self._pem.replace("\n", "\\n"), *lines]


class AuthorizedUser:
    """An OAuth client and a user's refresh token (gcloud's application-default file)."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        try:
            self.client_id = str(info["client_id"])
            self._client_secret = str(info["client_secret"])
            self._refresh_token = str(info["refresh_token"])
        except KeyError as exc:
            raise BackendError(f"the authorized-user file has no {exc.args[0]}") from None

    @property
    def describe(self) -> str:
        return f"authorized user (OAuth client {self.client_id})"

    def token_form(self, epoch: float, token_url: str, scope: str) -> dict[str, str] | None:
        return {
            "grant_type": "refresh_token", "client_id": self.client_id,
            "client_secret": self._client_secret, "refresh_token": self._refresh_token,
        }

    def given_token(self) -> str:  # pragma: no cover - never called for an exchange
        raise BackendError("an authorized user has no token of its own")

    def secrets(self) -> list[str]:
        return [self._client_secret, self._refresh_token]


class TokenReference:
    """An access token kept elsewhere: an environment variable or a file, read on use."""

    def __init__(self, *, env: str = "", path: str = "",
                 environ: Mapping[str, str] | None = None) -> None:
        self.env = env
        self.path = path
        self._environ = os.environ if environ is None else environ
        self._seen: list[str] = []

    @property
    def describe(self) -> str:
        return f"access token from ${self.env}" if self.env else f"access token from {self.path}"

    def token_form(self, epoch: float, token_url: str, scope: str) -> dict[str, str] | None:
        return None

    def given_token(self) -> str:
        if self.env:
            value = self._environ.get(self.env, "").strip()
            if not value:
                raise BackendError(
                    f"sources.gdrive_token_env names {self.env}, which is not set (or empty)"
                )
        else:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    value = handle.read().strip()
            except OSError as exc:
                raise BackendError(f"cannot read the token file {self.path}: {exc.strerror}") from None
            if not value:
                raise BackendError(f"the token file {self.path} is empty")
        if value not in self._seen:
            self._seen.append(value)
        return value

    def secrets(self) -> list[str]:
        return list(self._seen)


def load_credentials(options: SourceSettings, environ: Mapping[str, str] | None = None) -> Credentials:
    """The credential the settings refer to (see the module docstring)."""
    env = os.environ if environ is None else environ
    if options.gdrive_token_env:
        return TokenReference(env=options.gdrive_token_env, environ=env)
    path = options.gdrive_credentials or env.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    if not path:
        raise BackendError(
            "no Google credentials: set sources.gdrive_credentials to a service-account key "
            "file (or an authorized-user file, or a file holding an access token), "
            "sources.gdrive_token_env to the name of a variable holding an access token, "
            "or GOOGLE_APPLICATION_CREDENTIALS"
        )
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise BackendError(f"cannot read the credentials file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BackendError(f"the credentials file {path} is not text") from None
    if not text.lstrip().startswith("{"):
        return TokenReference(path=path)
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise BackendError(f"the credentials file {path} is not valid JSON") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        return ServiceAccountKey(info, options.gdrive_subject)
    if kind == "authorized_user":
        return AuthorizedUser(info)
    raise BackendError(
        f"the credentials file {path} is of type {kind!r}: docmill reads service_account "
        "and authorized_user files, or a file holding an access token"
    )
