"""deploy/grafana-dashboard.json is a valid dashboard whose queries name only metrics the engine
exports (engine/metrics.py), so a renamed metric cannot leave an empty panel behind."""

from __future__ import annotations

import json
import re

from engine.stack import PROJECT_ROOT


def test_dashboard_queries_name_exported_metrics() -> None:
    dashboard = json.loads((PROJECT_ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exported = set(re.findall(r'"(veche_[a-z_]+)"', (PROJECT_ROOT / "engine" / "metrics.py").read_text()))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs
    for expr in exprs:
        for name in re.findall(r"veche_[a-z_]+", expr):
            assert re.sub(r"_total$", "", name) in exported, (name, expr)
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("per node", "dial-out", "dial-in", "mail queue", "active engine"):
        assert topic in titles
