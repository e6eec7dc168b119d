#!/usr/bin/env python3
"""Interop peer backed by Python `jwcrypto`. Same protocol as jose.mjs (see interop/README.md):

    caps | genkey ALG | public ALG KEYFILE | sign ALG KEYFILE | verify ALG KEYFILE ISS AUD | jws-sign ALG KEYFILE
    | jws-verify ALG KEYFILE | topem ALG KEYFILE [pkcs8|spki] | frompem ALG PEMFILE
    | thumbprint KEYFILE | encrypt ALG ENC KEYFILE [--zip DEF] [--cty CTY] [--json]
    | decrypt KEYFILE [--alg ALG] [--enc ENC] | sign-encrypt SIGALG SIGKEY ALG ENC ENCKEY
    | decrypt-verify SIGALG SIGKEY ALG ENC DECKEY ISS AUD | serve

`genkey ALG [CRV|ENC]` also makes JWE keys: ECDH-ES* on curve CRV, dir sized by ENC, and for
PBES2 a random 32-byte password as an oct JWK (jwcrypto takes the password as the key's bytes).

KEYFILE holds a JWK or a PEM key. Exit status: 0 success, 1 rejected, 2 anything else.
"""

import json
import sys
from importlib.metadata import version

from jwcrypto import jwa, jwe, jwk, jws, jwt
from jwcrypto.common import JWException

import peerlib
from peerlib import Rejected, UsageError

JWS_ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA"]

# JWE: every RFC 7518 key management jwcrypto registers except RSA1_5 (which tokengate lacks);
# jwcrypto has no RSA-OAEP-384 or RSA-OAEP-512.
JWE_ALGS = ["dir", "A128KW", "A192KW", "A256KW", "A128GCMKW", "A192GCMKW", "A256GCMKW",
            "RSA-OAEP", "RSA-OAEP-256",
            "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW",
            "PBES2-HS256+A128KW", "PBES2-HS384+A192KW", "PBES2-HS512+A256KW"]
JWE_ENCS = ["A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "A128GCM", "A192GCM", "A256GCM"]
ECDH_CURVES = ["P-256", "P-384", "P-521", "X25519"]
# Content-key sizes, for dir keys.
ENC_BITS = {"A128CBC-HS256": 256, "A192CBC-HS384": 384, "A256CBC-HS512": 512,
            "A128GCM": 128, "A192GCM": 192, "A256GCM": 256}

# PBES2: the iteration count this peer encrypts with (jwcrypto's default is 8192). It
# decrypts with jwcrypto's default cap (jwa.default_max_pbkdf2_iterations, 16384), which
# tokengate's default count (10000) must fit: a user's jwcrypto is not tuned to us.
P2C = 4096

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
            "genkey": JWS_ALGS + JWE_ALGS, "pem": ["pkcs8", "spki"], "thumbprint": True,
            "jwe": [[a, e] for a in JWE_ALGS for e in JWE_ENCS], "ecdh_curves": ECDH_CURVES,
            "jwe_zip": True, "jwe_json": True, "nested": True,
            "notes": {**{f"pem:{f}": "jwcrypto exports PEM as PKCS#8 and SPKI only"
                         for f in ("pkcs1", "pkcs1-public", "sec1")},
                      **{a: f"jwcrypto does not implement {a} (its JWE registry has RSA-OAEP "
                            f"and RSA-OAEP-256 only)" for a in ("RSA-OAEP-384", "RSA-OAEP-512")}}}


def op_genkey(args, stdin):
    alg, *param = args
    if alg in GENERATE:
        return export(jwk.JWK.generate(**GENERATE[alg]))
    if alg == "dir":
        if not param:
            raise UsageError("genkey dir ENC")
        return export(jwk.JWK.generate(kty="oct", size=ENC_BITS[param[0]]))
    if alg[0] == "A" and alg.endswith("KW"):
        return export(jwk.JWK.generate(kty="oct", size=int(alg[1:4])))
    if alg.startswith("PBES2"):
        return export(jwk.JWK.generate(kty="oct", size=256))
    if alg.startswith("RSA-OAEP"):
        return export(jwk.JWK.generate(kty="RSA", size=2048))
    if alg.startswith("ECDH-ES"):
        crv = param[0] if param else "P-256"
        return export(jwk.JWK.generate(kty="OKP" if crv == "X25519" else "EC", crv=crv))
    raise UsageError(f"genkey: {alg} not supported")


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


def options(args, flags=()):
    """`--name value` and `--flag` options after the positional arguments."""
    out, i = {}, 0
    while i < len(args):
        if not args[i].startswith("--"):
            raise UsageError(f"unexpected argument {args[i]}")
        name = args[i][2:]
        if name in flags:
            out[name] = True
            i += 1
        elif i + 1 < len(args):
            out[name] = args[i + 1]
            i += 2
        else:
            raise UsageError(f"{args[i]} needs a value")
    return out


def jwe_header(alg, enc, **extra):
    header = {"alg": alg, "enc": enc, **{k: v for k, v in extra.items() if v}}
    if alg.startswith("PBES2"):
        header["p2c"] = P2C
    return header


def op_encrypt(args, stdin):
    if len(args) < 3:
        raise UsageError("encrypt ALG ENC KEYFILE [--zip DEF] [--cty CTY] [--json]")
    alg, enc, keyfile, *rest = args
    opt = options(rest, flags=("json",))
    obj = jwe.JWE(stdin, protected=json.dumps(jwe_header(alg, enc, zip=opt.get("zip"),
                                                         cty=opt.get("cty"))))
    obj.add_recipient(load_key(keyfile))
    return obj.serialize(compact=not opt.get("json"))


def op_decrypt(args, stdin):
    if not args:
        raise UsageError("decrypt KEYFILE [--alg ALG] [--enc ENC]")
    keyfile, *rest = args
    opt = options(rest)
    key = load_key(keyfile)
    obj = jwe.JWE()
    allowed = [x for x in (opt.get("alg"), opt.get("enc")) if x]
    if allowed:
        # jwcrypto checks alg and enc against one list: whichever is not given stays open.
        defaults = jwe.default_allowed_algs
        if "alg" not in opt:
            allowed += [a for a in defaults if a in JWE_ALGS]
        if "enc" not in opt:
            allowed += [e for e in defaults if e in JWE_ENCS]
        obj.allowed_algs = allowed
    try:
        obj.deserialize(stdin.decode().strip(), key=key)
    except JWException as e:
        raise Rejected(f"{type(e).__name__}: {e}") from e
    return obj.payload


# Nested JWT with jwcrypto's JWT class on both layers: make_signed_token, then a JWT whose
# claims are the compact JWS, make_encrypted_token with "cty": "JWT".
def op_sign_encrypt(args, stdin):
    sig_alg, sig_keyfile, alg, enc, enc_keyfile = args
    inner = jwt.JWT(header={"alg": sig_alg, "typ": "JWT"}, claims=json.loads(stdin))
    inner.make_signed_token(load_key(sig_keyfile))
    outer = jwt.JWT(header=jwe_header(alg, enc, cty="JWT"), claims=inner.serialize())
    outer.make_encrypted_token(load_key(enc_keyfile))
    return outer.serialize()


def op_decrypt_verify(args, stdin):
    sig_alg, sig_keyfile, alg, enc, dec_keyfile, iss, aud = args
    dec_key, sig_key = load_key(dec_keyfile), load_key(sig_keyfile)
    try:
        outer = jwt.JWT(jwt=stdin.decode().strip(), key=dec_key, algs=[alg, enc],
                        expected_type="JWE", check_claims=False)
        cty = json.loads(outer.header).get("cty")
        if str(cty).upper() != "JWT":
            raise Rejected(f"outer cty is {cty!r}, not JWT")
        inner = jwt.JWT(jwt=outer.claims, key=sig_key, algs=[sig_alg], expected_type="JWS",
                        check_claims={"iss": iss, "aud": aud, "exp": None})
    except JWException as e:
        raise Rejected(f"{type(e).__name__}: {e}") from e
    return json.loads(inner.claims)


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
    "encrypt": op_encrypt,
    "decrypt": op_decrypt,
    "sign-encrypt": op_sign_encrypt,
    "decrypt-verify": op_decrypt_verify,
}

if __name__ == "__main__":
    sys.exit(peerlib.main(OPS))
