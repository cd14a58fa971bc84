// Malipo's card option (served with Subresource Integrity). Without JavaScript the card
// form posts as it is and the shopper pays on the processor's own page. With it: the
// first tap asks Malipo for a processor session, loads the processor's session.js and
// mounts its card frames (the card is typed into the processor's documents, never
// this page's); the second has the frames send the card to the processor and posts
// the form with the processor's session id only.
(function () {
  "use strict";
  var form = document.querySelector("form.card-form");
  if (!form) return;
  var fields = form.querySelector(".card-fields");
  var problem = form.querySelector(".card-problem");
  var button = form.querySelector("button.pay-card");
  var state = "idle";
  // The page's words, in its language.
  function words(name) { return form.getAttribute("data-" + name) || ""; }
  function say(words) {
    problem.textContent = words;
    problem.hidden = !words;
  }
  function ready() {
    state = "ready";
    fields.hidden = false;
    button.disabled = false;
    button.textContent = button.getAttribute("data-pay-label");
  }
  function fail(words) {
    state = "idle";
    button.disabled = false;
    say(words);
  }
  function mount(session) {
    var script = document.createElement("script");
    script.src = form.getAttribute("data-session-js");
    script.onerror = function () { fail(words("unreachable")); };
    script.onload = function () {
      window.PaymentSession.configure({
        session: session,
        fields: { card: { number: "#card-number", expiry: "#card-expiry", securityCode: "#card-security-code" } },
        frameEmbeddingMitigation: ["javascript"],
        callbacks: {
          initialized: function () { ready(); },
          formSessionUpdate: function (response) {
            if (response && response.status === "ok") {
              form.elements.card_session.value = response.session.id;
              state = "sending";
              form.submit();
            } else {
              state = "ready";
              button.disabled = false;
              say(words("check-details"));
            }
          }
        }
      });
    };
    document.head.appendChild(script);
  }
  form.addEventListener("submit", function (ev) {
    if (state === "sending") return;
    ev.preventDefault();
    if (state === "loading" || state === "checking") return;
    say("");
    button.disabled = true;
    if (state === "idle") {
      state = "loading";
      fetch(form.getAttribute("action") + "/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ form_token: form.elements.form_token.value })
      })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (body) { mount(body.session); })
        .catch(function () { fail(words("not-available")); });
      return;
    }
    state = "checking";
    window.PaymentSession.updateSessionFromForm("card");
  });
})();
