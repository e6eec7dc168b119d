"""Shared plumbing for the Python peers: argv/stdin dispatch, exit statuses, serve mode.

A peer module defines OPS, a dict from op name to a function (args, stdin_bytes) -> result,
where the result is bytes (written as is), str (a newline is added) or JSON-able data.
A function raises Rejected when a token is refused (exit 1); any other exception is exit 2.
See interop/README.md for the protocol.
"""

import base64
import json
import sys
import traceback

# Ops that read stdin in CLI mode (the others take everything from argv).
STDIN_OPS = {"sign", "verify", "jws-sign", "jws-verify", "encrypt", "decrypt", "sign-encrypt",
             "decrypt-verify"}


class Rejected(Exception):
    """The library refused a token: exit status 1."""


class UsageError(Exception):
    """Bad arguments or input for the protocol: exit status 2."""


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def is_pem(text):
    return text.lstrip().startswith("-----BEGIN")


def strip_private(jwk):
    """The public members of a JWK (oct keys stay whole: they have no public half)."""
    if jwk.get("kty") == "oct":
        return dict(jwk)
    private = {"d", "p", "q", "dp", "dq", "qi", "oth"}
    return {k: v for k, v in jwk.items() if k not in private}


def run(ops, argv, stdin):
    """Runs one operation; returns (status, stdout bytes, stderr text)."""
    if not argv or argv[0] not in ops:
        return 2, b"", f"unknown op {argv[:1]}"
    try:
        out = ops[argv[0]](argv[1:], stdin)
    except Rejected as e:
        return 1, b"", f"rejected: {e}"
    except Exception as e:  # noqa: BLE001 - every other failure is reported, status 2
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        return 2, b"", detail
    if isinstance(out, bytes):
        data = out
    elif isinstance(out, str):
        data = (out if out.endswith("\n") else out + "\n").encode()
    else:
        data = (json.dumps(out) + "\n").encode()
    return 0, data, ""


def serve(ops):
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        status, out, err = run(ops, req["argv"], base64.b64decode(req.get("stdin", "")))
        sys.stdout.write(
            json.dumps({"status": status, "stdout": base64.b64encode(out).decode(), "stderr": err})
            + "\n"
        )
        sys.stdout.flush()


def main(ops):
    argv = sys.argv[1:]
    if argv[:1] == ["serve"]:
        serve(ops)
        return 0
    stdin = sys.stdin.buffer.read() if argv[:1] and argv[0] in STDIN_OPS else b""
    status, out, err = run(ops, argv, stdin)
    sys.stdout.buffer.write(out)
    if err:
        sys.stderr.write(err + "\n")
    return status
