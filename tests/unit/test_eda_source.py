"""The alertmanager event source's pure part: one event per labelled alert, meta.hosts = the deployment."""
import importlib.util
import pathlib

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "extensions" / "eda" / "plugins" / "event_source" / "alertmanager.py"
spec = importlib.util.spec_from_file_location("alex_eda_alertmanager", SOURCE)
alertmanager = importlib.util.module_from_spec(spec)
spec.loader.exec_module(alertmanager)


def test_one_event_per_labelled_alert():
    payload = {"alerts": [
        {"status": "firing", "labels": {"alertname": "AlexandriaApiDown", "deployment": "prod-eu"}},
        {"status": "firing", "labels": {"alertname": "AlexandriaApiDown"}},
        "not an alert",
        {"status": "firing", "labels": "not a dict"},
        {"status": "resolved", "labels": {"alertname": "AlexandriaQuotaExceeded", "deployment": "prod-us"}},
    ]}
    events, dropped = alertmanager.alerts_to_events(payload, endpoint="alerts")
    assert dropped == 3
    expected = [{"endpoint": "alerts", "hosts": "prod-eu"}, {"endpoint": "alerts", "hosts": "prod-us"}]
    assert [e["meta"] for e in events] == expected
    assert events[1]["alert"]["status"] == "resolved"


def test_custom_label_and_garbage_payloads():
    events, dropped = alertmanager.alerts_to_events({"alerts": [{"labels": {"cluster": "c1"}}]}, "cluster")
    assert (len(events), dropped) == (1, 0) and events[0]["meta"]["hosts"] == "c1"
    for garbage in (None, [], "x", {"alerts": None}, {}):
        assert alertmanager.alerts_to_events(garbage) == ([], 0)
