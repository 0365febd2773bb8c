// The zdm console's page script: keeps the page live and asks before each action.
//
// Theory of operation: once a second it fetches /view (the server-rendered sections of
// <main>) and replaces only the sections whose HTML changed, keeping the focus on the
// control that had it.  A click on an action button opens a dialog that shows the
// machine's verdict for that move (the report the server rendered into the button), the
// unmet conditions with what to do, a checkbox for each condition an operator confirms, and
// asks for the operator's name; Confirm POSTs the action with the page's CSRF token.  The
// answer is shown above the page: the move done, or the refusal with its reasons (a refused
// action changed nothing).  Texts from the server are set as text, never parsed as HTML,
// except /view's, which the server escaped.
(function () {
  "use strict";
  var POLL_MS = 1000;
  var csrf = document.querySelector("meta[name=csrf-token]").content;
  var live = document.getElementById("live");
  var note = document.getElementById("live-note");
  var outcome = document.getElementById("outcome");
  var dialog = document.getElementById("confirm");
  var form = document.getElementById("confirm-form");
  var pending = null; // the report of the move the dialog asks about

  function text(tag, content, cls) {
    var el = document.createElement(tag);
    el.textContent = content;
    if (cls) el.className = cls;
    return el;
  }

  // -- live sections -------------------------------------------------------------------
  function swap(html) {
    var fresh = document.createElement("div");
    fresh.innerHTML = html;
    var focused = document.activeElement && document.activeElement.id;
    Array.prototype.forEach.call(fresh.children, function (section) {
      var old = document.getElementById(section.id);
      if (!old) { live.appendChild(section.cloneNode(true)); return; }
      if (old.outerHTML !== section.outerHTML) old.replaceWith(section.cloneNode(true));
    });
    if (focused && document.activeElement === document.body) {
      var again = document.getElementById(focused);
      if (again) again.focus();
    }
  }

  function poll() {
    fetch("/view", {cache: "no-store", credentials: "same-origin"}).then(function (r) {
      if (r.status === 401) throw new Error("the token is no longer accepted: open /?token=... again");
      if (!r.ok) throw new Error("the console answered " + r.status);
      var at = r.headers.get("X-Generated-At");
      return r.text().then(function (html) {
        swap(html);
        note.textContent = "Live, updated " + (at ? new Date(at) : new Date()).toLocaleTimeString();
        var title = r.headers.get("X-Page-Title");
        if (title) document.title = title;
      });
    }).catch(function (err) {
      note.textContent = "Not live: " + err.message + " (retrying)";
    }).then(function () { setTimeout(poll, POLL_MS); });
  }

  // -- actions ---------------------------------------------------------------------------
  function verdictOf(report) {
    if (report.allowed) return "The guards allow it now.";
    if (report.allowed_if_confirmed) return "Allowed once you confirm below.";
    return "The guards refuse it now: it will be refused unless this changes.";
  }

  function open(report) {
    pending = report;
    var verb = report.action === "advance" ? "Advance" : "Roll back";
    document.getElementById("confirm-title").textContent =
      verb + " from phase " + report.from + " to " + report.to_label + "?";
    var verdict = document.getElementById("confirm-verdict");
    verdict.textContent = verdictOf(report);
    verdict.className = report.allowed || report.allowed_if_confirmed ? "pass" : "fail";
    var list = document.getElementById("confirm-reasons");
    list.replaceChildren();
    report.guards.forEach(function (g) {
      if (g.passed || g.confirm) return;
      g.reasons.forEach(function (r) {
        var li = text("li", r.what);
        li.appendChild(document.createElement("br"));
        li.appendChild(text("span", "→ " + r.todo, "todo"));
        list.appendChild(li);
      });
    });
    if (!report.guards.length) {
      report.reasons.forEach(function (r) { list.appendChild(text("li", r.what + " (" + r.todo + ")")); });
    }
    var checks = document.getElementById("confirm-checks");
    checks.replaceChildren();
    report.confirmations.forEach(function (c) {
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.name = c.flag;
      box.id = "check-" + c.flag;
      label.htmlFor = box.id;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + c.label));
      checks.appendChild(label);
    });
    var go = document.getElementById("confirm-go");
    go.textContent = report.allowed || report.allowed_if_confirmed ? verb : verb + " anyway";
    var operator = document.getElementById("operator");
    operator.value = operator.value || localStorage.getItem("zdm-operator") || "";
    document.getElementById("why").value = "";
    dialog.showModal();
    (operator.value ? go : operator).focus();
  }

  function show(kind, title, reasons) {
    outcome.className = kind;
    outcome.replaceChildren(text("strong", title));
    if (reasons && reasons.length) {
      var ul = document.createElement("ul");
      reasons.forEach(function (r) {
        var li = text("li", r.what);
        if (r.todo) { li.appendChild(document.createElement("br")); li.appendChild(text("span", "→ " + r.todo, "todo")); }
        ul.appendChild(li);
      });
      outcome.appendChild(ul);
    }
  }

  function submit(event) {
    event.preventDefault();
    var report = pending;
    var operator = document.getElementById("operator").value.trim();
    if (!operator) { document.getElementById("operator").focus(); return; }
    localStorage.setItem("zdm-operator", operator);
    var body = {operator: operator, to: report.to};
    var why = document.getElementById("why").value.trim();
    if (why) body.why = why;
    form.querySelectorAll("#confirm-checks input:checked").forEach(function (box) { body[box.name] = true; });
    dialog.close();
    show("", (report.action === "advance" ? "Advancing" : "Rolling back") + " to " + report.to_label + "…");
    fetch("/api/phase/" + report.action, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (doc) {
        if (r.status === 200) {
          var msg = doc.message.charAt(0).toUpperCase() + doc.message.slice(1) + ".";
          if (doc.routing_pending) msg += " Some proxies have not applied the new routing yet: " + doc.routing_pending.lagging.join(", ") + ".";
          show("done", msg);
        } else if (r.status === 409) {
          show("refused", "Refused, nothing changed: " + (doc.message || doc.error), doc.reasons || (doc.todo ? [{what: doc.error, todo: doc.todo}] : []));
        } else {
          show("error", "Not done (" + r.status + "): " + doc.error, doc.todo ? [{what: "what to do", todo: doc.todo}] : []);
        }
      });
    }).catch(function (err) {
      show("error", "Not done: the console could not be reached (" + err.message + ")");
    });
  }

  live.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-report]");
    if (button) open(JSON.parse(button.dataset.report));
  });
  form.addEventListener("submit", submit);
  document.getElementById("confirm-cancel").addEventListener("click", function () { dialog.close(); });
  setTimeout(poll, POLL_MS);
})();
