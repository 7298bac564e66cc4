"""A handler that takes its time, named by import path in the clean-stop tests' spec."""

from __future__ import annotations

import os
import time

from meiga import BoolResult, isSuccess

from bus_runtime import Event


class UserCreated(Event):
    user_id: str


def slow_handler(event: UserCreated) -> BoolResult:
    say(f"started {event.user_id}")
    time.sleep(float(os.environ.get("SLOW_HANDLER_S", "2")))
    say(f"handled {event.user_id}")
    return isSuccess


def say(line: str) -> None:
    print(line + "\n", end="", flush=True)  # one write: handlers run on several threads


STARTED: list[str] = []  # in-process runs: which handlers started and finished
HANDLED: list[str] = []


def recorded_slow_handler(event: UserCreated) -> BoolResult:
    STARTED.append(event.user_id)
    time.sleep(float(os.environ.get("SLOW_HANDLER_S", "2")))
    HANDLED.append(event.user_id)
    return isSuccess
