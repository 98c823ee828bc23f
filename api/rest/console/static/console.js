// Draws the console's charts with uPlot from the JSON each page embeds next to a table of the
// same numbers (the page reads without this script). Events are vertical lines on the time axis.
(function () {
  "use strict";
  var PALETTE = ["#0b4f9c", "#c2410c", "#0b6b2e", "#6a1b9a", "#a4161a", "#4d4d4d", "#00838f"];
  var MARKS = { decision: "#6a1b9a", stage: "#0b4f9c", verdict: "#b45309", config: "#6b6b6b", insight: "#a4161a" };

  function markers(list) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
          ctx.save();
          ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
          list.forEach(function (m) {
            var x = Math.round(u.valToPos(m.t, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) { return; }
            ctx.strokeStyle = MARKS[m.kind] || "#333";
            ctx.setLineDash(m.kind === "config" ? [4, 4] : []);
            ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
          });
          ctx.restore();
        }]
      }
    };
  }

  function draw(script) {
    var spec = JSON.parse(script.textContent);
    var target = document.getElementById(spec.id);
    if (!target || target.dataset.drawn || typeof uPlot === "undefined") { return; }
    target.dataset.drawn = "1";
    var width = Math.max(320, Math.min(target.clientWidth || 640, 900));
    var series = [{ label: "time (UTC)" }].concat(spec.series.map(function (s, i) {
      return { label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: false,
               points: { show: spec.x.length < 40 } };
    }));
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    new uPlot({ width: width, height: 220, series: series, plugins: [markers(spec.markers)],
                axes: [{}, { label: spec.unit, size: 70 }], scales: { x: { time: true } },
                tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); } },
              data, target);
  }

  function drawAll(root) {
    (root || document).querySelectorAll("script[data-chart]").forEach(draw);
  }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target); });
})();
