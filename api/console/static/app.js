// The Unseen console: one page per role, built with DOM calls only (no
// innerHTML with data), talking to the coordinator's API with the user's
// bearer token from sessionStorage.

import { t, term, setLang, getLang, explainCheck } from "./i18n.js";
import * as canon from "./canon.js";
import { barChart } from "./chart.js";

// ---------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

let uid = 0;
function newId(prefix) {
  return prefix + "-" + ++uid;
}

// field is a labelled control: the label names it for screen readers.
function field(labelText, control, help) {
  if (!control.id) control.id = newId("f");
  const parts = [h("label", { for: control.id }, labelText), control];
  if (help) {
    const hid = newId("help");
    control.setAttribute("aria-describedby", hid);
    parts.push(h("p", { class: "help", id: hid }, help));
  }
  return h("div", { class: "field" }, parts);
}

function select(options, value, attrs) {
  const s = h("select", attrs || {});
  for (const o of options) {
    const opt = h("option", { value: o.value }, o.label);
    if (o.value === value) opt.selected = true;
    s.append(opt);
  }
  return s;
}

function table(headers, rows, attrs) {
  return h(
    "table",
    attrs || {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows),
  );
}

function fmtTime(s) {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d.getTime())) return String(s);
  return d.toLocaleString(getLang() === "en" ? "en-GB" : "zh-CN", { hour12: false });
}

function say(msg, kind) {
  const box = document.getElementById("status");
  box.textContent = msg || "";
  box.className = kind || "";
}

function errorText(e) {
  if (e instanceof ApiError) {
    const v = (e.violations || []).map((x) => "\n  - " + x.rule + (x.dataset ? " (" + x.dataset + (x.column ? "." + x.column : "") + ")" : "") + ": " + x.message);
    return e.message + " [" + e.status + " " + e.code + "]" + v.join("");
  }
  return String(e && e.message ? e.message : e);
}

function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, t("error", errorText(e)));
}

// ---------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || "HTTP " + status);
    this.status = status;
    this.code = (body && body.code) || "http_error";
    this.violations = (body && body.violations) || [];
  }
}

const session = {
  get token() {
    return sessionStorage.getItem("unseen.token") || "";
  },
  set token(v) {
    if (v) sessionStorage.setItem("unseen.token", v);
    else sessionStorage.removeItem("unseen.token");
  },
  me: null,
  catalog: null,
};

// api calls the coordinator; it returns {json, text} (text: the exact
// response, for hashing what is signed).
async function api(method, path, body, token) {
  const headers = { Authorization: "Bearer " + (token || session.token) };
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (e) {
    json = null;
  }
  if (!res.ok) {
    if (res.status === 401 && !token) {
      logout();
    }
    throw new ApiError(res.status, json && json.error);
  }
  return { json, text };
}

async function catalog() {
  if (!session.catalog) session.catalog = (await api("GET", "/v1/datasets")).json.datasets || [];
  return session.catalog;
}

function logout() {
  session.token = "";
  session.me = null;
  session.catalog = null;
  location.hash = "#/login";
  render();
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

const navByRole = {
  analyst: ["submit", "jobs", "catalog", "help"],
  reviewer: ["review", "catalog", "help"],
  data_owner: ["consent", "lineage", "catalog", "help"],
  auditor: ["audit", "lineage", "alljobs", "catalog", "help"],
  admin: ["admin", "alljobs", "catalog", "help"],
};

const pages = {
  login: pageLogin,
  submit: pageSubmit,
  jobs: pageJobs,
  alljobs: pageJobs,
  job: pageJob,
  review: pageReview,
  consent: pageConsent,
  lineage: pageLineage,
  audit: pageAudit,
  admin: pageAdmin,
  catalog: pageCatalog,
  help: pageHelp,
};

let timer = null;
let renderSeq = 0;

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { page: parts[0] || "", arg: parts[1] || "" };
}

// refreshEvery re-runs fn while the page is shown.
function refreshEvery(ms, fn) {
  clearInterval(timer);
  const seq = renderSeq;
  timer = setInterval(() => {
    if (seq !== renderSeq) {
      clearInterval(timer);
      return;
    }
    fn().catch(() => {});
  }, ms);
}

async function render() {
  renderSeq++;
  clearInterval(timer);
  document.title = t("app.title");
  document.getElementById("app-title").textContent = t("app.title");
  document.getElementById("skip").textContent = t("app.skip");
  const lang = document.getElementById("lang");
  lang.textContent = t("lang.switch");
  lang.setAttribute("aria-label", t("lang.switch.label"));
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const out = document.getElementById("logout");
  out.textContent = t("logout");
  nav.setAttribute("aria-label", t("nav.label"));
  nav.replaceChildren();
  who.textContent = "";
  let { page, arg } = route();
  if (session.token && !session.me) {
    try {
      session.me = (await api("GET", "/v1/me")).json;
    } catch (e) {
      session.token = "";
    }
  }
  if (!session.me) {
    page = "login";
  } else {
    const items = navByRole[session.me.role] || ["catalog", "help"];
    if (!page || page === "login") page = items[0];
    const ul = h("ul", {});
    for (const it of items) {
      const a = h("a", { href: "#/" + it }, t("nav." + it));
      if (it === page) a.setAttribute("aria-current", "page");
      ul.append(h("li", {}, a));
    }
    nav.append(ul);
    who.textContent = t("who", session.me.name, term("role", session.me.role), session.me.department);
  }
  out.hidden = !session.me;
  const fn = pages[page] || pageHelp;
  const seq = renderSeq;
  main.replaceChildren(h("p", { class: "loading" }, t("loading")));
  let content;
  try {
    content = await fn(arg, page);
  } catch (e) {
    content = errorBox(e);
  }
  if (seq !== renderSeq) return;
  main.replaceChildren(content);
  main.setAttribute("data-page", page);
}

// ---------------------------------------------------------------------------
// Login and help
// ---------------------------------------------------------------------------

async function pageLogin() {
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true });
  const msg = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const tok = input.value.trim();
        try {
          session.me = (await api("GET", "/v1/me", undefined, tok)).json;
          session.token = tok;
          location.hash = "#/" + (navByRole[session.me.role] || ["help"])[0];
          render();
        } catch (e) {
          msg.textContent = t("login.bad", errorText(e));
        }
      },
    },
    h("h2", {}, t("login.title")),
    field(t("login.token"), input, t("login.token.help")),
    h("button", { type: "submit" }, t("login.submit")),
    msg,
  );
  return h("section", {}, form, helpText());
}

function helpText() {
  return h(
    "section",
    { class: "help-text", "aria-label": t("help.title") },
    h("p", {}, t("help.login")),
    h("p", {}, t("help.sign")),
    h("p", {}, t("help.trust")),
    h("p", {}, t("help.network")),
  );
}

async function pageHelp() {
  return h("section", {}, h("h2", {}, t("help.title")), helpText());
}

// ---------------------------------------------------------------------------
// Catalog
// ---------------------------------------------------------------------------

function columnsText(d) {
  return (d.columns || []).map((c) => c.name + (c.uses && c.uses.length ? "（" + c.uses.map((u) => term("use", u)).join("、") + "）" : "")).join("；");
}

async function pageCatalog() {
  const ds = await catalog();
  const rows = ds.map((d) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, d.name),
      h("td", {}, d.description || ""),
      h("td", { class: "class-" + d.classification }, term("class", d.classification)),
      h("td", { class: "sharing-" + d.sharing }, term("sharing", d.sharing)),
      h("td", { class: "num" }, d.min_count || 10),
      h("td", {}, (d.job_types || []).map((x) => term("type", x)).join("、")),
      h("td", {}, columnsText(d)),
      h("td", {}, [d.dp ? t("catalog.dp", d.dp.epsilon, d.dp.budget) : "", d.rate_limit ? " " + t("catalog.rate", d.rate_limit.jobs, durationText(d.rate_limit.per)) : ""].join("")),
    ),
  );
  return h(
    "section",
    {},
    h("h2", {}, t("catalog.title")),
    h("p", {}, t("catalog.help")),
    table([t("col.dataset"), t("col.description"), t("col.class"), t("col.sharing"), t("col.k"), t("col.jobtypes"), t("col.columns"), t("col.limits")], rows, { id: "catalog" }),
  );
}

function durationText(ns) {
  const s = Number(ns) / 1e9;
  if (s % 86400 === 0) return s / 86400 + "d";
  if (s % 3600 === 0) return s / 3600 + "h";
  if (s % 60 === 0) return s / 60 + "m";
  return s + "s";
}

// ---------------------------------------------------------------------------
// Analyst: submit
// ---------------------------------------------------------------------------

const OPS_INT = ["=", "!=", "<", "<=", ">", ">="];
const OPS_STR = ["=", "!="];

function uses(d, use) {
  return (d.columns || []).filter((c) => (c.uses || []).includes(use));
}

function literal(col, v) {
  if (col.kind === "int") {
    if (!/^-?[0-9]+$/.test(v.trim())) throw new Error(t("submit.bad.int", v));
    return v.trim();
  }
  return "'" + v.replace(/'/g, "''") + "'";
}

async function pageSubmit() {
  const me = session.me;
  const all = await catalog();
  const usable = (type) =>
    all.filter((d) => d.sharing !== "closed" && (d.job_types || []).includes(type) && (!d.departments || !d.departments.length || d.departments.includes(me.department)));
  const types = ["psi_cardinality", "psi_members", "intersection_stats", "aggregate"].filter((x) => usable(x).length > 0);
  if (!types.length) return h("section", {}, h("h2", {}, t("submit.title")), h("p", {}, t("submit.notypes")));
  const byName = Object.fromEntries(all.map((d) => [d.name, d]));
  const st = { type: types[0], purpose: "", inputs: [], value: { dataset: "", column: "" }, stats: ["count", "sum", "mean"], bins: "", group: { dataset: "", column: "" } };
  const blank = () => ({ dataset: "", key: "", conds: [] });
  st.inputs = [blank(), blank()];

  const section = h("section", {});
  const form = h("form", { class: "card", id: "submit-form", novalidate: true });
  const preview = h("pre", { id: "spec-preview", tabindex: "0", "aria-label": t("submit.preview") });
  const result = h("div", { id: "submit-result", role: "status", "aria-live": "polite" });

  const isAgg = () => st.type === "aggregate";
  const chosen = () => st.inputs.map((x) => byName[x.dataset]).filter(Boolean);

  function filterText(inp) {
    const d = byName[inp.dataset];
    if (!d) return "";
    return inp.conds
      .filter((c) => c.column && c.value !== "")
      .map((c) => {
        const col = (d.columns || []).find((x) => x.name === c.column);
        return c.column + " " + c.op + " " + literal(col, c.value);
      })
      .join(" AND ");
  }

  function spec() {
    const s = { type: st.type, purpose: st.purpose, inputs: [] };
    for (const inp of st.inputs) {
      const x = { dataset: inp.dataset };
      if (!isAgg()) x.key = inp.key;
      const f = filterText(inp);
      if (f) x.filter = f;
      s.inputs.push(x);
    }
    if (st.type === "intersection_stats" || isAgg()) {
      if (st.value.column) s.value = { dataset: isAgg() && st.inputs.length > 1 ? "" : st.value.dataset, column: st.value.column };
      s.stats = st.stats.filter((x) => isAgg() || x !== "histogram");
      if (s.stats.includes("histogram")) s.bins = st.bins.split(",").map((x) => x.trim()).filter(Boolean).map((x) => Number(x));
      if (st.group.column) s.group_by = { dataset: isAgg() && st.inputs.length > 1 ? "" : st.group.dataset, column: st.group.column };
    }
    return s;
  }

  function updatePreview() {
    try {
      preview.textContent = JSON.stringify(spec(), null, 2);
    } catch (e) {
      preview.textContent = errorText(e);
    }
  }

  // Columns offered for value and group-by: those of the chosen dataset
  // (or, for a horizontal aggregate, those every input offers).
  function refColumns(use, dataset) {
    if (isAgg() && st.inputs.length > 1) {
      const lists = chosen().map((d) => uses(d, use).map((c) => c.name));
      if (!lists.length) return [];
      return lists[0].filter((n) => lists.every((l) => l.includes(n)));
    }
    const d = byName[dataset];
    return d ? uses(d, use).map((c) => c.name) : [];
  }

  function build() {
    const min = isAgg() ? 1 : 2;
    while (st.inputs.length < min) st.inputs.push(blank());
    const ds = usable(st.type);
    const typeSel = select(types.map((x) => ({ value: x, label: term("type", x) + " (" + x + ")" })), st.type, { name: "type" });
    typeSel.addEventListener("change", () => {
      st.type = typeSel.value;
      if (isAgg()) st.inputs = st.inputs.slice(0, 1);
      build();
    });
    const purpose = h("textarea", { name: "purpose", rows: 2, required: true, maxlength: 1000 });
    purpose.value = st.purpose;
    purpose.addEventListener("input", () => {
      st.purpose = purpose.value;
      updatePreview();
    });
    const parts = [h("h2", {}, t("submit.title")), h("p", {}, t("submit.help")), field(t("submit.type"), typeSel), field(t("submit.purpose"), purpose)];

    st.inputs.forEach((inp, i) => {
      const others = st.inputs.filter((_, j) => j !== i).map((x) => x.dataset.split(".")[0]);
      const offer = ds.filter((d) => !others.includes(d.name.split(".")[0]));
      if (inp.dataset && !offer.find((d) => d.name === inp.dataset)) inp.dataset = "";
      const dsSel = select([{ value: "", label: t("submit.choose") }, ...offer.map((d) => ({ value: d.name, label: d.name + " · " + term("class", d.classification) + " · " + term("sharing", d.sharing) }))], inp.dataset, {
        name: "dataset-" + i,
        class: "input-dataset",
      });
      dsSel.addEventListener("change", () => {
        inp.dataset = dsSel.value;
        inp.key = "";
        inp.conds = [];
        build();
      });
      const fs = h("fieldset", { class: "input" }, h("legend", {}, t("submit.input", i + 1)), field(t("submit.dataset"), dsSel));
      const d = byName[inp.dataset];
      if (d && !isAgg()) {
        const keys = uses(d, "key");
        if (!inp.key && keys.length) inp.key = keys[0].name;
        const keySel = select(keys.map((c) => ({ value: c.name, label: c.name })), inp.key, { name: "key-" + i, class: "input-key" });
        keySel.addEventListener("change", () => {
          inp.key = keySel.value;
          updatePreview();
        });
        fs.append(field(t("submit.key"), keySel));
      }
      if (d) {
        const fcols = uses(d, "filter");
        const conds = h("div", { class: "conds" });
        inp.conds.forEach((c, k) => {
          const col = fcols.find((x) => x.name === c.column) || fcols[0];
          c.column = col.name;
          const ops = col.kind === "int" ? OPS_INT : OPS_STR;
          if (!ops.includes(c.op)) c.op = "=";
          const cSel = select(fcols.map((x) => ({ value: x.name, label: x.name })), c.column, { class: "cond-column", "aria-label": t("submit.filter.column", k + 1) });
          cSel.addEventListener("change", () => {
            c.column = cSel.value;
            build();
          });
          const oSel = select(ops.map((o) => ({ value: o, label: o })), c.op, { class: "cond-op", "aria-label": t("submit.filter.op", k + 1) });
          oSel.addEventListener("change", () => {
            c.op = oSel.value;
            updateFilter();
          });
          const val = h("input", { type: col.kind === "int" ? "number" : "text", class: "cond-value", "aria-label": t("submit.filter.value", k + 1), value: c.value });
          val.addEventListener("input", () => {
            c.value = val.value;
            updateFilter();
          });
          const rm = h("button", { type: "button", class: "secondary", "aria-label": t("submit.filter.remove", k + 1), onclick: () => {
            inp.conds.splice(k, 1);
            build();
          } }, "×");
          conds.append(h("div", { class: "cond" }, cSel, oSel, val, rm));
        });
        const ftext = h("output", { class: "filter-text", "aria-label": t("submit.filter.text") });
        const updateFilter = () => {
          try {
            ftext.textContent = filterText(inp) || t("job.allrows");
          } catch (e) {
            ftext.textContent = errorText(e);
          }
          updatePreview();
        };
        updateFilter();
        const add = h("button", { type: "button", class: "secondary add-cond", disabled: !fcols.length, onclick: () => {
          inp.conds.push({ column: fcols[0].name, op: "=", value: "" });
          build();
        } }, t("submit.filter.add"));
        fs.append(h("div", { class: "field" }, h("span", { class: "label" }, t("submit.filter")), conds, add, ftext));
      }
      if (st.inputs.length > min) {
        fs.append(h("button", { type: "button", class: "secondary", onclick: () => {
          st.inputs.splice(i, 1);
          build();
        } }, t("submit.input.remove", i + 1)));
      }
      parts.push(fs);
    });
    if (st.inputs.length < 8) {
      parts.push(h("button", { type: "button", class: "secondary", id: "add-input", onclick: () => {
        st.inputs.push(blank());
        build();
      } }, t("submit.input.add")));
    }

    if (st.type === "intersection_stats" || isAgg()) {
      const inNames = st.inputs.map((x) => x.dataset).filter(Boolean);
      const horizontal = isAgg() && st.inputs.length > 1;
      const refFields = (label, dlabel, ref, use, optional, cls) => {
        const out = [];
        if (!horizontal) {
          if (!inNames.includes(ref.dataset)) ref.dataset = inNames[0] || "";
          const dSel = select(inNames.map((n) => ({ value: n, label: n })), ref.dataset, { class: cls + "-dataset" });
          dSel.addEventListener("change", () => {
            ref.dataset = dSel.value;
            ref.column = "";
            build();
          });
          out.push(field(dlabel, dSel));
        }
        const cols = refColumns(use, ref.dataset);
        if (!cols.includes(ref.column)) ref.column = optional ? "" : cols[0] || "";
        const opts = (optional ? [{ value: "", label: t("submit.group.none") }] : []).concat(cols.map((c) => ({ value: c, label: c })));
        const cSel = select(opts, ref.column, { class: cls + "-column" });
        cSel.addEventListener("change", () => {
          ref.column = cSel.value;
          updatePreview();
        });
        out.push(field(label, cSel));
        return out;
      };
      parts.push(h("fieldset", { class: "value" }, h("legend", {}, t("submit.value")), refFields(t("submit.value"), t("submit.value.dataset"), st.value, "value", false, "value")));
      const statNames = isAgg() ? ["count", "sum", "mean", "variance", "histogram"] : ["count", "sum", "mean", "variance"];
      const boxes = statNames.map((s) => {
        const cb = h("input", { type: "checkbox", id: newId("stat"), value: s, checked: st.stats.includes(s), class: "stat" });
        cb.addEventListener("change", () => {
          st.stats = cb.checked ? [...st.stats.filter((x) => x !== s), s] : st.stats.filter((x) => x !== s);
          st.stats.sort((a, b) => statNames.indexOf(a) - statNames.indexOf(b));
          build();
        });
        return h("span", { class: "checkbox" }, cb, h("label", { for: cb.id }, term("stat", s) + " (" + s + ")"));
      });
      const statFs = h("fieldset", { class: "stats" }, h("legend", {}, t("submit.stats")), boxes);
      if (st.stats.includes("histogram") && isAgg()) {
        const bins = h("input", { type: "text", inputmode: "numeric", value: st.bins, class: "bins" });
        bins.addEventListener("input", () => {
          st.bins = bins.value;
          updatePreview();
        });
        statFs.append(field(t("submit.bins"), bins));
      }
      parts.push(statFs);
      parts.push(h("fieldset", { class: "group" }, h("legend", {}, t("submit.group")), refFields(t("submit.group"), t("submit.group.dataset"), st.group, "group_by", true, "group")));
    }
    parts.push(h("details", { open: true }, h("summary", {}, t("submit.preview")), preview));
    parts.push(h("button", { type: "submit", id: "submit-job" }, t("submit.send")));
    form.replaceChildren(...parts);
    updatePreview();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    result.replaceChildren();
    try {
      const { json } = await api("POST", "/v1/jobs", spec());
      result.replaceChildren(h("p", { class: "ok" }, t("submit.done", json.id, term("state", json.state)), " ", h("a", { href: "#/job/" + json.id }, json.id)));
    } catch (e) {
      result.replaceChildren(h("p", { class: "error", role: "alert" }, t("submit.refused", errorText(e))));
    }
  });
  build();
  section.append(form, result);
  return section;
}

// ---------------------------------------------------------------------------
// Jobs: lists and one job
// ---------------------------------------------------------------------------

const ACTIVE = ["queued", "running", "retryable", "awaiting_consent"];

function progressCell(j) {
  const p = j.progress || {};
  if (!p.total) return h("span", {}, j.state === "running" ? "…" : "");
  return h("progress", { value: p.done, max: p.total, "aria-label": t("job.progress", p.done, p.total, p.step || "") }, p.done + "/" + p.total);
}

function jobRow(j) {
  return h(
    "tr",
    { "data-job": j.id },
    h("th", { scope: "row" }, h("a", { href: "#/job/" + j.id }, j.id)),
    h("td", {}, term("type", j.type)),
    h("td", { class: "state state-" + j.state }, term("state", j.state)),
    h("td", {}, progressCell(j)),
    h("td", {}, j.owner),
    h("td", {}, j.purpose),
    h("td", {}, fmtTime(j.updated_at)),
  );
}

async function pageJobs(_, page) {
  let stateFilter = "";
  const body = h("div", {});
  const load = async () => {
    const q = stateFilter ? "?state=" + encodeURIComponent(stateFilter) : "";
    const js = (await api("GET", "/v1/jobs" + q)).json.jobs || [];
    body.replaceChildren(
      js.length
        ? table([t("col.id"), t("col.type"), t("col.state"), t("col.progress"), t("col.owner"), t("col.purpose"), t("col.updated")], js.map(jobRow), { id: "jobs" })
        : h("p", {}, t("jobs.empty")),
    );
    return js;
  };
  await load();
  refreshEvery(1500, load);
  const parts = [h("h2", {}, page === "alljobs" ? t("jobs.all") : t("jobs.title"))];
  if (page === "alljobs") {
    const states = ["awaiting_consent", "queued", "running", "retryable", "dead_letter", "awaiting_review", "released", "rejected", "failed", "cancelled", "expired"];
    const sel = select([{ value: "", label: t("jobs.filter.all") }, ...states.map((s) => ({ value: s, label: term("state", s) }))], "", {});
    sel.addEventListener("change", () => {
      stateFilter = sel.value;
      load();
    });
    parts.push(field(t("jobs.filter.state"), sel));
  }
  parts.push(body);
  return h("section", {}, parts);
}

function inputsList(spec) {
  return h(
    "ul",
    { class: "inputs" },
    (spec.inputs || []).map((x) =>
      h("li", {}, spec.type === "aggregate" ? t("job.input.agg", x.dataset, x.filter || t("job.allrows")) : t("job.input", x.dataset, x.key, x.filter || t("job.allrows"))),
    ),
  );
}

function ref(r) {
  return r ? (r.dataset ? r.dataset + "." : "") + r.column : "";
}

function specSummary(j) {
  const s = j.spec || {};
  return h(
    "dl",
    { class: "spec" },
    h("dt", {}, t("col.type")),
    h("dd", {}, term("type", s.type) + " (" + s.type + ")"),
    h("dt", {}, t("col.purpose")),
    h("dd", { class: "purpose" }, s.purpose),
    h("dt", {}, t("col.owner")),
    h("dd", {}, j.owner + " / " + j.department),
    h("dt", {}, t("job.inputs")),
    h("dd", {}, inputsList(s)),
    s.value ? [h("dt", {}, t("submit.value")), h("dd", {}, ref(s.value))] : null,
    s.stats && s.stats.length ? [h("dt", {}, t("submit.stats")), h("dd", {}, s.stats.map((x) => term("stat", x)).join("、") + (s.bins ? " [" + s.bins.join(", ") + "]" : ""))] : null,
    s.group_by ? [h("dt", {}, t("col.groupby")), h("dd", {}, ref(s.group_by))] : null,
  );
}

async function pageJob(id) {
  const section = h("section", {});
  const me = session.me;
  const load = async () => {
    const j = (await api("GET", "/v1/jobs/" + encodeURIComponent(id))).json;
    const parts = [h("h2", {}, t("job.title", j.id)), h("p", { class: "state state-" + j.state, id: "job-state" }, term("state", j.state)), specSummary(j)];
    const p = j.progress || {};
    if (p.total) parts.push(h("p", {}, progressCell(j), " ", t("job.progress", p.done, p.total, p.step || "")));
    if (j.error) parts.push(h("p", { class: "error" }, t("job.error", j.error)));
    if (j.waiting) parts.push(h("p", {}, t("job.waiting", j.waiting)));
    if (j.consent_deadline) parts.push(h("p", {}, t("job.deadline", fmtTime(j.consent_deadline))));
    if (j.consents && j.consents.length) {
      parts.push(h("h3", {}, t("job.consents")), h("ul", {}, j.consents.map((c) => h("li", {}, t("job.consent.row", c.dataset, c.approved ? t("job.consent.yes") : t("job.consent.no"), c.by, c.signed ? t("job.signed") : t("job.unsigned")) + (c.reason ? " — " + c.reason : "")))));
    }
    if (me.role === "analyst" && !["released", "rejected", "failed", "cancelled", "expired"].includes(j.state)) {
      parts.push(h("button", { type: "button", class: "secondary", onclick: async () => {
        try {
          await api("POST", "/v1/jobs/" + encodeURIComponent(j.id) + "/cancel", { reason: "cancelled in the console" });
          say(t("job.cancelled"));
          render();
        } catch (e) {
          say(errorText(e), "error");
        }
      } }, t("job.cancel")));
    }
    if (me.role === "admin" && j.state === "dead_letter") {
      parts.push(h("button", { type: "button", onclick: async () => {
        try {
          await api("POST", "/v1/jobs/" + encodeURIComponent(j.id) + "/retry", { reason: "requeued in the console" });
          render();
        } catch (e) {
          say(errorText(e), "error");
        }
      } }, t("job.retry")));
    }
    if (j.state === "released" && me.role === "analyst") {
      const r = (await api("GET", "/v1/jobs/" + encodeURIComponent(j.id) + "/result")).json;
      const res = h("section", { class: "result", id: "result" }, h("h3", {}, t("job.result")), h("p", {}, t("job.reviewer", r.reviewer, r.comment || "")));
      if (r.type === "psi_members") {
        res.append(h("p", {}, t("job.members")), h("pre", {}, "unseen result " + j.id + " --key ~/.config/unseen/analyst.key"));
      } else {
        res.append(renderResult(r.result, j.spec));
      }
      parts.push(res);
    }
    if (j.history && j.history.length) {
      parts.push(h("h3", {}, t("job.history")), h("ol", { class: "history" }, j.history.map((e) => h("li", {}, fmtTime(e.at) + " · " + term("state", e.state) + " · " + e.actor + (e.note ? " · " + e.note : "")))));
    }
    section.replaceChildren(...parts);
    return j;
  };
  const j = await load();
  if (ACTIVE.includes(j.state)) {
    refreshEvery(1000, async () => {
      const now = await load();
      if (!ACTIVE.includes(now.state)) clearInterval(timer);
    });
  }
  return section;
}

// ---------------------------------------------------------------------------
// Results: tables and charts
// ---------------------------------------------------------------------------

const STAT_FIELDS = ["count", "sum", "mean", "variance"];

function num(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toLocaleString("en-US", { maximumFractionDigits: 4 });
  return String(v);
}

// renderResult shows a released (or reviewed) result: a count, or a table
// of statistics per group with charts of the counts per group and of the
// histogram's buckets.
function renderResult(res, spec) {
  const box = h("div", { class: "result-body" });
  if (res === null || typeof res !== "object") {
    box.append(h("pre", {}, JSON.stringify(res)));
    return box;
  }
  const total = res.total && typeof res.total === "object" ? res.total : res;
  const groups = res.groups && typeof res.groups === "object" ? res.groups : null;
  if (!groups && !total.histogram && (spec.type === "psi_cardinality" || spec.type === "psi_members")) {
    if (total.suppressed) box.append(h("p", { class: "suppressed" }, t("result.suppressed", total.suppressed)));
    else box.append(h("p", { class: "count" }, t("result.count", num(total.count))));
    const rest = Object.keys(res).filter((k) => !["count", "suppressed"].includes(k));
    if (rest.length) box.append(h("pre", {}, JSON.stringify(res, null, 2)));
    return box;
  }
  const stats = STAT_FIELDS.filter((f) => f in total || (groups && Object.values(groups).some((g) => g && f in g)));
  const buckets = total.histogram ? Object.keys(total.histogram) : [];
  const headers = [t("col.group"), ...stats.map((s) => term("stat", s)), ...buckets];
  const row = (name, g, cls) => {
    if (!g || g.suppressed) {
      return h("tr", { class: "suppressed " + (cls || "") }, h("th", { scope: "row" }, name), h("td", { colspan: headers.length - 1 }, t("result.suppressed", g ? g.suppressed : "")));
    }
    return h(
      "tr",
      { class: cls || "" },
      h("th", { scope: "row" }, name),
      stats.map((s) => h("td", { class: "num", title: s === "mean" && g.mean_exact ? g.mean_exact : s === "variance" && g.variance_exact ? g.variance_exact : undefined }, num(g[s]))),
      buckets.map((b) => h("td", { class: "num" }, g.histogram && g.histogram[b] !== null && g.histogram[b] !== undefined ? num(g.histogram[b]) : g.histogram ? t("result.chart.hidden") : "")),
    );
  };
  const rows = [row(t("result.total"), total, "total")];
  const names = groups ? Object.keys(groups).sort() : [];
  for (const n of names) rows.push(row(n, groups[n], "group"));
  box.append(table(headers, rows, { class: "stats-table" }));
  if (groups && names.length) {
    box.append(
      h("figure", { class: "figure" }, barChart(t("result.chart.groups"), names.map((n) => ({ label: n, value: groups[n] && !groups[n].suppressed && typeof groups[n].count === "number" ? groups[n].count : null })), t("result.chart.hidden")), h("figcaption", {}, t("result.chart.groups"))),
    );
  }
  if (buckets.length) {
    box.append(
      h("figure", { class: "figure" }, barChart(t("result.chart.hist"), buckets.map((b) => ({ label: b, value: typeof total.histogram[b] === "number" ? total.histogram[b] : null })), t("result.chart.hidden")), h("figcaption", {}, t("result.chart.hist"))),
    );
  }
  return box;
}

// ---------------------------------------------------------------------------
// Signing keys (reviewers, data owners)
// ---------------------------------------------------------------------------

// keyPicker reads a key file in the browser and checks it is the key
// registered for the user; onReady gets {key, pub} or null.
function keyPicker(onReady, cliHint) {
  const status = h("p", { class: "key-status", role: "status" }, t("key.none"));
  const input = h("input", { type: "file", class: "key-file", accept: ".ed25519,.pem,.key,text/plain" });
  const wrap = h("div", { class: "key" }, field(t("key.file"), input, t("key.help")), status, h("p", { class: "caveat" }, t("key.caveat", cliHint)));
  if (!window.isSecureContext || !crypto.subtle) {
    input.disabled = true;
    status.textContent = t("key.nocrypto");
    return wrap;
  }
  input.addEventListener("change", async () => {
    onReady(null);
    const f = input.files && input.files[0];
    if (!f) return;
    try {
      const k = await canon.importSigningKey(await f.text());
      const fp = await canon.fingerprint(k.pub);
      const me = session.me;
      if (!me.signing_key) {
        status.textContent = t("key.unregistered", me.name);
        status.className = "key-status error";
        return;
      }
      const reg = canon.unbase64(me.signing_key.replace(/^ed25519:/, ""));
      if (canon.base64(reg) !== canon.base64(k.pub)) {
        status.textContent = t("key.wrong", fp, me.name, await canon.fingerprint(reg));
        status.className = "key-status error";
        return;
      }
      status.textContent = t("key.ok", fp);
      status.className = "key-status ok";
      onReady(k);
    } catch (e) {
      status.textContent = t("error", errorText(e));
      status.className = "key-status error";
    }
  });
  return wrap;
}

// ---------------------------------------------------------------------------
// Reviewer
// ---------------------------------------------------------------------------

async function pageReview(id) {
  if (id) return reviewOne(id);
  const js = (await api("GET", "/v1/jobs")).json.jobs || [];
  const rows = js.map((j) =>
    h(
      "tr",
      { "data-job": j.id },
      h("th", { scope: "row" }, h("a", { href: "#/review/" + j.id, class: "open-review" }, t("review.open") + " " + j.id)),
      h("td", {}, term("type", j.type)),
      h("td", {}, j.owner + " / " + j.department),
      h("td", {}, j.purpose),
      h("td", {}, (j.spec.inputs || []).map((x) => x.dataset).join(" ∩ ")),
      h("td", {}, fmtTime(j.updated_at)),
    ),
  );
  refreshEvery(3000, async () => {
    const now = (await api("GET", "/v1/jobs")).json.jobs || [];
    if (now.map((j) => j.id).join() !== js.map((j) => j.id).join()) render();
  });
  return h(
    "section",
    {},
    h("h2", {}, t("review.title")),
    rows.length ? table([t("col.id"), t("col.type"), t("col.owner"), t("col.purpose"), t("col.datasets"), t("col.updated")], rows, { id: "review-queue" }) : h("p", {}, t("review.empty")),
  );
}

// reviewStatement computes, from the review as the coordinator sent it
// (its exact text), the approval to sign, and compares it with the
// coordinator's own statement.
async function reviewStatement(text, rv, me) {
  const specText = canon.rawValue(text, ["job", "spec"]);
  const resultText = canon.rawValue(text, ["review", "result"]);
  if (specText === null || resultText === null) throw new Error("the review holds no spec or no result");
  const spec = canon.parseExact(specText);
  const st = {
    job: rv.job.id,
    spec_hash: canon.hex(await canon.specHash(spec)),
    requester: { user: rv.job.owner, department: rv.job.department },
    result_sha256: canon.hex(await canon.sha256(canon.utf8(resultText))),
    reviewer: me.name,
    at: canon.rfc3339(new Date()),
  };
  const srv = rv.approval;
  const diffs = [];
  if (srv) {
    for (const k of ["job", "spec_hash", "result_sha256"]) if (srv[k] !== st[k]) diffs.push(k);
    if (!srv.requester || srv.requester.user !== st.requester.user || srv.requester.department !== st.requester.department) diffs.push("requester");
    if (srv.reviewer !== me.name) diffs.push("reviewer");
    if (srv.recipient_key_sha256) st.recipient_key_sha256 = srv.recipient_key_sha256;
  }
  if ((rv.job.type === "psi_members") !== !!st.recipient_key_sha256) diffs.push("recipient_key_sha256");
  return { st, diffs };
}

async function reviewOne(id) {
  const me = session.me;
  const { json: rv, text } = await api("GET", "/v1/jobs/" + encodeURIComponent(id) + "/review");
  const j = rv.job;
  const { st, diffs } = await reviewStatement(text, rv, me);
  const out = h("div", { id: "decision-result", role: "status", "aria-live": "polite" });
  const checks = (rv.review.checks || []).map((c) =>
    h(
      "li",
      { class: "check " + (c.passed ? "pass" : "flag") },
      h("strong", {}, c.name + " — " + (c.passed ? t("review.pass") : t("review.flag"))),
      h("p", { class: "explain" }, explainCheck(c.name, c.protects)),
      h("p", { class: "detail" }, c.detail),
    ),
  );
  const stmt = h(
    "dl",
    { class: "statement" },
    h("dt", {}, t("col.job")),
    h("dd", {}, st.job),
    h("dt", {}, t("review.spec")),
    h("dd", { class: "mono", id: "stmt-spec" }, st.spec_hash),
    h("dt", {}, t("review.result")),
    h("dd", { class: "mono", id: "stmt-result" }, st.result_sha256),
  );
  if (st.recipient_key_sha256) stmt.append(h("dt", {}, "recipient"), h("dd", {}, t("review.recipient", j.owner, rv.recipient_fingerprint || "")));
  const verdict = diffs.length ? h("p", { class: "error", id: "stmt-verdict" }, t("review.mismatch", diffs.join(", "))) : h("p", { class: "ok", id: "stmt-verdict" }, t("review.match"));
  let key = null;
  const approveBtn = h("button", { type: "button", id: "approve", disabled: true }, t("review.approve"));
  const picker = keyPicker((k) => {
    key = k;
    approveBtn.disabled = !k || diffs.length > 0;
  }, "unseen approve " + j.id + " --key FILE");
  const comment = h("textarea", { rows: 2, id: "approve-comment", maxlength: 2000 });
  approveBtn.addEventListener("click", async () => {
    if (!key || diffs.length) return;
    approveBtn.disabled = true;
    try {
      const statement = { ...st, at: canon.rfc3339(new Date()) };
      const sig = await canon.sign(key.key, canon.approvalMessage(statement));
      const { json } = await api("POST", "/v1/jobs/" + encodeURIComponent(j.id) + "/approve", { comment: comment.value, approval: { statement, signature: canon.base64(sig) } });
      out.replaceChildren(h("p", { class: "ok" }, t("review.approved", json.id) + " (" + term("state", json.state) + ")"));
    } catch (e) {
      out.replaceChildren(errorBox(e));
      approveBtn.disabled = false;
    }
  });
  const reason = h("textarea", { rows: 2, id: "reject-reason", maxlength: 2000 });
  const rejectBtn = h("button", { type: "button", class: "danger", id: "reject" }, t("review.reject"));
  rejectBtn.addEventListener("click", async () => {
    if (!reason.value.trim()) {
      out.replaceChildren(h("p", { class: "error", role: "alert" }, t("review.needreason")));
      return;
    }
    try {
      const { json } = await api("POST", "/v1/jobs/" + encodeURIComponent(j.id) + "/reject", { reason: reason.value });
      out.replaceChildren(h("p", { class: "ok" }, t("review.rejected", json.id) + " (" + term("state", json.state) + ")"));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  });
  let resultView;
  try {
    resultView = renderResult(JSON.parse(canon.rawValue(text, ["review", "result"])), j.spec);
  } catch (e) {
    resultView = errorBox(e);
  }
  return h(
    "section",
    {},
    h("h2", {}, t("review.job", j.id)),
    specSummary(j),
    h("section", { class: "result", id: "result" }, h("h3", {}, t("review.resultTitle")), resultView),
    h("section", {}, h("h3", {}, t("review.checks")), h("ul", { class: "checks", id: "checks" }, checks)),
    h("section", { class: "card" }, h("h3", {}, t("review.statement")), stmt, verdict, picker, field(t("review.comment"), comment), approveBtn),
    h("section", { class: "card" }, field(t("review.reject.reason"), reason), rejectBtn),
    out,
  );
}

// ---------------------------------------------------------------------------
// Data owner: consent and lineage
// ---------------------------------------------------------------------------

function columnsOf(spec, ds) {
  const set = new Set();
  for (const x of spec.inputs || []) {
    if (x.dataset !== ds) continue;
    if (x.key) set.add(x.key);
    if (x.filter) for (const m of x.filter.matchAll(/\b([A-Za-z_][A-Za-z0-9_]*)\s*(=|!=|<>|<=|>=|<|>|\bIN\b|\bNOT\b)/gi)) set.add(m[1]);
  }
  for (const r of [spec.value, spec.group_by]) if (r && (r.dataset === ds || !r.dataset)) set.add(r.column);
  return [...set].sort();
}

function defaultUntil() {
  const d = new Date(Date.now() + 30 * 86400e3);
  return d.toISOString().slice(0, 10);
}

async function pageConsent() {
  const me = session.me;
  const js = (await api("GET", "/v1/jobs")).json.jobs || [];
  let key = null;
  const buttons = [];
  const picker = keyPicker((k) => {
    key = k;
    for (const b of buttons) b.disabled = !k;
  }, "unseen consent ID --approve --key FILE");
  const cards = js.map((j) => {
    const mine = ((j.decision && j.decision.needs_consent) || []).filter((d) => d.split(".")[0] === me.department);
    const answered = new Set((j.consents || []).filter((c) => c.approved).map((c) => c.dataset));
    const out = h("div", { role: "status", "aria-live": "polite", class: "consent-result" });
    const until = h("input", { type: "date", value: defaultUntil(), class: "consent-until" });
    const reason = h("textarea", { rows: 2, class: "consent-reason", maxlength: 2000 });
    const card = h(
      "article",
      { class: "card consent", "data-job": j.id },
      h("h3", {}, t("consent.job", j.id, j.purpose)),
      h("p", {}, t("consent.requester", j.owner, j.department)),
      h("p", {}, t("consent.type", term("type", j.type))),
      h("p", { class: "deadline" }, t("consent.deadline", fmtTime(j.consent_deadline))),
      h("p", {}, t("consent.for", mine.join("、"))),
      mine.map((d) => h("p", { class: "columns" }, t("consent.columns", d, columnsOf(j.spec, d).join("、")))),
      h("h4", {}, t("job.inputs")),
      inputsList(j.spec),
      field(t("consent.until"), until),
      field(t("consent.reason"), reason),
    );
    const answer = async (approve) => {
      try {
        if (!approve && !reason.value.trim()) {
          out.replaceChildren(h("p", { class: "error", role: "alert" }, t("consent.reason")));
          return;
        }
        // The spec is hashed from the job as fetched now, exactly.
        const { json: job, text } = await api("GET", "/v1/jobs/" + encodeURIComponent(j.id));
        const spec = canon.parseExact(canon.rawValue(text, ["spec"]));
        const specHash = canon.hex(await canon.specHash(spec));
        const end = new Date(until.value + "T23:59:59");
        let last = null;
        for (const ds of mine) {
          if (approve && answered.has(ds)) continue;
          const body = { dataset: ds, reason: reason.value };
          if (approve) body.approve = true;
          else body.refuse = true;
          if (key) {
            const st = { job: job.id, spec_hash: specHash, requester: { user: job.owner, department: job.department }, dataset: ds, approve, reason: reason.value, until: canon.rfc3339(end), owner: me.name };
            body.until = st.until;
            body.signature = canon.base64(await canon.sign(key.key, canon.consentMessage(st)));
          }
          last = (await api("POST", "/v1/jobs/" + encodeURIComponent(j.id) + "/consent", body)).json;
          if (!approve) break;
        }
        out.replaceChildren(h("p", { class: "ok" }, t("consent.done", j.id, last ? term("state", last.state) : "")));
      } catch (e) {
        out.replaceChildren(errorBox(e));
      }
    };
    const yes = h("button", { type: "button", class: "consent-approve", disabled: !key, onclick: () => answer(true) }, t("consent.approve"));
    buttons.push(yes);
    const no = h("button", { type: "button", class: "danger consent-refuse", onclick: () => answer(false) }, t("consent.refuse"));
    card.append(h("div", { class: "actions" }, yes, no), out);
    return card;
  });
  return h("section", {}, h("h2", {}, t("consent.title")), js.length ? [picker, ...cards] : h("p", {}, t("consent.empty")));
}

async function pageLineage(arg) {
  const me = session.me;
  const all = await catalog();
  const mine = me.role === "data_owner" ? all.filter((d) => d.name.split(".")[0] === me.department) : all;
  const chosen = arg && mine.find((d) => d.name === arg) ? arg : mine.length ? mine[0].name : "";
  const sel = select(mine.map((d) => ({ value: d.name, label: d.name })), chosen, { id: "lineage-dataset" });
  sel.addEventListener("change", () => {
    location.hash = "#/lineage/" + encodeURIComponent(sel.value);
  });
  const parts = [h("h2", {}, t("lineage.title")), h("p", {}, t("lineage.help")), field(t("lineage.dataset"), sel)];
  if (chosen) {
    const l = (await api("GET", "/v1/lineage?dataset=" + encodeURIComponent(chosen))).json;
    const rows = (l.jobs || []).map((r) =>
      h("tr", {}, h("th", { scope: "row" }, r.job), h("td", {}, fmtTime(r.first)), h("td", {}, r.requester), h("td", {}, term("type", r.type)), h("td", {}, (r.columns || []).join("、")), h("td", { class: "state state-" + r.state }, term("state", r.state)), h("td", {}, r.purpose)),
    );
    parts.push(rows.length ? table([t("col.job"), t("col.first"), t("col.requester"), t("col.type"), t("col.colsused"), t("col.state"), t("col.purpose")], rows, { id: "lineage" }) : h("p", {}, t("lineage.empty")));
  }
  return h("section", {}, parts);
}

// ---------------------------------------------------------------------------
// Auditor
// ---------------------------------------------------------------------------

async function pageAudit() {
  const job = h("input", { type: "text", name: "job", id: "audit-job" });
  const dataset = h("input", { type: "text", name: "dataset", id: "audit-dataset" });
  const actor = h("input", { type: "text", name: "actor", id: "audit-actor" });
  const list = h("div", { id: "audit-list" });
  const verifyOut = h("div", { id: "audit-verify", role: "status", "aria-live": "polite" });
  const load = async () => {
    const q = new URLSearchParams();
    if (job.value.trim()) q.set("job", job.value.trim());
    if (dataset.value.trim()) q.set("dataset", dataset.value.trim());
    if (actor.value.trim()) q.set("actor", actor.value.trim());
    q.set("limit", "500");
    try {
      const es = ((await api("GET", "/v1/audit?" + q.toString())).json.entries || []).slice().reverse();
      list.replaceChildren(
        h("p", {}, t("audit.count", es.length)),
        table(
          ["#", t("col.time"), t("col.actor"), t("col.role"), t("col.action"), t("col.job"), t("col.datasets"), t("col.detail")],
          es.map((e) =>
            h(
              "tr",
              {},
              h("td", { class: "num" }, e.seq),
              h("td", {}, fmtTime(e.time)),
              h("td", {}, e.actor),
              h("td", {}, e.role || ""),
              h("td", { class: "action" }, e.action),
              h("td", {}, e.job || ""),
              h("td", {}, (e.datasets || []).join(", ")),
              h("td", { class: "detail" }, Object.entries(e.detail || {}).map(([k, v]) => k + "=" + v).join("; ")),
            ),
          ),
          { id: "audit-table" },
        ),
      );
    } catch (e) {
      list.replaceChildren(errorBox(e));
    }
  };
  const form = h(
    "form",
    { class: "card filters", onsubmit: (ev) => {
      ev.preventDefault();
      load();
    } },
    h("h3", {}, t("audit.filter")),
    field(t("audit.job"), job),
    field(t("audit.dataset"), dataset),
    field(t("audit.actor"), actor),
    h("button", { type: "submit", id: "audit-apply" }, t("audit.apply")),
  );
  const verify = h("button", { type: "button", id: "audit-verify-btn", onclick: async () => {
    try {
      const v = (await api("GET", "/v1/audit/verify")).json;
      verifyOut.replaceChildren(h("p", { class: v.ok ? "ok" : "error" }, v.ok ? t("audit.ok", v.entries) : t("audit.broken", v.error)));
    } catch (e) {
      verifyOut.replaceChildren(errorBox(e));
    }
  } }, t("audit.verify"));
  await load();
  return h("section", {}, h("h2", {}, t("audit.title")), h("div", { class: "actions" }, verify), verifyOut, form, list);
}

// ---------------------------------------------------------------------------
// Admin
// ---------------------------------------------------------------------------

async function pageAdmin() {
  const readyBox = h("div", { id: "ready" });
  const keysBox = h("div", { id: "keys" });
  const out = h("div", { id: "keys-result", role: "status", "aria-live": "polite" });
  const loadReady = async () => {
    const res = await fetch("/readyz", { cache: "no-store", credentials: "omit" });
    const r = await res.json();
    readyBox.replaceChildren(
      table(
        [t("admin.check"), t("admin.status")],
        Object.entries(r.checks || {}).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { class: v === "ok" ? "ok" : "error" }, v))),
      ),
    );
  };
  const showKeys = (st) => {
    const parts = [];
    if (!st.epoch) parts.push(h("p", {}, t("admin.nokeys")));
    else parts.push(h("p", { id: "keys-epoch" }, t("admin.epoch", st.epoch, st.ceremony, fmtTime(st.created), st.threshold, (st.nodes || []).length, (st.params || []).join(", "))));
    const yn = (b) => (b ? t("yes") : t("no"));
    parts.push(
      table(
        [t("col.node"), t("col.roster"), t("col.reachable"), t("col.shares"), t("col.detail")],
        (st.nodes || []).map((n) => h("tr", {}, h("th", { scope: "row" }, n.node), h("td", {}, yn(n.in_roster)), h("td", { class: n.reachable ? "ok" : "error" }, yn(n.reachable)), h("td", {}, yn(n.holds_shares)), h("td", {}, n.error || ""))),
        { id: "nodes" },
      ),
    );
    keysBox.replaceChildren(...parts);
  };
  const loadKeys = async () => {
    try {
      showKeys((await api("GET", "/v1/keys")).json);
    } catch (e) {
      keysBox.replaceChildren(errorBox(e));
    }
  };
  await Promise.all([loadReady().catch((e) => readyBox.replaceChildren(errorBox(e))), loadKeys()]);
  const threshold = h("input", { type: "number", min: 1, value: 2, id: "threshold" });
  const form = h(
    "form",
    { class: "card", onsubmit: async (ev) => {
      ev.preventDefault();
      const btn = form.querySelector("button");
      btn.disabled = true;
      out.replaceChildren(h("p", {}, t("admin.running")));
      try {
        showKeys((await api("POST", "/v1/keys/init", { threshold: Number(threshold.value) })).json);
        out.replaceChildren(h("p", { class: "ok" }, t("admin.done")));
      } catch (e) {
        out.replaceChildren(errorBox(e));
      }
      btn.disabled = false;
    } },
    field(t("admin.threshold"), threshold),
    h("button", { type: "submit", id: "keys-init" }, t("admin.init")),
  );
  return h("section", {}, h("h2", {}, t("admin.title")), h("h3", {}, t("admin.ready")), readyBox, h("h3", {}, t("admin.keys")), keysBox, form, out);
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

function start() {
  setLang(getLang());
  document.getElementById("lang").addEventListener("click", () => {
    setLang(getLang() === "en" ? "zh-CN" : "en");
    render();
  });
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", () => {
    say("");
    render().then(() => document.getElementById("main").focus());
  });
  render();
}

start();
