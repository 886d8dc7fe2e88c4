// Encodings the console must reproduce byte for byte, so that what it signs
// is what the nodes check: Go's encoding/json output for a job spec (whose
// SHA-256 is the spec hash), the raw bytes of a JSON value inside a larger
// document (the result under review), and policy/attest's length-prefixed
// statement messages. Tested against Go-generated vectors
// (api/console/testdata/vectors.json) in a real browser.

const enc = new TextEncoder();
const HEX = "0123456789abcdef";

// goString is a JSON string literal exactly as Go's encoding/json writes
// it (HTML escaping on): \" \\ \b \f \n \r \t, other controls as \u00xx,
// <, > and & as \u003c \u003e \u0026, U+2028 and U+2029 escaped, and a
// lone surrogate (invalid UTF-16, which Go's decoder turns into U+FFFD)
// written as U+FFFD.
export function goString(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i] + s[i + 1];
        i++;
        continue;
      }
      out += "\ufffd";
      continue;
    }
    if (c >= 0xdc00 && c <= 0xdfff) {
      out += "\ufffd";
      continue;
    }
    switch (c) {
      case 0x22: out += '\\"'; continue;
      case 0x5c: out += "\\\\"; continue;
      case 0x08: out += "\\b"; continue;
      case 0x0c: out += "\\f"; continue;
      case 0x0a: out += "\\n"; continue;
      case 0x0d: out += "\\r"; continue;
      case 0x09: out += "\\t"; continue;
      case 0x2028: out += "\\u2028"; continue;
      case 0x2029: out += "\\u2029"; continue;
    }
    if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26) {
      out += "\\u00" + HEX[c >> 4] + HEX[c & 0xf];
      continue;
    }
    out += s[i];
  }
  return out + '"';
}

class EncodingError extends Error {}

function str(v, what) {
  if (typeof v !== "string") throw new EncodingError(what + " is not a string");
  return v;
}

function optStr(v, what) {
  return v === undefined || v === null ? "" : str(v, what);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function int64(v, what) {
  let b;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number" && Number.isSafeInteger(v)) b = BigInt(v);
  else throw new EncodingError(what + " is not an exact integer");
  if (b < INT64_MIN || b > INT64_MAX) throw new EncodingError(what + " is out of int64 range");
  return b.toString();
}

function columnRef(r, what) {
  if (r === null || typeof r !== "object") throw new EncodingError(what + " is not an object");
  return '{"dataset":' + goString(optStr(r.dataset, what + ".dataset")) + ',"column":' + goString(optStr(r.column, what + ".column")) + "}";
}

function list(v, what, item) {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw new EncodingError(what + " is not a list");
  return v.map((x, i) => item(x, what + "[" + i + "]"));
}

// specJSON is Go's json.Marshal of a policy.Spec decoded from spec (an
// object as parsed from the API's JSON; integers may be BigInt): fields in
// the struct's order, omitempty fields left out when empty, unknown fields
// ignored (as Go's decoder ignores them).
export function specJSON(spec) {
  if (spec === null || typeof spec !== "object") throw new EncodingError("spec is not an object");
  let out = '{"type":' + goString(optStr(spec.type, "type")) + ',"purpose":' + goString(optStr(spec.purpose, "purpose")) + ',"inputs":';
  const inputs = list(spec.inputs, "inputs", (x, what) => {
    if (x === null || typeof x !== "object") throw new EncodingError(what + " is not an object");
    let s = '{"dataset":' + goString(optStr(x.dataset, what + ".dataset"));
    const key = optStr(x.key, what + ".key");
    const filter = optStr(x.filter, what + ".filter");
    if (key !== "") s += ',"key":' + goString(key);
    if (filter !== "") s += ',"filter":' + goString(filter);
    return s + "}";
  });
  out += inputs === null ? "null" : "[" + inputs.join(",") + "]";
  if (spec.value !== undefined && spec.value !== null) out += ',"value":' + columnRef(spec.value, "value");
  const stats = list(spec.stats, "stats", (x, what) => goString(str(x, what)));
  if (stats && stats.length) out += ',"stats":[' + stats.join(",") + "]";
  if (spec.group_by !== undefined && spec.group_by !== null) out += ',"group_by":' + columnRef(spec.group_by, "group_by");
  const bins = list(spec.bins, "bins", int64);
  if (bins && bins.length) out += ',"bins":[' + bins.join(",") + "]";
  return out + "}";
}

export function utf8(s) {
  return enc.encode(s);
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function concat(parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// specHash is policy.Spec.Hash: SHA-256("unseen/spec/v1" ‖ 0x00 ‖ specJSON).
export async function specHash(spec) {
  return sha256(concat([utf8("unseen/spec/v1\u0000"), utf8(specJSON(spec))]));
}

export function hex(bytes) {
  let s = "";
  for (const b of bytes) s += HEX[b >> 4] + HEX[b & 0xf];
  return s;
}

export function unhex(s) {
  if (typeof s !== "string" || s.length % 2 || !/^[0-9a-f]*$/.test(s)) throw new EncodingError("not lowercase hex");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

export function base64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function unbase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// Message is attest.Message: every field a 4-byte big-endian length and its
// bytes, the first field the domain.
export class Message {
  constructor(domain) {
    this.parts = [];
    this.str(domain);
  }
  bytes(p) {
    const n = new Uint8Array(4);
    new DataView(n.buffer).setUint32(0, p.length);
    this.parts.push(n, p);
    return this;
  }
  str(s) {
    return this.bytes(utf8(s));
  }
  int(v) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigInt64(0, BigInt(v));
    return this.bytes(b);
  }
  bool(v) {
    return this.bytes(new Uint8Array([v ? 1 : 0]));
  }
  time(t) {
    // Whole seconds since 1970 (t: a Date or an RFC 3339 string).
    const d = t instanceof Date ? t : new Date(t);
    if (isNaN(d.getTime())) throw new EncodingError("not a time: " + t);
    return this.int(Math.floor(d.getTime() / 1000));
  }
  encoded() {
    return concat(this.parts);
  }
}

function jobRef(m, st) {
  m.str(str(st.job, "job"));
  m.bytes(digest(st.spec_hash, "spec_hash"));
  m.str(optStr(st.requester && st.requester.user, "requester.user"));
  m.str(optStr(st.requester && st.requester.department, "requester.department"));
}

function digest(v, what) {
  if (v === undefined || v === null || v === "") return new Uint8Array(32);
  const b = unhex(v);
  if (b.length !== 32) throw new EncodingError(what + " is not a SHA-256 digest");
  return b;
}

// approvalMessage is attest.Approval.Message for a statement as JSON has it.
export function approvalMessage(st) {
  const m = new Message("unseen/attest/approval/v1");
  jobRef(m, st);
  m.bytes(digest(st.result_sha256, "result_sha256"));
  m.bytes(digest(st.recipient_key_sha256, "recipient_key_sha256"));
  m.str(str(st.reviewer, "reviewer"));
  m.time(st.at);
  return m.encoded();
}

// consentMessage is attest.Consent.Message.
export function consentMessage(st) {
  const m = new Message("unseen/attest/consent/v1");
  jobRef(m, st);
  m.str(str(st.dataset, "dataset"));
  m.bool(!!st.approve);
  m.str(optStr(st.reason, "reason"));
  m.time(st.until);
  m.str(str(st.owner, "owner"));
  return m.encoded();
}

// rfc3339 is a time in whole seconds, UTC, as Go's time.Time marshals it.
export function rfc3339(d) {
  return new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

// parseExact parses JSON keeping integers exact: those beyond 2^53 become
// BigInt (JSON.parse's source text), so a spec's bins hash as Go sees them.
export function parseExact(text) {
  return JSON.parse(text, function (key, value, ctx) {
    if (typeof value === "number" && ctx && typeof ctx.source === "string" && /^-?(0|[1-9][0-9]*)$/.test(ctx.source) && !Number.isSafeInteger(value)) {
      return BigInt(ctx.source);
    }
    return value;
  });
}

// rawValue returns the exact text of the JSON value at path (object keys)
// in text, as Go's json.RawMessage would hold it after decoding text: for a
// repeated key, the last. It returns null when the path is absent.
export function rawValue(text, path) {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\r\n".includes(text[i])) i++;
  };
  const fail = (what) => {
    throw new EncodingError("malformed JSON at " + i + ": " + what);
  };
  const skipString = () => {
    if (text[i] !== '"') fail("expected a string");
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= text.length) fail("unterminated string");
    i++;
    return JSON.parse(text.slice(start, i));
  };
  // value skips one value; at depth d < path.length inside an object it
  // records the span of the value under path[d].
  const value = (d) => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      let found = null;
      ws();
      if (text[i] === "}") {
        i++;
        return null;
      }
      for (;;) {
        ws();
        const k = skipString();
        ws();
        if (text[i] !== ":") fail("expected :");
        i++;
        ws();
        const start = i;
        const inner = value(d < path.length && k === path[d] ? d + 1 : Infinity);
        if (d < path.length && k === path[d]) found = d + 1 === path.length ? text.slice(start, i) : inner;
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return found;
        }
        fail("expected , or }");
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return null;
      }
      for (;;) {
        value(Infinity);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return null;
        }
        fail("expected , or ]");
      }
    }
    if (c === '"') {
      skipString();
      return null;
    }
    const m = /^(-?[0-9][0-9.eE+-]*|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) fail("unexpected character");
    i += m[0].length;
    return null;
  };
  const out = value(0);
  ws();
  if (i !== text.length) fail("trailing data");
  return out;
}

// fingerprint is attest.Fingerprint: 16 hex characters of SHA-256(key).
export async function fingerprint(pub) {
  return hex(await sha256(pub)).slice(0, 16);
}

// importSigningKey reads a key file of `unseen keygen --sign` (PEM, PKCS #8
// Ed25519) and returns the WebCrypto key and its raw public half.
export async function importSigningKey(pem) {
  const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) throw new EncodingError("not a PEM private key (a file from unseen keygen --sign)");
  const der = unbase64(m[1].replace(/\s+/g, ""));
  const key = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const pub = unbase64(jwk.x.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (jwk.x.length % 4)) % 4));
  return { key, pub };
}

export async function sign(key, message) {
  return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, message));
}

// publicKeyText is attest.FormatPublicKey.
export function publicKeyText(pub) {
  return "ed25519:" + base64(pub);
}
