#!/usr/bin/env python3
"""Interop peer backed by Python `jwcrypto`. Same protocol as jose.mjs (see interop/README.md):

    caps | genkey ALG | public ALG KEYFILE | sign ALG KEYFILE | verify ALG KEYFILE ISS AUD | jws-sign ALG KEYFILE
    | jws-verify ALG KEYFILE | topem ALG KEYFILE [pkcs8|spki] | frompem ALG PEMFILE
    | thumbprint KEYFILE | serve

KEYFILE holds a JWK or a PEM key. Exit status: 0 success, 1 rejected, 2 anything else.
"""

import json
import sys
from importlib.metadata import version

from jwcrypto import jwk, jws, jwt
from jwcrypto.common import JWException

import peerlib
from peerlib import Rejected, UsageError

JWS_ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA"]

# What jwcrypto's JWK.generate is asked for, per JWS algorithm.
GENERATE = {
    "HS256": {"kty": "oct", "size": 256},
    "HS384": {"kty": "oct", "size": 384},
    "HS512": {"kty": "oct", "size": 512},
    **{a: {"kty": "RSA", "size": 2048} for a in JWS_ALGS if a[:2] in ("RS", "PS")},
    "ES256": {"kty": "EC", "crv": "P-256"},
    "ES384": {"kty": "EC", "crv": "P-384"},
    "ES512": {"kty": "EC", "crv": "P-521"},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
}


def load_key(path):
    text = peerlib.read_text(path)
    if peerlib.is_pem(text):
        return jwk.JWK.from_pem(text.encode())
    return jwk.JWK.from_json(text)


def export(key):
    # An oct key is all secret; jwcrypto only exports it as "private".
    private = key.has_private or key.get("kty") == "oct"
    return key.export(private_key=private, as_dict=True)


def op_caps(args, stdin):
    return {"library": "jwcrypto", "version": version("jwcrypto"), "jws": JWS_ALGS,
            "genkey": JWS_ALGS, "pem": ["pkcs8", "spki"], "thumbprint": True,
            "notes": {f"pem:{f}": "jwcrypto exports PEM as PKCS#8 and SPKI only"
                      for f in ("pkcs1", "pkcs1-public", "sec1")}}


def op_genkey(args, stdin):
    (alg,) = args
    return export(jwk.JWK.generate(**GENERATE[alg]))


def op_public(args, stdin):
    alg, keyfile = args
    key = jwk.JWK.from_json(peerlib.read_text(keyfile))
    if key.get("kty") == "oct":
        raise UsageError("public: a symmetric key has no public half")
    return key.export_public(as_dict=True)


def op_sign(args, stdin):
    alg, keyfile = args
    token = jwt.JWT(header={"alg": alg, "typ": "JWT"}, claims=json.loads(stdin))
    token.make_signed_token(load_key(keyfile))
    return token.serialize()


def op_verify(args, stdin):
    alg, keyfile, iss, aud = args
    key = load_key(keyfile)
    try:
        token = jwt.JWT(jwt=stdin.decode().strip(), key=key, algs=[alg],
                        check_claims={"iss": iss, "aud": aud, "exp": None})
    except JWException as e:
        raise Rejected(f"{type(e).__name__}: {e}") from e
    return json.loads(token.claims)


def op_jws_sign(args, stdin):
    alg, keyfile = args
    obj = jws.JWS(stdin)
    obj.add_signature(load_key(keyfile), alg=alg, protected=json.dumps({"alg": alg}))
    return obj.serialize(compact=True)


def op_jws_verify(args, stdin):
    alg, keyfile = args
    key = load_key(keyfile)
    obj = jws.JWS()
    obj.allowed_algs = [alg]
    try:
        obj.deserialize(stdin.decode().strip())
        obj.verify(key, alg=alg)
    except JWException as e:
        raise Rejected(f"{type(e).__name__}: {e}") from e
    return obj.payload


def op_topem(args, stdin):
    alg, keyfile, *fmt = args
    fmt = fmt[0] if fmt else "pkcs8"
    key = jwk.JWK.from_json(peerlib.read_text(keyfile))
    if fmt == "spki":
        return key.export_to_pem(private_key=False).decode()
    if fmt != "pkcs8":
        raise UsageError(f"topem: format {fmt} not supported")
    if not key.has_private:
        raise UsageError("topem: not a private key")
    return key.export_to_pem(private_key=True, password=None).decode()


def op_frompem(args, stdin):
    alg, pemfile = args
    return export(jwk.JWK.from_pem(peerlib.read_text(pemfile).encode()))


def op_thumbprint(args, stdin):
    (keyfile,) = args
    return jwk.JWK.from_json(peerlib.read_text(keyfile)).thumbprint()


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
    "thumbprint": op_thumbprint,
}

if __name__ == "__main__":
    sys.exit(peerlib.main(OPS))
