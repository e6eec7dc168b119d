#!/usr/bin/env python3
"""Interop matrix: tokengate's CLI against real JOSE libraries (the peers in peers/).

Standard library only. Run through `interop/run`, which installs the pinned peers and builds
tokengate; or directly with the venv's python once they are installed:

    interop/.venv/bin/python interop/run.py [--spawn] [--list] [--peer NAME]... [--alg ALG]...
                                            [--enc ENC]... [--family NAME]... [--keep]

The tokengate binary is $TOKENGATE_BIN (default: target/debug/tokengate under the repo root).
Every row of the table is a real check; a case a peer cannot run (its library lacks the
algorithm or the operation) is left out of the matrix and named in a note, never counted.
How many checks each peer runs and how many it leaves out, and why, is pinned in
interop/expected.json: a plan that differs fails the run (see load_pinned).
Exit status: 0 all passed, 1 a check failed, no check ran or the totals differ from
interop/expected.json, 2 the harness itself could not start (or the file is unreadable).

How the matrix is built: `case_templates` lists what is checked against each peer (a Case per
row and column of the table); KINDS says, per kind of token (JWT, JWS, JWE, nested JWT), how
each side produces and consumes one, how the result is checked and how to tamper with it
(interop/README.md walks through it).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OP_TIMEOUT = 120  # seconds for any single operation (RSA key generation included)

ISS = "https://issuer.example"
AUD = "https://api.example"

# Every JWS algorithm tokengate implements; the universe the peers are matched against.
JWS_ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA"]

# Every JWE key management (RSA1_5 aside, which tokengate refuses) and content encryption
# tokengate implements, and the curves ECDH-ES* run on.
JWE_ALGS = ["dir", "A128KW", "A192KW", "A256KW", "A128GCMKW", "A192GCMKW", "A256GCMKW",
            "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512",
            "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW",
            "PBES2-HS256+A128KW", "PBES2-HS384+A192KW", "PBES2-HS512+A256KW"]
JWE_ENCS = ["A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "A128GCM", "A192GCM", "A256GCM"]
ECDH_CURVES = ["P-256", "P-384", "P-521", "X25519"]
ALGS = JWS_ALGS + JWE_ALGS

# Keys that are one secret (no public half, no PEM form): shared as they are.
SYMMETRIC = {"HS256", "HS384", "HS512", "dir", "A128KW", "A192KW", "A256KW", "A128GCMKW",
             "A192GCMKW", "A256GCMKW", "PBES2-HS256+A128KW", "PBES2-HS384+A192KW",
             "PBES2-HS512+A256KW"}

# One key management per family (and curve type): JWE in the flattened JSON serialization and
# with DEFLATE is checked with these, for every enc.
JWE_SUBSET = [("dir", None), ("A256KW", None), ("A256GCMKW", None), ("RSA-OAEP-256", None),
              ("ECDH-ES", "P-256"), ("ECDH-ES+A256KW", "X25519"), ("PBES2-HS512+A256KW", None)]

# Asymmetric JWE keys handed over as JWK and as PEM (each RSA-OAEP, ECDH-ES+A256KW on each
# curve), used with this enc.
JWE_KEY_HANDOVER = ([(a, None) for a in ("RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384",
                                         "RSA-OAEP-512")]
                    + [("ECDH-ES+A256KW", c) for c in ECDH_CURVES])
JWE_KEY_HANDOVER_ENC = "A256GCM"

# Nested JWTs: signed with NESTED_SIG by the issuer's key, then encrypted to the recipient's.
NESTED_SIG = "ES256"
NESTED = [("ECDH-ES+A256KW", "P-256", "A256GCM"), ("RSA-OAEP-256", None, "A256GCM")]

# PEM forms: name -> (holds the private key?, label, first line). tokengate exports PKCS#8 and
# SPKI and imports all of them; what a peer writes is its caps "pem" list.
PEM_FORMATS = {
    "pkcs8": (True, "PKCS#8", "-----BEGIN PRIVATE KEY-----"),
    "spki": (False, "SPKI", "-----BEGIN PUBLIC KEY-----"),
    "pkcs1": (True, "PKCS#1", "-----BEGIN RSA PRIVATE KEY-----"),
    "pkcs1-public": (False, "PKCS#1", "-----BEGIN RSA PUBLIC KEY-----"),
    "sec1": (True, "SEC1", "-----BEGIN EC PRIVATE KEY-----"),
}

# Members that carry key material (compared when a key crosses a format boundary); "alg",
# "kid", "use", "key_ops", "ext" are metadata each library fills in its own way.
KEY_MEMBERS = ("kty", "crv", "x", "y", "n", "e", "d", "p", "q", "dp", "dq", "qi", "k")

TG = "tokengate"


# --------------------------------------------------------------------------------------------
# Processes


@dataclass
class Proc:
    status: int
    stdout: bytes
    stderr: str

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace").strip()

    def brief(self) -> str:
        err = " ".join(self.stderr.split())
        return f"exit {self.status}" + (f": {err[:300]}" if err else "")


class Failure(Exception):
    """A check (or something it needed) failed; the message says what and why."""


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokengate:
    """The CLI under test. Inputs go through files, as a user would pass them."""

    name = TG

    def __init__(self, binary: Path):
        self.binary = binary

    def run(self, args: list[str], stdin: bytes = b"") -> Proc:
        try:
            p = subprocess.run([str(self.binary), *args], input=stdin, capture_output=True,
                               timeout=OP_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return Proc(-1, b"", f"timed out after {OP_TIMEOUT}s")
        return Proc(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))

    def op(self, what: str, args: list[str], stdin: bytes = b"") -> Proc:
        p = self.run(args, stdin)
        if p.status != 0:
            raise Failure(f"tokengate {what} failed ({p.brief()}): tokengate {' '.join(args)}")
        return p


class Peer:
    """A peer script. In serve mode one long-lived process answers every request (same
    dispatcher as the CLI, without a process start per operation); --spawn runs each
    operation as `<command> <op> <args...>` with the input on stdin."""

    def __init__(self, name: str, command: list[str], spawn: bool):
        self.name = name
        self.command = command
        self.spawn = spawn
        self.proc: subprocess.Popen | None = None
        self.caps: dict = {}
        self.lock = threading.Lock()  # one request at a time to the serve process

    def start(self) -> None:
        if self.spawn:
            return
        self.proc = subprocess.Popen([*self.command, "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     cwd=ROOT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def run(self, argv: list[str], stdin: bytes = b"") -> Proc:
        if self.spawn:
            try:
                p = subprocess.run([*self.command, *argv], input=stdin, capture_output=True,
                                   timeout=OP_TIMEOUT, check=False, cwd=ROOT)
            except subprocess.TimeoutExpired:
                return Proc(-1, b"", f"timed out after {OP_TIMEOUT}s")
            except OSError as e:  # e.g. no `node` on PATH
                return Proc(-1, b"", f"cannot start {self.command[0]}: {e}")
            return Proc(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))
        with self.lock:
            return self.request(argv, stdin)

    def request(self, argv: list[str], stdin: bytes) -> Proc:
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self.start()
        assert self.proc is not None
        request = json.dumps({"argv": argv, "stdin": base64.b64encode(stdin).decode()})
        self.proc.stdin.write(request.encode() + b"\n")
        self.proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(OP_TIMEOUT):
                self.proc.kill()
                self.stop()
                return Proc(-1, b"", f"timed out after {OP_TIMEOUT}s")
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            return Proc(-1, b"", "the peer process died")
        reply = json.loads(line)
        return Proc(reply["status"], base64.b64decode(reply["stdout"]), reply["stderr"])

    def op(self, what: str, argv: list[str], stdin: bytes = b"") -> Proc:
        p = self.run(argv, stdin)
        if p.status != 0:
            raise Failure(f"{self.name} {what} failed ({p.brief()}): {self.name} {' '.join(argv)}")
        return p


# --------------------------------------------------------------------------------------------
# Kinds of token: how each side produces and consumes one, and how to tamper with it.
#
# tokengate argv builders get (case, keys, input file); peer argv builders get (case, keys) and
# the input on stdin; `keys` are the files that side uses (RoleKeys). Both print the token
# (produce) or the payload (consume).


@dataclass(frozen=True)
class RoleKeys:
    key: str                  # the signing/verification key (JWS) or the encryption key (JWE)
    sig: str | None = None    # nested JWT: the signing (producer) or verification key


def flip_segment(index: int) -> Callable[[str], str]:
    """Flips one bit in the middle of a compact token's segment `index` (decoded, so the
    result is still canonical base64url and only the cryptography can notice)."""

    def tamper(token: str) -> str:
        parts = token.split(".")
        raw = bytearray(unb64u(parts[index]))
        if not raw:
            raise Failure(f"segment {index} is empty")
        raw[len(raw) // 2] ^= 0x01
        parts[index] = b64u(bytes(raw))
        return ".".join(parts)

    return tamper


def replace_claims(token: str) -> str:
    """Swaps the JWT's claims for a forged set (valid JSON), keeping header and signature."""
    parts = token.split(".")
    claims = json.loads(unb64u(parts[1]))
    claims["sub"] = "mallory"
    parts[1] = b64u(json.dumps(claims, separators=(",", ":")).encode())
    return ".".join(parts)


# JWE tampering works on both serializations: the compact token is split into these members
# and put back together the same way.
JWE_MEMBERS = ("protected", "encrypted_key", "iv", "ciphertext", "tag")


def jwe_parts(token: str) -> tuple[dict, bool]:
    """A JWE's members (base64url strings, plus "header" etc. in JSON) and whether it is JSON."""
    if token.lstrip().startswith("{"):
        return json.loads(token), True
    parts = token.split(".")
    if len(parts) != 5:
        raise Failure(f"not a compact JWE: {token[:120]!r}")
    return dict(zip(JWE_MEMBERS, parts)), False


def jwe_join(parts: dict, is_json: bool) -> str:
    return json.dumps(parts) if is_json else ".".join(parts[m] for m in JWE_MEMBERS)


def flip_jwe(member: str) -> Callable[[str], str]:
    """Flips one bit in the middle of a JWE member (ciphertext or tag), keeping it canonical
    base64url, in either serialization."""

    def tamper(token: str) -> str:
        parts, is_json = jwe_parts(token)
        raw = bytearray(unb64u(parts[member]))
        if not raw:
            raise Failure(f"the JWE's {member} is empty")
        raw[len(raw) // 2] ^= 0x01
        parts[member] = b64u(bytes(raw))
        return jwe_join(parts, is_json)

    return tamper


def add_header_member(token: str) -> str:
    """Adds a member to the JWE's protected header (still valid JSON with the same alg, enc and
    key-management parameters): only the authentication tag over it can notice."""
    parts, is_json = jwe_parts(token)
    header = json.loads(unb64u(parts["protected"]))
    header["tampered"] = "mallory"
    parts["protected"] = b64u(json.dumps(header, separators=(",", ":")).encode())
    return jwe_join(parts, is_json)


@dataclass(frozen=True)
class Kind:
    label: str
    segments: int  # of the compact serialization: 3 for JWS, 5 for JWE
    # Whether the producer holds the private key (signing) or the consumer does (decryption).
    producer_private: bool
    tg_produce: Callable[..., list[str]]
    tg_consume: Callable[..., list[str]]
    peer_produce: Callable[..., list[str]]
    peer_consume: Callable[..., list[str]]
    make_payload: Callable[["Case"], bytes]
    check: Callable[["Case", bytes, str, Proc], None]
    tamperers: dict[str, Callable[[str], str]]
    # Whether a peer (by its `caps` answer) supports the case's algorithm(s) for this kind.
    supported: Callable[[dict, "Case"], bool]


def jwt_payload(case: "Case") -> bytes:
    now = int(time.time())
    return json.dumps({
        "iss": ISS, "aud": AUD, "sub": "interop", "iat": now, "exp": now + 600,
        "jti": secrets.token_hex(8), "scope": "read write", "name": "Zoë ✓ \"q\"",
        "case": case.key(), "n": [1, 2.5, True, None],
    }, ensure_ascii=False).encode()


def check_jwt(case: "Case", payload: bytes, token: str, out: Proc) -> None:
    sent = json.loads(payload)
    header = json.loads(unb64u(token.split(".")[0]))
    if header.get("alg") != case.alg:
        raise Failure(f"token header alg is {header.get('alg')!r}, expected {case.alg}")
    in_token = json.loads(unb64u(token.split(".")[1]))
    for name, value in sent.items():
        if name == "iat" and case.producer == TG:
            continue  # tokengate's `jwt sign` stamps iat itself
        if in_token.get(name) != value:
            raise Failure(f"claim {name!r} is {in_token.get(name)!r} in the token, sent {value!r}")
    try:
        got = json.loads(out.stdout)
    except ValueError as e:
        raise Failure(f"consumer printed no JSON claims: {out.text()[:200]!r}") from e
    if got != in_token:
        raise Failure(f"consumer returned claims {got!r}, token holds {in_token!r}")


def jws_payload(case: "Case") -> bytes:
    # Arbitrary bytes (not UTF-8, not JSON) that must come back exactly.
    return b"interop \x00\xff\xfe payload " + secrets.token_bytes(16)


def check_jws(case: "Case", payload: bytes, token: str, out: Proc) -> None:
    parts = token.split(".")
    header = json.loads(unb64u(parts[0]))
    if header.get("alg") != case.alg:
        raise Failure(f"token header alg is {header.get('alg')!r}, expected {case.alg}")
    if unb64u(parts[1]) != payload:
        raise Failure("the token does not carry the payload that was signed")
    if out.stdout != payload:
        raise Failure(f"consumer returned {out.stdout[:80]!r}, expected {payload[:80]!r}")


def jwe_payload(case: "Case") -> bytes:
    # Arbitrary bytes that must come back exactly; compressible text when DEFLATE is asked for.
    if case.zip:
        return b"interop DEFLATE " * 200 + secrets.token_hex(16).encode()
    return b"interop \x00\xff\xfe plaintext " + secrets.token_bytes(16)


def jwe_header(token: str) -> tuple[dict, dict, bool]:
    """The JWE's protected header, its joint header (protected, shared and per-recipient
    unprotected members together) and whether it is JSON."""
    parts, is_json = jwe_parts(token)
    protected = json.loads(unb64u(parts["protected"])) if parts.get("protected") else {}
    joint = {**parts.get("unprotected", {}), **parts.get("header", {}), **protected}
    return protected, joint, is_json


def check_jwe(case: "Case", payload: bytes, token: str, out: Proc) -> None:
    protected, header, is_json = jwe_header(token)
    if (header.get("alg"), header.get("enc")) != (case.alg, case.enc):
        raise Failure(f"JWE header has alg {header.get('alg')!r} enc {header.get('enc')!r}, "
                      f"expected {case.alg} {case.enc}")
    if is_json != case.json:
        raise Failure(f"the JWE is {'JSON' if is_json else 'compact'}, expected "
                      f"{'flattened JSON' if case.json else 'compact'}")
    if is_json and ("recipients" in json.loads(token) or "ciphertext" not in json.loads(token)):
        raise Failure("not a flattened JSON JWE")
    ciphertext = unb64u(jwe_parts(token)[0]["ciphertext"])
    if case.zip:
        if protected.get("zip") != "DEF":
            raise Failure(f"protected header has zip {protected.get('zip')!r}, expected DEF")
        if len(ciphertext) >= len(payload):
            raise Failure(f"{len(payload)} bytes of repetitive plaintext gave {len(ciphertext)} "
                          f"bytes of ciphertext: not compressed")
    elif "zip" in header:
        raise Failure(f"unexpected zip {header['zip']!r} in the header")
    if out.stdout != payload:
        raise Failure(f"consumer returned {out.stdout[:80]!r}, expected {payload[:80]!r}")


def check_nested(case: "Case", payload: bytes, token: str, out: Proc) -> None:
    protected, header, _ = jwe_header(token)
    if (header.get("alg"), header.get("enc")) != (case.alg, case.enc):
        raise Failure(f"JWE header has alg {header.get('alg')!r} enc {header.get('enc')!r}, "
                      f"expected {case.alg} {case.enc}")
    if str(protected.get("cty", "")).upper() != "JWT":
        raise Failure(f"outer header has cty {protected.get('cty')!r}, expected JWT")
    sent = json.loads(payload)
    try:
        got = json.loads(out.stdout)
    except ValueError as e:
        raise Failure(f"consumer printed no JSON claims: {out.text()[:200]!r}") from e
    for name, value in sent.items():
        if name == "iat" and case.producer == TG:
            continue  # tokengate's `jwt sign` stamps iat itself
        if got.get(name) != value:
            raise Failure(f"claim {name!r} came out as {got.get(name)!r}, sent {value!r}")
    if set(got) - set(sent) or not isinstance(got.get("iat"), int):
        raise Failure(f"consumer returned claims {got!r}, sent {sent!r}")


JWE_TAMPERERS = {"ciphertext": flip_jwe("ciphertext"), "tag": flip_jwe("tag"),
                 "header": add_header_member}


def jwe_supported(caps: dict, case: "Case") -> bool:
    """[alg, enc] is in the peer's caps "jwe" (for a key-only case, any pair with alg), and
    the curve in its "ecdh_curves"."""
    pairs = caps.get("jwe", [])
    ok = (any(a == case.alg for a, _ in pairs) if case.enc is None
          else [case.alg, case.enc] in pairs)
    return ok and (case.crv is None or case.crv in caps.get("ecdh_curves", []))


KINDS: dict[str, Kind] = {
    "jwt": Kind(
        label="JWT",
        segments=3,
        producer_private=True,
        tg_produce=lambda c, k, inp: ["jwt", "sign", "--key", k.key, "--alg", c.alg,
                                      "--claims", inp],
        tg_consume=lambda c, k, inp: ["jwt", "verify", "--key", k.key, "--alg", c.alg,
                                      "--iss", ISS, "--aud", AUD, inp],
        peer_produce=lambda c, k: ["sign", c.alg, k.key],
        peer_consume=lambda c, k: ["verify", c.alg, k.key, ISS, AUD],
        make_payload=jwt_payload,
        check=check_jwt,
        tamperers={"signature": flip_segment(2), "claims": replace_claims},
        supported=lambda caps, c: c.alg in caps.get("jws", []),
    ),
    "jws": Kind(
        label="JWS (binary payload)",
        segments=3,
        producer_private=True,
        tg_produce=lambda c, k, inp: ["jws", "sign", "--key", k.key, "--alg", c.alg, inp],
        tg_consume=lambda c, k, inp: ["jws", "verify", "--key", k.key, "--alg", c.alg, inp],
        peer_produce=lambda c, k: ["jws-sign", c.alg, k.key],
        peer_consume=lambda c, k: ["jws-verify", c.alg, k.key],
        make_payload=jws_payload,
        check=check_jws,
        tamperers={"signature": flip_segment(2), "payload": flip_segment(1)},
        supported=lambda caps, c: c.alg in caps.get("jws", []),
    ),
    # Encrypted to the consumer's key; the consumer is told the alg and enc to accept.
    "jwe": Kind(
        label="JWE",
        segments=5,
        producer_private=False,
        tg_produce=lambda c, k, inp: ["jwe", "encrypt", "--key", k.key, "--alg", c.alg,
                                      "--enc", c.enc, *(["--zip", "DEF"] if c.zip else []),
                                      *(["--json"] if c.json else []), inp],
        tg_consume=lambda c, k, inp: ["jwe", "decrypt", "--key", k.key, "--alg", c.alg,
                                      "--enc", c.enc, *(["--json"] if c.json else []), inp],
        peer_produce=lambda c, k: ["encrypt", c.alg, c.enc, k.key,
                                   *(["--zip", "DEF"] if c.zip else []),
                                   *(["--json"] if c.json else [])],
        peer_consume=lambda c, k: ["decrypt", k.key, "--alg", c.alg, "--enc", c.enc],
        make_payload=jwe_payload,
        check=check_jwe,
        tamperers=JWE_TAMPERERS,
        supported=jwe_supported,
    ),
    # A JWT signed (NESTED_SIG) with the producer's key, then encrypted to the consumer's.
    "nested": Kind(
        label="nested JWT",
        segments=5,
        producer_private=False,
        tg_produce=lambda c, k, inp: ["jwt", "sign", "--key", k.sig, "--alg", NESTED_SIG,
                                      "--claims", inp, "--encrypt-key", k.key,
                                      "--encrypt-alg", c.alg, "--enc", c.enc],
        tg_consume=lambda c, k, inp: ["jwt", "verify", "--key", k.sig, "--alg", NESTED_SIG,
                                      "--iss", ISS, "--aud", AUD, "--decrypt-key", k.key,
                                      "--decrypt-alg", c.alg, "--enc", c.enc, inp],
        peer_produce=lambda c, k: ["sign-encrypt", NESTED_SIG, k.sig, c.alg, c.enc, k.key],
        peer_consume=lambda c, k: ["decrypt-verify", NESTED_SIG, k.sig, c.alg, c.enc, k.key,
                                   ISS, AUD],
        make_payload=jwt_payload,
        check=check_nested,
        tamperers=JWE_TAMPERERS,
        supported=lambda caps, c: bool(caps.get("nested")) and jwe_supported(caps, c),
    ),
}


# --------------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    """One check. `check` is "token" (produce, maybe tamper, consume), "thumbprint" or
    "pem-import". `key_by`/`producer` are TG or "peer"; for pem-import, `producer` is the side
    whose PEM the other side imports."""

    peer: str
    family: str       # table section: "JWS", "JWK", "JWE", "JWE keys", "nested JWT"
    title: str        # row label, without the peer and direction
    column: str       # column label (the JWS algorithm, the JWE enc, ...)
    check: str
    alg: str
    key_by: str = TG
    key_form: str = "jwk"
    producer: str = TG
    kind: str = "jwt"
    enc: str | None = None   # JWE content encryption (unused by JWS cases)
    crv: str | None = None   # curve for keys whose alg does not imply one (ECDH-ES)
    tamper: str | None = None
    pem_format: str = "pkcs8"   # for pem-import: the PEM_FORMATS entry exported
    zip: bool = False        # JWE: compress (zip DEF)
    json: bool = False       # JWE: flattened JSON serialization instead of compact
    requires: tuple[str, ...] = ()   # peer caps the case needs, besides the algorithm

    def consumer(self) -> str:
        return "peer" if self.producer == TG else TG

    def side(self, role: str) -> str:
        return self.peer if role == "peer" else TG

    def direction(self) -> str:
        if self.check == "thumbprint":
            return f"{TG} = {self.peer}"
        return f"{self.side(self.producer)} -> {self.side(self.consumer())}"

    def key(self) -> str:
        return "/".join(str(x) for x in (self.peer, self.check, self.kind, self.alg, self.enc,
                                         self.crv, self.key_by, self.key_form, self.producer,
                                         self.tamper, self.pem_format, self.zip, self.json))

    def key_param(self) -> str | None:
        """What the key depends on besides its algorithm: the curve (ECDH-ES*) or, for dir,
        the enc (the key is the content key)."""
        return self.crv or (self.enc if self.alg == "dir" else None)

    def alg_label(self) -> str:
        return self.alg + (f" {self.crv}" if self.crv else "")


def whose(side: str) -> str:
    return "tokengate's" if side == TG else "peer's"


def case_templates(peer: str, algs: list[str], encs: list[str]) -> list[Case]:
    """Everything checked against one peer, in table order (for JWS and JWK a row per template
    and a column per algorithm; for JWE a column per enc)."""
    out: list[Case] = []
    jws_algs = [a for a in algs if a in JWS_ALGS]

    def add(only: Callable[[str], bool], **kw) -> None:
        out.extend(Case(peer=peer, column=alg, alg=alg, **kw) for alg in jws_algs if only(alg))

    def every(alg: str) -> bool:
        return True

    def asymmetric(alg: str) -> bool:
        return alg not in SYMMETRIC

    def rsa(alg: str) -> bool:
        return alg[:2] in ("RS", "PS")

    def ec(alg: str) -> bool:
        return alg[:2] == "ES"

    # A JWT signed by one side and verified by the other, with a key made by either side and
    # handed over as JWK or as PEM (HMAC keys have no PEM form).
    for form in ("jwk", "pem"):
        for key_by in (TG, "peer"):
            for producer in (key_by, "peer" if key_by == TG else TG):
                needs = (("genkey",) if key_by == "peer" else ()) + (
                    ("pem:pkcs8", "pem:spki") if form == "pem" else ())
                add(every if form == "jwk" else asymmetric, family="JWS", check="token",
                    kind="jwt", key_by=key_by, key_form=form, producer=producer, requires=needs,
                    title=f"JWT, {whose(key_by)} key as {form.upper()}")
    for producer in (TG, "peer"):
        add(every, family="JWS", check="token", kind="jws", producer=producer,
            title="JWS binary payload, tokengate's key")
    # Tokens signed by one side with its own key, tampered with, refused by the other.
    for kind in ("jwt", "jws"):
        for producer in (TG, "peer"):
            needs = ("genkey",) if producer == "peer" else ()
            for tamper in KINDS[kind].tamperers:
                add(every, family="JWS", check="token", kind=kind, key_by=producer,
                    producer=producer, tamper=tamper, requires=needs,
                    title=f"{kind.upper()} with tampered {tamper} rejected")
    for key_by in (TG, "peer"):
        needs = ("thumbprint",) + (("genkey",) if key_by == "peer" else ())
        add(every, family="JWK", check="thumbprint", key_by=key_by, requires=needs,
            title=f"RFC 7638 thumbprint of {whose(key_by)} key")
    # One side exports PEM, the other imports it: the same key material must come out.
    # tokengate writes PKCS#8 and SPKI; it also reads the peers' PKCS#1 and SEC1.
    for exporter, fmt, only in ((TG, "pkcs8", asymmetric), (TG, "spki", asymmetric),
                                ("peer", "pkcs8", asymmetric), ("peer", "spki", asymmetric),
                                ("peer", "pkcs1", rsa), ("peer", "pkcs1-public", rsa),
                                ("peer", "sec1", ec)):
        private, label, _ = PEM_FORMATS[fmt]
        needs = (f"pem:{fmt}",) + (("genkey",) if exporter == "peer" else ())
        add(only, family="JWK", check="pem-import", key_by=exporter, producer=exporter,
            pem_format=fmt, requires=needs,
            title=f"{'private' if private else 'public'} PEM ({label}) imported, same key")
    out.extend(jwe_templates(peer, algs, encs))
    return out


def jwe_templates(peer: str, algs: list[str], encs: list[str]) -> list[Case]:
    """JWE and nested JWT cases against one peer. The "JWE" family has a case per key
    management (per curve for ECDH-ES*) x enc x row; dir keys are made for one enc each.
    Keys belong to the recipient (the decrypting side), which hands the other side its public
    JWK (symmetric keys as they are); `requires` adds "genkey" where the peer makes the key."""
    out: list[Case] = []

    def pairs(subset: list[tuple[str, str | None]] | None = None):
        for alg in JWE_ALGS:
            if alg not in algs:
                continue
            for crv in ECDH_CURVES if alg.startswith("ECDH-ES") else [None]:
                if subset is None or (alg, crv) in subset:
                    yield alg, crv

    def add(family: str, title: str, subset=None, enc_only: str | None = None, **kw) -> None:
        needs = tuple(kw.pop("requires", ()))
        for alg, crv in pairs(subset):
            for enc in encs:
                if enc_only and enc != enc_only:
                    continue
                key_needs = ("genkey",) if kw.get("key_by") == "peer" else ()
                column = enc if family == "JWE" else f"{alg}{' ' + crv if crv else ''}"
                out.append(Case(peer=peer, family=family, title=title, column=column,
                                check="token", kind="jwe", alg=alg, enc=enc, crv=crv,
                                requires=key_needs + needs, **kw))

    # Every alg x enc both ways, each side encrypting to the other's key.
    for key_by in ("peer", TG):
        producer = TG if key_by == "peer" else "peer"
        add("JWE", "JWE to the recipient's key (its JWK)", key_by=key_by, producer=producer)
    # Tokens from each side, tampered with, refused by the other.
    for tamper in JWE_TAMPERERS:
        for key_by in ("peer", TG):
            producer = TG if key_by == "peer" else "peer"
            add("JWE", f"JWE with tampered {tamper} rejected", key_by=key_by, producer=producer,
                tamper=tamper)
    # DEFLATE and the flattened JSON serialization, one key management per family.
    for what, flag, need in (("DEFLATE (zip DEF)", "zip", "jwe_zip"),
                             ("flattened JSON serialization", "json", "jwe_json")):
        for key_by in ("peer", TG):
            producer = TG if key_by == "peer" else "peer"
            add("JWE", f"JWE with {what}", subset=JWE_SUBSET, key_by=key_by, producer=producer,
                requires=(need,), **{flag: True})
    # Asymmetric keys made by either side, handed over as JWK or PEM (the recipient's private
    # key or the sender's public key crosses over, as the direction has it).
    for form in ("jwk", "pem"):
        for key_by in (TG, "peer"):
            for producer in (TG, "peer"):
                add("JWE keys", f"JWE, {whose(key_by)} key as {form.upper()}",
                    subset=JWE_KEY_HANDOVER, enc_only=JWE_KEY_HANDOVER_ENC, key_by=key_by,
                    key_form=form, producer=producer,
                    requires=("pem:pkcs8", "pem:spki") if form == "pem" else ())
    # PEM export by one side, import by the other (tokengate: `jwk import --alg ALG`).
    for exporter in (TG, "peer"):
        for fmt in ("pkcs8", "spki"):
            private, label, _ = PEM_FORMATS[fmt]
            for alg, crv in pairs(JWE_KEY_HANDOVER):
                needs = (f"pem:{fmt}",) + (("genkey",) if exporter == "peer" else ())
                out.append(Case(peer=peer, family="JWE keys", check="pem-import", kind="jwe",
                                title=f"{'private' if private else 'public'} PEM ({label}) "
                                      f"imported, same key",
                                column=f"{alg}{' ' + crv if crv else ''}", alg=alg, crv=crv,
                                key_by=exporter, producer=exporter, pem_format=fmt,
                                requires=needs))
    # Nested JWTs: the issuer signs with its key, encrypts to the recipient's; then tampered.
    for alg, crv, enc in NESTED:
        if alg not in algs or enc not in encs:
            continue
        column = f"{alg}{' ' + crv if crv else ''} {enc}"
        for tamper in (None, *JWE_TAMPERERS):
            for producer in (TG, "peer"):
                consumer = "peer" if producer == TG else TG
                title = ("nested JWT (signed, then encrypted)" if tamper is None
                         else f"nested JWT with tampered {tamper} rejected")
                out.append(Case(peer=peer, family="nested JWT", title=title, column=column,
                                check="token", kind="nested", alg=alg, enc=enc, crv=crv,
                                key_by=consumer, producer=producer, tamper=tamper,
                                requires=("genkey",)))
    return out


# --------------------------------------------------------------------------------------------
# Running cases


@dataclass
class KeyFiles:
    private: str
    public: str          # the private file itself for symmetric keys
    private_jwk: dict
    public_jwk: dict


@dataclass
class Result:
    case: Case
    ok: bool
    detail: str = ""
    seconds: float = 0.0


class Runner:
    """Runs cases; safe to call from several threads (see run_all)."""

    def __init__(self, tokengate: Tokengate, peers: dict[str, Peer], work: Path):
        self.tg = tokengate
        self.peers = peers
        self.work = work
        self.memo: dict[tuple, object] = {}
        self.counter = 0
        self.lock = threading.Lock()
        self.fixture_locks: dict[tuple, threading.Lock] = {}

    # Fixtures are computed once and shared; a failed fixture fails every case using it. Each
    # has its own lock, so two threads wanting the same key or token wait for one to make it.
    def fixture(self, key: tuple, make: Callable[[], object]):
        with self.lock:
            lock = self.fixture_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self.memo:
                try:
                    self.memo[key] = make()
                except Failure as e:
                    self.memo[key] = e
            value = self.memo[key]
        if isinstance(value, Failure):
            raise Failure(str(value))
        return value

    def write(self, name: str, data: bytes | str) -> str:
        with self.lock:
            self.counter += 1
            path = self.work / f"{self.counter:05d}-{name}"
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    @staticmethod
    def parse_jwk(p: Proc, who: str) -> dict:
        try:
            jwk = json.loads(p.stdout)
        except ValueError as e:
            raise Failure(f"{who} printed no JWK: {p.text()[:200]!r}") from e
        if not isinstance(jwk, dict):
            raise Failure(f"{who} printed {p.text()[:200]!r}, not a JWK object")
        return jwk

    def keys(self, maker: str, alg: str, param: str | None = None) -> KeyFiles:
        """The key `maker` (TG or a peer name) generates for `alg` (`param`: the curve for
        ECDH-ES*, the enc for dir; see Case.key_param), and its public half as the maker
        derives it. Made once per maker, algorithm and param, and shared by every case."""

        def make() -> KeyFiles:
            if maker == TG:
                option = "--enc" if alg == "dir" else "--crv"
                argv = ["jwk", "generate", "--alg", alg] + ([option, param] if param else [])
                priv = self.parse_jwk(self.tg.op("jwk generate", argv), TG)
            else:
                argv = ["genkey", alg] + ([param] if param else [])
                priv = self.parse_jwk(self.peers[maker].op("genkey", argv), maker)
            tag = f"{maker}-{alg}" + (f"-{param}" if param else "")
            priv_file = self.write(f"{tag}.private.jwk", json.dumps(priv))
            if alg in SYMMETRIC:
                return KeyFiles(priv_file, priv_file, priv, priv)
            if maker == TG:
                pub = self.parse_jwk(self.tg.op("jwk public", ["jwk", "public", priv_file]), TG)
            else:
                pub = self.parse_jwk(self.peers[maker].op("public", ["public", alg, priv_file]),
                                     maker)
            if "d" in pub:
                raise Failure(f"{maker}'s public key still has private members")
            return KeyFiles(priv_file, self.write(f"{tag}.public.jwk", json.dumps(pub)), priv, pub)

        return self.fixture(("key", maker, alg, param), make)

    def pem(self, maker: str, alg: str, fmt: str, param: str | None = None) -> str:
        """The maker's key for `alg`, exported by the maker as PEM in `fmt` (a PEM_FORMATS
        name); returns the PEM file."""

        def make() -> str:
            k = self.keys(maker, alg, param)
            private, label, first_line = PEM_FORMATS[fmt]
            if maker == TG:
                if fmt not in ("pkcs8", "spki"):
                    raise Failure(f"tokengate does not export {label}")
                p = self.tg.op("jwk export", ["jwk", "export", k.private if private else k.public])
            else:
                p = self.peers[maker].op("topem", ["topem", alg, k.private, fmt])
            text = p.stdout.decode()
            if not text.startswith(first_line):
                raise Failure(f"{maker} exported {text[:40]!r}, expected {first_line}")
            return self.write(f"{maker}-{alg}{'-' + param if param else ''}.{fmt}.pem", text)

        return self.fixture(("pem", maker, alg, param, fmt), make)

    def key_file(self, case: Case, role: str) -> str:
        """The key file the side in `role` (TG/"peer") uses in `case`: the private key where
        it signs or decrypts, else the public one. The maker uses its own JWK; the other side
        imports the key in `case.key_form` (the JWK as given, or the maker's PEM export)."""
        private = (role == case.producer) == KINDS[case.kind].producer_private
        maker_name = case.side(case.key_by)
        k = self.keys(maker_name, case.alg, case.key_param())
        if role == case.key_by or case.key_form == "jwk":
            return k.private if private else k.public
        return self.pem(maker_name, case.alg, "pkcs8" if private else "spki", case.key_param())

    def role_keys(self, case: Case, role: str) -> RoleKeys:
        """The key files of the side in `role`; for a nested JWT also the signature key,
        which the producer (the issuer) makes and the consumer gets as a public JWK."""
        sig = None
        if case.kind == "nested":
            k = self.keys(case.side(case.producer), NESTED_SIG)
            sig = k.private if role == case.producer else k.public
        return RoleKeys(self.key_file(case, role), sig)

    def produce(self, case: Case) -> tuple[bytes, str]:
        """The token of the untampered case (memoized, so tampered variants reuse it)."""
        base = Case(**{**case.__dict__, "tamper": None, "title": "", "requires": ()})

        def make() -> tuple[bytes, str]:
            kind = KINDS[case.kind]
            payload = kind.make_payload(base)
            keys = self.role_keys(base, base.producer)
            if base.producer == TG:
                argv = kind.tg_produce(base, keys, self.write("payload", payload))
                p = self.tg.op(f"{kind.label} produce", argv)
            else:
                p = self.peers[case.peer].op(f"{kind.label} produce",
                                             kind.peer_produce(base, keys), payload)
            token = p.text()
            if base.json:
                try:
                    ok = isinstance(json.loads(token), dict)
                except ValueError:
                    ok = False
                if not ok:
                    raise Failure(f"not a JSON {kind.label}: {token[:120]!r}")
            elif token.count(".") != kind.segments - 1:
                raise Failure(f"not a compact {kind.label}: {token[:120]!r}")
            return payload, token

        return self.fixture(("token", base.key()), make)

    def consume(self, case: Case, token: str) -> tuple[Proc, str]:
        """Runs the consumer; returns its result and the command, for the failure report."""
        kind = KINDS[case.kind]
        keys = self.role_keys(case, case.consumer())
        if case.consumer() == TG:
            argv = kind.tg_consume(case, keys, self.write("token", token))
            return self.tg.run(argv), "tokengate " + " ".join(argv)
        argv = kind.peer_consume(case, keys)
        return (self.peers[case.peer].run(argv, token.encode()),
                f"{case.peer} {' '.join(argv)} < token")

    def run_token(self, case: Case) -> str:
        payload, token = self.produce(case)
        consumer = case.side(case.consumer())
        if case.tamper is None:
            out, cmd = self.consume(case, token)
            if out.status != 0:
                raise Failure(f"{consumer} refused it ({out.brief()})\n       command: {cmd}"
                              f"\n       token: {token}")
            try:
                KINDS[case.kind].check(case, payload, token, out)
            except Failure as e:
                raise Failure(f"{e}\n       command: {cmd}\n       token: {token}") from e
            return ""
        forged = KINDS[case.kind].tamperers[case.tamper](token)
        out, cmd = self.consume(case, forged)
        if out.status == 0:
            raise Failure(f"{consumer} ACCEPTED the tampered token\n       command: {cmd}"
                          f"\n       token: {forged}")
        if out.status != 1:
            raise Failure(f"{consumer} failed instead of rejecting ({out.brief()})"
                          f"\n       command: {cmd}\n       token: {forged}")
        return out.brief()

    def run_pem_import(self, case: Case) -> str:
        exporter = case.side(case.producer)
        k = self.keys(exporter, case.alg, case.key_param())
        pem_file = self.pem(exporter, case.alg, case.pem_format, case.key_param())
        if case.producer == TG:
            got = self.parse_jwk(self.peers[case.peer].op("frompem", ["frompem", case.alg,
                                                                      pem_file]), case.peer)
        else:
            got = self.parse_jwk(self.tg.op("jwk import", ["jwk", "import", "--alg", case.alg,
                                                           pem_file]), TG)
            if got.get("alg") != case.alg:
                raise Failure(f"imported JWK has alg {got.get('alg')!r}, expected {case.alg}")
        want = k.private_jwk if PEM_FORMATS[case.pem_format][0] else k.public_jwk
        a = {m: want[m] for m in KEY_MEMBERS if m in want}
        b = {m: got[m] for m in KEY_MEMBERS if m in got}
        if a != b:
            diff = sorted(m for m in set(a) | set(b) if a.get(m) != b.get(m))
            raise Failure(f"imported key differs in {diff}: exported {json.dumps(a)}, "
                          f"imported {json.dumps(b)}")
        return ""

    def run_thumbprint(self, case: Case) -> str:
        maker = case.side(case.key_by)
        k = self.keys(maker, case.alg, case.key_param())
        # The maker hashes its private JWK; the other side the public JWK it was handed.
        tg_file = k.private if case.key_by == TG else k.public
        peer_file = k.public if case.key_by == TG else k.private
        mine = self.tg.op("jwk thumbprint", ["jwk", "thumbprint", tg_file]).text()
        theirs = self.peers[case.peer].op("thumbprint", ["thumbprint", peer_file]).text()
        if mine != theirs or not mine:
            raise Failure(f"tokengate says {mine!r}, {case.peer} says {theirs!r}")
        return mine

    def run(self, case: Case) -> Result:
        start = time.monotonic()
        try:
            fn = {"token": self.run_token, "pem-import": self.run_pem_import,
                  "thumbprint": self.run_thumbprint}[case.check]
            detail = fn(case)
            return Result(case, True, detail, time.monotonic() - start)
        except Failure as e:
            return Result(case, False, str(e), time.monotonic() - start)
        except Exception as e:  # a bug in the harness or a peer's protocol: a failure too
            return Result(case, False, f"harness error: {type(e).__name__}: {e}",
                          time.monotonic() - start)


# --------------------------------------------------------------------------------------------
# Peers and exclusions

VENV_PYTHON = HERE / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
PEER_COMMANDS = {
    "jose": ["node", str(HERE / "peers" / "jose.mjs")],
    "jwcrypto": [PYTHON, str(HERE / "peers" / "jwcrypto_peer.py")],
    "PyJWT": [PYTHON, str(HERE / "peers" / "pyjwt_peer.py")],
}


def excluded_reason(case: Case, caps: dict) -> str | None:
    """Why the peer cannot run `case` (its library lacks something), or None."""
    notes = caps.get("notes", {})
    if not KINDS[case.kind].supported(caps, case):
        # The most specific note: "ALG ENC CRV", "ALG ENC", "ALG", "ENC", "crv:CRV", the kind.
        what = " ".join(x for x in (case.alg, case.enc, case.crv) if x)
        for name in (what, f"{case.alg} {case.enc}", case.alg, case.enc, f"crv:{case.crv}",
                     case.kind):
            if name in notes:
                return notes[name]
        return f"{caps.get('library')} does not support {what}"
    for need in case.requires:
        # "op" needs caps[op] true (or, for a list, to hold the algorithm); "op:item" needs
        # caps[op] to list item (e.g. "pem:sec1").
        name, _, item = need.partition(":")
        have = caps.get(name)
        if item:
            ok = item in (have or [])
        else:
            ok = case.alg in have if isinstance(have, list) else bool(have)
        if not ok:
            return notes.get(need, f"{caps.get('library')} lacks {need}")
    return None


@dataclass
class Plan:
    cases: list[Case] = field(default_factory=list)
    excluded: dict[tuple[str, str], list[Case]] = field(default_factory=dict)


def plan(peers: dict[str, Peer], algs: list[str], encs: list[str],
         families: list[str] | None) -> Plan:
    p = Plan()
    for name, peer in peers.items():
        for case in case_templates(name, algs, encs):
            if families and case.family.lower() not in families:
                continue
            reason = excluded_reason(case, peer.caps)
            if reason is None:
                p.cases.append(case)
            else:
                p.excluded.setdefault((name, reason), []).append(case)
    return p


# --------------------------------------------------------------------------------------------
# Pinned totals
#
# interop/expected.json pins, per peer, how many checks of each family the full matrix runs
# and how many it excludes for each reason (per family), each with a "why". A run whose plan
# differs fails, so that a peer's caps losing an algorithm (its checks would become
# exclusions), a new exclusion reason or a template that stops making cases is a failure until
# the file is updated, with the reason, in the same change. The OAuth and gateway checks'
# totals are in the same file (checks.mjs reads them).

EXPECTED_FILE = HERE / "expected.json"
EXPECTED_NAME = "interop/expected.json"
FAMILIES = ("JWS", "JWK", "JWE", "JWE keys", "nested JWT")


@dataclass
class Totals:
    checks: dict[str, int] = field(default_factory=dict)               # family -> checks run
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)  # reason -> family -> n


def load_pinned(path: Path = EXPECTED_FILE) -> dict[str, Totals]:
    """The pinned totals of the matrix per peer; raises ValueError saying what is wrong with
    the file (every number needs a non-empty "why" next to it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {EXPECTED_NAME}: {e}") from e

    def counts(value: object, where: str) -> dict[str, int]:
        if not isinstance(value, dict) or not all(
                f in FAMILIES and isinstance(n, int) and not isinstance(n, bool) and n >= 0
                for f, n in value.items()):
            raise ValueError(f"{EXPECTED_NAME}: {where} must map families "
                             f"({', '.join(FAMILIES)}) to numbers of checks")
        return {f: n for f, n in value.items() if n}

    def why(entry: dict, where: str) -> None:
        if not isinstance(entry.get("why"), str) or not entry["why"].strip():
            raise ValueError(f"{EXPECTED_NAME}: {where} has no \"why\"")

    matrix = data.get("matrix") if isinstance(data, dict) else None
    if not isinstance(matrix, dict) or not matrix:
        raise ValueError(f"{EXPECTED_NAME} has no \"matrix\" object of peers")
    pinned: dict[str, Totals] = {}
    for peer, entry in matrix.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{EXPECTED_NAME}: matrix.{peer} is not an object")
        why(entry, f"matrix.{peer}")
        totals = Totals(counts(entry.get("checks"), f"matrix.{peer}.checks"))
        excluded = entry.get("excluded", [])
        if not isinstance(excluded, list):
            raise ValueError(f"{EXPECTED_NAME}: matrix.{peer}.excluded is not a list")
        for i, x in enumerate(excluded):
            where = f"matrix.{peer}.excluded[{i}]"
            if not isinstance(x, dict) or not isinstance(x.get("reason"), str):
                raise ValueError(f"{EXPECTED_NAME}: {where} has no \"reason\"")
            why(x, where)
            if x["reason"] in totals.excluded:
                raise ValueError(f"{EXPECTED_NAME}: {where} repeats the reason {x['reason']!r}")
            totals.excluded[x["reason"]] = counts(x.get("checks"), f"{where}.checks")
        pinned[peer] = totals
    return pinned


def plan_totals(the_plan: Plan, peers: list[str]) -> dict[str, Totals]:
    out = {name: Totals() for name in peers}
    for c in the_plan.cases:
        out[c.peer].checks[c.family] = out[c.peer].checks.get(c.family, 0) + 1
    for (name, reason), cases in the_plan.excluded.items():
        by_family = out[name].excluded.setdefault(reason, {})
        for c in cases:
            by_family[c.family] = by_family.get(c.family, 0) + 1
    return out


def by_family(counts: dict[str, int]) -> str:
    return ", ".join(f"{f} {n}" for f, n in counts.items() if n) or "none"


def pin_differences(pinned: dict[str, Totals], actual: dict[str, Totals], every_peer: bool,
                    families: list[str] | None) -> list[str]:
    """How the plan's totals (`actual`) differ from the pinned ones, one line per difference.
    Only the families in `families` (lower case; None: all) are compared, and pinned peers
    missing from `actual` only if `every_peer`."""

    def selected(counts: dict[str, int]) -> dict[str, int]:
        return {f: n for f, n in counts.items() if n and (not families or f.lower() in families)}

    out: list[str] = []
    names = list(actual) + [n for n in pinned if n not in actual and every_peer]
    for name in names:
        if name not in pinned:
            a = actual[name]
            out.append(f"{name}: a peer {EXPECTED_NAME} does not pin ({sum(a.checks.values())} "
                       f"checks, {sum(sum(x.values()) for x in a.excluded.values())} excluded)")
            continue
        if name not in actual:
            out.append(f"{name}: pinned, but not a peer of this run (interop/run.py "
                       f"PEER_COMMANDS)")
            continue
        p, a = pinned[name], actual[name]
        pc, ac = selected(p.checks), selected(a.checks)
        for f in [f for f in FAMILIES if f in pc or f in ac] + sorted(
                (set(pc) | set(ac)) - set(FAMILIES)):
            if pc.get(f, 0) != ac.get(f, 0):
                d = ac.get(f, 0) - pc.get(f, 0)
                out.append(f"{name}, {f}: {ac.get(f, 0)} checks, pinned {pc.get(f, 0)} ({d:+d})")
        for reason in list(p.excluded) + [r for r in a.excluded if r not in p.excluded]:
            px, ax = selected(p.excluded.get(reason, {})), selected(a.excluded.get(reason, {}))
            if px == ax:
                continue
            if not px:
                out.append(f"{name}: {sum(ax.values())} checks excluded for a reason "
                           f"{EXPECTED_NAME} does not pin ({by_family(ax)}): {reason}")
            elif not ax:
                out.append(f"{name}: the pinned exclusion ({by_family(px)}) no longer "
                           f"happens: {reason}")
            else:
                out.append(f"{name}: excluded {by_family(ax)}, pinned {by_family(px)}: {reason}")
    return out


# --------------------------------------------------------------------------------------------
# Output


def print_table(title: str, results: list[Result], head: tuple[str, ...],
                row_of: Callable[[Case], tuple[str, ...]], column_of: Callable[[Case], str],
                counts: bool = False) -> None:
    """Rows `row_of(case)`, a column per `column_of(case)`. A cell says `ok` or `FAIL` for its
    one check, or (`counts`, or several checks) how many passed of how many ran; `-`: none."""
    columns: list[str] = []
    rows: dict[tuple[str, ...], dict[str, list[bool]]] = {}
    for r in results:
        col = column_of(r.case)
        if col not in columns:
            columns.append(col)
        rows.setdefault(row_of(r.case), {}).setdefault(col, []).append(r.ok)

    def cell(oks: list[bool] | None) -> str:
        if not oks:
            return "-"
        if len(oks) == 1 and not counts:
            return "ok" if oks[0] else "FAIL"
        return f"{sum(oks)}/{len(oks)}" + ("" if all(oks) else " FAIL")

    text = {k: [cell(cells.get(c)) for c in columns] for k, cells in rows.items()}
    widths = [max([len(h)] + [len(k[i]) for k in rows]) for i, h in enumerate(head)]
    cw = [max([len(c), 4] + [len(t[i]) for t in text.values()]) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  result  "
          + " ".join(c.ljust(w) for c, w in zip(columns, cw)))
    print("-" * (sum(widths) + 2 * (len(widths) - 1) + 10 + sum(cw) + len(cw) - 1))
    for k, cells in rows.items():
        verdict = "pass" if all(all(v) for v in cells.values()) else "FAIL"
        print("  ".join(x.ljust(w) for x, w in zip(k, widths)) + f"  {verdict.ljust(6)}  "
              + " ".join(t.ljust(w) for t, w in zip(text[k], cw)).rstrip())


def print_matrix(results: list[Result]) -> None:
    """One table per family: rows peer x case x direction, a column per algorithm (JWS, JWK)
    or per alg (JWE keys, nested JWT). JWE gets two views of the same checks: per key
    management x enc, and per case x enc."""
    families: dict[str, list[Result]] = {}
    for r in results:
        families.setdefault(r.case.family, []).append(r)
    for family, rs in families.items():
        if family == "JWE":
            print_table("JWE: every key management x enc (cells: checks passed/run; the checks "
                        "are listed in the next table)", rs, ("peer", "key management"),
                        lambda c: (c.peer, c.alg_label()), lambda c: c.column, counts=True)
            print_table("JWE: checks x enc (cells: key managements passed/run)", rs,
                        ("peer", "case", "direction"),
                        lambda c: (c.peer, c.title, c.direction()), lambda c: c.column,
                        counts=True)
        else:
            title = {"JWE keys": "JWE keys (enc " + JWE_KEY_HANDOVER_ENC + ")",
                     "nested JWT": f"nested JWT ({NESTED_SIG}, then encrypted)"}.get(family, family)
            print_table(title, rs, ("peer", "case", "direction"),
                        lambda c: (c.peer, c.title, c.direction()), lambda c: c.column)


def summarize(items: list[str], limit: int = 12) -> str:
    unique = list(dict.fromkeys(items))
    if len(unique) <= limit:
        return " ".join(unique)
    return " ".join(unique[:limit]) + f" ... ({len(unique)} in all)"


def print_excluded(the_plan: "Plan") -> None:
    print("\nNot in the matrix:")
    print("  - PEM rows cover the asymmetric algorithms only: HMAC, AES and PBES2 keys have no "
          "PEM form.")
    for (name, reason), cases in the_plan.excluded.items():
        families = list(dict.fromkeys(c.family for c in cases))
        titles = list(dict.fromkeys(c.title for c in cases))
        what = "; ".join(titles) if len(titles) <= 3 else f"{len(titles)} kinds of check"
        items = summarize([c.alg_label() if c.kind in ("jwe", "nested") else c.column
                           for c in cases])
        print(f"  - {name}: {len(cases)} checks in {', '.join(families)} ({what}) for {items}: "
              f"{reason}")


def print_list(results: list[Result]) -> None:
    for r in results:
        c = r.case
        col = c.column if c.kind not in ("jwe", "nested") else f"{c.alg_label()} {c.enc or ''}"
        print(f"{'pass' if r.ok else 'FAIL'}  {c.peer:<9} {col:<6} {c.title:<44} "
              f"{c.direction():<24} {r.seconds:5.2f}s  {r.detail[:100] if r.ok else ''}")


def run_all(runner: Runner, cases: list[Case], jobs: int) -> list[Result]:
    """Runs the cases on `jobs` threads, in units of one peer, table and algorithm (which
    share keys and tokens), biggest first; results come back in plan order. Each side's work
    is a process (tokengate) or a peer's serve process (one request at a time), so the
    threads keep the cores busy while the harness itself mostly waits."""
    units: dict[tuple, list[int]] = {}
    for i, c in enumerate(cases):
        units.setdefault((c.peer, c.family, c.alg), []).append(i)
    results: list[Result | None] = [None] * len(cases)

    def work(indices: list[int]) -> None:
        for i in indices:
            results[i] = runner.run(cases[i])

    order = sorted(units.values(), key=len, reverse=True)
    if jobs <= 1:
        for indices in order:
            work(indices)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for f in [pool.submit(work, u) for u in order]:
                f.result()
    # Every planned case has a result: one the harness skipped is a failure, not dropped.
    return [r if r is not None else Result(cases[i], False, "the harness never ran it")
            for i, r in enumerate(results)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spawn", action="store_true",
                    help="run every peer operation as its own process (the CLI protocol)")
    ap.add_argument("--list", action="store_true", help="also print one line per check")
    ap.add_argument("--peer", action="append", choices=list(PEER_COMMANDS), help="only this peer")
    ap.add_argument("--alg", action="append", choices=ALGS,
                    help="only this algorithm (JWS, or JWE key management)")
    ap.add_argument("--enc", action="append", choices=JWE_ENCS, help="only this JWE enc")
    ap.add_argument("--family", action="append", type=str.lower,
                    choices=["jws", "jwk", "jwe", "jwe keys", "nested jwt"],
                    help="only this table")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="checks run on this many threads (default: 2, or 1 on one core)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the keys, PEM files and tokens (their paths are in failure reports)")
    args = ap.parse_args()
    algs = [a for a in ALGS if not args.alg or a in args.alg]
    encs = [e for e in JWE_ENCS if not args.enc or e in args.enc]

    # The pinned totals are compared for the whole matrix, or for the peers and families
    # --peer and --family select; --alg and --enc cut through the pinned families, so they
    # are not compared then.
    try:
        pinned = load_pinned()
    except ValueError as e:
        print(f"interop: {e}", file=sys.stderr)
        return 2

    binary = Path(os.environ.get("TOKENGATE_BIN", ROOT / "target" / "debug" / "tokengate"))
    if not binary.is_absolute():
        binary = ROOT / binary
    if not os.access(binary, os.X_OK):
        print(f"interop: tokengate binary not found at {binary} (set TOKENGATE_BIN or run "
              f"interop/run)", file=sys.stderr)
        return 2

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tokengate-interop-"))
    tg = Tokengate(binary)
    peers = {n: Peer(n, c, args.spawn) for n, c in PEER_COMMANDS.items()
             if not args.peer or n in args.peer}
    try:
        for peer in peers.values():
            # Always through the command line, so serve mode still exercises it.
            p = Peer(peer.name, peer.command, spawn=True).run(["caps"])
            if p.status != 0:
                print(f"interop: peer {peer.name} does not start ({p.brief()})", file=sys.stderr)
                return 2
            try:
                peer.caps = json.loads(p.stdout)
            except ValueError:
                peer.caps = None
            if not isinstance(peer.caps, dict):
                print(f"interop: peer {peer.name} answered caps with {p.text()[:200]!r}, not "
                      f"a JSON object", file=sys.stderr)
                return 2
            peer.start()
        the_plan = plan(peers, algs, encs, args.family)
        results = run_all(Runner(tg, peers, work), the_plan.cases, args.jobs)
    finally:
        for peer in peers.values():
            peer.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    versions = ", ".join(f"{n} {p.caps.get('version', '?')}" for n, p in peers.items())
    print(f"tokengate interop: {binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}"
          f" against {versions} ({'process per operation' if args.spawn else 'serve mode'})")
    print_matrix(results)
    if args.list:
        print()
        print_list(results)

    print_excluded(the_plan)

    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\nFailures ({len(failed)}):")
        for r in failed:
            c = r.case
            col = c.column if c.kind not in ("jwe", "nested") else f"{c.alg_label()} {c.enc or ''}"
            print(f"  FAIL {c.peer} {col} {c.title} [{c.direction()}]:\n       {r.detail}")
        print("  " + (f"keys, PEM files and tokens kept in {work}" if args.keep
                      else "(rerun with --keep to keep the files these commands name)"))

    # The pinned totals (see load_pinned).
    problems = []
    if args.alg or args.enc:
        print(f"\nPinned totals: not compared, --alg and --enc select part of the families "
              f"{EXPECTED_NAME} pins")
    else:
        scope = [*(["the peers selected"] if args.peer else []),
                 *(["the families selected"] if args.family else [])]
        actual = plan_totals(the_plan, list(peers))
        differences = pin_differences(pinned, actual, not args.peer, args.family)
        if differences:
            print(f"\nPinned totals: this run's matrix differs from {EXPECTED_NAME}"
                  + (f" (compared for {' and '.join(scope)})" if scope else "") + ":")
            for d in differences:
                print(f"  - {d}")
            print(f"  If the change is intended, update {EXPECTED_NAME} in the same change: the "
                  f"new numbers, and why in the entry's \"why\" (interop/README.md, \"Pinned "
                  f"totals\").")
            problems.append(f"the totals differ from {EXPECTED_NAME}")
        else:
            print(f"\nPinned totals: as in {EXPECTED_NAME}"
                  + (f" (compared for {' and '.join(scope)})" if scope else "") + ": "
                  + "; ".join(f"{n} {sum(t.checks.values())} checks, "
                              f"{sum(sum(x.values()) for x in t.excluded.values())} excluded"
                              for n, t in actual.items()))
    if not results:
        problems.append("no checks ran")
        print("interop: no checks ran", file=sys.stderr)

    passed = len(results) - len(failed)
    print(f"\n{passed} passed, {len(failed)} failed, {len(results)} checks, "
          f"{sum(len(v) for v in the_plan.excluded.values())} excluded, "
          f"{time.monotonic() - started:.1f}s" + "".join(f"; {p}" for p in problems))
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
