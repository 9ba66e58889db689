// The calculator page: posts the form as JSON and keeps a tally of the
// versions that answered, so a canary split is visible by hand.
"use strict";

const tally = new Map();

function show(id, text) {
  const element = document.getElementById(id);
  element.textContent = text;
  return element;
}

function renderTally() {
  const body = document.querySelector("#conteo tbody");
  body.replaceChildren();
  for (const [version, count] of [...tally.entries()].sort()) {
    const row = body.insertRow();
    row.insertCell().textContent = version;
    row.insertCell().textContent = String(count);
    row.dataset.version = version;
  }
}

async function calcular(event) {
  event.preventDefault();
  const headers = { "Content-Type": "application/json" };
  if (document.getElementById("canary").checked) {
    headers["x-canary"] = "always";
  }
  const body = JSON.stringify({
    operacion: document.getElementById("operacion").value,
    numero1: Number(document.getElementById("numero1").value),
    numero2: Number(document.getElementById("numero2").value),
  });
  const error = document.getElementById("error");
  try {
    const response = await fetch("/calcular", { method: "POST", headers, body });
    const data = await response.json();
    const version = data.version || response.headers.get("X-Calculator-Version") || "?";
    if (!response.ok) {
      error.hidden = false;
      error.textContent = `${response.status}: ${data.error || "error"} (versión ${version})`;
      return;
    }
    error.hidden = true;
    show("decimal", String(data.resultado));
    show("hexadecimal", data.resultado_hexa);
    show("version", version);
    document.getElementById("respuesta").hidden = false;
    tally.set(version, (tally.get(version) || 0) + 1);
    renderTally();
  } catch (failure) {
    error.hidden = false;
    error.textContent = `Sin respuesta del gateway: ${failure}`;
  }
}

document.getElementById("calculadora").addEventListener("submit", calcular);
