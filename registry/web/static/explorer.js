// The lineage explorer: draws the graph the server laid out (the page's JSON data
// block, what /lineage/graph answers) with cytoscape.js, opens crowded columns'
// groups, and adds a node's neighbours (/lineage/expand). Another node, direction,
// depth or time is the form's, a new page. Names are never parsed as markup:
// cytoscape draws labels on a canvas and this script sets only text.
"use strict";
(function () {
  const container = document.getElementById("graph");
  const source = document.getElementById("graph-data");
  if (!container || !source || typeof window.cytoscape !== "function") {
    return;
  }
  const COLUMN_GAP = 240;
  const ROW_GAP = 56;
  const status = document.getElementById("graph-status");
  const tools = document.getElementById("graph-tools");
  let state = null;
  let cy = null;
  let asOf = container.dataset.asOf || "";

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function load(data) {
    const nodes = new Map();
    for (const node of data.answer.nodes) {
      nodes.set(node.id, node);
    }
    const positions = new Map(Object.entries(data.layout.positions));
    const columns = new Map(Object.entries(data.layout.columns));
    const groups = new Map();
    const groupOf = new Map();
    for (const group of data.layout.groups) {
      groups.set(group.id, group);
      for (const member of group.members) {
        groupOf.set(member, group.id);
      }
    }
    const edges = new Map();
    for (const edge of data.answer.edges) {
      edges.set(edge.src + "\u0000" + edge.dst + "\u0000" + edge.kind, edge);
    }
    return { root: data.answer.root, nodes, positions, columns, groups, groupOf, edges };
  }

  // The elements to draw: every node outside a closed group, the closed groups, and the
  // edges, an edge to a member of a closed group drawn to the group (once).
  function elements() {
    const out = [];
    const shownAs = new Map();
    for (const [id, node] of state.nodes) {
      const group = state.groupOf.get(id);
      if (group !== undefined) {
        shownAs.set(id, group);
        continue;
      }
      shownAs.set(id, id);
      const [x, y] = state.positions.get(id) || [0, 0];
      out.push({
        group: "nodes",
        data: { id, label: node.label || id, kind: node.kind, root: id === state.root ? 1 : 0 },
        position: { x, y },
      });
    }
    for (const group of state.groups.values()) {
      out.push({
        group: "nodes",
        data: { id: group.id, label: group.label, kind: "group", members: group.members.length },
        position: { x: group.x, y: group.y },
      });
    }
    const drawn = new Set();
    for (const edge of state.edges.values()) {
      const src = shownAs.get(edge.src);
      const dst = shownAs.get(edge.dst);
      if (src === undefined || dst === undefined || src === dst) {
        continue;
      }
      const key = src + "\u0000" + dst;
      if (drawn.has(key)) {
        continue;
      }
      drawn.add(key);
      out.push({ group: "edges", data: { id: "edge\u0000" + key, source: src, target: dst } });
    }
    return out;
  }

  const style = [
    { selector: "node", style: {
      "label": "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4,
      "width": 22, "height": 22, "background-color": "#57606a", "color": "#1b1f24",
      "text-max-width": 200, "text-wrap": "ellipsis", "min-zoomed-font-size": 7 } },
    { selector: "node[kind = 'dataset']", style: { "shape": "round-rectangle", "background-color": "#1f6feb" } },
    { selector: "node[kind = 'run']", style: { "shape": "ellipse", "background-color": "#8250df" } },
    { selector: "node[kind = 'model']", style: { "shape": "diamond", "background-color": "#1a7f37" } },
    { selector: "node[kind = 'deployment']", style: { "shape": "hexagon", "background-color": "#bc4c00" } },
    { selector: "node[kind = 'group']", style: {
      "shape": "round-rectangle", "width": 150, "height": 30, "background-color": "#f6f8fa",
      "border-width": 2, "border-color": "#1f4e79", "text-valign": "center",
      "text-margin-y": 0, "font-weight": "bold" } },
    { selector: "node[root = 1]", style: { "border-width": 4, "border-color": "#c25e00" } },
    { selector: "node.focused", style: {
      "overlay-color": "#ffbf47", "overlay-opacity": 0.55, "overlay-padding": 9 } },
    { selector: "edge", style: {
      "width": 1.2, "line-color": "#8c959f", "target-arrow-color": "#8c959f",
      "target-arrow-shape": "triangle", "curve-style": "straight", "arrow-scale": 0.8 } },
  ];

  function draw() {
    const started = performance.now();
    cy.batch(function () {
      cy.elements().remove();
      cy.add(elements());
    });
    cy.fit(undefined, 30);
    container.dataset.drawnNodes = String(cy.nodes().length);
    return performance.now() - started;
  }

  // Bring the drawing in line with the state, touching only what changed: removed
  // elements go (a removed node takes its edges), missing ones are added. A full
  // redraw of thousands of elements would cost a visible pause.
  function update(removed) {
    const pan = cy.pan();
    const zoom = cy.zoom();
    cy.batch(function () {
      for (const id of removed) {
        cy.getElementById(id).remove();
      }
      cy.add(elements().filter((e) => cy.getElementById(e.data.id).empty()));
    });
    cy.viewport({ zoom, pan });
    container.dataset.drawnNodes = String(cy.nodes().length);
  }

  function openGroup(id) {
    const group = state.groups.get(id);
    if (!group) {
      return;
    }
    state.groups.delete(id);
    for (const member of group.members) {
      state.groupOf.delete(member);
    }
    update([id]);
    say("Opened " + group.label + ".");
  }

  async function expand(id) {
    say("Adding the neighbours of " + id + "…");
    const query = new URLSearchParams({ node: id });
    if (asOf) {
      query.set("as_of", asOf);
    }
    let answer;
    try {
      answer = await fetch("/lineage/expand?" + query.toString(), {
        credentials: "same-origin", headers: { "Accept": "application/json" }, redirect: "manual",
      });
    } catch (error) {
      say("The server could not be reached.");
      return;
    }
    if (answer.status !== 200) {
      say("The neighbours could not be added (" + answer.status + "): reload the page.");
      return;
    }
    const data = await answer.json();
    const [x0, y0] = state.positions.get(id) || [0, 0];
    const column = Number(state.columns.get(id) || 0);
    let added = 0;
    const below = new Map();
    for (const node of data.answer.nodes) {
      if (state.nodes.has(node.id)) {
        continue;
      }
      // A new node goes one column right of what it comes from, one left of what it
      // feeds, below what that column holds.
      const feeds = data.answer.edges.some((e) => e.src === node.id && e.dst === id);
      const side = feeds ? -1 : 1;
      const col = column + side;
      const lowest = below.has(col) ? below.get(col) : lowestIn(col, y0);
      below.set(col, lowest + ROW_GAP);
      state.nodes.set(node.id, node);
      state.positions.set(node.id, [x0 + side * COLUMN_GAP, lowest + ROW_GAP]);
      state.columns.set(node.id, col);
      added += 1;
    }
    for (const edge of data.answer.edges) {
      state.edges.set(edge.src + "\u0000" + edge.dst + "\u0000" + edge.kind, edge);
    }
    update([]);
    say(added
      ? "Added " + added + " neighbour" + (added === 1 ? "" : "s") + " of " + id + "."
      : id + " has no neighbours beyond those shown.");
  }

  function lowestIn(col, fallback) {
    let lowest = -Infinity;
    for (const [id, c] of state.columns) {
      if (Number(c) === col && !state.groupOf.has(id)) {
        lowest = Math.max(lowest, state.positions.get(id)[1]);
      }
    }
    return lowest === -Infinity ? fallback - ROW_GAP : lowest;
  }

  function start(data) {
    state = load(data);
    cy = window.cytoscape({
      container,
      style,
      layout: { name: "preset" },
      minZoom: 0.02,
      maxZoom: 4,
      boxSelectionEnabled: false,
      autoungrabify: true,
      textureOnViewport: true,
      hideEdgesOnViewport: true,
      motionBlur: false,
    });
    cy.one("render", function () {
      performance.mark("explorer-first-paint");
      container.dataset.painted = "1";
    });
    draw();
    cy.on("tap", "node", (event) => activate(event.target.id()));
    cy.on("cxttap taphold", "node", function (event) {
      const id = event.target.id();
      if (!state.groups.has(id)) {
        expand(id);
      }
    });
    window.mlledgerExplorer = { cy, expand, openGroup, focused: () => focused };
    if (tools) {
      tools.hidden = false;
    }
    keyboard();
  }

  // A node's page, or a group opened in place.
  function activate(id) {
    if (state.groups.has(id)) {
      const first = state.groups.get(id).members[0];
      openGroup(id);
      if (focused === id) {
        focus(first);
      }
    } else {
      window.location.assign("/node?id=" + encodeURIComponent(id));
    }
  }

  // The keyboard: the graph takes the focus (Tab); the arrow keys move to the nearest
  // node that way, Enter opens the node's page (or the group), E adds the node's
  // neighbours, + and - zoom, 0 fits. The node with the focus is outlined, brought into
  // view and named in the status line (read out by screen readers).
  let focused = null;

  function focus(id) {
    if (focused !== null) {
      cy.getElementById(focused).removeClass("focused");
    }
    const node = cy.getElementById(id);
    focused = node.empty() ? null : id;
    container.dataset.focused = focused || "";
    if (focused === null) {
      return;
    }
    node.addClass("focused");
    const at = node.position();
    const seen = cy.extent();
    if (at.x < seen.x1 || at.x > seen.x2 || at.y < seen.y1 || at.y > seen.y2) {
      cy.center(node);
    }
    const kind = node.data("kind");
    say(kind === "group"
      ? node.data("label") + ": Enter opens the group."
      : kind + " " + node.data("label") + ": Enter opens its page, E adds its neighbours.");
  }

  function nearest(dx, dy) {
    const from = cy.getElementById(focused).position();
    let best = null;
    let bestScore = Infinity;
    cy.nodes().forEach(function (node) {
      const at = node.position();
      const along = (at.x - from.x) * dx + (at.y - from.y) * dy;
      if (node.id() === focused || along <= 1) {
        return;
      }
      const across = Math.abs((at.x - from.x) * dy) + Math.abs((at.y - from.y) * dx);
      const score = along + 3 * across;
      if (score < bestScore) {
        bestScore = score;
        best = node.id();
      }
    });
    return best;
  }

  const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  function keyboard() {
    container.tabIndex = 0;
    container.setAttribute("role", "application");
    container.setAttribute("aria-label", (container.getAttribute("aria-label") || "The lineage graph")
      + ". Arrow keys move between nodes, Enter opens one, E adds its neighbours.");
    container.addEventListener("focus", function () {
      if (focused === null || cy.getElementById(focused).empty()) {
        focus(cy.getElementById(state.root).empty() ? cy.nodes()[0]?.id() : state.root);
      }
    });
    container.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey || focused === null) {
        return;
      }
      const move = MOVES[event.key];
      if (move) {
        const next = nearest(move[0], move[1]);
        if (next !== null) {
          focus(next);
        }
      } else if (event.key === "Enter") {
        activate(focused);
      } else if (event.key === "e" || event.key === "E") {
        if (!state.groups.has(focused)) {
          expand(focused);
        }
      } else if (event.key === "+" || event.key === "=") {
        zoomBy(1.4);
      } else if (event.key === "-") {
        zoomBy(1 / 1.4);
      } else if (event.key === "0") {
        cy.fit(undefined, 30);
      } else {
        return;
      }
      event.preventDefault();
    });
  }

  function zoomBy(factor) {
    cy.zoom({
      level: cy.zoom() * factor,
      renderedPosition: { x: container.clientWidth / 2, y: container.clientHeight / 2 },
    });
  }

  document.getElementById("zoom-in")?.addEventListener("click", () => zoomBy(1.4));
  document.getElementById("zoom-out")?.addEventListener("click", () => zoomBy(1 / 1.4));
  document.getElementById("zoom-fit")?.addEventListener("click", () => cy.fit(undefined, 30));

  let data;
  try {
    data = JSON.parse(source.textContent || "null");
  } catch (error) {
    say("The graph's data could not be read: reload the page.");
    return;
  }
  if (data && data.answer) {
    start(data);
  }
}());
