"""The auth service: credentials, access tokens (EdDSA JWTs), refresh tokens, JWKS.

Run one replica: `python -m services.auth` (env: see services.auth.settings and
services.platform.settings). Rotate the signing key: `python -m services.auth rotate-keys`.
"""
