// The Hub's own script: small conveniences on top of htmx (no inline handlers, CSP-safe).
(function () {
  "use strict";
  // "/" focuses the search box, as in most web apps; Escape leaves it.
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    var box = document.getElementById("q");
    if (event.key === "/" && !typing && box) {
      event.preventDefault();
      box.focus();
      box.select();
    } else if (event.key === "Escape" && target === box) {
      box.blur();
    }
  });
  // Copy buttons: <button data-copy="#id">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = "Copied";
    }, function () {
      button.textContent = "Select and copy";
    });
  });
  // Confirm dangerous actions: <form data-confirm="Revoke this key?">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // The pipeline board: drag a deal card to another stage. The move is saved through the
  // Hub (which asks the CRM API); the card stays only when the API accepted it, otherwise
  // it goes back and the API's reason is shown. The stage list on each card does the same
  // without a mouse.
  var drag = null;
  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (error) {
      return "";
    }
  }
  function boardError(message) {
    var box = document.getElementById("board-error");
    if (!box) return;
    box.textContent = message || "";
    box.hidden = !message;
  }
  function columnOf(node) {
    return node && node.closest ? node.closest(".board-col") : null;
  }
  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest ? event.target.closest(".deal-card[data-move-url]") : null;
    if (!card) return;
    drag = { card: card, list: card.parentNode, next: card.nextSibling };
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.getAttribute("data-deal-id"));
    card.classList.add("dragging");
  });
  document.addEventListener("dragend", function () {
    document.querySelectorAll(".board-col.drop-target, .deal-card.dragging").forEach(function (node) {
      node.classList.remove("drop-target", "dragging");
    });
  });
  document.addEventListener("dragover", function (event) {
    var column = drag && columnOf(event.target);
    if (!column) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    document.querySelectorAll(".board-col.drop-target").forEach(function (node) {
      if (node !== column) node.classList.remove("drop-target");
    });
    column.classList.add("drop-target");
  });
  document.addEventListener("drop", function (event) {
    var column = drag && columnOf(event.target);
    if (!column) return;
    event.preventDefault();
    var moving = drag;
    drag = null;
    column.classList.remove("drop-target");
    if (columnOf(moving.list) === column) return;
    column.querySelector(".cards").prepend(moving.card);
    saveMove(moving, column);
  });
  function putBack(moving, message) {
    moving.list.insertBefore(moving.card, moving.next && moving.next.parentNode === moving.list ? moving.next : null);
    boardError(message);
  }
  function saveMove(moving, column) {
    var card = moving.card;
    var board = card.closest("[data-board]");
    var stageId = column.getAttribute("data-stage-id");
    var body = new URLSearchParams({ stage_id: stageId, owner: board.getAttribute("data-owner") || "" });
    card.setAttribute("aria-busy", "true");
    boardError("");
    fetch(card.getAttribute("data-move-url"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" }
    }).then(function (response) {
      var type = response.headers.get("content-type") || "";
      if (!response.ok || type.indexOf("application/json") < 0) {
        return { ok: false, error: "The move was not saved. Reload the page and try again." };
      }
      return response.json();
    }).then(function (answer) {
      card.removeAttribute("aria-busy");
      if (!answer.ok) return putBack(moving, answer.error);
      var select = card.querySelector("select[name=stage_id]");
      if (select) select.value = stageId;
      Object.keys(answer.columns).forEach(function (id) {
        var head = board.querySelector('.board-col[data-stage-id="' + id + '"]');
        if (!head) return;
        head.querySelector("[data-count]").textContent = answer.columns[id].count;
        head.querySelector("[data-total]").textContent = answer.columns[id].total;
      });
      card.classList.add("moved");
    }, function () {
      card.removeAttribute("aria-busy");
      putBack(moving, "The move was not saved: the server could not be reached.");
    });
  }
})();
