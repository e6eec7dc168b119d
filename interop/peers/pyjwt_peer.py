#!/usr/bin/env python3
"""Interop peer backed by Python `PyJWT` (keys as `cryptography` objects, which PyJWT uses).
Same protocol as jose.mjs (see interop/README.md):

    caps | genkey ALG | public ALG KEYFILE | sign ALG KEYFILE | verify ALG KEYFILE ISS AUD | jws-sign ALG KEYFILE
    | jws-verify ALG KEYFILE | topem ALG KEYFILE [FMT] | frompem ALG PEMFILE | serve

PyJWT has no key generation of its own: `genkey` makes the key with `cryptography` and
serializes it with PyJWT's `Algorithm.to_jwk`. `frompem` parses with PyJWT's
`Algorithm.prepare_key`; `topem` serializes with `cryptography`, in any of PEM_FORMATS
(pkcs8 is the default). PyJWT has no RFC 7638
thumbprint, so there is no `thumbprint` op.
KEYFILE holds a JWK or a PEM key. Exit status: 0 success, 1 rejected, 2 anything else.
"""

import json
import os
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms
from jwt.api_jws import PyJWS

import peerlib
from peerlib import Rejected, UsageError

JWS_ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA"]

# PEM forms `topem` writes: name -> (private?, cryptography format).
PEM_FORMATS = {
    "pkcs8": (True, serialization.PrivateFormat.PKCS8),
    "spki": (False, serialization.PublicFormat.SubjectPublicKeyInfo),
    "pkcs1": (True, serialization.PrivateFormat.TraditionalOpenSSL),     # RSA only
    "pkcs1-public": (False, serialization.PublicFormat.PKCS1),           # RSA only
    "sec1": (True, serialization.PrivateFormat.TraditionalOpenSSL),      # EC only
}

# PyJWT implements JWS only: no JWE module, so no `encrypt`/`decrypt` ops and no nested JWT.
NO_JWE = "PyJWT implements JWS/JWT only (no JWE, hence no nested JWT)"

CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def algorithm(alg):
    return get_default_algorithms()[alg]


def load_key(alg, path):
    """A PEM key is handed to PyJWT as text (PyJWT parses it); a JWK goes through PyJWK."""
    text = peerlib.read_text(path)
    if peerlib.is_pem(text):
        return text
    return jwt.PyJWK(json.loads(text), algorithm=alg).key


def op_caps(args, stdin):
    return {"library": "PyJWT", "version": jwt.__version__, "jws": JWS_ALGS,
            "genkey": JWS_ALGS, "pem": list(PEM_FORMATS), "thumbprint": False,
            "jwe": [], "nested": False,
            "notes": {"thumbprint": "PyJWT has no RFC 7638 thumbprint API",
                      "jwe": NO_JWE, "nested": NO_JWE}}


def op_genkey(args, stdin):
    (alg,) = args
    if alg.startswith("HS"):
        key = os.urandom(int(alg[2:]) // 8)
    elif alg[:2] in ("RS", "PS"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg in CURVES:
        key = ec.generate_private_key(CURVES[alg]())
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise UsageError(f"genkey: {alg} not supported")
    return algorithm(alg).to_jwk(key, as_dict=True)


def op_public(args, stdin):
    alg, keyfile = args
    key = jwt.PyJWK(json.loads(peerlib.read_text(keyfile)), algorithm=alg).key
    if not hasattr(key, "public_key"):
        raise UsageError("public: a symmetric key has no public half")
    return algorithm(alg).to_jwk(key.public_key(), as_dict=True)


def op_sign(args, stdin):
    alg, keyfile = args
    return jwt.encode(json.loads(stdin), load_key(alg, keyfile), algorithm=alg,
                      headers={"typ": "JWT"})


def op_verify(args, stdin):
    alg, keyfile, iss, aud = args
    key = load_key(alg, keyfile)
    try:
        return jwt.decode(stdin.decode().strip(), key, algorithms=[alg], issuer=iss,
                          audience=aud, options={"require": ["exp"]})
    except jwt.InvalidTokenError as e:
        raise Rejected(f"{type(e).__name__}: {e}") from e


def op_jws_sign(args, stdin):
    alg, keyfile = args
    return PyJWS().encode(stdin, load_key(alg, keyfile), algorithm=alg)


def op_jws_verify(args, stdin):
    alg, keyfile = args
    key = load_key(alg, keyfile)
    try:
        return PyJWS().decode(stdin.decode().strip(), key, algorithms=[alg])
    except jwt.InvalidTokenError as e:
        raise Rejected(f"{type(e).__name__}: {e}") from e


def op_topem(args, stdin):
    alg, keyfile, *fmt = args
    fmt = fmt[0] if fmt else "pkcs8"
    if fmt not in PEM_FORMATS:
        raise UsageError(f"topem: format {fmt} not supported")
    private, form = PEM_FORMATS[fmt]
    if (fmt.startswith("pkcs1") and alg[:2] not in ("RS", "PS")) or (
            fmt == "sec1" and alg not in CURVES):
        raise UsageError(f"topem: no {fmt} form for {alg} keys")
    key = jwt.PyJWK(json.loads(peerlib.read_text(keyfile)), algorithm=alg).key
    if not private:
        public = key.public_key() if hasattr(key, "private_bytes") else key
        return public.public_bytes(serialization.Encoding.PEM, form).decode()
    if not hasattr(key, "private_bytes"):
        raise UsageError("topem: not a private key")
    return key.private_bytes(serialization.Encoding.PEM, form,
                             serialization.NoEncryption()).decode()


def op_frompem(args, stdin):
    alg, pemfile = args
    impl = algorithm(alg)
    return impl.to_jwk(impl.prepare_key(peerlib.read_text(pemfile)), as_dict=True)


OPS = {
    "caps": op_caps,
    "genkey": op_genkey,
    "public": op_public,
    "sign": op_sign,
    "verify": op_verify,
    "jws-sign": op_jws_sign,
    "jws-verify": op_jws_verify,
    "topem": op_topem,
    "frompem": op_frompem,
}

if __name__ == "__main__":
    sys.exit(peerlib.main(OPS))
