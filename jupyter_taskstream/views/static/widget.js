// The notebook view of one task (an anywidget ESM module; no build step).
// Every task-supplied string is set with textContent, never innerHTML.
// The shown status and whether the task has ended come from the kernel (the synced
// `display_status` and `final` traits): the protocol's rules are not copied here.

function baseUrl() {
  // JupyterLab and Notebook 7 publish their base URL in this JSON block.
  const node = document.getElementById("jupyter-config-data");
  if (node) {
    try {
      const url = JSON.parse(node.textContent).baseUrl;
      if (url) return url.endsWith("/") ? url : url + "/";
    } catch (e) { /* fall through */ }
  }
  return "/";
}

function el(tag, cls, parent) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}

// Child bars, indented under the main bar: name, a thin bar, tqdm's one-line meter.
function renderBars(container, bars) {
  const rows = Array.from(container.children);
  bars.forEach((b, i) => {
    let row = rows[i];
    if (!row) {
      row = el("div", "ts-child", container);
      el("span", "ts-child-name", row);
      const track = el("span", "ts-child-track", row);
      el("span", "ts-child-bar", track);
      el("span", "ts-child-meter", row);
    }
    const [nameNode, track, meterNode] = row.children;
    row.style.paddingLeft = (b.depth - 1) * 16 + "px";
    row.dataset.barId = b.id;
    row.classList.toggle("ts-closed", !!b.closed);
    nameNode.textContent = b.desc;
    track.classList.toggle("ts-indeterminate", b.fraction === null);
    track.firstChild.style.width = (b.fraction === null ? 100 : Math.round(b.fraction * 1000) / 10) + "%";
    meterNode.textContent = b.meter;
  });
  rows.slice(bars.length).forEach((row) => row.remove());
  container.hidden = bars.length === 0;
}

function render({ model, el: root }) {
  const box = el("div", "taskstream-widget", root);
  const head = el("div", "ts-head", box);
  const name = el("span", "ts-name", head);
  const status = el("span", "ts-status", head);
  const meter = el("span", "ts-meter", head);
  const spacer = el("span", "ts-spacer", head);
  const link = el("a", "ts-link", head);
  link.textContent = "dashboard";
  link.target = "_blank";
  link.rel = "noopener";
  const cancel = el("button", "ts-cancel jp-mod-styled", head);
  cancel.textContent = "Cancel";
  cancel.title = "Ask the task to stop";
  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    model.send({ event: "cancel" });
  });
  const track = el("div", "ts-track", box);
  const bar = el("div", "ts-bar", track);
  bar.setAttribute("role", "progressbar");
  const children = el("div", "ts-bars", box);
  const message = el("div", "ts-message", box);
  const log = el("pre", "ts-log", box);
  const traceback = el("pre", "ts-traceback", box);
  void spacer;

  function update() {
    const state = model.get("display_status");
    const fraction = model.get("fraction");
    name.textContent = model.get("name");
    status.textContent = state;
    box.dataset.status = state;
    box.dataset.taskId = model.get("task_id");
    meter.textContent = model.get("meter");
    track.classList.toggle("ts-indeterminate", fraction === null);
    const pct = fraction === null ? 100 : Math.round(fraction * 1000) / 10;
    bar.style.width = pct + "%";
    bar.setAttribute("aria-valuenow", fraction === null ? "" : String(pct));
    renderBars(children, model.get("bars") || []);
    message.textContent = model.get("message");
    message.hidden = !model.get("message");
    const lines = model.get("log");
    log.textContent = lines.join("\n");
    log.hidden = lines.length === 0;
    log.scrollTop = log.scrollHeight;
    traceback.textContent = model.get("traceback");
    traceback.hidden = !model.get("traceback");
    cancel.hidden = model.get("final");
    cancel.disabled = state === "cancelling";
    link.hidden = !model.get("has_hub");
    link.href = baseUrl() + "taskstream/#task=" + encodeURIComponent(model.get("task_id"));
  }

  update();
  model.on("change", update);
  return () => model.off("change", update);
}

export default { render };
