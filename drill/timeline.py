"""A timeline of what happened in a drill scenario, printed for humans."""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field


@dataclass
class Timeline:
    title: str
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    events: list[tuple[dt.datetime, str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, actor: str, text: str, at: dt.datetime | None = None) -> None:
        with self._lock:
            self.events.append((at or dt.datetime.now(dt.timezone.utc), actor, text))

    def check(self, ok: bool, what: str) -> None:
        self.add("check", ("PASS  " if ok else "FAIL  ") + what)
        if not ok:
            self.failures.append(what)

    def render(self) -> str:
        lines = [f"== {self.title} =="]
        for at, actor, text in sorted(self.events, key=lambda e: e[0]):
            offset = (at - self.started).total_seconds()
            lines.append(f"  +{offset:7.2f}s  {actor:<10} {text}")
        lines.append(f"  result: {'OK' if not self.failures else 'FAILED: ' + '; '.join(self.failures)}")
        return "\n".join(lines)
