// bench/console.py installs this before the console's own scripts: it wraps EventSource so that every
// message of the page's stream is timed against its server time `t` (the first field of each message)
// on arrival and at the next animation frame (when the page has drawn it). Results wait in bounded
// arrays that the bench takes (and empties) at every sample.
(() => {
  const Native = window.EventSource;
  const keep = 5000;
  const stats = { messages: 0, chars: 0, arrival: [], frame: [] };
  const push = (list, value) => { if (list.length < keep) list.push(value); };
  window.__bench = {
    take() {
      const out = { messages: stats.messages, chars: stats.chars, arrival: stats.arrival, frame: stats.frame };
      stats.messages = 0; stats.chars = 0; stats.arrival = []; stats.frame = [];
      return out;
    },
  };
  function Timed(url, options) {
    const source = new Native(url, options);
    source.addEventListener("message", (event) => {
      const arrived = Date.now() / 1000;
      stats.messages += 1;
      stats.chars += event.data.length;
      const found = /^\{"t":([0-9.eE+-]+)/.exec(event.data);
      if (found) {
        const t = Number(found[1]);
        push(stats.arrival, arrived - t);
        requestAnimationFrame(() => push(stats.frame, Date.now() / 1000 - t));
      }
    });
    return source;
  }
  Timed.prototype = Native.prototype;
  Object.assign(Timed, { CONNECTING: 0, OPEN: 1, CLOSED: 2 });
  window.EventSource = Timed;
})();
