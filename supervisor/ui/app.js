// ccos console: a read-only view of the supervisor's API. Everything shown
// here comes from the API routes under /v1/, called with the identity of
// this page's connection (the Unix socket's operator, or the agent a client
// certificate names). The page performs no action: it submits and cancels
// nothing. Text from the API is only ever inserted as text (textContent),
// never as markup; capability arguments and values, request bodies and
// payloads beyond a whitelist of fields per event type are never shown.

const PAGE = 50; // runs per page
const ROWS = 200; // rows of a long table shown at first
const MORE = 500; // rows each "show more" adds
const BATCH = 50; // rows a table adds per frame

// ---- DOM helpers ----------------------------------------------------------

// h builds an element: attrs sets attributes (on* are never used), children
// are nodes or strings (inserted as text).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

function badge(text, cls, label) {
  return h("span", { class: "badge " + cls, title: label }, text);
}

function statusBadge(st) {
  return badge(st.replace("_", " "), "st-" + st);
}

function facts(pairs) {
  const dl = h("dl", { class: "facts" });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(h("dt", {}, k), h("dd", {}, v));
  }
  return dl;
}

// ---- formatting -----------------------------------------------------------

function pad(n, w = 2) { return String(n).padStart(w, "0"); }

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function fmtMs(ms) {
  if (ms === undefined || ms === null || isNaN(ms)) return "";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 1000) return Math.round(ms) + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}

function fmtBytes(n) {
  if (!n) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (Number.isInteger(n) ? n : n.toFixed(1)) + " " + units[i];
}

function runDuration(run) {
  if (!run.started) return null;
  const end = run.finished ? Date.parse(run.finished) : Date.now();
  return end - Date.parse(run.started);
}

// redact keeps the scheme and host of the URLs in an error text and drops
// their paths and queries, which may carry tokens.
function redact(s) {
  return typeof s === "string" ? s.replace(/\b(https?:\/\/[^\/\s?#]+)[^\s]*/g, "$1/…") : s;
}

// ---- API ------------------------------------------------------------------

class APIError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.kind = body && body.kind;
  }
}

async function api(path, opts = {}) {
  const resp = await fetch(path, { headers: { Accept: "application/json" }, ...opts });
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok && !(opts.accept || []).includes(resp.status)) throw new APIError(resp.status, body);
  return body;
}

// ---- views and routing ----------------------------------------------------

const main = document.getElementById("main");
let cleanup = []; // what the current view must stop when it is left
let routed = false; // set after the first view: later views take the focus

function onLeave(fn) { cleanup.push(fn); }

function parseHash() {
  const hash = location.hash || "#/runs";
  const [path, query] = hash.slice(1).split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

async function route() {
  if (location.hash && !location.hash.startsWith("#/")) return;
  for (const fn of cleanup.splice(0)) fn();
  const { parts, params } = parseHash();
  const [section, arg] = parts;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === (section || "runs")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main.replaceChildren();
  main.removeAttribute("data-state");
  try {
    if (section === "runs" && arg) await runView(arg);
    else if (section === "chain" && arg) await chainView(arg, params);
    else if (section === "chain") await chainsView();
    else if (section === "agents") await agentsView();
    else await runsView(params);
  } catch (err) {
    main.append(h("p", { class: "error", role: "alert" }, err.message));
  }
}

function title(text) {
  document.title = text + " · ccos console";
  const h1 = h("h1", { tabindex: "-1" }, text);
  main.prepend(h1);
  if (routed) h1.focus();
  routed = true;
  return h1;
}

window.addEventListener("hashchange", route);
document.querySelector(".skip").addEventListener("click", (e) => { e.preventDefault(); main.focus(); });

// An EventSource the current view closes when it is left.
function stream(url, handlers) {
  const es = new EventSource(url);
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => fn(e.data ? JSON.parse(e.data) : null, e));
  }
  onLeave(() => es.close());
  return es;
}

// readEvents reads a Server-Sent Events stream with fetch, calling
// onEvent(type, data) for each event after the id after until it returns
// true; a broken connection is resumed after a second from the last
// event's id. (The
// browser's EventSource hands every event of a large chunk to the page in
// one task, which freezes it for a run of thousands of events.)
async function readEvents(url, signal, onEvent, after = "") {
  let last = after;
  for (;;) {
    try {
      const u = last ? url + (url.includes("?") ? "&" : "?") + "last_event_id=" + encodeURIComponent(last) : url;
      const resp = await fetch(u, { signal, headers: { Accept: "text/event-stream" } });
      if (!resp.ok) {
        let body = null;
        try { body = await resp.json(); } catch { /* not JSON */ }
        throw new APIError(resp.status, body);
      }
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      let type = "message", data = [], id = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let start = 0, nl;
        let until = performance.now() + SLICE;
        while ((nl = buf.indexOf("\n", start)) >= 0) {
          if (performance.now() >= until) {
            await yieldToBrowser();
            until = performance.now() + SLICE;
          }
          let line = buf.slice(start, nl);
          start = nl + 1;
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") {
            if (id !== null) last = id;
            if (data.length && onEvent(type, data.join("\n"))) { reader.cancel(); return; }
            type = "message"; data = []; id = null;
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + (line[colon + 1] === " " ? 2 : 1));
          if (field === "event") type = val;
          else if (field === "data") data.push(val);
          else if (field === "id") id = val;
        }
        buf = buf.slice(start);
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof APIError) throw err;
    }
    if (signal.aborted) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// yieldToBrowser lets the browser draw and handle input before the
// caller goes on.
function yieldToBrowser() {
  return new Promise((resolve) => {
    const c = new MessageChannel();
    c.port1.onmessage = () => { c.port1.close(); resolve(); };
    c.port2.postMessage(null);
  });
}

// sliced returns a function that queues items for handle and handles them
// in slices of at most SLICE ms, yielding to the browser between slices
// (through a message channel, which no timer clamping slows down).
const SLICE = 8;
function sliced(handle) {
  const queue = [];
  let next = 0;
  let scheduled = false;
  let stopped = false;
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    scheduled = false;
    const until = performance.now() + SLICE;
    while (next < queue.length && !stopped) {
      handle(queue[next++]);
      if (performance.now() >= until) break;
    }
    if (next < queue.length && !stopped) schedule();
    else { queue.length = 0; next = 0; }
  };
  const schedule = () => { if (!scheduled) { scheduled = true; channel.port2.postMessage(null); } };
  const enqueue = (item) => { queue.push(item); schedule(); };
  enqueue.stop = () => { stopped = true; channel.port1.close(); };
  return enqueue;
}

// ---- runs list ------------------------------------------------------------

const STATUSES = ["queued", "running", "succeeded", "failed", "in_doubt", "cancelled"];
let pageStack = []; // cursors of the pages before the one shown

// NOW says what a run's state is, after its id.
const NOW = { queued: "is queued", running: "is running", succeeded: "succeeded", failed: "failed", in_doubt: "ended in doubt", cancelled: "was cancelled" };

function rank(run) {
  const st = run.status === "queued" ? 0 : run.status === "running" ? 1 : 2;
  return (run.attempts || 0) * 3 + st;
}

async function runsView(params) {
  const f = { agent: params.get("agent") || "", status: params.get("status") || "", before: params.get("before") || "" };
  if (!f.before) pageStack = [];
  title("Runs");
  const agents = (await api("/v1/agents")).agents;
  const live = h("p", { class: "live", role: "status", "aria-live": "polite", id: "runs-live" }, "Connecting to live updates…");
  const agentSel = h("select", { id: "f-agent" }, h("option", { value: "" }, "All agents"),
    agents.map((a) => h("option", { value: a.agent, selected: a.agent === f.agent }, a.agent)));
  const statusSel = h("select", { id: "f-status" }, h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === f.status }, s.replace("_", " "))));
  const go = () => {
    const q = new URLSearchParams();
    if (agentSel.value) q.set("agent", agentSel.value);
    if (statusSel.value) q.set("status", statusSel.value);
    pageStack = [];
    location.hash = "#/runs" + (q.toString() ? "?" + q : "");
  };
  agentSel.addEventListener("change", go);
  statusSel.addEventListener("change", go);
  main.append(h("form", { class: "filters", role: "search", "aria-label": "Filter runs" },
    h("label", { for: "f-agent" }, "Agent", agentSel),
    h("label", { for: "f-status" }, "Status", statusSel)), live);

  const tbody = h("tbody");
  const table = h("table", { id: "runs" },
    h("caption", {}, "Runs, newest first" + (f.before ? " (older page)" : "")),
    h("thead", {}, h("tr", {}, ["Run", "Agent", "Status", "Provider", "Plan", "Submitted", "Started", "Duration"].map((c) =>
      h("th", { scope: "col", class: c === "Duration" ? "num" : undefined }, c)))),
    tbody);
  const empty = h("p", { class: "muted" }, "No runs match.");
  const newer = h("button", { type: "button", class: "secondary", disabled: !f.before }, "Newer");
  const older = h("button", { type: "button", class: "secondary", disabled: true }, "Older");
  const count = h("span", { class: "muted" });
  main.append(table, empty, h("div", { class: "pager" }, newer, older, count));

  const rows = new Map(); // run id -> {run, tr}
  let next = "";
  const row = (run) => {
    const d = runDuration(run);
    const tr = h("tr", { "data-run": run.run_id, "data-status": run.status },
      h("td", {}, h("a", { href: "#/runs/" + encodeURIComponent(run.run_id) }, run.run_id)),
      h("td", {}, run.agent),
      h("td", {}, statusBadge(run.status)),
      h("td", {}, run.provider || ""),
      h("td", {}, run.plan || h("span", { class: "muted" }, "(unnamed)")),
      h("td", {}, fmtTime(run.submitted)),
      h("td", {}, fmtTime(run.started)),
      h("td", { class: "num", "data-duration": "" }, d === null ? "" : fmtMs(d)));
    return tr;
  };
  const matches = (run) => (!f.agent || run.agent === f.agent) && (!f.status || run.status === f.status);
  const refresh = () => {
    empty.hidden = rows.size > 0;
    count.textContent = `${rows.size} shown`;
  };
  const put = (run, fromFeed) => {
    const cur = rows.get(run.run_id);
    if (cur) {
      if (rank(run) < rank(cur.run)) return;
      if (!matches(run)) { cur.tr.remove(); rows.delete(run.run_id); refresh(); return; }
      const tr = row(run);
      cur.tr.replaceWith(tr);
      rows.set(run.run_id, { run, tr });
      if (fromFeed) live.textContent = `Run ${run.run_id} ${NOW[run.status] || run.status}.`;
    } else if (matches(run) && (!fromFeed || !f.before)) {
      const tr = row(run);
      // Newest first: before the first row submitted earlier.
      const when = Date.parse(run.submitted);
      let at = null;
      for (const tr of tbody.children) {
        const r = rows.get(tr.dataset.run).run;
        const t = Date.parse(r.submitted);
        if (t < when || (t === when && r.run_id < run.run_id)) { at = tr; break; }
      }
      tbody.insertBefore(tr, fromFeed ? at : null);
      rows.set(run.run_id, { run, tr });
      if (fromFeed) live.textContent = `New run ${run.run_id} ${NOW[run.status] || run.status}.`;
    }
    refresh();
  };

  // Subscribe first, then list, so that no change between the two is
  // missed; changes that arrive before the list are applied after it.
  let pending = [];
  const load = async () => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (f.agent) q.set("agent", f.agent);
    if (f.status) q.set("status", f.status);
    if (f.before) q.set("before", f.before);
    const list = await api("/v1/runs?" + q);
    tbody.replaceChildren();
    rows.clear();
    // rows keep the server's order: appended in turn
    for (const r of list.runs) put(r, false);
    next = list.next || "";
    older.disabled = !next;
    const queued = pending;
    pending = null;
    for (const r of queued) put(r, true);
    refresh();
    main.setAttribute("data-state", "loaded");
  };
  const feedURL = "/v1/events" + (f.agent ? "?agent=" + encodeURIComponent(f.agent) : "");
  stream(feedURL, {
    hello: () => { live.textContent = "Live: the list updates as runs change."; live.dataset.on = "true"; document.body.dataset.live = "on"; },
    run: (run) => { if (pending) pending.push(run); else put(run, true); },
    reset: () => { pending = []; load(); },
    error: () => { live.dataset.on = "false"; live.textContent = "Live updates interrupted; reconnecting…"; document.body.dataset.live = "off"; },
  });
  onLeave(() => { delete document.body.dataset.live; });
  newer.addEventListener("click", () => {
    const prev = pageStack.pop();
    const q = new URLSearchParams();
    if (f.agent) q.set("agent", f.agent);
    if (f.status) q.set("status", f.status);
    if (prev) q.set("before", prev);
    location.hash = "#/runs" + (q.toString() ? "?" + q : "");
  });
  older.addEventListener("click", () => {
    pageStack.push(f.before);
    const q = new URLSearchParams();
    if (f.agent) q.set("agent", f.agent);
    if (f.status) q.set("status", f.status);
    q.set("before", next);
    location.hash = "#/runs?" + q;
  });
  // Durations of running runs tick.
  const timer = setInterval(() => {
    for (const { run, tr } of rows.values()) {
      if (run.status === "running") tr.querySelector("[data-duration]").textContent = fmtMs(runDuration(run));
    }
  }, 1000);
  onLeave(() => clearInterval(timer));
  await load();
}

// ---- long tables ----------------------------------------------------------

// ListTable shows a growing list: the first ROWS rows, more on request;
// rows whose item changed are drawn again at the next flush.
class ListTable {
  constructor(id, caption, columns) {
    this.columns = columns;
    this.items = [];
    this.at = new Map(); // item -> its index in items
    this.trs = [];
    this.limit = ROWS;
    this.changed = new Set();
    this.tbody = h("tbody");
    this.table = h("table", { id },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : c.nowrap ? "nowrap" : undefined }, c.label)))),
      this.tbody);
    this.note = h("span", { class: "muted" });
    this.button = h("button", { type: "button", class: "secondary" }, `Show ${MORE} more`);
    this.button.addEventListener("click", () => { this.limit += MORE; this.more(); });
    this.el = h("div", {}, this.table, h("div", { class: "more" }, this.button, this.note));
    this.flush();
  }
  // more draws the rows up to the limit, a batch a frame.
  more() { if (this.flush()) requestAnimationFrame(() => this.more()); }
  push(item) { this.at.set(item, this.items.length); this.items.push(item); }
  // touch marks an item changed: drawn again at the next flush if shown.
  touch(item) { if (this.at.get(item) < this.trs.length) this.changed.add(item); }
  draw(item) { return h("tr", {}, this.columns.map((c) => h("td", { class: c.num ? "num" : c.nowrap ? "nowrap" : undefined }, c.cell(item)))); }
  // flush draws the changed rows and up to BATCH new ones; it returns true
  // when rows are left for the next frame.
  flush() {
    for (const item of this.changed) {
      const i = this.at.get(item);
      if (i < this.trs.length) {
        const tr = this.draw(item);
        this.trs[i].replaceWith(tr);
        this.trs[i] = tr;
      }
    }
    this.changed.clear();
    const shown = Math.min(this.items.length, this.limit);
    const upto = Math.min(shown, this.trs.length + BATCH);
    if (this.trs.length < upto) {
      const frag = document.createDocumentFragment();
      for (let i = this.trs.length; i < upto; i++) {
        const tr = this.draw(this.items[i]);
        this.trs.push(tr);
        frag.append(tr);
      }
      this.tbody.append(frag);
    }
    const n = this.items.length;
    this.table.hidden = n === 0;
    this.button.hidden = n <= this.limit;
    this.note.textContent = n === 0 ? "None." : n > this.limit ? `Showing ${shown} of ${n}.` : `${n} in all.`;
    return this.trs.length < shown;
  }
}

// ---- one run --------------------------------------------------------------

// summarize returns what the console shows of an event's payload: for each
// type, a whitelist of fields; never arguments, values or bodies.
function summarize(ev) {
  const d = ev.data && typeof ev.data === "object" ? ev.data : {};
  switch (ev.type) {
    case "plan.admitted": return `plan ${d.name || "(unnamed)"}, ${(d.steps || []).length} step(s), risk tier ${kwName(d["risk-tier"]) || "?"}, level ${kwName(d["security-level"]) || "?"}`;
    case "plan.finished": return d.ok ? "ok" : "failed" + (d.failure ? ": " + redact(d.failure) : "");
    case "step.started": return d.attempt ? `attempt ${d.attempt}` + (d.cause ? ` after: ${redact(d.cause)}` : "") : "";
    case "step.finished": return (d.ok ? "ok" : "failed" + (d.error ? ": " + redact(d.error) : "")) + (d["duration-ms"] !== undefined ? `, ${d["duration-ms"]} ms` : "");
    case "capability.call": return `${kwName(d.capability) || "?"} (${(d.args || []).length} argument(s))`;
    case "capability.result": return `${kwName(d.capability) || "?"}: ` + (d.ok ? "ok" : "error" + (d.error ? ": " + redact(d.error) : "")) + (d.replayed ? " (from the journal)" : "");
    case "proxy.decision": return `${d.action === ":allow" ? "allowed" : d.action === ":deny" ? "refused" : d.action} ${d.method || ""} ${d.host || ""}:${d.port || ""} rule ${d.rule || "?"}`;
    case "attestation": return kwName(d.verdict) + (d.error ? ": " + redact(d.error) : "");
    case "sandbox.lifecycle": return kwName(d.event) + (d.provider ? " " + d.provider : "") + (d.error ? ": " + redact(d.error) : "") + (typeof d.reason === "string" && d.reason !== ":exited" ? ": " + redact(kwName(d.reason)) : "");
    case "guest.event": return d.done ? `done: ${kwName(d.done)}` + (d.message ? ": " + redact(d.message) : "") : "";
    case "output": return `${(ev.text || "").length} characters of output`;
    case "events.truncated": return ev.text || "";
    default: return "";
  }
}

const ENDED = { succeeded: "The run succeeded.", failed: "The run failed.", cancelled: "The run was cancelled.", in_doubt: "The run ended in doubt." };
const kwName = (v) => (typeof v === "string" ? v.replace(/^:/, "") : "");

async function runView(id) {
  const [run, planView] = await Promise.all([
    api("/v1/runs/" + encodeURIComponent(id)),
    api("/v1/runs/" + encodeURIComponent(id) + "/plan").catch((err) => ({ error: err.message, steps: [] })),
  ]);
  title("Run " + run.run_id);
  main.setAttribute("data-state", "loading");

  // Summary.
  const statusCell = h("span", {});
  const summary = h("section", { "aria-labelledby": "h-summary" }, h("h2", { id: "h-summary" }, "Summary"));
  const drawSummary = (r) => {
    statusCell.replaceChildren(statusBadge(r.status));
    const outcome = r.error ? `${r.error.type || "error"}: ${redact(r.error.message)}` + (r.error.where ? ` (${r.error.where})` : "")
      : r.value !== undefined ? r.value : "";
    const dl = facts([
      ["Agent", h("a", { href: "#/agents" }, r.agent)],
      ["Status", statusCell],
      ["Plan", r.plan || "(unnamed)"],
      ["File", r.file],
      ["Plan hash", h("code", {}, r.plan_hash || "")],
      ["Provider", r.provider],
      ["Isolation asked", r.isolation],
      ["Submitted", fmtTime(r.submitted)],
      ["Started", fmtTime(r.started)],
      ["Finished", fmtTime(r.finished)],
      ["Duration", r.started ? fmtMs(runDuration(r)) : ""],
      ["Attempts", String(r.attempts)],
      [r.error ? "Plan error" : "Value", outcome ? h("code", {}, outcome) : ""],
      ["Failure", redact(r.failure)],
      ["In doubt", (r.in_doubt || []).length ? h("ul", { class: "plain" }, r.in_doubt.map((k) => h("li", {}, h("code", {}, k)))) : ""],
    ]);
    summary.querySelector("dl")?.remove();
    summary.append(dl);
  };
  drawSummary(run);

  // Evidence: receipt and checkpoint.
  const receipt = h("dd", {}, "checking…");
  const checkpoint = h("dd", {});
  const evidence = h("section", { "aria-labelledby": "h-evidence" }, h("h2", { id: "h-evidence" }, "Evidence"),
    h("dl", { class: "facts" }, h("dt", {}, "Receipt"), receipt, h("dt", {}, "Chain checkpoint"), checkpoint));
  const receiptURL = "/v1/runs/" + encodeURIComponent(run.run_id) + "/receipt";
  const checkReceipt = () => fetch(receiptURL, { method: "HEAD" }).then((resp) => {
    receipt.replaceChildren(resp.ok
      ? h("span", {}, h("a", { href: receiptURL, id: "receipt-link" }, "Signed run receipt"), " (an in-toto statement in a DSSE envelope, JSON)")
      : h("span", { id: "receipt-link", class: "muted" }, resp.status === 404 ? "Not available: the run is not over, or its agent's chain has no signing key." : `Not available (HTTP ${resp.status}).`));
  }).catch(() => receipt.replaceChildren(h("span", { id: "receipt-link", class: "muted" }, "Not available.")));
  checkReceipt();
  const drawCheckpoint = (r) => {
    const chainLink = h("a", { href: "#/chain/" + encodeURIComponent(r.agent) }, `Chain of ${r.agent}: verify it, prove an event`);
    checkpoint.replaceChildren(r.checkpoint ? h("div", {}, h("pre", { id: "checkpoint-note" }, r.checkpoint), chainLink)
      : h("div", {}, h("span", { class: "muted" }, r.status === "queued" || r.status === "running" ? "At the end of the run." : "None: the chain of this agent is not signed."), " ", chainLink));
  };
  drawCheckpoint(run);

  // Steps: the timeline.
  const profiles = new Map(); // step name -> admitted profile
  const steps = new Map(); // step name -> {name, begin, end, ok, error, attempts, ms}
  let t0 = run.started ? Date.parse(run.started) : null;
  let tLast = t0;
  const stepsBody = h("tbody");
  const stepsSection = h("section", { "aria-labelledby": "h-steps" }, h("h2", { id: "h-steps" }, "Steps"),
    h("table", { id: "steps" },
      h("caption", {}, "Each step the host admitted, when it began and ended, and the profile it was admitted with"),
      h("thead", {}, h("tr", {}, ["Step", "Began", "Ended", "Duration", "Attempts", "Result", "Admitted profile", "Timeline"].map((c) =>
        h("th", { scope: "col", class: c === "Duration" || c === "Attempts" ? "num" : c === "Timeline" ? "bar-cell" : undefined }, c)))),
      stepsBody));
  const profileText = (p) => {
    if (!p) return h("span", { class: "muted" }, "not in the admission");
    const caps = (p.capabilities || []).map(kwName);
    const parts = [caps.length ? "capabilities " + caps.join(", ") : "no capability"];
    if ((p.domains || []).length) parts.push("domains " + p.domains.join(", "));
    if ((p.methods || []).length) parts.push("methods " + p.methods.map(kwName).join(", "));
    if (p["max-time-ms"]) parts.push("max " + fmtMs(p["max-time-ms"]));
    if (p.retry) parts.push("retry " + p.retry);
    return parts.join("; ");
  };
  const drawSteps = () => {
    const names = [...steps.keys()];
    for (const name of profiles.keys()) if (!steps.has(name)) names.push(name);
    const span = Math.max(1, (tLast || 0) - (t0 || 0));
    stepsBody.replaceChildren(...names.map((name) => {
      const s = steps.get(name);
      const p = profiles.get(name);
      let result, bar = null;
      if (!s) result = h("span", { class: "muted" }, "not entered");
      else if (s.ok === undefined) result = badge("running", "v-running");
      else result = s.ok ? badge("ok", "v-ok") : h("span", {}, badge("failed", "v-failed"), " ", redact(s.error) || "");
      if (s && t0 !== null) {
        const end = s.end ?? tLast;
        const b = h("span", { class: s.ok === false ? "failed" : s.ok === undefined ? "running" : "" });
        b.style.left = ((s.begin - t0) / span * 100).toFixed(2) + "%";
        b.style.width = (Math.max(0, end - s.begin) / span * 100).toFixed(2) + "%";
        bar = h("div", { class: "bar", "aria-hidden": "true" }, b);
      }
      return h("tr", { "data-step": name },
        h("th", { scope: "row" }, name),
        h("td", { class: "nowrap" }, s ? "+" + fmtMs(s.begin - t0) : ""),
        h("td", { class: "nowrap" }, s && s.end !== undefined ? "+" + fmtMs(s.end - t0) : ""),
        h("td", { class: "num" }, s && s.ms !== undefined ? fmtMs(s.ms) : ""),
        h("td", { class: "num" }, s ? String(s.attempts) : ""),
        h("td", {}, result),
        h("td", {}, profileText(p)),
        h("td", { class: "bar-cell" }, bar));
    }));
    if (!names.length) stepsBody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No steps.")));
  };

  // Plan source with the running step highlighted.
  const nowRunning = h("p", { class: "live", role: "status", "aria-live": "polite", id: "running-step" });
  const code = h("code", {});
  const source = h("section", { "aria-labelledby": "h-source" }, h("h2", { id: "h-source" }, "Plan source"), nowRunning,
    h("pre", { id: "source", "aria-label": "Plan source" }, code));
  renderSource(code, run.source || "", planView.steps || []);
  if (planView.error) source.append(h("p", { class: "error" }, planView.error));
  const srcStep = (name) => code.querySelector(`[data-step="${CSS.escape(name)}"]`);

  // Output.
  const outPre = h("pre", { id: "output" });
  const outNote = h("p", { class: "muted" });
  const output = h("section", { "aria-labelledby": "h-output" }, h("h2", { id: "h-output" }, "Output"), outNote, outPre);
  let outText = "";

  // Capability calls.
  const calls = new ListTable("calls", "Capability calls: the capability, its step, who ran or claims it, and how it ended (arguments and values are in the causal chain, not shown here)", [
    { label: "#", num: true, cell: (c) => String(c.n) },
    { label: "Step", cell: (c) => c.step || "" },
    { label: "Capability", nowrap: true, cell: (c) => h("code", {}, c.capability) },
    { label: "Recorded by", cell: (c) => (c.origin === "guest" ? "guest (its claim)" : "host") },
    { label: "Arguments", num: true, cell: (c) => String(c.args) },
    { label: "Result", cell: (c) => c.ok === undefined ? h("span", { class: "muted" }, "no result yet") : c.ok ? h("span", {}, badge("ok", "v-ok"), c.replayed ? " from the journal" : "") : h("span", {}, badge("error", "v-failed"), " ", redact(c.error) || "") },
  ]);
  const openCalls = new Map(); // step|capability -> [call]
  const callsSection = h("section", { class: "lazy", "aria-labelledby": "h-calls" }, h("h2", { id: "h-calls" }, "Capability calls"), calls.el);

  // Egress decisions.
  const decisions = new ListTable("egress", "Egress decisions of the proxy: allowed and refused requests, with the rule that decided", [
    { label: "Time", nowrap: true, cell: (d) => "+" + fmtMs(d.t - t0) },
    { label: "Step", cell: (d) => d.step || "" },
    { label: "Decision", cell: (d) => d.action === "allow" ? badge("allowed", "v-allow") : d.action === "deny" ? badge("refused", "v-deny") : badge(d.action, "v-report") },
    { label: "Request", cell: (d) => h("code", {}, `${d.method || ""} ${d.host || ""}${d.port ? ":" + d.port : ""}`) },
    { label: "Rule", cell: (d) => h("code", {}, d.rule || "") },
    { label: "Reason", cell: (d) => [redact(d.reason) || "", d.dlp && d.dlp.length ? ` (DLP: ${d.dlp.join(", ")})` : "", d.error ? ` (${redact(d.error)})` : ""].join("") },
    { label: "Status", num: true, cell: (d) => d.status ? String(d.status) : "" },
  ]);
  const egressCount = h("p", { class: "muted", id: "egress-count" });
  let allowed = 0, refused = 0;
  const egress = h("section", { class: "lazy", "aria-labelledby": "h-egress" }, h("h2", { id: "h-egress" }, "Egress decisions"), egressCount, decisions.el);

  // Attestation.
  const attBody = h("div", { id: "attestation" });
  const attestations = [];
  const attestation = h("section", { class: "lazy", "aria-labelledby": "h-att" }, h("h2", { id: "h-att" }, "Attestation"), attBody);
  const drawAttestation = (final) => {
    if (!attestations.length) {
      attBody.replaceChildren(h("p", { class: "muted" }, final
        ? `No attestation: the ${run.provider || "run's"} provider does not measure what it boots.`
        : "None yet."));
      return;
    }
    const host = attestations.filter((a) => a.origin === "host");
    const verdict = (host[host.length - 1] || attestations[attestations.length - 1]).verdict;
    attBody.replaceChildren(h("p", {}, "Verdict: ", badge(verdict, "v-" + verdict)),
      ...attestations.map((a) => h("div", {},
        h("h3", {}, `${a.verdict} (${a.origin === "guest" ? "the guest's claim" : "the host's measurement"})`),
        facts([
          ...Object.entries(a.measurements || {}).map(([k, v]) => [k, h("code", {}, v)]),
          ["Artifact", a.artifact], ["Expected", a.expected && h("code", {}, a.expected)], ["Actual", a.actual && h("code", {}, a.actual)],
          ["Error", redact(a.error)],
        ]))));
  };

  // Every event.
  const log = new ListTable("events", "Every event of the run, in order (payload fields shown by type; arguments, values and bodies never)", [
    { label: "Seq", num: true, cell: (e) => String(e.seq) },
    { label: "Time", nowrap: true, cell: (e) => h("span", { title: fmtTime(e.time) }, t0 !== null ? "+" + fmtMs(Date.parse(e.time) - t0) : fmtTime(e.time)) },
    { label: "Type", cell: (e) => h("code", {}, e.type) },
    { label: "Origin", cell: (e) => e.origin || "" },
    { label: "Step", cell: (e) => e.step || "" },
    { label: "Summary", cell: (e) => summarize(e) },
  ]);
  const eventsNote = h("p", { class: "muted", id: "events-count" });
  const eventsSection = h("section", { class: "lazy", "aria-labelledby": "h-events" }, h("h2", { id: "h-events" }, "Events"), eventsNote, log.el);

  main.append(summary, evidence, stepsSection, source, output, callsSection, egress, attestation, eventsSection);

  // Each event is read once into the sections' models; the sections are
  // drawn at most once a frame.
  let nEvents = 0;
  let dirty = false;
  let final = run.status !== "queued" && run.status !== "running";
  let lastSeq = 0;
  const take = (ev) => {
    if (ev.seq <= lastSeq) return; // already read (a stream resumed)
    lastSeq = ev.seq;
    nEvents++;
    const t = Date.parse(ev.time);
    if (t0 === null || t < t0) t0 = t;
    if (t > tLast || tLast === null) tLast = t;
    const d = ev.data && typeof ev.data === "object" ? ev.data : {};
    switch (ev.type) {
      case "plan.admitted":
        for (const p of d.steps || []) profiles.set(p.name, p);
        break;
      case "step.started": {
        let s = steps.get(ev.step);
        if (!s) { s = { name: ev.step, begin: t, attempts: 0 }; steps.set(ev.step, s); }
        s.attempts++;
        s.ok = undefined; s.end = undefined; s.ms = undefined;
        const el = srcStep(ev.step);
        if (el) { el.classList.remove("done", "failed"); el.classList.add("running"); }
        nowRunning.textContent = `Running step: ${ev.step}`;
        break;
      }
      case "step.finished": {
        const s = steps.get(ev.step) || { name: ev.step, begin: t, attempts: 1 };
        steps.set(ev.step, s);
        s.end = t; s.ok = !!d.ok; s.error = d.error || ""; s.ms = d["duration-ms"];
        const el = srcStep(ev.step);
        if (el) { el.classList.remove("running"); el.classList.add(s.ok ? "done" : "failed"); }
        nowRunning.textContent = `Step ${ev.step} ${s.ok ? "finished" : "failed"}.`;
        break;
      }
      case "capability.call": {
        const c = { n: calls.items.length + 1, step: ev.step, capability: kwName(d.capability), origin: ev.origin, args: (d.args || []).length };
        const k = c.step + "|" + c.capability;
        if (!openCalls.has(k)) openCalls.set(k, []);
        openCalls.get(k).push(c);
        calls.push(c);
        break;
      }
      case "capability.result": {
        const k = ev.step + "|" + kwName(d.capability);
        const c = (openCalls.get(k) || []).shift();
        if (c) { c.ok = !!d.ok; c.error = d.error; c.replayed = !!d.replayed; calls.touch(c); }
        break;
      }
      case "proxy.decision": {
        const action = kwName(d.action);
        if (action === "allow") allowed++; else if (action === "deny") refused++;
        decisions.push({ t, step: ev.step, action, method: d.method, host: d.host, port: d.port, rule: d.rule, reason: d.reason, status: d.status, dlp: d.dlp, error: d.error });
        break;
      }
      case "attestation":
        attestations.push({ origin: ev.origin, verdict: kwName(d.verdict), measurements: d.measurements, artifact: d.artifact, expected: d.expected, actual: d.actual, error: d.error });
        break;
      case "output":
        outText += ev.text || "";
        break;
    }
    log.push(ev);
    if (!dirty) { dirty = true; requestAnimationFrame(draw); }
  };
  const draw = () => {
    dirty = false;
    drawSteps();
    const left = [calls.flush(), decisions.flush(), log.flush()].some(Boolean);
    if (left && !dirty) { dirty = true; requestAnimationFrame(draw); }
    drawAttestation(final);
    egressCount.textContent = decisions.items.length ? `${decisions.items.length} decision(s): ${allowed} allowed, ${refused} refused.` : "No request left the sandbox.";
    outPre.textContent = outText;
    outNote.textContent = outText ? "" : final ? "The run printed nothing." : "Nothing yet.";
    eventsNote.textContent = `${nEvents} event(s)` + (final ? "." : " so far; the run is live.");
    main.setAttribute("data-events", String(nEvents));
  };
  draw();
  const end = async () => {
    const r = await api("/v1/runs/" + encodeURIComponent(run.run_id));
    drawSummary(r);
    if (r.status === "queued" || r.status === "running") {
      // The stream ends at once for a run that waits for a worker (it has
      // no live events yet): follow it again shortly.
      const timer = setTimeout(follow, 1000);
      onLeave(() => clearTimeout(timer));
      return;
    }
    final = true;
    drawCheckpoint(r);
    checkReceipt();
    if (r.output !== undefined && r.output.length >= outText.length) outText = r.output;
    if (r.output_truncated) outNote.textContent = "The output was longer than the supervisor keeps; the rest is not shown.";
    for (const s of steps.values()) if (s.ok === undefined) { s.ok = false; s.error = "did not finish"; }
    nowRunning.textContent = ENDED[r.status] || `The run is ${r.status}.`;
    for (const el of code.querySelectorAll(".running")) el.classList.remove("running");
    draw();
    requestAnimationFrame(() => {
      main.setAttribute("data-state", "ended");
      main.setAttribute("data-loaded-ms", performance.now().toFixed(1));
    });
  };
  // A finished run's stored events come in large chunks: they are read
  // from the stream as they arrive and handled in slices of a few
  // milliseconds, so that the page stays responsive while a long run loads.
  const END = {};
  const enqueue = sliced((item) => (item === END ? end() : take(JSON.parse(item))));
  const abort = new AbortController();
  const follow = () => readEvents("/v1/runs/" + encodeURIComponent(run.run_id) + "/events", abort.signal, (type, data) => {
    if (type === "run") enqueue(data);
    else if (type === "end") { enqueue(END); return true; }
    return false;
  }, lastSeq ? String(lastSeq) : "").catch((err) => main.append(h("p", { class: "error", role: "alert" }, "The run's events cannot be read: " + err.message)));
  follow();
  onLeave(() => { abort.abort(); enqueue.stop(); });
  main.setAttribute("data-state", final ? "replaying" : "live");
}

// renderSource writes src into el with each step's form wrapped in a span
// (steps nest): spans are [start, end) in UTF-16 code units.
function renderSource(el, src, steps) {
  const spans = steps.map((s) => ({ name: s.name, a: s.start.utf16, b: s.end.utf16, children: [] }))
    .filter((s) => s.a >= 0 && s.b <= src.length && s.a < s.b)
    .sort((x, y) => x.a - y.a || y.b - x.b);
  const root = { a: 0, b: src.length, children: [] };
  const stack = [root];
  for (const s of spans) {
    while (stack.length > 1 && s.a >= stack[stack.length - 1].b) stack.pop();
    stack[stack.length - 1].children.push(s);
    stack.push(s);
  }
  const emit = (node, into) => {
    let pos = node.a;
    for (const c of node.children) {
      if (c.a > pos) into.append(src.slice(pos, c.a));
      const span = h("span", { class: "src-step", "data-step": c.name, title: "step " + c.name });
      emit(c, span);
      into.append(span);
      pos = c.b;
    }
    if (pos < node.b) into.append(src.slice(pos, node.b));
  };
  emit(root, el);
}

// ---- chains ---------------------------------------------------------------

async function chainsView() {
  title("Causal chains");
  const agents = (await api("/v1/agents")).agents;
  const tbody = h("tbody");
  main.append(h("table", { id: "chains" }, h("caption", {}, "Each agent's causal chain"),
    h("thead", {}, h("tr", {}, ["Agent", "Events", "Latest checkpoint", "Signed"].map((c) => h("th", { scope: "col" }, c)))), tbody));
  for (const a of agents) {
    const c = await api("/v1/agents/" + encodeURIComponent(a.agent) + "/chain");
    tbody.append(h("tr", {}, h("th", { scope: "row" }, h("a", { href: "#/chain/" + encodeURIComponent(a.agent) }, a.agent)),
      h("td", {}, String(c.size)), h("td", {}, c.checkpoint ? `size ${c.checkpoint.size}` : "none"), h("td", {}, c.signing ? "yes" : "no")));
  }
  if (!agents.length) main.append(h("p", { class: "muted" }, "No agent."));
  main.setAttribute("data-state", "loaded");
}

async function chainView(agent, params) {
  title("Causal chain of " + agent);
  const base = "/v1/agents/" + encodeURIComponent(agent) + "/chain";
  const info = h("div", {});
  const draw = async () => {
    const c = await api(base);
    info.replaceChildren(facts([
      ["Events", h("span", { id: "chain-size" }, String(c.size))],
      ["Merkle root", h("code", {}, c.root)],
      ["Checkpoints", c.signing ? "signed at the end of every run" : "not signed (the supervisor has no chain key)"],
      ["Signatures", c.verifier ? "checked with the supervisor's verifier key" : "not checked (no verifier key given to the supervisor); sizes and roots are"],
      ["Latest checkpoint", c.checkpoint ? `size ${c.checkpoint.size}, origin ${c.checkpoint.origin}` : "none"],
    ]), c.checkpoint ? h("pre", { id: "chain-checkpoint" }, c.checkpoint.note) : "");
  };
  const refresh = h("button", { type: "button", class: "secondary" }, "Refresh");
  refresh.addEventListener("click", draw);
  main.append(h("section", { "aria-labelledby": "h-chain" }, h("h2", { id: "h-chain" }, "Chain"), info, refresh));

  // Verify on the server.
  const verifyBtn = h("button", { type: "button", id: "verify" }, "Verify the chain on the server");
  const verdict = h("div", { id: "verify-result", role: "status", "aria-live": "polite" });
  verifyBtn.addEventListener("click", async () => {
    verifyBtn.disabled = true;
    verdict.className = "";
    verdict.textContent = "Verifying every event, link, the Merkle tree and every checkpoint…";
    try {
      const v = await api(base + "/verify", { method: "POST" });
      verdict.className = "result " + (v.ok ? "ok" : "broken");
      verdict.dataset.ok = String(v.ok);
      verdict.replaceChildren(v.ok
        ? h("p", {}, h("strong", {}, "Intact. "), `${v.events} events, ${v.checkpoints} checkpoint(s), Merkle root ${v.root}. `,
          v.signatures_checked ? "Checkpoint signatures checked." : "Checkpoint signatures not checked (no verifier key); their sizes and roots were.",
          ` (${fmtMs(v.duration_ms)})`)
        : h("p", {}, h("strong", {}, "Broken. "), v.bad_seq !== undefined ? `The first bad event is seq ${v.bad_seq}; the ${v.events} before it verified. ` : "",
          h("span", { class: "mono" }, v.error)));
    } catch (err) {
      verdict.className = "result broken";
      verdict.textContent = "Verification could not run: " + err.message;
    }
    verifyBtn.disabled = false;
    draw();
  });
  main.append(h("section", { "aria-labelledby": "h-verify" }, h("h2", { id: "h-verify" }, "Verify"),
    h("p", {}, "The server reads the chain back from its store and recomputes every event's hash, the links between events, the Merkle tree and every checkpoint."),
    verifyBtn, verdict));

  // Inclusion proof of any event.
  const index = h("input", { id: "proof-index", type: "number", min: "0", step: "1", required: true, inputmode: "numeric", value: params.get("index") || "" });
  const proveBtn = h("button", { type: "submit", id: "prove" }, "Prove inclusion");
  const proof = h("div", { id: "proof-result", role: "status", "aria-live": "polite" });
  const form = h("form", { class: "filters", "aria-label": "Inclusion proof" },
    h("label", { for: "proof-index" }, "Event sequence number", index), proveBtn);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    proof.className = "";
    proof.textContent = "Proving…";
    try {
      const p = await api(base + "/proof?index=" + encodeURIComponent(index.value));
      proof.className = "result ok";
      proof.replaceChildren(
        h("p", {}, h("strong", {}, "Included. "), `Event ${p.index} is in the tree of ${p.checkpoint.size} events the latest checkpoint signs; the server checked the proof against its root`,
          p.signature_checked ? " and the checkpoint's signature." : " (the signature was not checked: no verifier key)."),
        facts([
          ["Type", h("code", {}, p.event.type)],
          ["Origin", p.event.origin],
          ["Time", fmtTime(p.event.time)],
          ["Run", p.event.session ? h("a", { href: "#/runs/" + encodeURIComponent(p.event.session) }, p.event.session) : ""],
          ["Step", p.event.step],
          ["Leaf hash", h("code", {}, p.leaf_hash)],
          ["Checkpoint root", h("code", {}, p.checkpoint.root)],
          ["Proof", h("ol", { class: "plain mono" }, p.proof.map((x) => h("li", {}, x)))],
        ]));
    } catch (err) {
      proof.className = "result broken";
      proof.textContent = err.message;
    }
  });
  main.append(h("section", { "aria-labelledby": "h-proof" }, h("h2", { id: "h-proof" }, "Inclusion proof"),
    h("p", {}, "An RFC 6962 inclusion proof of any event covered by the latest checkpoint (the sequence numbers start at 0)."), form, proof));
  await draw();
  if (params.get("index")) form.requestSubmit();
  main.setAttribute("data-state", "loaded");
}

// ---- agents ---------------------------------------------------------------

async function agentsView() {
  title("Agents");
  const [agents, health] = await Promise.all([api("/v1/agents"), api("/v1/health", { accept: [503] })]);
  const pools = new Map((health.agents || []).map((a) => [a.agent, a]));
  const cards = h("div", { class: "cards" });
  main.append(cards);
  for (const a of agents.agents) {
    const l = a.limits || {};
    const p = pools.get(a.agent) || {};
    const runs = Object.entries(a.runs || {}).sort();
    cards.append(h("section", { class: "card", "aria-labelledby": "a-" + a.agent, "data-agent": a.agent },
      h("h2", { id: "a-" + a.agent }, a.agent),
      h("p", {}, h("a", { href: "#/runs?agent=" + encodeURIComponent(a.agent) }, "Runs"), " · ",
        h("a", { href: "#/chain/" + encodeURIComponent(a.agent) }, "Causal chain")),
      facts([
        ["Config file", a.file],
        ["Isolation", a.isolation],
        ["Provider", a.provider],
        ["Security level", a.security_level],
        ["Replay on crash", a.replay_on_crash ? "yes" : "no"],
        ["Network", a.network ? "through the egress proxy" : "none"],
        ["Allowed domains", a.allow_domains.length ? h("ul", { class: "plain" }, a.allow_domains.map((d) => h("li", {}, h("code", {}, d)))) : "none"],
        ["Capabilities", h("ul", { class: "plain" }, (a.capabilities || []).map((c) => h("li", {}, h("code", {}, c))))],
      ]),
      h("h3", {}, "Limits"),
      facts([
        ["Memory", fmtBytes(l.memory_bytes)],
        ["Processes", l.pids ? String(l.pids) : ""],
        ["CPU", l.cpu_percent ? l.cpu_percent + "% of a core" : ""],
        ["Scratch directory", fmtBytes(l.workdir_bytes)],
        ["Deadline", fmtMs(l.deadline_ms)],
        ["Guest log kept", fmtBytes(l.log_bytes)],
        ["microVM", l.vcpus ? `${l.vcpus} vCPU, ${l.mem_mb} MiB` : ""],
        ["Runs at once", l.concurrent ? `${l.concurrent} (provider ${a.provider})` : ""],
        ["Queue", l.queue ? `${l.queue} waiting at most` : ""],
        ["DLP", l.dlp || "off"],
      ]),
      h("h3", {}, "Counters"),
      facts([
        ...runs.map(([st, n]) => ["Runs " + st.replace("_", " "), String(n)]),
        ["Chain events", p.chain_size !== undefined ? String(p.chain_size) : ""],
        ["Pool", p.pool_size ? `${p.ready} ready of ${p.pool_size} (${p.pool_died} ended idle or died)` : "none"],
        ["Problem", p.problem],
      ]),
      h("details", {}, h("summary", {}, "Config (expanded, formatted)"), h("pre", {}, a.config))));
  }
  if (!agents.agents.length) main.append(h("p", { class: "muted" }, "No agent."));
  main.setAttribute("data-state", "loaded");
}

// Every declaration above is initialised: show the first view.
route();
