// kd-interp explorer: teacher vs student circuits, attention, CKA and patching maps.
// Reads the data model (interp/explore/data.py) from the script element #kd-data; needs d3 (vendored).
// One IIFE, no build step. View state lives in the URL hash.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("kd-data").textContent);
  const ROLES = ["teacher", "student"];
  const KINDS = ["q", "k", "v", "in"];
  const state = { sel: null, lock: false, ex: 0, thr: 0, cap: 150, kinds: new Set(KINDS), diff: false };
  let hover = null;
  const $ = (id) => document.getElementById(id);
  const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : (x >= 0 ? "+" : "") + Number(x).toFixed(d));
  const ci = (c) => (c ? `[${fmt(c[0])}, ${fmt(c[1])}]` : "");
  const missingCmd = (part) => { const m = (DATA.missing || {})[part]; return "missing" + (m && m.command ? ": " + m.command : ""); };

  // ---- head map ------------------------------------------------------------------------------------
  const s2t = new Map(); // "l.h" (student) -> "l.h" (teacher)
  const t2s = new Map(); // "l.h" (teacher) -> ["l.h", ...]
  const matchInfo = new Map();
  for (const m of DATA.head_map || []) {
    const s = m.student.join(".");
    matchInfo.set(s, m);
    if (m.teacher) {
      const t = m.teacher.join(".");
      s2t.set(s, t);
      if (!t2s.has(t)) t2s.set(t, []);
      t2s.get(t).push(s);
    }
  }
  const layerMap = DATA.layer_map || {};
  const headNode = (key) => "L" + key.replace(".", "H");
  const nodeKey = (node) => { const m = /^L(\d+)H(\d+)$/.exec(node); return m ? `${m[1]}.${m[2]}` : null; };
  function nodeToTeacher(node) { // student node -> teacher node (null: no counterpart)
    if (node === "input" || node === "logits") return node;
    let m = /^L(\d+)M$/.exec(node);
    if (m) return layerMap[m[1]] === undefined ? null : `L${layerMap[m[1]]}M`;
    const t = s2t.get(nodeKey(node));
    return t ? headNode(t) : null;
  }
  function edgeToTeacher(edge) {
    const [sender, rest] = edge.split("->");
    const i = rest.lastIndexOf(".");
    const s = nodeToTeacher(sender), r = nodeToTeacher(rest.slice(0, i));
    return s && r ? `${s}->${r}.${rest.slice(i + 1)}` : null;
  }
  function counterparts(role, node) { // nodes of the other model linked to this one
    const key = nodeKey(node);
    if (!key) return [];
    if (role === "student") { const t = s2t.get(key); return t ? [headNode(t)] : []; }
    return (t2s.get(key) || []).map(headNode);
  }

  // ---- missing parts -------------------------------------------------------------------------------
  function missingNote(el, part, what) {
    const m = (DATA.missing || {})[part] || { why: "not in the data", command: null };
    el.innerHTML = "";
    const div = document.createElement("div");
    div.className = "missing";
    div.dataset.part = part;
    div.textContent = `Missing: ${what} (${m.why}).`;
    if (m.command) {
      div.appendChild(document.createElement("br"));
      div.appendChild(document.createTextNode("Compute it with: "));
      const code = document.createElement("code");
      code.textContent = m.command;
      div.appendChild(code);
    }
    el.appendChild(div);
  }

  // ---- graph layout: a fixed layer x head grid per model --------------------------------------------
  const PANEL_W = 560, GAP = 80, TOP = 120, DY = 46;
  const LT = DATA.teacher.n_layers;
  const pos = { teacher: new Map(), student: new Map() };
  function layerY(role, l) {
    if (role === "student" && layerMap[String(l)] !== undefined) l = layerMap[String(l)];
    else if (role === "student") l = Math.round((l * (LT - 1)) / Math.max(1, DATA.student.n_layers - 1));
    return TOP + (LT - 1 - l) * DY;
  }
  for (const [i, role] of ROLES.entries()) {
    const info = DATA[role], x0 = i * (PANEL_W + GAP);
    const dx = Math.min(40, (PANEL_W - 90) / (info.n_heads + 1));
    for (let l = 0; l < info.n_layers; l++) {
      for (let h = 0; h < info.n_heads; h++) pos[role].set(`L${l}H${h}`, [x0 + 40 + h * dx, layerY(role, l)]);
      pos[role].set(`L${l}M`, [x0 + 40 + info.n_heads * dx + 10, layerY(role, l)]);
    }
    const cx = x0 + 40 + (info.n_heads * dx) / 2;
    pos[role].set("input", [cx, TOP + LT * DY]);
    pos[role].set("logits", [cx, TOP - DY]);
  }
  const GRAPH_H = TOP + LT * DY + 30;

  // ---- colour scales -------------------------------------------------------------------------------
  const patchLim = (() => {
    let m = 1e-9;
    for (const r of ROLES) for (const row of DATA.patching?.[r]?.scores || []) for (const v of row) if (v !== null) m = Math.max(m, Math.abs(v));
    return m;
  })();
  const diverging = (v, lim) => (v === null || v === undefined ? "#eee" : d3.interpolateRdBu(0.5 - 0.5 * Math.max(-1, Math.min(1, v / lim))));
  const patchScore = (role, node) => {
    const m = /^L(\d+)H(\d+)$/.exec(node);
    const rows = DATA.patching?.[role]?.scores;
    return m && rows ? rows[+m[1]][+m[2]] : null;
  };

  // ---- the graph SVG -------------------------------------------------------------------------------
  const svg = d3.select("#graph").attr("viewBox", `0 0 ${2 * PANEL_W + GAP} ${GRAPH_H}`);
  const viewport = svg.append("g").attr("id", "viewport");
  svg.call(d3.zoom().scaleExtent([0.3, 8]).on("zoom", (ev) => viewport.attr("transform", ev.transform)));
  for (const [i, role] of ROLES.entries()) {
    const x0 = i * (PANEL_W + GAP);
    viewport.append("text").attr("class", "panel-title").attr("x", x0 + 10).attr("y", 20)
      .text(`${role === "teacher" ? "Teacher" : "Student"}: ${DATA[role].name}`);
    for (let l = 0; l < DATA[role].n_layers; l++)
      viewport.append("text").attr("class", "layer-label").attr("x", x0 + 4).attr("y", layerY(role, l) + 4).text(`L${l}`);
    const c = DATA.circuits?.[role];
    if (!DATA.circuits) continue;
    if (c && c.no_signal) {
      const g = c.signal || {};
      viewport.append("text").attr("class", "no-signal").attr("data-role", role).attr("x", x0 + 10).attr("y", 40)
        .text(`NO SIGNAL: clean − corrupted gap ${fmt(g.gap)} ${ci(g.ci95)} not significant; no circuit drawn`);
    } else if (c) {
      viewport.append("text").attr("class", "circuit-note").attr("x", x0 + 10).attr("y", 40)
        .text(`${c.edges.length} edges, faithfulness ${fmt(c.faithfulness, 2)} ${ci(c.faithfulness_ci95)}`);
    }
  }
  const edgeLayer = viewport.append("g").attr("id", "edges");
  const linkLayer = viewport.append("g").attr("id", "links");
  const nodeLayer = viewport.append("g").attr("id", "nodes");
  for (const role of ROLES) {
    for (const [node, [x, y]] of pos[role]) {
      const head = /H/.test(node), io = node === "input" || node === "logits";
      const g = nodeLayer.append("g").attr("class", "node-g");
      g.append("circle").attr("class", `node ${head ? "head" : io ? "io" : "mlp"}`)
        .attr("data-role", role).attr("data-node", node).attr("cx", x).attr("cy", y).attr("r", io ? 9 : 11)
        .attr("fill", head ? diverging(patchScore(role, node), patchLim) : io ? "#ddd" : "#f5f5f5")
        .on("mouseenter", () => { if (!state.lock) { hover = { role, node }; render(); } })
        .on("mouseleave", () => { if (!state.lock) { hover = null; render(); } })
        .on("click", () => select(role, node, true));
      if (!head) g.append("text").attr("class", "node-label").attr("x", x + (io ? 12 : 0)).attr("y", y + (io ? 4 : 3))
        .attr("text-anchor", io ? "start" : "middle").text(io ? node : "M");
    }
  }
  if (!DATA.circuits) missingNote($("graph-note"), "circuits", "circuits");

  function visibleEdges(role) {
    const c = DATA.circuits?.[role];
    if (!c || c.no_signal) return [];
    const rows = c.edges.filter(([e, s]) => s !== null && Math.abs(s) >= state.thr && state.kinds.has(e.slice(e.lastIndexOf(".") + 1)));
    rows.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return rows.slice(0, state.cap);
  }
  function diff(vis) {
    const t = new Set(vis.teacher.map((r) => r[0]));
    const hit = new Set(), status = new Map();
    for (const [e] of vis.student) {
      const m = edgeToTeacher(e);
      if (m) hit.add(m);
      status.set("student:" + e, m && t.has(m) ? "preserved" : "new");
    }
    for (const e of t) status.set("teacher:" + e, hit.has(e) ? "preserved" : "lost");
    const count = (k) => [...status.values()].filter((v) => v === k).length;
    return { status, preserved: [...t].filter((e) => hit.has(e)).length, lost: count("lost"), new: count("new") };
  }
  function edgePath(role, edge) {
    const [sender, rest] = edge.split("->");
    const i = rest.lastIndexOf(".");
    const kind = rest.slice(i + 1);
    const a = pos[role].get(sender), b = pos[role].get(rest.slice(0, i));
    if (!a || !b) return null;
    const off = { q: -5, k: 0, v: 5, in: 0 }[kind];
    const x2 = b[0] + off, y2 = b[1] + 10;
    const cx = (a[0] + x2) / 2 + (a[1] - y2) * 0.12, cy = (a[1] + y2) / 2;
    return `M${a[0]},${a[1]}Q${cx},${cy} ${x2},${y2}`;
  }
  function drawEdges() {
    const vis = { teacher: visibleEdges("teacher"), student: visibleEdges("student") };
    const d = diff(vis);
    const maxAbs = Math.max(1e-9, ...ROLES.flatMap((r) => vis[r].map((x) => Math.abs(x[1]))));
    const rows = ROLES.flatMap((r) => vis[r].map(([e, s]) => ({ role: r, e, s, status: d.status.get(`${r}:${e}`) })));
    edgeLayer.selectAll("path.edge").data(rows, (x) => `${x.role}:${x.e}`).join("path")
      .attr("class", (x) => `edge ${state.diff ? x.status : x.s >= 0 ? "pos" : "neg"}`)
      .attr("data-role", (x) => x.role).attr("data-edge", (x) => x.e).attr("data-status", (x) => x.status)
      .attr("d", (x) => edgePath(x.role, x.e)).attr("stroke-width", (x) => 0.6 + 3 * Math.abs(x.s) / maxAbs)
      .selectAll("title").data((x) => [x]).join("title").text((x) => `${x.e}: ${fmt(x.s)}${state.diff ? " (" + x.status + ")" : ""}`);
    for (const r of ROLES) $(`edge-count-${r}`).textContent = `${vis[r].length}/${DATA.circuits?.[r]?.edges.length ?? 0}`;
    const dc = $("diff-counts");
    dc.dataset.preserved = d.preserved; dc.dataset.lost = d.lost; dc.dataset.new = d.new;
    dc.textContent = state.diff ? `preserved ${d.preserved} · lost ${d.lost} · new ${d.new}` : "";
  }

  // ---- selection, hover and the link between matched heads -----------------------------------------
  function select(role, node, lock) {
    const same = state.sel && state.sel.role === role && state.sel.node === node && state.lock;
    state.sel = same ? null : { role, node };
    state.lock = !same && lock;
    hover = null;
    update();
  }
  function focus() { return hover || state.sel; }
  function drawSelection() {
    const f = focus();
    const cps = f ? counterparts(f.role, f.node) : [];
    const other = f ? (f.role === "teacher" ? "student" : "teacher") : null;
    nodeLayer.selectAll("circle.node")
      .classed("sel", function () { return !!f && this.dataset.role === f.role && this.dataset.node === f.node; })
      .classed("hl", function () { return !!f && this.dataset.role === other && cps.includes(this.dataset.node); });
    const links = f ? cps.map((n) => [pos[f.role].get(f.node), pos[other].get(n)]) : [];
    linkLayer.selectAll("line").data(links).join("line").attr("class", "match-link")
      .attr("x1", (d) => d[0][0]).attr("y1", (d) => d[0][1]).attr("x2", (d) => d[1][0]).attr("y2", (d) => d[1][1]);
    const tip = $("tooltip");
    if (f) {
      const key = nodeKey(f.node);
      let text = `${f.role} ${f.node}`;
      if (key && f.role === "student") {
        const m = matchInfo.get(key);
        text += m && m.teacher ? ` ↔ teacher ${headNode(m.teacher.join("."))} (match ${fmt(m.score, 2)})` : " (no teacher match)";
      } else if (key) text += cps.length ? ` ↔ student ${cps.join(", ")}` : " (no student head matched)";
      tip.textContent = text + (state.lock ? " · locked (click again to release)" : "");
    } else tip.textContent = "Hover a head; click to lock the selection.";
  }
  function selectedPair() { // {teacher: "l.h"|null, student: "l.h"|null} for the focused head
    const f = state.sel || hover;
    const key = f && nodeKey(f.node);
    if (!key) return null;
    if (f.role === "student") return { student: key, teacher: s2t.get(key) || null };
    return { teacher: key, student: (t2s.get(key) || [])[0] || null };
  }

  // ---- attention panel -----------------------------------------------------------------------------
  const attnCache = new Map();
  function attention(role, ex) {
    const k = role + ex;
    if (!attnCache.has(k)) {
      const bin = atob(DATA.attention[role][ex]);
      const a = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i);
      attnCache.set(k, a);
    }
    return attnCache.get(k);
  }
  function drawMatrix(el, role, key) {
    el.innerHTML = "";
    const ex = DATA.examples[state.ex], toks = ex.tokens, n = toks.length;
    const title = document.createElement("div");
    title.className = "matrix-title";
    el.appendChild(title);
    if (!key) { title.textContent = `${role}: no matched head`; return; }
    const [l, h] = key.split(".").map(Number);
    title.textContent = `${role} L${l}H${h}`;
    const a = attention(role, state.ex), H = DATA[role].n_heads, base = ((l * H) + h) * n * n;
    const c = 13, pad = 70;
    const s = d3.select(el).append("svg").attr("class", "matrix").attr("width", pad + n * c + 4).attr("height", pad + n * c + 4);
    const g = s.append("g").attr("transform", `translate(${pad},${pad})`);
    const cells = [];
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) cells.push([i, j, a[base + i * n + j] / 255]);
    g.selectAll("rect").data(cells).join("rect").attr("class", "cell").attr("x", (d) => d[1] * c).attr("y", (d) => d[0] * c)
      .attr("width", c - 1).attr("height", c - 1).attr("fill", (d) => d3.interpolateBlues(d[2]))
      .append("title").text((d) => `${toks[d[0]]} → ${toks[d[1]]}: ${d[2].toFixed(2)}`);
    g.selectAll("text.tok-row").data(toks).join("text").attr("class", "tok tok-row").attr("x", -4).attr("y", (_, i) => i * c + c - 3)
      .attr("text-anchor", "end").text((t) => t);
    g.selectAll("text.tok-col").data(toks).join("text").attr("class", "tok tok-col")
      .attr("transform", (_, i) => `translate(${i * c + c - 3},-4) rotate(-60)`).text((t) => t);
    const b = (ex.sep + 1) * c - 0.5; // premise | hypothesis boundary
    g.append("line").attr("class", "boundary").attr("x1", b).attr("x2", b).attr("y1", 0).attr("y2", n * c);
    g.append("line").attr("class", "boundary").attr("y1", b).attr("y2", b).attr("x1", 0).attr("x2", n * c);
  }
  function drawAttention() {
    const el = $("attention");
    if (!DATA.examples || !DATA.attention) { missingNote(el, "attention", "attention patterns"); return; }
    const p = selectedPair();
    if (!p) { el.innerHTML = '<div class="hint">Select a head to see its attention and its match\'s.</div>'; return; }
    el.innerHTML = '<div id="attn-student" class="matrix-box"></div><div id="attn-teacher" class="matrix-box"></div>';
    drawMatrix($("attn-student"), "student", p.student);
    drawMatrix($("attn-teacher"), "teacher", p.teacher);
  }

  // ---- selected head: its numbers ------------------------------------------------------------------
  function share(tab, key) {
    const r = tab && tab[key];
    if (!r) return "–";
    return r.no_signal ? `no signal (Δ ${fmt(r.delta)} ${ci(r.delta_ci95)})` : `${fmt(r.share)} ${ci(r.ci95)}`;
  }
  function drawInfo() {
    const el = $("head-info"), p = selectedPair();
    if (!p) { el.innerHTML = ""; return; }
    const rows = [];
    const m = p.student && matchInfo.get(p.student);
    rows.push(["student head / teacher head", `${p.student ? "L" + p.student.replace(".", "H") : "–"} / ${p.teacher ? "L" + p.teacher.replace(".", "H") : "–"}`]);
    if (m) rows.push(["match score", `${fmt(m.score, 3)}${m.flagged ? " (flagged: norm ratio " + fmt(m.norm_ratio, 3) + ")" : ""}${m.dead ? " (dead head)" : ""}`]);
    const ps = (role, key) => (key ? patchScore(role, "L" + key.replace(".", "H")) : null);
    if (DATA.patching) rows.push(["activation patching score T / S", `${fmt(ps("teacher", p.teacher))} / ${fmt(ps("student", p.student))}`]);
    else rows.push(["activation patching", "missing"]);
    const A = DATA.attribution;
    if (A && p.student) {
      rows.push(["cross-patching share (teacher z → student), total", share(A.cross, p.student)]);
      rows.push(["cross-patching share, direct", share(A.cross_direct, p.student)]);
      rows.push(["weight-patching share (teacher params → student)", A.weight ? share(A.weight, p.student) : "not run: " + (A.weight_skipped || "")]);
    } else if (!A) rows.push(["attribution", missingCmd("attribution")]);
    const hb = (DATA.head_by_head || []).find((r) => r.student_head === p.student);
    if (hb && hb.teacher_head) {
      rows.push(["total effect T / S (change, 95% CI)", `${fmt(hb.total_teacher)} / ${fmt(hb.total_student)} (${fmt(hb.total_change)} ${ci(hb.total_change_ci95)})`]);
      rows.push(["direct effect T / S (change, 95% CI)", `${fmt(hb.direct_teacher)} / ${fmt(hb.direct_student)} (${fmt(hb.direct_change)} ${ci(hb.direct_change_ci95)})`]);
    } else if (!DATA.head_by_head) rows.push(["total / direct effects", missingCmd("head_by_head")]);
    el.innerHTML = "";
    const table = d3.select(el).append("table");
    for (const [k, v] of rows) { const tr = table.append("tr"); tr.append("th").text(k); tr.append("td").text(v); }
  }

  // ---- examples ------------------------------------------------------------------------------------
  function buildExamples() {
    const sel = $("example");
    if (!DATA.examples) { sel.disabled = true; missingNote($("example-note"), "examples", "examples"); return; }
    const groups = new Map();
    DATA.examples.forEach((ex, i) => { if (!groups.has(ex.subcase)) groups.set(ex.subcase, []); groups.get(ex.subcase).push(i); });
    for (const [sub, idx] of groups) {
      const og = document.createElement("optgroup");
      og.label = sub;
      for (const i of idx) {
        const ex = DATA.examples[i], o = document.createElement("option");
        o.value = i;
        o.textContent = `${ex.premise} ⇒ ${ex.hypothesis} [${ex.label}] T ${fmt(ex.metric.teacher, 2)} · S ${fmt(ex.metric.student, 2)}`;
        og.appendChild(o);
      }
      sel.appendChild(og);
    }
    sel.addEventListener("change", () => { state.ex = +sel.value; update(); });
  }

  // ---- CKA grid, patching maps, ranking ------------------------------------------------------------
  function drawCKA() {
    const el = $("cka");
    if (!DATA.cka) { missingNote(el, "cka", "CKA grid"); return; }
    const G = DATA.cka.grid, c = 22, pad = 30;
    const s = d3.select(el).append("svg").attr("width", pad + G[0].length * c + 10).attr("height", pad + G.length * c + 10);
    const g = s.append("g").attr("transform", `translate(${pad},${pad})`);
    const mapped = new Set(Object.entries(layerMap).map(([sl, tl]) => `${tl}.${sl}`));
    G.forEach((row, t) => row.forEach((v, j) => {
      g.append("rect").attr("class", "cell" + (mapped.has(`${t}.${j}`) ? " mapped" : "")).attr("x", j * c).attr("y", t * c)
        .attr("width", c - 1).attr("height", c - 1).attr("fill", v === null ? "#eee" : d3.interpolateViridis(Math.max(0, Math.min(1, v))))
        .append("title").text(`teacher L${t} × student L${j}: ${v === null ? "–" : v.toFixed(3)}`);
    }));
    G.forEach((_, t) => g.append("text").attr("class", "tok").attr("x", -4).attr("y", t * c + 15).attr("text-anchor", "end").text(`T${t}`));
    G[0].forEach((_, j) => g.append("text").attr("class", "tok").attr("x", j * c + 4).attr("y", -6).text(`S${j}`));
    d3.select(el).append("div").attr("class", "caption").text(`${DATA.cka.debiased ? "debiased " : ""}linear CKA, n = ${DATA.cka.n}; outlined: layer map`);
  }
  function drawPatchMaps() {
    for (const role of ROLES) {
      const el = $(`patch-${role}`);
      const P = DATA.patching && DATA.patching[role];
      if (!P) { missingNote(el, "patching", `${role} patching map`); continue; }
      const c = 14, pad = 28;
      d3.select(el).append("div").attr("class", "caption").text(`${role}${P.no_signal ? " — NO SIGNAL (raw changes)" : ""}`);
      const s = d3.select(el).append("svg").attr("width", pad + P.scores[0].length * c + 4).attr("height", pad + P.scores.length * c + 4);
      const g = s.append("g").attr("transform", `translate(${pad},${pad})`);
      P.scores.forEach((row, l) => { // layer 0 on top
        g.append("text").attr("class", "tok").attr("x", -4).attr("y", l * c + 11).attr("text-anchor", "end").text(`L${l}`);
        row.forEach((v, h) => g.append("rect").attr("class", "cell").attr("data-node", `L${l}H${h}`).attr("data-role", role)
          .attr("x", h * c).attr("y", l * c).attr("width", c - 1).attr("height", c - 1).attr("fill", diverging(v, patchLim))
          .on("click", () => select(role, `L${l}H${h}`, true))
          .append("title").text(`${role} L${l}H${h}: ${fmt(v)}`));
      });
      P.scores[0].forEach((_, h) => g.append("text").attr("class", "tok").attr("x", h * c + 3).attr("y", -4).text(h));
    }
  }
  function drawRanking() {
    const el = $("ranking");
    if (!DATA.head_by_head) { missingNote(el, "head_by_head", "degradation ranking (head-by-head effects)"); return; }
    const rows = DATA.head_by_head.filter((r) => r.total_change !== undefined && r.total_change !== null)
      .sort((a, b) => Math.abs(b.total_change) - Math.abs(a.total_change)).slice(0, 20);
    const w = 200, bh = 16, pad = 110, lim = Math.max(1e-9, ...rows.map((r) => Math.abs(r.total_change)));
    const s = d3.select(el).append("svg").attr("width", pad + w + 60).attr("height", rows.length * bh + 10);
    rows.forEach((r, i) => {
      const v = r.total_change, len = (Math.abs(v) / lim) * w;
      s.append("text").attr("class", "tok").attr("x", pad - 4).attr("y", i * bh + 12).attr("text-anchor", "end")
        .text(`S L${r.student_head.replace(".", "H")} ↔ T L${r.teacher_head.replace(".", "H")}`);
      s.append("rect").attr("class", "bar " + (v >= 0 ? "pos" : "neg")).attr("data-node", headNode(r.student_head))
        .attr("x", pad).attr("y", i * bh + 2).attr("width", Math.max(1, len)).attr("height", bh - 3)
        .on("click", () => select("student", headNode(r.student_head), true))
        .append("title").text(`change in total effect (S − T): ${fmt(v)} ${ci(r.total_change_ci95)}`);
    });
    d3.select(el).append("div").attr("class", "caption").text("change in the head's total effect on the margin, student − teacher (mean ablation)");
  }

  // ---- URL state -----------------------------------------------------------------------------------
  function writeHash() {
    const p = new URLSearchParams();
    if (state.sel) p.set("sel", `${state.sel.role}:${state.sel.node}`);
    if (state.lock) p.set("lock", "1");
    p.set("ex", state.ex); p.set("thr", state.thr); p.set("cap", state.cap);
    p.set("kinds", [...state.kinds].join(",")); p.set("diff", state.diff ? "1" : "0");
    try { history.replaceState(null, "", "#" + p.toString()); } catch (e) {
      // inside a notebook's sandboxed iframe (about:srcdoc) there is no URL to keep the view in
    }
  }
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.has("sel")) { const [role, node] = p.get("sel").split(":"); if (pos[role] && pos[role].has(node)) state.sel = { role, node }; }
    state.lock = p.get("lock") === "1" && !!state.sel;
    if (p.has("ex") && DATA.examples) state.ex = Math.min(DATA.examples.length - 1, Math.max(0, +p.get("ex") || 0));
    if (p.has("thr")) state.thr = +p.get("thr") || 0;
    if (p.has("cap")) state.cap = Math.max(0, +p.get("cap") || 0);
    if (p.has("kinds")) state.kinds = new Set(p.get("kinds").split(",").filter((k) => KINDS.includes(k)));
    state.diff = p.get("diff") === "1";
  }
  function syncControls() {
    $("thr").value = state.thr; $("thr-value").textContent = Number(state.thr).toFixed(3);
    $("cap").value = state.cap; $("diff").checked = state.diff;
    for (const k of KINDS) $(`kind-${k}`).checked = state.kinds.has(k);
    if (DATA.examples) $("example").value = state.ex;
  }

  // ---- export --------------------------------------------------------------------------------------
  function download(name, blob) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = name; a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }
  function svgText() {
    const clone = $("graph").cloneNode(true);
    const style = document.createElementNS("http://www.w3.org/2000/svg", "style");
    style.textContent = document.getElementById("kd-style").textContent;
    clone.insertBefore(style, clone.firstChild);
    clone.setAttribute("xmlns", "http://www.w3.org/2000/svg");
    return new XMLSerializer().serializeToString(clone);
  }
  $("export-svg").addEventListener("click", () => download("explorer.svg", new Blob([svgText()], { type: "image/svg+xml" })));
  $("export-png").addEventListener("click", () => {
    const img = new Image(), vb = $("graph").viewBox.baseVal;
    img.onload = () => {
      const cv = document.createElement("canvas"); cv.width = vb.width * 2; cv.height = vb.height * 2;
      const ctx = cv.getContext("2d"); ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cv.width, cv.height);
      ctx.drawImage(img, 0, 0, cv.width, cv.height);
      cv.toBlob((b) => download("explorer.png", b));
    };
    img.src = "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(svgText())));
  });
  $("export-json").addEventListener("click", () => download("explorer.json", new Blob([JSON.stringify({ view: location.hash, data: DATA })], { type: "application/json" })));

  // ---- controls and the update loop ----------------------------------------------------------------
  const maxScore = Math.max(1e-9, ...ROLES.flatMap((r) => (DATA.circuits?.[r]?.edges || []).map((e) => Math.abs(e[1] || 0))));
  $("thr").max = maxScore; $("thr").step = maxScore / 200;
  $("thr").addEventListener("input", (e) => { state.thr = +e.target.value; update(); });
  $("cap").addEventListener("input", (e) => { state.cap = Math.max(0, +e.target.value || 0); update(); });
  $("diff").addEventListener("change", (e) => { state.diff = e.target.checked; update(); });
  for (const k of KINDS) $(`kind-${k}`).addEventListener("change", (e) => { e.target.checked ? state.kinds.add(k) : state.kinds.delete(k); update(); });
  window.addEventListener("hashchange", () => { readHash(); syncControls(); update(); });

  function render() { drawSelection(); drawAttention(); drawInfo(); }
  function update() { syncControls(); drawEdges(); render(); writeHash(); }
  buildExamples();
  drawCKA(); drawPatchMaps(); drawRanking();
  readHash();
  update();
  window.kdExplorer = { state, data: DATA, visibleEdges, diff: () => diff({ teacher: visibleEdges("teacher"), student: visibleEdges("student") }) };
  window.kdExplorerReady = performance.now();
})();
