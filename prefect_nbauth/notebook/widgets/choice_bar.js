// The page side of prefect_nbauth's ChoiceBar (an anywidget ESM module, no build step).
//
// Every listener is bound here, in render, on elements this view owns: the bar
// works whenever it is drawn, whatever Lumino messages the page did or did not
// deliver (a restored ipywidgets Tab can miss "before-attach" and stay dead).
// WAI-ARIA tabs pattern: a tablist of tab buttons, aria-selected, roving tabindex,
// arrow keys / Home / End move and select.

function render({ model, el }) {
  const bar = document.createElement("div");
  bar.className = "pnb-choices";
  bar.setAttribute("role", "tablist");
  // Arrow keys here move between choices, not between notebook cells.
  bar.dataset.lmSuppressShortcuts = "true";
  el.classList.add("pnb-choice-bar");
  el.append(bar);
  let buttons = [];

  function choose(index, focus) {
    if (index < 0 || index >= buttons.length) return;
    if (model.get("index") !== index) {
      model.set("index", index);
      model.save_changes();
    }
    show();
    if (focus) buttons[index].focus();
  }

  function show() {
    const current = model.get("index");
    buttons.forEach((button, i) => {
      const selected = i === current;
      button.setAttribute("aria-selected", selected ? "true" : "false");
      button.tabIndex = selected ? 0 : -1;
      button.classList.toggle("pnb-current", selected);
    });
  }

  function build() {
    bar.setAttribute("aria-label", model.get("description") || "Choices");
    bar.replaceChildren();
    buttons = (model.get("labels") || []).map((text, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "pnb-choice";
      button.setAttribute("role", "tab");
      button.textContent = text;
      button.title = text;
      button.addEventListener("click", () => choose(i, false));
      bar.append(button);
      return button;
    });
    show();
  }

  function onKeyDown(event) {
    const last = buttons.length - 1;
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    const to = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: last }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    event.stopPropagation();
    choose((to + buttons.length) % buttons.length, true);
  }

  bar.addEventListener("keydown", onKeyDown);
  model.on("change:labels", build);
  model.on("change:description", build);
  model.on("change:index", show);
  build();

  return () => {
    bar.removeEventListener("keydown", onKeyDown);
    model.off("change:labels", build);
    model.off("change:description", build);
    model.off("change:index", show);
  };
}

export default { render };
