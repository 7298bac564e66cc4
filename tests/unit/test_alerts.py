"""`rabbitform alerts`: rules generated from the spec alone, checked by promtool (Debian's
prometheus package, installed by scripts/test-tools-up) and two of them unit-tested with it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from topology.alerts import Thresholds, alert_rules
from topology.cli.main import main
from topology.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
ALICE = ROOT / "specs" / "alice.yaml"
DEAD_MAIL = "dead_letter.alice.petisco.1.event.user.created.send_mail_handler"
MAIL = "alice.petisco.1.event.user.created.send_mail_handler"
promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (scripts/test-tools-up)")


def rules_by_name(document: dict) -> dict[str, dict]:
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


def test_every_alert_the_issue_asks_for_is_there_for_the_specs_queues() -> None:
    rules = rules_by_name(alert_rules(load_spec(ALICE)))
    assert set(rules) == {
        "RabbitformDeadLettersPresent",
        "RabbitformDeadLettersGrowing",
        "RabbitformHandlerDeadLettering",
        "RabbitformOldestDeadLetterOld",
        "RabbitformDeadLettersNotDrained",
        "RabbitformSubscriberWithoutConsumer",
        "RabbitformHighRetryRate",
        "RabbitformCircuitBreakerOpen",
        "RabbitformReconnectStorm",
    }
    assert DEAD_MAIL.replace(".", "\\\\.") in rules["RabbitformDeadLettersPresent"]["expr"]
    assert "rabbitmq_detailed_queue_consumers" in rules["RabbitformSubscriberWithoutConsumer"]["expr"]
    assert "rabbitform_circuit_breaker_state" in rules["RabbitformCircuitBreakerOpen"]["expr"]
    per_object = rules_by_name(alert_rules(load_spec(ALICE), broker_metrics="per-object"))
    assert "rabbitmq_queue_messages{" in per_object["RabbitformDeadLettersPresent"]["expr"]


def test_thresholds_have_defaults_and_can_be_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rules.yml"
    assert main(["alerts", str(ALICE), "-o", str(out), "--dead-letters", "10", "--no-consumer-for", "2m"]) == 0
    rules = rules_by_name(yaml.safe_load(out.read_text()))
    assert rules["RabbitformDeadLettersPresent"]["expr"].endswith("> 10")
    assert rules["RabbitformSubscriberWithoutConsumer"]["for"] == "2m"
    assert rules["RabbitformDeadLettersPresent"]["for"] == Thresholds().dead_letters_for
    assert main(["alerts", str(ALICE), "--oldest-age", "an hour"]) == 1
    assert "--oldest-age: 'an hour' is not a Prometheus duration" in capsys.readouterr().err


@promtool
def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    assert main(["alerts", str(ALICE), "-o", str(out)]) == 0
    checked = subprocess.run(["promtool", "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout


@promtool
def test_promtool_fires_dead_letters_present_and_no_consumer(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    assert main(["alerts", str(ALICE), "-o", str(rules)]) == 0
    dead = f'rabbitmq_detailed_queue_messages{{vhost="/", queue="{DEAD_MAIL}"}}'
    consumers = f'rabbitmq_detailed_queue_consumers{{vhost="/", queue="{MAIL}"}}'
    cases = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": dead, "values": "0 0 3 3 3 3 3 3 3 3"},
                    {"series": consumers, "values": "1 1 0 0 0 0 0 0 0 0"},
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "RabbitformDeadLettersPresent", "exp_alerts": []},
                    {
                        "eval_time": "8m",
                        "alertname": "RabbitformDeadLettersPresent",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "vhost": "/", "queue": DEAD_MAIL},
                                "exp_annotations": {
                                    "summary": f"{DEAD_MAIL} holds 3 dead letter(s)",
                                    "description": rules_by_name(yaml.safe_load(rules.read_text()))[
                                        "RabbitformDeadLettersPresent"
                                    ]["annotations"]["description"],
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "8m",
                        "alertname": "RabbitformSubscriberWithoutConsumer",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "vhost": "/", "queue": MAIL},
                                "exp_annotations": {
                                    "summary": f"nothing consumes {MAIL}",
                                    "description": "The subscriber's service is down or cannot connect: its "
                                    "messages wait in the queue.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "rules_test.yml"
    test_file.write_text(yaml.safe_dump(cases, sort_keys=False))
    tested = subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
