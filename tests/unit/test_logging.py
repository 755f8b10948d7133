"""JSON log lines carry the ids of what was being handled (log context), and plain text stays
the default."""

from __future__ import annotations

import io
import json
import logging

from engine.logging import ContextFilter, JsonFormatter, configure_logging, current_context, log_context
from engine.services.bus import DomainEvent, EventBus


def json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_time_level_message_context_and_extra() -> None:
    logger, stream = json_logger("tests.logging.basic")
    with log_context(conference_id=7, channel="PJSIP/pstn-00000001", call_id=""):
        logger.warning("dial %s failed", "375290000486", extra={"reason": "busy"})
    logger.info("outside")
    first, second = lines(stream)
    assert first["message"] == "dial 375290000486 failed" and first["level"] == "WARNING"
    assert first["logger"] == "tests.logging.basic" and first["time"].endswith("+00:00")
    assert (first["conference_id"], first["channel"], first["reason"]) == (7, "PJSIP/pstn-00000001", "busy")
    assert "call_id" not in first  # empty ids are left out
    assert "conference_id" not in second and current_context() == {}


def test_ids_read_from_a_source_are_read_once_and_only_when_a_line_is_written() -> None:
    logger, stream = json_logger("tests.logging.lazy")
    reads: list[str] = []

    def ids_of(source: str) -> dict[str, str]:
        reads.append(source)
        return {"channel": source, "call_id": ""}

    with log_context(conference_id=7, channel="outer"):
        for _ in range(3):  # events handled without a line: their ids are never read
            with log_context.of("PJSIP/quiet-00000001", ids_of):
                pass
        with log_context.of("PJSIP/pstn-00000002", ids_of):
            logger.info("one")
            logger.info("two")
            assert current_context() == {"conference_id": 7, "channel": "PJSIP/pstn-00000002"}
        logger.info("outside")
    assert reads == ["PJSIP/pstn-00000002"]
    one, two, outside = lines(stream)
    assert (one["conference_id"], one["channel"]) == (7, "PJSIP/pstn-00000002") and "call_id" not in one
    assert two["channel"] == "PJSIP/pstn-00000002" and outside["channel"] == "outer"


def test_exceptions_stay_on_one_line() -> None:
    logger, stream = json_logger("tests.logging.exc")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    (entry,) = lines(stream)
    assert "ValueError: boom" in entry["exception"]


async def test_bus_subscribers_log_with_the_event_ids() -> None:
    logger, stream = json_logger("tests.logging.bus")
    bus = EventBus()
    bus.subscribe(lambda event: logger.info("got %s", event.kind))
    await bus.publish(DomainEvent(kind="participant.state", conference_id=12, participant_id=34))
    (entry,) = lines(stream)
    assert (entry["conference_id"], entry["participant_id"]) == (12, 34)


def test_configure_logging_switches_between_text_and_json() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        stream = io.StringIO()
        configure_logging(json_output=True, stream=stream)
        with log_context(conference_id=5):
            logging.getLogger("engine.test").info("hello")
        assert json.loads(stream.getvalue())["conference_id"] == 5
        stream = io.StringIO()
        configure_logging(json_output=False, stream=stream)
        logging.getLogger("engine.test").info("hello")
        assert stream.getvalue().rstrip().endswith("INFO engine.test: hello")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
