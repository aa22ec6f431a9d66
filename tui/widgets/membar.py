"""Memory bars: a one-line usage bar against the card, and a stacked breakdown bar with its legend.

    usage_bar(9.8, capacity=24, budget=22.8, width=20)   -> Text  "██████████░░░░░░░░│·"
    StackedBar(id="breakdown"); bar.show(estimate.breakdown, capacity=24, budget=22.8)
    bar.show(per_gpu_fsdp.breakdown, 24, 22.8, labels={"quantized_weights": "quantized weights 1/2"})
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

# breakdown keys in the order they stack (static weights first, transient peak last), with a colour and a label
SEGMENTS: list[tuple[str, str, str]] = [
    ("quantized_weights", "#3b82f6", "quantized weights"),
    ("quant_constants", "#60a5fa", "quant constants"),
    ("weights_16bit", "#8b5cf6", "16-bit weights"),
    ("lora_params", "#10b981", "LoRA"),
    ("lora_grads", "#34d399", "LoRA grads"),
    ("optimizer_states", "#14b8a6", "optimizer"),
    ("activations", "#f59e0b", "activations"),
    ("logits_loss", "#ef4444", "logits+loss"),
    ("layer_backward", "#f97316", "layer backward"),
    ("cuda_context", "#6b7280", "CUDA context"),
    ("allocator_overhead", "#9ca3af", "allocator"),
    ("correction", "#ec4899", "correction"),
    ("ddp_buckets", "#a3e635", "DDP buckets"),  # several GPUs (profiles.multi): what data parallelism adds
    ("nccl_buffers", "#d9f99d", "NCCL"),
    ("fsdp_gather", "#fde047", "FSDP all-gather"),  # fsdp: the root and two layers unsharded at a time
]
KNOWN = {key for key, _, _ in SEGMENTS}


def usage_bar(used: float, capacity: float, budget: float, width: int) -> Text:
    """`used` against `capacity` in `width` cells: green within `budget` (capacity minus the safety margin),
    yellow in the margin, red past the card (the bar then ends in ">"). A "│" marks the budget."""
    text = Text(no_wrap=True, end="")
    if capacity <= 0 or width < 3:
        return text
    style = "green" if used <= budget else ("yellow" if used <= capacity else "red")
    cells = min(width, round(used / capacity * width))
    mark = min(width - 1, max(0, round(budget / capacity * width)))
    for i in range(width):
        if i < cells:
            glyph = ">" if (used > capacity and i == width - 1) else "█"
            text.append(glyph, style=style)
        elif i == mark:
            text.append("│", style="dim")
        else:
            text.append("·", style="dim")
    return text


class StackedBar(Widget):
    """The breakdown of an estimate as one stacked bar scaled to the card, then a legend with GiB per part."""

    DEFAULT_CSS = """
    StackedBar { height: auto; width: 1fr; }
    """

    breakdown: reactive[dict] = reactive(dict, layout=True)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.capacity = 0.0
        self.budget = 0.0
        self.labels: dict[str, str] = {}

    def show(self, breakdown: dict[str, float], capacity: float, budget: float,
             labels: dict[str, str] | None = None) -> None:
        """`labels`: other legend words for some keys (e.g. the sharded parts of an fsdp figure)."""
        self.capacity, self.budget = capacity, budget
        self.labels = dict(labels or {})
        self.breakdown = dict(breakdown)
        self.refresh(layout=True)

    def _parts(self) -> list[tuple[str, str, float]]:
        parts = [(color, self.labels.get(key, label), self.breakdown.get(key, 0.0)) for key, color, label in SEGMENTS]
        parts += [("#a3a3a3", key, v) for key, v in self.breakdown.items() if key not in KNOWN]
        return [p for p in parts if p[2] > 0.005]

    def render(self) -> Text:
        width = max(10, self.size.width)
        parts = self._parts()
        total = sum(v for _, _, v in parts)
        scale = max(self.capacity, total) or 1.0
        bar = Text(no_wrap=True, end="")
        used = 0
        acc = 0.0
        for color, _, v in parts:
            acc += v
            end = round(acc / scale * width)
            if end > used:
                bar.append("█" * (end - used), style=color)
                used = end
        if used < width:
            mark = round(self.budget / scale * width) if self.capacity else width
            free = "".join("│" if i == mark else "·" for i in range(used, width))
            bar.append(free, style="dim")
        lines = [bar]
        for row in self._legend_rows(parts, width):
            line = Text(no_wrap=True, end="")
            for i, (color, item) in enumerate(row):
                if i:
                    line.append("  ")
                line.append("■ ", style=color)
                line.append(item)
            lines.append(line)
        return Text("\n", end="").join(lines)

    @staticmethod
    def _legend_rows(parts: list[tuple[str, str, float]], width: int) -> list[list[tuple[str, str]]]:
        """Legend items packed greedily into rows of `width` cells; an item never breaks."""
        rows: list[list[tuple[str, str]]] = []
        used = width
        for color, label, v in parts:
            item = f"{label} {v:.2f}" if v < 0.1 else f"{label} {v:.1f}"
            cells = len(item) + 2
            if rows and used + 2 + cells <= width:
                rows[-1].append((color, item))
                used += 2 + cells
            else:
                rows.append([(color, item)])
                used = cells
        return rows

    def get_content_height(self, container, viewport, width: int) -> int:
        return 1 + max(1, len(self._legend_rows(self._parts(), max(10, width))))
