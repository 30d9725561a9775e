// Healer console: Pending approvals, Decisions (the audit), Controls, Health — on Healer's own API.
// Everything that came from an alert, an event or an exception is untrusted: it is only ever set as text
// (textContent), never as HTML, and a link is only made from an http(s) URL. A GET never changes state.
"use strict";

const API = new URL(".", document.baseURI).pathname.replace(/console\/?$/, "");  // "/api/"
const HEALERS = ["rollback", "downshift", "replication", "errors"];
const OUTCOMES = ["acted", "dry-run", "pending", "approved", "rejected", "expired", "refused", "skipped", "ignored",
  "duplicate", "failed", "escalated", "dead-letter", "config-invalid", "recorded"];
const state = { session: null, key: null };

// ------------------------------------------------------------------------------------------- plumbing

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "href") { const safe = safeUrl(v); if (safe) node.setAttribute("href", safe); }
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function safeUrl(value) {
  try {
    const u = new URL(String(value), location.href);
    return (u.protocol === "https:" || u.protocol === "http:") ? u.href : null;
  } catch { return null; }
}

function credentials() {
  // Function-key mode: the key arrives once in the URL (?code=...), is kept for this tab only and removed
  // from the address bar, and is sent as a header (never in a URL the console builds).
  const params = new URLSearchParams(location.search);
  if (params.get("code")) {
    sessionStorage.setItem("healer.key", params.get("code"));
    params.delete("code");
    const q = params.toString();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : "") + location.hash);
  }
  state.key = sessionStorage.getItem("healer.key");
}

async function api(method, path, body) {
  const headers = { "accept": "application/json" };
  if (state.key) headers["x-functions-key"] = state.key;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && state.session && state.session.csrf) headers["x-healer-csrf"] = state.session.csrf;
  const r = await fetch(API + path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (!r.ok) {
    const why = (data && (data.error || data.reason)) || r.statusText;
    const err = new Error(`${method} ${path}: ${r.status} ${why}`);
    err.status = r.status;
    err.data = data;
    throw err;
  }
  return data;
}

function banner(text, bad) {
  const b = document.getElementById("banner");
  b.hidden = !text;
  b.className = "banner" + (bad ? " bad" : "");
  b.textContent = text || "";
}

function timeLeft(iso) {
  const ms = Date.parse(iso) - Date.now();
  if (!(ms > 0)) return "expired";
  const m = Math.floor(ms / 60000);
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m left`;
}

function short(resource) {
  const s = String(resource || "");
  return s.split("/").filter(Boolean).slice(-1)[0] || s;
}

function evidence(obj) {
  const dl = el("dl", { class: "evidence" });
  for (const [k, v] of Object.entries(obj || {})) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v)));
  }
  return dl;
}

// ------------------------------------------------------------------------------------------- pages

async function pendingApprovals() {
  try { return (await api("GET", "approvals")).pending || []; }
  catch (e) {
    if (e.status !== 404) throw e;
    const lists = await Promise.all(HEALERS.map(h => api("GET", `approvals/${h}`).then(d => d.pending || [])));
    return lists.flat();
  }
}

function alertEvidence(a) {
  // The alert behind an approval (from the work message Healer parked with it), as the on-call needs it.
  const alert = (a.message && a.message.alert) || {};
  const pick = { "alert rule": alert.rule, "condition": alert.monitor_condition, "fired": alert.fired_at,
    "severity": alert.severity, "signal": alert.signal_type, "description": alert.description };
  return Object.fromEntries(Object.entries(pick).filter(([, v]) => v));
}

async function pagePending(root) {
  root.append(el("h2", {}, "Pending approvals"));
  const items = await pendingApprovals();
  if (!items.length) { root.append(el("p", { class: "empty" }, "Nothing is waiting for a human.")); return; }
  const focus = new URLSearchParams(location.hash.split("?")[1] || "").get("id");
  for (const a of items.sort((x, y) => String(y.requestedAt).localeCompare(String(x.requestedAt)))) {
    const reason = el("input", { placeholder: "reason (recorded in the audit)", "aria-label": "reason", maxlength: 500 });
    const decide = (decision) => async () => {
      if (!reason.value.trim()) { banner("Say why: the reason is recorded in the audit.", true); reason.focus(); return; }
      try {
        await api("POST", `approvals/${encodeURIComponent(a.healer)}/${encodeURIComponent(a.id)}`,
          { decision, note: reason.value.trim(), by: state.session ? state.session.name : "console" });
        banner(`${decision === "approve" ? "Approved" : "Rejected"}: ${a.action} on ${short(a.resource)}`);
        route();
      } catch (e) { banner(e.message, true); }
    };
    const can = state.session && state.session.canApprove;
    const card = el("section", { class: "card", "data-approval": a.id, id: `approval-${a.id}` },
      el("h3", {}, `${a.action} on ${short(a.resource)}`),
      el("div", { class: "meta" }, `${a.healer} · requested ${a.requestedAt} · ${timeLeft(a.expiresAt)} · id ${a.id}`),
      el("p", {}, a.reason || ""),
      evidence({ resource: a.resource, subject: a.subject, ...alertEvidence(a), ...(a.evidence || {}) }),
      el("div", { class: "actions" }, reason,
        el("button", { class: "approve", onclick: decide("approve"), disabled: !can }, "Approve"),
        el("button", { class: "reject", onclick: decide("reject"), disabled: !can }, "Reject")),
      can ? null : el("div", { class: "meta" }, "Read-only: approving needs the Healer.Approver role (or a signed link)."));
    root.append(card);
    if (focus === a.id) card.scrollIntoView();
  }
}

function dayRange(from, to) {
  const days = [];
  for (let d = new Date(to + "T00:00:00Z"); d >= new Date(from + "T00:00:00Z") && days.length < 31;
       d.setUTCDate(d.getUTCDate() - 1)) days.push(d.toISOString().slice(0, 10));
  return days;
}

async function pageDecisions(root) {
  const today = new Date().toISOString().slice(0, 10);
  const weekAgo = new Date(Date.now() - 6 * 864e5).toISOString().slice(0, 10);
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const f = { from: q.get("from") || weekAgo, to: q.get("to") || today, healer: q.get("healer") || "",
    outcome: q.get("outcome") || "", resource: q.get("resource") || "", subject: q.get("subject") || "" };
  const input = (name, type) => el("label", {}, name, el("input", { name, type: type || "text", value: f[name] }));
  const select = (name, values) => el("label", {}, name, el("select", { name },
    el("option", { value: "" }, "any"), values.map(v => el("option", { value: v, selected: v === f[name] }, v))));
  const form = el("form", { class: "filters", onsubmit: (ev) => {
    ev.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    for (const [k, v] of [...data.entries()]) if (!v) data.delete(k);
    location.hash = "decisions?" + data.toString();
  } }, input("from", "date"), input("to", "date"), select("healer", HEALERS.concat(["controls"])),
    select("outcome", OUTCOMES), input("resource"), input("subject"), el("button", { type: "submit" }, "Show"));
  root.append(el("h2", {}, "Decisions"), form);
  const pages = await Promise.all(dayRange(f.from, f.to).map(day => api("GET",
    `audit?day=${day}&limit=500` + ["healer", "outcome", "resource"].filter(k => f[k])
      .map(k => `&${k}=${encodeURIComponent(f[k])}`).join("")).then(d => d.records || [])));
  const records = pages.flat().filter(r => !f.subject || r.subject === f.subject);
  if (!records.length) { root.append(el("p", { class: "empty" }, "No decisions in this range.")); return; }
  const table = el("table", {}, el("thead", {}, el("tr", {}, ["time (UTC)", "healer", "outcome", "resource",
    "incident", "reason"].map(h => el("th", {}, h)))));
  const body = el("tbody");
  for (const r of records) {
    const detail = el("tr", { class: "detail", hidden: true }, el("td", { colspan: 6 },
      el("pre", {}, JSON.stringify({ id: r.id, details: r.details }, null, 2))));
    const incident = el("a", { href: "#decisions?subject=" + encodeURIComponent(r.subject || "") +
      `&from=${f.from}&to=${f.to}` }, r.subject || "");
    body.append(el("tr", { class: "record", "data-id": r.id, onclick: (ev) => {
      if (ev.target.tagName !== "A") detail.hidden = !detail.hidden; } },
      el("td", {}, String(r.at || "").replace("T", " ").slice(0, 19)), el("td", {}, r.healer),
      el("td", { class: "outcome " + String(r.outcome || "").replace(/[^a-z-]/g, "") }, r.outcome),
      el("td", { title: r.resource }, short(r.resource)), el("td", {}, incident), el("td", {}, r.reason)), detail);
  }
  table.append(body);
  root.append(el("div", { class: "meta" }, `${records.length} decisions, newest first; click one for its details`),
    table);
}

async function pageControls(root) {
  root.append(el("h2", {}, "Controls"));
  const data = await api("GET", "controls?all=true");
  const can = state.session && state.session.canApprove;
  const rows = data.controls || [data];
  const table = el("table", {}, el("thead", {}, el("tr", {},
    ["scope", "kill switch", "dry-run", "set by", "at", "reason", ""].map(h => el("th", {}, h)))));
  const set = (scope, field, value) => async () => {
    const reason = prompt(`Reason for ${field} ${value ? "on" : "off"} (recorded):`);
    if (!reason) return;
    try {
      await api("POST", "controls", { ...(scope && scope !== "global" ? { scope } : {}), [field]: value, reason,
        by: state.session ? state.session.name : "console" });
      route();
    } catch (e) { banner(e.message, true); }
  };
  const body = el("tbody");
  for (const c of rows) {
    const scope = c.scope || "global";
    const kill = Boolean(c.kill ?? c.killed), dry = Boolean(c.dryRun ?? c.dry_run);
    body.append(el("tr", { "data-scope": scope }, el("td", { title: scope }, scope === "global" ? "global" : short(scope)),
      el("td", { class: kill ? "on" : "off" }, kill ? "ON" : "off"), el("td", { class: dry ? "on" : "off" }, dry ? "ON" : "off"),
      el("td", {}, c.by || ""), el("td", {}, c.at || ""), el("td", {}, c.reason || ""),
      el("td", {}, el("button", { class: kill ? "" : "danger", disabled: !can, onclick: set(scope, "kill", !kill) },
        kill ? "Clear kill switch" : "Kill"), " ",
        el("button", { disabled: !can, onclick: set(scope, "dryRun", !dry) }, dry ? "Go live" : "Dry-run"))));
  }
  table.append(body);
  root.append(table);
  if (can) {
    const scope = el("input", { placeholder: "/subscriptions/.../sites/<app>", "aria-label": "resource id", size: 60 });
    root.append(el("div", { class: "actions" }, scope,
      el("button", { class: "danger", onclick: () => set(scope.value.trim(), "kill", true)() }, "Kill for this resource")));
  }
}

async function pageHealth(root) {
  root.append(el("h2", {}, "Health"));
  let h;
  try { h = await api("GET", "health"); }
  catch (e) { if (e.status === 503 && e.data) h = e.data; else throw e; }
  root.append(el("p", {}, "Configuration: ", el("span", { class: h.status === "ok" ? "status-ok" : "status-bad" },
    h.status === "ok" ? "valid" : "INVALID — Healer acts on nothing until it is fixed"), ` · version ${h.version || "?"}`));
  if ((h.problems || []).length) root.append(evidence(Object.fromEntries(h.problems.map(p => [p.setting, p.problem || p.message]))));
  const timers = h.timers || {};
  root.append(el("h3", {}, "Timers"), el("table", {}, el("thead", {}, el("tr", {}, ["timer", "last run", "past due"]
    .map(x => el("th", {}, x)))), el("tbody", {}, Object.entries(timers).map(([name, t]) => el("tr", {},
      el("td", {}, name), el("td", {}, t ? t.lastRun : "never"), el("td", {}, t && t.pastDue ? "yes" : ""))))));
  const queues = h.queues || {};
  root.append(el("h3", {}, "Queues"), el("table", {}, el("thead", {}, el("tr", {}, ["queue", "waiting", "dead letters"]
    .map(x => el("th", {}, x)))), el("tbody", {}, Object.entries(queues).map(([name, q]) => el("tr", {},
      el("td", {}, name), el("td", {}, String(q.depth ?? "?")),
      el("td", { class: q.deadLetters ? "on" : "" }, String(q.deadLetters ?? "?")))))));
}

const PAGES = { pending: pagePending, decisions: pageDecisions, controls: pageControls, health: pageHealth };

async function route() {
  const name = (location.hash.slice(1).split("?")[0]) || "pending";
  const page = PAGES[name] || pagePending;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  const root = document.getElementById("page");
  root.replaceChildren();
  root.setAttribute("data-loading", "true");
  try { await page(root); }
  catch (e) { root.append(el("p", { class: "status-bad" }, e.message)); }
  finally { root.removeAttribute("data-loading"); root.setAttribute("data-page", name); }
}

async function start() {
  credentials();
  try { state.session = await api("GET", "session"); }
  catch (e) { state.session = null; banner(`Not signed in: ${e.message}`, true); }
  const who = document.getElementById("who");
  if (state.session) who.textContent = `${state.session.name} · ${state.session.canApprove ? "approver" : "read-only"}`;
  window.addEventListener("hashchange", route);
  await route();
}

start();
