// A build's page: log chunks from the websocket are appended to the log as they come. Each
// chunk says at which offset of the stored log it starts, so one already shown is skipped and
// a gap (a chunk missed while the socket was down, or before it opened) is filled from the API.
(function () {
  const pre = document.getElementById("build-log");
  if (!pre) return;
  const id = pre.dataset.build;
  let offset = parseInt(pre.dataset.offset || "0", 10);
  let fetching = false;

  function append(text) {
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    pre.textContent += text;
    offset += text.length;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function catchUp() {
    if (fetching) return;
    fetching = true;
    const from = offset;
    fetch(`/api/builds/${id}/log?offset=${from}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => { if (body && body.offset > offset) append(body.log.slice(offset - from)); })
      .finally(() => { fetching = false; });
  }

  document.body.addEventListener("build:changed", (e) => {
    const event = e.detail || {};
    if (event.type !== "build.log") { catchUp(); return; }
    const at = event.at || 0, chunk = event.chunk || "";
    if (at + chunk.length <= offset) return; // shown already
    if (at > offset) { catchUp(); return; } // something is missing before it
    append(chunk.slice(offset - at));
  });
  document.addEventListener("htmx:wsOpen", catchUp); // what was written before the socket opened
})();
