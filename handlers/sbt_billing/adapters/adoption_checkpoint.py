"""The adoption tool's place, in a local file: one JSON line per tenant done (its result), appended and
flushed as each is done, so that a run stopped at any point resumes after the last one."""

from __future__ import annotations

import json
import os
from pathlib import Path


class FileCheckpoint:
    def __init__(self, path: Path) -> None:
        self._path = path

    def done(self) -> dict[str, str]:
        """The tenants done so far, with their result (a torn last line, from a kill, is ignored)."""
        if not self._path.exists():
            return {}
        found: dict[str, str] = {}
        for line in self._path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("tenantId"), str):
                found[record["tenantId"]] = str(record.get("result"))
        return found

    def record(self, tenant_id: str, result: str) -> None:
        with self._path.open("a", encoding="utf-8") as file:
            file.write(json.dumps({"tenantId": tenant_id, "result": result}) + "\n")
            file.flush()
            os.fsync(file.fileno())
