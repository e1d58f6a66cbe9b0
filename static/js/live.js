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
    // 4403: the server refused the subscription (no access); others are retried by htmx.
    setState(e.target, e.detail.event && e.detail.event.code === 4403 ? "refused" : "off");
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
