// The page side of prefect_nbauth's SecretInput (an anywidget ESM module, no build step).
//
// The typed value lives only in this view's <input type=password>. It is never
// written to a model trait (model.set / save_changes are not called anywhere
// here), so widget state (what JupyterLab saves into the .ipynb under
// metadata.widgets, and what every other view receives) cannot contain it.
// The value leaves the page once, as a custom message, when the user presses
// Enter or when the kernel asks for it (a "request", sent when Log in is
// clicked); the input is cleared in the same moment. A message queued for a
// busy kernel that is then restarted is dropped with the kernel: nothing keeps it.

let nextViewId = 0;

function render({ model, el }) {
  const viewId = `${Date.now().toString(36)}-${nextViewId++}`;
  const row = document.createElement("div");
  row.className = "pnb-secret-row";
  const label = document.createElement("label");
  label.className = "pnb-secret-label";
  const input = document.createElement("input");
  input.type = "password";
  input.className = "pnb-secret-input";
  input.autocomplete = "off";
  input.spellcheck = false;
  // A stable, unique id ties the label to the input (screen readers, clicks on the label).
  input.id = `pnb-secret-${viewId}`;
  label.htmlFor = input.id;
  row.append(label, input);
  el.classList.add("pnb-secret");
  el.append(row);

  function sync() {
    label.textContent = model.get("description") || "";
    label.style.display = label.textContent ? "" : "none";
    input.placeholder = model.get("held") ? model.get("held_placeholder") : model.get("placeholder");
    input.disabled = !!model.get("disabled");
    el.classList.toggle("pnb-held", !!model.get("held"));
  }

  // Send what the box holds (possibly nothing) and empty it at once.
  function sendValue(enter, replyTo) {
    const value = input.value;
    input.value = "";
    model.send({ kind: "secret", value, enter, reply_to: replyTo, view: viewId });
  }

  function onKeyDown(event) {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      event.stopPropagation(); // not JupyterLab's "run cell" shortcut
      if (input.value) sendValue(true, null);
    }
  }

  function onMessage(msg) {
    if (msg && msg.kind === "request") sendValue(false, msg.id);
    else if (msg && msg.kind === "clear") input.value = "";
  }

  // The traits the field shows; the value itself is never one of them.
  const shown = ["description", "placeholder", "held_placeholder", "held", "disabled"];
  input.addEventListener("keydown", onKeyDown);
  for (const name of shown) model.on(`change:${name}`, sync);
  model.on("msg:custom", onMessage);
  sync();
  // Tell the kernel a page can answer its requests (it waits for the answer only then).
  model.send({ kind: "view", state: "open", view: viewId });

  return () => {
    input.value = "";
    input.removeEventListener("keydown", onKeyDown);
    for (const name of shown) model.off(`change:${name}`, sync);
    model.off("msg:custom", onMessage);
    try {
      model.send({ kind: "view", state: "closed", view: viewId });
    } catch (err) {
      // The model may already be gone (kernel restarted): nothing to tell.
    }
  };
}

export default { render };
