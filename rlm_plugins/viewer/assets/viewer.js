"use strict";
// The trajectory page: renders the run data embedded in #rlm-data. Iteration bodies, sub-call samples and child
// runs are built only when first opened, so a 200-iteration run with 10,000 sub-calls stays quick.
(function () {
  const PREVIEW_CHARS = 600;
  const PREVIEW_LINES = 14;
  const KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield").split(" "));
  const REPL_NAMES = new Set(("llm_query llm_query_batched rlm_query FINAL FINAL_VAR SUBMIT SHOW_VARS print len " +
    "range enumerate sorted sum min max open str int float list dict set tuple").split(" "));
  const TOKEN = /(#[^\n]*)|("""[\s\S]*?"""|'''[\s\S]*?'''|[rbfuRBFU]{0,2}"(?:\\.|[^"\\\n])*"|[rbfuRBFU]{0,2}'(?:\\.|[^'\\\n])*')|\b(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\b|\b([A-Za-z_]\w*)\b/g;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function highlight(code) {
    let html = "";
    let last = 0;
    TOKEN.lastIndex = 0;
    for (let m = TOKEN.exec(code); m !== null; m = TOKEN.exec(code)) {
      html += escapeHtml(code.slice(last, m.index));
      const text = escapeHtml(m[0]);
      if (m[1]) html += '<span class="tok-com">' + text + "</span>";
      else if (m[2]) html += '<span class="tok-str">' + text + "</span>";
      else if (m[3]) html += '<span class="tok-num">' + text + "</span>";
      else if (KEYWORDS.has(m[4])) html += '<span class="tok-kw">' + text + "</span>";
      else if (REPL_NAMES.has(m[4])) html += '<span class="tok-fn">' + text + "</span>";
      else html += text;
      last = m.index + m[0].length;
      if (m[0].length === 0) TOKEN.lastIndex++;
    }
    return html + escapeHtml(code.slice(last));
  }

  const textOf = (value) => (value === null || value === undefined ? "" : typeof value === "string" ? value : value.text);
  const totalOf = (value) => (value && typeof value === "object" ? value.total : textOf(value).length);

  // A text block showing a preview, with a button that reveals the rest of what the page holds.
  function textBlock(value, cls, isCode) {
    const full = textOf(value);
    const lines = full.split("\n");
    const short = full.length > PREVIEW_CHARS || lines.length > PREVIEW_LINES;
    const preview = short ? lines.slice(0, PREVIEW_LINES).join("\n").slice(0, PREVIEW_CHARS) : full;
    const pre = el("pre", { class: cls });
    const fill = (text) => { if (isCode) pre.innerHTML = highlight(text); else pre.textContent = text; };
    fill(preview);
    const wrap = el("div", {}, pre);
    const missing = totalOf(value) - full.length;
    const note = missing > 0 ? el("div", { class: "clipped-note", text: "… " + missing.toLocaleString() +
      " more characters are only in the log file" }) : null;
    if (short) {
      const button = el("button", { type: "button", class: "more", text: "show all (" + full.length.toLocaleString() +
        " characters, " + lines.length.toLocaleString() + " lines)" });
      button.addEventListener("click", () => { fill(full); button.remove(); if (note) wrap.append(note); });
      wrap.append(button);
    } else if (note) {
      wrap.append(note);
    }
    return wrap;
  }

  function labelled(label, node) {
    return el("div", {}, el("div", { class: "label", text: label }), node);
  }

  const fmtTime = (s) => (s === null || s === undefined ? "–" : s < 1 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(2) + " s");
  const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString());
  const fmtCost = (c) => (c === null || c === undefined ? "n/a" : "$" + Number(c).toFixed(c < 0.01 ? 5 : 3));
  const fmtTokens = (u) => (u ? fmtInt(u.input_tokens) + " in / " + fmtInt(u.output_tokens) + " out" : "n/a");

  function finishClass(reason) {
    if (reason === "final") return "ok";
    if (reason && reason.startsWith("max_")) return "warn";
    return "bad";
  }

  function stat(value, label) {
    return el("div", { class: "stat" }, el("b", { text: value }), el("span", { text: label }));
  }

  function summary(run) {
    const end = run.end || {};
    const reason = end.finish_reason || "unknown";
    const box = el("section", { class: "summary", id: "summary" });
    box.append(el("div", { class: "finish" },
      el("span", { class: "badge " + finishClass(reason), id: "finish-reason", text: reason }),
      el("span", { class: "meta", text: end.inferred ? "inferred from the official log format (no finish reason recorded)"
        : "finish reason" })));
    if (end.answer !== null && end.answer !== undefined) {
      box.append(el("div", { class: "answer-box", id: "final-answer" }, el("div", { class: "label", text: "final answer" }),
        textBlock(end.answer, "answer")));
    } else if (end.extracted) {
      box.append(el("div", { class: "answer-box extracted", id: "extracted" },
        el("div", { class: "label", text: "no final answer; the extract step's guess" }), textBlock(end.extracted, "")));
    }
    if (end.error) box.append(el("div", { class: "error-box", id: "run-error" }, textBlock(end.error, "")));
    for (const note of end.notes || []) box.append(el("div", { class: "error-box notes" }, textBlock(note, "")));
    if (run.query) box.append(labelled("question", textBlock(run.query, "")));
    const meta = run.metadata || {};
    const totals = run.totals || {};
    box.append(el("div", { class: "grid" },
      stat(fmtInt(totals.iterations) + (meta.max_iterations ? " / " + meta.max_iterations : ""), "iterations"),
      stat(fmtInt(totals.code_blocks), "code blocks"),
      stat(fmtInt(totals.sub_calls), "sub-calls"),
      stat(fmtTime(totals.time), "total time"),
      stat(fmtTokens(totals.usage), "tokens (whole run)"),
      stat(fmtCost(totals.usage && totals.usage.cost), "cost"),
      stat(meta.root_model || "–", "root model"),
      stat((meta.sub_models || []).join(", ") || "–", "sub-models"),
      stat((meta.environment || "–") + (meta.isolation ? " (" + meta.isolation + ")" : ""), "sandbox"),
      stat(meta.max_depth === null || meta.max_depth === undefined ? "–" : String(meta.max_depth), "max depth")));
    return box;
  }

  function strip(run, prefix) {
    const bar = el("nav", { class: "strip", "aria-label": "timeline" });
    for (const it of run.iterations) {
      const calls = it.blocks.reduce((n, b) => n + b.calls.count, 0);
      const failed = it.blocks.some((b) => textOf(b.stderr).length > 0);
      const cls = it.final ? "final" : failed ? "err" : calls ? "calls" : "";
      bar.append(el("a", { href: "#" + prefix + "it-" + it.n, class: cls,
        title: "iteration " + it.n + ": " + fmtTime(it.time) + ", " + calls + " sub-calls" }));
    }
    return bar;
  }

  function callsSection(calls, prefix) {
    if (!calls.count) return null;
    const details = el("details", { class: "sub" });
    const head = calls.count.toLocaleString() + " sub-calls (" + calls.llm + " llm_query, " + calls.rlm + " rlm_query" +
      (calls.errors ? ", " + calls.errors + " failed" : "") + ")";
    details.append(el("summary", {}, el("b", { text: head }),
      el("span", { class: "meta", text: "total " + fmtTime(calls.total_time) + " · slowest " + fmtTime(calls.max_time) +
        " · " + fmtTokens(calls.usage) + " · " + fmtCost(calls.usage && calls.usage.cost) })));
    lazy(details, () => {
      const body = el("div", { class: "body" });
      body.append(el("div", { class: "meta", text: "models: " + Object.entries(calls.models).map(([m, n]) => m + " ×" + n)
        .join(", ") + " · showing a sample of " + calls.sample.length + " of " + calls.count.toLocaleString() }));
      const table = el("table", { class: "calls" }, el("tr", {}, el("th", { text: "kind" }), el("th", { text: "prompt" }),
        el("th", { text: "answer" }), el("th", { text: "time" })));
      for (const call of calls.sample) {
        const answer = call.error ? call.error : call.response;
        table.append(el("tr", {}, el("td", { text: call.kind }), el("td", {}, textBlock(call.prompt, "")),
          el("td", {}, textBlock(answer, call.error ? "stderr" : "")), el("td", { text: fmtTime(call.time) })));
      }
      body.append(table);
      calls.children.forEach((child, i) => body.append(childRun(child, prefix + "c" + i + "-")));
      return body;
    });
    return details;
  }

  function childRun(child, prefix) {
    const reason = (child.end && child.end.finish_reason) || "unknown";
    const details = el("details", { class: "child" });
    details.append(el("summary", {}, el("b", { text: "child RLM run" }),
      el("span", { class: "small-badge " + finishClass(reason), text: reason }),
      el("span", { class: "meta", text: child.totals.iterations + " iterations · " + child.totals.sub_calls +
        " sub-calls · " + fmtTime(child.totals.time) })));
    lazy(details, () => {
      const body = el("div", { class: "body" });
      if (child.prompt) body.append(labelled("prompt", textBlock(child.prompt, "")));
      if (child.response) body.append(labelled("returned", textBlock(child.response, "")));
      body.append(iterationList(child, prefix));
      return body;
    });
    return details;
  }

  function block(b, index, prefix) {
    const node = el("div", { class: "block" });
    node.append(el("div", { class: "meta", text: "code block " + (index + 1) + " · ran " + fmtTime(b.time) }));
    node.append(textBlock(b.code, "code", true));
    if (textOf(b.stdout)) node.append(labelled("stdout", textBlock(b.stdout, "stdout")));
    if (textOf(b.stderr)) node.append(labelled("stderr", textBlock(b.stderr, "stderr")));
    if (b.final !== null && b.final !== undefined) node.append(el("div", { class: "answer-box" },
      el("div", { class: "label", text: "FINAL" }), textBlock(b.final, "")));
    const calls = callsSection(b.calls, prefix);
    if (calls) node.append(calls);
    return node;
  }

  function iteration(it, prefix) {
    const calls = it.blocks.reduce((n, b) => n + b.calls.count, 0);
    const details = el("details", { class: "iter", id: prefix + "it-" + it.n });
    details.append(el("summary", {}, el("span", { class: "n", text: "iteration " + it.n }),
      it.final !== null && it.final !== undefined ? el("span", { class: "small-badge ok", text: "final" }) : null,
      el("span", { class: "meta", text: it.blocks.length + " code block(s) · " + calls.toLocaleString() + " sub-calls · " +
        fmtTime(it.time) + " · " + fmtTokens(it.usage) + (it.usage && it.usage.cost !== null ? " · " + fmtCost(it.usage.cost) : "") })));
    lazy(details, () => {
      const body = el("div", { class: "body" });
      body.append(labelled("model response", textBlock(it.response, "response")));
      it.blocks.forEach((b, i) => body.append(block(b, i, prefix + "it" + it.n + "b" + i + "-")));
      if (it.final !== null && it.final !== undefined) body.append(el("div", { class: "answer-box" },
        el("div", { class: "label", text: "final answer" }), textBlock(it.final, "")));
      return body;
    });
    return details;
  }

  function iterationList(run, prefix) {
    const list = el("div", { class: "iterations" });
    for (const it of run.iterations) list.append(iteration(it, prefix));
    if (!run.iterations.length) list.append(el("p", { class: "meta", text: "no iterations were logged" }));
    return list;
  }

  // Build a <details> body on first open only.
  function lazy(details, build) {
    let built = false;
    const ensure = () => { if (!built) { built = true; details.append(build()); } };
    details.addEventListener("toggle", () => { if (details.open) ensure(); });
    details.ensureBuilt = ensure;
  }

  function renderRun(run, index) {
    const section = el("section", { class: "run", id: "run-" + index });
    section.append(summary(run));
    section.append(strip(run, "r" + index + "-"));
    section.append(iterationList(run, "r" + index + "-"));
    return section;
  }

  function render(data, keepOpen) {
    const app = document.getElementById("app");
    const open = new Set(keepOpen ? [...document.querySelectorAll("details.iter[open]")].map((d) => d.id) : []);
    const active = Math.min(state.active, Math.max(0, data.runs.length - 1));
    app.replaceChildren();
    document.getElementById("source").textContent = data.source || "";
    if (data.problems && data.problems.length) {
      app.append(el("div", { class: "problems", id: "problems" }, ...data.problems.map((p) => el("div", { text: p }))));
    }
    if (data.runs.length > 1) {
      const tabs = el("div", { class: "tabs", id: "runs" });
      data.runs.forEach((run, i) => {
        const reason = (run.end && run.end.finish_reason) || "unknown";
        tabs.append(el("button", { type: "button", class: i === active ? "active" : null, text: "run " + (i + 1) + ": " + reason,
          onclick: () => { state.active = i; render(data, false); } }));
      });
      app.append(tabs);
    }
    if (data.runs.length) app.append(renderRun(data.runs[active], active));
    for (const id of open) {
      const node = document.getElementById(id);
      if (node) node.open = true;
    }
    state.active = active;
  }

  function setAll(open) {
    for (const d of document.querySelectorAll("details.iter")) d.open = open;
  }

  function startLive(config) {
    const badge = document.getElementById("live");
    badge.hidden = false;
    badge.textContent = "live";
    let version = config.version;
    const poll = () => {
      fetch(config.url, { cache: "no-store" }).then((r) => (r.ok ? r.json() : Promise.reject(new Error(String(r.status)))))
        .then((payload) => {
          if (payload.version !== version) { version = payload.version; render(payload.data, true); }
          badge.textContent = "live · checked " + new Date().toLocaleTimeString();
        })
        .catch(() => { badge.textContent = "live · server not reachable"; })
        .finally(() => setTimeout(poll, config.interval || 2000));
    };
    setTimeout(poll, config.interval || 2000);
  }

  const state = { active: 0 };
  const data = JSON.parse(document.getElementById("rlm-data").textContent);
  document.getElementById("expand-all").addEventListener("click", () => setAll(true));
  document.getElementById("collapse-all").addEventListener("click", () => setAll(false));
  render(data, false);
  const live = JSON.parse(document.getElementById("rlm-live").textContent || "null");
  if (live && live.url) startLive(live);
})();
