// saedb's pages: zoom, pan and search on maps. Hand-written, no build step, no dependencies.
(function () {
  "use strict";
  function setupMap(svg) {
    var vb = svg.viewBox.baseVal;
    var drag = null;
    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = svg.getBoundingClientRect();
      var px = vb.x + (e.clientX - r.left) / r.width * vb.width;
      var py = vb.y + (e.clientY - r.top) / r.height * vb.height;
      var s = e.deltaY < 0 ? 0.8 : 1.25;
      vb.x = px - (px - vb.x) * s; vb.y = py - (py - vb.y) * s;
      vb.width *= s; vb.height *= s;
    }, { passive: false });
    svg.addEventListener("pointerdown", function (e) {
      if (e.target.closest && e.target.closest("a")) { return; }
      drag = { x: e.clientX, y: e.clientY, vx: vb.x, vy: vb.y };
      svg.setPointerCapture(e.pointerId);
    });
    svg.addEventListener("pointermove", function (e) {
      if (!drag) { return; }
      var r = svg.getBoundingClientRect();
      vb.x = drag.vx - (e.clientX - drag.x) / r.width * vb.width;
      vb.y = drag.vy - (e.clientY - drag.y) / r.height * vb.height;
    });
    svg.addEventListener("pointerup", function () { drag = null; });
    var reset = document.getElementById("map-reset");
    var home = { x: vb.x, y: vb.y, w: vb.width, h: vb.height };
    if (reset) {
      reset.addEventListener("click", function () {
        vb.x = home.x; vb.y = home.y; vb.width = home.w; vb.height = home.h;
      });
    }
    var box = document.getElementById("map-search");
    var count = document.getElementById("map-count");
    if (box) {
      box.addEventListener("input", function () {
        var q = box.value.trim().toLowerCase();
        var n = 0;
        svg.querySelectorAll(".pt").forEach(function (c) {
          var hit = q !== "" && (c.getAttribute("data-name") || "").toLowerCase().indexOf(q) >= 0;
          c.classList.toggle("hl", hit);
          c.classList.toggle("dim", q !== "" && !hit);
          if (hit) { n += 1; }
        });
        if (count) { count.textContent = q === "" ? "" : n + " match" + (n === 1 ? "" : "es"); }
      });
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("svg.map").forEach(setupMap);
  });
})();
