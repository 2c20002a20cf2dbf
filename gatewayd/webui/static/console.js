/* The emulator console: one live stream (/_emulator/console/events) feeds every section; a view change
 * (another gateway, page, filter or sensor) opens a new stream with the new query. Controls POST to the
 * emulator's admin API and their effect comes back through the stream. Uses GW from common.js. */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const T = (id, root) => GW.byTestId(id, root);
  const el = GW.el;

  const view = {
    gateway: null, // the page's choice; null: the server's default
    shownGateway: null, // the gateway whose sensors are listed now
    page: 0,
    filter: "",
    gpage: 0,
    gfilter: "",
    sensor: null,
    since: null,
  };
  let stream = null;
  let chart = null;
  let chartCursor = 0;
  let rpcTargets = [];

  /* -- the stream ------------------------------------------------------------------------------ */

  function openStream() {
    const params = new URLSearchParams();
    if (view.gateway) params.set("gateway", view.gateway);
    if (view.page) params.set("page", view.page);
    if (view.filter) params.set("filter", view.filter);
    if (view.gpage) params.set("gpage", view.gpage);
    if (view.gfilter) params.set("gfilter", view.gfilter);
    if (view.sensor) {
      params.set("sensor", view.sensor);
      if (view.since !== null) params.set("since", view.since);
    }
    if (stream) stream.close();
    stream = GW.connect("/_emulator/console/events?" + params.toString(), render);
  }

  const renderers = {
    clouds: renderClouds,
    points: renderPoints,
    faults: renderFaults,
    refusals: renderRefusals,
    gateways: renderGateways,
    sensors: renderSensors,
    chart: renderChart,
    rcms: renderRcms,
    loctube: renderLoctube,
    mqtt: renderMqtt,
    rpc: renderRpc,
    links: renderLinks,
  };

  // The emulator's run: another one after a reconnect means a restarted emulator, whose histories start
  // over, so the page's chart position means nothing there any more.
  let run = null;

  function render(sections) {
    if (sections.run !== undefined) {
      const restarted = run !== null && sections.run !== run;
      run = sections.run;
      if (restarted && chart) {
        // Start the chart over from the new history's first point, on a stream that sends it: what this
        // message carries was cut at the old position.
        chartCursor = 0;
        view.since = 0;
        chart.set([]);
        noPointYet();
        openStream();
        return;
      }
    }
    for (const name of Object.keys(sections)) {
      const fn = renderers[name];
      if (fn) fn(sections[name]);
    }
  }

  /* -- clouds and points ----------------------------------------------------------------------- */

  const CLOUDS = [
    ["thingplus", "Thing+"],
    ["rcms", "RCMS"],
    ["loctube", "loctube"],
  ];

  (function makeCloudCards() {
    const template = $("cloud-card");
    const cards = CLOUDS.map(([name, title]) => {
      const card = template.content.firstElementChild.cloneNode(true);
      card.setAttribute("data-testid", "cloud-" + name);
      card.setAttribute("data-cloud", name);
      card.querySelector('[data-role="title"]').textContent = title;
      return card;
    });
    template.after.apply(template, cards);
  })();

  function renderClouds(clouds) {
    for (const name of Object.keys(clouds)) {
      const card = T("cloud-" + name);
      if (!card) continue;
      const c = clouds[name];
      GW.setAttr(card, "data-health", c.health);
      GW.setAttr(card, "data-served", c.served);
      const badge = card.querySelector('[data-role="health"]');
      const word = !c.served ? "not served" : c.health === "down" ? "outage" : c.health;
      GW.setText(badge, word);
      badge.className = "right badge " + (c.served ? GW.statusClass(c.health) : "");
      GW.setText(T("requests", card), String(c.requests));
      GW.setText(T("refused", card), String(c.refused));
      const parts = Object.keys(c.by_status).map((s) => s + ": " + c.by_status[s]);
      GW.setText(card.querySelector('[data-role="statuses"]'), parts.length ? parts.join(" · ") : "no requests yet");
    }
  }

  function renderPoints(points) {
    GW.setText(T("points-rate"), GW.fmtNumber(points.rate));
    GW.setText(T("points-total"), String(points.total));
  }

  function left(seconds) {
    return seconds === null || seconds === undefined ? "until cleared" : Math.ceil(seconds) + " s left";
  }

  function describeFault(set) {
    const parts = [];
    if (set.outage) {
      const o = set.outage;
      parts.push(o.until_cleared ? "outage until cleared" : "outage, " + left(o.remaining_s || o.seconds_left));
    }
    if (set.failure_rate) parts.push("failure rate " + set.failure_rate + " (" + set.failure_statuses.join("/") + ")");
    if (set.latency_s) parts.push("latency " + set.latency_s + " s");
    if (set.rate_limit) {
      const r = set.rate_limit;
      const bits = [];
      if (r.remaining_count) bits.push(r.remaining_count + " left");
      if (r.window_remaining_s) bits.push(Math.ceil(r.window_remaining_s) + " s left");
      parts.push("rate limit (" + bits.join(", ") + ")");
    }
    if (set.oauth2_form_only) parts.push("OAuth2 form only");
    return parts;
  }

  function renderFaults(faults) {
    const box = $("faults");
    const rows = [];
    for (const cloud of Object.keys(faults)) {
      const parts = describeFault(faults[cloud].set);
      const injected = faults[cloud].injected || {};
      const counts = Object.keys(injected).map((k) => k + " " + injected[k]);
      rows.push(
        el("div", { class: "fault-row", "data-cloud": cloud }, [
          el("span", { class: "fault-cloud" }, [cloud]),
          el("span", { class: "badge " + (parts.length ? (faults[cloud].set.outage ? "err" : "warn") : "ok") }, [
            parts.length ? parts.join(" · ") : "none",
          ]),
          counts.length ? el("span", { class: "muted fault-injected" }, ["injected: " + counts.join(", ")]) : null,
        ])
      );
    }
    box.replaceChildren.apply(box, rows);
  }

  function renderRefusals(refusals) {
    const rows = refusals.map((r) =>
      el("tr", { testid: "refusal-row", "data-cloud": r.cloud }, [
        el("td", null, [GW.fmtTime(r.t * 1000)]),
        el("td", null, [r.cloud]),
        el("td", { testid: "refusal-status", class: "num err" }, [String(r.status)]),
        el("td", { testid: "refusal-code", class: "mono" }, [r.code === null ? "-" : String(r.code)]),
        el("td", { class: "mono clip", title: r.method + " " + r.path }, [r.method + " " + r.path]),
        el("td", { class: "clip", title: r.message || "" }, [r.message || "-"]),
      ])
    );
    if (!rows.length) rows.push(el("tr", null, [el("td", { colspan: 6, class: "empty" }, ["no refused request"])]));
    $("refusals-body").replaceChildren.apply($("refusals-body"), rows);
  }

  /* -- gateways and sensors -------------------------------------------------------------------- */

  function countdown(row) {
    const left = GW.secondsUntil(row.expireAt);
    return left === null ? "-" : String(left);
  }

  const gatewaysTable = new GW.PagedTable($("gateways-table"), {
    rowTestId: "gateway-row",
    key: (row) => row.id,
    rowAttrs: (row) => ({ "data-gateway-id": row.id }),
    filterTestId: "gateway-filter",
    filterPlaceholder: "filter gateways",
    empty: "no gateway registered yet",
    columns: [
      { title: "gateway", testid: "gateway-name", render: (r) => r.name || r.id },
      { title: "id", cls: "mono id", render: (r) => r.id },
      { title: "via", render: (r) => r.transport },
      {
        title: "status",
        testid: "gateway-status",
        render: (r) => GW.effectiveStatus(r.status, r.expireAt),
        classOf: (r) => GW.statusClass(GW.effectiveStatus(r.status, r.expireAt)),
      },
      { title: "expires in s", testid: "gateway-countdown", cls: "num", render: countdown },
      { title: "devices", cls: "num", render: (r) => String(r.devices) },
      { title: "sensors", testid: "gateway-sensors", cls: "num", render: (r) => String(r.sensors) },
      { title: "interval ms", cls: "num", render: (r) => r.reportInterval || "-" },
    ],
    onChange: (change) => {
      view.gpage = change.page;
      view.gfilter = change.filter;
      openStream();
    },
    onSelect: (row) => {
      if (view.gateway === row.id) return;
      view.gateway = row.id;
      view.page = 0;
      view.filter = "";
      sensorsTable.reset(); // the table's own page and filter too: prev/next would bring the old back
      openStream();
    },
  });

  function renderGateways(g) {
    gatewaysTable.render(g.rows, g.page, g.pages, g.matched);
    GW.setText($("gateways-total"), g.total + " in all");
  }

  const sensorsTable = new GW.PagedTable($("sensors-table"), {
    rowTestId: "sensor-row",
    key: (row) => row.id,
    rowAttrs: (row) => ({ "data-sensor-id": row.id }),
    filterTestId: "sensor-filter",
    maxHeight: "300px",
    filterPlaceholder: "filter by name, id, type",
    empty: "no sensor on this gateway",
    columns: [
      { title: "sensor", testid: "sensor-name", render: (r) => r.name || r.id },
      { title: "device", testid: "sensor-device", cls: "muted", render: (r) => r.device_name || r.device || "-" },
      { title: "type", render: (r) => (r.category === "actuator" ? r.type + " (actuator)" : r.type) },
      {
        title: "status",
        testid: "sensor-status",
        render: (r) => GW.effectiveStatus(r.status, r.expireAt),
        classOf: (r) => GW.statusClass(GW.effectiveStatus(r.status, r.expireAt)),
      },
      { title: "value", testid: "sensor-value", cls: "num", render: (r) => GW.fmtValue(r.value) },
      { title: "time", testid: "sensor-time", render: (r) => GW.fmtTime(r.time) },
      { title: "age", cls: "muted", render: (r) => (r.time === null ? "-" : GW.fmtAge(GW.ageOf(r.time))) },
      { title: "points", cls: "num", render: (r) => String(r.points) },
    ],
    onChange: (change) => {
      view.page = change.page;
      view.filter = change.filter;
      openStream();
    },
    onSelect: (row) => openChart(row),
  });

  function renderSensors(s) {
    view.shownGateway = s.gateway;
    gatewaysTable.select(s.gateway);
    GW.setText($("sensors-of"), s.gateway ? (s.name ? s.name + " (" + s.gateway + ")" : s.gateway) : "-");
    sensorsTable.render(s.rows, s.page, s.pages, s.matched);
    sensorsTable.select(view.sensor);
    GW.setText($("sensors-total"), s.total + " sensors");
  }

  // countdowns and ages move with the clock between messages (computed here, no request)
  setInterval(() => {
    gatewaysTable.refresh();
    sensorsTable.refresh();
  }, 1000);

  /* -- the chart ------------------------------------------------------------------------------- */

  // Only the last sensor clicked gets its chart drawn, whichever fetch answers last.
  let chartRequest = 0;

  async function openChart(row) {
    const box = $("chart-box");
    const url = "/_emulator/console/sensors/" + encodeURIComponent(row.id) + "/points?limit=2000";
    const mine = ++chartRequest;
    let reply;
    try {
      reply = await GW.send("GET", url);
    } catch (err) {
      // the emulator went away: say so (an unhandled rejection would be a console error)
      if (mine === chartRequest) showMessage(T("control-message"), false, "chart: " + String(err));
      return;
    }
    if (mine !== chartRequest) return;
    if (!reply.ok) {
      showMessage(T("control-message"), false, "chart: " + describe(reply));
      return;
    }
    const data = reply.body;
    if (chart) chart.destroy();
    GW.setAttr(box, "data-testid", "sensor-chart");
    GW.setAttr(box, "data-sensor-id", data.sensor);
    GW.setText($("chart-title"), (data.name || data.sensor) + (data.type ? " · " + data.type : ""));
    chart = new GW.Chart(box, data.kind, { maxPoints: 2000, label: data.name || data.sensor });
    chart.set(data.points);
    if (!data.points.length) noPointYet();
    chartCursor = data.cursor;
    view.sensor = data.sensor;
    view.since = data.cursor;
    sensorsTable.select(view.sensor);
    openStream();
  }

  function noPointYet() {
    $("chart-box").appendChild(el("div", { class: "empty" }, ["no point received yet"]));
  }

  function renderChart(c) {
    if (!chart || c.sensor !== view.sensor) return;
    if (c.to <= chartCursor) return;
    // a reconnected stream starts again at `since`: skip what this page already has
    const fresh = c.points.slice(Math.max(0, chartCursor - c.from));
    chartCursor = c.to;
    view.since = c.to;
    const placeholder = $("chart-box").querySelector(":scope > .empty");
    if (placeholder) placeholder.remove();
    chart.append(fresh);
  }

  /* -- RCMS, loctube, MQTT, links -------------------------------------------------------------- */

  function fillBody(tbody, rows, columns, empty) {
    if (!rows.length) rows = [el("tr", null, [el("td", { colspan: columns, class: "empty" }, [empty])])];
    tbody.replaceChildren.apply(tbody, rows);
  }

  function renderRcms(r) {
    GW.setText($("rcms-total"), r.served ? r.total + " routers" : "not served");
    const rows = (r.routers || []).map((x) =>
      el("tr", { testid: "router-row", "data-sn": x.sn }, [
        el("td", { class: "mono" }, [x.sn]),
        el("td", { class: x.online ? "ok" : "warn" }, [x.online ? "online" : "offline"]),
        el("td", null, [x.model || "-"]),
        el("td", null, [x.group || "-"]),
        el("td", { class: "num" }, [String(x.interval_ms)]),
        el("td", null, [GW.fmtTime(x.last_record)]),
        el("td", { class: "num" }, [x.rssi === null || x.rssi === undefined ? "-" : String(x.rssi)]),
      ])
    );
    fillBody($("rcms-body"), rows, 7, r.served ? "no router configured" : "this emulator serves no RCMS");
  }

  function renderLoctube(l) {
    GW.setText($("loctube-total"), l.served ? l.total + " devices" : "not served");
    const rows = (l.devices || []).map((d) => {
      const p = d.properties || {};
      return el("tr", { testid: "loctube-row", "data-device-id": d.id }, [
        el("td", { class: "mono" }, [d.id]),
        el("td", { class: GW.statusClass(d.state) }, [d.state]),
        el("td", { class: "num" }, [GW.fmtValue(p.battery)]),
        el("td", { class: "num" }, [GW.fmtValue(p.latitude)]),
        el("td", { class: "num" }, [GW.fmtValue(p.longitude)]),
        el("td", { class: "num" }, [GW.fmtValue(p.speed)]),
        el("td", null, [GW.fmtTime(d.time)]),
      ]);
    });
    fillBody($("loctube-body"), rows, 7, l.served ? "no device configured" : "this emulator serves no loctube");
  }

  function renderMqtt(m) {
    const badge = $("mqtt-badge");
    const figures = $("mqtt-figures");
    if (!m.served) {
      GW.setText(badge, "off");
      badge.className = "right badge";
      const why = "not running (gatewayd emulator --mqtt-port)";
      figures.replaceChildren(el("dt", null, ["broker"]), el("dd", null, [why]));
      return;
    }
    const outage = m.outage && m.outage.active;
    GW.setText(badge, outage ? "outage" : "on");
    badge.className = "right badge " + (outage ? "err" : "ok");
    const pairs = [
      ["port", String(m.port)],
      ["gateways", m.connected + " connected of " + m.known + " known"],
      ["points", String(m.counts.points || 0)],
    ];
    const other = Object.keys(m.counts).filter((k) => k !== "points" && m.counts[k]);
    if (other.length) pairs.push(["counts", other.map((k) => k + " " + m.counts[k]).join(", ")]);
    if (outage) pairs.push(["outage", left(m.outage.seconds_left)]);
    const nodes = [];
    for (const [k, v] of pairs) nodes.push(el("dt", null, [k]), el("dd", null, [v]));
    figures.replaceChildren.apply(figures, nodes);
  }

  function renderLinks(links) {
    const nav = T("daemon-links");
    // only http(s) becomes a link (the server checks too): never a javascript: or data: URL
    const nodes = links.map((l) =>
      /^https?:\/\//i.test(l.url)
        ? el("a", { href: l.url, target: "_blank", rel: "noopener", "data-testid": "daemon-link" }, [l.label])
        : el("span", { "data-testid": "daemon-link" }, [l.label + " " + l.url])
    );
    nav.replaceChildren.apply(nav, nodes);
  }

  /* -- controls -------------------------------------------------------------------------------- */

  function describe(reply) {
    const body = reply.body;
    if (body && typeof body === "object" && body.error) return reply.status + ": " + body.error;
    return reply.status + ": " + (typeof body === "string" ? body : JSON.stringify(body));
  }

  function showMessage(node, ok, text) {
    node.className = "message " + (ok ? "ok" : "err");
    GW.setText(node, text);
  }

  function number(testid) {
    const raw = T(testid).value.trim();
    return raw === "" ? null : Number(raw);
  }

  /** A control: on click send(method, url, body) and show what came back in control-message. */
  function control(testid, build) {
    T(testid).addEventListener("click", async () => {
      const out = T("control-message");
      const req = build();
      if (typeof req === "string") {
        showMessage(out, false, req);
        return;
      }
      try {
        const reply = await GW.send(req.method || "POST", req.url, req.body);
        showMessage(out, reply.ok, reply.ok ? req.done : describe(reply));
      } catch (err) {
        showMessage(out, false, String(err));
      }
    });
  }

  const cloud = () => T("outage-cloud").value;

  // the MQTT broker's outage has its own admin path; the other faults are HTTP ones
  const MQTT = "mqtt";
  const MQTT_OUTAGE = "/_emulator/thingplus/mqtt-outage";
  const faultsUrl = () => "/_emulator/faults/" + cloud();
  const httpOnly = (what) => (cloud() === MQTT ? what + ": the MQTT broker takes an outage only" : null);

  control("outage-start", () => {
    const s = number("outage-seconds");
    if (!(s > 0)) return "outage: give a number of seconds above 0";
    if (cloud() === MQTT) {
      return { url: MQTT_OUTAGE, body: { seconds: s }, done: "MQTT broker outage for " + s + " s" };
    }
    return { url: faultsUrl(), body: { outage_s: s }, done: "outage of " + cloud() + " for " + s + " s" };
  });
  control("outage-stop", () => {
    if (cloud() === MQTT) return { method: "DELETE", url: MQTT_OUTAGE, done: "MQTT broker outage stopped" };
    return { method: "DELETE", url: faultsUrl() + "?kinds=outage", done: "outage of " + cloud() + " stopped" };
  });
  control("failure-apply", () => {
    if (httpOnly("failure rate")) return httpOnly("failure rate");
    const rate = number("failure-rate");
    if (rate === null) return "failure rate: give a number from 0 to 1";
    return { url: faultsUrl(), body: { failure_rate: rate }, done: "failure rate of " + cloud() + ": " + rate };
  });
  control("latency-apply", () => {
    if (httpOnly("latency")) return httpOnly("latency");
    const s = number("latency");
    if (s === null) return "latency: give a number of seconds";
    return { url: faultsUrl(), body: { latency_s: s }, done: "latency of " + cloud() + ": " + s + " s" };
  });
  control("rate-limit-apply", () => {
    if (httpOnly("rate limit")) return httpOnly("rate limit");
    const limit = {};
    const count = number("rate-limit-count");
    const windowS = number("rate-limit-window");
    if (count !== null) limit.count = count;
    if (windowS !== null) limit.window_s = windowS;
    return { url: faultsUrl(), body: { rate_limit: limit }, done: "rate limit on " + cloud() };
  });
  control("faults-clear", () => ({ method: "DELETE", url: "/_emulator/faults", done: "every fault cleared" }));
  control("expire-tokens", () => ({ url: "/_emulator/tokens/expire", done: "every token expired" }));
  control("report-interval-apply", () => {
    const ms = number("report-interval");
    if (ms === null) return "report interval: give milliseconds";
    return { url: "/_emulator/thingplus/report-interval", body: { ms: ms }, done: "report interval " + ms + " ms" };
  });

  /* -- MQTT commands --------------------------------------------------------------------------- */

  let paramsEdited = false;

  function defaultParams() {
    const method = T("rpc-method").value;
    if (method === "controlActuator") {
      return { id: T("rpc-actuator").value || "", cmd: "blink", options: { interval: 500, duration: 3000 } };
    }
    if (method === "setProperty") return { reportInterval: number("report-interval") || 5000 };
    if (method === "timeSync") return { time: Math.round(GW.serverNow() * 1000) };
    return {};
  }

  function refreshParams() {
    if (!paramsEdited) T("rpc-params").value = JSON.stringify(defaultParams());
    const select = T("rpc-actuator");
    select.hidden = T("rpc-method").value !== "controlActuator" || !select.options.length;
  }

  function setOptions(select, values) {
    const wanted = values.map((v) => v.value).join("\n");
    const have = Array.from(select.options)
      .map((o) => o.value)
      .join("\n");
    if (wanted === have) return;
    const keep = select.value;
    select.replaceChildren.apply(
      select,
      values.map((v) => el("option", { value: v.value }, [v.label]))
    );
    if (values.some((v) => v.value === keep)) select.value = keep;
  }

  function fillActuators() {
    const target = rpcTargets.find((g) => g.id === T("rpc-gateway").value);
    const actuators = target ? target.actuators : [];
    setOptions(
      T("rpc-actuator"),
      actuators.map((a) => ({ value: a.id, label: (a.name || a.id) + " (" + a.type + ")" }))
    );
  }

  function renderRpc(r) {
    rpcTargets = r.gateways || [];
    const gateways = rpcTargets.map((g) => ({ value: g.id, label: g.id }));
    setOptions(T("rpc-gateway"), gateways);
    T("rpc-send").disabled = !gateways.length;
    $("rpc-control").classList.toggle("disabled", !gateways.length);
    const answer = T("rpc-answer");
    if (!gateways.length) {
      answer.className = "message";
      GW.setText(answer, r.served ? "no MQTT gateway connected" : "MQTT broker not running");
      answer.dataset.placeholder = "yes";
    } else if (answer.dataset.placeholder) {
      GW.setText(answer, "");
      delete answer.dataset.placeholder;
    }
    fillActuators();
    refreshParams();
  }

  T("rpc-gateway").addEventListener("change", () => {
    fillActuators();
    refreshParams();
  });
  T("rpc-actuator").addEventListener("change", refreshParams);
  T("rpc-method").addEventListener("change", () => {
    paramsEdited = false;
    refreshParams();
  });
  T("rpc-params").addEventListener("input", () => {
    paramsEdited = true;
  });

  T("rpc-send").addEventListener("click", async () => {
    const answer = T("rpc-answer");
    delete answer.dataset.placeholder;
    let params;
    try {
      params = JSON.parse(T("rpc-params").value || "{}");
    } catch (err) {
      showMessage(answer, false, "params are not JSON: " + err.message);
      return;
    }
    const body = { gateway: T("rpc-gateway").value, method: T("rpc-method").value, params: params, timeout: 10 };
    showMessage(answer, true, "sent " + body.method + ", waiting for the answer\u2026");
    try {
      const reply = await GW.send("POST", "/_emulator/thingplus/rpc", body);
      const ok = reply.ok && reply.body && !reply.body.error;
      showMessage(answer, ok, reply.ok ? JSON.stringify(reply.body) : describe(reply));
    } catch (err) {
      showMessage(answer, false, String(err));
    }
  });

  refreshParams();
  openStream();
})();
