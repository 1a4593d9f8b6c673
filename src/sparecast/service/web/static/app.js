/* sparecast web app: draws the charts of a page from its JSON blocks with uPlot (vendored). */
(function () {
  "use strict";
  function data(id) {
    var el = document.getElementById(id + "-data");
    return el ? JSON.parse(el.textContent) : null;
  }
  function width(el) { return Math.max(320, Math.min(el.clientWidth || 640, 900)); }
  var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 60] }) : null;
  var ts = function (d) { return Date.parse(d + "T00:00:00Z") / 1000; };

  function categoryAxis(labels) {
    return {
      values: function (u, splits) {
        return splits.map(function (v) { return labels[Math.round(v)] !== undefined && Math.abs(v - Math.round(v)) < 1e-9 ? labels[Math.round(v)] : ""; });
      },
      splits: function () { return labels.map(function (_, i) { return i; }); },
      rotate: labels.length > 6 ? -30 : 0,
      size: labels.length > 6 ? 110 : 40,
    };
  }

  function barChart(el, labels, series, title) {
    var xs = labels.map(function (_, i) { return i; });
    var opts = {
      title: title || "", width: width(el), height: 260,
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
      axes: [categoryAxis(labels), {}],
      series: [{}].concat(series.map(function (s, k) {
        return { label: s.label, fill: s.color, stroke: s.color, paths: bars, points: { show: false } };
      })),
    };
    return new uPlot(opts, [xs].concat(series.map(function (s) { return s.values; })), el);
  }

  var draw = {
    bars: function (el) {
      var d = data(el.id) || [];
      barChart(el, d.map(function (r) { return r.name; }), [{ label: "items", values: d.map(function (r) { return r.count; }), color: "#4e79a7" }]);
    },
    accuracy: function (el) {
      var d = data(el.id);
      if (!d || !d.labels.length) return;
      barChart(el, d.labels, [
        { label: "RMSSE", values: d.rmsse, color: "#4e79a7" },
        { label: "MASE", values: d.mase, color: "#f28e2b" },
      ]);
    },
    monitor: function (el) {
      var d = data(el.id);
      if (!d || !d.x.length) return;
      var fmtv = function (u, v) { return v == null ? "—" : d.pct ? (100 * v).toFixed(1) + "%" : v.toFixed(3); };
      var series = [{}, { label: d.label, stroke: "#e15759", width: 2, value: fmtv },
        { label: "expected", stroke: "#4e79a7", width: 1, dash: [6, 4], value: fmtv },
        { label: "band low", stroke: "rgba(78,121,167,0.35)", width: 1, value: fmtv },
        { label: "alert limit", stroke: "rgba(78,121,167,0.35)", width: 1, value: fmtv },
        { label: "alert fired", stroke: "#b30000", fill: "#b30000", paths: function () { return null; },
          points: { show: true, size: 12, stroke: "#b30000", fill: "#b30000" }, value: fmtv }];
      new uPlot({
        width: width(el), height: 280,
        scales: { x: { time: true } },
        tzDate: function (t) { return uPlot.tzDate(new Date(t * 1e3), "Etc/UTC"); },
        axes: [{  // one tick per whole number of days, labelled with the period's date
          incrs: [1, 2, 7, 14, 28, 91, 182, 364].map(function (k) { return k * 86400; }),
          values: function (u, splits) { return splits.map(function (v) { return new Date(v * 1e3).toISOString().slice(0, 10); }); },
        }, { values: function (u, vals) { return vals.map(function (v) { return fmtv(u, v); }); }, size: 60 }],
        series: series,
        bands: [{ series: [4, 3], fill: "rgba(78,121,167,0.15)" }],
      }, [d.x.map(ts), d.value, d.expected, d.low, d.high, d.alerts], el);
    },
    hist: function (el) {
      var d = data(el.id);
      if (!d || !d.x.length) return;
      new uPlot({
        width: width(el), height: 240,
        scales: { x: { time: false } },
        axes: [{ label: "days" }, { label: "items" }],
        series: [{}, { label: "items", fill: "#59a14f", stroke: "#59a14f", paths: bars, points: { show: false } }],
      }, [d.x, d.y], el);
    },
    forecast: function (el) {
      var d = data(el.id);
      if (!d) return;
      var hx = (d.history.x || []).map(ts), fx = d.forecast ? d.forecast.x.map(ts) : [];
      var xs = hx.concat(fx);
      var n = xs.length, nh = hx.length;
      function pad(vals, before) {
        var out = new Array(n).fill(null);
        for (var i = 0; i < vals.length; i++) out[before + i] = vals[i];
        return out;
      }
      var series = [{}, { label: "demand", stroke: "#333", width: 1, points: { show: false } }];
      var cols = [xs, pad(d.history.y || [], 0)];
      if (d.forecast) {
        series.push({ label: "forecast", stroke: "#e15759", width: 2 });
        cols.push(pad(d.forecast.y, nh));
        var keys = Object.keys(d.forecast.quantiles || {});
        keys.forEach(function (k, i) {
          var shade = 0.25 + 0.6 * i / Math.max(1, keys.length);
          series.push({ label: k, stroke: "rgba(78,121,167," + shade.toFixed(2) + ")", width: 1, dash: [4, 3] });
          cols.push(pad(d.forecast.quantiles[k], nh));
        });
      }
      var opts = { width: width(el), height: 300, series: series, scales: { x: { time: true } } };
      if (d.forecast && Object.keys(d.forecast.quantiles || {}).length > 1) {
        opts.bands = [{ series: [series.length - 1, 3], fill: "rgba(78,121,167,0.12)" }];
      }
      new uPlot(opts, cols, el);
      if (d.ltd) draw.ltd(document.getElementById("chart-ltd"), d.ltd);
    },
    ltd: function (el, d) {
      if (!el || !d) return;
      var marks = [
        { x: d.mean, color: "#666", label: "mean", dy: 30 },
        { x: d.reorder_point, color: "#e15759", label: "reorder point", dy: 14 },
      ];
      new uPlot({
        width: width(el), height: 260,
        scales: { x: { time: false } },
        axes: [{ label: "units over the lead time" }, { label: "probability" }],
        series: [{ label: "units" }, { label: d.bin_width > 1 ? "P(bin of " + d.bin_width + ")" : "P(demand)", fill: "#76b7b2", stroke: "#4e9a94", paths: bars, points: { show: false } }],
        hooks: {
          draw: [function (u) {
            var ctx = u.ctx;
            ctx.save();
            if (d.mean != null && d.reorder_point != null) {  // safety stock: mean .. reorder point
              var a = u.valToPos(d.mean, "x", true), b = u.valToPos(d.reorder_point, "x", true);
              ctx.fillStyle = "rgba(237,201,72,0.25)";
              ctx.fillRect(Math.min(a, b), u.bbox.top, Math.abs(b - a), u.bbox.height);
            }
            marks.forEach(function (m) {
              if (m.x == null) return;
              var x = u.valToPos(m.x, "x", true);
              ctx.strokeStyle = m.color; ctx.lineWidth = 2;
              ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
              ctx.fillStyle = m.color; ctx.font = "12px sans-serif";
              ctx.fillText(m.label, x + 4, u.bbox.top + m.dy * (window.devicePixelRatio || 1));
            });
            ctx.restore();
          }],
        },
      }, [d.x, d.p], el);
    },
  };

  document.querySelectorAll(".chart[data-kind]").forEach(function (el) {
    var kind = el.getAttribute("data-kind");
    if (kind !== "ltd" && draw[kind]) draw[kind](el);
  });
  document.querySelectorAll("form.decide button.reject").forEach(function (b) {
    b.addEventListener("click", function (ev) {
      var reason = b.form.querySelector("input[name=reason]");
      if (reason && !reason.value.trim()) { ev.preventDefault(); reason.focus(); reason.placeholder = "reason needed"; }
    });
  });
})();
