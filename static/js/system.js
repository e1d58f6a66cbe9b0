// Shows worker heartbeats relayed over the `system` websocket, and asks for one on load.
(function () {
  const cell = document.getElementById("worker-status");
  if (!cell) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/system/`);
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type !== "worker.heartbeat") return;
    const depths = Object.entries(event.queues).map(([q, n]) => `${q}: ${n}`).join(", ");
    cell.textContent = `${event.hostname} (pid ${event.pid}) at ${event.at}; queued ${depths}`;
    cell.className = "ok";
  };
  socket.onclose = () => { cell.textContent = "live updates disconnected"; cell.className = "error"; };
  socket.onopen = () => {
    const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
    fetch(cell.dataset.heartbeatUrl, { method: "POST", headers: { "X-CSRFToken": token } });
  };
})();
