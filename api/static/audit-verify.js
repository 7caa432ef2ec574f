"use strict";
/* The checks of an order's audit record, done in the browser: the same recipe as README
   ("Audit: the hash chain") and the same comparisons as tests/third_party_check.py, so that an
   auditor need not trust the server that serves the record. Nothing here touches the page. */

const AUDIT_CONTEXT = "orders";
const GENESIS_HEX = "0".repeat(64);

const JSON_ESCAPES = { '"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/* A string as Python's json.dumps(..., ensure_ascii=False) writes it: `"`, `\` and the controls
   below U+0020 escaped (`\u00XX` in lowercase hex where no short escape exists), the rest as itself. */
function canonicalString(text) {
  const escaped = text.replace(
    /["\\\u0000-\u001f]/g,
    (c) => JSON_ESCAPES[c] || "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
  return '"' + escaped + '"';
}

/* Python sorts keys by code point; JavaScript's default sort compares UTF-16 units, which puts
   U+E000..U+FFFF after the characters written as surrogate pairs. */
function byCodePoint(a, b) {
  const left = Array.from(a, (c) => c.codePointAt(0));
  const right = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    if (left[i] !== right[i]) return left[i] - right[i];
  }
  return left.length - right.length;
}

/* json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for the values the
   recipe hashes: strings, integers, null (and booleans, lists, objects). A fraction is refused:
   Python and JavaScript write some of them differently, and the recipe holds none. */
function canonicalJson(value) {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return canonicalString(value);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new TypeError("не целое число: " + value);
    return String(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(byCodePoint);
    return "{" + keys.map((key) => canonicalString(key) + ":" + canonicalJson(value[key])).join(",") + "}";
  }
  throw new TypeError("значение, которого нет в каноническом JSON: " + typeof value);
}

const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})?$/;

/* An ISO 8601 time as microseconds since 1970 (a BigInt: Date holds only milliseconds), or null
   for a time without its zone, which Python's comparison never finds equal to one with a zone. */
function instant(text) {
  const m = INSTANT.exec(text);
  if (!m || !m[8]) return null;
  const date = new Date(0);
  date.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  date.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), 0);
  let offset = 0;
  if (m[8] !== "Z") offset = (m[8][0] === "-" ? -1 : 1) * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(4, 6)));
  const micros = BigInt((m[7] || "").slice(0, 6).padEnd(6, "0"));
  return (BigInt(date.getTime()) - BigInt(offset) * 60000n) * 1000n + micros;
}

/* The recording time as the recipe hashes it: UTC, six fractional digits, `Z` (null stays null). */
function recordedTime(text) {
  if (text === null) return null;
  const micros = instant(text);
  if (micros === null) throw new TypeError("время записи без часового пояса: " + text);
  const seconds = micros / 1000000n - (micros % 1000000n < 0n ? 1n : 0n);
  const fraction = micros - seconds * 1000000n;
  return new Date(Number(seconds) * 1000).toISOString().slice(0, 19) + "." + String(fraction).padStart(6, "0") + "Z";
}

/* A decimal number's value as one text (digits and exponent), so that 1350.50 and 1350.5 are equal. */
function decimalValue(text) {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(String(text).trim());
  if (!m || (m[2] + (m[3] || "")) === "") return "NaN:" + text;
  let digits = (m[2] + (m[3] || "")).replace(/^0+/, "");
  let exponent = Number(m[4] || 0) - (m[3] || "").length;
  if (digits === "") return "0";
  while (digits.endsWith("0")) {
    digits = digits.slice(0, -1);
    exponent += 1;
  }
  return (m[1] === "-" ? "-" : "") + digits + "e" + exponent;
}

/* A value as third_party_check.stored_value reads it: the library's tagged Decimals and times as
   their values, every number as a Decimal; then written as comparable canonical JSON. */
function storedValue(value) {
  if (Array.isArray(value)) return value.map(storedValue);
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 2 && "_type_" in value && "_data_" in value) {
      if (value._type_ === "decimal_str") return { decimal: decimalValue(value._data_) };
      if (value._type_ === "datetime_iso") {
        const micros = instant(String(value._data_));
        return micros === null ? { naive: value._data_ } : { instant: String(micros) };
      }
      return value._data_;
    }
    return Object.fromEntries(keys.map((key) => [key, storedValue(value[key])]));
  }
  if (typeof value === "number") return { decimal: decimalValue(value) };
  return value;
}

function sameValue(shown, stored) {
  return canonicalJson(storedValue(shown)) === canonicalJson(storedValue(stored));
}

/* What the entry shows a person that its hashed payload does not say, as a list of sentences. */
function shownDifferences(entry, stored) {
  const problems = [];
  const named = entry.topic.split(".").pop(); // ugc.Order.Placed: OrderPlaced; ugc.Order.WorkDelivered: WorkDelivered
  if (entry.type !== named && entry.type !== "Order" + named) {
    problems.push(`тип ${entry.type} не соответствует сохранённому topic ${entry.topic}`);
  }
  const at = stored.at && stored.at._type_ === "datetime_iso" ? instant(String(stored.at._data_)) : null;
  if (at === null || at !== instant(entry.occurred_at)) problems.push("occurred_at отличается от at в захешированных данных");
  if ((stored.request_id === undefined ? null : stored.request_id) !== entry.request_id) {
    problems.push("request_id отличается от захешированного");
  }
  if (typeof stored.actor === "string") { // version 1 stored a number (or nothing): the server derives it
    const cut = stored.actor.indexOf(":");
    const kind = cut < 0 ? stored.actor : stored.actor.slice(0, cut);
    const ident = cut < 0 ? "" : stored.actor.slice(cut + 1);
    const shown = entry.actor || {};
    const same = kind === "user"
      ? shown.kind === kind && /^\d+$/.test(ident) && shown.id === Number(ident)
      : shown.kind === kind && shown.username === (ident || null);
    if (!same) problems.push("actor отличается от захешированного");
  }
  for (const [name, value] of Object.entries(entry.data || {})) {
    if (!(name in stored)) {
      // null: a fact a later version added, upcast as unsaid for an older event (erased_party before v3)
      if (value !== null) problems.push(`data.${name}: этого поля нет в захешированных данных`);
    } else if (!sameValue(value, stored[name])) problems.push(`data.${name} отличается от захешированного`);
  }
  return problems;
}

function hexBytes(hex) {
  return Uint8Array.from(hex.match(/../g), (pair) => parseInt(pair, 16));
}

function bytesHex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

/* SHA-256(previous hash || canonical bytes of the entry), as lowercase hex. */
async function entryHash(previousHex, entry) {
  const canonical = canonicalJson({
    context: AUDIT_CONTEXT,
    recorded_at: recordedTime(entry.recorded_at),
    state: entry.payload,
    stream: entry.stream,
    topic: entry.topic,
    version: entry.version,
  });
  const body = new TextEncoder().encode(canonical);
  const input = new Uint8Array(32 + body.length);
  input.set(hexBytes(previousHex), 0);
  input.set(body, 32);
  return bytesHex(await crypto.subtle.digest("SHA-256", input));
}

/* Every entry checked: `{version, computed, problems}`, one per entry, oldest first.

   Each entry is held to the entry before it as served, not to the one recomputed for it, nor to its
   place in the list: an edited event is then named alone, and so is an event removed, at the row that
   follows the gap (its version is not the previous row's next, nor its previous_hash that row's hash),
   while the rows after it, which follow their predecessor, still verify. */
async function verifyRecord(entries) {
  const results = [];
  let previous = GENESIS_HEX;
  let expected = 1;
  for (const [index, entry] of entries.entries()) {
    const problems = [];
    let computed = null;
    try {
      if (entry.version !== expected) {
        problems.push(`ожидалась версия ${expected}: событие пропущено или переставлено`);
      }
      if (entry.previous_hash !== previous) {
        problems.push(index === 0
          ? "previous_hash первого события — не 64 нуля"
          : "previous_hash не совпадает с hash предыдущего события");
      }
      computed = await entryHash(previous, entry);
      if (computed !== entry.hash) problems.push(`hash не совпадает с пересчитанным ${computed}`);
      let stored = null;
      try {
        stored = JSON.parse(entry.payload);
      } catch (error) {
        stored = undefined;
      }
      if (stored === null || typeof stored !== "object" || Array.isArray(stored)) {
        problems.push("payload — не объект JSON");
      } else {
        problems.push(...shownDifferences(entry, stored));
      }
    } catch (error) {
      problems.push("запись события повреждена: " + error.message);
    }
    results.push({ version: entry.version, computed, problems });
    previous = /^[0-9a-f]{64}$/.test(entry.hash) ? entry.hash : GENESIS_HEX;
    expected = Number.isSafeInteger(entry.version) ? entry.version + 1 : expected + 1;
  }
  return results;
}
