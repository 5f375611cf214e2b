// The home page's live feed: asks the server for the events after the newest shown,
// every few seconds, and puts the rows it answers on top. The rows come from the
// server's own template (every value escaped there); nothing else is fetched.
"use strict";
(function () {
  const table = document.getElementById("feed");
  const status = document.getElementById("feed-status");
  if (!table || !status) {
    return;
  }
  const body = table.tBodies[0];
  const every = Math.max(1000, Number(table.dataset.interval) || 10000);
  const kept = 50;
  let after = Number(table.dataset.after);
  let timer = null;

  function say(text) {
    status.textContent = text;
  }

  function add(html) {
    const parsed = new DOMParser().parseFromString(
      "<table><tbody>" + html + "</tbody></table>", "text/html");
    const rows = Array.from(parsed.querySelectorAll("tbody > tr[data-position]"));
    if (rows.length === 0) {
      return 0;
    }
    const empty = body.querySelector("tr.empty");
    if (empty) {
      empty.remove();
    }
    // Newest first in the answer: the last of them goes in first.
    for (const row of rows.reverse()) {
      const copy = document.importNode(row, true);
      copy.classList.add("fresh");
      body.insertBefore(copy, body.firstChild);
      after = Math.max(after, Number(copy.dataset.position));
    }
    while (body.rows.length > kept) {
      body.deleteRow(body.rows.length - 1);
    }
    return rows.length;
  }

  async function poll() {
    if (document.hidden) {
      return; // a tab out of sight asks nothing: the trail records every ask
    }
    let answer;
    try {
      answer = await fetch("/feed?after=" + encodeURIComponent(String(after)), {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Accept": "text/html" },
        redirect: "manual",
      });
    } catch (error) {
      say("The server could not be reached; trying again.");
      return;
    }
    if (answer.status !== 200) {
      window.clearInterval(timer);
      say("The feed stopped: the session ended or was refused. Reload the page to sign in.");
      return;
    }
    const added = add(await answer.text());
    const at = new Date().toISOString().slice(11, 19);
    say(added
      ? added + " new event" + (added === 1 ? "" : "s") + " at " + at + " UTC."
      : "Up to date at " + at + " UTC.");
  }

  timer = window.setInterval(poll, every);
}());
