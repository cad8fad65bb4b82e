"""The services' own log lines (the API's, the dashboard's) as text, or as one JSON object per line
(CREDIT_LOG_FORMAT=json) for a log collector. Lines hold ids and counts, never a client's data."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from credit_dagster.core import settings

TEXT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"), "level": record.levelname,
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: int = logging.INFO) -> None:
    """The root logger's one handler (standard error), in the configured format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if settings.current().log_format == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
