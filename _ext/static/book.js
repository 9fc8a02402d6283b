// Display equations on narrow screens (phones): shrink one that is wider than the text column to fit,
// down to 60 % of its size (inline math wider than its paragraph too); wider ones keep their scroll bar (and fail tests/test_site.py at 390 px).
// On wide screens nothing is scaled: a display too wide at 1300 px must be broken with `aligned`.
// Tables on narrow screens: one wider than the column is shown as stacked rows, each cell labelled
// with its column's header, instead of scrolling sideways.
(function () {
  const NARROW = window.matchMedia("(max-width: 700px)");
  function stackTables() {
    document.querySelectorAll("article table").forEach(function (t) {
      t.classList.remove("book-stacked");
      if (!NARROW.matches) return;
      const box = t.closest(".pst-scrollable-table-container") || t.parentElement;
      if (t.offsetWidth <= box.clientWidth + 1) return;
      const heads = Array.from(t.querySelectorAll("thead th")).map(function (h) { return h.innerText.trim(); });
      t.querySelectorAll("tbody tr").forEach(function (row) {
        Array.from(row.children).forEach(function (cell, i) {
          if (heads[i]) cell.setAttribute("data-label", heads[i]);
        });
      });
      t.classList.add("book-stacked");
    });
  }
  // Inline code (in text and table cells) may break after a dot, a comma or an opening parenthesis
  // (<wbr>, which copying ignores), so that `cssl.concentration.augmented_distance` wraps at its dots.
  function breakableCode() {
    document.querySelectorAll("article code.literal, article td code, article th code").forEach(function (code) {
      const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
      const texts = [];
      while (walker.nextNode()) texts.push(walker.currentNode);
      texts.forEach(function (node) {
        const parts = node.nodeValue.split(/(?<=[.,(])/);
        if (parts.length < 2) return;
        const frag = document.createDocumentFragment();
        parts.forEach(function (part, i) {
          if (i) frag.appendChild(document.createElement("wbr"));
          frag.appendChild(document.createTextNode(part));
        });
        node.replaceWith(frag);
      });
    });
  }
  document.addEventListener("DOMContentLoaded", breakableCode);
  function fit() {
    stackTables();
    document.querySelectorAll('div.math mjx-container[display="true"]').forEach(function (m) {
      m.style.fontSize = "";
      if (!NARROW.matches) return;
      const size = parseFloat(getComputedStyle(m).fontSize);
      let scale = 1;
      for (let i = 0; i < 3 && m.scrollWidth > m.clientWidth && scale > 0.6; i++) {
        scale = Math.max(0.6, scale * (m.clientWidth - 2) / m.scrollWidth);
        m.style.fontSize = (size * scale).toFixed(2) + "px";
      }
    });
    // Inline math wider than its paragraph (it cannot break): shrink it the same way.
    document.querySelectorAll('article mjx-container:not([display="true"])').forEach(function (m) {
      m.style.fontSize = "";
      if (!NARROW.matches) return;
      const box = m.parentElement.closest("p, li, dd, dt, td, th, div");
      if (!box) return;
      const style = getComputedStyle(box);
      const avail = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const wide = m.getBoundingClientRect().width;
      if (wide > avail) {
        const size = parseFloat(getComputedStyle(m).fontSize);
        m.style.fontSize = (size * Math.max(0.6, (avail - 2) / wide)).toFixed(2) + "px";
      }
    });
  }
  function whenTypeset() {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(fit);
    } else {
      setTimeout(whenTypeset, 50);
    }
  }
  window.addEventListener("load", whenTypeset);
  NARROW.addEventListener("change", fit);
  window.bookFitDisplays = fit;  // the tests call it after resizing the window
})();

// The claims ledger: buttons above its tables show only the claims of one verdict. Each row's third
// column starts with the verdict cssl.claims computed; a chapter whose table has no row left is hidden
// with its title.
(function () {
  const VERDICTS = ["fails as printed", "true but vacuous", "open", "holds", "reproduces", "reversed",
                    "inconclusive", "regression test"];
  function verdictOf(row) {
    const cell = row.children[2];
    const text = cell ? cell.innerText.trim().toLowerCase() : "";
    return VERDICTS.find(function (v) { return text.startsWith(v); }) || "";
  }
  function setUp() {
    const bar = document.getElementById("ledger-filter");
    if (!bar) return;
    const section = bar.closest("section") || document;
    const tables = Array.from(section.querySelectorAll("table"));
    const rows = tables.flatMap(function (t) { return Array.from(t.querySelectorAll("tbody tr")); });
    const counts = {};
    rows.forEach(function (r) { const v = verdictOf(r); r.dataset.verdict = v; counts[v] = (counts[v] || 0) + 1; });
    function show(verdict) {
      rows.forEach(function (r) { r.hidden = Boolean(verdict) && r.dataset.verdict !== verdict; });
      tables.forEach(function (t) {
        const empty = !t.querySelector("tbody tr:not([hidden])");
        const box = t.closest(".pst-scrollable-table-container") || t;
        box.hidden = empty;
        const title = box.previousElementSibling;
        if (title && title.tagName === "P") title.hidden = empty;
      });
      bar.querySelectorAll("button").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b.dataset.verdict === verdict));
      });
    }
    [""].concat(VERDICTS.filter(function (v) { return counts[v]; })).forEach(function (v) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.verdict = v;
      b.textContent = (v || "all") + " (" + (v ? counts[v] : rows.length) + ")";
      b.addEventListener("click", function () { show(v); });
      bar.appendChild(b);
    });
    show("");
  }
  document.addEventListener("DOMContentLoaded", setUp);
})();

// Verdict tables (each chapter's last cell and the ledger): the verdict cell of a row gets a class, so
// that a statement false as printed or a reversed experiment stands out; the chapter's printed
// verdict lines (what nbval compares) are hidden where the same cell shows them as a table.
(function () {
  const CLASSES = {"fails as printed": "fails", "reversed": "fails", "true but vacuous": "vacuous",
                   "open": "open", "inconclusive": "open", "holds": "holds", "reproduces": "holds",
                   "regression test": "open"};
  function mark() {
    document.querySelectorAll("article table tbody td").forEach(function (td) {
      const text = td.innerText.trim().toLowerCase();
      const verdict = Object.keys(CLASSES).find(function (v) { return text.startsWith(v); });
      if (verdict && td.cellIndex === 2) td.classList.add("verdict", "verdict-" + CLASSES[verdict]);
    });
    document.querySelectorAll("article .cell_output").forEach(function (out) {
      if (!out.querySelector("table")) return;
      out.querySelectorAll(".output.stream").forEach(function (s) {
        if (/^Chapter \S+: \d+ claim\(s\)/.test(s.innerText.trim())) s.classList.add("verdict-lines");
      });
    });
  }
  document.addEventListener("DOMContentLoaded", mark);
})();
