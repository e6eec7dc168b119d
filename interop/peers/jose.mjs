#!/usr/bin/env node
// Interop peer backed by Node `jose` (panva). Protocol: see interop/README.md.
//
//   node jose.mjs caps                       capabilities (JSON)
//   node jose.mjs genkey ALG                 private JWK made by jose
//   node jose.mjs public ALG KEYFILE         public JWK of a private one (asymmetric keys)
//   node jose.mjs sign ALG KEYFILE           claims JSON on stdin -> JWT
//   node jose.mjs verify ALG KEYFILE ISS AUD JWT on stdin -> claims JSON
//   node jose.mjs jws-sign ALG KEYFILE       payload bytes on stdin -> compact JWS
//   node jose.mjs jws-verify ALG KEYFILE     compact JWS on stdin -> payload bytes
//   node jose.mjs topem ALG KEYFILE [FMT]    JWK -> PEM; FMT pkcs8 (default) or spki (public)
//   node jose.mjs frompem ALG PEMFILE        PEM -> JWK
//   node jose.mjs thumbprint KEYFILE         RFC 7638 thumbprint (SHA-256)
//   node jose.mjs serve                      one JSON request per line (see README)
//
// KEYFILE holds a JWK or a PEM key. Exit status: 0 success, 1 the token was rejected,
// 2 anything else (usage, key import, unsupported).

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import * as jose from 'jose';

const JOSE_VERSION = JSON.parse(
  readFileSync(new URL('../node_modules/jose/package.json', import.meta.url), 'utf8'),
).version;

const JWS_ALGS = [
  'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512', 'EdDSA',
];

// A verification failure: exit 1. Everything else is exit 2.
class Rejected extends Error {}

class UsageError extends Error {}

function isPem(text) {
  return text.trimStart().startsWith('-----BEGIN');
}

function readText(path) {
  return readFileSync(path, 'utf8');
}

// Loads KEYFILE (JWK or PEM) for `alg` through jose's own importers.
async function loadKey(alg, path) {
  const text = readText(path);
  if (isPem(text)) {
    return text.includes('PRIVATE KEY')
      ? jose.importPKCS8(text, alg)
      : jose.importSPKI(text, alg);
  }
  return jose.importJWK(JSON.parse(text), alg);
}

async function rejecting(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof jose.errors.JOSEError) throw new Rejected(`${e.code}: ${e.message}`);
    throw e;
  }
}

const enc = new TextEncoder();

const ops = {
  caps: async () => ({
    library: 'jose',
    version: JOSE_VERSION,
    jws: JWS_ALGS,
    genkey: JWS_ALGS,
    pem: ['pkcs8', 'spki'],
    thumbprint: true,
    notes: {
      'pem:pkcs1': 'jose exports PEM as PKCS#8 and SPKI only',
      'pem:pkcs1-public': 'jose exports PEM as PKCS#8 and SPKI only',
      'pem:sec1': 'jose exports PEM as PKCS#8 and SPKI only',
    },
  }),

  genkey: async ([alg]) => {
    if (alg.startsWith('HS')) {
      return jose.exportJWK(await jose.generateSecret(alg, { extractable: true }));
    }
    const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    return jose.exportJWK(privateKey);
  },

  // jose has no "public half of a private JWK" call; dropping the private members is how
  // its documentation derives one. The result goes through importJWK/exportJWK to be checked.
  public: async ([alg, keyfile]) => {
    const { d, p, q, dp, dq, qi, oth, ...pub } = JSON.parse(readText(keyfile));
    if (pub.kty === 'oct') throw new UsageError('public: a symmetric key has no public half');
    return jose.exportJWK(await jose.importJWK(pub, alg, { extractable: true }));
  },

  sign: async ([alg, keyfile], stdin) => {
    const key = await loadKey(alg, keyfile);
    const claims = JSON.parse(stdin.toString('utf8'));
    return new jose.SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
  },

  verify: async ([alg, keyfile, issuer, audience], stdin) => {
    if (!audience) throw new UsageError('verify ALG KEYFILE ISS AUD');
    const key = await loadKey(alg, keyfile);
    const { payload } = await rejecting(() =>
      jose.jwtVerify(stdin.toString('utf8').trim(), key, {
        algorithms: [alg],
        issuer,
        audience,
        requiredClaims: ['exp'],
      }));
    return payload;
  },

  'jws-sign': async ([alg, keyfile], stdin) => {
    const key = await loadKey(alg, keyfile);
    return new jose.CompactSign(new Uint8Array(stdin)).setProtectedHeader({ alg }).sign(key);
  },

  'jws-verify': async ([alg, keyfile], stdin) => {
    const key = await loadKey(alg, keyfile);
    const { payload } = await rejecting(() =>
      jose.compactVerify(stdin.toString('utf8').trim(), key, { algorithms: [alg] }));
    return Buffer.from(payload);
  },

  topem: async ([alg, keyfile, format = 'pkcs8']) => {
    const jwk = JSON.parse(readText(keyfile));
    if (format === 'spki') {
      const { d, p, q, dp, dq, qi, oth, ...pub } = jwk;
      return jose.exportSPKI(await jose.importJWK(pub, alg, { extractable: true }));
    }
    if (format !== 'pkcs8') throw new UsageError(`topem: format ${format} not supported`);
    if (!('d' in jwk)) throw new UsageError('topem: not a private key');
    return jose.exportPKCS8(await jose.importJWK(jwk, alg, { extractable: true }));
  },

  frompem: async ([alg, pemfile]) => {
    const text = readText(pemfile);
    const key = text.includes('PRIVATE KEY')
      ? await jose.importPKCS8(text, alg, { extractable: true })
      : await jose.importSPKI(text, alg, { extractable: true });
    return jose.exportJWK(key);
  },

  thumbprint: async ([keyfile]) => jose.calculateJwkThumbprint(JSON.parse(readText(keyfile)), 'sha256'),
};

// Runs one operation: returns { status, stdout (Buffer), stderr (string) }.
async function run(argv, stdin) {
  const [op, ...args] = argv;
  const fn = ops[op];
  if (!fn) return { status: 2, stdout: Buffer.alloc(0), stderr: `unknown op ${op}` };
  try {
    const out = await fn(args, stdin);
    let bytes;
    if (Buffer.isBuffer(out)) bytes = out;
    else if (typeof out === 'string') bytes = Buffer.from(out.endsWith('\n') ? out : `${out}\n`);
    else bytes = Buffer.from(`${JSON.stringify(out)}\n`);
    return { status: 0, stdout: bytes, stderr: '' };
  } catch (e) {
    const status = e instanceof Rejected ? 1 : 2;
    const name = e instanceof Rejected ? 'rejected' : (e.code || e.name || 'error');
    return { status, stdout: Buffer.alloc(0), stderr: `${name}: ${e.message}` };
  }
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function serve() {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const req = JSON.parse(line);
    const res = await run(req.argv, Buffer.from(req.stdin || '', 'base64'));
    process.stdout.write(`${JSON.stringify({
      status: res.status,
      stdout: res.stdout.toString('base64'),
      stderr: res.stderr,
    })}\n`);
  }
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === 'serve') return serve();
  const needsStdin = ['sign', 'verify', 'jws-sign', 'jws-verify'].includes(argv[0]);
  const res = await run(argv, needsStdin ? await readStdin() : Buffer.alloc(0));
  process.stdout.write(res.stdout);
  if (res.stderr) process.stderr.write(`${res.stderr}\n`);
  process.exitCode = res.status;
}

await main();
