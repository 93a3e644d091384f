"""What a training run writes and prints: metrics JSONL, TensorBoard events, metric lines.

``metrics.jsonl`` in the output folder gets one object per generation (``"kind": "train"``) and
per evaluation (``"kind": "eval"``). When the ``tensorboard`` package is importable the same
scalars go to ``<output>/tensorboard``. A resumed run first drops the lines of generations after
its checkpoint, so the file reads like one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["RunLog", "format_metrics"]

_TIMES = (("rollout_s", "roll"), ("extraction_s", "extract"), ("fitness_s", "fitness"), ("update_s", "update"))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def format_metrics(m: dict[str, Any], generations: int) -> str:
    """One line per generation: fitness mean/max/std, components, update norm, speed, time split."""
    comps = " ".join(f"{k}={v:.3f}" for k, v in m.get("components", {}).items())
    total = m.get("generation_s", 0.0) or 1e-9
    split = " ".join(f"{label} {m.get(key, 0.0):.1f}s ({100 * m.get(key, 0.0) / total:.0f}%)" for key, label in _TIMES)
    return (f"gen {m['generation'] + 1}/{generations}  fitness {m['fitness_mean']:.4f} "
            f"(max {m['fitness_max']:.4f}, std {m['fitness_std']:.4f})  {comps}  "
            f"|update| {m['update_norm']:.3g}  {m.get('tokens_per_s', 0.0):.0f} tok/s  {split}")


class RunLog:
    """Appends metrics to ``<output>/metrics.jsonl`` and, if available, TensorBoard."""

    def __init__(self, output_dir: str | Path, *, resume_generation: int | None = None):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_generation is not None and self.path.is_file():
            self._truncate(resume_generation)
        elif resume_generation is None and self.path.is_file():
            self.path.unlink()  # a fresh run in a used folder starts a fresh log
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        except ImportError:
            pass
        else:
            self.writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))

    def _truncate(self, generation: int) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            done = row.get("generation", -1) + 1 if row.get("kind") == "train" else row.get("after_generations", 0)
            if done <= generation:
                kept.append(line)
        self.path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(_clean(row), ensure_ascii=False) + "\n")
        if self.writer is not None:
            step = row.get("generation", row.get("after_generations", 0))
            prefix = row.get("kind", "train")
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "generation":
                    self.writer.add_scalar(f"{prefix}/{key}", value, step)
            for key, value in row.get("components", {}).items():
                self.writer.add_scalar(f"{prefix}/components/{key}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
