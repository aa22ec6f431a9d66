"""The download list: per download a total bar with speed and ETA, then a bar for each file still in flight."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tunedoc.models.fmt import human_bytes, human_duration
from tunedoc.tui.models_backend import DownloadState

MAX_FILES = 3  # file lines shown per download; the rest are counted


def bar(done: int, total: int, width: int, style: str) -> Text:
    frac = done / total if total else 1.0
    cells = min(width, int(frac * width))
    return Text.assemble(("█" * cells, style), ("·" * (width - cells), "dim"))


def download_lines(d: DownloadState, width: int) -> list[Text]:
    pct = int(100 * d.done / d.total) if d.total else (100 if d.status == "done" else 0)
    if d.status == "planning":
        return [Text.assemble(("↓ ", "cyan"), (d.repo, "bold"), ("  checking files and disk space…", "dim"))]
    if d.status == "done":
        line = Text.assemble(("✓ ", "bold green"), (d.repo, "bold"),
                             f"  {human_bytes(d.total)} in {d.files_total} files  ", (d.path or "", "dim"))
        line.truncate(width, overflow="ellipsis")
        return [line]
    if d.status in ("failed", "cancelled"):
        mark = ("✗ ", "bold red") if d.status == "failed" else ("■ ", "yellow")
        what = d.error.message if d.error else d.status
        lines = [Text.assemble(mark, (d.repo, "bold"), f": {what}")]
        if d.error and d.error.hint:
            lines.append(Text(f"  fix: {d.error.hint}", style="dim"))
        if d.status == "cancelled" or (d.error and d.error.kind in ("network", "disk")):
            lines.append(Text("  d downloads it again and resumes the partial files", style="dim"))
        return lines
    eta = human_duration(d.eta_s) if d.eta_s is not None else "?"
    name = Text(d.repo, style="bold")
    name.truncate(max(12, width // 2), overflow="ellipsis")
    bar_w = max(6, width - 3 - name.cell_len - 6)
    lines = [Text.assemble(("↓ ", "cyan"), name, " ", bar(d.done, d.total, bar_w, "cyan"), f" {pct:3d}%"),
             Text(f"  {human_bytes(d.done)} of {human_bytes(d.total)}  ·  {human_bytes(d.speed_bps)}/s  ·  "
                  f"ETA {eta}  ·  {d.files_done}/{d.files_total} files  ·  x cancels", style="dim")]
    flying = [(n, f) for n, f in d.files.items() if 0 < f[0] < f[1]]
    for n, (done, total) in flying[:MAX_FILES]:
        fstats = f" {int(100 * done / total):3d}%  {human_bytes(done)}/{human_bytes(total)}"
        fname_w = max(10, min(len(n), width // 3))
        fname = Text(n)
        fname.truncate(fname_w, overflow="ellipsis", pad=True)
        fbar_w = max(6, width - 4 - fname_w - 1 - len(fstats))
        lines.append(Text.assemble("    ", fname, " ", bar(done, total, fbar_w, "blue"), fstats))
    if len(flying) > MAX_FILES:
        lines.append(Text(f"    +{len(flying) - MAX_FILES} more files in flight", style="dim"))
    return lines


class DownloadList(Widget):
    """Set with `show(states)`; newest first. Height follows the content."""

    DEFAULT_CSS = """
    DownloadList { height: auto; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.states: list[DownloadState] = []

    def show(self, states: list[DownloadState]) -> None:
        self.states = list(states)
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Text]:
        out: list[Text] = []
        for d in self.states:
            for line in download_lines(d, width):
                line.no_wrap = True
                line.truncate(width, overflow="ellipsis")
                out.append(line)
        return out

    def render(self) -> Text:
        return Text("\n", end="").join(self._lines(max(20, self.size.width)))

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, len(self._lines(max(20, width))))
