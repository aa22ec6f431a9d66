"""A line chart of one or more series over steps (textual-plotext). Set data with `set_series`; it redraws only
when asked (`refresh`), so the owner decides how often (the Train screen: at most 4 times a second)."""

from __future__ import annotations

from textual_plotext import PlotextPlot

COLORS = ["cyan", "orange", "green", "magenta", "yellow", "red", "blue", "white"]
MAX_POINTS = 400  # more points than a terminal can show only cost time: keep every n-th (and the last)


def thin(points: list[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    if len(points) <= limit:
        return points
    step = -(-len(points) // limit)
    out = points[::step]
    return out if out[-1] == points[-1] else out + [points[-1]]


class LossChart(PlotextPlot):
    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str = "", *, ylabel: str = "", id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.ylabel = ylabel
        self.series: list[tuple[str, list[tuple[float, float]]]] = []
        self.empty_text = "waiting for the first step..."

    def set_series(self, series: list[tuple[str, list[tuple[float, float]]]], *, redraw: bool = True) -> None:
        self.series = [(label, thin(points)) for label, points in series]
        if redraw:
            self.refresh()

    def render(self):
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if not any(points for _, points in self.series):
            plt.title(self.empty_text)
        for i, (label, points) in enumerate(self.series):
            if not points:
                continue
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            if len(points) == 1:
                plt.scatter(xs, ys, label=label, marker="dot", color=COLORS[i % len(COLORS)])
            else:
                plt.plot(xs, ys, label=label, marker="hd", color=COLORS[i % len(COLORS)])
        if self.ylabel:
            plt.ylabel(self.ylabel)
        return super().render()
