/* Malipo embeddable checkout. No dependencies.
 *   Malipo.open({url | sessionId, onSuccess, onCancel, onClose})   modal iframe
 *   Malipo.mount(element, {url | sessionId, onSuccess, onCancel})    inline iframe
 * Messages from the checkout are accepted only from Malipo's origin and from the frame
 * this script created; messages to it are sent to Malipo's origin only. */
(function () {
  "use strict";
  var me = document.currentScript;
  var ORIGIN = me ? new URL(me.src).origin : "";
  var ID = /^cs_[0-9A-Za-z]{24}$/;

  function pageUrl(o) {
    var u;
    if (o.url) {
      u = new URL(o.url, ORIGIN);
      if (u.origin !== ORIGIN || !/^\/pay\/cs_[0-9A-Za-z]{24}$/.test(u.pathname)) {
        throw new Error("Malipo: url must be a checkout page on " + ORIGIN);
      }
    } else if (o.sessionId && ID.test(o.sessionId)) {
      u = new URL("/pay/" + o.sessionId, ORIGIN);
    } else {
      throw new Error("Malipo: pass {url} or {sessionId}");
    }
    u.search = "";
    u.searchParams.set("embed", location.origin);
    return u.href;
  }

  function frame(o, inline, done) {
    var f = document.createElement("iframe");
    f.src = pageUrl(o);
    f.title = "Malipo checkout";
    f.setAttribute("data-malipo", inline ? "inline" : "modal");
    f.style.cssText = "border:0;width:100%;display:block;background:#fff;" +
      (inline ? "height:560px;" : "height:100%;");
    var finished = false;
    function onMessage(e) {
      if (e.origin !== ORIGIN || e.source !== f.contentWindow) return;
      var m = e.data;
      if (!m || m.source !== "malipo" || typeof m.type !== "string") return;
      if (m.type === "resize" && inline && m.height > 0) {
        f.style.height = Math.min(m.height, 4000) + "px";
      } else if (m.type === "success" && !finished) {
        finished = true;
        if (o.onSuccess) o.onSuccess({ sessionId: m.sessionId });
      } else if (m.type === "cancel") {
        if (o.onCancel) o.onCancel({ sessionId: m.sessionId });
        done();
      }
    }
    window.addEventListener("message", onMessage);
    f.addEventListener("load", function () {
      f.contentWindow.postMessage({ source: "malipo-embed", type: "hello" }, ORIGIN);
    });
    return { el: f, stop: function () { window.removeEventListener("message", onMessage); } };
  }

  function open(o) {
    o = o || {};
    var shade = document.createElement("div");
    var box = document.createElement("div");
    var x = document.createElement("button");
    var closed = false;
    function close() {
      if (closed) return;
      closed = true;
      fr.stop();
      if (shade.parentNode) shade.parentNode.removeChild(shade);
      document.removeEventListener("keydown", onKey);
      if (o.onClose) o.onClose();
    }
    function onKey(e) { if (e.key === "Escape") close(); }
    var fr = frame(o, false, close);
    var phone = window.matchMedia && window.matchMedia("(max-width: 600px)").matches;
    shade.setAttribute("data-malipo-modal", "");
    shade.style.cssText = "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.55);" +
      "display:flex;align-items:center;justify-content:center;";
    box.style.cssText = "position:relative;background:#fff;overflow:hidden;" + (phone
      ? "width:100%;height:100%;"
      : "width:420px;max-width:100%;height:min(640px,100%);border-radius:12px;");
    x.type = "button";
    x.textContent = "\u00d7";
    x.setAttribute("aria-label", "Close checkout");
    x.style.cssText = "position:absolute;top:4px;right:6px;z-index:1;border:0;background:none;" +
      "font-size:28px;line-height:1;cursor:pointer;color:#333;padding:8px;";
    x.addEventListener("click", close);
    document.addEventListener("keydown", onKey);
    box.appendChild(x);
    box.appendChild(fr.el);
    shade.appendChild(box);
    document.body.appendChild(shade);
    return { close: close };
  }

  function mount(el, o) {
    o = o || {};
    if (typeof el === "string") el = document.querySelector(el);
    if (!el) throw new Error("Malipo: no element to mount in");
    var fr = frame(o, true, function () {});
    el.appendChild(fr.el);
    return {
      unmount: function () {
        fr.stop();
        if (fr.el.parentNode) fr.el.parentNode.removeChild(fr.el);
      }
    };
  }

  window.Malipo = { open: open, mount: mount, origin: ORIGIN };
})();
