// Bar charts as SVG built element by element (no inline style, no library):
// one bar per group or histogram bucket; a suppressed cell is drawn as a
// dashed outline with no height of its own, so the chart never shows what
// the table withholds.

const NS = "http://www.w3.org/2000/svg";
let serial = 0;

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// barChart draws bars for items [{label, value (number or null: hidden)}]
// with a title (also the chart's accessible name) and a word for hidden.
export function barChart(title, items, hiddenWord) {
  const id = "chart-title-" + ++serial;
  const longest = Math.max(1, ...items.map((x) => String(x.label).length));
  const barW = Math.max(44, Math.min(120, longest * 8));
  const gap = 18;
  const left = 64;
  const top = 16;
  const plotH = 180;
  const width = Math.max(320, left + items.length * (barW + gap) + gap);
  const height = top + plotH + 64;
  const svg = el("svg", { class: "chart", role: "img", "aria-labelledby": id, viewBox: `0 0 ${width} ${height}`, width, height });
  svg.appendChild(el("title", { id }, title));
  const max = Math.max(1, ...items.map((x) => (typeof x.value === "number" ? x.value : 0)));
  svg.appendChild(el("line", { class: "axis", x1: left, y1: top + plotH, x2: width - gap / 2, y2: top + plotH }));
  svg.appendChild(el("line", { class: "axis", x1: left, y1: top, x2: left, y2: top + plotH }));
  svg.appendChild(el("text", { class: "tick", x: left - 6, y: top + 4, "text-anchor": "end" }, fmt(max)));
  svg.appendChild(el("text", { class: "tick", x: left - 6, y: top + plotH + 4, "text-anchor": "end" }, "0"));
  items.forEach((item, i) => {
    const x = left + gap + i * (barW + gap);
    const g = el("g", { class: "bar-group" });
    const label = item.label + ": " + (typeof item.value === "number" ? fmt(item.value) : hiddenWord);
    g.appendChild(el("title", {}, label));
    if (typeof item.value === "number") {
      const h = Math.max(1, Math.round((item.value / max) * plotH));
      g.appendChild(el("rect", { class: "bar", x, y: top + plotH - h, width: barW, height: h }));
      g.appendChild(el("text", { class: "value", x: x + barW / 2, y: top + plotH - h - 4, "text-anchor": "middle" }, fmt(item.value)));
    } else {
      g.appendChild(el("rect", { class: "bar suppressed", x, y: top + plotH - 24, width: barW, height: 24 }));
      g.appendChild(el("text", { class: "value", x: x + barW / 2, y: top + plotH - 28, "text-anchor": "middle" }, hiddenWord));
    }
    g.appendChild(el("text", { class: "label", x: x + barW / 2, y: top + plotH + 18, "text-anchor": "middle" }, item.label));
    svg.appendChild(g);
  });
  return svg;
}

function fmt(v) {
  return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(2);
}
