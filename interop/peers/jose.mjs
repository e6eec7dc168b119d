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
//   node jose.mjs genkey ALG [CRV|ENC]       JWE keys too: ECDH-ES* on curve CRV, dir sized by ENC
//   node jose.mjs encrypt ALG ENC KEYFILE [--zip DEF] [--cty CTY] [--json]
//                                            plaintext bytes on stdin -> compact (or flattened) JWE
//   node jose.mjs decrypt KEYFILE [--alg ALG] [--enc ENC]
//                                            JWE (compact or flattened JSON) on stdin -> plaintext
//   node jose.mjs sign-encrypt SIGALG SIGKEY ALG ENC ENCKEY      claims on stdin -> nested JWT
//   node jose.mjs decrypt-verify SIGALG SIGKEY ALG ENC DECKEY ISS AUD   nested JWT -> claims
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

// JWE: every key management jose implements (RSA1_5 is gone from jose 6, and tokengate has none).
const JWE_ALGS = [
  'dir', 'A128KW', 'A192KW', 'A256KW', 'A128GCMKW', 'A192GCMKW', 'A256GCMKW',
  'RSA-OAEP', 'RSA-OAEP-256', 'RSA-OAEP-384', 'RSA-OAEP-512',
  'ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW',
  'PBES2-HS256+A128KW', 'PBES2-HS384+A192KW', 'PBES2-HS512+A256KW',
];
const JWE_ENCS = [
  'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512', 'A128GCM', 'A192GCM', 'A256GCM',
];
const ECDH_CURVES = ['P-256', 'P-384', 'P-521', 'X25519'];
// PBES2: what this peer encrypts with. It decrypts with jose's default cap (10000), which
// tokengate's default count (10000) must fit: a user's jose is not tuned to us.
const P2C = 4096;

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
const dec = new TextDecoder();

// `--name value` and `--flag` options after the positional arguments.
function options(args, flags = []) {
  const out = {};
  for (let i = 0; i < args.length; i += 1) {
    const name = args[i].replace(/^--/, '');
    if (!args[i].startsWith('--')) throw new UsageError(`unexpected argument ${args[i]}`);
    if (flags.includes(name)) out[name] = true;
    else if (i + 1 < args.length) { out[name] = args[i + 1]; i += 1; }
    else throw new UsageError(`${args[i]} needs a value`);
  }
  return out;
}

function decryptOptions(alg, encName) {
  return {
    ...(alg && { keyManagementAlgorithms: [alg] }),
    ...(encName && { contentEncryptionAlgorithms: [encName] }),
  };
}

// A JWE builder with the protected header and, for PBES2, an explicit iteration count.
function jweBuilder(Builder, plaintext, header) {
  const builder = new Builder(plaintext).setProtectedHeader(header);
  if (header.alg.startsWith('PBES2')) builder.setKeyManagementParameters({ p2c: P2C });
  return builder;
}

const ops = {
  caps: async () => ({
    library: 'jose',
    version: JOSE_VERSION,
    jws: JWS_ALGS,
    genkey: [...JWS_ALGS, ...JWE_ALGS],
    pem: ['pkcs8', 'spki'],
    thumbprint: true,
    jwe: JWE_ALGS.flatMap((a) => JWE_ENCS.map((e) => [a, e])),
    ecdh_curves: ECDH_CURVES,
    jwe_zip: true,
    jwe_json: true,
    nested: true,
    notes: {
      'pem:pkcs1': 'jose exports PEM as PKCS#8 and SPKI only',
      'pem:pkcs1-public': 'jose exports PEM as PKCS#8 and SPKI only',
      'pem:sec1': 'jose exports PEM as PKCS#8 and SPKI only',
    },
  }),

  // JWE keys: a dir key is the content key of ENC; a PBES2 "key" is a password, which jose
  // takes as bytes (it has no generator for one), so it is 32 random bytes.
  genkey: async ([alg, param]) => {
    if (alg.startsWith('HS') || /^A\d+(GCM)?KW$/.test(alg)) {
      return jose.exportJWK(await jose.generateSecret(alg, { extractable: true }));
    }
    if (alg === 'dir') {
      if (!param) throw new UsageError('genkey dir ENC');
      return jose.exportJWK(await jose.generateSecret(param, { extractable: true }));
    }
    if (alg.startsWith('PBES2')) {
      return jose.exportJWK(crypto.getRandomValues(new Uint8Array(32)));
    }
    const opts = { extractable: true, ...(alg.startsWith('ECDH-ES') && param && { crv: param }) };
    const { privateKey } = await jose.generateKeyPair(alg, opts);
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

  encrypt: async ([alg, encName, keyfile, ...rest], stdin) => {
    if (!keyfile) throw new UsageError('encrypt ALG ENC KEYFILE [--zip DEF] [--cty CTY] [--json]');
    const opt = options(rest, ['json']);
    const key = await loadKey(alg, keyfile);
    const header = {
      alg, enc: encName, ...(opt.zip && { zip: opt.zip }), ...(opt.cty && { cty: opt.cty }),
    };
    const plaintext = new Uint8Array(stdin);
    if (opt.json) return jweBuilder(jose.FlattenedEncrypt, plaintext, header).encrypt(key);
    return jweBuilder(jose.CompactEncrypt, plaintext, header).encrypt(key);
  },

  // Without --alg the key is imported for the token's own alg (jose needs one for RSA/EC keys).
  decrypt: async ([keyfile, ...rest], stdin) => {
    if (!keyfile) throw new UsageError('decrypt KEYFILE [--alg ALG] [--enc ENC]');
    const opt = options(rest);
    const text = stdin.toString('utf8').trim();
    const json = text.startsWith('{');
    const jwe = json ? JSON.parse(text) : text;
    const alg = opt.alg ?? jose.decodeProtectedHeader(jwe).alg;
    const key = await loadKey(alg, keyfile);
    const { plaintext } = await rejecting(() => (json
      ? jose.flattenedDecrypt(jwe, key, decryptOptions(opt.alg, opt.enc))
      : jose.compactDecrypt(jwe, key, decryptOptions(opt.alg, opt.enc))));
    return Buffer.from(plaintext);
  },

  // Nested JWT (RFC 7519 section 11.2): jose signs with SignJWT, then encrypts the compact JWS
  // with CompactEncrypt and "cty": "JWT" (jose's EncryptJWT encrypts claims unsigned).
  'sign-encrypt': async ([sigAlg, sigKeyfile, alg, encName, encKeyfile], stdin) => {
    if (!encKeyfile) throw new UsageError('sign-encrypt SIGALG SIGKEY ALG ENC ENCKEY');
    const claims = JSON.parse(stdin.toString('utf8'));
    const jwt = await new jose.SignJWT(claims).setProtectedHeader({ alg: sigAlg, typ: 'JWT' })
      .sign(await loadKey(sigAlg, sigKeyfile));
    return jweBuilder(jose.CompactEncrypt, enc.encode(jwt), { alg, enc: encName, cty: 'JWT' })
      .encrypt(await loadKey(alg, encKeyfile));
  },

  'decrypt-verify': async (args, stdin) => {
    const [sigAlg, sigKeyfile, alg, encName, decKeyfile, issuer, audience] = args;
    if (!audience) throw new UsageError('decrypt-verify SIGALG SIGKEY ALG ENC DECKEY ISS AUD');
    const decKey = await loadKey(alg, decKeyfile);
    const sigKey = await loadKey(sigAlg, sigKeyfile);
    const { plaintext, protectedHeader } = await rejecting(() =>
      jose.compactDecrypt(stdin.toString('utf8').trim(), decKey, decryptOptions(alg, encName)));
    if (String(protectedHeader.cty).toUpperCase() !== 'JWT') {
      throw new Rejected(`outer "cty" is ${protectedHeader.cty}, not JWT`);
    }
    const { payload } = await rejecting(() => jose.jwtVerify(dec.decode(plaintext), sigKey, {
      algorithms: [sigAlg], issuer, audience, requiredClaims: ['exp'],
    }));
    return payload;
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
  const needsStdin = ['sign', 'verify', 'jws-sign', 'jws-verify', 'encrypt', 'decrypt',
    'sign-encrypt', 'decrypt-verify'].includes(argv[0]);
  const res = await run(argv, needsStdin ? await readStdin() : Buffer.alloc(0));
  process.stdout.write(res.stdout);
  if (res.stderr) process.stderr.write(`${res.stderr}\n`);
  process.exitCode = res.status;
}

await main();
