// The page side of prefect_nbauth's SecretInput (an anywidget ESM module, no build step).
//
// The typed value lives only in this view's <input type=password>. It is never
// written to a model trait (model.set / save_changes are not called anywhere
// here), so widget state (what JupyterLab saves into the .ipynb under
// metadata.widgets, and what every other view receives) cannot contain it.
// The value leaves the page once, when the user presses Enter or when the kernel
// asks for it (a "request", sent when Log in is clicked); the input is emptied the
// moment it is read. It leaves SEALED for the kernel (see _sealing.py): a fresh
// AES-256-GCM key encrypts it, the kernel's RSA-OAEP (SHA-256) public key encrypts
// that key, so the comm message, a --debug kernel's log and the server's log carry
// ciphertext only. WebCrypto exists only in a secure context (https, or http on
// localhost): elsewhere the box is switched off and nothing typed is sent.

const SCHEME = "RSA-OAEP-256+A256GCM";
let nextViewId = 0;

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

async function seal(publicKey, value) {
  const subtle = globalThis.crypto.subtle;
  const der = Uint8Array.from(atob(publicKey), (c) => c.charCodeAt(0));
  const rsa = await subtle.importKey("spki", der, { name: "RSA-OAEP", hash: "SHA-256" }, false, ["encrypt"]);
  const aes = await subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt"]);
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const additionalData = new TextEncoder().encode(SCHEME);
  const data = await subtle.encrypt({ name: "AES-GCM", iv, additionalData }, aes,
                                    new TextEncoder().encode(value));
  const key = await subtle.encrypt({ name: "RSA-OAEP" }, rsa, await subtle.exportKey("raw", aes));
  return { scheme: SCHEME, key: base64(key), iv: base64(iv), data: base64(data) };
}

function render({ model, el }) {
  const viewId = `${Date.now().toString(36)}-${nextViewId++}`;
  // A secure context is where the browser offers WebCrypto; it cannot be faked by the page.
  const secure = !!(globalThis.isSecureContext && globalThis.crypto && globalThis.crypto.subtle);
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
  el.classList.toggle("pnb-insecure", !secure);
  el.append(row);

  function sync() {
    label.textContent = model.get("description") || "";
    label.style.display = label.textContent ? "" : "none";
    input.placeholder = !secure ? model.get("insecure_placeholder")
      : model.get("held") ? model.get("held_placeholder") : model.get("placeholder");
    input.disabled = !secure || !!model.get("disabled");
    el.classList.toggle("pnb-held", !!model.get("held"));
  }

  // Messages leave in the order the user acted (sealing is asynchronous).
  let queue = Promise.resolve();

  // Read what the box holds (possibly nothing), empty it at once, send it sealed.
  function sendValue(enter, replyTo) {
    let value = input.value;
    input.value = "";
    queue = queue.then(async () => {
      let sealed = null;
      let failed = false;
      if (value) {
        try {
          sealed = await seal(model.get("public_key"), value);
        } catch (err) {
          failed = true; // said to the kernel, never the value
        }
        value = "";
      }
      model.send({ kind: "sealed", sealed, failed, enter, reply_to: replyTo, view: viewId });
    });
  }

  function onKeyDown(event) {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      event.stopPropagation(); // not JupyterLab's "run cell" shortcut
      if (secure && input.value) sendValue(true, null);
    }
  }

  function onMessage(msg) {
    // A page that cannot seal does not answer: the kernel does not count it as able to.
    if (msg && msg.kind === "request" && secure) sendValue(false, msg.id);
    else if (msg && msg.kind === "clear") input.value = "";
  }

  // The traits the field shows; the value itself is never one of them.
  const shown = ["description", "placeholder", "held_placeholder", "insecure_placeholder", "held", "disabled"];
  input.addEventListener("keydown", onKeyDown);
  for (const name of shown) model.on(`change:${name}`, sync);
  model.on("msg:custom", onMessage);
  sync();
  // Tell the kernel a page can answer its requests (it waits for the answer only then),
  // or that this one cannot send a secret safely (the form then says so).
  model.send({ kind: "view", state: "open", view: viewId, secure });

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
