// Live pages. An element with ws-connect (htmx's websocket extension) receives the JSON events
// the workers publish for its applications; each one triggers `data-live-event` on the body,
// and the page's fragments (hx-trigger="<event> from:body") fetch themselves again from the
// server. After a dropped socket reconnects, the fragments are fetched too: what happened
// meanwhile is caught up.
(function () {
  const opened = new WeakSet();

  function eventName(elt) { return elt.dataset.liveEvent || "app:changed"; }

  function setState(elt, state) {
    elt.dataset.live = state;
  }

  document.addEventListener("htmx:wsBeforeMessage", (e) => {
    e.preventDefault(); // JSON events, not HTML to swap
    let event = {};
    try { event = JSON.parse(e.detail.message); } catch (err) { return; }
    htmx.trigger(document.body, eventName(e.target), event);
  });

  document.addEventListener("htmx:wsOpen", (e) => {
    const elt = e.target;
    setState(elt, "on");
    if (opened.has(elt)) htmx.trigger(document.body, eventName(elt), { reconnected: true });
    opened.add(elt);
  });

  document.addEventListener("htmx:wsClose", (e) => {
    // apps/core/consumers.py: 4401 the session is gone (signed out, expired, deactivated): on to
    // the login page, back here afterwards; 4403 no access. htmx retries neither; it retries
    // dropped connections (1006), whose reconnect then gets one of these if the session ended.
    const code = e.detail.event && e.detail.event.code;
    if (code === 4401) {
      const next = encodeURIComponent(window.location.pathname + window.location.search);
      window.location.assign("/login/?next=" + next.replace(/%2F/g, "/")); // as Django writes it
      return;
    }
    setState(e.target, code === 4403 ? "refused" : "off");
  });

  // The resource filter of the application page (kind/status), applied again after each swap.
  window.filterResources = function (value) {
    document.body.dataset.resourceFilter = value;
    document.querySelectorAll(".tree .node[data-sync]").forEach((node) => {
      const hide = (value === "OutOfSync" && node.dataset.sync !== "OutOfSync") ||
        (value === "unhealthy" && node.dataset.health === "Healthy");
      node.hidden = hide;
    });
  };
  document.addEventListener("htmx:afterSettle", () => {
    const value = document.body.dataset.resourceFilter;
    const select = document.getElementById("resource-filter");
    if (value && select) { select.value = value; window.filterResources(value); }
  });
})();
