/* What both pages share (the emulator console and the daemon status page): the live stream with its
 * indicator, formatting of values, times and ages, a server-paged table, the chart wrapper and POSTs.
 * Plain ES2017 in one global (GW): no bundler, no module loader, works offline from the package. */
"use strict";

const GW = (function () {
  /* -- time: the server's clock as the page knows it ------------------------------------------ */

  // skew = server time - browser time (s), measured at each message: countdowns and ages are
  // computed against the server's clock, so a browser with a wrong clock still shows the truth.
  let skew = 0;

  function serverNow() {
    return Date.now() / 1000 + skew;
  }

  function pad2(n) {
    return n < 10 ? "0" + n : String(n);
  }

  /** Local HH:MM:SS of a unix time in ms (or "-"). */
  function fmtTime(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return "-";
    const d = new Date(ms);
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }

  /** "12 s ago", "3 min ago", "2 h ago", "4 d ago" for an age in seconds (or "-"). */
  function fmtAge(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  /** The age of a unix time in ms, against the server's clock. */
  function ageOf(ms) {
    return ms === null || ms === undefined ? null : serverNow() - ms / 1000;
  }

  /** A value as text: numbers trimmed to 4 significant decimals, objects as compact JSON. */
  function fmtValue(value) {
    if (value === null || value === undefined) return "-";
    if (typeof value === "number") return fmtNumber(value);
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function fmtNumber(n) {
    if (!isFinite(n)) return String(n);
    if (Number.isInteger(n)) return String(n);
    return String(Math.round(n * 10000) / 10000);
  }

  /** Seconds left until a unix time in ms, as a whole number, 0 once past (null: none). */
  function secondsUntil(ms) {
    if (ms === null || ms === undefined || ms < 0) return null;
    return Math.max(0, Math.ceil(ms / 1000 - serverNow()));
  }

  /** A status as the portal shows it: "on" turns "off" once its expireAt (ms) has lapsed. */
  function effectiveStatus(value, expireAt) {
    if (!value) return "-";
    if (value === "on" && expireAt !== null && expireAt !== undefined && expireAt >= 0) {
      if (expireAt / 1000 <= serverNow()) return "off";
    }
    return value;
  }

  /* -- DOM ------------------------------------------------------------------------------------- */

  /** An element: attrs (testid -> data-testid, class, dataset via data-*, others as attributes),
   * children (strings become text nodes; never HTML). */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const key of Object.keys(attrs)) {
        const value = attrs[key];
        if (value === null || value === undefined || value === false) continue;
        if (key === "testid") node.setAttribute("data-testid", value);
        else if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children || []) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  /** The element of a data-testid inside root (document by default). */
  function byTestId(id, root) {
    return (root || document).querySelector('[data-testid="' + id + '"]');
  }

  /** Set an element's text only when it changed (no needless layout). */
  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    if (node && node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
  }

  /** The CSS class of a status word: on/ok green, off/faulted amber, err/down red. */
  function statusClass(status) {
    if (status === "on" || status === "ok" || status === "online" || status === true) return "ok";
    if (status === "err" || status === "down" || status === "error") return "err";
    if (status === "off" || status === "faulted" || status === "offline" || status === false) return "warn";
    return "muted";
  }

  /* -- the live stream ------------------------------------------------------------------------- */

  // A stream the browser gave up on (an answer other than an event stream: a proxy's 502 while the
  // server restarts, a 500) is opened again this long after; a dropped connection EventSource retries
  // by itself (the server says retry: 2000).
  const REOPEN_MS = 5000;

  /** Open a server-sent events stream: onMessage(sections, t) per message. The live indicator
   * (data-testid=live) says live or connecting; last-update shows the last message's server time.
   * Returns {close()}; a view change closes the old stream and opens a new one. One EventSource at a
   * time: when the browser closes it for good, a timer opens the next, and close() ends both. */
  function connect(url, onMessage) {
    const live = byTestId("live");
    const last = byTestId("last-update");
    let source = null;
    let timer = null;
    let closed = false;
    const state = function (value) {
      if (!live) return;
      setAttr(live, "data-state", value);
      setText(live.querySelector(".live-label") || live, value);
    };
    function open() {
      timer = null;
      source = new EventSource(url);
      source.onopen = function () {
        state("live");
      };
      source.onerror = function () {
        state("connecting");
        if (source.readyState === EventSource.CLOSED && !closed && timer === null) {
          timer = setTimeout(open, REOPEN_MS);
        }
      };
      source.onmessage = function (event) {
        const message = JSON.parse(event.data);
        skew = message.t - Date.now() / 1000;
        state("live");
        setText(last, fmtTime(message.t * 1000));
        onMessage(message.sections || {}, message.t);
      };
    }
    state("connecting");
    open();
    return {
      close: function () {
        closed = true;
        clearTimeout(timer);
        source.close();
      },
    };
  }

  /** POST (or another method) JSON to url: resolves {ok, status, body} (body parsed when JSON). */
  async function send(method, url, body) {
    const init = { method: method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch (err) {
      parsed = text;
    }
    return { ok: response.ok, status: response.status, body: parsed };
  }

  /* -- a server-paged table -------------------------------------------------------------------- */

  /** A table whose rows the server pages: render(rows, page, pages) draws them; the pager (prev,
   * next, a filter box) calls onChange({page, filter}). Rows are keyed (key(row)) and updated in
   * place when the same keys come back, so a live update does not rebuild the DOM.
   * columns: [{testid, title, render(row) -> string | Node, cls, classOf(row)}]; maxHeight: of the
   * scrolling part (CSS length). */
  class PagedTable {
    constructor(root, options) {
      this.root = root;
      this.options = options;
      this.page = 0;
      this.filter = "";
      this.rows = new Map();
      this.selected = null;
      const head = el("tr", null, options.columns.map((c) => el("th", { class: c.cls }, [c.title])));
      this.body = el("tbody");
      this.table = el("table", { class: "grid-table" }, [el("thead", null, [head]), this.body]);
      this.empty = el("div", { class: "empty" }, [options.empty || "nothing yet"]);
      this.info = el("span", { class: "pager-info" });
      this.prev = el("button", { type: "button", class: "small" }, ["\u2039 prev"]);
      this.next = el("button", { type: "button", class: "small" }, ["next \u203a"]);
      const pager = [this.prev, this.info, this.next];
      if (options.filterTestId !== undefined) {
        this.filterBox = el("input", {
          type: "search",
          placeholder: options.filterPlaceholder || "filter",
          testid: options.filterTestId,
          class: "filter",
        });
        pager.unshift(this.filterBox);
        let timer = null;
        this.filterBox.addEventListener("input", () => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            this.filter = this.filterBox.value.trim();
            this.page = 0;
            this.changed();
          }, 250);
        });
      }
      this.prev.addEventListener("click", () => {
        if (this.page > 0) {
          this.page -= 1;
          this.changed();
        }
      });
      this.next.addEventListener("click", () => {
        this.page += 1;
        this.changed();
      });
      root.appendChild(el("div", { class: "pager" }, pager));
      const wrap = el("div", { class: "table-wrap" }, [this.table, this.empty]);
      if (options.maxHeight) wrap.style.maxHeight = options.maxHeight;
      root.appendChild(wrap);
    }

    changed() {
      if (this.options.onChange) this.options.onChange({ page: this.page, filter: this.filter });
    }

    /** Back to the first page with no filter (the box emptied too), without calling onChange: for a
     * view that changed under the table (another gateway's sensors). */
    reset() {
      this.page = 0;
      this.filter = "";
      if (this.filterBox) this.filterBox.value = "";
    }

    /** Draw a page: rows as the server sent them, page (0-based) of pages, total of matched. */
    render(rows, page, pages, matched) {
      this.page = page;
      setText(this.info, pages > 0 ? page + 1 + " / " + pages + " (" + matched + ")" : "0 / 0");
      this.prev.disabled = page <= 0;
      this.next.disabled = page + 1 >= pages;
      const key = this.options.key;
      const keys = rows.map(key);
      const same = keys.length === this.rows.size && keys.every((k) => this.rows.has(k));
      if (!same) {
        this.rows = new Map();
        const fragment = document.createDocumentFragment();
        for (const row of rows) {
          const tr = this.makeRow(row);
          this.rows.set(key(row), tr);
          fragment.appendChild(tr);
        }
        this.body.replaceChildren(fragment);
      } else {
        for (const row of rows) this.fillRow(this.rows.get(key(row)), row);
      }
      this.empty.hidden = rows.length > 0;
      this.markSelected();
    }

    makeRow(row) {
      const o = this.options;
      const tr = el("tr", Object.assign({ testid: o.rowTestId }, o.rowAttrs ? o.rowAttrs(row) : {}));
      for (const c of o.columns) tr.appendChild(el("td", { testid: c.testid, class: c.cls }));
      if (o.onSelect) {
        tr.classList.add("clickable");
        tr.addEventListener("click", () => o.onSelect(tr.__row));
      }
      this.fillRow(tr, row);
      return tr;
    }

    fillRow(tr, row) {
      tr.__row = row;
      const cells = tr.children;
      this.options.columns.forEach((c, i) => {
        const out = c.render(row);
        const cell = cells[i];
        if (out instanceof Node) {
          cell.replaceChildren(out);
        } else {
          setText(cell, out === null || out === undefined ? "-" : String(out));
        }
        if (c.classOf) cell.className = (c.cls ? c.cls + " " : "") + c.classOf(row);
      });
    }

    /** Highlight the row of this key (null: none). */
    select(keyValue) {
      this.selected = keyValue;
      this.markSelected();
    }

    markSelected() {
      for (const [k, tr] of this.rows) tr.classList.toggle("selected", k === this.selected);
    }

    /** Re-render every row's cells from its last data (for values computed from the clock). */
    refresh() {
      for (const tr of this.rows.values()) this.fillRow(tr, tr.__row);
    }
  }

  /* -- charts ---------------------------------------------------------------------------------- */

  // status words keep their meaning (green, amber, red); other values get a colour from their text
  const PALETTE = ["#1565c0", "#6a1b9a", "#00838f", "#5d4037", "#9e9d24", "#ad1457", "#37474f", "#0277bd"];
  const MEANING = { ok: "#2e7d32", warn: "#e09b1a", err: "#c62828" };

  function colourOf(text) {
    const meaning = MEANING[statusClass(String(text).toLowerCase())];
    if (meaning) return meaning;
    let hash = 0;
    for (let i = 0; i < text.length; i++) hash = (hash * 31 + text.charCodeAt(i)) | 0;
    return PALETTE[Math.abs(hash) % PALETTE.length];
  }

  /** A sensor's points in a container, by kind: "number" a zoomable uPlot line (drag to zoom on x,
   * double-click resets), "state" a strip of coloured spans (strings), "object" a table of the
   * newest values. At most maxPoints kept; data-points on the container says how many are shown. */
  class Chart {
    constructor(container, kind, options) {
      this.container = container;
      this.kind = kind;
      this.max = (options && options.maxPoints) || 2000;
      this.label = (options && options.label) || "value";
      this.times = []; // ms
      this.values = [];
      this.plot = null;
      this.body = el("div", { class: "chart-body" });
      container.replaceChildren(this.body);
      this.resizeObserver = null;
    }

    /** Replace the points: [[time_ms, value], ...] in any order. */
    set(points) {
      this.times = [];
      this.values = [];
      if (points.length) this.append(points);
      else this.draw();
    }

    /** Add points (any order: kept sorted by time), then drop the oldest beyond maxPoints. */
    append(points) {
      if (!points.length) return;
      let sorted = true;
      for (const p of points) {
        if (this.times.length && p[0] < this.times[this.times.length - 1]) sorted = false;
        this.times.push(p[0]);
        this.values.push(p[1]);
      }
      if (!sorted) {
        const order = this.times.map((t, i) => i).sort((a, b) => this.times[a] - this.times[b]);
        this.times = order.map((i) => this.times[i]);
        this.values = order.map((i) => this.values[i]);
      }
      const extra = this.times.length - this.max;
      if (extra > 0) {
        this.times.splice(0, extra);
        this.values.splice(0, extra);
      }
      this.draw();
    }

    draw() {
      setAttr(this.container, "data-points", this.times.length);
      if (!this.times.length && this.kind !== "number") {
        this.body.replaceChildren();
        return;
      }
      if (this.kind === "number") this.drawLine();
      else if (this.kind === "object") this.drawTable();
      else this.drawStates();
    }

    drawLine() {
      const xs = this.times.map((t) => t / 1000);
      const ys = this.values.map((v) => (typeof v === "number" ? v : parseFloat(v)));
      if (this.plot) {
        // keep a zoomed-in view where it is; follow new data otherwise
        const scale = this.plot.scales.x;
        const zoomed = this.zoomed;
        this.plot.setData([xs, ys], !zoomed);
        if (zoomed && scale.min !== null) this.plot.setScale("x", { min: scale.min, max: scale.max });
        return;
      }
      const width = Math.max(300, this.body.clientWidth || this.container.clientWidth || 600);
      const opts = {
        width: width,
        height: 240,
        scales: { x: { time: true } },
        legend: { show: true, live: true },
        cursor: { drag: { x: true, y: false, setScale: true } },
        series: [{}, { label: this.label, stroke: "#1565c0", width: 1.5, fill: "rgba(21,101,192,0.08)" }],
        axes: [
          { stroke: "#5f6b7a", grid: { stroke: "#eef1f5" } },
          { stroke: "#5f6b7a", grid: { stroke: "#eef1f5" }, size: 60 },
        ],
        hooks: {
          setSelect: [
            () => {
              this.zoomed = true;
            },
          ],
        },
      };
      this.zoomed = false;
      this.plot = new uPlot(opts, [xs, ys], this.body);
      this.plot.over.addEventListener("dblclick", () => {
        this.zoomed = false;
      });
      if (window.ResizeObserver) {
        this.resizeObserver = new ResizeObserver(() => {
          const w = this.container.clientWidth;
          if (this.plot && w > 0 && Math.abs(w - this.plot.width) > 4) {
            this.plot.setSize({ width: w, height: 240 });
          }
        });
        this.resizeObserver.observe(this.container);
      }
    }

    drawStates() {
      // consecutive equal values merge into one span; the span's width is its share of the time range
      const spans = [];
      for (let i = 0; i < this.times.length; i++) {
        const text = fmtValue(this.values[i]);
        const last = spans[spans.length - 1];
        if (last && last.text === text) last.end = this.times[i];
        else spans.push({ text: text, start: this.times[i], end: this.times[i] });
      }
      for (let i = 0; i + 1 < spans.length; i++) spans[i].end = spans[i + 1].start;
      const first = this.times[0];
      const range = Math.max(1, this.times[this.times.length - 1] - first);
      const strip = el("div", { class: "state-strip", testid: "sensor-states" });
      const seen = new Map();
      for (const span of spans) {
        const share = spans.length === 1 ? 100 : Math.max(0.3, ((span.end - span.start) / range) * 100);
        const colour = colourOf(span.text);
        seen.set(span.text, colour);
        strip.appendChild(
          el("div", {
            class: "state-span",
            style: "flex-grow:" + share.toFixed(3) + ";background:" + colour,
            title: span.text + " from " + fmtTime(span.start),
          })
        );
      }
      const legend = el("div", { class: "state-legend" });
      let shown = 0;
      for (const [text, colour] of seen) {
        if (shown++ >= 12) break;
        legend.appendChild(el("span", null, [el("i", { style: "background:" + colour }), text]));
      }
      const axis = el("div", { class: "state-axis" }, [
        el("span", null, [fmtTime(first)]),
        el("span", null, [fmtTime(this.times[this.times.length - 1])]),
      ]);
      this.body.replaceChildren(strip, axis, legend);
    }

    drawTable() {
      const newest = [];
      for (let i = this.times.length - 1; i >= 0 && newest.length < 50; i--) {
        newest.push([this.times[i], this.values[i]]);
      }
      const keys = [];
      for (const [, v] of newest) {
        if (v && typeof v === "object") for (const k of Object.keys(v)) if (!keys.includes(k)) keys.push(k);
      }
      const head = el("tr", null, [el("th", null, ["time"])].concat(keys.map((k) => el("th", null, [k]))));
      const rows = newest.map(([t, v]) =>
        el(
          "tr",
          null,
          [el("td", null, [fmtTime(t)])].concat(
            keys.map((k) => el("td", null, [fmtValue(v && typeof v === "object" ? v[k] : v)]))
          )
        )
      );
      const table = el("table", { class: "grid-table", testid: "sensor-table" }, [
        el("thead", null, [head]),
        el("tbody", null, rows),
      ]);
      this.body.replaceChildren(el("div", { class: "table-wrap" }, [table]));
    }

    destroy() {
      if (this.resizeObserver) this.resizeObserver.disconnect();
      if (this.plot) this.plot.destroy();
      this.plot = null;
    }
  }

  return {
    serverNow: serverNow,
    fmtTime: fmtTime,
    fmtAge: fmtAge,
    ageOf: ageOf,
    fmtValue: fmtValue,
    fmtNumber: fmtNumber,
    secondsUntil: secondsUntil,
    effectiveStatus: effectiveStatus,
    el: el,
    byTestId: byTestId,
    setText: setText,
    setAttr: setAttr,
    statusClass: statusClass,
    connect: connect,
    send: send,
    PagedTable: PagedTable,
    Chart: Chart,
    colourOf: colourOf,
  };
})();
