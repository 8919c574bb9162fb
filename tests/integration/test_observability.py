"""Integration cases for what operators graph and alert on: every metric the
shipped Grafana dashboard and Prometheus rules name is exported by a real
/metrics page (a webhook of two processes, a drain that ran an exec: handler,
sent, met a 429 and a dead call), with the label values they match; the handler
histogram times exec: runs; and promtool accepts the rules."""

import json
import os
import re
import shutil
import subprocess

import harness as h
from fake_botapi import FakeBotAPI
from test_ops import Stack, drain, hist_count, parse_metrics

check = h.check
Skip = h.Skip

RULES = os.path.join(h.ROOT, "deploy", "prometheus", "tgq-rules.yml")
DASHBOARD = os.path.join(h.ROOT, "deploy", "grafana", "tgq-dashboard.json")
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
FAILING_UPDATE = 7

# Fails update 7 (dead at once: max_attempts 1), answers the others like echo.
HANDLER = """#!/bin/sh
body=$(cat)
case "$body" in
*'"update_id":%d,'*) echo "update 7 fails on purpose" >&2; exit 1 ;;
esac
echo '{"method":"sendMessage","chat_id":42,"text":"ok"}'
""" % FAILING_UPDATE

# PromQL words that are not metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and",
            "or", "unless", "bool", "offset", "inf", "nan"}


def post(stack, uid):
    return stack.post("/telegram/webhook", uid)


def rule_exprs():
    """(where, expr) of every rule in the shipped file, read without a YAML
    library: each `expr:` holds one line."""
    out = []
    with open(RULES) as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^\s*expr:\s*(.+?)\s*$", line)
            if m:
                out.append(("tgq-rules.yml:%d" % n, m.group(1)))
    check(len(out) >= 4, "only %d rules in %s" % (len(out), RULES))
    return out


def dashboard_exprs():
    """(where, expr) of every query of the dashboard: the panels' targets and
    the template variables' queries."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for panel in dash["panels"]:
        check(panel.get("targets"), "panel %r has no queries" % panel.get("title"))
        for t in panel["targets"]:
            out.append(("panel %r" % panel["title"], t["expr"]))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    check("bot" in variables, "the dashboard has no bot variable")
    for name, v in variables.items():
        query = v.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if v.get("type") == "query":
            out.append(("variable %s" % name, query))
    return out


def names_and_matchers(expr):
    """The metric names an expression reads, and its equality matchers as
    (metric, label, value)."""
    matchers = []
    for metric, inner in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        for label, value in re.findall(r'([a-zA-Z_]+)\s*=\s*"([^"]*)"', inner):
            matchers.append((metric, label, value))
    m = re.match(r"^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*\w+\s*\)$",
                 expr)
    if m:
        return {m.group(1)}, matchers
    text = re.sub(r'"[^"]*"', "", expr)                 # strings
    text = re.sub(r"\{[^}]*\}", "", text)               # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)              # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                  "", text)                             # label lists
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names, matchers


def run_pipeline(stack):
    """10 updates through the webhook, a drain with an exec: handler that fails
    one of them (dead), Telegram answering one call 429 and another 403 (a dead
    call), then 3 more updates left pending: every family has series."""
    for uid in range(1, 11):
        check(post(stack, uid).status == 200, "post %d" % uid)
    handler = os.path.join(stack.tmpdir, "handler.sh")
    with open(handler, "w") as f:
        f.write(HANDLER)
    os.chmod(handler, 0o755)
    tfile = h.write_token_file(stack.tmpdir, TOKEN)
    with FakeBotAPI(tokens={TOKEN: "default"}, limits=False) as api:
        api.script([{"status": 429, "retry_after": 1}], method="sendMessage")
        api.script([{"status": 403, "description": "Forbidden: bot was blocked by "
                     "the user"}], method="sendMessage")
        drain(stack, tfile, api.url, TGQ_HANDLER="exec:" + handler,
              TGQ_MAX_ATTEMPTS="1", TGQ_RATE_GLOBAL="0", TGQ_RATE_CHAT="0")
        calls_made = len(api.calls("sendMessage"))
    for uid in range(11, 14):
        check(post(stack, uid).status == 200, "post %d" % uid)
    r = stack.req("GET", "/telegram/metrics")
    check(r.status == 200, "metrics: %d" % r.status)
    return parse_metrics(r.body.decode()), calls_made


def case_exported(stack):
    m, calls_made = run_pipeline(stack)
    # The exec: handler's runs are timed: 9 that printed a call, 1 that failed.
    runs = hist_count(m, "tgq_handler_duration_seconds", "default")
    check(runs == 10, "handler histogram counts %r exec: runs, expected 10" % runs)
    check(m[("tgq_handler_duration_seconds_sum", '{bot="default"}')] > 0,
          "handler histogram's sum")
    check(hist_count(m, "tgq_call_duration_seconds", "default") == calls_made,
          "call histogram: %r, calls answered %d" % (
              hist_count(m, "tgq_call_duration_seconds", "default"), calls_made))
    check(m.get(("tgq_queue_updates", '{bot="default",state="dead"}')) == 1,
          "the failed update is not dead")

    exported = {name for name, _ in m}
    series = {}
    for name, labels in m:
        for label, value in re.findall(r'(\w+)="([^"]*)"', labels):
            series.setdefault((name, label), set()).add(value)
    per_bot = {name for (name, label) in series if label == "bot"}
    problems, seen = [], set()
    for where, expr in rule_exprs() + dashboard_exprs():
        names, matchers = names_and_matchers(expr)
        check(names, "%s: no metric found in %r" % (where, expr))
        for name in names:
            seen.add(name)
            if name not in exported:
                problems.append("%s: %s is not exported" % (where, name))
        for name, label, value in matchers:
            if value not in series.get((name, label), set()):
                problems.append("%s: no %s{%s=%r} on the page" % (where, name,
                                                                  label, value))
        # A dashboard query of a metric that has a bot label follows the
        # dashboard's bot variable.
        if where.startswith("panel"):
            for name in names & per_bot:
                if not re.search(r"%s\{[^}]*bot=~\"\$bot\"" % re.escape(name), expr):
                    problems.append("%s: %s ignores $bot" % (where, name))
    check(not problems, "; ".join(problems))
    for family in ("tgq_ingest_duration_seconds", "tgq_handler_duration_seconds",
                   "tgq_queue_updates", "tgq_oldest_pending_age_seconds",
                   "tgq_bot_calls_total", "tgq_requests_rejected_total"):
        check(any(n.startswith(family) for n in seen),
              "nothing in the dashboard or the rules reads %s" % family)
    stack.notes.append("dashboard and rules: %d metric names, all exported" %
                       len(seen))


def case_promtool(stack):
    promtool = shutil.which("promtool", path=h.SEARCH_PATH)
    if promtool is None:
        raise Skip("promtool is not installed (deploy/deps.sh installs prometheus)")
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0 and "SUCCESS" in r.stdout, "promtool check rules: %s" %
          (r.stdout + r.stderr)[-800:])


def groups(ctx):
    return [
        ("obs-dashboard", lambda: Stack(ctx, {"/telegram/": {}}, procs=2),
         [("queries_name_exported_metrics", case_exported),
          ("promtool_check_rules", case_promtool)]),
    ]
