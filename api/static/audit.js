"use strict";
/* The auditor's page: sign in, fetch every page of an order's history, show each event and what
   the browser's own check (audit-verify.js) found. The access token lives only in this closure:
   never in storage, so closing the tab forgets it. */
(() => {
  const $ = (id) => document.getElementById(id);
  const signin = $("signin");
  const lookup = $("lookup");
  const message = $("message");
  const summary = $("summary");
  const table = $("record");
  const rows = $("entries");
  const PAGE_SIZE = 100;
  let session = null; // {username, access}

  const say = (element, text, kind) => {
    element.textContent = text;
    element.className = kind || "";
  };

  /* The API's Russian message for a refused request (401/403/404 `detail`, 400/422 `error` and its
     fields, 429's wait), never a blank page. */
  async function refusal(response) {
    const body = await response.json().catch(() => ({}));
    const fields = body && body.fields ? Object.values(body.fields).flat().join(" ") : "";
    let text = [body && (body.detail || body.error), fields].filter(Boolean).join(" ");
    const wait = response.headers.get("Retry-After");
    if (response.status === 429 && wait) text += ` (через ${wait} с)`;
    return text || `Ошибка ${response.status}.`;
  }

  class Refused extends Error {
    constructor(status, text) {
      super(text);
      this.status = status;
    }
  }

  // The path this server is reached under (UGC_PUBLIC_URL's), which the page names.
  const BASE = document.documentElement.dataset.base || "";

  async function call(path, options) {
    let response;
    try {
      response = await fetch(path, { cache: "no-store", credentials: "omit", ...options });
    } catch (error) {
      throw new Refused(0, "Сервер недоступен, попробуйте ещё раз.");
    }
    if (!response.ok) throw new Refused(response.status, await refusal(response));
    return response.json();
  }

  /* Every entry of the record, following `next` (an absolute URL) on this origin only. */
  async function history(order, asOf, access) {
    const query = new URLSearchParams({ page_size: String(PAGE_SIZE) });
    if (asOf) query.set("as_of", asOf);
    let path = `${BASE}/api/v1/orders/${encodeURIComponent(order)}/history/?${query}`;
    const entries = [];
    while (path) {
      const page = await call(path, { headers: { Authorization: `Bearer ${access}` } });
      entries.push(...page.results);
      const next = page.next ? new URL(page.next, window.location.href) : null;
      path = next ? next.pathname + next.search : null;
    }
    return entries;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text === null || text === undefined ? "—" : String(text);
    if (className) td.className = className;
    return td;
  }

  const who = (actor) =>
    actor ? [actor.kind, actor.id, actor.username].filter((part) => part !== null && part !== undefined).join(" / ") : "—";

  // A value as JSON writes it, but for U+2028 and U+2029, which JSON leaves as they are and a browser
  // breaks a line at.
  const asJson = (value) =>
    JSON.stringify(value).replace(/[\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16));

  /* One line per field, each value as JSON writes it (as `ugc history` prints the table): a text a
     party wrote keeps its line breaks escaped, so it never shows a line of its own making ("total_price:
     1") among the event's fields. */
  const readable = (data) =>
    Object.entries(data || {})
      .map(([name, value]) => `${name}: ${asJson(value)}`)
      .join("\n");

  function show(entries, results) {
    rows.replaceChildren();
    entries.forEach((entry, index) => {
      const result = results[index];
      const row = rows.insertRow();
      row.className = result.problems.length ? "broken" : "ok";
      row.dataset.version = String(entry.version);
      row.dataset.computed = result.computed || "";
      cell(row, entry.version);
      cell(row, entry.type);
      cell(row, entry.occurred_at);
      cell(row, who(entry.actor));
      cell(row, entry.request_id);
      cell(row, readable(entry.data), "data");
      cell(row, entry.recorded_at);
      cell(row, entry.hash, "hash");
      cell(row, result.problems.length ? result.problems.join("; ") : "✓ проверено", "verdict");
    });
    table.hidden = false;
  }

  function conclude(order, entries, results) {
    const broken = results.filter((result) => result.problems.length);
    if (!entries.length) {
      say(summary, `В записи заказа №${order} нет событий.`, "broken");
    } else if (!broken.length) {
      say(summary, `Запись заказа №${order} подтверждена: ${entries.length} из ${entries.length} событий проверены — `
        + "каждый хеш пересчитан в браузере и совпадает, цепочка не разорвана, показанное совпадает с захешированным.", "ok");
    } else {
      const versions = broken.map((result) => result.version).join(", ");
      say(summary, `Запись заказа №${order} НЕ подтверждается: ошибки в ${broken.length} из ${entries.length} `
        + `событий (версии ${versions}).`, "broken");
    }
  }

  function signedIn(yes) {
    signin.hidden = yes;
    lookup.hidden = !yes;
    $("who").textContent = yes ? session.username : "";
    if (!yes) session = null;
  }

  async function busy(button, work) {
    button.disabled = true;
    try {
      await work();
    } finally {
      button.disabled = false;
    }
  }

  signin.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("signin-button"), async () => {
      say(message, "Входим…");
      const username = $("username").value;
      try {
        const tokens = await call(`${BASE}/api/auth/token/`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ username, password: $("password").value }),
        });
        session = { username, access: tokens.access };
        $("password").value = "";
        signedIn(true);
        say(message, "");
        $("order").focus();
      } catch (error) {
        say(message, error.message, "error");
      }
    });
  });

  $("signout").addEventListener("click", () => {
    signedIn(false);
    rows.replaceChildren();
    table.hidden = true;
    say(summary, "");
    say(message, "");
  });

  lookup.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("lookup-button"), async () => {
      const order = $("order").value.trim();
      rows.replaceChildren();
      table.hidden = true;
      say(summary, "");
      if (!window.crypto || !window.crypto.subtle) {
        say(message, "Браузер не даёт странице WebCrypto: откройте её по HTTPS (или с localhost).", "error");
        return;
      }
      say(message, "Загружаем историю…");
      // The session this lookup runs for: once it is signed out, whatever arrives is dropped, never
      // drawn under the sign-in form for whoever sits down next.
      const current = session;
      let entries;
      try {
        entries = await history(order, $("as-of").value.trim(), current.access);
      } catch (error) {
        if (session !== current) return;
        say(message, error.message, "error");
        if (error.status === 401) signedIn(false); // the token expired: sign in again
        return;
      }
      if (session !== current) return;
      say(message, "Пересчитываем хеши…");
      const results = await verifyRecord(entries);
      if (session !== current) return;
      show(entries, results);
      conclude(order, entries, results);
      say(message, "");
    });
  });
})();
