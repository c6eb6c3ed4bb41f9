// eventstore's page: three views chosen by the URL's #fragment, drawn with the DOM (no framework),
// every datum read from the REST API with the token the user gave (kept in sessionStorage).
//   #/                       the assets          (?name=&active=)
//   #/asset/<id>             one asset           (?key=&at=<ISO>|position=<p>)
//   #/feed                   the live feed
// When a view has drawn, it sets <body data-ready="1"> (the tests and the benchmark wait for it).

const TOKEN = "eventstore.token";
const PAGE = 100;
const POLL_MS = 2000;
const FEED_ROWS = 200;
const SVG = "http://www.w3.org/2000/svg";

// --- small DOM helpers -----------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) el.append(child);
  return el;
}

const $ = (id) => document.getElementById(id);

function announce(text) {
  $("status").textContent = text;
}

function showAlert(text, kind = "error", action = null) {
  const box = $("alert");
  box.replaceChildren(text, action || "");
  box.className = kind === "error" ? "alert" : "alert info";
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.hidden = false;
}

function clearAlert() {
  $("alert").hidden = true;
  $("alert").replaceChildren();
}

// --- formatting --------------------------------------------------------------------------------------

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").replace(/\.000Z$|Z$/, "") + " UTC";
}

function fmtValue(value, max = 120) {
  const text = value === undefined ? "" : JSON.stringify(value);
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

function fmtWriter(w) {
  if (!w) return "—";
  let text = w.kind;
  if (w.kind === "task") {
    text += ` ${w.dag_id}.${w.task_id}`;
    if (w.map_index !== null && w.map_index !== undefined && w.map_index >= 0) text += `[${w.map_index}]`;
    if (w.run_id) text += ` (${w.run_id})`;
  }
  if (w.user) text += ` by ${w.user}`;
  return text;
}

function fmtNumber(n) {
  return Number.isInteger(n) ? n.toLocaleString("en") : Number(n.toPrecision(6)).toLocaleString("en");
}

// --- the API, with the token ----------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

let tokenPrompt = null;
let session = null; // GET api/v2/session: {tokens_required, name, scope} for the token in use
let ensuring = null;

function token() {
  return sessionStorage.getItem(TOKEN);
}

function authHeaders() {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  return headers;
}

function showAuth() {
  const named = session && session.name;
  $("auth-status").textContent = named
    ? `Token: ${session.name} (${session.scope})`
    : session && !session.tokens_required
      ? "Open server (no tokens)"
      : "No token given";
  $("auth-change").textContent = token() ? "Use another token…" : "Enter a token…";
  $("auth-forget").hidden = token() === null;
}

async function loadSession() {
  const response = await fetch("api/v2/session", { headers: authHeaders(), cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, `The server answered HTTP ${response.status}.`);
  session = await response.json();
  showAuth();
  return session;
}

// Before any data call: if the server needs a token and has none it accepts, ask for one (a single
// dialog however many calls wait). Asking first, rather than on a 401, keeps the console free of errors.
function ensureToken() {
  if (session && (!session.tokens_required || session.name)) return Promise.resolve();
  if (!ensuring) {
    ensuring = (async () => {
      if (!session) await loadSession();
      while (session.tokens_required && !session.name) {
        const reason = token()
          ? "The server did not accept the token (unknown or revoked). Enter another one."
          : "This server needs a token to show its data.";
        if (!(await askToken(reason))) throw new ApiError(401, "No token was given, so the data cannot be shown.");
        await loadSession();
      }
    })().finally(() => {
      ensuring = null;
    });
  }
  return ensuring;
}

function canWrite() {
  return !session || !session.tokens_required || session.scope === "write" || session.scope === "admin";
}

// Ask for a token; resolves true if one was given (and keeps it in sessionStorage).
function askToken(reason) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const dialog = $("token-dialog");
    const input = $("token-input");
    $("token-reason").textContent = reason;
    input.value = "";
    const done = (given) => {
      dialog.removeEventListener("close", onClose);
      $("token-cancel").removeEventListener("click", onCancel);
      tokenPrompt = null;
      resolve(given);
    };
    const onClose = () => {
      const value = input.value.trim();
      if (dialog.returnValue === "ok" && value) {
        sessionStorage.setItem(TOKEN, value);
        session = null;
        showAuth();
        done(true);
      } else done(false);
    };
    const onCancel = () => {
      dialog.returnValue = "cancel";
      dialog.close();
    };
    dialog.addEventListener("close", onClose);
    $("token-cancel").addEventListener("click", onCancel);
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

async function api(path, { method = "GET", asked = false } = {}) {
  await ensureToken();
  const response = await fetch(path, { method, headers: authHeaders(), cache: "no-store" });
  if (response.status === 401 && !asked) {
    session = null; // revoked meanwhile: check again, and ask
    return api(path, { method, asked: true });
  }
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    let detail = body && typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
    if (response.status === 403) detail = `Not allowed with this token: ${detail}.`;
    throw new ApiError(response.status, detail);
  }
  return body;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

// --- routing -----------------------------------------------------------------------------------------

let leave = () => {};
let generation = 0;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, params: new URLSearchParams(search) };
}

function go(path, params = {}, { replace = false } = {}) {
  const target = `#${path}${query(params)}`;
  if (replace) history.replaceState(null, "", target);
  else location.hash = target;
  if (replace) route();
}

async function route() {
  leave();
  leave = () => {};
  const mine = ++generation;
  document.body.dataset.ready = "0";
  clearAlert();
  const { path, params } = parseHash();
  const main = $("main");
  for (const link of document.querySelectorAll(".top nav a")) link.removeAttribute("aria-current");
  try {
    let match;
    if (path === "/" || path === "") {
      $("nav-assets").setAttribute("aria-current", "page");
      await assetsView(main, params, mine);
    } else if ((match = path.match(/^\/asset\/(\d+)$/))) {
      await assetView(main, Number(match[1]), params, mine);
    } else if (path === "/feed") {
      $("nav-feed").setAttribute("aria-current", "page");
      await feedView(main, mine);
    } else {
      document.title = "Not found · eventstore";
      main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the assets")));
    }
  } catch (error) {
    if (mine !== generation) return;
    main.replaceChildren(h("h1", {}, "Could not load this page"), h("p", {}, error.message));
    showAlert(error.message, "error", retryButton());
  }
  if (mine === generation) {
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
  }
}

function retryButton() {
  return h("button", { type: "button", onclick: () => route() }, "Try again");
}

// --- the assets ------------------------------------------------------------------------------------

async function assetsView(main, params, mine) {
  document.title = "Assets · eventstore";
  const name = params.get("name") || "";
  const active = params.get("active") || "";
  const offset = Number(params.get("offset") || 0);
  const search = h("input", { id: "asset-search", type: "search", value: name, autocomplete: "off" });
  const radio = (value, label) =>
    h("label", {}, h("input", { type: "radio", name: "active", value, checked: value === active }), " ", label);
  const body = h("tbody");
  const caption = h("caption", {}, "Loading…");
  const pager = h("div", { class: "pager" });
  const form = h(
    "form",
    { role: "search", class: "toolbar", onsubmit: (e) => e.preventDefault() },
    h("div", { class: "field" }, h("label", { for: "asset-search" }, "Search by name or URI"), search),
    h("fieldset", {}, h("legend", {}, "Show"), radio("", "All"), radio("true", "Active"), radio("false", "Inactive")),
  );
  main.replaceChildren(
    h("h1", {}, "Assets"),
    h("p", { class: "sub" }, "Every registered asset, with its number of keys and its last change."),
    form,
    h(
      "table",
      { id: "assets" },
      caption,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Name"),
          h("th", { scope: "col" }, "URI"),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col", class: "num" }, "Keys"),
          h("th", { scope: "col" }, "Last change"),
        ),
      ),
      body,
    ),
    pager,
  );

  let current = { name, active, offset };
  const load = async () => {
    const answer = await api(
      `api/v2/asset-overview${query({ name: current.name, active: current.active, limit: PAGE, offset: current.offset })}`,
    );
    if (mine !== generation) return;
    body.replaceChildren(
      ...answer.assets.map((a) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, h("a", { href: `#/asset/${a.id}` }, a.name)),
          h("td", { class: "mono" }, a.uri),
          h("td", {}, h("span", { class: `badge ${a.active ? "active" : "inactive"}` }, a.active ? "active" : "inactive")),
          h("td", { class: "num" }, fmtNumber(a.key_count)),
          h("td", {}, fmtTime(a.last_change_at)),
        ),
      ),
    );
    const total = answer.total_entries;
    caption.textContent =
      total === 0
        ? "No assets match."
        : `${total} asset${total === 1 ? "" : "s"}` +
          (total > PAGE ? `, ${current.offset + 1}–${Math.min(total, current.offset + PAGE)} shown` : "");
    pager.replaceChildren(
      current.offset > 0
        ? h("button", { type: "button", onclick: () => move(-PAGE) }, "Previous page")
        : "",
      current.offset + PAGE < total ? h("button", { type: "button", onclick: () => move(PAGE) }, "Next page") : "",
    );
    announce(caption.textContent);
  };
  const move = (delta) => {
    current = { ...current, offset: Math.max(0, current.offset + delta) };
    update();
  };
  let timer = null;
  const update = () => {
    history.replaceState(null, "", `#/${query({ name: current.name, active: current.active, offset: current.offset || "" })}`);
    load().catch((error) => showAlert(error.message, "error", retryButton()));
  };
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      current = { ...current, name: search.value.trim(), offset: 0 };
      update();
    }, 200);
  });
  form.addEventListener("change", (e) => {
    if (e.target.name !== "active") return;
    current = { ...current, active: e.target.value, offset: 0 };
    update();
  });
  leave = () => clearTimeout(timer);
  await load();
}

// --- one asset -------------------------------------------------------------------------------------

function isoFromPicker(value) {
  // The picker shows UTC (as every time on this page): its value is read as UTC, to the end of the
  // unit it shows (as-of is inclusive, and events carry microseconds), e.g. 10:00:05.123 → .123999.
  if (!value) return null;
  const [date, time = "00:00"] = value.split("T");
  const [hh, mm, ss = "59"] = time.split(":");
  const [whole, frac] = ss.includes(".") ? ss.split(".") : [ss, ""];
  const micro = frac.length >= 3 ? (frac + "999").slice(0, 6) : (frac.padEnd(3, "0") + "999").slice(0, 6);
  const iso = `${date}T${hh}:${mm}:${whole.padStart(2, "0")}.${micro}Z`;
  return Number.isNaN(Date.parse(iso)) ? null : iso;
}

function pickerFromIso(iso) {
  return iso ? new Date(iso).toISOString().replace(/Z$/, "") : "";
}

async function assetView(main, assetId, params, mine) {
  const key = params.get("key");
  const at = params.get("at");
  const position = params.get("position");
  const keysOffset = Number(params.get("keys") || 0);
  const asOf = at || position ? { at, position } : null;
  const here = (changes) => {
    const next = { key, at, position, keys: keysOffset || "", ...changes };
    return next;
  };

  const [overview, entries, state] = await Promise.all([
    api(`api/v2/asset-overview${query({ id: assetId })}`),
    api(`api/v2/assets/${assetId}/state-store${query({ limit: PAGE, offset: keysOffset })}`),
    asOf ? api(`api/v2/assets/${assetId}/state-as-of${query(asOf)}`) : null,
  ]);
  if (mine !== generation) return;
  const asset = overview.assets[0];
  if (!asset) throw new ApiError(404, `There is no asset with id ${assetId}.`);
  document.title = `${asset.name} · eventstore`;
  const selected = key ?? (entries.asset_state_store[0] ? entries.asset_state_store[0].key : null);

  // The moment: an as-of picker, and "restore to this moment".
  const picker = h("input", {
    id: "asof-input",
    type: "datetime-local",
    step: "0.001",
    value: pickerFromIso(at),
  });
  const momentForm = h(
    "form",
    {
      class: "toolbar",
      id: "asof-form",
      onsubmit: (e) => {
        e.preventDefault();
        const iso = isoFromPicker(picker.value);
        if (!iso) {
          showAlert("Choose a date and time first.");
          picker.focus();
          return;
        }
        go(`/asset/${assetId}`, here({ at: iso, position: null }));
      },
    },
    h("div", { class: "field" }, h("label", { for: "asof-input" }, "Show the state as of (UTC)"), picker),
    h("button", { type: "submit", class: "primary" }, "Show state then"),
    asOf ? h("button", { type: "button", onclick: () => go(`/asset/${assetId}`, here({ at: null, position: null })) }, "Back to now") : "",
  );
  const momentPanel = h("section", { class: "panel", "aria-labelledby": "moment-title" }, h("h2", { id: "moment-title" }, "A moment in time"), momentForm);
  if (asOf) {
    const label = at ? fmtTime(at) : `position ${position}`;
    momentPanel.append(
      h(
        "p",
        { class: "asof-state", id: "asof-summary" },
        `Showing the state as of ${label} (after log position ${state.position}): ${Object.keys(state.state).length} keys. `,
        "Rows that differ from now are highlighted.",
      ),
      h(
        "button",
        { type: "button", class: "danger", id: "restore", onclick: () => restore(asset, asOf, label) },
        "Restore to this moment…",
      ),
    );
  } else {
    momentPanel.append(
      h("p", { class: "hint" }, "Pick a time, or a change in a key's history, to see the whole state as it was then and restore it."),
    );
  }

  // The keys: now, or then beside now.
  const rows = [];
  const current = new Map(entries.asset_state_store.map((e) => [e.key, e]));
  const keysShown = asOf ? [...new Set([...Object.keys(state.state), ...current.keys()])].sort() : [...current.keys()];
  for (const k of keysShown) {
    const entry = current.get(k);
    const then = asOf ? state.state[k] : undefined;
    const differs = asOf && JSON.stringify(then) !== JSON.stringify(entry ? entry.value : undefined);
    const selectKey = h(
      "button",
      { type: "button", class: "link", "aria-pressed": k === selected ? "true" : "false", onclick: () => go(`/asset/${assetId}`, here({ key: k })) },
      k,
    );
    rows.push(
      h(
        "tr",
        { class: [k === selected ? "selected" : "", differs ? "differs" : ""].join(" ").trim() || null },
        h("th", { scope: "row", class: "mono" }, selectKey),
        asOf ? h("td", { class: "value mono" }, then === undefined ? "(absent)" : fmtValue(then)) : null,
        h("td", { class: "value mono" }, entry ? fmtValue(entry.value) : "(absent)"),
        h("td", {}, entry ? fmtWriter(entry.last_updated_by) : "—"),
        h("td", {}, entry ? fmtTime(entry.updated_at) : "—"),
      ),
    );
  }
  const total = entries.total_entries;
  const keysTable = h(
    "table",
    { id: "keys" },
    h(
      "caption",
      {},
      `${total} key${total === 1 ? "" : "s"} now` +
        (total > PAGE ? `, ${keysOffset + 1}–${Math.min(total, keysOffset + PAGE)} shown` : "") +
        ". Choose a key to see its history.",
    ),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Key"),
        asOf ? h("th", { scope: "col" }, "Value then") : null,
        h("th", { scope: "col" }, asOf ? "Value now" : "Value"),
        h("th", { scope: "col" }, "Last writer"),
        h("th", { scope: "col" }, "Last changed"),
      ),
    ),
    h("tbody", {}, rows),
  );
  const keysPager = h(
    "div",
    { class: "pager" },
    keysOffset > 0 ? h("button", { type: "button", onclick: () => go(`/asset/${assetId}`, here({ keys: Math.max(0, keysOffset - PAGE) || "" })) }, "Previous keys") : "",
    keysOffset + PAGE < total ? h("button", { type: "button", onclick: () => go(`/asset/${assetId}`, here({ keys: keysOffset + PAGE })) }, "Next keys") : "",
  );

  const historySection = h("section", { "aria-labelledby": "history-title", id: "history" });
  main.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Assets"), " / "),
    h("h1", {}, asset.name),
    h(
      "p",
      { class: "sub" },
      h("span", { class: "mono" }, asset.uri),
      " · ",
      h("span", { class: `badge ${asset.active ? "active" : "inactive"}` }, asset.active ? "active" : "inactive"),
      ` · version ${fmtNumber(asset.version)} · last change ${fmtTime(asset.last_change_at)}`,
    ),
    momentPanel,
    h("section", { "aria-labelledby": "keys-title" }, h("h2", { id: "keys-title" }, "Keys"), keysTable, keysPager),
    historySection,
  );
  if (selected !== null) await keyHistory(historySection, asset, selected, asOf ? state.position : null, here, mine);
  else historySection.append(h("h2", { id: "history-title" }, "History"), h("p", {}, "This asset has no keys now."));
}

async function keyHistory(section, asset, key, cursorPosition, here, mine) {
  const chartWidth = Math.max(320, Math.min(1160, section.clientWidth || 900));
  const buckets = Math.max(50, Math.floor(chartWidth / 3)); // a point every 3 px at most
  const [timeline, changes] = await Promise.all([
    api(`api/v2/assets/${asset.id}/state-timeline${query({ key, buckets })}`),
    api(`api/v2/assets/${asset.id}/key-changes${query({ key, limit: 50 })}`),
  ]);
  if (mine !== generation) return;
  const n = timeline.total_entries;
  section.append(
    h("h2", { id: "history-title" }, "History of ", h("code", {}, key)),
    h(
      "p",
      { class: "sub", id: "history-summary" },
      n === 0
        ? "No changes."
        : `${fmtNumber(n)} change${n === 1 ? "" : "s"} from ${fmtTime(timeline.first_at)} to ${fmtTime(timeline.last_at)}` +
            (timeline.buckets.length < n ? `; the chart groups them into ${timeline.buckets.length} points.` : "."),
    ),
  );
  if (n > 0) section.append(chart(timeline, chartWidth, cursorPosition, (position) => go(`/asset/${asset.id}`, here({ position, at: null }))));

  const body = h("tbody");
  const table = h(
    "table",
    { id: "changes" },
    h("caption", {}, "Every change, newest first. “View state then” shows the whole asset right after it."),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "When"),
        h("th", { scope: "col" }, "Change"),
        h("th", { scope: "col" }, "Value"),
        h("th", { scope: "col" }, "Writer"),
        h("th", { scope: "col", class: "num" }, "Position"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
      ),
    ),
    body,
  );
  const more = h("div", { class: "pager" });
  const addRows = (page) => {
    body.append(
      ...page.changes.map((c) =>
        h(
          "tr",
          { class: c.position === cursorPosition ? "selected" : null },
          h("td", {}, fmtTime(c.recorded_at)),
          h("td", { class: `op-${c.op}` }, c.op),
          h("td", { class: "value mono" }, c.op === "set" ? fmtValue(c.value) : c.op === "clear" ? "(all keys removed)" : "(removed)"),
          h("td", {}, fmtWriter(c.writer)),
          h("td", { class: "num" }, String(c.position)),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                "aria-label": `View the state right after the change at position ${c.position}`,
                onclick: () => go(`/asset/${asset.id}`, here({ position: c.position, at: null })),
              },
              "View state then",
            ),
          ),
        ),
      ),
    );
    more.replaceChildren(
      page.next_before === null
        ? ""
        : h(
            "button",
            {
              type: "button",
              id: "older",
              onclick: async (e) => {
                e.target.disabled = true;
                try {
                  addRows(await api(`api/v2/assets/${asset.id}/key-changes${query({ key, limit: 50, before: page.next_before })}`));
                } catch (error) {
                  e.target.disabled = false;
                  showAlert(error.message);
                }
              },
            },
            "Older changes",
          ),
    );
  };
  addRows(changes);
  section.append(h("h3", {}, "Changes"), table, more);
}

// The key's timeline: a step chart of its plotted values (numbers, or ISO times), a min–max bar where
// a point stands for several changes, every point's writer in its tooltip; clicking a point shows the
// state right after it. Drawn as inline SVG.
function chart(timeline, width, cursorPosition, pick) {
  const height = 240;
  const m = { left: timeline.kind === "time" ? 150 : 78, right: 16, top: 14, bottom: 34 };
  const t0 = Date.parse(timeline.first_at);
  const t1 = Date.parse(timeline.last_at);
  const span = t1 - t0 || 1;
  const x = (iso) => m.left + ((Date.parse(iso) - t0) / span) * (width - m.left - m.right);
  const plotted = timeline.kind !== "other";
  let lo = Infinity;
  let hi = -Infinity;
  for (const b of timeline.buckets) {
    if (b.min !== null) lo = Math.min(lo, b.min);
    if (b.max !== null) hi = Math.max(hi, b.max);
  }
  if (!Number.isFinite(lo)) lo = hi = 0;
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  const mid = (m.top + height - m.bottom) / 2;
  const y = (v) => (plotted ? m.top + (1 - (v - lo) / (hi - lo)) * (height - m.top - m.bottom) : mid);
  const yValue = (b) => {
    const v = b.last.value;
    if (b.last.op !== "set") return null;
    if (timeline.kind === "number") return typeof v === "number" ? v : null;
    if (timeline.kind === "time") return typeof v === "string" ? Date.parse(v) : null;
    return 0;
  };
  const fmtY = (v) => (timeline.kind === "time" ? fmtTime(new Date(v).toISOString()).replace(" UTC", "") : fmtNumber(v));

  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-labelledby": "chart-title",
  });
  svg.append(s("title", { id: "chart-title" }, `Timeline of ${timeline.key}: ${timeline.total_entries} changes`));
  const bottom = height - m.bottom;
  svg.append(s("line", { class: "axis", x1: m.left, y1: bottom, x2: width - m.right, y2: bottom }));
  svg.append(s("line", { class: "axis", x1: m.left, y1: m.top, x2: m.left, y2: bottom }));
  if (plotted) {
    for (const v of [lo, (lo + hi) / 2, hi]) {
      svg.append(s("line", { class: "grid", x1: m.left + 1, y1: y(v), x2: width - m.right, y2: y(v) }));
      svg.append(s("text", { class: "label", x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtY(v)));
    }
  }
  const ticks = [timeline.first_at, new Date((t0 + t1) / 2).toISOString(), timeline.last_at];
  ticks.forEach((iso, i) => {
    const anchor = ["start", "middle", "end"][i];
    svg.append(s("text", { class: "label", x: x(iso), y: height - 12, "text-anchor": anchor }, fmtTime(iso)));
  });

  // The step line: flat until the next change; broken where the key was deleted or cleared.
  let d = "";
  let last = null;
  for (const b of timeline.buckets) {
    const bx = x(b.last.recorded_at);
    const v = yValue(b);
    if (plotted && b.count > 1 && b.min !== null && b.max !== b.min) {
      svg.append(s("line", { class: "range", x1: bx, x2: bx, y1: y(b.max), y2: y(b.min) }));
    }
    if (last !== null) d += ` H${bx.toFixed(1)}`;
    if (v === null) {
      last = null;
      continue;
    }
    d += last === null ? ` M${bx.toFixed(1)},${y(v).toFixed(1)}` : ` V${y(v).toFixed(1)}`;
    last = v;
  }
  if (last !== null) d += ` H${(width - m.right).toFixed(1)}`;
  if (plotted && d) svg.append(s("path", { class: "step", d: d.trim() }));

  // The points: the last change of each bucket, with its writer.
  const points = s("g", {});
  for (const b of timeline.buckets) {
    const v = yValue(b);
    const gone = b.last.op !== "set";
    const cx = x(b.last.recorded_at);
    const cy = gone ? bottom - 6 : y(v ?? lo);
    const what = gone ? (b.last.op === "clear" ? "cleared" : "deleted") : fmtValue(b.last.value, 60);
    let tip = `${fmtTime(b.last.recorded_at)}: ${what} — ${fmtWriter(b.last.writer)} (position ${b.last.position})`;
    if (b.count > 1) {
      const range = b.min !== null && plotted ? `, values ${fmtY(b.min)} to ${fmtY(b.max)}` : "";
      tip = `${b.count} changes${range}; the last: ${tip}`;
    }
    const point = s("circle", { class: gone ? "pt gone" : "pt", cx: cx.toFixed(1), cy: cy.toFixed(1), r: b.count > 1 ? 3.5 : 3 }, s("title", {}, tip));
    point.dataset.position = b.last.position;
    points.append(point);
  }
  points.addEventListener("click", (e) => {
    const position = e.target.dataset && e.target.dataset.position;
    if (position) pick(Number(position));
  });
  svg.append(points);
  if (cursorPosition !== null) {
    const at = timeline.buckets.find((b) => b.last.position >= cursorPosition);
    if (at) svg.append(s("line", { class: "cursor", x1: x(at.last.recorded_at), x2: x(at.last.recorded_at), y1: m.top, y2: bottom }));
  }
  const caption =
    timeline.kind === "other"
      ? "Values are not numbers, so each change is a point on one line. Hover a point for its value and writer; click it to see the state then."
      : `Step chart of the value (${timeline.kind === "time" ? "ISO times" : "numbers"}); a vertical bar spans the values of changes grouped into one point. Hover a point for its writer; click it to see the state then. The table below lists every change.`;
  return h("figure", { class: "chart" }, svg, h("figcaption", {}, caption));
}

function needWrite(detail) {
  showAlert(
    `${detail} Restoring needs a token with the write scope.`,
    "error",
    h("button", { type: "button", onclick: () => changeToken() }, "Use another token…"),
  );
}

async function restore(asset, asOf, label) {
  clearAlert();
  if (!canWrite()) {
    needWrite(`The token in use (${session.name}) has the ${session.scope} scope, which may only look.`);
    $("alert").querySelector("button").focus();
    return;
  }
  const path = `api/v2/assets/${asset.id}/state-restore`;
  let plan;
  try {
    plan = await api(`${path}${query({ ...asOf, dry_run: "true" })}`, { method: "POST" });
  } catch (error) {
    if (error.status === 403) needWrite(error.message);
    else showAlert(error.message);
    return;
  }
  const dialog = $("confirm-dialog");
  const changes = plan.changes;
  $("confirm-title").textContent = `Restore ${asset.name}?`;
  $("confirm-body").replaceChildren(
    changes.length === 0
      ? h("p", {}, `The state is already what it was as of ${label}: nothing to restore.`)
      : h(
          "div",
          {},
          h("p", {}, `This sets the asset's state back to what it was as of ${label}, by appending ${changes.length} change${changes.length === 1 ? "" : "s"} to its log (recorded with your token's name; a later restore can undo it):`),
          h(
            "ul",
            { class: "compact" },
            changes.slice(0, 50).map((c) => h("li", {}, h("code", {}, c.key), c.op === "set" ? ` ← ${fmtValue(c.value, 60)}` : " removed")),
            changes.length > 50 ? h("li", {}, `… and ${changes.length - 50} more`) : "",
          ),
        ),
  );
  $("confirm-ok").hidden = changes.length === 0;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  const answer = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
  if (answer !== "confirm") {
    announce("Restore cancelled.");
    return;
  }
  try {
    const done = await api(`${path}${query(asOf)}`, { method: "POST" });
    const n = done.changes.length;
    go(`/asset/${asset.id}`, {}, { replace: true });
    showAlert(`Restored ${asset.name} to its state as of ${label}: ${n} change${n === 1 ? "" : "s"} recorded.`, "info");
  } catch (error) {
    if (error.status === 403) needWrite(error.message);
    else showAlert(error.message);
  }
}

// --- the live feed ---------------------------------------------------------------------------------

async function feedView(main, mine) {
  document.title = "Live feed · eventstore";
  const body = h("tbody");
  const status = h("span", { id: "feed-status" }, "Loading…");
  let paused = false;
  const pause = h(
    "button",
    {
      type: "button",
      "aria-pressed": "false",
      onclick: () => {
        paused = !paused;
        pause.setAttribute("aria-pressed", String(paused));
        pause.textContent = paused ? "Resume" : "Pause";
        if (!paused) tick();
      },
    },
    "Pause",
  );
  main.replaceChildren(
    h("h1", {}, "Live feed"),
    h("p", { class: "sub" }, `Every change to every asset as it is recorded, newest first (checked every ${POLL_MS / 1000} s).`),
    h("p", { class: "toolbar" }, status, pause),
    h(
      "table",
      { id: "feed" },
      h("caption", {}, `The latest ${FEED_ROWS} changes at most.`),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Position", "When", "Asset", "Change", "Key", "Value", "Writer"].map((t) => h("th", { scope: "col", class: t === "Position" ? "num" : null }, t)),
        ),
      ),
      body,
    ),
  );
  const start = await api(`api/v2/asset-overview${query({ limit: 0 })}`);
  let after = Math.max(0, start.last_position - 50);
  let timer = null;
  const tick = async () => {
    clearTimeout(timer);
    if (mine !== generation) return;
    try {
      let page;
      do {
        page = await api(`api/v2/state-events${query({ after, limit: 1000 })}`);
        if (mine !== generation) return;
        after = page.last_position;
        const rows = page.events.map((e) =>
          h(
            "tr",
            {},
            h("td", { class: "num" }, String(e.position)),
            h("td", {}, fmtTime(e.recorded_at)),
            h("td", {}, e.asset.name),
            h("td", { class: `op-${e.op}` }, e.op),
            h("td", { class: "mono" }, e.key ?? ""),
            h("td", { class: "value mono" }, e.op === "set" ? fmtValue(e.value, 80) : ""),
            h("td", {}, fmtWriter(e.writer)),
          ),
        );
        body.prepend(...rows.reverse());
        while (body.rows.length > FEED_ROWS) body.deleteRow(-1);
      } while (page.events.length === 1000);
      status.textContent = `Up to position ${after}; last checked ${new Date().toISOString().slice(11, 19)} UTC.`;
    } catch (error) {
      status.textContent = `Could not check the feed: ${error.message}`;
    }
    if (!paused && mine === generation) timer = setTimeout(tick, POLL_MS);
  };
  leave = () => clearTimeout(timer);
  await tick();
}

// --- start ---------------------------------------------------------------------------------------------

async function changeToken() {
  if (await askToken("Enter the token to use from now on in this tab.")) route();
}

function start() {
  showAuth();
  $("auth-change").addEventListener("click", changeToken);
  $("auth-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    session = null;
    showAuth();
    announce("The token is forgotten.");
    route();
  });
  $("skip").addEventListener("click", (e) => {
    e.preventDefault();
    $("main").focus();
  });
  window.addEventListener("hashchange", () => {
    route();
    $("main").focus({ preventScroll: true });
  });
  route();
}

start();
