/* The usage dashboard: charts (Chart.js, vendored), totals, breakdown tables and the live feed.
 * Data: the JSON embedded in the page, then /dashboard/data.json on "Refresh", every minute, and a few
 * seconds after live requests (once the drain has stored them). Everything is written with textContent. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const state = { data: JSON.parse(document.getElementById("dashboard-data").textContent), charts: {}, seen: new Set() };
  const MAX_ROWS = 200;
  const REFRESH_EVERY_MS = 60000;
  const REFRESH_AFTER_LIVE_MS = 6000; // the drain runs every 5 s
  const palette = ["#417690", "#e07a3f", "#5b9b4b", "#b0413e", "#7b6fb0", "#c9a227"];

  const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const fmtMs = (n) => (n === null || n === undefined ? "–" : Number(n).toFixed(n >= 100 ? 0 : 1));
  const fmtPct = (n) => (n === null || n === undefined ? "–" : (100 * n).toFixed(n && n < 0.01 ? 2 : 1) + " %");
  const fmtUsd = (s) => {
    // Costs come as exact decimal strings (null: no price known). Small amounts are shown exactly.
    if (s === null || s === undefined) return "unknown";
    const n = Number(s);
    if (n >= 1) return n.toFixed(2);
    if (n >= 0.01) return n.toFixed(4);
    return String(s);
  };

  function css(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  // Lines are drawn without points, except a point with no neighbour to draw a line to (a one-day range,
  // or a value between gaps): with pointRadius 0 it was invisible.
  function isolatedPoint(ctx) {
    const data = ctx.dataset.data, i = ctx.dataIndex;
    return data[i] != null && data[i - 1] == null && data[i + 1] == null ? 3 : 0;
  }

  function makeChart(id, type, datasets, options) {
    const canvas = document.getElementById(id);
    if (!canvas || !window.Chart) return null;
    Chart.defaults.color = css("--body-quiet-color", "#666");
    Chart.defaults.borderColor = css("--hairline-color", "#e8e8e8");
    return new Chart(canvas, {
      type: type,
      data: { labels: [], datasets: datasets.map((d, i) => Object.assign({
        borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length] + (type === "bar" ? "cc" : "33"),
        borderWidth: 2, pointRadius: isolatedPoint, pointHoverRadius: 4, tension: 0.25, spanGaps: true, data: [] }, d)) },
      options: Object.assign({
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: datasets.length > 1, position: "bottom" } },
        scales: { x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 10 } }, y: { beginAtZero: true } },
      }, options || {}),
    });
  }

  function setupCharts() {
    state.charts.requests = makeChart("chart-requests", "bar", [
      { label: "requests", key: "requests" }, { label: "errors", key: "errors" }]);
    state.charts.tokens = makeChart("chart-tokens", "bar", [
      { label: "prompt", key: "prompt_tokens", stack: "t" }, { label: "completion", key: "completion_tokens", stack: "t" }],
      { scales: { x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 10 } }, y: { stacked: true, beginAtZero: true } } });
    state.charts.spend = makeChart("chart-spend", "line", [{ label: "USD", key: "cost_usd", fill: true }]);
    state.charts.errors = makeChart("chart-errors", "line", [{ label: "error rate", key: "error_rate", fill: true }],
      { scales: { x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 10 } },
                  y: { beginAtZero: true, ticks: { callback: (v) => (100 * v).toFixed(0) + " %" } } } });
    state.charts.split = makeChart("chart-split", "bar", [], {
      plugins: { legend: { display: true, position: "bottom" } },
      scales: { x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 10 } }, y: { stacked: true, beginAtZero: true } } });
    for (const id of ["split-metric", "split-by"]) {
      document.getElementById(id).addEventListener("change", () => renderSplit(state.data));
    }
    state.charts.latency = makeChart("chart-latency", "line", [
      { label: "p50", key: "latency_p50_ms" }, { label: "p95", key: "latency_p95_ms" }]);
    state.charts.ttft = makeChart("chart-ttft", "line", [
      { label: "p50", key: "ttft_p50_ms" }, { label: "p95", key: "ttft_p95_ms" }]);
  }

  function renderSplit(data) {
    const chart = state.charts.split;
    if (!chart) return;
    const metric = document.getElementById("split-metric").value;
    const groups = (data.split || {})[document.getElementById("split-by").value] || [];
    chart.data.labels = data.labels;
    chart.data.datasets = groups.map((group, i) => ({
      label: group.name, data: group[metric], stack: "s", borderWidth: 1,
      borderColor: group.name === "other" ? "#999999" : palette[i % palette.length],
      backgroundColor: (group.name === "other" ? "#999999" : palette[i % palette.length]) + "cc" }));
    chart.update();
  }

  function renderCharts(data) {
    renderSplit(data);
    for (const [name, chart] of Object.entries(state.charts)) {
      if (!chart || name === "split") continue;
      chart.data.labels = data.labels;
      for (const dataset of chart.data.datasets) dataset.data = data.series[dataset.key] || [];
      chart.update();
    }
  }

  function renderKpis(data) {
    const set = (name, text) => {
      const el = document.querySelector('[data-kpi="' + name + '"]');
      if (el) el.textContent = text;
    };
    const t = data.totals, l = data.latency;
    set("requests", fmtInt(t.requests));
    set("total_tokens", fmtInt(t.total_tokens));
    set("cost_usd", t.requests ? fmtUsd(t.cost_usd) : "0");
    set("error_rate", fmtPct(t.error_rate));
    set("cache", fmtPct(t.hit_rate) + " / " + fmtUsd(t.cost_saved_usd));
    set("latency", fmtMs(l.p50_ms) + " / " + fmtMs(l.p95_ms) + " ms");
    set("ttft", fmtMs(l.ttft_p50_ms) + " / " + fmtMs(l.ttft_p95_ms) + " ms");
    const note = document.getElementById("dashboard-note");
    if (note && l.truncated) {
      note.textContent = "Percentiles from the newest " + fmtInt(l.sample) + " requests of the range. " +
        "Drained usage only; the live feed below shows requests as they finish.";
    }
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function renderTable(id, rows, first) {
    const table = document.getElementById(id);
    if (!table) return;
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const [label, num] of [[first, false], ["Requests", true], ["Tokens", true], ["Errors", true], ["Cost (USD)", true],
                                ["Hit rate", true], ["Saved (USD)", true]]) {
      const th = document.createElement("th");
      th.textContent = label;
      if (num) th.className = "num";
      head.appendChild(th);
    }
    const body = table.createTBody();
    if (!rows.length) {
      const tr = body.insertRow();
      tr.className = "gm-empty";
      cell(tr, "No usage in this range.").colSpan = 7;
      return;
    }
    for (const r of rows) {
      const tr = body.insertRow();
      cell(tr, r.api_key ? r.api_key + (r.tenant ? " (" + r.tenant + ")" : "") : r.name);
      cell(tr, fmtInt(r.requests), "num");
      cell(tr, fmtInt(r.total_tokens), "num");
      cell(tr, fmtPct(r.error_rate), "num");
      cell(tr, fmtUsd(r.cost_usd), "num");
      cell(tr, fmtPct(r.hit_rate), "num");
      cell(tr, fmtUsd(r.cost_saved_usd), "num");
    }
  }

  function render(data) {
    state.data = data;
    renderKpis(data);
    renderCharts(data);
    renderTable("table-by_tenant", data.by_tenant, "Tenant");
    renderTable("table-by_provider", data.by_provider, "Provider");
    renderTable("table-by_model", data.by_model, "Model");
    renderTable("table-top_keys", data.top_keys, "Key");
    renderTable("table-top_labels", data.top_labels || [], "Label");
    renderTable("table-top_users", data.top_users || [], "End user");
    const updated = document.getElementById("dashboard-updated");
    if (updated) updated.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    document.body.dataset.dashboardRequests = String(data.totals.requests);
  }

  let refreshing = null;
  async function refresh() {
    if (refreshing) return refreshing;
    const url = config.data_url + window.location.search;
    refreshing = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then(render)
      .catch((err) => { const u = document.getElementById("dashboard-updated"); if (u) u.textContent = "refresh failed: " + err.message; })
      .finally(() => { refreshing = null; });
    return refreshing;
  }

  // -- the live feed ------------------------------------------------------------------------------
  let liveRefreshTimer = null;

  function setLiveState(value, text) {
    const el = document.getElementById("live-status");
    el.dataset.state = value;
    el.textContent = text;
  }

  function addLiveRow(e) {
    if (state.seen.has(e.request_id)) return;
    state.seen.add(e.request_id);
    const body = document.getElementById("live-rows");
    const empty = body.querySelector(".gm-empty");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    tr.dataset.requestId = e.request_id;
    tr.className = "gm-new" + (e.status !== 200 ? " gm-error" : "");
    cell(tr, new Date(e.ts * 1000).toISOString().slice(11, 23));
    cell(tr, e.tenant || "—");
    cell(tr, e.api_key || "—");
    cell(tr, e.model + (e.stream ? " (stream)" : ""));
    cell(tr, e.provider || "—");
    cell(tr, String(e.status) + (e.error_type ? " " + e.error_type : ""));
    cell(tr, fmtInt(e.prompt_tokens) + " / " + fmtInt(e.completion_tokens), "num");
    cell(tr, fmtUsd(e.cost_usd), "num");
    cell(tr, fmtMs(e.latency_ms), "num");
    cell(tr, fmtMs(e.ttft_ms), "num");
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > MAX_ROWS) {
      state.seen.delete(body.lastChild.dataset.requestId);
      body.lastChild.remove();
    }
  }

  function connectLive(attempt) {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const query = config.tenant ? "?tenant=" + encodeURIComponent(config.tenant) : "";
    const socket = new WebSocket(scheme + window.location.host + config.ws_path + query);
    setLiveState("connecting", "connecting…");
    socket.onmessage = (message) => {
      let payload;
      try { payload = JSON.parse(message.data); } catch (err) { return; }
      if (payload.type === "ready") {
        attempt = 0;
        setLiveState("live", "live");
      } else if (payload.type === "events") {
        payload.events.forEach(addLiveRow);
        clearTimeout(liveRefreshTimer);
        liveRefreshTimer = setTimeout(refresh, REFRESH_AFTER_LIVE_MS);
      }
    };
    socket.onclose = () => {
      setLiveState("closed", "disconnected, retrying…");
      const delay = Math.min(30000, 1000 * Math.pow(2, attempt));
      setTimeout(() => connectLive(attempt + 1), delay);
    };
    state.socket = socket;
  }

  function start() {
    setupCharts();
    render(state.data);
    document.getElementById("dashboard-refresh").addEventListener("click", refresh);
    setInterval(refresh, REFRESH_EVERY_MS);
    connectLive(0);
    window.gomodelDashboard = { state: state, charts: state.charts, refresh: refresh };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
