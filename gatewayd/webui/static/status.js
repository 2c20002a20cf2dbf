/* The daemon's status page: one live stream (/status/events) drawn into the page in place.
 *
 * Read-only: the page never sends anything but the stream's query (which page of sensors, which
 * filter). Every section the server sends replaces what the page shows of it; rows are keyed and
 * updated in place, so nothing grows: a page of sensors, at most the server's cap of polled records,
 * the dead letters by reason, the actuators. Ages are counted here from the server's clock (GW). */
"use strict";

(function () {
  const PAGE_ROWS = 100;
  const byId = (id) => document.getElementById(id);
  const $ = (testid) => GW.byTestId(testid);
  let stream = null;
  let view = { page: 0, filter: "" };

  /** A sensor's status word as a colour: on green, err red, waiting amber. */
  function sensorClass(status) {
    return status === "waiting" ? "warn" : GW.statusClass(status);
  }

  function keyOf(row) {
    return row.device + "/" + row.name;
  }

  const sensors = new GW.PagedTable(byId("sensors-card"), {
    columns: [
      { title: "device", render: (r) => r.device },
      { testid: "sensor-name", title: "sensor", render: (r) => r.name },
      { title: "type", render: (r) => r.type, cls: "muted" },
      {
        testid: "sensor-status",
        title: "status",
        render: (r) => r.status,
        classOf: (r) => sensorClass(r.status),
      },
      { testid: "sensor-value", title: "last value", render: (r) => GW.fmtValue(r.last_value), cls: "num" },
      { testid: "sensor-time", title: "at", render: (r) => GW.fmtTime(r.last_time) },
      { title: "reads", render: (r) => String(r.reads), cls: "num" },
      { title: "failed", render: (r) => String(r.failures), cls: "num" },
      {
        testid: "sensor-error",
        title: "last error",
        render: (r) => r.last_error || r.reason || "-",
        classOf: (r) => (r.last_error ? "err wrap" : "muted wrap"),
      },
    ],
    key: keyOf,
    rowTestId: "sensor-row",
    rowAttrs: (r) => ({ "data-sensor-key": keyOf(r) }),
    filterTestId: "sensor-filter",
    filterPlaceholder: "filter device/sensor",
    empty: "no sensors",
    onChange: (next) => {
      view = next;
      open();
    },
  });

  /* -- small keyed tables (dead letters, polled records, actuators) ---------------------------- */

  /** Draw rows into table's body, reusing the row of each key; the table's .empty note shows when
   * there are none. cells: [{testid, cls, render(row) -> text, classOf(row)}]. */
  function drawRows(table, rows, options) {
    const body = table.tBodies[0];
    const old = new Map();
    for (const tr of body.children) old.set(tr.__key, tr);
    const wanted = rows.map((row) => {
      const key = options.key(row);
      let tr = old.get(key);
      if (!tr) {
        tr = GW.el("tr", Object.assign({ testid: options.rowTestId }, options.rowAttrs(row)));
        for (const c of options.cells) tr.appendChild(GW.el("td", { testid: c.testid, class: c.cls }));
        tr.__key = key;
      }
      tr.__row = row;
      fillRow(tr, options.cells);
      return tr;
    });
    const same = wanted.length === body.children.length && wanted.every((tr, i) => body.children[i] === tr);
    if (!same) body.replaceChildren(...wanted);
    const empty = table.parentNode.querySelector(".empty");
    if (empty) empty.hidden = rows.length > 0;
  }

  function fillRow(tr, cells) {
    cells.forEach((c, i) => {
      const cell = tr.children[i];
      const text = c.render(tr.__row);
      GW.setText(cell, text === null || text === undefined || text === "" ? "-" : String(text));
      if (c.classOf) cell.className = (c.cls ? c.cls + " " : "") + c.classOf(tr.__row);
      if (c.title) GW.setAttr(cell, "title", c.title(tr.__row));
    });
  }

  /** Compact JSON, cut to n characters. */
  function summary(value, n) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > n ? text.slice(0, n - 1) + "\u2026" : text;
  }

  const DEAD = {
    key: (r) => r.reason,
    rowTestId: "dead-letter-row",
    rowAttrs: (r) => ({ "data-reason": r.reason }),
    cells: [
      { testid: "dead-letter-reason", render: (r) => r.reason, cls: "err" },
      { testid: "dead-letter-count", render: (r) => String(r.count), cls: "num" },
    ],
  };

  const POLLED_CELLS = [
    { testid: "polled-cloud", render: (r) => r.cloud },
    { testid: "polled-device", render: (r) => r.device },
    { testid: "polled-time", render: (r) => GW.fmtTime(r.polled_at_ms) },
    { testid: "polled-age", render: (r) => GW.fmtAge(GW.ageOf(r.polled_at_ms)), cls: "muted" },
    {
      testid: "polled-data",
      render: (r) => summary(r.data, 160),
      title: (r) => summary(r.data, 2000),
      cls: "mono",
    },
  ];
  const POLLED = {
    key: (r) => r.cloud + "/" + r.device,
    rowTestId: "polled-row",
    rowAttrs: (r) => ({ "data-cloud": r.cloud, "data-device": r.device }),
    cells: POLLED_CELLS,
  };

  const ACTUATORS = {
    key: keyOf,
    rowTestId: "actuator-row",
    rowAttrs: (r) => ({ "data-actuator-key": keyOf(r) }),
    cells: [
      { testid: "actuator-name", render: keyOf },
      { testid: "actuator-target", render: (r) => r.target, cls: "muted" },
      { testid: "actuator-state", render: (r) => r.state },
      {
        testid: "actuator-status",
        render: (r) => r.status,
        classOf: (r) => (r.last_error ? "err" : "ok"),
      },
      { testid: "actuator-command", render: (r) => r.last_command },
      { testid: "actuator-error", render: (r) => r.last_error, classOf: (r) => (r.last_error ? "err" : "muted") },
    ],
  };

  /* -- sections --------------------------------------------------------------------------------- */

  function drawHealth(health) {
    const ok = health.ok === true;
    const node = $("health");
    GW.setAttr(node, "data-ok", ok);
    GW.setText(node, health.reason);
    GW.setAttr(byId("banner"), "data-ok", ok);
    GW.setText(byId("banner-word"), ok ? "Healthy" : "Unhealthy");
    document.title = (ok ? "" : "\u2716 ") + "gatewayd status";
  }

  function drawRegistration(r) {
    GW.setText($("registration"), r.registered ? r.gateway_id : "not registered");
    GW.setText($("report-interval"), String(r.report_interval_ms));
    GW.setText($("transport"), r.transport);
    const mqtt = r.mqtt || null;
    for (const node of document.querySelectorAll(".mqtt-only")) node.hidden = mqtt === null;
    if (mqtt !== null) {
      const state = mqtt.connected ? "connected" : mqtt.state || "disconnected";
      const error = !mqtt.connected && mqtt.last_error ? " (" + mqtt.last_error + ")" : "";
      const node = $("mqtt-state");
      GW.setText(node, state + " to " + mqtt.broker + error);
      node.className = mqtt.connected ? "ok" : "err";
    }
  }

  function drawSensors(s) {
    const page = Math.floor(s.offset / s.limit);
    const pages = Math.ceil(s.matching / s.limit);
    sensors.render(s.rows, page, pages, s.matching);
    const shown = s.filter ? s.matching + " of " + s.total : String(s.total);
    GW.setText(byId("sensors-count"), shown + (s.total === 1 ? " sensor" : " sensors"));
  }

  function drawOutbox(o) {
    GW.setText($("outbox-pending"), String(o.pending));
    const age = o.oldest_age_s;
    GW.setText($("outbox-oldest-age"), age === null ? "-" : String(Math.round(age)));
    const human = age !== null && age >= 90 ? "(" + GW.fmtAge(age).replace(" ago", "") + ")" : "";
    GW.setText(byId("oldest-human"), human);
    GW.setText($("outbox-memory"), String(o.memory_points));
    const dropped = Object.keys(o.dropped || {})
      .filter((k) => o.dropped[k] > 0)
      .map((k) => o.dropped[k] + " dropped (" + k + ")");
    const note = byId("outbox-note");
    GW.setText(note, (o.writable ? "" : "not writable: samples wait in memory. ") + dropped.join(", "));
    note.className = o.writable && dropped.length === 0 ? "muted" : "err";
    const dead = o.dead_letters || { total: 0, by_reason: {} };
    const rows = Object.keys(dead.by_reason).map((reason) => ({ reason: reason, count: dead.by_reason[reason] }));
    drawRows($("dead-letters"), rows, DEAD);
    GW.setText(byId("dead-total"), dead.total ? dead.total + " points" : "");
  }

  const DRAW = {
    health: drawHealth,
    registration: drawRegistration,
    sensors: drawSensors,
    outbox: drawOutbox,
    polled: (p) => drawRows($("polled"), p.rows, POLLED),
    actuators: (a) => drawRows($("actuators"), a, ACTUATORS),
  };

  function draw(sections) {
    for (const name of Object.keys(sections)) {
      const drawSection = DRAW[name];
      if (drawSection) drawSection(sections[name]);
    }
  }

  /* -- the stream ------------------------------------------------------------------------------- */

  function open() {
    if (stream !== null) stream.close();
    const query = new URLSearchParams({
      offset: String(view.page * PAGE_ROWS),
      limit: String(PAGE_ROWS),
      filter: view.filter || "",
    });
    stream = GW.connect("/status/events?" + query.toString(), draw);
  }

  // Ages of polled records move with the clock, not with messages.
  setInterval(() => {
    for (const tr of $("polled").tBodies[0].children) fillRow(tr, POLLED_CELLS);
  }, 1000);

  open();
})();
