/// The page at `/ca/ui` (docs/analytics.md, "Web page"): Cloud Analytics' heatmap screen.
/// Pick a metric, a predicate and a decomposition, create the instrumentation, and watch its
/// heatmap move each second; tick values of the discrete field to colour them, isolate or
/// exclude them; click a cell for its details. Plain HTML and JavaScript over the `/ca` API,
/// embedded in the binary (nothing to install, no external scripts).
enum AnalyticsPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>Lumos Cloud Analytics</title>
    <style>
      body { font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
      h1 { font-size: 18px; margin: 0 0 12px; }
      fieldset { border: 1px solid #ccc; margin: 0 0 12px; padding: 8px 12px; }
      label { margin-right: 12px; }
      #main { display: flex; gap: 16px; align-items: flex-start; }
      #heatmap { border: 1px solid #999; cursor: crosshair; background: #fff; display: block; }
      #values { min-width: 240px; max-height: 320px; overflow-y: auto; }
      #values div { white-space: nowrap; }
      table { border-collapse: collapse; }
      td, th { padding: 1px 8px; text-align: left; }
      #status { color: #666; margin-top: 6px; }
      #error { color: #b00; }
      .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
    </style>
    </head>
    <body>
    <h1>Cloud Analytics</h1>
    <fieldset id="create">
      <legend>Instrumentation</legend>
      <label>Metric <select id="metric"></select></label>
      <label>decomposed by <select id="discrete"></select></label>
      <label>and <select id="numeric"></select></label>
      <br>
      <label>predicated by <select id="pfield"></select></label>
      <select id="pop"><option value="eq">==</option><option value="ne">!=</option></select>
      <input id="pvalue" size="40" placeholder="value (empty: no predicate)">
      <button id="submit">Create</button>
      <span id="error"></span>
    </fieldset>
    <div id="title"></div>
    <div id="main">
      <div>
        <img id="heatmap" width="600" height="300" alt="heatmap">
        <div id="status">X-axis: time, in 1 second increments</div>
      </div>
      <div>
        <div id="values"></div>
        <label><input type="radio" name="mode" value="none" checked> Colour selected</label><br>
        <label><input type="radio" name="mode" value="isolate" id="isolate"> Isolate selected</label><br>
        <label><input type="radio" name="mode" value="exclude" id="exclude"> Exclude selected</label>
        <h3>Details</h3>
        <div id="details">Click a cell.</div>
      </div>
    </div>
    <script>
    "use strict";
    const W = 600, H = 300, DURATION = 60, NBUCKETS = 50;
    const HUES = [21, 0, 120, 240, 60, 300, 180, 90, 330];
    let catalogue = null, inst = null, start = 0, selected = [], frame = null, autoclick = false;
    const $ = id => document.getElementById(id);

    function option(sel, value, text) {
      const o = document.createElement("option"); o.value = value; o.textContent = text; sel.appendChild(o);
    }
    function metric() { return catalogue.metrics[$("metric").selectedIndex]; }
    function fillFields() {
      const m = metric();
      for (const id of ["discrete", "numeric", "pfield"]) $(id).innerHTML = "";
      option($("discrete"), "", "(nothing)"); option($("numeric"), "", "(nothing)");
      for (const f of m.fields) {
        const info = catalogue.fields[f];
        option($(info.arity === "numeric" ? "numeric" : "discrete"), f, info.label);
        option($("pfield"), f, info.label);
      }
      if (m.fields.includes("zonename")) $("discrete").value = "zonename";
      const numeric = m.fields.find(f => catalogue.fields[f].arity === "numeric");
      if (numeric) $("numeric").value = numeric;
    }
    async function api(method, path, body) {
      const r = await fetch(path, { method, headers: body ? { "Content-Type": "application/json" } : {},
                                    body: body ? JSON.stringify(body) : undefined });
      const text = await r.text();
      const json = text ? JSON.parse(text) : null;
      if (!r.ok) throw new Error(json && json.message ? json.message : r.status + " " + r.statusText);
      return json;
    }
    async function create() {
      $("error").textContent = "";
      const m = metric();
      const body = { module: m.module, stat: m.stat, decomposition: [$("discrete").value, $("numeric").value].filter(x => x) };
      const v = $("pvalue").value;
      if (v !== "") {
        const f = $("pfield").value;
        body.predicate = { [$("pop").value]: [f, catalogue.fields[f].type === "number" ? Number(v) : v] };
      }
      try {
        if (inst) await api("DELETE", inst.uri).catch(() => {});
        inst = await api("POST", "/ca/instrumentations", body);
        selected = [];
        $("title").textContent = m.label + (body.decomposition.length ? " decomposed by " + body.decomposition.join(" and ") : "")
          + (body.predicate ? " predicated by " + $("pfield").value + " " + $("pop").selectedOptions[0].textContent + " " + v : "");
        $("details").textContent = "Click a cell.";
        if (!frame) frame = setInterval(refresh, 1000);
        refresh();
      } catch (e) { $("error").textContent = e.message; }
    }
    function params() {
      const mode = document.querySelector("input[name=mode]:checked").value;
      const p = new URLSearchParams({ start_time: start, duration: DURATION, width: W, height: H, nbuckets: NBUCKETS });
      if (selected.length) p.set("selected", selected.join(","));
      if (mode !== "none") p.set(mode, "true");
      return p;
    }
    async function refresh() {
      if (!inst) return;
      try {
        const raw = await api("GET", inst.uri + "/value/raw?duration=" + DURATION);
        start = raw.start_time;
        showValues(raw.value);
        if (!inst.uris.some(u => u.name === "value_heatmap")) { $("status").textContent = JSON.stringify(raw.value); return; }
        const img = new Image();
        const drawnStart = start;
        img.onload = () => {
          $("heatmap").src = img.src;
          $("heatmap").dataset.start = String(drawnStart);
          inspect(img);
        };
        img.src = inst.uri + "/value/heatmap/image?" + params();
        const numeric = inst.decomposition.map(f => catalogue.fields[f]).find(f => f && f.arity === "numeric");
        $("status").textContent = "X-axis: time, in 1 second increments, " + new Date(start * 1000).toLocaleTimeString()
          + " to " + new Date((start + DURATION) * 1000).toLocaleTimeString()
          + (numeric ? ". Y-axis: " + numeric.label + " (" + numeric.unit + ")" : "");
      } catch (e) { $("error").textContent = e.message; }
    }
    function showValues(value) {
      const box = $("values");
      const keys = value && typeof value === "object" && !Array.isArray(value) ? Object.keys(value).sort() : [];
      for (const k of selected) if (!keys.includes(k)) keys.push(k);
      box.innerHTML = "";
      for (const k of keys) {
        const row = document.createElement("div");
        const cb = document.createElement("input");
        cb.type = "checkbox"; cb.checked = selected.includes(k); cb.dataset.value = k;
        cb.onchange = () => {
          selected = cb.checked ? selected.concat([k]).slice(0, 8) : selected.filter(x => x !== k);
          refresh();
        };
        const sw = document.createElement("span");
        sw.className = "swatch";
        const i = selected.indexOf(k);
        sw.style.background = "hsl(" + HUES[(i + 1) % HUES.length] + ",90%,50%)";
        if (i < 0) sw.style.visibility = "hidden";
        row.appendChild(cb); row.appendChild(sw); row.appendChild(document.createTextNode(k));
        box.appendChild(row);
      }
    }
    // The image's coloured (non-white) pixels, counted on a canvas: the page shows them in
    // data-coloured and data-frames (what the headless test reads), and with ?autoclick=1 the
    // first coloured pixel's details are shown as if it had been clicked.
    let clicked = false;
    function inspect(img) {
      const c = document.createElement("canvas");
      c.width = W; c.height = H;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const px = g.getImageData(0, 0, W, H).data;
      let coloured = 0, first = null;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i] !== 255 || px[i + 1] !== 255 || px[i + 2] !== 255) {
          coloured++;
          if (!first) first = { x: (i / 4) % W, y: Math.floor(i / 4 / W) };
        }
      }
      document.body.dataset.coloured = String(coloured);
      document.body.dataset.frames = String(Number(document.body.dataset.frames || 0) + 1);
      if (autoclick && first && !clicked) { clicked = true; showDetails(first.x, first.y); }
    }
    async function details(ev) {
      if (!inst) return;
      const img = $("heatmap");
      showDetails(Math.floor(ev.offsetX * W / img.clientWidth), Math.floor(ev.offsetY * H / img.clientHeight));
    }
    async function showDetails(x, y) {
      const img = $("heatmap");
      const p = params();
      p.set("start_time", img.dataset.start || start);
      p.set("x", x); p.set("y", y);
      try {
        const d = await api("GET", inst.uri + "/value/heatmap/details?" + p);
        const t = new Date(d.start_time * 1000).toLocaleTimeString();
        const nf = inst.decomposition.map(f => catalogue.fields[f]).find(f => f && f.arity === "numeric");
        const unit = nf ? nf.unit : "";
        let html = "<div id='cell'>Distribution details at " + t + ", " + Math.round(d.bucket_ymin) + " - " + Math.round(d.bucket_ymax) + (unit ? " " + unit : "") + "</div><table id='cellvalues'>";
        for (const [k, v] of Object.entries(d.present).sort((a, b) => b[1] - a[1])) {
          html += "<tr><td></td><td>" + k.replace(/[<&]/g, c => c === "<" ? "&lt;" : "&amp;") + "</td><td>" + v + "</td></tr>";
        }
        html += "<tr><th></th><th>Total</th><th id='celltotal'>" + d.total + "</th></tr></table>";
        $("details").innerHTML = html;
        document.body.dataset.details = Object.keys(d.present).sort().join(",");
      } catch (e) { $("error").textContent = e.message; }
    }
    async function main() {
      catalogue = await api("GET", "/ca");
      for (const m of catalogue.metrics) option($("metric"), m.module + "." + m.stat, m.label + " (" + m.module + "." + m.stat + ")");
      $("metric").onchange = fillFields;
      fillFields();
      $("submit").onclick = create;
      $("heatmap").onclick = details;
      for (const r of document.querySelectorAll("input[name=mode]")) r.onchange = refresh;
      // ?metric=cpu.thread_samples&predicate=zonename:VALUE&create=1 fills the form (and submits);
    // ?selected=A,B and ?mode=isolate|exclude set the selection.
      const q = new URLSearchParams(location.search);
      if (q.get("metric")) { $("metric").value = q.get("metric"); fillFields(); }
      if (q.get("discrete") !== null) $("discrete").value = q.get("discrete");
      if (q.get("predicate")) {
        const [f, ...v] = q.get("predicate").split(":");
        $("pfield").value = f; $("pvalue").value = v.join(":");
      }
      autoclick = q.get("autoclick") === "1";
      if (q.get("mode")) document.querySelector("input[name=mode][value=" + q.get("mode") + "]").checked = true;
      if (q.get("create")) await create();
      // ?id=N watches an instrumentation that exists already.
      if (q.get("id")) {
        inst = await api("GET", "/ca/instrumentations/" + encodeURIComponent(q.get("id")));
        $("title").textContent = inst.module + "." + inst.stat + " decomposed by " + inst.decomposition.join(" and ")
          + " predicated by " + JSON.stringify(inst.predicate);
        frame = setInterval(refresh, 1000);
      }
      if (q.get("selected")) selected = q.get("selected").split(",").slice(0, 8);
      if (inst) await refresh();
      document.body.dataset.ready = "1";
    }
    main().catch(e => { $("error").textContent = e.message; });
    </script>
    </body>
    </html>
    """#
}
